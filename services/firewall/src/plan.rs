//! The pure core of the firewall service: what each role's firewall should allow, what the managed
//! database's allow-list should hold (each entry with why, each machine left out with why), and the
//! difference with what a provider holds. No I/O here: the service reads, this decides.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use flotilla_cloud::{Firewall, FirewallRule, Protocol};
use flotilla_proto::{MachineHealth, MachineRecord};
use flotilla_spec::{Dbaas, Deployment, DnsProvider, Region, Role};
use ipnet::Ipv4Net;

/// Cloudflare's published IPv4 ranges (<https://www.cloudflare.com/ips-v4>), the sources of HTTPS to a
/// public-facing machine when the site is proxied by Cloudflare. The setting `cloudflare_ranges` replaces
/// them when Cloudflare publishes new ones.
pub const CLOUDFLARE_IPV4: [&str; 15] = [
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
];

/// Anywhere.
pub fn anywhere() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).unwrap_or_default()
}

/// What the rules depend on beyond the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInputs {
    /// Where the control plane connects from, when it is outside a region's VPC.
    pub control_plane: Vec<Ipv4Net>,
    /// Cloudflare's ranges.
    pub cloudflare: Vec<Ipv4Net>,
}

/// The name of `role`'s firewall in `region`: the original toolkit's `adt-<role>-<BUILD_IDENTIFIER>`, so a
/// deployment moved from the scripts keeps its firewalls.
pub fn firewall_name(region: &Region, role: Role) -> String {
    region.firewall_name(role)
}

/// Whether machines of `role` face the Internet in `region`: reverse proxies and authenticators, and
/// webservers where the region has no reverse proxy.
pub fn public_facing(region: &Region, role: Role) -> bool {
    match role {
        Role::ReverseProxy | Role::Authenticator => true,
        Role::Webserver => region.machines.reverse_proxy.count == 0,
        Role::Database | Role::Autoscaler => false,
    }
}

/// The roles that have a firewall in `region`: those the spec gives machines, and those with machines in
/// the fleet.
pub fn roles<'a>(region: &Region, fleet: impl Iterator<Item = &'a MachineRecord>) -> Vec<Role> {
    let mut roles: BTreeSet<&'static str> = Role::ALL
        .iter()
        .filter(|r| region.machines.get(**r).count > 0)
        .map(|r| r.as_str())
        .collect();
    for m in fleet.filter(|m| m.region == region.name) {
        if let Some(r) = Role::ALL.iter().find(|r| r.as_str() == m.role) {
            roles.insert(r.as_str());
        }
    }
    Role::ALL
        .iter()
        .copied()
        .filter(|r| roles.contains(r.as_str()))
        .collect()
}

