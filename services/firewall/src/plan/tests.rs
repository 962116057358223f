#![allow(clippy::unwrap_used)]

use super::*;

fn seed() -> Deployment {
    flotilla_integration_tests::templates::seed_import().deployment
}

fn machine(region: &str, role: &str, id: &str, ip: Option<&str>, state: &str) -> MachineRecord {
    MachineRecord {
        deployment: seed().name,
        region: region.into(),
        resource_id: id.into(),
        role: role.into(),
        name: id.into(),
        size: "s".into(),
        provider: "linode".into(),
        provider_id: Some(format!("p-{id}")),
        state: state.into(),
        public_ipv4: ip.map(str::to_owned),
        private_ipv4: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        event_id: uuid::Uuid::now_v7(),
    }
}

fn unhealthy(m: &MachineRecord, since: DateTime<Utc>) -> MachineHealth {
    MachineHealth {
        meta: flotilla_proto::EventMeta::new(uuid::Uuid::now_v7(), "test"),
        deployment: m.deployment.clone(),
        region: m.region.clone(),
        resource_id: m.resource_id.clone(),
        role: m.role.clone(),
        public_ipv4: m.public_ipv4.clone(),
        healthy: false,
        failures: 3,
        reason: "connection refused".into(),
        checked_at: since,
        since,
    }
}

fn inputs() -> RuleInputs {
    RuleInputs {
        control_plane: vec!["198.51.100.7/32".parse().unwrap()],
        cloudflare: CLOUDFLARE_IPV4.iter().map(|c| c.parse().unwrap()).collect(),
    }
}

#[test]
fn the_seed_database_lives_in_the_primary_and_allows_its_vpc_and_the_other_regions_machines() {
    let d = seed();
    let (home, label) = database_home(&d).unwrap();
    assert_eq!((home.name.as_str(), label), ("gb-lon", "test-cluster"));
    let fleet = [
        machine("gb-lon", "webserver", "ws-lon", Some("203.0.113.1"), "healthy"),
        machine("nl-ams", "webserver", "ws-ams", Some("203.0.113.2"), "created"),
        machine("nl-ams", "database", "db-ams", Some("203.0.113.3"), "running"),
        machine(
            "nl-ams",
            "reverse-proxy",
            "rp-ams",
            Some("203.0.113.4"),
            "healthy",
        ),
        machine("ch-gva-2", "webserver", "ws-gva", None, "created"),
        machine(
            "ch-gva-2",
            "webserver",
            "ws-gva-failed",
            Some("203.0.113.6"),
            "failed",
        ),
        machine("elsewhere", "webserver", "ws-x", Some("203.0.113.7"), "healthy"),
    ];
    let list = allow_list(
        &d,
        home,
        fleet.iter(),
        &BTreeMap::new(),
        &[],
        Utc::now(),
        chrono::Duration::minutes(15),
    );
    let nets: Vec<String> = list.nets().iter().map(ToString::to_string).collect();
    // The VPC; the other regions' webserver and database machine — a machine just created included —
    // and neither the primary's own machines, nor a reverse proxy, nor a region not deployed.
    assert_eq!(nets, ["10.0.1.0/24", "203.0.113.2/32", "203.0.113.3/32"]);
    let whys: Vec<(&str, &str)> = list
        .excluded
        .iter()
        .map(|x| (x.resource_id.as_str(), x.why.as_str()))
        .collect();
    assert_eq!(
        whys,
        [("ws-gva", "no public address yet"), ("ws-gva-failed", "failed")]
    );
    let (yes, why_yes) = why(&list, "203.0.113.2".parse().unwrap());
    assert!(
        yes && why_yes.contains("webserver ws-ams of region nl-ams"),
        "{why_yes}"
    );
    let (no, why_no) = why(&list, "203.0.113.6".parse().unwrap());
    assert!(!no && why_no.ends_with("is failed"), "{why_no}");
    let (no, why_no) = why(&list, "203.0.113.1".parse().unwrap());
    assert!(
        !no && why_no.contains("no webserver or database machine"),
        "{why_no}"
    );
    assert_eq!(list.next_expiry, None);
}

