//! A region disaster drill on the whole system (every service a process, PostgreSQL, the simulator): the
//! primary region is lost outright — its API answers 503, its machines stop answering, its datastore
//! closes every connection. Its reverse proxies must leave DNS, the authenticator must fail over to the
//! standby region, the other regions keep serving and their webroots keep in step; when the region
//! returns it rejoins: its reverse proxies back in DNS, its webroot caught up.
//!
//! The recovery time (from the loss to DNS holding only the healthy regions, authenticator moved) is the
//! RTO figure operators ask for; the test prints it (`RTO:` lines) and BENCHMARKS.md records it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use flotilla_cloudsim::{Fault, FaultKind, Provider};
use flotilla_integration_tests::system::{Expected, Options, System};
use flotilla_spec::Role;

const BIN: &str = env!("CARGO_BIN_EXE_flotilla-service");

/// The A records at `name` in the deployment's zone, as the DNS provider holds them.
async fn records(sys: &System, d: &flotilla_spec::Deployment, name: &str) -> BTreeSet<String> {
    let observer =
        flotilla_clouds::Clouds::new(flotilla_integration_tests::sim::observer_settings(&sys.sim), None);
    let dns = observer
        .dns(&d.name, d.dns.provider, d.primary_region().unwrap())
        .unwrap();
    let Ok(Some(zone)) = dns.find_zone(&d.dns.zone).await else {
        return BTreeSet::new();
    };
    dns.list_records(&zone, None, Some("A"))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.name.eq_ignore_ascii_case(name))
        .map(|r| r.content)
        .collect()
}

/// Public addresses of `d`'s machines of `role`, in `regions` (all when empty).
fn addresses(sys: &System, d: &str, role: Role, regions: &[&str]) -> BTreeSet<String> {
    sys.machines(d)
        .into_iter()
        .filter(|m| m.role == Some(role) && (regions.is_empty() || regions.contains(&m.fl_region.as_str())))
        .map(|m| m.public_ip.to_string())
        .collect()
}

async fn until(what: &str, patience: Duration, mut check: impl AsyncFnMut() -> Option<String>) -> Duration {
    let started = Instant::now();
    loop {
        match check().await {
            None => return started.elapsed(),
            Some(why) if started.elapsed() > patience => panic!("{what}: still {why} after {patience:?}"),
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_region_leaves_dns_its_authenticator_fails_over_and_it_rejoins_in_step() {
    flotilla_integration_tests::init_logging();
    let mut d = flotilla_integration_tests::templates::seed_import().deployment;
    d.name = "drill".into();
    // An authenticator in the primary and one standby in the first secondary.
    for r in d.regions.iter_mut().take(2) {
        r.machines.authenticator.count = 1;
        if r.machines.authenticator.size.is_empty() {
            r.machines.authenticator.size = r.machines.webserver.size.clone();
        }
    }
    let Some(mut sys) = System::start(Options {
        replicas: 1,
        boot: Duration::from_millis(300),
        database: Duration::from_secs(1),
        zones: vec![d.dns.zone.clone()],
        nats_nodes: 1,
        bin: BIN.into(),
    })
    .await
    else {
        return;
    };
    sys.write_secrets_file(&[&d]);
    sys.start_all().await;
    sys.deploy(&d).await;
    let regions: Vec<String> = d.regions.iter().map(|r| r.name.clone()).collect();
    for r in &regions {
        sys.start_agent(&d.name, r).await;
    }
    let mut expected = Expected {
        deployment: d.clone(),
        webservers: BTreeMap::new(),
        agents: regions.clone(),
        webroot: None,
        backup: None,
        gone: Vec::new(),
    };
    let site = d.website_url.trim().trim_end_matches('.').to_ascii_lowercase();
    let auth = format!("auth.{site}");
    until("the deployment in place", Duration::from_secs(240), async || {
        let v = sys.violations(std::slice::from_ref(&expected)).await;
        (!v.is_empty()).then(|| format!("{v:?}"))
    })
    .await;
    let lost = d.primary_region().unwrap().clone();
    let standby = regions[1].clone();
    let lost_auth = addresses(&sys, &d.name, Role::Authenticator, &[&lost.name]);
    assert_eq!(
        records(&sys, &d, &auth).await,
        lost_auth,
        "the authenticator starts in the primary"
    );

    // The loss.
    let provider = Provider::Linode;
    let loss = Instant::now();
    sys.fault(&Fault {
        provider,
        kind: FaultKind::RegionDown {
            region: lost.provider_region.clone(),
        },
    });
    // A datastore in the lost region's city goes with it (the seed's regions all use Amsterdam's, which
    // stays).
    for ds in &lost.datastores {
        let s3_region = ds.host_base.split('.').next().unwrap_or_default();
        if s3_region.starts_with(&lost.provider_region) {
            sys.fault(&Fault {
                provider,
                kind: FaultKind::DatastoreDown {
                    region: s3_region.to_owned(),
                },
            });
        }
    }
    let others: Vec<&str> = regions
        .iter()
        .filter(|r| **r != lost.name)
        .map(String::as_str)
        .collect();
    let site_rto = until(
        "the lost region's reverse proxies out of DNS",
        Duration::from_secs(120),
        async || {
            let want = addresses(&sys, &d.name, Role::ReverseProxy, &others);
            let have = records(&sys, &d, &site).await;
            (have != want).then(|| format!("{have:?}, wanted {want:?}"))
        },
    )
    .await;
    let auth_rto = until(
        "the authenticator failed over",
        Duration::from_secs(120),
        async || {
            let want = addresses(&sys, &d.name, Role::Authenticator, &[&standby]);
            let have = records(&sys, &d, &auth).await;
            (have.len() != 1 || !have.is_subset(&want)).then(|| format!("{have:?}, wanted one of {want:?}"))
        },
    )
    .await;
    let rto = loss.elapsed();
    eprintln!(
        "RTO: the lost region out of DNS after {:.1} s, the authenticator moved after {:.1} s (recovery {:.1} s)",
        site_rto.as_secs_f64(),
        auth_rto.as_secs_f64(),
        rto.as_secs_f64()
    );

    // The other regions keep serving and in step: a page written in one reaches the other.
    let page = b"<p>written while gb-lon was lost</p>".to_vec();
    let dir = sys.webroot(&d.name, others[0]).join("drill");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("during.html"), &page).unwrap();
    let elsewhere = sys.webroot(&d.name, others[1]).join("drill/during.html");
    until(
        "the page in the other healthy region",
        Duration::from_secs(60),
        async || (std::fs::read(&elsewhere).ok().as_ref() != Some(&page)).then(|| "missing".to_owned()),
    )
    .await;

    // The region returns and rejoins.
    let back = Instant::now();
    sys.sim.clear_faults(None);
    expected.webroot = Some(BTreeMap::from([("drill/during.html".to_owned(), page.clone())]));
    let rejoin = until("the region rejoined", Duration::from_secs(240), async || {
        let v = sys.violations(std::slice::from_ref(&expected)).await;
        (!v.is_empty()).then(|| format!("{v:?}"))
    })
    .await;
    eprintln!(
        "RTO: the region back in DNS with its webroot in step {:.1} s after it returned",
        rejoin.as_secs_f64()
    );
    let _ = back;
    assert!(sys.exited().is_empty(), "{:?}", sys.exited());
    sys.shutdown().await;
}
