//! [`Network`] on Linode VPCs and Cloud Firewalls.
//!
//! VPCs are created with one subnet spanning the requested range; [`Vpc::subnet_id`] is that subnet (Linode
//! attaches machines to subnets). Linode VPCs carry no tags, so they are found by label and region only.
//!
//! Firewalls drop all inbound traffic but what their rules accept and let all outbound traffic out. Each
//! [`FirewallRule`] becomes one Linode rule (`ports` `"443"` or `"8000-9000"`, absent for all ports); a rule
//! without sources allows nothing and is left out (Linode refuses rules without addresses). Read back, a
//! Linode rule with a port list (`"22,443"`) becomes one [`FirewallRule`] per entry; DROP rules and IPv6
//! sources are not represented. Linode allows at most 25 inbound rules per firewall.

use async_trait::async_trait;
use flotilla_cloud::{CloudError, Firewall, FirewallRule, Marks, Network, Protocol, Result, Vpc, VpcRequest};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{LinodeCloud, numeric_id};
use crate::wire;

const FIREWALLS: &str = "networking/firewalls";

/// Label of the one subnet of a VPC we create.
const SUBNET_LABEL: &str = "flotilla";

/// Longest rule description Linode keeps.
const MAX_DESCRIPTION: usize = 100;

#[async_trait]
impl Network for LinodeCloud {
    async fn find_vpc(&self, region: &str, name: &str) -> Result<Option<Vpc>> {
        let vpcs: Vec<wire::Vpc> = self.list_all("vpcs", None).await?;
        Ok(vpcs
            .into_iter()
            .find(|v| v.label == name && v.region == region)
            .map(to_vpc))
    }

    async fn create_vpc(&self, request: &VpcRequest) -> Result<Vpc> {
        let body = json!({
            "label": request.name,
            "region": request.region,
            "subnets": [{ "label": SUBNET_LABEL, "ipv4": request.cidr.to_string() }],
        });
        match self.send::<wire::Vpc>(Method::POST, "vpcs", &body).await {
            Ok(vpc) => Ok(to_vpc(vpc)),
            // Linode refuses a label in use as an invalid request: a conflict when that VPC is here, in
            // this region (created meanwhile); as it stands otherwise (the label is taken in another region).
            Err(e) => Err(e
                .conflict_if_found(self.find_vpc(&request.region, &request.name), |message| {
                    format!(
                        "a VPC labelled {:?} exists already in {}: {message}",
                        request.name, request.region
                    )
                })
                .await),
        }
    }

    /// `DELETE /vpcs/{id}`. Linode refuses a VPC still in use (Linodes on its subnets, a database on its
    /// private network) as a 400 with the reason; the request has no body to be invalid, so that refusal is
    /// a [`CloudError::Conflict`] carrying Linode's reason. A 400 "busy" stays retryable.
    async fn delete_vpc(&self, id: &str) -> Result<()> {
        let id = numeric_id("id", id)?;
        // Not `api.delete`: a VPC already gone is an error here, as the trait says.
        self.api
            .request(Method::DELETE, &format!("vpcs/{id}"), &[], None, &[])
            .await
            .map(drop)
            .map_err(|e| match e {
                CloudError::Invalid {
                    provider, message, ..
                } => CloudError::Conflict { provider, message },
                other => other,
            })
    }

    async fn find_firewall(&self, name: &str) -> Result<Option<Firewall>> {
        let firewalls: Vec<wire::Firewall> = self.list_all(FIREWALLS, None).await?;
        Ok(firewalls.into_iter().find(|f| f.label == name).map(to_firewall))
    }

    /// One listing for all (each firewall comes with its rules and devices).
    async fn find_firewalls(&self, names: &[String]) -> Result<Vec<Option<Firewall>>> {
        let firewalls: Vec<wire::Firewall> = self.list_all(FIREWALLS, None).await?;
        let all: Vec<Firewall> = firewalls.into_iter().map(to_firewall).collect();
        Ok(names
            .iter()
            .map(|name| all.iter().find(|f| &f.name == name).cloned())
            .collect())
    }

    async fn create_firewall(&self, name: &str, rules: &[FirewallRule], marks: &Marks) -> Result<Firewall> {
        let body = json!({
            "label": name,
            "tags": marks.to_tags(),
            "rules": rule_set(rules),
        });
        let firewall: wire::Firewall = self.send(Method::POST, FIREWALLS, &body).await?;
        Ok(to_firewall(firewall))
    }

