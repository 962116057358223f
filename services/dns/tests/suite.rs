//! The dns service against the simulator, over the bus, on every DNS provider: the views (desired state,
//! fleet, health) are written as their owners write them, and the records are read back from the
//! simulated provider.
//!
//! - each of Cloudflare, Linode, DigitalOcean, Vultr and Exoscale: the seed's three regions → exactly their
//!   reverse proxies; a region destroyed → its records go; a proxy judged unhealthy leaves and returns;
//!   every proxy unhealthy → the last set is kept and an alarm raised, cleared when one is back; foreign
//!   records at the same name and at another name survive every run; a no-op run writes nothing;
//! - the seed's three regions, then four regions on four providers;
//! - two deployments in one zone never touch each other's records; hand-over and adoption delete nothing
//!   (on SQLite and, when reachable, PostgreSQL);
//! - the authenticator fails over by command and by health, once per change;
//! - a redelivered view change changes nothing twice, and a 429 storm slows convergence but does not
//!   break it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, PATIENCE, addresses, deployment};
use flotilla_bus::{PublishConfig, Publisher};
use flotilla_cloudsim::{Fault, FaultKind, Provider};
use flotilla_integration_tests::{TestDb, eventually};
use flotilla_proto::{
    Adopt, AnyEvent, CommandMeta, FailoverAuthenticator, HandOver, OwnershipChanged, RecordsView, ShowRecords,
};
use flotilla_spec::{CloudProvider, DnsProvider};

const RESYNC: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dns_provider_keeps_exactly_the_serving_reverse_proxies() {
    let h = Harness::start(RESYNC).await;
    let providers = [
        DnsProvider::Cloudflare,
        DnsProvider::Linode,
        DnsProvider::DigitalOcean,
        DnsProvider::Vultr,
        DnsProvider::Exoscale,
    ];
    let runs = providers.iter().enumerate().map(|(n, p)| scenario(&h, *p, n));
    futures::future::join_all(runs).await;
    h.shutdown().await;
}