/// The inbound rules of `role`'s firewall in `region` (everything else inbound is dropped), as the original
/// toolkit writes them: all TCP from the region's VPC; SSH and HTTPS from the control plane when it is
/// outside the VPC; HTTPS to a public-facing role from Cloudflare's ranges when the site is proxied by
/// Cloudflare, else from anywhere; the database port from the VPC on the database machine; and the spec's
/// extra ports of the role.
pub fn rules(deployment: &Deployment, region: &Region, role: Role, inputs: &RuleInputs) -> Vec<FirewallRule> {
    let vpc = region.vpc.cidr;
    let tcp = |ports: Option<(u16, u16)>, sources: Vec<Ipv4Net>, description: &str| FirewallRule {
        protocol: Protocol::Tcp,
        ports,
        sources,
        description: description.to_owned(),
    };
    let mut out = vec![tcp(None, vec![vpc], "all TCP from the region's VPC")];
    if !region.build_machine_vpc && !inputs.control_plane.is_empty() {
        out.push(tcp(
            Some((region.ssh_port, region.ssh_port)),
            inputs.control_plane.clone(),
            "SSH from the control plane",
        ));
        out.push(tcp(
            Some((443, 443)),
            inputs.control_plane.clone(),
            "HTTPS from the control plane",
        ));
    }
    if public_facing(region, role) {
        if deployment.dns.provider == DnsProvider::Cloudflare && !inputs.cloudflare.is_empty() {
            out.push(tcp(
                Some((443, 443)),
                inputs.cloudflare.clone(),
                "HTTPS from Cloudflare",
            ));
        } else {
            out.push(tcp(Some((443, 443)), vec![anywhere()], "HTTPS from anywhere"));
        }
    }
    if role == Role::Database {
        out.push(tcp(
            Some((region.db_port, region.db_port)),
            vec![vpc],
            "the database port from the VPC",
        ));
    }
    for extra in region.extra_ports.iter().filter(|p| p.role == role) {
        out.push(FirewallRule {
            protocol: if extra.protocol == "udp" {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            ports: Some((extra.port, extra.to_port.unwrap_or(extra.port))),
            sources: if extra.sources.is_empty() {
                vec![anywhere()]
            } else {
                extra.sources.clone()
            },
            description: "an extra port of the spec".to_owned(),
        });
    }
    out
}

/// One thing a rule set allows: a protocol, its ports (`None`: all), from one source range.
pub type Grant = (Protocol, Option<(u16, u16)>, Ipv4Net);

/// What a rule set allows, rule by rule and source by source, descriptions aside: providers split, merge
/// and reorder rules (one rule per source, or one per port), so two sets are the same when they allow the
/// same things.
pub fn allowed(rules: &[FirewallRule]) -> BTreeSet<Grant> {
    rules
        .iter()
        .flat_map(|r| {
            let ports = match (r.protocol, r.ports) {
                (Protocol::Icmp, _) => None,
                (_, Some((0, 65535)) | Some((1, 65535))) => None,
                (_, p) => p,
            };
            r.sources.iter().map(move |s| (r.protocol, ports, s.trunc()))
        })
        .collect()
}

/// What to do to one role's firewall.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirewallPlan {
    /// Create it (it does not exist).
    pub create: bool,
    /// Write its rules (they differ from the desired ones).
    pub write_rules: bool,
    /// Attach these machines (resource id, provider id).
    pub attach: Vec<(String, String)>,
}

impl FirewallPlan {
    /// Whether nothing is to be done.
    pub fn is_empty(&self) -> bool {
        !self.create && !self.write_rules && self.attach.is_empty()
    }
}

/// The plan for one role's firewall: `current` as the provider holds it (`None`: not found), `machines` the
/// role's machines in the region (resource id, provider id).
pub fn firewall_plan(
    desired: &[FirewallRule],
    current: Option<&Firewall>,
    machines: &[(String, String)],
) -> FirewallPlan {
    let Some(current) = current else {
        return FirewallPlan {
            create: true,
            write_rules: false,
            attach: machines.to_vec(),
        };
    };
    let attached: BTreeSet<&str> = current.machine_ids.iter().map(String::as_str).collect();
    FirewallPlan {
        create: false,
        write_rules: allowed(desired) != allowed(&current.rules),
        attach: machines
            .iter()
            .filter(|(_, provider_id)| !attached.contains(provider_id.as_str()))
            .cloned()
            .collect(),
    }
}

/// The roles whose machines reach the managed database from another region.
fn needs_database(role: &str) -> bool {
    role == Role::Webserver.as_str() || role == Role::Database.as_str()
}

/// The region hosting the deployment's managed database, and the database's label: the region whose
/// `dbaas` is the primary's cluster.
pub fn database_home(deployment: &Deployment) -> Option<(&Region, &str)> {
    deployment.regions.iter().find_map(|r| match &r.dbaas {
        Some(Dbaas::Primary { label, .. }) => Some((r, label.as_str())),
        _ => None,
    })
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The range.
    pub net: Ipv4Net,
    /// Why it is there.
    pub why: String,
    /// The machine it is for.
    pub resource_id: Option<String>,
}

/// A machine that could need the database but is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    /// Its resource id.
    pub resource_id: String,
    /// Region.
    pub region: String,
    /// Role.
    pub role: String,
    /// Its public address, if known.
    pub ip: Option<String>,
    /// Why not.
    pub why: String,
}

