//! The dns service's loop in two pure functions, in the manner of external-dns but without its TXT
//! records: [`desired`] turns a deployment's spec, its fleet and its machines' health into the record sets
//! it should have; [`plan`] compares them with the records a zone holds now and says what to create and
//! delete — touching only records this deployment owns, and reporting any other record at a name it
//! manages as a conflict instead of overwriting it.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_cloud::{DnsRecord, NewDnsRecord, ProviderKind};
use flotilla_proto::{MachineHealth, MachineRecord};
use flotilla_spec::{Deployment, Role};

/// The comment that marks a record as owned by `deployment`, where the provider keeps comments
/// (Cloudflare); elsewhere ownership is recorded in the service's own database.
pub fn owner_mark(deployment: &str) -> String {
    format!("flotilla:{deployment}")
}

/// The name the active authenticator is published under: `auth.<site host>`.
pub fn authenticator_name(deployment: &Deployment) -> String {
    format!("auth.{}", host(&deployment.website_url))
}

fn host(url: &str) -> String {
    url.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// One name's wanted A records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// Fully qualified name.
    pub name: String,
    /// The addresses.
    pub addresses: BTreeSet<String>,
}

/// Something an operator must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// Every endpoint of a name is unhealthy or gone: its last set is kept rather than publishing nothing.
    NoHealthyEndpoint {
        /// The name.
        name: String,
        /// The set kept.
        kept: BTreeSet<String>,
    },
}

/// What [`desired`] needs besides the spec.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// The deployment's machines (the fleet view).
    pub fleet: Vec<&'a MachineRecord>,
    /// Their health (the autoscaler's health view), by resource id.
    pub health: BTreeMap<String, &'a MachineHealth>,
    /// The sets last published, by name (kept when every endpoint is gone).
    pub last: BTreeMap<String, BTreeSet<String>>,
    /// The region whose authenticator is active (the primary's unless failed over).
    pub active_authenticator_region: Option<String>,
}

impl Observed<'_> {
    /// The region whose authenticator is active: the one failed over to, else the primary.
    fn active_authenticator_region(&self, deployment: &Deployment) -> Option<String> {
        self.active_authenticator_region
            .clone()
            .or_else(|| deployment.primary_region().map(|r| r.name.clone()))
    }
}

/// The role whose machines carry a region's share of the site: its reverse proxies, or its webservers
/// where it has none.
fn site_role(region: &flotilla_spec::Region) -> Role {
    if region.machines.reverse_proxy.count > 0 {
        Role::ReverseProxy
    } else {
        Role::Webserver
    }
}

/// Whether the provisioner reports a machine up (`running`, or `healthy` after its boot check) — not
/// being created, failed or destroyed.
fn up(m: &MachineRecord) -> bool {
    matches!(m.state.as_str(), "running" | "healthy")
}

/// A machine can serve: it has a well-formed IPv4 address, is up, and the prober has not judged it
/// unhealthy.
fn serving(m: &MachineRecord, health: &BTreeMap<String, &MachineHealth>) -> Option<String> {
    if !up(m) {
        return None;
    }
    if health.get(&m.resource_id).is_some_and(|h| !h.healthy) {
        return None;
    }
    m.public_ipv4.clone().filter(|ip| well_formed(ip))
}

