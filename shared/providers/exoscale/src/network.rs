//! Private networks (VPCs) and security groups (firewalls).
//!
//! A security group holds one Exoscale rule per source range; Flotilla's rules are grouped back by
//! protocol, ports and description when read. Replacing rules adds the missing ones before deleting the
//! stale ones, so traffic that stays allowed is never cut. Egress rules and rules that name another
//! security group instead of a range are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use async_trait::async_trait;
use flotilla_cloud::{CloudError, Firewall, FirewallRule, Marks, Network, Protocol, Result, Vpc, VpcRequest};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::{Value, json};

use crate::wire::{InstanceList, PrivateNetwork, PrivateNetworkList, SecurityGroup, SecurityGroupList};
use crate::{Exoscale, P, is_uuid};

#[async_trait]
impl Network for Exoscale {
    async fn find_vpc(&self, region: &str, name: &str) -> Result<Option<Vpc>> {
        self.check_zone(region)?;
        let list: PrivateNetworkList = self.api.get("private-network", &[]).await?;
        Ok(list
            .private_networks
            .into_iter()
            .find(|n| n.name == name)
            .map(|n| vpc(&self.zone, n)))
    }

    async fn create_vpc(&self, request: &VpcRequest) -> Result<Vpc> {
        self.check_zone(&request.region)?;
        let (start, end) = dhcp_range(request.cidr)?;
        let body = json!({
            "name": request.name,
            "netmask": request.cidr.netmask().to_string(),
            "start-ip": start.to_string(),
            "end-ip": end.to_string(),
        });
        let id = self.mutate_for_id(Method::POST, "private-network", &body).await?;
        Ok(Vpc {
            id,
            name: request.name.clone(),
            region: self.zone.clone(),
            cidr: Some(request.cidr.trunc()),
            subnet_id: None,
        })
    }

    /// `DELETE /private-network/{id}`, then its operation polled to the end like every mutation. A network
    /// already gone (404, or an operation failing as not found) is [`CloudError::NotFound`]; one that
    /// instances are still attached to is refused — 409 or 412 at once, or an operation failing as a
    /// conflict — and that is a [`CloudError::Conflict`] with Exoscale's message.
    async fn delete_vpc(&self, id: &str) -> Result<()> {
        let id = uuid_id("id", "private network", id)?;
        // Not `delete_gone_ok`: a network already gone is an error here, as the trait says.
        self.mutate(Method::DELETE, &format!("private-network/{id}"), None)
            .await
            .map(drop)
    }