/// A marker in the shared bucket (`<site>-multi-region/dbaas_ips/<ip>`): one the original toolkit's
/// machines wrote (empty), announcing their address, or one of ours (the service's mirror of an address
/// it allows, for the old toolkit to read; never a reason to allow anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The address.
    pub ip: Ipv4Addr,
    /// When the marker was last written.
    pub written: DateTime<Utc>,
    /// Whether the service wrote it.
    pub ours: bool,
}

/// The desired allow-list of a deployment's managed database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList {
    /// Its entries (one per range), in order.
    pub entries: Vec<Entry>,
    /// Machines left out, with why.
    pub excluded: Vec<Excluded>,
    /// Markers left out (expired), with why.
    pub expired_markers: Vec<(Ipv4Addr, String)>,
    /// The next instant an entry expires, if one will.
    pub next_expiry: Option<DateTime<Utc>>,
}

impl AllowList {
    /// The ranges.
    pub fn nets(&self) -> Vec<Ipv4Net> {
        self.entries.iter().map(|e| e.net).collect()
    }
}

/// The allow-list the database hosted in `home` should have: `home`'s VPC range, plus the public address
/// of every webserver and database machine of every other region of the deployment, on any provider — as
/// soon as the machine exists with an address (before it can serve), not once it is failed, nor once the
/// prober has judged it unhealthy for `expiry` (a machine gone without a clean shutdown); plus the
/// original toolkit's markers written within `expiry` (ours, mirrors of what is allowed, count for nothing).
pub fn allow_list<'a>(
    deployment: &Deployment,
    home: &Region,
    fleet: impl Iterator<Item = &'a MachineRecord>,
    health: &BTreeMap<&str, &MachineHealth>,
    markers: &[Marker],
    now: DateTime<Utc>,
    expiry: chrono::Duration,
) -> AllowList {
    let mut out = AllowList::default();
    let mut nets: BTreeMap<Ipv4Net, Entry> = BTreeMap::new();
    nets.insert(
        home.vpc.cidr.trunc(),
        Entry {
            net: home.vpc.cidr.trunc(),
            why: format!("the VPC of region {} (the database's own)", home.name),
            resource_id: None,
        },
    );
    let regions: BTreeSet<&str> = deployment
        .regions
        .iter()
        .filter(|r| r.name != home.name)
        .map(|r| r.name.as_str())
        .collect();
    let mut machines: Vec<&MachineRecord> = fleet
        .filter(|m| m.deployment == deployment.name && regions.contains(m.region.as_str()))
        .filter(|m| needs_database(&m.role))
        .collect();
    machines.sort_by(|a, b| (&a.region, &a.resource_id).cmp(&(&b.region, &b.resource_id)));
    for m in machines {
        let excluded = |why: String| Excluded {
            resource_id: m.resource_id.clone(),
            region: m.region.clone(),
            role: m.role.clone(),
            ip: m.public_ipv4.clone(),
            why,
        };
        if m.state == "failed" {
            out.excluded.push(excluded("failed".into()));
            continue;
        }
        let Some(ip) = m
            .public_ipv4
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            out.excluded.push(excluded(match &m.public_ipv4 {
                None => "no public address yet".into(),
                Some(bad) => format!("its public address {bad:?} is not an IPv4 address"),
            }));
            continue;
        };
        if let Some(h) = health.get(m.resource_id.as_str()).filter(|h| !h.healthy) {
            let expires = h.since + expiry;
            if expires <= now {
                out.excluded.push(excluded(format!(
                    "unhealthy since {} ({}): gone without a clean shutdown, its address expired after {}",
                    h.since.to_rfc3339(),
                    h.reason,
                    humanize(expiry)
                )));
                continue;
            }
            out.next_expiry = Some(out.next_expiry.map_or(expires, |e| e.min(expires)));
        }
        let net = Ipv4Net::from(ip);
        nets.entry(net).or_insert(Entry {
            net,
            why: format!(
                "{} {} of region {} ({})",
                m.role, m.resource_id, m.region, m.provider
            ),
            resource_id: Some(m.resource_id.clone()),
        });
    }
    for marker in markers.iter().filter(|m| !m.ours) {
        let net = Ipv4Net::from(marker.ip);
        if nets.contains_key(&net) {
            continue;
        }
        let expires = marker.written + expiry;
        if expires <= now {
            out.expired_markers.push((
                marker.ip,
                format!(
                    "the original toolkit's marker was last written {}: expired after {}",
                    marker.written.to_rfc3339(),
                    humanize(expiry)
                ),
            ));
            continue;
        }
        out.next_expiry = Some(out.next_expiry.map_or(expires, |e| e.min(expires)));
        nets.insert(
            net,
            Entry {
                net,
                why: format!(
                    "announced by the original toolkit (marker dbaas_ips/{} written {})",
                    marker.ip,
                    marker.written.to_rfc3339()
                ),
                resource_id: None,
            },
        );
    }
    out.entries = nets.into_values().collect();
    out
}