#[test]
fn an_unhealthy_machine_stays_until_its_expiry_then_leaves_and_markers_expire_too() {
    let d = seed();
    let (home, _) = database_home(&d).unwrap();
    let now = Utc::now();
    let expiry = chrono::Duration::minutes(15);
    let m = machine("nl-ams", "webserver", "ws-ams", Some("203.0.113.2"), "healthy");
    let recent = unhealthy(&m, now - chrono::Duration::minutes(5));
    let health = BTreeMap::from([("ws-ams", &recent)]);
    let markers = [
        Marker {
            ip: "192.0.2.50".parse().unwrap(),
            written: now - chrono::Duration::minutes(1),
            ours: false,
        },
        Marker {
            ip: "192.0.2.51".parse().unwrap(),
            written: now - chrono::Duration::hours(3),
            ours: false,
        },
        // A marker of a machine we know is not listed twice.
        Marker {
            ip: "203.0.113.2".parse().unwrap(),
            written: now,
            ours: false,
        },
        // Ours (the mirror of a machine since destroyed) allows nothing.
        Marker {
            ip: "192.0.2.60".parse().unwrap(),
            written: now,
            ours: true,
        },
    ];
    let list = allow_list(&d, home, [&m].into_iter(), &health, &markers, now, expiry);
    let nets: Vec<String> = list.nets().iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["10.0.1.0/24", "192.0.2.50/32", "203.0.113.2/32"]);
    // Run again when the first of them expires: the unhealthy machine's, in 10 minutes (the marker's is
    // in 14).
    assert_eq!(list.next_expiry, Some(now + chrono::Duration::minutes(10)));
    let (no, why_no) = why(&list, "192.0.2.51".parse().unwrap());
    assert!(!no && why_no.contains("expired after 15m"), "{why_no}");

    let old = unhealthy(&m, now - chrono::Duration::minutes(16));
    let health = BTreeMap::from([("ws-ams", &old)]);
    let list = allow_list(&d, home, [&m].into_iter(), &health, &[], now, expiry);
    assert_eq!(list.nets(), vec![home.vpc.cidr]);
    assert!(
        list.excluded[0].why.starts_with("unhealthy since"),
        "{:?}",
        list.excluded
    );
}

#[test]
fn rules_follow_the_original_per_role() {
    let d = seed();
    let primary = &d.regions[0];
    assert!(primary.build_machine_vpc);
    let proxy = allowed(&rules(&d, primary, Role::ReverseProxy, &inputs()));
    let vpc = primary.vpc.cidr;
    // All TCP from the VPC; HTTPS from Cloudflare (the seed's DNS is Cloudflare); no SSH from the control
    // plane, which is inside the VPC here.
    assert!(proxy.contains(&(Protocol::Tcp, None, vpc)));
    assert!(proxy.contains(&(
        Protocol::Tcp,
        Some((443, 443)),
        "173.245.48.0/20".parse().unwrap()
    )));
    assert!(
        !proxy
            .iter()
            .any(|(_, p, _)| *p == Some((primary.ssh_port, primary.ssh_port)))
    );
    assert!(!proxy.contains(&(Protocol::Tcp, Some((443, 443)), anywhere())));
    // Webservers behind proxies get no HTTPS from outside; the database machine its port from the VPC.
    let web = allowed(&rules(&d, primary, Role::Webserver, &inputs()));
    assert_eq!(web.len(), 1, "{web:?}");
    let db = allowed(&rules(&d, primary, Role::Database, &inputs()));
    assert!(db.contains(&(Protocol::Tcp, Some((primary.db_port, primary.db_port)), vpc)));

    // A region whose control plane is outside the VPC, without proxies, DNS elsewhere, an extra port.
    let mut d2 = d.clone();
    d2.dns.provider = DnsProvider::Linode;
    let r = &mut d2.regions[1];
    assert!(!r.build_machine_vpc);
    r.machines.reverse_proxy.count = 0;
    r.extra_ports.push(flotilla_spec::ExtraPort {
        role: Role::Webserver,
        protocol: "udp".into(),
        port: 9000,
        to_port: Some(9010),
        sources: Vec::new(),
    });
    let r = d2.regions[1].clone();
    let web = allowed(&rules(&d2, &r, Role::Webserver, &inputs()));
    let cp: Ipv4Net = "198.51.100.7/32".parse().unwrap();
    assert!(web.contains(&(Protocol::Tcp, Some((r.ssh_port, r.ssh_port)), cp)));
    assert!(web.contains(&(Protocol::Tcp, Some((443, 443)), cp)));
    assert!(web.contains(&(Protocol::Tcp, Some((443, 443)), anywhere())));
    assert!(web.contains(&(Protocol::Udp, Some((9000, 9010)), anywhere())));
    assert_eq!(firewall_name(&r, Role::Webserver), "adt-webserver-test-nl-ams");
}

