//! The Linode API v4 JSON shapes this adapter reads, limited to the fields it uses. Arrays Linode may send as
//! `null` read as empty; unknown fields are ignored.

use serde::{Deserialize, Deserializer};

/// `null` or absent as the type's default.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One page of a collection: `{data, page, pages, results}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    pub(crate) data: Vec<T>,
    #[serde(default)]
    pub(crate) page: u64,
    #[serde(default)]
    pub(crate) pages: u64,
}

/// A Linode instance.
#[derive(Debug, Deserialize)]
pub(crate) struct Instance {
    pub(crate) id: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) label: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) status: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) region: String,
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub(crate) plan: String,
    /// Public and (legacy) private addresses; VPC addresses are not listed here.
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) ipv4: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) created: Option<String>,
}

/// `GET /linode/instances/{id}/ips`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct InstanceIps {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) ipv4: InstanceIpv4,
}

/// The IPv4 part of [`InstanceIps`].
#[derive(Debug, Default, Deserialize)]
pub(crate) struct InstanceIpv4 {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) public: Vec<IpAddress>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) private: Vec<IpAddress>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) vpc: Vec<IpAddress>,
}

/// One address of [`InstanceIpv4`] (VPC entries may carry an `address_range` instead).
#[derive(Debug, Deserialize)]
pub(crate) struct IpAddress {
    #[serde(default)]
    pub(crate) address: Option<String>,
}

/// A VPC.
#[derive(Debug, Deserialize)]
pub(crate) struct Vpc {
    pub(crate) id: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) label: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) region: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) subnets: Vec<Subnet>,
}

/// A VPC subnet.
#[derive(Debug, Deserialize)]
pub(crate) struct Subnet {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) ipv4: Option<String>,
}

/// A Cloud Firewall.
#[derive(Debug, Deserialize)]
pub(crate) struct Firewall {
    pub(crate) id: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) label: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) rules: FirewallRules,
    /// What it applies to: `linode`, `linode_interface` (with the instance as parent), `nodebalancer` …
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) entities: Vec<Entity>,
}

/// A firewall's rule set.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct FirewallRules {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) inbound: Vec<Rule>,
}

/// One firewall rule.
#[derive(Debug, Deserialize)]
pub(crate) struct Rule {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) action: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) protocol: String,
    /// `"22"`, `"22,443"`, `"8000-9000"`; absent for all ports.
    #[serde(default)]
    pub(crate) ports: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) addresses: Addresses,
    #[serde(default)]
    pub(crate) label: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

/// The sources of a rule.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Addresses {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) ipv4: Vec<String>,
}

/// Something a firewall applies to.
#[derive(Debug, Deserialize)]
pub(crate) struct Entity {
    pub(crate) id: u64,
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) parent_entity: Option<Box<Entity>>,
}

impl Entity {
    /// The instance this entity is, or belongs to (a `linode_interface`'s parent).
    pub(crate) fn linode_id(&self) -> Option<u64> {
        match self.kind.as_str() {
            "linode" => Some(self.id),
            _ => self
                .parent_entity
                .as_deref()
                .filter(|p| p.kind == "linode")
                .map(|p| p.id),
        }
    }
}

/// A firewall device (`/networking/firewalls/{id}/devices`).
#[derive(Debug, Deserialize)]
pub(crate) struct Device {
    pub(crate) id: u64,
    pub(crate) entity: Entity,
}

/// A managed database.
#[derive(Debug, Deserialize)]
pub(crate) struct Database {
    pub(crate) id: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) label: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) engine: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) region: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) hosts: Option<DatabaseHosts>,
    #[serde(default)]
    pub(crate) port: Option<u16>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) allow_list: Vec<String>,
}

/// A database's host names.
#[derive(Debug, Deserialize)]
pub(crate) struct DatabaseHosts {
    #[serde(default)]
    pub(crate) primary: Option<String>,
}

/// A DNS Manager domain (zone).
#[derive(Debug, Deserialize)]
pub(crate) struct Domain {
    pub(crate) id: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) domain: String,
}

/// A domain record. `name` is relative to the domain (`""` at the apex).
#[derive(Debug, Deserialize)]
pub(crate) struct Record {
    pub(crate) id: u64,
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub(crate) kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) target: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) ttl_sec: u32,
}