/// Whether `ip` is a dotted IPv4 address (what an A record holds).
fn well_formed(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The record sets `deployment` should have: the site name holds every region's serving reverse proxies
/// (a region without reverse proxies contributes its webservers); the authenticator name holds one
/// serving authenticator of the active region. A name whose endpoints are all gone keeps its last set, with
/// an alarm.
pub fn desired(deployment: &Deployment, observed: &Observed<'_>) -> (Vec<RecordSet>, Vec<Alarm>) {
    let mut alarms = Vec::new();
    let mut site = BTreeSet::new();
    for region in &deployment.regions {
        let role = site_role(region);
        site.extend(
            observed
                .fleet
                .iter()
                .filter(|m| m.region == region.name && m.role == role.as_str())
                .filter_map(|m| serving(m, &observed.health)),
        );
    }
    let active = observed.active_authenticator_region(deployment);
    let auth: BTreeSet<String> = observed
        .fleet
        .iter()
        .filter(|m| Some(&m.region) == active.as_ref() && m.role == Role::Authenticator.as_str())
        .filter_map(|m| serving(m, &observed.health))
        .min()
        .into_iter()
        .collect();
    let has_authenticators = deployment
        .regions
        .iter()
        .any(|r| r.machines.authenticator.count > 0);
    let mut sets = Vec::new();
    for (name, addresses, wanted) in [
        (host(&deployment.website_url), site, true),
        (authenticator_name(deployment), auth, has_authenticators),
    ] {
        if !wanted {
            continue;
        }
        if addresses.is_empty()
            && let Some(kept) = observed.last.get(&name).filter(|l| !l.is_empty())
        {
            alarms.push(Alarm::NoHealthyEndpoint {
                name: name.clone(),
                kept: kept.clone(),
            });
            sets.push(RecordSet {
                name,
                addresses: kept.clone(),
            });
            continue;
        }
        sets.push(RecordSet { name, addresses });
    }
    (sets, alarms)
}

/// The machines that could serve one of the deployment's names but are not in its set, each with why —
/// the answer to "why is this IP not in the record".
pub fn excluded<'a>(deployment: &Deployment, observed: &Observed<'a>) -> Vec<(&'a MachineRecord, String)> {
    let active = observed.active_authenticator_region(deployment);
    let mut out = Vec::new();
    for m in &observed.fleet {
        let Some(region) = deployment.region(&m.region) else {
            out.push((*m, format!("region {} is not deployed", m.region)));
            continue;
        };
        let serves_site = m.role == site_role(region).as_str();
        let is_auth = m.role == Role::Authenticator.as_str();
        if !serves_site && !is_auth {
            continue;
        }
        let why = if m.state == "failed" {
            Some("the provisioner reports it failed".to_owned())
        } else if !up(m) {
            Some(format!("the provisioner reports it {}", m.state))
        } else if m.public_ipv4.is_none() {
            Some("it has no public address yet".to_owned())
        } else if let Some(ip) = m.public_ipv4.as_deref().filter(|ip| !well_formed(ip)) {
            Some(format!("its public address {ip:?} is not an IPv4 address"))
        } else if let Some(h) = observed.health.get(&m.resource_id).filter(|h| !h.healthy) {
            Some(format!(
                "unhealthy since {}: {}",
                h.since.format("%Y-%m-%d %H:%M:%S UTC"),
                h.reason
            ))
        } else if is_auth && Some(&m.region) != active.as_ref() {
            Some(format!(
                "a standby authenticator (the active one is in {})",
                active.as_deref().unwrap_or("no region")
            ))
        } else {
            None
        };
        if let Some(why) = why {
            out.push((*m, why));
        }
    }
    out
}

/// The authenticator name moves to another region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The region it pointed at.
    pub from: String,
    /// The region it points at now.
    pub to: String,
    /// `health` (its authenticators are down) or `spec` (its region is no longer deployed).
    pub cause: &'static str,
    /// Why, in words.
    pub reason: String,
}

/// The regions with authenticators in the spec: the primary first, then the others in the spec's order.
fn authenticator_regions(deployment: &Deployment) -> Vec<&flotilla_spec::Region> {
    let mut regions: Vec<&flotilla_spec::Region> = deployment
        .regions
        .iter()
        .filter(|r| r.machines.authenticator.count > 0)
        .collect();
    regions.sort_by_key(|r| !r.primary);
    regions
}