    async fn find_firewall(&self, name: &str) -> Result<Option<Firewall>> {
        let list: SecurityGroupList = self.api.get("security-group", &[]).await?;
        let Some(found) = list.security_groups.into_iter().find(|g| g.name == name) else {
            return Ok(None);
        };
        // The listing may leave rules out (the spec marks them write-only there); the group itself has them.
        let group: SecurityGroup = match self.api.get(&format!("security-group/{}", found.id), &[]).await {
            Ok(g) => g,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let instances: InstanceList = self.api.get("instance", &[]).await?;
        let machine_ids = instances
            .instances
            .into_iter()
            .filter(|i| {
                i.security_groups
                    .iter()
                    .any(|g| g.id.as_deref() == Some(group.id.as_str()))
            })
            .map(|i| i.id)
            .collect();
        Ok(Some(Firewall {
            rules: grouped_rules(&group),
            id: group.id,
            name: group.name,
            machine_ids,
        }))
    }

    /// One listing of the groups, each group found read for its rules, and one listing of the instances
    /// (when any was found): not all three per name.
    async fn find_firewalls(&self, names: &[String]) -> Result<Vec<Option<Firewall>>> {
        let list: SecurityGroupList = self.api.get("security-group", &[]).await?;
        let mut groups = Vec::with_capacity(names.len());
        for name in names {
            let Some(found) = list.security_groups.iter().find(|g| &g.name == name) else {
                groups.push(None);
                continue;
            };
            groups.push(
                match self
                    .api
                    .get::<SecurityGroup>(&format!("security-group/{}", found.id), &[])
                    .await
                {
                    Ok(g) => Some(g),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => return Err(e),
                },
            );
        }
        let instances = if groups.iter().any(Option::is_some) {
            self.api.get::<InstanceList>("instance", &[]).await?.instances
        } else {
            Vec::new()
        };
        Ok(groups
            .into_iter()
            .map(|g| {
                let group = g?;
                let machine_ids = instances
                    .iter()
                    .filter(|i| {
                        i.security_groups
                            .iter()
                            .any(|s| s.id.as_deref() == Some(group.id.as_str()))
                    })
                    .map(|i| i.id.clone())
                    .collect();
                Some(Firewall {
                    rules: grouped_rules(&group),
                    id: group.id,
                    name: group.name,
                    machine_ids,
                })
            })
            .collect())
    }

    async fn create_firewall(&self, name: &str, rules: &[FirewallRule], marks: &Marks) -> Result<Firewall> {
        // Security groups carry no labels: the marks go in the description (five tags fit its 255 bytes).
        let body = json!({ "name": name, "description": marks.to_tags().join(" ") });
        let id = self.mutate_for_id(Method::POST, "security-group", &body).await?;
        for rule in atomic_rules(rules) {
            self.add_rule(&id, &rule).await?;
        }
        Ok(Firewall {
            id,
            name: name.to_owned(),
            rules: rules.to_vec(),
            machine_ids: Vec::new(),
        })
    }

    async fn replace_firewall_rules(&self, firewall_id: &str, rules: &[FirewallRule]) -> Result<()> {
        let group: SecurityGroup = self
            .api
            .get(&format!("security-group/{firewall_id}"), &[])
            .await?;
        let wanted = atomic_rules(rules);
        let mut existing: BTreeMap<RuleKey, Vec<String>> = BTreeMap::new();
        for rule in &group.rules {
            if let (Some(atom), Some(id)) = (Atom::from_wire(rule), rule.id.clone()) {
                existing.entry(atom.key()).or_default().push(id);
            }
        }
        let wanted_keys: BTreeSet<RuleKey> = wanted.iter().map(Atom::key).collect();
        let mut added = BTreeSet::new();
        for atom in &wanted {
            if !existing.contains_key(&atom.key()) && added.insert(atom.key()) {
                self.add_rule(firewall_id, atom).await?;
            }
        }
        for (key, ids) in &existing {
            // Duplicates of a wanted rule go too, all but one.
            let keep = usize::from(wanted_keys.contains(key));
            for id in ids.iter().skip(keep) {
                self.delete_gone_ok(&format!("security-group/{firewall_id}/rules/{id}"))
                    .await?;
            }
        }
        Ok(())
    }

    async fn attach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()> {
        let instance = self.instance(machine_id).await?;
        if has_group(&instance.security_groups, firewall_id) {
            return Ok(());
        }
        self.mutate(
            Method::PUT,
            &format!("security-group/{firewall_id}:attach"),
            Some(&json!({ "instance": { "id": machine_id } })),
        )
        .await
        .map(drop)
    }

    async fn detach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()> {
        let instance = match self.instance(machine_id).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        if !has_group(&instance.security_groups, firewall_id) {
            return Ok(());
        }
        self.mutate(
            Method::PUT,
            &format!("security-group/{firewall_id}:detach"),
            Some(&json!({ "instance": { "id": machine_id } })),
        )
        .await
        .map(drop)
    }

    /// `DELETE /security-group/{id}`, waiting for its operation. Exoscale refuses a group still applied
    /// to an instance (409: [`CloudError::Conflict`]).
    async fn delete_firewall(&self, firewall_id: &str) -> Result<()> {
        let firewall_id = uuid_id("firewall_id", "security group", firewall_id)?;
        self.delete_gone_ok(&format!("security-group/{firewall_id}"))
            .await
    }
}

impl Exoscale {
    async fn add_rule(&self, group_id: &str, rule: &Atom) -> Result<()> {
        self.mutate(
            Method::POST,
            &format!("security-group/{group_id}/rules"),
            Some(&rule.body()),
        )
        .await
        .map(drop)
    }
}

/// `id` when it is a UUID (what Exoscale's ids are, and all a path segment may hold here), else an invalid
/// `field` naming `what` it should have been.
fn uuid_id<'a>(field: &str, what: &str, id: &'a str) -> Result<&'a str> {
    if is_uuid(id) {
        Ok(id)
    } else {
        Err(CloudError::Invalid {
            provider: P,
            field: Some(field.to_owned()),
            message: format!("{id:?} is not a {what} id (a UUID)"),
        })
    }
}

