//! Cloud Firewall rules: Flotilla's inbound allow rules to and from DigitalOcean's JSON.

use flotilla_cloud::{FirewallRule, Protocol};
use ipnet::Ipv4Net;
use serde_json::{Value, json};

/// The JSON of inbound rules. A rule without sources allows nothing and is left out (DigitalOcean refuses
/// a rule without sources).
pub(crate) fn inbound_json(rules: &[FirewallRule]) -> Vec<Value> {
    rules
        .iter()
        .filter(|r| !r.sources.is_empty())
        .map(|r| {
            let addresses: Vec<String> = r.sources.iter().map(Ipv4Net::to_string).collect();
            json!({
                "protocol": protocol_name(r.protocol),
                "ports": ports_text(r),
                "sources": {"addresses": addresses},
            })
        })
        .collect()
}

/// Outbound is open: every TCP and UDP port and ICMP, to anywhere. `ports` is required on every rule;
/// `"0"` means every port, and is what ICMP carries (DigitalOcean's `firewall_rule_base`).
pub(crate) fn outbound_allow_all() -> Vec<Value> {
    let anywhere = json!({"addresses": ["0.0.0.0/0"]});
    vec![
        json!({"protocol": "tcp", "ports": ALL_PORTS, "destinations": anywhere}),
        json!({"protocol": "udp", "ports": ALL_PORTS, "destinations": anywhere}),
        json!({"protocol": "icmp", "ports": ALL_PORTS, "destinations": anywhere}),
    ]
}

/// Every port, as DigitalOcean's schema spells it (and what it answers for ICMP).
const ALL_PORTS: &str = "0";

/// Inbound rules read back: IPv4 address sources only (droplet, tag and load-balancer sources, and IPv6,
/// have no neutral form); a rule left without sources is dropped.
pub(crate) fn inbound_rules(rules: &[Value]) -> Vec<FirewallRule> {
    rules.iter().filter_map(inbound_rule).collect()
}

fn inbound_rule(rule: &Value) -> Option<FirewallRule> {
    let protocol = match rule.get("protocol")?.as_str()?.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        _ => return None,
    };
    let ports = match protocol {
        Protocol::Icmp => None,
        _ => parse_ports(rule.get("ports").and_then(Value::as_str).unwrap_or(""))?,
    };
    let sources: Vec<Ipv4Net> = rule
        .get("sources")
        .and_then(|s| s.get("addresses"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(parse_source)
                .collect()
        })
        .unwrap_or_default();
    if sources.is_empty() {
        return None;
    }
    Some(FirewallRule {
        protocol,
        ports,
        sources,
        description: String::new(),
    })
}

/// `"all"` / `"0"` / `""` / `"1-65535"` → all ports; `"22"`; `"8000-9000"`. `None` when unreadable.
fn parse_ports(text: &str) -> Option<Option<(u16, u16)>> {
    let text = text.trim();
    if matches!(text, "" | "0" | "all" | "1-65535") {
        return Some(None);
    }
    match text.split_once('-') {
        Some((a, b)) => Some(Some((a.trim().parse().ok()?, b.trim().parse().ok()?))),
        None => {
            let p = text.parse().ok()?;
            Some(Some((p, p)))
        }
    }
}

/// An IPv4 address or range; IPv6 and anything else is skipped.
pub(crate) fn parse_source(text: &str) -> Option<Ipv4Net> {
    text.parse::<Ipv4Net>()
        .ok()
        .or_else(|| text.parse::<std::net::Ipv4Addr>().ok().map(Ipv4Net::from))
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
    }
}

/// `ports` for a rule (always sent: the schema requires it): `"0"` for ICMP and for every port, `"22"` or
/// `"8000-9000"`.
fn ports_text(rule: &FirewallRule) -> String {
    match (rule.protocol, rule.ports) {
        (Protocol::Icmp, _) | (_, None) => ALL_PORTS.into(),
        (_, Some((a, b))) if a == b => a.to_string(),
        (_, Some((a, b))) => format!("{a}-{b}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rule(protocol: Protocol, ports: Option<(u16, u16)>, sources: &[&str]) -> FirewallRule {
        FirewallRule {
            protocol,
            ports,
            sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
            description: String::new(),
        }
    }

    #[test]
    fn rules_round_trip() {
        let rules = vec![
            rule(Protocol::Tcp, Some((22, 22)), &["203.0.113.4/32"]),
            rule(
                Protocol::Tcp,
                Some((8000, 9000)),
                &["10.0.0.0/24", "198.51.100.0/24"],
            ),
            rule(Protocol::Udp, None, &["0.0.0.0/0"]),
            rule(Protocol::Icmp, None, &["0.0.0.0/0"]),
        ];
        let json = inbound_json(&rules);
        assert_eq!(json[0]["ports"], "22");
        assert_eq!(json[1]["ports"], "8000-9000");
        assert_eq!(json[2]["ports"], "0", "every port is \"0\"");
        assert_eq!(json[3]["ports"], "0", "ICMP carries \"0\"");
        assert!(
            outbound_allow_all().iter().all(|r| r["ports"] == "0"),
            "every outbound rule has its ports"
        );
        assert_eq!(inbound_rules(&json), rules);
    }

    #[test]
    fn sourceless_and_foreign_rules_are_dropped() {
        assert!(inbound_json(&[rule(Protocol::Tcp, None, &[])]).is_empty());
        let foreign = vec![
            json!({"protocol": "tcp", "ports": "80", "sources": {"load_balancer_uids": ["x"]}}),
            json!({"protocol": "tcp", "ports": "0", "sources": {"addresses": ["::/0", "1.2.3.4"]}}),
        ];
        assert_eq!(
            inbound_rules(&foreign),
            vec![rule(Protocol::Tcp, None, &["1.2.3.4/32"])]
        );
    }
}