/// Which region's authenticator the authenticator name points at: `recorded` (a fail-over's) while that
/// region is deployed with authenticators, else the primary's (else the first region with authenticators).
/// With `automatic`, when every authenticator of that region is known to be down (failed, or judged
/// unhealthy by the prober) — or the recorded region is gone — and another region has one serving, it moves
/// there (the first such region, the primary first). It does not move back by itself when the old region
/// recovers: an operator moves it back (`flotilla failover`), so a flapping machine never flaps the name.
pub fn choose_authenticator(
    deployment: &Deployment,
    observed: &Observed<'_>,
    recorded: Option<&str>,
    automatic: bool,
) -> (Option<String>, Option<Move>) {
    let regions = authenticator_regions(deployment);
    let recorded_ok = recorded.filter(|r| regions.iter().any(|g| g.name == *r));
    let Some(current) = recorded_ok
        .map(str::to_owned)
        .or_else(|| regions.first().map(|r| r.name.clone()))
    else {
        return (None, None);
    };
    let machines = |region: &str| -> Vec<&MachineRecord> {
        observed
            .fleet
            .iter()
            .copied()
            .filter(|m| m.region == region && m.role == Role::Authenticator.as_str())
            .collect()
    };
    let serving_in = |region: &str| {
        machines(region)
            .iter()
            .any(|m| serving(m, &observed.health).is_some())
    };
    if let Some(gone) = recorded.filter(|_| recorded_ok.is_none()) {
        // The region failed over to is gone: back to the default, or to a region that serves.
        let to = if serving_in(&current) {
            current
        } else {
            regions
                .iter()
                .find(|r| serving_in(&r.name))
                .map_or(current, |r| r.name.clone())
        };
        let moved = Move {
            from: gone.to_owned(),
            to: to.clone(),
            cause: "spec",
            reason: format!("region {gone} no longer has authenticators deployed"),
        };
        return (Some(to), Some(moved));
    }
    if serving_in(&current) || !automatic {
        return (Some(current), None);
    }
    let down: Vec<String> = machines(&current)
        .iter()
        .filter_map(|m| {
            if m.state == "failed" || m.state == "destroying" {
                Some(format!("{} {}", m.resource_id, m.state))
            } else {
                observed
                    .health
                    .get(&m.resource_id)
                    .filter(|h| !h.healthy)
                    .map(|h| format!("{} unhealthy: {}", m.resource_id, h.reason))
            }
        })
        .collect();
    if down.is_empty() {
        // Not known to be down (still booting, never probed): wait.
        return (Some(current), None);
    }
    match regions.iter().find(|r| r.name != current && serving_in(&r.name)) {
        Some(to) => {
            let reason = format!("no authenticator of {current} is serving ({})", down.join("; "));
            let moved = Move {
                from: current,
                to: to.name.clone(),
                cause: "health",
                reason,
            };
            (Some(to.name.clone()), Some(moved))
        }
        None => (Some(current), None),
    }
}

/// How much of the difference is applied (external-dns's policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Create what is missing, delete what is no longer wanted.
    #[default]
    Sync,
    /// Create what is missing; delete nothing.
    UpsertOnly,
    /// Create what is missing; never change or delete.
    CreateOnly,
}

/// A record at a managed name that this deployment does not own: left alone, reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The foreign record.
    pub record: DnsRecord,
    /// Why it is not ours (its comment, or none).
    pub reason: String,
}

/// The difference between the wanted sets and a zone's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Records to create.
    pub creates: Vec<NewDnsRecord>,
    /// Owned records to delete (not wanted, or duplicates).
    pub deletes: Vec<DnsRecord>,
    /// Foreign records at managed names.
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.deletes.is_empty()
    }
}

/// How records are written on `provider`: Cloudflare proxied with automatic TTL, as the original toolkit
/// did; TTL 60 elsewhere.
pub fn record_style(provider: ProviderKind) -> (u32, Option<bool>) {
    match provider {
        ProviderKind::Cloudflare => (1, Some(true)),
        _ => (60, None),
    }
}

