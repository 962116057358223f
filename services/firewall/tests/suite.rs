//! The firewall service against the simulator, over the bus. The managed database and the machines are
//! created for real at the simulated providers; the views the service follows are written as their owners
//! write them; what the providers hold is read back.
//!
//! - the four-provider deployment (primary and DBaaS on Linode, secondaries on Exoscale, Vultr and
//!   DigitalOcean): the allow-list holds exactly the primary's VPC and the secondaries' webservers and
//!   database machines; a scale-out of one secondary 1 → 5 adds exactly the 4 new addresses, a scale-in
//!   takes them away; a machine judged unhealthy (gone without a clean shutdown) leaves after the expiry;
//!   the original toolkit's markers are written, read, and expire; `why` explains;
//! - native firewalls on all four providers: rules as specified, every machine attached, a machine added
//!   later attached; rules and the allow-list edited out of band are put back, with `restored` events;
//! - a restart and redelivered view changes write nothing twice; a provider error leaves the previous list
//!   and is ridden out; DigitalOcean's 100-entry limit is refused clearly, the previous list kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// The scenarios are long async functions.
#![recursion_limit = "256"]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, Timing, four_providers, host};
use flotilla_bus::{PublishConfig, Publisher};
use flotilla_cloud::{FirewallRule, Protocol};
use flotilla_cloudsim::{Fault, FaultKind, Provider};
use flotilla_proto::{
    AllowListChanged, AllowVerdict, AnyEvent, CommandMeta, FirewallChanged, FirewallsView,
    ReconcileFirewalls, RuleSet, ShowFirewalls, ShowMachineRules, WhyAllowed,
};
use flotilla_spec::{CloudProvider, Deployment, Role};

fn allow_list_events(h: &Harness, d: &Deployment) -> Vec<AllowListChanged> {
    h.seen(|e| match e {
        AnyEvent::AllowList(a) if a.deployment == d.name => Some(a.clone()),
        _ => None,
    })
}

fn firewall_events(h: &Harness, d: &Deployment) -> Vec<FirewallChanged> {
    h.seen(|e| match e {
        AnyEvent::Firewall(f) if f.deployment == d.name => Some(f.clone()),
        _ => None,
    })
}

async fn reconcile(h: &Harness, d: &Deployment) {
    let cmd = ReconcileFirewalls {
        meta: CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: d.regions[0].name.clone(),
    };
    let publisher = Publisher::new(h.client.clone(), PublishConfig::default());
    publisher.publish_command(&cmd).await.unwrap();
}

