//! Vultr's JSON, as far as Flotilla reads it, and its conversion to the neutral model.

use std::net::Ipv4Addr;

use chrono::{DateTime, NaiveDateTime, Utc};
use flotilla_cloud::{DnsRecord, Machine, MachineState, ManagedDatabase, Marks, Vpc};
use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::client::Page;

/// `meta` of a list answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub links: Option<MetaLinks>,
}

/// `meta.links`: cursors, `""` when there is no such page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MetaLinks {
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
            pub meta: Option<Meta>,
        }

        impl Page for $name {
            type Item = $item;
            fn into_parts(self) -> (Vec<$item>, Option<Meta>) {
                (self.$field, self.meta)
            }
        }
    };
}

page!(InstancePage, instances, Instance);
page!(VpcPage, vpcs, VultrVpc);
page!(FirewallGroupPage, firewall_groups, FirewallGroup);
page!(RulePage, firewall_rules, VultrRule);
page!(DatabasePage, databases, VultrDatabase);
page!(RecordPage, records, VultrRecord);

/// An instance.
#[derive(Debug, Deserialize)]
pub(crate) struct Instance {
    pub id: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub power_status: String,
    #[serde(default)]
    pub main_ip: Option<String>,
    #[serde(default)]
    pub internal_ip: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub firewall_group_id: Option<String>,
}

/// `{"instance": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct InstanceEnvelope {
    pub instance: Instance,
}

/// An assigned address: `""` and `0.0.0.0` (not assigned yet) are none.
fn assigned(ip: Option<&str>) -> Option<Ipv4Addr> {
    ip?.parse().ok().filter(|a: &Ipv4Addr| !a.is_unspecified())
}

impl Instance {
    /// The neutral machine.
    pub fn into_machine(self) -> Machine {
        let state = match (self.status.as_str(), self.power_status.as_str()) {
            ("pending", _) => MachineState::Provisioning,
            ("active", "running") => MachineState::Running,
            ("active", "stopped") => MachineState::Stopped,
            (status, "") => MachineState::Other(status.to_owned()),
            (status, power) => MachineState::Other(format!("{status}/{power}")),
        };
        let tags = self.tags.unwrap_or_default();
        Machine {
            public_ipv4: assigned(self.main_ip.as_deref()),
            private_ipv4: assigned(self.internal_ip.as_deref()),
            id: self.id,
            name: self.label,
            region: self.region,
            size: self.plan,
            state,
            marks: Marks::from_tags(&tags),
            tags,
            created_at: self.date_created.as_deref().and_then(parse_time),
        }
    }
}

/// `2020-10-10T01:56:20+00:00` (what the API answers) or `2013-12-19 14:45:41` (UTC; older answers).
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// A VPC; its name is its description.
#[derive(Debug, Deserialize)]
pub(crate) struct VultrVpc {
    pub id: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub v4_subnet: Option<String>,
    #[serde(default)]
    pub v4_subnet_mask: Option<u8>,
}

/// `{"vpc": …}` (the spec's example calls it `network`).
#[derive(Debug, Deserialize)]
pub(crate) struct VpcEnvelope {
    #[serde(alias = "network")]
    pub vpc: VultrVpc,
}

impl From<VultrVpc> for Vpc {
    fn from(v: VultrVpc) -> Self {
        let cidr = match (
            v.v4_subnet.as_deref().map(str::parse::<Ipv4Addr>),
            v.v4_subnet_mask,
        ) {
            (Some(Ok(addr)), Some(mask)) => Ipv4Net::new(addr, mask).ok(),
            _ => None,
        };
        Vpc {
            id: v.id,
            name: v.description,
            region: v.region,
            cidr,
            subnet_id: None,
        }
    }
}

/// A firewall group; its name is its description.
#[derive(Debug, Deserialize)]
pub(crate) struct FirewallGroup {
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub instance_count: Option<u64>,
}

/// `{"firewall_group": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct FirewallGroupEnvelope {
    pub firewall_group: FirewallGroup,
}

/// One firewall group rule: one protocol, port range and source subnet.
#[derive(Debug, Deserialize)]
pub(crate) struct VultrRule {
    pub id: u64,
    #[serde(default)]
    pub ip_type: Option<String>,
    /// Older name of `ip_type`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default)]
    pub subnet: String,
    #[serde(default)]
    pub subnet_size: u8,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// `{"firewall_rule": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct RuleEnvelope {
    pub firewall_rule: VultrRule,
}

/// A managed database.
#[derive(Debug, Deserialize)]
pub(crate) struct VultrDatabase {
    pub id: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub database_engine: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub public_host: Option<String>,
    /// Text in Vultr's answers (`"16751"`); a number is accepted too.
    #[serde(default)]
    pub port: Option<serde_json::Value>,
    #[serde(default)]
    pub trusted_ips: Option<Vec<String>>,
}

/// `{"database": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct DatabaseEnvelope {
    pub database: VultrDatabase,
}

impl From<VultrDatabase> for ManagedDatabase {
    fn from(d: VultrDatabase) -> Self {
        let port = match &d.port {
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            _ => None,
        };
        let host = d
            .public_host
            .filter(|h| !h.is_empty())
            .or(d.host)
            .filter(|h| !h.is_empty());
        ManagedDatabase {
            id: d.id,
            name: d.label,
            engine: d.database_engine,
            region: d.region,
            status: d.status,
            host,
            port,
            allow_list: d
                .trusted_ips
                .unwrap_or_default()
                .iter()
                .filter_map(|ip| crate::rules::parse_source(ip))
                .collect(),
        }
    }
}

/// `{"domain": {"domain": …}}`
#[derive(Debug, Deserialize)]
pub(crate) struct DomainEnvelope {
    pub domain: Domain,
}

/// A DNS domain.
#[derive(Debug, Deserialize)]
pub(crate) struct Domain {
    pub domain: String,
}

/// A record; `name` is relative to the domain (`""` for the apex).
#[derive(Debug, Deserialize)]
pub(crate) struct VultrRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub data: String,
    #[serde(default)]
    pub ttl: Option<u32>,
}

/// `{"record": …}`
#[derive(Debug, Deserialize)]
pub(crate) struct RecordEnvelope {
    pub record: VultrRecord,
}

impl VultrRecord {
    /// The neutral record, its name made fully qualified within `zone`.
    pub fn into_record(self, zone: &str) -> DnsRecord {
        DnsRecord {
            id: self.id,
            name: flotilla_cloud::names::fqdn(&self.name, zone),
            kind: self.kind,
            content: self.data,
            ttl: self.ttl.unwrap_or(0),
            proxied: None,
            comment: None,
        }
    }
}