#[test]
fn a_firewall_is_planned_from_what_it_allows_not_how_the_provider_groups_it() {
    let d = seed();
    let primary = &d.regions[0];
    let desired = rules(&d, primary, Role::ReverseProxy, &inputs());
    let machines = vec![
        ("rp1".to_owned(), "101".to_owned()),
        ("rp2".to_owned(), "102".to_owned()),
    ];
    let create = firewall_plan(&desired, None, &machines);
    assert!(create.create && create.attach.len() == 2);
    // The provider holds the same, one rule per source and without descriptions, with rp1 attached.
    let split: Vec<FirewallRule> = desired
        .iter()
        .flat_map(|r| {
            r.sources.iter().map(|s| FirewallRule {
                sources: vec![*s],
                description: String::new(),
                ..r.clone()
            })
        })
        .rev()
        .collect();
    let current = Firewall {
        id: "fw".into(),
        name: firewall_name(primary, Role::ReverseProxy),
        rules: split,
        machine_ids: vec!["101".into()],
    };
    let p = firewall_plan(&desired, Some(&current), &machines);
    assert_eq!(
        p,
        FirewallPlan {
            create: false,
            write_rules: false,
            attach: vec![("rp2".into(), "102".into())]
        }
    );
    // Changed behind our back: a rule opened to anywhere.
    let mut drifted = current.clone();
    drifted.rules.push(FirewallRule {
        protocol: Protocol::Tcp,
        ports: Some((22, 22)),
        sources: vec![anywhere()],
        description: "hand-made".into(),
    });
    drifted.machine_ids.push("102".into());
    let p = firewall_plan(&desired, Some(&drifted), &machines);
    assert!(p.write_rules && p.attach.is_empty() && !p.create);
    assert!(firewall_plan(&desired, Some(&current), &machines[..1]).is_empty());
}

#[test]
fn lists_compare_as_providers_normalise_them() {
    let a: Vec<Ipv4Net> = vec!["10.0.1.0/24".parse().unwrap(), "203.0.113.9/32".parse().unwrap()];
    // Linode answers sorted, with bare addresses as /32; a host address inside a range is the range.
    let b: Vec<Ipv4Net> = vec![
        "203.0.113.9/32".parse().unwrap(),
        "10.0.1.7/24".parse().unwrap(),
        "203.0.113.9/32".parse().unwrap(),
    ];
    assert_eq!(list_diff(&a, &b), (vec![], vec![]));
    assert_eq!(over_limit(flotilla_spec::CloudProvider::DigitalOcean, 100), None);
    let refused = over_limit(flotilla_spec::CloudProvider::DigitalOcean, 101).unwrap();
    assert!(
        refused.contains("needs 101 entries") && refused.contains("at most 100"),
        "{refused}"
    );
    assert_eq!(over_limit(flotilla_spec::CloudProvider::Linode, 1000), None);
    let c: Vec<Ipv4Net> = vec!["10.0.1.0/24".parse().unwrap(), "198.51.100.1/32".parse().unwrap()];
    assert_eq!(
        list_diff(&a, &c),
        (
            vec!["203.0.113.9/32".parse().unwrap()],
            vec!["198.51.100.1/32".parse().unwrap()]
        )
    );
}
