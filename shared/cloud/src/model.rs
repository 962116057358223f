//! Provider-neutral resources and requests.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;

use crate::Marks;

/// A provider Flotilla talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    /// Linode (Akamai).
    Linode,
    /// DigitalOcean.
    DigitalOcean,
    /// Vultr.
    Vultr,
    /// Exoscale.
    Exoscale,
    /// Cloudflare (DNS only).
    Cloudflare,
}

impl ProviderKind {
    /// The lowercase name (`linode`, `digitalocean` …).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Linode => "linode",
            ProviderKind::DigitalOcean => "digitalocean",
            ProviderKind::Vultr => "vultr",
            ProviderKind::Exoscale => "exoscale",
            ProviderKind::Cloudflare => "cloudflare",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<flotilla_spec::CloudProvider> for ProviderKind {
    fn from(p: flotilla_spec::CloudProvider) -> Self {
        match p {
            flotilla_spec::CloudProvider::Linode => ProviderKind::Linode,
            flotilla_spec::CloudProvider::DigitalOcean => ProviderKind::DigitalOcean,
            flotilla_spec::CloudProvider::Vultr => ProviderKind::Vultr,
            flotilla_spec::CloudProvider::Exoscale => ProviderKind::Exoscale,
        }
    }
}

/// Where a machine is in its life, in provider-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineState {
    /// Being created or booting (Linode provisioning/booting, DigitalOcean new, Vultr pending, Exoscale
    /// starting).
    Provisioning,
    /// Up.
    Running,
    /// Powered off or stopping.
    Stopped,
    /// Being destroyed.
    Deleting,
    /// A state we do not map, as the provider spells it.
    Other(String),
}

/// A machine as a provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The provider's id (Linode and DigitalOcean integers as text, Vultr and Exoscale UUIDs).
    pub id: String,
    /// Its name or label.
    pub name: String,
    /// Provider region id.
    pub region: String,
    /// Size / plan / type id.
    pub size: String,
    /// State.
    pub state: MachineState,
    /// Public IPv4 address, once assigned (DigitalOcean and Vultr report none right after create).
    pub public_ipv4: Option<Ipv4Addr>,
    /// Private (VPC) IPv4 address, once assigned.
    pub private_ipv4: Option<Ipv4Addr>,
    /// Our marks, if it carries them.
    pub marks: Option<Marks>,
    /// Tags (or labels as `key:value`) as the provider holds them.
    pub tags: Vec<String>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
}

/// What to create. Its `Debug` leaves out the user data, which often carries credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct MachineRequest {
    /// Name / label (unique within the deployment).
    pub name: String,
    /// Provider region id.
    pub region: String,
    /// Size / plan / type id.
    pub size: String,
    /// Image / template / OS id as the provider names it.
    pub image: String,
    /// VPC (or private network) to attach, by provider id.
    pub vpc_id: Option<String>,
    /// Subnet within the VPC, where the provider has subnets (Linode).
    pub subnet_id: Option<String>,
    /// Native firewall to put it behind at creation, where the provider allows it.
    pub firewall_id: Option<String>,
    /// SSH public keys (provider key ids or key text, as the provider takes them).
    pub ssh_keys: Vec<String>,
    /// cloud-init user data.
    pub user_data: Option<String>,
    /// Our marks; always set.
    pub marks: Marks,
}

impl std::fmt::Debug for MachineRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineRequest")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("size", &self.size)
            .field("image", &self.image)
            .field("vpc_id", &self.vpc_id)
            .field("subnet_id", &self.subnet_id)
            .field("firewall_id", &self.firewall_id)
            .field("ssh_keys", &self.ssh_keys.len())
            .field("user_data", &self.user_data.as_ref().map(|_| "<redacted>"))
            .field("marks", &self.marks)
            .finish()
    }
}

/// A private network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    /// Provider id.
    pub id: String,
    /// Name / label / description.
    pub name: String,
    /// Provider region id.
    pub region: String,
    /// Its IPv4 range, when the provider reports one.
    pub cidr: Option<Ipv4Net>,
    /// The subnet machines attach to, where the provider has subnets (Linode).
    pub subnet_id: Option<String>,
}

/// What VPC to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcRequest {
    /// Name / label.
    pub name: String,
    /// Provider region id.
    pub region: String,
    /// IPv4 range.
    pub cidr: Ipv4Net,
}

/// Transport protocol of a firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (no ports).
    Icmp,
}

/// An inbound allow rule (everything not allowed is dropped; outbound is open).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FirewallRule {
    /// Protocol.
    pub protocol: Protocol,
    /// First and last port (inclusive); `None` for all ports or ICMP.
    pub ports: Option<(u16, u16)>,
    /// Source ranges.
    pub sources: Vec<Ipv4Net>,
    /// Note shown in the provider's console.
    pub description: String,
}

/// A provider-native firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    /// Provider id.
    pub id: String,
    /// Name / label / description.
    pub name: String,
    /// Inbound rules.
    pub rules: Vec<FirewallRule>,
    /// Ids of the machines it applies to.
    pub machine_ids: Vec<String>,
}

/// A managed database cluster (DBaaS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedDatabase {
    /// Provider id (Exoscale: the service name).
    pub id: String,
    /// Name / label.
    pub name: String,
    /// Engine (`mysql`, `pg` …).
    pub engine: String,
    /// Provider region id.
    pub region: String,
    /// Status as the provider spells it; [`ManagedDatabase::is_ready`] interprets it.
    pub status: String,
    /// Public host name.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Who may connect.
    pub allow_list: Vec<Ipv4Net>,
}