    async fn replace_firewall_rules(&self, firewall_id: &str, rules: &[FirewallRule]) -> Result<()> {
        let id = numeric_id("firewall_id", firewall_id)?;
        self.call(Method::PUT, &format!("{FIREWALLS}/{id}/rules"), &rule_set(rules))
            .await
    }

    async fn attach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()> {
        let id = numeric_id("firewall_id", firewall_id)?;
        let machine = numeric_id("machine_id", machine_id)?;
        let body = json!({ "id": machine, "type": "linode" });
        match self
            .call(Method::POST, &format!("{FIREWALLS}/{id}/devices"), &body)
            .await
        {
            Ok(()) => Ok(()),
            // Linode refuses a second assignment; if the machine is there, that is what was asked.
            Err(e) if !e.is_retryable() && !e.is_not_found() => {
                let attached = self.devices(id).await.unwrap_or_default();
                if attached.iter().any(|d| d.entity.linode_id() == Some(machine)) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn detach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()> {
        let id = numeric_id("firewall_id", firewall_id)?;
        let machine = numeric_id("machine_id", machine_id)?;
        let devices = match self.devices(id).await {
            Ok(d) => d,
            // No firewall, so it is applied to nothing.
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        for device in devices.iter().filter(|d| d.entity.linode_id() == Some(machine)) {
            self.api
                .delete(&format!("{FIREWALLS}/{id}/devices/{}", device.id))
                .await?;
        }
        Ok(())
    }

    /// `DELETE /networking/firewalls/{id}`: Linode removes its device assignments with it.
    async fn delete_firewall(&self, firewall_id: &str) -> Result<()> {
        let id = numeric_id("firewall_id", firewall_id)?;
        self.api.delete(&format!("{FIREWALLS}/{id}")).await
    }
}

impl LinodeCloud {
    /// What a firewall applies to, all pages.
    async fn devices(&self, firewall: u64) -> Result<Vec<wire::Device>> {
        self.list_all(&format!("{FIREWALLS}/{firewall}/devices"), None)
            .await
    }
}

pub(crate) fn to_vpc(vpc: wire::Vpc) -> Vpc {
    let subnet = vpc.subnets.first();
    Vpc {
        id: vpc.id.to_string(),
        name: vpc.label,
        region: vpc.region,
        cidr: subnet
            .and_then(|s| s.ipv4.as_deref())
            .and_then(|c| c.parse().ok()),
        subnet_id: subnet.map(|s| s.id.to_string()),
    }
}

pub(crate) fn to_firewall(firewall: wire::Firewall) -> Firewall {
    let mut machine_ids: Vec<String> = Vec::new();
    for id in firewall.entities.iter().filter_map(wire::Entity::linode_id) {
        let id = id.to_string();
        if !machine_ids.contains(&id) {
            machine_ids.push(id);
        }
    }
    Firewall {
        id: firewall.id.to_string(),
        name: firewall.label,
        rules: firewall.rules.inbound.iter().flat_map(from_rule).collect(),
        machine_ids,
    }
}

/// The rule set body: inbound DROP but `rules`, outbound ACCEPT.
pub(crate) fn rule_set(rules: &[FirewallRule]) -> Value {
    let inbound: Vec<Value> = rules
        .iter()
        .filter(|r| !r.sources.is_empty())
        .map(to_rule)
        .collect();
    json!({
        "inbound_policy": "DROP",
        "inbound": inbound,
        "outbound_policy": "ACCEPT",
        "outbound": [],
    })
}

fn to_rule(rule: &FirewallRule) -> Value {
    let protocol = match rule.protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Icmp => "ICMP",
    };
    let ports = match (rule.protocol, rule.ports) {
        (Protocol::Icmp, _) | (_, None) => None,
        (_, Some((first, last))) if first == last => Some(first.to_string()),
        (_, Some((first, last))) => Some(format!("{first}-{last}")),
    };
    let label = format!(
        "accept-{}-{}",
        protocol.to_ascii_lowercase(),
        ports.as_deref().unwrap_or("all")
    );
    let mut value = json!({
        "action": "ACCEPT",
        "protocol": protocol,
        "addresses": { "ipv4": rule.sources.iter().map(ToString::to_string).collect::<Vec<_>>() },
        "label": label,
        "description": shorten(&rule.description, MAX_DESCRIPTION),
    });
    if let Some(ports) = ports {
        value["ports"] = json!(ports);
    }
    value
}

/// A Linode ACCEPT rule as our rules, one per port entry; DROP and non-TCP/UDP/ICMP rules are not ours.
fn from_rule(rule: &wire::Rule) -> Vec<FirewallRule> {
    let protocol = match rule.protocol.to_ascii_uppercase().as_str() {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "ICMP" => Protocol::Icmp,
        _ => return Vec::new(),
    };
    if !rule.action.eq_ignore_ascii_case("ACCEPT") {
        return Vec::new();
    }
    let sources: Vec<Ipv4Net> = rule.addresses.ipv4.iter().filter_map(|a| parse_net(a)).collect();
    let description = rule
        .description
        .clone()
        .or_else(|| rule.label.clone())
        .unwrap_or_default();
    let ports: Vec<Option<(u16, u16)>> = match rule.ports.as_deref().map(str::trim) {
        None | Some("") => vec![None],
        Some(_) if protocol == Protocol::Icmp => vec![None],
        Some(list) => list.split(',').filter_map(parse_ports).map(Some).collect(),
    };
    ports
        .into_iter()
        .map(|ports| FirewallRule {
            protocol,
            ports,
            sources: sources.clone(),
            description: description.clone(),
        })
        .collect()
}

/// `"22"` or `"8000-9000"`.
fn parse_ports(entry: &str) -> Option<(u16, u16)> {
    let entry = entry.trim();
    let parsed = match entry.split_once('-') {
        Some((first, last)) => first.trim().parse().ok().zip(last.trim().parse().ok()),
        None => entry.parse().ok().map(|p| (p, p)),
    };
    if parsed.is_none() {
        tracing::warn!(entry, "ignoring a Linode firewall port entry that does not parse");
    }
    parsed
}

/// `"10.0.0.0/24"`, or a bare address as `/32`.
pub(crate) fn parse_net(text: &str) -> Option<Ipv4Net> {
    let text = text.trim();
    text.parse::<Ipv4Net>()
        .ok()
        .or_else(|| text.parse::<std::net::Ipv4Addr>().ok().map(Ipv4Net::from))
}

fn shorten(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: Protocol, ports: Option<(u16, u16)>) -> FirewallRule {
        FirewallRule {
            protocol,
            ports,
            sources: vec![
                "10.0.0.0/24".parse().unwrap_or_default(),
                "203.0.113.4/32".parse().unwrap_or_default(),
            ],
            description: "web".into(),
        }
    }

    #[test]
    fn rules_round_trip() {
        let rules = vec![
            rule(Protocol::Tcp, Some((443, 443))),
            rule(Protocol::Tcp, Some((8000, 9000))),
            rule(Protocol::Udp, None),
            rule(Protocol::Icmp, None),
        ];
        let set = rule_set(&rules);
        assert_eq!(set["inbound_policy"], "DROP");
        assert_eq!(set["outbound_policy"], "ACCEPT");
        assert_eq!(set["inbound"][0]["ports"], "443");
        assert_eq!(set["inbound"][1]["ports"], "8000-9000");
        assert_eq!(set["inbound"][1]["label"], "accept-tcp-8000-9000");
        assert!(set["inbound"][2].get("ports").is_none());
        assert_eq!(
            set["inbound"][0]["addresses"]["ipv4"],
            json!(["10.0.0.0/24", "203.0.113.4/32"])
        );
        let wire: wire::FirewallRules =
            serde_json::from_value(json!({ "inbound": set["inbound"] })).unwrap_or_default();
        let back: Vec<FirewallRule> = wire.inbound.iter().flat_map(from_rule).collect();
        assert_eq!(back, rules);
    }

    #[test]
    fn rules_without_sources_are_left_out() {
        let mut r = rule(Protocol::Tcp, Some((22, 22)));
        r.sources.clear();
        assert_eq!(rule_set(&[r])["inbound"], json!([]));
    }

    #[test]
    fn port_lists_split_and_drop_rules_are_ignored() {
        let wire: wire::FirewallRules = serde_json::from_value(json!({"inbound": [
            {"action": "ACCEPT", "protocol": "TCP", "ports": "22,443,8000-8080", "addresses": {"ipv4": ["198.51.100.7"]}},
            {"action": "DROP", "protocol": "TCP", "ports": "25", "addresses": {"ipv4": ["0.0.0.0/0"]}},
        ]}))
        .unwrap_or_default();
        let rules: Vec<FirewallRule> = wire.inbound.iter().flat_map(from_rule).collect();
        let ports: Vec<_> = rules.iter().map(|r| r.ports).collect();
        assert_eq!(ports, vec![Some((22, 22)), Some((443, 443)), Some((8000, 8080))]);
        assert_eq!(
            rules[0].sources,
            vec!["198.51.100.7/32".parse::<Ipv4Net>().unwrap_or_default()]
        );
    }
}
