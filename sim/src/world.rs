//! The simulated clouds' resources: one account per provider, kept in memory and optionally persisted
//! as JSON. Provider-specific detail that no other provider shares lives in `extra`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Provider;

/// Everything the simulated clouds hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct World {
    /// Last integer id handed out, per provider.
    #[serde(default)]
    pub last_id: BTreeMap<Provider, u64>,
    /// Where the public IP search resumes.
    #[serde(default)]
    pub ip_cursor: u32,
    #[serde(default)]
    pub machines: Vec<Machine>,
    #[serde(default)]
    pub vpcs: Vec<Vpc>,
    #[serde(default)]
    pub firewalls: Vec<Firewall>,
    #[serde(default)]
    pub databases: Vec<Database>,
    #[serde(default)]
    pub zones: Vec<Zone>,
    /// Exoscale operations and DigitalOcean actions.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

/// A machine (Linode, droplet, Vultr instance, Exoscale instance).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub provider: Provider,
    pub id: String,
    pub label: String,
    pub region: String,
    pub size: String,
    pub image: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Exoscale labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub public_ip: Ipv4Addr,
    /// Linode's legacy private address (192.168.128.0/17).
    #[serde(default)]
    pub private_ipv4: Option<Ipv4Addr>,
    /// VPC / private network attachments.
    #[serde(default)]
    pub networks: Vec<Attachment>,
    /// Firewall / firewall group / security group ids.
    #[serde(default)]
    pub firewalls: Vec<String>,
    pub created: DateTime<Utc>,
    /// When it has booted.
    pub ready_at: DateTime<Utc>,
    /// Powered off (Linode shutdown, Exoscale stop).
    #[serde(default)]
    pub stopped: bool,
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// A machine's place in a VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attachment {
    pub vpc_id: String,
    pub subnet_id: Option<String>,
    pub ip: Ipv4Addr,
    /// Linode interface id / Exoscale MAC address and the like.
    #[serde(default)]
    pub interface_id: Option<String>,
}

impl Machine {
    /// Whether it has booted.
    pub fn booted(&self, now: DateTime<Utc>) -> bool {
        now >= self.ready_at
    }

    /// Its first private (VPC) address.
    pub fn private_ip(&self) -> Option<Ipv4Addr> {
        self.networks
            .iter()
            .map(|a| a.ip)
            .find(|ip| !ip.is_unspecified())
            .or(self.private_ipv4)
    }

    /// A text field of `extra`.
    pub fn extra_str(&self, key: &str) -> Option<&str> {
        self.extra.get(key).and_then(Value::as_str)
    }
}

/// A VPC (Linode VPC, DigitalOcean VPC, Vultr VPC, Exoscale private network).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Vpc {
    pub provider: Provider,
    pub id: String,
    pub label: String,
    pub region: String,
    #[serde(default)]
    pub description: String,
    /// Its range (Linode: none; subnets carry ranges).
    pub cidr: Option<Ipv4Net>,
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// A Linode VPC subnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Subnet {
    pub id: String,
    pub label: String,
    pub cidr: Ipv4Net,
    pub created: DateTime<Utc>,
}

/// A firewall (Linode Cloud Firewall, DigitalOcean firewall, Vultr firewall group, Exoscale security group).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Firewall {
    pub provider: Provider,
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Rules in the provider's own representation.
    pub rules: Value,
    /// Machines it applies to, with the device id where the provider has one (Linode).
    #[serde(default)]
    pub devices: Vec<Device>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// A machine a firewall applies to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Device {
    pub id: String,
    pub machine_id: String,
    pub created: DateTime<Utc>,
}

/// A managed database cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Database {
    pub provider: Provider,
    pub id: String,
    pub label: String,
    pub engine: String,
    pub version: String,
    pub region: String,
    pub size: String,
    /// Allowed sources as the provider stores them (CIDRs; DigitalOcean: `type:value`).
    #[serde(default)]
    pub allow_list: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created: DateTime<Utc>,
    pub ready_at: DateTime<Utc>,
    #[serde(default)]
    pub extra: Map<String, Value>,
}

impl Database {
    pub fn ready(&self, now: DateTime<Utc>) -> bool {
        now >= self.ready_at
    }
}

/// A DNS zone (domain).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Zone {
    pub provider: Provider,
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub records: Vec<Record>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// A DNS record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    pub kind: String,
    /// As the provider spells it (Cloudflare: FQDN; the others: relative to the zone).
    pub name: String,
    pub content: String,
    pub ttl: u32,
    #[serde(default)]
    pub proxied: Option<bool>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub priority: Option<u32>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

/// An Exoscale operation or a DigitalOcean action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Operation {
    pub provider: Provider,
    pub id: String,
    /// Exoscale zone.
    #[serde(default)]
    pub zone: String,
    /// What it acts on.
    pub reference_id: String,
    /// `create-instance`, `delete-instance`, …
    pub command: String,
    /// Kind of the referenced resource (`instance`, `security-group` …).
    pub reference_kind: String,
    pub created: DateTime<Utc>,
    pub ready_at: DateTime<Utc>,
}