/// The most entries a provider's database allow-list takes (DigitalOcean: 100 trusted sources).
pub fn list_limit(provider: flotilla_spec::CloudProvider) -> Option<usize> {
    (provider == flotilla_spec::CloudProvider::DigitalOcean).then_some(100)
}

/// Why a list of `count` entries cannot be written to `provider`, if it cannot: a clear refusal naming the
/// count, never a silent truncation.
pub fn over_limit(provider: flotilla_spec::CloudProvider, count: usize) -> Option<String> {
    let limit = list_limit(provider)?;
    (count > limit).then(|| {
        format!(
            "the allow-list needs {count} entries and {provider} takes at most {limit}: nothing was written, the \
             previous list is left in place (fewer machines in the other regions, or a larger range, would fit)"
        )
    })
}

/// `nets` as a provider holds them: single addresses as /32, each range once, in order.
pub fn normalized(nets: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let set: BTreeSet<Ipv4Net> = nets.iter().map(Ipv4Net::trunc).collect();
    set.into_iter().collect()
}

/// The entries to add to and remove from `current` to make it `desired`.
pub fn list_diff(desired: &[Ipv4Net], current: &[Ipv4Net]) -> (Vec<Ipv4Net>, Vec<Ipv4Net>) {
    let d: BTreeSet<Ipv4Net> = normalized(desired).into_iter().collect();
    let c: BTreeSet<Ipv4Net> = normalized(current).into_iter().collect();
    (
        d.difference(&c).copied().collect(),
        c.difference(&d).copied().collect(),
    )
}

/// Why `ip` is (not) in `list`, in words; `true` when it is.
pub fn why(list: &AllowList, ip: Ipv4Addr) -> (bool, String) {
    if let Some(e) = list.entries.iter().find(|e| e.net.contains(&ip)) {
        return (true, format!("allowed: {} ({})", e.why, e.net));
    }
    if let Some(x) = list
        .excluded
        .iter()
        .find(|x| x.ip.as_deref() == Some(ip.to_string().as_str()))
    {
        return (
            false,
            format!(
                "not allowed: {} {} of region {} is {}",
                x.role, x.resource_id, x.region, x.why
            ),
        );
    }
    if let Some((_, why)) = list.expired_markers.iter().find(|(m, _)| *m == ip) {
        return (false, format!("not allowed: {why}"));
    }
    (
        false,
        "not allowed: no webserver or database machine of another region has this address".into(),
    )
}

/// A rule as the API shows it.
pub fn rule_view(r: &FirewallRule) -> flotilla_proto::RuleView {
    flotilla_proto::RuleView {
        protocol: match r.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
        .to_owned(),
        ports: match r.ports {
            None => "all".to_owned(),
            Some((a, b)) if a == b => a.to_string(),
            Some((a, b)) => format!("{a}-{b}"),
        },
        sources: r.sources.iter().map(ToString::to_string).collect(),
        description: r.description.clone(),
    }
}

/// `d` in words (`15m`, `2h`).
fn humanize(d: chrono::Duration) -> String {
    d.to_std()
        .map(|d| humantime::format_duration(d).to_string())
        .unwrap_or_else(|_| format!("{}s", d.num_seconds()))
}

#[cfg(test)]
mod tests;