/// One provider's run (`n` keeps the addresses and names of concurrent runs apart).
async fn scenario(h: &Harness, provider: DnsProvider, n: usize) {
    let p = provider.to_string().to_ascii_lowercase();
    let site = format!("www-{p}.example.com");
    let d = deployment(&format!("site-{p}"), &site, provider, 3, 1, 0);
    let ip = |i: usize| format!("198.51.{}.{}", 100 + n, 10 + i);
    let foreign = format!("192.0.2.{}", 100 + n);
    let other_name = format!("mail-{p}.example.com");
    h.foreign(&d, &site, &foreign).await;
    h.foreign(&d, &other_name, &foreign).await;

    h.deploy(&d).await;
    let mut proxies = Vec::new();
    for (i, r) in d.regions.iter().enumerate() {
        proxies.push(
            h.machine(&d, &r.name, "reverse-proxy", &format!("rp{i}"), &ip(i))
                .await,
        );
        // Webservers behind proxies never serve the site themselves.
        h.machine(&d, &r.name, "webserver", &format!("ws{i}"), &ip(50 + i))
            .await;
    }
    let (a, b, c) = (ip(0), ip(1), ip(2));
    h.wait_for(
        &d,
        &site,
        &[&a, &b, &c, &foreign],
        &format!("{p}: the three proxies"),
    )
    .await;
    // Written as the original toolkit writes them.
    for r in h.records(&d, &site).await.iter().filter(|r| r.content != foreign) {
        match provider {
            DnsProvider::Cloudflare => assert_eq!((r.ttl, r.proxied), (1, Some(true)), "{p}: {r:?}"),
            _ => assert_eq!(r.ttl, 60, "{p}: {r:?}"),
        }
    }
    // Converged: the API plans nothing and reports the foreign record as a conflict.
    let view: RecordsView = h
        .api(
            "records",
            &ShowRecords {
                deployment: d.name.clone(),
            },
        )
        .await
        .unwrap();
    let at = view.names.iter().find(|v| v.name == site).unwrap();
    assert!(at.creates.is_empty() && at.deletes.is_empty(), "{p}: {view:?}");
    assert_eq!(at.current.len(), 3, "{p}: {view:?}");
    assert!(
        at.conflicts.iter().any(|c| c.starts_with(&foreign)),
        "{p}: {view:?}"
    );

    // A region destroyed: its proxy leaves.
    let mut smaller = d.clone();
    let gone = smaller.regions.pop().unwrap();
    h.deploy(&smaller).await;
    h.destroy(&proxies[2]).await;
    h.wait_for(
        &d,
        &site,
        &[&a, &b, &foreign],
        &format!("{p}: region {} gone", gone.name),
    )
    .await;

    // A proxy judged unhealthy leaves, and returns.
    h.health(&proxies[0], false).await;
    h.wait_for(&d, &site, &[&b, &foreign], &format!("{p}: unhealthy out"))
        .await;
    let view: RecordsView = h
        .api(
            "records",
            &ShowRecords {
                deployment: d.name.clone(),
            },
        )
        .await
        .unwrap();
    let why = view.excluded.iter().find(|e| e.resource_id == "rp0").unwrap();
    assert!(why.why.starts_with("unhealthy since"), "{p}: {why:?}");
    h.health(&proxies[0], true).await;
    h.wait_for(&d, &site, &[&a, &b, &foreign], &format!("{p}: healthy back"))
        .await;

    // Every proxy unhealthy: the last set stays, with an alarm; cleared when one is back. (One at a time,
    // each change seen through: two writes in a row may fall into two debounce windows on a busy machine.)
    h.health(&proxies[0], false).await;
    h.wait_for(&d, &site, &[&b, &foreign], &format!("{p}: the first one out"))
        .await;
    h.health(&proxies[1], false).await;
    let raised = |h: &Harness| {
        h.seen(|e| match e {
            AnyEvent::DnsAlarm(a) if a.deployment == d.name && a.raised => Some(a.clone()),
            _ => None,
        })
    };
    eventually(&format!("{p}: the alarm"), PATIENCE, || async {
        raised(h).first().cloned()
    })
    .await;
    let alarm = raised(h).remove(0);
    assert_eq!(alarm.name, site);
    assert_eq!(alarm.kept, vec![b.clone()], "{p}: {alarm:?}");
    h.wait_for(&d, &site, &[&b, &foreign], &format!("{p}: the last set kept"))
        .await;
    // The other one back: it replaces the kept set.
    h.health(&proxies[0], true).await;
    h.wait_for(&d, &site, &[&a, &foreign], &format!("{p}: one back"))
        .await;
    eventually(&format!("{p}: the alarm cleared"), PATIENCE, || async {
        h.seen(|e| match e {
            AnyEvent::DnsAlarm(a) if a.deployment == d.name && !a.raised => Some(()),
            _ => None,
        })
        .first()
        .copied()
    })
    .await;

    // Every change was announced (the last one's event follows its records: wait for it), and no more.
    let counts = || {
        let changed = h.seen(|e| match e {
            AnyEvent::Records(r) if r.deployment == d.name => Some(r.clone()),
            _ => None,
        });
        let created: usize = changed.iter().map(|r| r.created.len()).sum();
        let deleted: usize = changed.iter().map(|r| r.deleted.len()).sum();
        ((created, deleted), changed)
    };
    // 3 at first, the healthy one back, the other one back; the region gone, the unhealthy one out, the
    // first one out, the kept one replaced.
    eventually(&format!("{p}: every change announced"), PATIENCE, || async {
        (counts().0 == (5, 4)).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (total, changed) = counts();
    assert_eq!(total, (5, 4), "{p}: {changed:?}");

    // What is not ours is as it was.
    assert_eq!(
        addresses(&h.records(&d, &other_name).await),
        [foreign.clone()].into(),
        "{p}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_regions_then_four_regions_on_four_providers() {
    let h = Harness::start(RESYNC).await;
    let site = "www.example.com";
    let mut d = deployment("shop", site, DnsProvider::Cloudflare, 3, 1, 0);
    h.deploy(&d).await;
    let (mut ips, mut rps) = (Vec::new(), Vec::new());
    for (i, r) in d.regions.iter().enumerate() {
        let ip = format!("203.0.113.{}", 10 + i);
        rps.push(
            h.machine(&d, &r.name, "reverse-proxy", &format!("rp{i}"), &ip)
                .await,
        );
        ips.push(ip);
    }
    let want: Vec<&str> = ips.iter().map(String::as_str).collect();
    h.wait_for(&d, site, &want, "the seed's three regions").await;

    // Four regions on four providers: the seed's Linode (gb-lon) and Exoscale (ch-gva-2) regions, its second
    // Linode region (nl-ams) replaced by one on Vultr and one on DigitalOcean.
    let nl_ams = d.regions.remove(1);
    for (name, provider) in [
        ("ams", CloudProvider::Vultr),
        ("ams3", CloudProvider::DigitalOcean),
    ] {
        let mut r = nl_ams.clone();
        r.name = name.into();
        r.provider = provider;
        r.provider_region = name.into();
        d.regions.push(r);
    }
    let providers: std::collections::BTreeSet<CloudProvider> = d.regions.iter().map(|r| r.provider).collect();
    assert_eq!((d.regions.len(), providers.len()), (4, 4), "{providers:?}");
    h.deploy(&d).await;
    h.destroy(&rps[1]).await;
    ips.remove(1);
    for (i, name) in ["ams", "ams3"].into_iter().enumerate() {
        let ip = format!("203.0.113.{}", 20 + i);
        h.machine(&d, name, "reverse-proxy", &format!("rp-{name}"), &ip)
            .await;
        ips.push(ip);
    }
    let want: Vec<&str> = ips.iter().map(String::as_str).collect();
    h.wait_for(&d, site, &want, "four regions on four providers")
        .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deployments_in_one_zone_and_ownership_hand_over_and_adoption_on_sqlite() {
    let h = Harness::start(RESYNC).await;
    ownership(&h).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deployments_in_one_zone_and_ownership_hand_over_and_adoption_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let h = Harness::start_with(RESYNC, Some(db.url.clone())).await;
    ownership(&h).await;
    h.shutdown().await;
    db.cleanup().await;
}

/// On Linode's DNS, which keeps no mark: ownership is the service's registry alone.
async fn ownership(h: &Harness) {
    let alpha = deployment("alpha", "alpha.example.com", DnsProvider::Linode, 1, 2, 0);
    let beta = deployment("beta", "beta.example.com", DnsProvider::Linode, 1, 1, 0);
    let region = alpha.regions[0].name.clone();
    h.deploy(&alpha).await;
    h.deploy(&beta).await;
    let a0 = h
        .machine(&alpha, &region, "reverse-proxy", "a0", "198.51.100.1")
        .await;
    h.machine(&alpha, &region, "reverse-proxy", "a1", "198.51.100.2")
        .await;
    h.machine(&beta, &region, "reverse-proxy", "b0", "198.51.100.3")
        .await;
    h.wait_for(
        &alpha,
        "alpha.example.com",
        &["198.51.100.1", "198.51.100.2"],
        "alpha",
    )
    .await;
    h.wait_for(&beta, "beta.example.com", &["198.51.100.3"], "beta")
        .await;
    let beta_before = h.records(&beta, "beta.example.com").await;
    h.destroy(&a0).await;
    h.wait_for(&alpha, "alpha.example.com", &["198.51.100.2"], "alpha shrinks")
        .await;
    assert_eq!(
        h.records(&beta, "beta.example.com").await,
        beta_before,
        "beta untouched"
    );

    // Hand-over from a deployment still deployed is refused: it would write its records again.
    let alpha2 = deployment("alpha2", "alpha.example.com", DnsProvider::Linode, 1, 2, 0);
    h.deploy(&alpha2).await;
    let refused = h
        .api::<_, OwnershipChanged>(
            "hand-over",
            &HandOver {
                deployment: "alpha2".into(),
                from: "alpha".into(),
                ..HandOver::default()
            },
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("still deployed"), "{refused}");
    // alpha is withdrawn (its records stay until someone owns them), then handed over to alpha2.
    let mut withdrawn = alpha.clone();
    withdrawn.regions.clear();
    h.deploy(&withdrawn).await;
    let before = h.records(&alpha, "alpha.example.com").await;
    let ask = |dry_run| HandOver {
        deployment: "alpha2".into(),
        from: "flotilla:alpha".into(),
        names: Vec::new(),
        dry_run,
    };
    let dry: OwnershipChanged = h.api("hand-over", &ask(true)).await.unwrap();
    assert_eq!(dry.records, vec!["alpha.example.com 198.51.100.2"], "{dry:?}");
    let done: OwnershipChanged = h.api("hand-over", &ask(false)).await.unwrap();
    assert_eq!(done.records, dry.records);
    assert_eq!(
        h.records(&alpha, "alpha.example.com").await,
        before,
        "nothing deleted"
    );
    let view: RecordsView = h
        .api(
            "records",
            &ShowRecords {
                deployment: "alpha2".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(view.names[0].current, vec!["198.51.100.2"], "{view:?}");
    // alpha2's machines: the handed-over record is kept (the same record), the new one added.
    h.machine(&alpha2, &region, "reverse-proxy", "c0", "198.51.100.2")
        .await;
    h.machine(&alpha2, &region, "reverse-proxy", "c1", "198.51.100.5")
        .await;
    h.wait_for(
        &alpha2,
        "alpha.example.com",
        &["198.51.100.2", "198.51.100.5"],
        "alpha2",
    )
    .await;
    let kept = h.records(&alpha2, "alpha.example.com").await;
    assert!(
        kept.iter().any(|r| r.id == before[0].id),
        "{kept:?} keeps {before:?}"
    );

    // Records the original toolkit wrote (no mark, no registry row) are adopted, then reconciled.
    let gamma = deployment("gamma", "gamma.example.com", DnsProvider::Linode, 1, 1, 0);
    let old = h.foreign(&gamma, "gamma.example.com", "198.51.100.7").await;
    h.foreign(&gamma, "gamma.example.com", "198.51.100.8").await;
    h.deploy(&gamma).await;
    let adopted: OwnershipChanged = h
        .api(
            "adopt",
            &Adopt {
                deployment: "gamma".into(),
                dry_run: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(adopted.records.len(), 2, "{adopted:?}");
    h.machine(&gamma, &region, "reverse-proxy", "g0", "198.51.100.7")
        .await;
    h.wait_for(
        &gamma,
        "gamma.example.com",
        &["198.51.100.7"],
        "gamma: the stale one goes",
    )
    .await;
    assert_eq!(h.records(&gamma, "gamma.example.com").await[0].id, old.id);
    // Adopting again finds nothing more.
    let again: OwnershipChanged = h
        .api(
            "adopt",
            &Adopt {
                deployment: "gamma".into(),
                dry_run: true,
            },
        )
        .await
        .unwrap();
    assert!(again.records.is_empty(), "{again:?}");
    // And through all of it, beta was never touched.
    assert_eq!(h.records(&beta, "beta.example.com").await, beta_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authenticator_fails_over_by_command_and_by_health() {
    let h = Harness::start(RESYNC).await;
    let d = deployment("auth", "www.example.com", DnsProvider::Cloudflare, 2, 1, 1);
    let (primary, standby) = (d.regions[0].name.clone(), d.regions[1].name.clone());
    assert!(d.regions[0].primary);
    h.deploy(&d).await;
    let p_auth = h
        .machine(&d, &primary, "authenticator", "pa", "203.0.113.1")
        .await;
    h.machine(&d, &standby, "authenticator", "sa", "203.0.113.2")
        .await;
    let name = "auth.www.example.com";
    h.wait_for(&d, name, &["203.0.113.1"], "the primary's authenticator")
        .await;

    let publisher = Publisher::new(h.client.clone(), PublishConfig::default());
    let failover = |region: &str| FailoverAuthenticator {
        meta: CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: region.into(),
    };
    publisher.publish_command(&failover(&standby)).await.unwrap();
    h.wait_for(&d, name, &["203.0.113.2"], "failed over by command")
        .await;
    // The same fail-over again (another command): nothing moves, no second event.
    publisher.publish_command(&failover(&standby)).await.unwrap();
    let moves = |h: &Harness| {
        h.seen(|e| match e {
            AnyEvent::Authenticator(m) => Some(m.clone()),
            _ => None,
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = moves(&h);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (
            seen[0].region.as_str(),
            seen[0].from.as_deref(),
            seen[0].cause.as_str()
        ),
        (standby.as_str(), Some(primary.as_str()), "command")
    );
    // To a region that is not deployed: refused, with why.
    publisher.publish_command(&failover("nowhere")).await.unwrap();
    eventually("the rejection", PATIENCE, || async {
        h.seen(|e| match e {
            AnyEvent::Rejected(r) if r.error.contains("nowhere") => Some(()),
            _ => None,
        })
        .first()
        .copied()
    })
    .await;

    // Back to the primary by command; then its authenticator is judged unhealthy: it moves by itself.
    publisher.publish_command(&failover(&primary)).await.unwrap();
    h.wait_for(&d, name, &["203.0.113.1"], "back by command").await;
    h.health(&p_auth, false).await;
    h.wait_for(&d, name, &["203.0.113.2"], "failed over by health")
        .await;
    let last = moves(&h).pop().unwrap();
    assert_eq!(
        (last.cause.as_str(), last.region.as_str()),
        ("health", standby.as_str())
    );
    assert!(last.reason.contains("pa unhealthy"), "{last:?}");
    // Healthy again, the primary does not take the name back by itself.
    h.health(&p_auth, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.wait_for(&d, name, &["203.0.113.2"], "stays on the standby")
        .await;
    let view: RecordsView = h
        .api(
            "records",
            &ShowRecords {
                deployment: d.name.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(view.active_authenticator.as_deref(), Some(standby.as_str()));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_change_writes_nothing_twice_and_a_429_storm_only_slows_convergence() {
    let h = Harness::start(RESYNC).await;
    let d = deployment("steady", "www.example.com", DnsProvider::Cloudflare, 1, 2, 0);
    let region = d.regions[0].name.clone();
    h.deploy(&d).await;
    let m = h
        .machine(&d, &region, "reverse-proxy", "r0", "203.0.113.21")
        .await;
    h.wait_for(&d, "www.example.com", &["203.0.113.21"], "first")
        .await;
    let records = h.records(&d, "www.example.com").await;
    let changes = |h: &Harness| {
        h.seen(|e| match e {
            AnyEvent::Records(r) => Some(r.clone()),
            _ => None,
        })
        .len()
    };
    let before = changes(&h);
    // The same fleet record and health again (a redelivery): reconciled with one read of the zone (its
    // id is known), nothing written.
    let calls = |h: &Harness| h.sim.counters().provider(Provider::Cloudflare).requests();
    let before_calls = calls(&h);
    h.topology.fleet_view().put(&m).await.unwrap();
    h.health(&m, true).await;
    eventually("the run", PATIENCE, || async {
        (calls(&h) > before_calls).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(calls(&h) - before_calls, 1, "a no-op run is one list call");
    assert_eq!(h.records(&d, "www.example.com").await, records);
    assert_eq!(changes(&h), before, "no change announced");

    // A storm of 429s while a proxy appears: convergence waits for it, then completes.
    h.sim.add_fault(&Fault {
        provider: Provider::Cloudflare,
        kind: FaultKind::RateLimitStorm {
            retry_after_secs: 1,
            duration_secs: Some(3),
            count: None,
        },
    });
    h.machine(&d, &region, "reverse-proxy", "r1", "203.0.113.22")
        .await;
    h.wait_for(
        &d,
        "www.example.com",
        &["203.0.113.21", "203.0.113.22"],
        "after the storm",
    )
    .await;
    let limited = h.sim.counters().provider(Provider::Cloudflare).rate_limited();
    assert!(limited > 0, "the storm hit the service");
    // Still answering.
    let view: RecordsView = h
        .api(
            "records",
            &ShowRecords {
                deployment: d.name.clone(),
            },
        )
        .await
        .unwrap();
    assert!(view.names[0].creates.is_empty(), "{view:?}");
    h.shutdown().await;
}