impl World {
    /// The next integer id of `provider` (Linode and DigitalOcean ids, record ids …).
    pub fn next_id(&mut self, provider: Provider) -> u64 {
        let base = match provider {
            Provider::Linode => 60_000_000,
            Provider::DigitalOcean => 500_000_000,
            _ => 1,
        };
        let id = self.last_id.entry(provider).or_insert(base);
        *id += 1;
        *id
    }

    pub fn machine(&self, provider: Provider, id: &str) -> Option<&Machine> {
        self.machines
            .iter()
            .find(|m| m.provider == provider && m.id == id)
    }

    pub fn machine_mut(&mut self, provider: Provider, id: &str) -> Option<&mut Machine> {
        self.machines
            .iter_mut()
            .find(|m| m.provider == provider && m.id == id)
    }

    /// Removes a machine and every reference to it; returns it.
    pub fn remove_machine(&mut self, provider: Provider, id: &str) -> Option<Machine> {
        let pos = self
            .machines
            .iter()
            .position(|m| m.provider == provider && m.id == id)?;
        let machine = self.machines.remove(pos);
        for fw in self.firewalls.iter_mut().filter(|f| f.provider == provider) {
            fw.devices.retain(|d| d.machine_id != id);
        }
        Some(machine)
    }

    pub fn vpc(&self, provider: Provider, id: &str) -> Option<&Vpc> {
        self.vpcs.iter().find(|v| v.provider == provider && v.id == id)
    }

    pub fn vpc_mut(&mut self, provider: Provider, id: &str) -> Option<&mut Vpc> {
        self.vpcs
            .iter_mut()
            .find(|v| v.provider == provider && v.id == id)
    }

    pub fn firewall(&self, provider: Provider, id: &str) -> Option<&Firewall> {
        self.firewalls
            .iter()
            .find(|f| f.provider == provider && f.id == id)
    }

    pub fn firewall_mut(&mut self, provider: Provider, id: &str) -> Option<&mut Firewall> {
        self.firewalls
            .iter_mut()
            .find(|f| f.provider == provider && f.id == id)
    }

    pub fn database(&self, provider: Provider, id: &str) -> Option<&Database> {
        self.databases
            .iter()
            .find(|d| d.provider == provider && d.id == id)
    }

    pub fn database_mut(&mut self, provider: Provider, id: &str) -> Option<&mut Database> {
        self.databases
            .iter_mut()
            .find(|d| d.provider == provider && d.id == id)
    }

    pub fn zone(&self, provider: Provider, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.provider == provider && z.id == id)
    }

    pub fn zone_mut(&mut self, provider: Provider, id: &str) -> Option<&mut Zone> {
        self.zones
            .iter_mut()
            .find(|z| z.provider == provider && z.id == id)
    }

    /// The lowest free host address of `range` (from its third address: the first is the network and
    /// the second the gateway) that no machine of `provider` in `vpc_id` holds.
    pub fn free_vpc_ip(&self, provider: Provider, vpc_id: &str, range: Ipv4Net) -> Option<Ipv4Addr> {
        let used: Vec<Ipv4Addr> = self
            .machines
            .iter()
            .filter(|m| m.provider == provider)
            .flat_map(|m| m.networks.iter())
            .filter(|a| a.vpc_id == vpc_id)
            .map(|a| a.ip)
            .collect();
        range
            .hosts()
            .skip(1)
            .find(|ip| !used.contains(ip) && *ip != range.broadcast())
    }

    /// Records an operation (or action), keeping the newest 10 000.
    pub fn push_operation(&mut self, op: Operation) {
        self.operations.push(op);
        let excess = self.operations.len().saturating_sub(10_000);
        if excess > 0 {
            self.operations.drain(..excess);
        }
    }

    /// A private range of `prefix` for a new VPC of `provider` that overlaps none of its others:
    /// `preferred` when free, else the first free one in 10.0.0.0/8.
    pub fn free_range(&self, provider: Provider, prefix: u8, preferred: Option<Ipv4Net>) -> Option<Ipv4Net> {
        let free = |c: &Ipv4Net| self.range_free(provider, *c);
        if let Some(p) = preferred.filter(free) {
            return Some(p);
        }
        let step = 1u32.checked_shl(32 - u32::from(prefix.clamp(8, 32))).unwrap_or(1);
        let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
        (0..(1u32 << 24) / step)
            .filter_map(|i| Ipv4Net::new(Ipv4Addr::from(base + i * step), prefix).ok())
            .find(free)
    }

    /// Whether `range` overlaps none of `provider`'s VPCs.
    pub fn range_free(&self, provider: Provider, range: Ipv4Net) -> bool {
        !self
            .vpcs
            .iter()
            .filter(|v| v.provider == provider)
            .filter_map(|v| v.cidr)
            .any(|t| t.contains(&range.network()) || range.contains(&t.network()))
    }

    /// Whether some machine holds `ip` as its public address.
    pub fn public_ip_taken(&self, ip: Ipv4Addr) -> bool {
        self.machines.iter().any(|m| m.public_ip == ip)
    }
}

/// A fresh UUID as text.
pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh 32-hex-digit id (Cloudflare's style).
pub(crate) fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