impl ManagedDatabase {
    /// Whether it is up and accepts allow-list changes.
    pub fn is_ready(&self) -> bool {
        matches!(self.status.as_str(), "active" | "online" | "running" | "Running")
    }
}

/// A managed database cluster to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRequest {
    /// Name / label, by which it is found again ([`crate::ManagedDatabases::find_database`]).
    pub name: String,
    /// `<engine>[/<version>]` as the toolkit's templates give it: `mysql/8`, `postgresql/16`, `mysql`
    /// (Exoscale has no version). Each adapter maps it to its own engine and version fields.
    pub engine: String,
    /// Provider region id.
    pub region: String,
    /// Provider plan of the cluster's nodes.
    pub size: String,
    /// Number of nodes.
    pub nodes: u32,
    /// VPC the cluster joins, where the provider supports it.
    pub vpc_id: Option<String>,
    /// Subnet of that VPC (Linode).
    pub subnet_id: Option<String>,
    /// Initial allow-list.
    pub allow_list: Vec<Ipv4Net>,
}

/// An engine of managed database that Flotilla creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseEngine {
    /// MySQL.
    MySql,
    /// PostgreSQL.
    PostgreSql,
}

/// The engine and version of `<engine>[/<version>]` as [`DatabaseRequest::engine`] holds it: `mysql/8` is
/// `(MySql, Some("8"))`, `postgresql/16` (or `postgres`, `pg`) is `(PostgreSql, Some("16"))`, `mysql` and
/// `mysql/` have no version. An engine Flotilla does not create is [`crate::CloudError::Invalid`] on
/// `engine`; so is a missing version when `provider` needs one (`version_required`).
pub fn database_engine(
    provider: ProviderKind,
    engine: &str,
    version_required: bool,
) -> crate::Result<(DatabaseEngine, Option<&str>)> {
    let invalid = |message: String| crate::CloudError::Invalid {
        provider,
        field: Some("engine".into()),
        message,
    };
    let (name, version) = match engine.split_once('/') {
        Some((name, version)) => (name, Some(version.trim()).filter(|v| !v.is_empty())),
        None => (engine, None),
    };
    let kind = match name.trim().to_ascii_lowercase().as_str() {
        "mysql" => DatabaseEngine::MySql,
        "postgresql" | "postgres" | "pg" => DatabaseEngine::PostgreSql,
        _ => {
            return Err(invalid(format!(
                "{name:?} is not an engine Flotilla creates on {provider} (mysql, postgresql)"
            )));
        }
    };
    if version_required && version.is_none() {
        return Err(invalid(format!(
            "{engine:?} has no version; {provider} needs <engine>/<version>, e.g. mysql/8"
        )));
    }
    Ok((kind, version))
}

/// A DNS zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Provider id (Cloudflare zone id, Linode domain id, or the domain name where that is the id).
    pub id: String,
    /// The domain, e.g. `codetesters.uk`.
    pub name: String,
}

/// A DNS record as the provider holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// Provider id.
    pub id: String,
    /// Type: `A`, `AAAA`, `CNAME`, `TXT` …
    pub kind: String,
    /// Fully qualified name, e.g. `www.codetesters.uk`.
    pub name: String,
    /// Content (the address of an A record).
    pub content: String,
    /// TTL in seconds (Cloudflare: 1 = automatic).
    pub ttl: u32,
    /// Cloudflare proxying, where the provider has it.
    pub proxied: Option<bool>,
    /// Comment, where the provider has them (Flotilla marks its records there).
    pub comment: Option<String>,
}

/// A record to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDnsRecord {
    /// Type.
    pub kind: String,
    /// Fully qualified name.
    pub name: String,
    /// Content.
    pub content: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Cloudflare proxying.
    pub proxied: Option<bool>,
    /// Comment.
    pub comment: Option<String>,
}

/// Several record changes, applied deletes → updates → creates (Cloudflare's batch order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsBatch {
    /// Ids of records to delete.
    pub deletes: Vec<String>,
    /// Records to update in place (matched by id).
    pub updates: Vec<DnsRecord>,
    /// Records to create.
    pub creates: Vec<NewDnsRecord>,
}

/// One change of a [`DnsBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsChange {
    /// Delete the record with this id.
    Delete(String),
    /// Update a record in place.
    Update(DnsRecord),
    /// Create a record.
    Create(NewDnsRecord),
}

impl std::fmt::Display for DnsChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsChange::Delete(id) => write!(f, "delete record {id}"),
            DnsChange::Update(r) => write!(f, "update {} {} {} ({})", r.kind, r.name, r.content, r.id),
            DnsChange::Create(r) => write!(f, "create {} {} {}", r.kind, r.name, r.content),
        }
    }
}

/// What [`crate::Dns::apply_batch`] did when every change was tried: the changes the provider refused,
/// each with its error (every other change was applied).
#[derive(Debug, Default)]
pub struct BatchReport {
    /// The refused changes.
    pub refused: Vec<(DnsChange, crate::CloudError)>,
    /// API calls made (batch calls and single-change calls).
    pub calls: u32,
}

impl DnsBatch {
    /// The changes in the order they are applied: deletes, updates, creates.
    pub fn changes(&self) -> impl Iterator<Item = DnsChange> + '_ {
        self.deletes
            .iter()
            .cloned()
            .map(DnsChange::Delete)
            .chain(self.updates.iter().cloned().map(DnsChange::Update))
            .chain(self.creates.iter().cloned().map(DnsChange::Create))
    }

    /// The number of changes.
    pub fn len(&self) -> usize {
        self.deletes.len() + self.updates.len() + self.creates.len()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.deletes.is_empty() && self.updates.is_empty() && self.creates.is_empty()
    }
}