/// What to do to make `current` (a zone's A records) hold `wanted`. `owned` says whether a record is this
/// deployment's (its mark, or the service's record of ids it created). Names not in `wanted` are never
/// touched.
pub fn plan(
    wanted: &[RecordSet],
    current: &[DnsRecord],
    owned: impl Fn(&DnsRecord) -> bool,
    mark: Option<&str>,
    provider: ProviderKind,
    policy: Policy,
) -> Plan {
    let (ttl, proxied) = record_style(provider);
    let mut out = Plan::default();
    for set in wanted {
        let at_name: Vec<&DnsRecord> = current
            .iter()
            .filter(|r| r.kind == "A" && r.name.eq_ignore_ascii_case(&set.name))
            .collect();
        let mut kept: BTreeSet<&str> = BTreeSet::new();
        // Wanted addresses a foreign record already serves: not created again (a provider may refuse the
        // duplicate, and would on every run); the conflict says how to take it over.
        let mut served: BTreeSet<&str> = BTreeSet::new();
        for record in at_name {
            if !owned(record) {
                let wanted_here = set.addresses.contains(&record.content);
                if wanted_here {
                    served.insert(record.content.as_str());
                }
                let mut reason = match &record.comment {
                    Some(c) if !c.is_empty() => format!("marked {c:?}, not ours"),
                    _ => "not created by this deployment".into(),
                };
                if wanted_here {
                    reason.push_str("; it holds a wanted address, so none of ours is added: adopt or hand it over to manage it");
                }
                out.conflicts.push(Conflict {
                    record: record.clone(),
                    reason,
                });
                continue;
            }
            let wanted_here = set.addresses.contains(&record.content);
            // The first owned record of a wanted address stays; another one of the same address is a
            // duplicate (a create retried after a lost answer).
            if wanted_here && kept.insert(record.content.as_str()) {
                continue;
            }
            if policy == Policy::Sync {
                out.deletes.push(record.clone());
            }
        }
        for address in &set.addresses {
            if !kept.contains(address.as_str()) && !served.contains(address.as_str()) {
                out.creates.push(NewDnsRecord {
                    kind: "A".into(),
                    name: set.name.clone(),
                    content: address.clone(),
                    ttl,
                    proxied,
                    comment: mark.map(str::to_owned),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record(id: &str, name: &str, ip: &str, comment: Option<&str>) -> DnsRecord {
        DnsRecord {
            id: id.into(),
            kind: "A".into(),
            name: name.into(),
            content: ip.into(),
            ttl: 1,
            proxied: Some(true),
            comment: comment.map(str::to_owned),
        }
    }

    fn set(name: &str, ips: &[&str]) -> RecordSet {
        RecordSet {
            name: name.into(),
            addresses: ips.iter().map(|i| (*i).to_owned()).collect(),
        }
    }

    const MARK: &str = "flotilla:www-example-com";

    fn ours(r: &DnsRecord) -> bool {
        r.comment.as_deref() == Some(MARK)
    }

    #[test]
    fn only_owned_records_change_and_foreign_ones_are_reported() {
        let current = [
            record("1", "www.example.com", "1.1.1.1", Some(MARK)),
            record("2", "www.example.com", "2.2.2.2", Some(MARK)),
            record("3", "www.example.com", "9.9.9.9", None),
            record("4", "mail.example.com", "8.8.8.8", None),
            record(
                "5",
                "www.example.com",
                "7.7.7.7",
                Some("flotilla:other-deployment"),
            ),
        ];
        let wanted = [set("www.example.com", &["1.1.1.1", "3.3.3.3"])];
        let p = plan(
            &wanted,
            &current,
            ours,
            Some(MARK),
            ProviderKind::Cloudflare,
            Policy::Sync,
        );
        assert_eq!(p.deletes.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["2"]);
        assert_eq!(p.creates.len(), 1);
        assert_eq!(
            (
                p.creates[0].content.as_str(),
                p.creates[0].ttl,
                p.creates[0].proxied
            ),
            ("3.3.3.3", 1, Some(true))
        );
        assert_eq!(p.creates[0].comment.as_deref(), Some(MARK));
        let conflicts: Vec<&str> = p.conflicts.iter().map(|c| c.record.id.as_str()).collect();
        assert_eq!(
            conflicts,
            ["3", "5"],
            "foreign records at our name: reported, untouched"
        );
        assert!(p.conflicts[1].reason.contains("other-deployment"));

        // A foreign record holding a wanted address: ours is not added beside it, and the conflict says so.
        let wanted = [set("www.example.com", &["1.1.1.1", "9.9.9.9"])];
        let p = plan(
            &wanted,
            &current,
            ours,
            Some(MARK),
            ProviderKind::Cloudflare,
            Policy::Sync,
        );
        assert!(p.creates.is_empty(), "{p:?}");
        assert!(p.conflicts[0].reason.contains("adopt"), "{p:?}");
    }

    #[test]
    fn a_converged_zone_plans_nothing_and_duplicates_go() {
        let current = [
            record("1", "www.example.com", "1.1.1.1", Some(MARK)),
            record("2", "WWW.example.com", "1.1.1.1", Some(MARK)),
        ];
        let p = plan(
            &[set("www.example.com", &["1.1.1.1"])],
            &current,
            ours,
            Some(MARK),
            ProviderKind::Cloudflare,
            Policy::Sync,
        );
        assert!(p.creates.is_empty());
        assert_eq!(p.deletes.len(), 1, "the duplicate");
        let p = plan(
            &[set("www.example.com", &["1.1.1.1"])],
            &current[..1],
            ours,
            Some(MARK),
            ProviderKind::Cloudflare,
            Policy::Sync,
        );
        assert!(p.is_empty() && p.conflicts.is_empty());
    }

    #[test]
    fn policies_limit_what_is_written_and_other_providers_get_ttl_60() {
        let current = [record("1", "www.example.com", "1.1.1.1", Some(MARK))];
        let wanted = [set("www.example.com", &["2.2.2.2"])];
        for policy in [Policy::UpsertOnly, Policy::CreateOnly] {
            let p = plan(&wanted, &current, ours, None, ProviderKind::Linode, policy);
            assert!(p.deletes.is_empty(), "{policy:?}");
            assert_eq!((p.creates[0].ttl, p.creates[0].proxied), (60, None));
        }
    }

    fn machine(id: &str, region: &str, role: &str, ip: &str, state: &str) -> MachineRecord {
        MachineRecord {
            deployment: "d".into(),
            region: region.into(),
            resource_id: id.into(),
            role: role.into(),
            name: id.into(),
            size: "s".into(),
            provider: "linode".into(),
            provider_id: Some(id.into()),
            state: state.into(),
            public_ipv4: Some(ip.into()),
            private_ipv4: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            event_id: uuid::Uuid::nil(),
        }
    }

    fn health(id: &str, healthy: bool) -> MachineHealth {
        MachineHealth {
            meta: flotilla_proto::EventMeta::new(uuid::Uuid::nil(), "test"),
            deployment: "d".into(),
            region: "r".into(),
            resource_id: id.into(),
            role: "reverse-proxy".into(),
            public_ipv4: None,
            healthy,
            failures: 0,
            reason: String::new(),
            checked_at: chrono::Utc::now(),
            since: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_site_holds_healthy_reverse_proxies_and_keeps_the_last_set_when_all_are_gone() {
        let d = deployment();
        let regions: Vec<String> = d.regions.iter().map(|r| r.name.clone()).collect();
        let fleet = [
            machine("rp1", &regions[0], "reverse-proxy", "10.0.0.1", "healthy"),
            machine("rp2", &regions[1], "reverse-proxy", "10.0.0.2", "healthy"),
            machine("rp3", &regions[1], "reverse-proxy", "10.0.0.3", "failed"),
            machine("ws1", &regions[0], "webserver", "10.0.1.1", "healthy"),
        ];
        let sick = health("rp2", false);
        let mut observed = Observed {
            fleet: fleet.iter().collect(),
            ..Observed::default()
        };
        let (sets, alarms) = desired(&d, &observed);
        let site = host(&d.website_url);
        let at = |sets: &[RecordSet]| sets.iter().find(|s| s.name == site).unwrap().addresses.clone();
        assert_eq!(
            at(&sets),
            BTreeSet::from(["10.0.0.1".to_owned(), "10.0.0.2".to_owned()])
        );
        assert!(alarms.is_empty());
        observed.health.insert("rp2".into(), &sick);
        let (sets, _) = desired(&d, &observed);
        assert_eq!(
            at(&sets),
            BTreeSet::from(["10.0.0.1".to_owned()]),
            "unhealthy leaves"
        );
        // Every proxy gone: the last set stays, with an alarm.
        observed.fleet.clear();
        observed
            .last
            .insert(site.clone(), BTreeSet::from(["10.0.0.1".to_owned()]));
        let (sets, alarms) = desired(&d, &observed);
        assert_eq!(at(&sets), BTreeSet::from(["10.0.0.1".to_owned()]));
        assert!(matches!(&alarms[0], Alarm::NoHealthyEndpoint { name, .. } if name == &site));
        // Why each left-out machine is left out.
        let observed = Observed {
            fleet: fleet.iter().collect(),
            health: BTreeMap::from([("rp2".to_owned(), &sick)]),
            ..Observed::default()
        };
        let why: BTreeMap<&str, String> = excluded(&d, &observed)
            .into_iter()
            .map(|(m, why)| (m.resource_id.as_str(), why))
            .collect();
        assert!(why["rp2"].starts_with("unhealthy since"), "{why:?}");
        assert!(why["rp3"].contains("failed"), "{why:?}");
        assert!(!why.contains_key("rp1") && !why.contains_key("ws1"), "{why:?}");

        // A malformed address never reaches a record; asked why, the API says.
        let bad = [machine(
            "rp9",
            &regions[0],
            "reverse-proxy",
            "10.0.0.300",
            "healthy",
        )];
        let observed = Observed {
            fleet: bad.iter().collect(),
            ..Observed::default()
        };
        let (sets, _) = desired(&d, &observed);
        assert!(sets.iter().all(|s| s.addresses.is_empty()), "{sets:?}");
        let why = excluded(&d, &observed);
        assert!(why[0].1.contains("not an IPv4 address"), "{why:?}");
    }

    #[test]
    fn the_authenticator_fails_over_only_when_known_down_and_never_back_by_itself() {
        let mut d = deployment();
        for r in &mut d.regions {
            r.machines.authenticator.count = 1;
        }
        let primary = d.primary_region().unwrap().name.clone();
        let other = d.regions.iter().find(|r| !r.primary).unwrap().name.clone();
        let fleet = [
            machine("a1", &primary, "authenticator", "10.0.2.1", "healthy"),
            machine("a2", &other, "authenticator", "10.0.2.2", "healthy"),
        ];
        let mut observed = Observed {
            fleet: fleet.iter().collect(),
            ..Observed::default()
        };
        // By default the primary's.
        assert_eq!(
            choose_authenticator(&d, &observed, None, true),
            (Some(primary.clone()), None)
        );
        // Booting (not yet serving, not judged): no move.
        let booting = [
            machine("a1", &primary, "authenticator", "10.0.2.1", "created"),
            machine("a2", &other, "authenticator", "10.0.2.2", "healthy"),
        ];
        let waiting = Observed {
            fleet: booting.iter().collect(),
            ..Observed::default()
        };
        assert_eq!(
            choose_authenticator(&d, &waiting, None, true),
            (Some(primary.clone()), None)
        );
        // Judged unhealthy: it moves to the serving standby, with why.
        let sick = health("a1", false);
        observed.health.insert("a1".into(), &sick);
        let (to, moved) = choose_authenticator(&d, &observed, None, true);
        assert_eq!(to.as_deref(), Some(other.as_str()));
        let moved = moved.unwrap();
        assert_eq!(
            (moved.from.as_str(), moved.to.as_str()),
            (primary.as_str(), other.as_str())
        );
        assert!(moved.reason.contains("a1 unhealthy"), "{moved:?}");
        // Automatic fail-over off: it stays.
        assert_eq!(
            choose_authenticator(&d, &observed, None, false),
            (Some(primary.clone()), None)
        );
        // Recorded on the standby, the primary healthy again: it stays where it was moved.
        observed.health.clear();
        assert_eq!(
            choose_authenticator(&d, &observed, Some(&other), true),
            (Some(other.clone()), None)
        );
        // The region moved to is no longer deployed: back to the primary.
        let (to, moved) = choose_authenticator(&d, &observed, Some("gone-region"), true);
        assert_eq!(to.as_deref(), Some(primary.as_str()));
        assert_eq!(moved.unwrap().from, "gone-region");
        // And the name holds exactly the active region's authenticator.
        observed.active_authenticator_region = Some(other.clone());
        let (sets, _) = desired(&d, &observed);
        let auth = sets.iter().find(|s| s.name == authenticator_name(&d)).unwrap();
        assert_eq!(auth.addresses, BTreeSet::from(["10.0.2.2".to_owned()]));
    }

    /// The seed's three regions (the original toolkit's templates).
    fn deployment() -> Deployment {
        flotilla_integration_tests::templates::seed_import().deployment
    }
}