async fn why(h: &Harness, d: &Deployment, ip: &str) -> AllowVerdict {
    h.api(
        "why",
        &WhyAllowed {
            deployment: d.name.clone(),
            ip: ip.into(),
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_follows_the_fleet_across_four_providers() {
    let h = Harness::start(Timing {
        // Long enough that a marker is seen before it expires on a loaded machine (3 s failed in CI there:
        // the marker expired before the reconcile read it).
        expiry: Duration::from_secs(10),
        ..Timing::default()
    })
    .await;
    let d = four_providers("shop");
    let providers: std::collections::BTreeSet<CloudProvider> = d.regions.iter().map(|r| r.provider).collect();
    assert_eq!((d.regions.len(), providers.len()), (4, 4));
    let vpc = d.regions[0].vpc.cidr.to_string();
    h.database(&d).await;
    h.deploy(&d).await;
    h.wait_for_list(&d, std::slice::from_ref(&vpc), "the primary's VPC only")
        .await;

    // One webserver per region, a database machine in Exoscale's, a proxy in Vultr's: the secondaries'
    // webservers and database machine are allowed; the primary's webserver and the proxy are not.
    let primary_ws = h.machine(&d, "gb-lon", Role::Webserver, "ws-lon").await;
    let gva = h.machine(&d, "ch-gva-2", Role::Webserver, "ws-gva").await;
    let gva_db = h.machine(&d, "ch-gva-2", Role::Database, "db-gva").await;
    let ams = h.machine(&d, "ams", Role::Webserver, "ws-ams").await;
    let proxy = h.machine(&d, "ams", Role::ReverseProxy, "rp-ams").await;
    let ams3 = h.machine(&d, "ams3", Role::Webserver, "ws-ams3").await;
    let mut want = vec![
        vpc.clone(),
        host(&gva.public_ipv4),
        host(&gva_db.public_ipv4),
        host(&ams.public_ipv4),
        host(&ams3.public_ipv4),
    ];
    h.wait_for_list(&d, &want, "the secondaries' machines").await;
    // An event named each machine allowed, so a machine can wait for its own.
    common::until("each machine announced", || async {
        let allowed: std::collections::BTreeSet<String> = allow_list_events(&h, &d)
            .into_iter()
            .flat_map(|e| e.machines)
            .collect();
        ["ws-gva", "db-gva", "ws-ams", "ws-ams3"]
            .iter()
            .all(|id| allowed.contains(*id))
    })
    .await;
    let v = why(&h, &d, primary_ws.public_ipv4.as_deref().unwrap()).await;
    assert!(!v.desired && v.at_provider == Some(false), "{v:?}");
    let v = why(&h, &d, proxy.public_ipv4.as_deref().unwrap()).await;
    assert!(!v.desired, "{v:?}");
    let v = why(&h, &d, ams.public_ipv4.as_deref().unwrap()).await;
    assert!(v.desired && v.at_provider == Some(true), "{v:?}");
    assert!(v.why.contains("webserver ws-ams of region ams"), "{v:?}");

    // Scale the Vultr region 1 → 5: exactly the four new addresses appear; back to 1: they go.
    let mut more = Vec::new();
    for i in 0..4 {
        more.push(
            h.machine(&d, "ams", Role::Webserver, &format!("ws-ams-{i}"))
                .await,
        );
    }
    let before = want.clone();
    want.extend(more.iter().map(|m| host(&m.public_ipv4)));
    h.wait_for_list(&d, &want, "scaled out to 5").await;
    for m in &more {
        h.destroy(&d, m).await;
    }
    h.wait_for_list(&d, &before, "scaled back to 1").await;
    let want = before;

    // The old toolkit's markers: one per machine allowed, in the shared bucket of the primary's datastore.
    let home = d.region("gb-lon").unwrap();
    let stores = h.clouds.datastores(&d.name, home).unwrap();
    let bucket = d.bucket("multi-region");
    let markers = |stores: flotilla_datastore::DatastoreSet, bucket: String| async move {
        let mut keys: Vec<String> = stores
            .list(&bucket, "dbaas_ips/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        keys
    };
    let expected: Vec<String> = {
        let mut k: Vec<String> = [&gva, &gva_db, &ams, &ams3]
            .iter()
            .map(|m| format!("dbaas_ips/{}", m.public_ipv4.as_deref().unwrap()))
            .collect();
        k.sort();
        k
    };
    common::until("our markers", || {
        let (stores, bucket) = (h.clouds.datastores(&d.name, home).unwrap(), bucket.clone());
        let expected = expected.clone();
        async move { markers(stores, bucket).await == expected }
    })
    .await;
    // A marker written by one of the old toolkit's machines is allowed, until it is `expiry` old: then it
    // leaves the list and its marker is removed.
    stores
        .put_all(&bucket, "dbaas_ips/192.0.2.77", bytes::Bytes::new())
        .await
        .into_result()
        .unwrap();
    reconcile(&h, &d).await;
    let mut with_marker = want.clone();
    with_marker.push("192.0.2.77/32".into());
    h.wait_for_list(&d, &with_marker, "an old toolkit's marker").await;
    h.wait_for_list(&d, &want, "the marker expired").await;
    common::until("the expired marker removed", || {
        let (stores, bucket) = (h.clouds.datastores(&d.name, home).unwrap(), bucket.clone());
        let expected = expected.clone();
        async move { markers(stores, bucket).await == expected }
    })
    .await;

    // A machine judged unhealthy — gone without a clean shutdown — stays allowed until the expiry, then
    // leaves; a failed one leaves at once.
    h.health(&gva, false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(h.allow_list(&d).await.contains(&host(&gva.public_ipv4)));
    let without_gva: Vec<String> = want
        .iter()
        .filter(|e| **e != host(&gva.public_ipv4))
        .cloned()
        .collect();
    let started = Instant::now();
    h.wait_for_list(&d, &without_gva, "the unhealthy machine expired")
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let v = why(&h, &d, gva.public_ipv4.as_deref().unwrap()).await;
    assert!(!v.desired && v.why.contains("unhealthy since"), "{v:?}");
    let mut failed = gva_db.clone();
    failed.state = "failed".into();
    h.topology.fleet_view().put(&failed).await.unwrap();
    let only: Vec<String> = without_gva
        .iter()
        .filter(|e| **e != host(&gva_db.public_ipv4))
        .cloned()
        .collect();
    h.wait_for_list(&d, &only, "the failed machine left").await;

    // A machine kept for its expiry (unhealthy) and then destroyed leaves at once: the wake-up its expiry
    // asked for must not hold back the change (it did, and a scaled-in webserver stayed allowed until then).
    // An old toolkit's marker written with it, and waited for, shows a run has seen the unhealthy machine.
    h.health(&ams3, false).await;
    stores
        .put_all(&bucket, "dbaas_ips/192.0.2.78", bytes::Bytes::new())
        .await
        .into_result()
        .unwrap();
    reconcile(&h, &d).await;
    let mut with_marker = only.clone();
    with_marker.push("192.0.2.78/32".into());
    h.wait_for_list(
        &d,
        &with_marker,
        "an old toolkit's marker, the unhealthy machine kept",
    )
    .await;
    let started = Instant::now();
    h.destroy(&d, &ams3).await;
    let only: Vec<String> = only
        .iter()
        .filter(|e| **e != host(&ams3.public_ipv4))
        .cloned()
        .collect();
    let mut with_marker = only.clone();
    with_marker.push("192.0.2.78/32".into());
    h.wait_for_list(&d, &with_marker, "the unhealthy machine destroyed")
        .await;
    assert!(
        // The first expiry (the machine's and the marker's) is about 9 s from here.
        started.elapsed() < Duration::from_secs(5),
        "the destroyed machine waited for an expiry: {:?}",
        started.elapsed()
    );
    h.wait_for_list(&d, &only, "the second marker expired").await;

    // The API shows it all, and plans nothing.
    let view: FirewallsView = h
        .api(
            "show",
            &ShowFirewalls {
                deployment: d.name.clone(),
            },
        )
        .await
        .unwrap();
    let list = view.allow_list.unwrap();
    assert!(
        list.adds.is_empty() && list.removes.is_empty() && list.blocked.is_none(),
        "{list:?}"
    );
    assert!(
        list.excluded
            .iter()
            .any(|x| x.resource_id == "db-gva" && x.why == "failed"),
        "{list:?}"
    );
    h.shutdown().await;
}

/// The inbound rules `role` should have in `region` (what they allow).
fn expected_rules(d: &Deployment, region: &str, role: Role) -> Vec<FirewallRule> {
    let inputs = flotilla_firewall::plan::RuleInputs {
        control_plane: vec!["198.51.100.7/32".parse().unwrap()],
        cloudflare: flotilla_firewall::plan::CLOUDFLARE_IPV4
            .iter()
            .map(|c| c.parse().unwrap())
            .collect(),
    };
    flotilla_firewall::plan::rules(d, d.region(region).unwrap(), role, &inputs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_firewalls_on_all_four_providers_and_drift_put_back() {
    let h = Harness::start(Timing::default()).await;
    let d = four_providers("store");
    h.database(&d).await;
    h.deploy(&d).await;
    let mut machines = Vec::new();
    for r in &d.regions {
        machines.push(
            h.machine(&d, &r.name, Role::Webserver, &format!("ws-{}", r.name))
                .await,
        );
        machines.push(
            h.machine(&d, &r.name, Role::ReverseProxy, &format!("rp-{}", r.name))
                .await,
        );
    }
    for m in &machines {
        let role = if m.role == "webserver" {
            Role::Webserver
        } else {
            Role::ReverseProxy
        };
        let want = flotilla_firewall::plan::allowed(&expected_rules(&d, &m.region, role));
        common::until(&format!("{} behind its firewall", m.resource_id), || async {
            h.firewall(&d, &m.region, role).await.is_some_and(|f| {
                flotilla_firewall::plan::allowed(&f.rules) == want
                    && f.machine_ids.iter().any(|id| Some(id) == m.provider_id.as_ref())
            })
        })
        .await;
    }
    // HTTPS reaches the proxies from Cloudflare only; SSH from the control plane only where it is
    // outside the VPC (the secondaries of the seed).
    let gva = h.firewall(&d, "ch-gva-2", Role::ReverseProxy).await.unwrap();
    let allowed = flotilla_firewall::plan::allowed(&gva.rules);
    assert!(allowed.contains(&(
        Protocol::Tcp,
        Some((443, 443)),
        "173.245.48.0/20".parse().unwrap()
    )));
    assert!(!allowed.contains(&(
        Protocol::Tcp,
        Some((443, 443)),
        flotilla_firewall::plan::anywhere()
    )));
    let ssh = d.region("ch-gva-2").unwrap().ssh_port;
    assert!(allowed.contains(&(
        Protocol::Tcp,
        Some((ssh, ssh)),
        "198.51.100.7/32".parse().unwrap()
    )));
    // One firewall per role the spec gives machines, in every region, each created once.
    let created: Vec<(String, String)> = firewall_events(&h, &d)
        .into_iter()
        .filter(|e| e.outcome == "created")
        .map(|e| (e.region, e.role))
        .collect();
    let mut expected: Vec<(String, String)> = d
        .regions
        .iter()
        .flat_map(|r| {
            Role::ALL
                .iter()
                .filter(|role| r.machines.get(**role).count > 0)
                .map(|role| (r.name.clone(), role.as_str().to_owned()))
        })
        .collect();
    let mut sorted = created.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "{created:?}");

    // A machine added later is attached.
    let late = h.machine(&d, "ams3", Role::Webserver, "ws-ams3-late").await;
    let started = Instant::now();
    common::until("the late machine attached", || async {
        h.firewall(&d, "ams3", Role::Webserver).await.is_some_and(|f| {
            f.machine_ids
                .iter()
                .any(|id| Some(id) == late.provider_id.as_ref())
        })
    })
    .await;
    println!("a machine added later attached after {:?}", started.elapsed());

    // Rules changed behind our back are put back (on demand here; the resync does it too).
    let region = d.region("ams").unwrap();
    let cloud = h.clouds.region(&d.name, region).unwrap();
    let fw = h.firewall(&d, "ams", Role::Webserver).await.unwrap();
    let mut opened = expected_rules(&d, "ams", Role::Webserver);
    opened.push(FirewallRule {
        protocol: Protocol::Tcp,
        ports: Some((22, 22)),
        sources: vec![flotilla_firewall::plan::anywhere()],
        description: "opened by hand".into(),
    });
    cloud
        .network
        .replace_firewall_rules(&fw.id, &opened)
        .await
        .unwrap();
    reconcile(&h, &d).await;
    let want = flotilla_firewall::plan::allowed(&expected_rules(&d, "ams", Role::Webserver));
    common::until("the rules put back", || async {
        h.firewall(&d, "ams", Role::Webserver)
            .await
            .is_some_and(|f| flotilla_firewall::plan::allowed(&f.rules) == want)
    })
    .await;
    common::until("a restored event", || async {
        firewall_events(&h, &d)
            .iter()
            .any(|e| e.outcome == "restored" && e.region == "ams" && e.role == "webserver")
    })
    .await;

    // The allow-list edited behind our back is put back too.
    let home = d.region("gb-lon").unwrap();
    let db_cloud = h.clouds.region(&d.name, home).unwrap();
    let db = db_cloud
        .databases
        .find_database("test-cluster")
        .await
        .unwrap()
        .unwrap();
    let good = h.allow_list(&d).await;
    let mut tampered: Vec<ipnet::Ipv4Net> = good.iter().map(|n| n.parse().unwrap()).collect();
    tampered.push("0.0.0.0/0".parse().unwrap());
    db_cloud
        .databases
        .replace_allow_list(&db.id, &tampered)
        .await
        .unwrap();
    reconcile(&h, &d).await;
    h.wait_for_list(&d, &good, "the allow-list put back").await;
    common::until("an allow-list restored event", || async {
        allow_list_events(&h, &d)
            .iter()
            .any(|e| e.outcome == "restored" && e.removed == ["0.0.0.0/0"])
    })
    .await;

    // On-machine firewalls (ACTIVE_FIREWALLS 3 in the seed): each role's rule set was published, and a
    // machine asks for its own.
    let sets: Vec<RuleSet> = h.seen(|e| match e {
        AnyEvent::Rules(r) if r.deployment == d.name => Some(r.clone()),
        _ => None,
    });
    assert!(
        sets.iter().any(|s| s.region == "ams3" && s.role == "webserver"),
        "{sets:?}"
    );
    let mine: RuleSet = h
        .api(
            "machine-rules",
            &ShowMachineRules {
                deployment: d.name.clone(),
                resource_id: "ws-ams3-late".into(),
            },
        )
        .await
        .unwrap();
    assert!(
        mine.on_machine && mine.role == "webserver" && !mine.rules.is_empty(),
        "{mine:?}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_redeliveries_provider_errors_and_the_digitalocean_limit() {
    let mut h = Harness::start(Timing::default()).await;
    let d = four_providers("cafe");
    h.database(&d).await;
    h.deploy(&d).await;
    let a = h.machine(&d, "ams", Role::Webserver, "ws-a").await;
    let vpc = d.regions[0].vpc.cidr.to_string();
    let want = vec![vpc.clone(), host(&a.public_ipv4)];
    h.wait_for_list(&d, &want, "one machine").await;
    common::until("its firewall", || async {
        h.firewall(&d, "ams", Role::Webserver).await.is_some()
    })
    .await;
    let writes = |h: &Harness| allow_list_events(h, &d).len() + firewall_events(h, &d).len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = writes(&h);

    // A restart, and the same view changes delivered again: nothing is written twice.
    h.stop_service().await;
    h.start_service(Timing::default()).await;
    h.topology.fleet_view().put(&a).await.unwrap();
    h.deploy(&d).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(writes(&h), settled, "a restart or a redelivery wrote again");
    h.wait_for_list(&d, &want, "after the restart").await;

    // A provider error: the previous list stays, and the change lands once the provider is back.
    h.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::ServerErrors {
            count: 6,
            status: Some(503),
        },
    });
    let b = h.machine(&d, "ams3", Role::Webserver, "ws-b").await;
    let mut want = want.clone();
    want.push(host(&b.public_ipv4));
    h.wait_for_list(&d, &want, "after the provider's errors").await;

    // A database on DigitalOcean and 100 machines in the other regions: 101 entries is one too many.
    let mut big = four_providers("big");
    // (Its own site, so its own shared bucket of the old toolkit's markers.)
    big.website_url = "big.example.com".into();
    for r in &mut big.regions {
        r.primary = r.name == "ams3";
    }
    let lon_dbaas = big.regions[0].dbaas.take();
    let ams3 = big.regions.iter_mut().find(|r| r.name == "ams3").unwrap();
    if let Some(flotilla_spec::Dbaas::Primary {
        engine,
        version,
        database,
        user,
        label,
        mode,
        ..
    }) = lon_dbaas
    {
        ams3.dbaas = Some(flotilla_spec::Dbaas::Primary {
            mode,
            engine,
            version,
            provider_region: "ams3".into(),
            size: "db-s-1vcpu-1gb".into(),
            nodes: 1,
            label,
            database,
            user,
            vpc_id: None,
            subnet_id: None,
        });
    }
    h.database(&big).await;
    h.deploy(&big).await;
    let big_vpc = big.region("ams3").unwrap().vpc.cidr.to_string();
    h.wait_for_list(
        &big,
        std::slice::from_ref(&big_vpc),
        "the DigitalOcean database's VPC",
    )
    .await;
    // The machines appear while the service is down, so its first run sees all of them.
    h.stop_service().await;
    for i in 0..100u32 {
        let m = flotilla_proto::MachineRecord {
            deployment: big.name.clone(),
            region: "ams".into(),
            resource_id: format!("ws-{i}"),
            role: "webserver".into(),
            name: format!("ws-{i}"),
            size: "s".into(),
            provider: "vultr".into(),
            provider_id: None,
            state: "running".into(),
            public_ipv4: Some(format!("203.0.{}.{}", 100 + i / 200, 10 + i % 200)),
            private_ipv4: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            event_id: uuid::Uuid::now_v7(),
        };
        h.topology.fleet_view().put(&m).await.unwrap();
    }
    h.start_service(Timing::default()).await;
    let view = common::until_some("the limit reported", || async {
        let view: FirewallsView = h
            .api(
                "show",
                &ShowFirewalls {
                    deployment: big.name.clone(),
                },
            )
            .await
            .ok()?;
        let list = view.allow_list?;
        list.blocked
            .clone()
            .filter(|_| list.desired.len() == 101)
            .map(|_| list)
    })
    .await;
    let blocked = view.blocked.unwrap();
    assert!(
        blocked.contains("needs 101 entries") && blocked.contains("at most 100"),
        "{blocked}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.allow_list(&big).await,
        vec![big_vpc],
        "the previous list is kept"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_firewalls_is_honoured_per_region() {
    let h = Harness::start(Timing::default()).await;
    let mut d = four_providers("modes");
    d.regions.truncate(2);
    // ACTIVE_FIREWALLS=0 in the primary, 1 (on the machines only) in the secondary.
    d.regions[0].firewall = flotilla_spec::FirewallMode::None;
    d.regions[1].firewall = flotilla_spec::FirewallMode::OnMachine;
    h.database(&d).await;
    h.deploy(&d).await;
    let primary = h
        .machine(&d, &d.regions[0].name.clone(), Role::Webserver, "ws-p")
        .await;
    let secondary = h
        .machine(&d, &d.regions[1].name.clone(), Role::Webserver, "ws-s")
        .await;
    let vpc = d.regions[0].vpc.cidr.to_string();
    h.wait_for_list(&d, &[vpc, host(&secondary.public_ipv4)], "the allow-list")
        .await;
    common::until("the secondary's rule sets published", || async {
        h.seen(|e| match e {
            AnyEvent::Rules(r) if r.deployment == d.name => Some(r.region.clone()),
            _ => None,
        })
        .contains(&secondary.region)
    })
    .await;
    // (The run that wrote the list reconciled the regions at the same time: let it end.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let published: Vec<String> = h.seen(|e| match e {
        AnyEvent::Rules(r) if r.deployment == d.name => Some(r.region.clone()),
        _ => None,
    });
    assert!(!published.contains(&primary.region), "{published:?}");
    for (region, role) in [
        (&primary.region, Role::Webserver),
        (&secondary.region, Role::Webserver),
    ] {
        assert!(
            h.firewall(&d, region, role).await.is_none(),
            "{region}: a native firewall"
        );
    }
    assert!(
        firewall_events(&h, &d).is_empty(),
        "{:?}",
        firewall_events(&h, &d)
    );
    // The machine asks for its rules (the on-machine agent's view).
    let rules: RuleSet = h
        .api(
            "machine-rules",
            &ShowMachineRules {
                deployment: d.name.clone(),
                resource_id: "ws-s".into(),
            },
        )
        .await
        .unwrap();
    assert!(rules.on_machine && !rules.rules.is_empty(), "{rules:?}");
    h.shutdown().await;
}