/// A private network of `zone` as a [`Vpc`].
pub(crate) fn vpc(zone: &str, n: PrivateNetwork) -> Vpc {
    let cidr = match (&n.start_ip, &n.netmask) {
        (Some(ip), Some(mask)) => match (ip.parse::<Ipv4Addr>(), mask.parse::<Ipv4Addr>()) {
            (Ok(ip), Ok(mask)) => Ipv4Net::with_netmask(ip, mask).ok().map(|n| n.trunc()),
            _ => None,
        },
        _ => None,
    };
    Vpc {
        id: n.id,
        name: n.name,
        region: zone.to_owned(),
        cidr,
        subnet_id: None,
    }
}

fn has_group(groups: &[crate::wire::IdRef], id: &str) -> bool {
    groups.iter().any(|g| g.id.as_deref() == Some(id))
}

/// The addresses a managed private network hands out over `cidr`: all but the network and broadcast
/// addresses.
fn dhcp_range(cidr: Ipv4Net) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let net = cidr.trunc();
    let first = u32::from(net.network()).checked_add(1);
    let last = u32::from(net.broadcast()).checked_sub(1);
    match (first, last) {
        (Some(first), Some(last)) if net.prefix_len() <= 30 && first <= last => {
            Ok((Ipv4Addr::from(first), Ipv4Addr::from(last)))
        }
        _ => Err(CloudError::Invalid {
            provider: P,
            field: Some("cidr".into()),
            message: format!("{cidr} is too small for a private network (at most /30)"),
        }),
    }
}

/// What a rule allows, as compared when replacing rules (descriptions do not count).
type RuleKey = (Protocol, Option<(u16, u16)>, Ipv4Net);

/// One Exoscale ingress rule: one protocol, port range and source range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Atom {
    protocol: Protocol,
    ports: Option<(u16, u16)>,
    source: Ipv4Net,
    description: String,
}

impl Atom {
    fn key(&self) -> RuleKey {
        (self.protocol, self.ports, self.source)
    }

    /// The body of `POST /security-group/{id}/rules`. TCP and UDP without ports open all ports; ICMP opens
    /// every type and code.
    fn body(&self) -> Value {
        let mut body = json!({
            "flow-direction": "ingress",
            "protocol": protocol_name(self.protocol),
            "network": self.source.to_string(),
        });
        if let Some(fields) = body.as_object_mut() {
            match self.protocol {
                Protocol::Icmp => {
                    fields.insert("icmp".into(), json!({ "type": -1, "code": -1 }));
                }
                Protocol::Tcp | Protocol::Udp => {
                    let (start, end) = self.ports.unwrap_or((1, 65535));
                    fields.insert("start-port".into(), json!(start));
                    fields.insert("end-port".into(), json!(end));
                }
            }
            if !self.description.is_empty() {
                let description: String = self.description.chars().take(255).collect();
                fields.insert("description".into(), json!(description));
            }
        }
        body
    }

    /// An ingress rule we can represent (TCP, UDP or ICMP from a range).
    fn from_wire(rule: &crate::wire::SecurityGroupRule) -> Option<Self> {
        if rule.flow_direction.as_deref() != Some("ingress") {
            return None;
        }
        let protocol = match rule.protocol.as_deref()? {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            _ => return None,
        };
        let source = rule.network.as_deref()?.parse::<Ipv4Net>().ok()?.trunc();
        let ports = match (protocol, rule.start_port, rule.end_port) {
            (Protocol::Icmp, _, _) | (_, Some(1), Some(65535)) | (_, None, None) => None,
            (_, Some(start), Some(end)) => Some((start, end)),
            (_, Some(port), None) | (_, None, Some(port)) => Some((port, port)),
        };
        Some(Self {
            protocol,
            ports: if protocol == Protocol::Icmp { None } else { ports },
            source,
            description: rule.description.clone().unwrap_or_default(),
        })
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
    }
}

