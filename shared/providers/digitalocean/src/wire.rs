//! DigitalOcean's JSON, as far as Flotilla reads it, and its conversion to the neutral model.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use flotilla_cloud::{DnsRecord, Machine, MachineState, ManagedDatabase, Marks, Vpc};
use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::client::Page;

/// `links` of a list answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Links {
    #[serde(default)]
    pub pages: Option<PageLinks>,
}

/// `links.pages`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageLinks {
    #[serde(default)]
    pub next: Option<String>,
}

macro_rules! page {
    ($name:ident, $field:ident, $item:ty) => {
        #[derive(Debug, Deserialize)]
        pub(crate) struct $name {
            #[serde(default)]
            pub $field: Vec<$item>,
            #[serde(default)]
            pub links: Option<Links>,
        }

        impl Page for $name {
            type Item = $item;
            fn into_parts(self) -> (Vec<$item>, Option<Links>) {
                (self.$field, self.links)
            }
        }
    };
}

page!(DropletPage, droplets, Droplet);
page!(VpcPage, vpcs, DoVpc);
page!(FirewallPage, firewalls, DoFirewall);
page!(DatabasePage, databases, DoDatabase);
page!(RecordPage, domain_records, DoRecord);

/// A droplet.
#[derive(Debug, Deserialize)]
pub(crate) struct Droplet {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub region: Option<Slugged>,
    #[serde(default)]
    pub size_slug: Option<String>,
    #[serde(default)]
    pub size: Option<Slugged>,
    #[serde(default)]
    pub networks: Option<Networks>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `{"droplet": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct DropletEnvelope {
    pub droplet: Droplet,
}

/// An object named by its `slug` (regions, sizes).
#[derive(Debug, Deserialize)]
pub(crate) struct Slugged {
    #[serde(default)]
    pub slug: Option<String>,
}

/// `networks` of a droplet; empty right after create.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Networks {
    #[serde(default)]
    pub v4: Vec<NetworkV4>,
}

/// One IPv4 address of a droplet.
#[derive(Debug, Deserialize)]
pub(crate) struct NetworkV4 {
    pub ip_address: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

impl Droplet {
    fn address(&self, kind: &str) -> Option<Ipv4Addr> {
        self.networks
            .as_ref()?
            .v4
            .iter()
            .filter(|n| n.kind == kind)
            .find_map(|n| n.ip_address.parse().ok())
    }

    /// The neutral machine.
    pub fn into_machine(self) -> Machine {
        let state = match self.status.as_str() {
            "new" => MachineState::Provisioning,
            "active" => MachineState::Running,
            "off" => MachineState::Stopped,
            "archive" => MachineState::Deleting,
            other => MachineState::Other(other.to_owned()),
        };
        let public_ipv4 = self.address("public");
        let private_ipv4 = self.address("private");
        let size = self
            .size_slug
            .clone()
            .or_else(|| self.size.as_ref().and_then(|s| s.slug.clone()))
            .unwrap_or_default();
        Machine {
            id: self.id.to_string(),
            name: self.name,
            region: self.region.and_then(|r| r.slug).unwrap_or_default(),
            size,
            state,
            public_ipv4,
            private_ipv4,
            marks: Marks::from_tags(&self.tags),
            tags: self.tags,
            created_at: self.created_at.as_deref().and_then(parse_time),
        }
    }
}

/// An RFC 3339 time.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A VPC.
#[derive(Debug, Deserialize)]
pub(crate) struct DoVpc {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub ip_range: Option<String>,
    /// The region's default VPC (which cannot be deleted).
    #[serde(default)]
    pub default: bool,
}

/// `{"vpc": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct VpcEnvelope {
    pub vpc: DoVpc,
}

/// `GET /vpcs/{id}/members`: what is in a VPC (droplets, databases, load balancers …), by URN.
#[derive(Debug, Deserialize)]
pub(crate) struct VpcMembers {
    #[serde(default)]
    pub members: Vec<VpcMember>,
}

/// One member of a VPC.
#[derive(Debug, Deserialize)]
pub(crate) struct VpcMember {
    #[serde(default)]
    pub urn: String,
}

impl From<DoVpc> for Vpc {
    fn from(v: DoVpc) -> Self {
        Vpc {
            cidr: v.ip_range.as_deref().and_then(|r| r.parse().ok()),
            id: v.id,
            name: v.name,
            region: v.region,
            subnet_id: None,
        }
    }
}

/// A Cloud Firewall. Rules are kept as JSON: a replace re-sends the outbound rules unchanged.
#[derive(Debug, Deserialize)]
pub(crate) struct DoFirewall {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub inbound_rules: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub outbound_rules: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub droplet_ids: Option<Vec<u64>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// `{"firewall": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct FirewallEnvelope {
    pub firewall: DoFirewall,
}

/// A database cluster.
#[derive(Debug, Deserialize)]
pub(crate) struct DoDatabase {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub engine: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub connection: Option<Connection>,
}

/// `{"database": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct DatabaseEnvelope {
    pub database: DoDatabase,
}

/// Where a database answers (the public connection).
#[derive(Debug, Deserialize)]
pub(crate) struct Connection {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
}

impl DoDatabase {
    /// The neutral database, with the allow-list read separately.
    pub fn into_database(self, allow_list: Vec<Ipv4Net>) -> ManagedDatabase {
        let (host, port) = match self.connection {
            Some(c) => (c.host.filter(|h| !h.is_empty()), c.port),
            None => (None, None),
        };
        ManagedDatabase {
            id: self.id,
            name: self.name,
            engine: self.engine,
            region: self.region,
            status: self.status,
            host,
            port,
            allow_list,
        }
    }
}

/// `{"rules": […]}` of a database firewall.
#[derive(Debug, Deserialize)]
pub(crate) struct DatabaseRules {
    #[serde(default)]
    pub rules: Vec<DatabaseRule>,
}

/// One trusted source.
#[derive(Debug, Deserialize)]
pub(crate) struct DatabaseRule {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// `{"domain": {"name": …}}`
#[derive(Debug, Deserialize)]
pub(crate) struct DomainEnvelope {
    pub domain: Domain,
}

/// A domain (zone).
#[derive(Debug, Deserialize)]
pub(crate) struct Domain {
    pub name: String,
}

/// A domain record; `name` is relative to the zone (`@` for the apex).
#[derive(Debug, Deserialize)]
pub(crate) struct DoRecord {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub data: String,
    #[serde(default)]
    pub ttl: Option<u32>,
}

/// `{"domain_record": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct RecordEnvelope {
    pub domain_record: DoRecord,
}

impl DoRecord {
    /// The neutral record, its name made fully qualified within `zone`.
    pub fn into_record(self, zone: &str) -> DnsRecord {
        DnsRecord {
            id: self.id.to_string(),
            name: flotilla_cloud::names::fqdn(&self.name, zone),
            kind: self.kind,
            content: self.data,
            ttl: self.ttl.unwrap_or(0),
            proxied: None,
            comment: None,
        }
    }
}
