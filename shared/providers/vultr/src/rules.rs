//! Firewall group rules. A Vultr rule has one source subnet, so one Flotilla rule with several sources is
//! several Vultr rules; reading back groups them again by protocol, ports and note.

use std::net::Ipv4Addr;

use flotilla_cloud::{FirewallRule, Protocol};
use ipnet::Ipv4Net;
use serde_json::{Value, json};

use crate::wire::VultrRule;

/// One Vultr rule as Flotilla sees it, comparable with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSpec {
    pub protocol: Protocol,
    /// `None`: every port (and always for ICMP).
    pub ports: Option<(u16, u16)>,
    pub source: Ipv4Net,
    pub notes: String,
}

impl RuleSpec {
    /// What Vultr tells rules apart by: protocol, ports and source (two rules differing only in their
    /// notes are duplicates to it).
    pub fn key(&self) -> (Protocol, Option<(u16, u16)>, Ipv4Net) {
        (self.protocol, self.ports, self.source)
    }

    /// The body of `POST /firewalls/{id}/rules`.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "ip_type": "v4",
            "protocol": protocol_name(self.protocol),
            "subnet": self.source.network().to_string(),
            "subnet_size": self.source.prefix_len(),
            "source": "",
            "notes": self.notes,
        });
        if let (Some(port), Some(obj)) = (port_text(self.protocol, self.ports), body.as_object_mut()) {
            obj.insert("port".into(), Value::String(port));
        }
        body
    }
}

/// The Vultr rules for `rules`, one per source (ranges reduced to their network address), without
/// duplicates.
pub(crate) fn specs(rules: &[FirewallRule]) -> Vec<RuleSpec> {
    let mut out: Vec<RuleSpec> = Vec::new();
    for rule in rules {
        for source in &rule.sources {
            let spec = RuleSpec {
                protocol: rule.protocol,
                ports: if rule.protocol == Protocol::Icmp {
                    None
                } else {
                    rule.ports
                },
                source: source.trunc(),
                notes: rule.description.clone(),
            };
            if !out.iter().any(|s| s.key() == spec.key()) {
                out.push(spec);
            }
        }
    }
    out
}

/// A Vultr rule Flotilla can express: IPv4, a subnet source (not `cloudflare` or a load balancer), TCP,
/// UDP or ICMP. `None` for anything else.
pub(crate) fn read(rule: &VultrRule) -> Option<RuleSpec> {
    let ip_type = rule.ip_type.as_deref().or(rule.kind.as_deref()).unwrap_or("v4");
    if ip_type != "v4" || rule.source.as_deref().is_some_and(|s| !s.is_empty()) {
        return None;
    }
    let protocol = match rule.protocol.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        _ => return None,
    };
    let ports = match protocol {
        Protocol::Icmp => None,
        _ => parse_port(rule.port.as_deref().unwrap_or(""))?,
    };
    let subnet: Ipv4Addr = rule.subnet.parse().ok()?;
    Some(RuleSpec {
        protocol,
        ports,
        source: Ipv4Net::new(subnet, rule.subnet_size).ok()?.trunc(),
        notes: rule.notes.clone().unwrap_or_default(),
    })
}

/// Vultr rules grouped back into Flotilla rules (same protocol, ports and note), in first-seen order.
pub(crate) fn group(specs: impl IntoIterator<Item = RuleSpec>) -> Vec<FirewallRule> {
    let mut out: Vec<FirewallRule> = Vec::new();
    for spec in specs {
        let existing = out
            .iter_mut()
            .find(|r| r.protocol == spec.protocol && r.ports == spec.ports && r.description == spec.notes);
        match existing {
            Some(rule) => {
                if !rule.sources.contains(&spec.source) {
                    rule.sources.push(spec.source);
                }
            }
            None => out.push(FirewallRule {
                protocol: spec.protocol,
                ports: spec.ports,
                sources: vec![spec.source],
                description: spec.notes,
            }),
        }
    }
    out
}

/// `""` / `"0"` / `"1:65535"` → every port; `"22"`; `"8000:9000"`. `None` when unreadable.
fn parse_port(text: &str) -> Option<Option<(u16, u16)>> {
    let text = text.trim();
    if matches!(text, "" | "0" | "1:65535") {
        return Some(None);
    }
    match text.split_once(':') {
        Some((a, b)) => Some(Some((a.trim().parse().ok()?, b.trim().parse().ok()?))),
        None => {
            let p = text.parse().ok()?;
            Some(Some((p, p)))
        }
    }
}

/// `port` of a rule: none for ICMP, `"1:65535"` for every port, `"22"` or `"8000:9000"`.
fn port_text(protocol: Protocol, ports: Option<(u16, u16)>) -> Option<String> {
    match (protocol, ports) {
        (Protocol::Icmp, _) => None,
        (_, None) => Some("1:65535".into()),
        (_, Some((a, b))) if a == b => Some(a.to_string()),
        (_, Some((a, b))) => Some(format!("{a}:{b}")),
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
    }
}

/// An IPv4 address or range; IPv6 and anything else is skipped.
pub(crate) fn parse_source(text: &str) -> Option<Ipv4Net> {
    text.parse::<Ipv4Net>()
        .ok()
        .or_else(|| text.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rule(protocol: Protocol, ports: Option<(u16, u16)>, sources: &[&str], note: &str) -> FirewallRule {
        FirewallRule {
            protocol,
            ports,
            sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
            description: note.into(),
        }
    }

    fn wire(v: Value) -> VultrRule {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rules_split_per_source_and_group_back() {
        let rules = vec![
            rule(
                Protocol::Tcp,
                Some((22, 22)),
                &["203.0.113.4/32", "10.0.0.0/24"],
                "ssh",
            ),
            rule(Protocol::Tcp, Some((8000, 9000)), &["10.0.0.0/24"], "app"),
            rule(Protocol::Udp, None, &["10.0.0.0/24"], ""),
            rule(Protocol::Icmp, None, &["0.0.0.0/0"], "ping"),
        ];
        let specs = specs(&rules);
        assert_eq!(specs.len(), 5);
        let bodies: Vec<Value> = specs.iter().map(RuleSpec::to_json).collect();
        assert_eq!(bodies[0]["port"], "22");
        assert_eq!(bodies[0]["subnet"], "203.0.113.4");
        assert_eq!(bodies[0]["subnet_size"], 32);
        assert_eq!(bodies[2]["port"], "8000:9000");
        assert_eq!(bodies[3]["port"], "1:65535");
        assert!(bodies[4].get("port").is_none());
        let read_back: Vec<RuleSpec> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, mut b)| {
                b["id"] = json!(i);
                read(&wire(b)).unwrap()
            })
            .collect();
        assert_eq!(group(read_back), rules);
    }

    #[test]
    fn foreign_rules_are_not_read() {
        let cloudflare = json!({"id": 1, "ip_type": "v4", "protocol": "tcp", "port": "443",
            "subnet": "", "subnet_size": 0, "source": "cloudflare"});
        let v6 =
            json!({"id": 2, "type": "v6", "protocol": "tcp", "port": "22", "subnet": "::", "subnet_size": 0});
        let gre =
            json!({"id": 3, "ip_type": "v4", "protocol": "gre", "subnet": "1.2.3.4", "subnet_size": 32});
        for v in [cloudflare, v6, gre] {
            assert_eq!(read(&wire(v.clone())), None, "{v}");
        }
    }
}