/// Flotilla's rules as Exoscale rules, one per source range, without repeats. All-port TCP/UDP rules are
/// written as 1–65535, which reads back as "all ports".
fn atomic_rules(rules: &[FirewallRule]) -> Vec<Atom> {
    let mut seen = BTreeSet::new();
    let mut atoms = Vec::new();
    for rule in rules {
        let ports = match (rule.protocol, rule.ports) {
            (Protocol::Icmp, _) | (_, Some((1, 65535))) => None,
            (_, ports) => ports,
        };
        for source in &rule.sources {
            let atom = Atom {
                protocol: rule.protocol,
                ports,
                source: source.trunc(),
                description: rule.description.clone(),
            };
            if seen.insert(atom.key()) {
                atoms.push(atom);
            }
        }
    }
    atoms
}

/// What a group of Exoscale rules shares when read back as one Flotilla rule.
type RuleShape = (Protocol, Option<(u16, u16)>, String);

/// A group's ingress rules as Flotilla rules: those that differ only in their source range become one.
pub(crate) fn grouped_rules(group: &SecurityGroup) -> Vec<FirewallRule> {
    let mut grouped: BTreeMap<RuleShape, Vec<Ipv4Net>> = BTreeMap::new();
    for atom in group.rules.iter().filter_map(Atom::from_wire) {
        let sources = grouped
            .entry((atom.protocol, atom.ports, atom.description))
            .or_default();
        if !sources.contains(&atom.source) {
            sources.push(atom.source);
        }
    }
    grouped
        .into_iter()
        .map(|((protocol, ports, description), sources)| FirewallRule {
            protocol,
            ports,
            sources,
            description,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn dhcp_ranges() {
        assert_eq!(
            dhcp_range(net("10.0.0.0/24")).unwrap(),
            ("10.0.0.1".parse().unwrap(), "10.0.0.254".parse().unwrap())
        );
        assert_eq!(
            dhcp_range(net("10.1.2.3/16")).unwrap(),
            ("10.1.0.1".parse().unwrap(), "10.1.255.254".parse().unwrap())
        );
        assert!(dhcp_range(net("10.0.0.0/31")).is_err());
    }

    #[test]
    fn rules_split_per_source_and_group_back() {
        let rules = vec![
            FirewallRule {
                protocol: Protocol::Tcp,
                ports: Some((443, 443)),
                sources: vec![net("203.0.113.0/24"), net("198.51.100.7/32")],
                description: "https".into(),
            },
            FirewallRule {
                protocol: Protocol::Udp,
                ports: None,
                sources: vec![net("10.0.0.0/16")],
                description: String::new(),
            },
            FirewallRule {
                protocol: Protocol::Icmp,
                ports: Some((1, 2)),
                sources: vec![net("0.0.0.0/0")],
                description: "ping".into(),
            },
        ];
        let atoms = atomic_rules(&rules);
        assert_eq!(atoms.len(), 4);
        let bodies: Vec<Value> = atoms.iter().map(Atom::body).collect();
        assert_eq!(
            bodies[0],
            json!({"flow-direction": "ingress", "protocol": "tcp", "network": "203.0.113.0/24",
                   "start-port": 443, "end-port": 443, "description": "https"})
        );
        assert_eq!(bodies[2]["start-port"], 1);
        assert_eq!(bodies[2]["end-port"], 65535);
        assert_eq!(bodies[3]["icmp"], json!({"type": -1, "code": -1}));
        assert!(bodies[3].get("start-port").is_none());

        let wire: Vec<crate::wire::SecurityGroupRule> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut b = b.clone();
                b["id"] = json!(format!("r{i}"));
                serde_json::from_value(b).unwrap()
            })
            .collect();
        let group = SecurityGroup {
            id: "g".into(),
            name: "n".into(),
            rules: wire,
        };
        let mut back = grouped_rules(&group);
        back.sort();
        let mut expected = rules;
        expected[2].ports = None;
        expected.sort();
        assert_eq!(back, expected);
    }
}
