//! The provisioner over a real NATS against the simulator with faults injected: each case ends in the right
//! state with events that say what happened, and a fault in one region holds no other region up.
//!
//! - failed creates (the provider answers 500) are retried and the region ends applied, nothing twice;
//! - a 429 storm is waited out (`Retry-After`), the region ends applied, nothing twice;
//! - a provider region down fails that region's apply with a clear error (dead-lettered, `CommandRejected`,
//!   `failed` in the machines API) while regions of the same and of another provider apply meanwhile; once
//!   the region is back, a new apply builds it;
//! - a machine that never answers its health check is reported `failed`, then `destroyed`, and replaced by
//!   a healthy one; when no machine ever answers, the region fails after `max_rounds` with a clear error and
//!   leaves nothing behind;
//! - the same `ApplyRegion` delivered twice (same command id; same content under a new id) and applies of
//!   two regions at once make no duplicate (SQLite and PostgreSQL);
//! - machine-level commands: `CreateMachines` adds N (redelivered: still N), `DestroyMachine` removes that
//!   one machine (redelivered: no second one), `ReplaceMachine` gives a new healthy machine of the role and
//!   removes the old;
//! - reconciliation: a machine deleted behind our back is noticed and replaced, and a machine carrying our
//!   marks created behind our back is settled (adopted, and removed as surplus) — never left unrecorded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    Event, Fixture, PATIENCE, apply, assert_api_matches, assert_exactly_the_spec, per_role, settled,
    sim_region,
};
use flotilla_cloud::Marks;
use flotilla_cloudsim::{Fault, FaultKind, Provider, defaults};
use flotilla_integration_tests::{TestDb, databases, eventually, templates};
use flotilla_proto::{CommandMeta, CreateMachines, DestroyMachine, ReplaceMachine};
use flotilla_spec::{Deployment, Import, Role};

/// One Linode region: two webservers, the database machine, a reverse proxy, created in parallel.
fn one_region(webservers: &str) -> Import {
    templates::import(&[
        ("TOKEN", defaults::LINODE_TOKEN),
        ("NO_WEBSERVERS", webservers),
        ("INPARALLEL", "1"),
    ])
}

/// The seed's three regions: gb-lon (the primary, with the DBaaS) and nl-ams at Linode, ch-gva-2 at
/// Exoscale; the secondaries wait for the primary's DBaaS.
fn three_regions() -> Deployment {
    templates::seed_import().deployment
}

async fn fixture(
    boot: Duration,
    db: TestDb,
    settings: impl FnOnce(&mut flotilla_provisioner::Settings),
) -> Fixture {
    let sim = common::simulator(boot, Duration::from_millis(200)).await;
    let mut s = common::settings(&sim);
    settings(&mut s);
    Fixture::start(sim, db, s, |c| {
        c.consumer.max_deliver = 3;
        c.consumer.retry_delays = vec![Duration::from_millis(200)];
    })
    .await
}

/// Publishes an apply of `region` and returns it.
async fn send_apply(f: &Fixture, deployment: &Deployment, region: &str) -> flotilla_proto::ApplyRegion {
    let cmd = apply(deployment, region);
    f.send(&deployment.name, region, "apply", &cmd.meta.id.to_string(), &cmd)
        .await;
    cmd
}

#[tokio::test]
async fn failed_creates_are_retried_and_the_region_ends_applied() {
    let f = fixture(Duration::from_millis(100), TestDb::sqlite().await, |_| {}).await;
    f.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::FailCreates { count: 2 },
    });
    let d = one_region("2").deployment;
    let cmd = send_apply(&f, &d, "gb-lon").await;
    let applied = f
        .events
        .region_outcome("gb-lon", cmd.meta.correlation_id, "applied")
        .await;
    settled(&f.client).await;
    let failed_creates: u64 = f
        .sim
        .counters()
        .provider(Provider::Linode)
        .credentials
        .values()
        .map(|c| c.failed_creates)
        .sum();
    assert_eq!(failed_creates, 2, "the fault was hit");
    let held = assert_exactly_the_spec(&f.sim, &d.name, &d.regions[0]);
    assert_api_matches(&f.fleet(&d.name).await, "gb-lon", &held);
    // The retried delivery created what the failed calls had not: the event says so.
    assert!(!applied.created.is_empty(), "{applied:?}");
    assert!(f.events.rejected().is_empty(), "{:?}", f.events.rejected());
    assert!(
        f.events.regions("gb-lon").iter().all(|r| r.outcome == "applied"),
        "a retried failure is not reported final: {:?}",
        f.events.regions("gb-lon")
    );
    f.stop().await;
}

#[tokio::test]
async fn a_rate_limit_storm_is_waited_out_without_duplicates() {
    let f = fixture(Duration::from_millis(100), TestDb::sqlite().await, |_| {}).await;
    f.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::RateLimitStorm {
            retry_after_secs: 1,
            duration_secs: None,
            count: Some(5),
        },
    });
    let d = one_region("2").deployment;
    let cmd = send_apply(&f, &d, "gb-lon").await;
    f.events
        .region_outcome("gb-lon", cmd.meta.correlation_id, "applied")
        .await;
    settled(&f.client).await;
    assert!(
        f.sim.counters().provider(Provider::Linode).rate_limited() >= 5,
        "the storm was hit: {:?}",
        f.sim.counters()
    );
    let held = assert_exactly_the_spec(&f.sim, &d.name, &d.regions[0]);
    assert_eq!(f.sim.machines().len(), 4, "nothing created twice");
    assert_api_matches(&f.fleet(&d.name).await, "gb-lon", &held);
    assert!(f.events.rejected().is_empty());
    f.stop().await;
}

#[tokio::test]
async fn a_region_down_fails_that_region_only() {
    let f = fixture(Duration::from_millis(100), TestDb::sqlite().await, |_| {}).await;
    f.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::RegionDown {
            region: "nl-ams".into(),
        },
    });
    let d = three_regions();
    let down = send_apply(&f, &d, "nl-ams").await;
    let same_provider = send_apply(&f, &d, "gb-lon").await;
    let other_provider = send_apply(&f, &d, "ch-gva-2").await;
    for (region, cmd) in [("gb-lon", &same_provider), ("ch-gva-2", &other_provider)] {
        f.events
            .region_outcome(region, cmd.meta.correlation_id, "applied")
            .await;
        let held = assert_exactly_the_spec(&f.sim, &d.name, d.region(region).unwrap());
        assert_api_matches(&f.fleet(&d.name).await, region, &held);
    }
    // nl-ams: retried while it is down, then given up on with an error that says why.
    let rejected = f.events.rejection(&down.meta.id.to_string()).await;
    let error = rejected.error.to_lowercase();
    assert!(
        error.contains("nl-ams") && error.contains("unavailable"),
        "a clear error: {rejected:?}"
    );
    assert_eq!(rejected.deliveries, 3, "{rejected:?}");
    let fleet = f.fleet(&d.name).await;
    let view = fleet.regions.iter().find(|r| r.region == "nl-ams").unwrap();
    assert_eq!(view.status, "failed", "{view:?}");
    assert!(
        view.detail.as_deref().unwrap_or_default().contains("nl-ams"),
        "{view:?}"
    );
    assert!(sim_region(&f.sim, &d.name, "nl-ams").is_empty());
    assert!(f.sim.counters().provider(Provider::Linode).region_down > 0);

    // Back up: a new apply builds it, and the other regions are untouched.
    f.sim.clear_faults(None);
    let again = send_apply(&f, &d, "nl-ams").await;
    f.events
        .region_outcome("nl-ams", again.meta.correlation_id, "applied")
        .await;
    settled(&f.client).await;
    let fleet = f.fleet(&d.name).await;
    for region in &d.regions {
        let held = assert_exactly_the_spec(&f.sim, &d.name, region);
        assert_api_matches(&fleet, &region.name, &held);
    }
    f.stop().await;
}

#[tokio::test]
async fn a_machine_that_never_answers_is_failed_destroyed_and_replaced() {
    // Machines boot slowly enough to make one of them unhealthy before it ever answers.
    let f = fixture(Duration::from_millis(1500), TestDb::sqlite().await, |s| {
        s.boot_timeout = Duration::from_secs(4);
    })
    .await;
    let d = one_region("1").deployment;
    let cmd = send_apply(&f, &d, "gb-lon").await;
    let victim = f
        .events
        .wait("a webserver to be created", |log| {
            log.iter().find_map(|e| match e {
                Event::Machine(m) if m.role == "webserver" && m.state == "created" => Some(m.clone()),
                _ => None,
            })
        })
        .await;
    f.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::Unhealthy {
            machine_id: victim.provider_id.clone().unwrap(),
        },
    });
    let applied = f
        .events
        .region_outcome("gb-lon", cmd.meta.correlation_id, "applied")
        .await;
    assert_eq!(applied.failed, vec![victim.resource_id.clone()], "{applied:?}");
    let states: Vec<String> = f
        .events
        .machine(&victim.resource_id)
        .into_iter()
        .map(|m| m.state)
        .collect();
    assert!(
        !states.contains(&"healthy".to_owned()),
        "it never answered: {states:?}"
    );
    let failed_at = states
        .iter()
        .position(|s| s == "failed")
        .expect("reported failed");
    let destroyed_at = states
        .iter()
        .position(|s| s == "destroyed")
        .expect("reported destroyed");
    assert!(failed_at < destroyed_at, "{states:?}");
    let replacement = f
        .events
        .machines("gb-lon")
        .into_iter()
        .find(|m| m.role == "webserver" && m.state == "healthy")
        .expect("a healthy webserver");
    assert_ne!(replacement.resource_id, victim.resource_id);
    settled(&f.client).await;
    let held = assert_exactly_the_spec(&f.sim, &d.name, &d.regions[0]);
    assert!(
        held.iter().all(|m| Some(&m.id) != victim.provider_id.as_ref()),
        "the unhealthy machine is gone from the cloud"
    );
    assert_api_matches(&f.fleet(&d.name).await, "gb-lon", &held);
    f.stop().await;
}

#[tokio::test]
async fn machines_that_never_answer_fail_the_region_after_max_rounds_and_leave_nothing() {
    // Health checks on a port no machine answers on: nothing ever becomes healthy.
    let f = fixture(Duration::from_millis(100), TestDb::sqlite().await, |s| {
        s.health_port = flotilla_integration_tests::free_port();
        s.boot_timeout = Duration::from_secs(1);
        s.max_rounds = 2;
    })
    .await;
    let d = one_region("1").deployment;
    let cmd = send_apply(&f, &d, "gb-lon").await;
    let failed = f
        .events
        .region_outcome("gb-lon", cmd.meta.correlation_id, "failed")
        .await;
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("gb-lon") && error.contains("after 2 rounds"),
        "a clear error: {failed:?}"
    );
    settled(&f.client).await;
    // Every machine tried was reported failed and then destroyed; none is left at the simulator.
    let told = f.events.machines("gb-lon");
    let tried: Vec<&str> = told
        .iter()
        .filter(|m| m.state == "created")
        .map(|m| m.resource_id.as_str())
        .collect();
    assert_eq!(tried.len(), 6, "3 machines, 2 rounds: {told:?}");
    // The failed outcome still says what the rounds did.
    let mut reported = failed.failed.clone();
    reported.sort();
    let mut expected: Vec<String> = tried.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(reported, expected, "{failed:?}");
    for id in &tried {
        let states: Vec<&str> = told
            .iter()
            .filter(|m| m.resource_id == *id)
            .map(|m| m.state.as_str())
            .collect();
        assert!(
            matches!(
                states.iter().rev().take(2).collect::<Vec<_>>()[..],
                [&"destroyed", &"failed"]
            ),
            "{id}: {states:?}"
        );
    }
    assert!(
        sim_region(&f.sim, &d.name, "gb-lon").is_empty(),
        "{:?}",
        f.sim.machines()
    );
    let fleet = f.fleet(&d.name).await;
    let view = fleet.regions.iter().find(|r| r.region == "gb-lon").unwrap();
    assert_eq!(view.status, "failed", "{view:?}");
    assert!(view.machines.is_empty(), "{view:?}");
    f.stop().await;
}

#[tokio::test]
async fn duplicate_and_concurrent_applies_make_no_duplicates() {
    for db in databases().await {
        let f = fixture(Duration::from_millis(200), db, |_| {}).await;
        let d = three_regions();
        let first = apply(&d, "gb-lon");
        let id = first.meta.id.to_string();
        let same_content = apply(&d, "gb-lon");
        let other = apply(&d, "nl-ams");
        let other_again = apply(&d, "nl-ams");
        // All at once: the same command twice under its id (the stream drops the copy), the same command
        // under another message id (past the stream's de-duplication: the provisioner must cope), the same
        // content as a new command, and another region twice.
        assert!(!f.send(&d.name, "gb-lon", "apply", &id, &first).await);
        assert!(
            f.send(&d.name, "gb-lon", "apply", &id, &first).await,
            "the stream drops a re-publication"
        );
        assert!(
            !f.send(&d.name, "gb-lon", "apply", &format!("{id}-late"), &first)
                .await
        );
        for cmd in [&same_content, &other, &other_again] {
            f.send(&d.name, &cmd.region, "apply", &cmd.meta.id.to_string(), cmd)
                .await;
        }
        for cmd in [&first, &same_content, &other, &other_again] {
            f.events
                .region_outcome(&cmd.region, cmd.meta.correlation_id, "applied")
                .await;
        }
        settled(&f.client).await;
        let fleet = f.fleet(&d.name).await;
        for region in ["gb-lon", "nl-ams"] {
            let held = assert_exactly_the_spec(&f.sim, &d.name, d.region(region).unwrap());
            assert_api_matches(&fleet, region, &held);
        }
        assert_eq!(f.sim.machines().len(), 8, "4 machines in each region, once");
        // Each machine was created by exactly one of the commands.
        let mut created: Vec<String> = f
            .events
            .regions("gb-lon")
            .iter()
            .chain(&f.events.regions("nl-ams"))
            .flat_map(|r| r.created.clone())
            .collect();
        created.sort();
        let all = created.len();
        created.dedup();
        assert_eq!((all, created.len()), (8, 8), "{created:?}");
        assert!(f.events.rejected().is_empty(), "{:?}", f.events.rejected());
        f.stop().await;
    }
}

#[tokio::test]
async fn machine_level_commands_change_one_machine_once() {
    let f = fixture(Duration::from_millis(100), TestDb::sqlite().await, |_| {}).await;
    let d = one_region("1").deployment;
    let region = d.regions[0].clone();
    let cmd = send_apply(&f, &d, "gb-lon").await;
    f.events
        .region_outcome("gb-lon", cmd.meta.correlation_id, "applied")
        .await;
    let webservers = |f: &Fixture| {
        per_role(&sim_region(&f.sim, &d.name, "gb-lon"))
            .get(&Role::Webserver)
            .copied()
    };

    // CreateMachines: two more webservers, once, however often it is delivered.
    let create = CreateMachines {
        meta: CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: "gb-lon".into(),
        role: Role::Webserver,
        count: 2,
    };
    let id = create.meta.id.to_string();
    f.send(&d.name, "gb-lon", "create-machines", &id, &create).await;
    f.events
        .region_outcome("gb-lon", create.meta.correlation_id, "applied")
        .await;
    settled(&f.client).await;
    assert_eq!(webservers(&f), Some(3));
    f.send(
        &d.name,
        "gb-lon",
        "create-machines",
        &format!("{id}-again"),
        &create,
    )
    .await;
    settled(&f.client).await;
    assert_eq!(
        webservers(&f),
        Some(3),
        "a redelivered CreateMachines adds nothing"
    );
    let mut grown = region.clone();
    grown.machines.webserver.count = 3;
    let held = assert_exactly_the_spec(&f.sim, &d.name, &grown);
    assert_api_matches(&f.fleet(&d.name).await, "gb-lon", &held);

    // DestroyMachine: that one webserver, and only it.
    let doomed = held
        .iter()
        .rfind(|m| m.role == Some(Role::Webserver))
        .unwrap()
        .clone();
    let destroy = DestroyMachine {
        meta: CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: "gb-lon".into(),
        resource_id: doomed.resource_id.clone(),
    };
    let id = destroy.meta.id.to_string();
    f.send(&d.name, "gb-lon", "destroy-machine", &id, &destroy).await;
    f.events
        .wait("the machine to be destroyed", |log| {
            log.iter()
                .any(|e| matches!(e, Event::Machine(m) if m.resource_id == doomed.resource_id && m.state == "destroyed"))
                .then_some(())
        })
        .await;
    f.send(
        &d.name,
        "gb-lon",
        "destroy-machine",
        &format!("{id}-again"),
        &destroy,
    )
    .await;
    settled(&f.client).await;
    let mut shrunk = region.clone();
    shrunk.machines.webserver.count = 2;
    let held = assert_exactly_the_spec(&f.sim, &d.name, &shrunk);
    assert!(held.iter().all(|m| m.id != doomed.id), "{held:?}");
    let before: Vec<String> = held.iter().map(|m| m.id.clone()).collect();
    assert_api_matches(&f.fleet(&d.name).await, "gb-lon", &held);
    assert!(f.events.rejected().is_empty(), "{:?}", f.events.rejected());

    // ReplaceMachine: a new healthy database machine, the old one gone.
    let old = held
        .iter()
        .find(|m| m.role == Some(Role::Database))
        .unwrap()
        .clone();
    let replace = ReplaceMachine {
        meta: CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: "gb-lon".into(),
        resource_id: old.resource_id.clone(),
    };
    f.send(
        &d.name,
        "gb-lon",
        "replace-machine",
        &replace.meta.id.to_string(),
        &replace,
    )
    .await;
    f.events
        .region_outcome("gb-lon", replace.meta.correlation_id, "applied")
        .await;
    settled(&f.client).await;
    let states: Vec<String> = f
        .events
        .machine(&old.resource_id)
        .into_iter()
        .map(|m| m.state)
        .collect();
    assert!(
        states.ends_with(&["failed".to_owned(), "destroyed".to_owned()]),
        "{states:?}"
    );
    let held = assert_exactly_the_spec(&f.sim, &d.name, &shrunk);
    let new = held.iter().find(|m| m.role == Some(Role::Database)).unwrap();
    assert_ne!(new.resource_id, old.resource_id);
    assert!(
        f.events
            .machine(&new.resource_id)
            .iter()
            .any(|m| m.state == "healthy"),
        "the replacement is healthy"
    );
    // Only the database machine changed.
    let after: Vec<String> = held
        .iter()
        .filter(|m| m.role != Some(Role::Database))
        .map(|m| m.id.clone())
        .collect();
    assert!(
        after.iter().all(|id| before.contains(id)),
        "{before:?} → {after:?}"
    );
    assert_api_matches(&f.fleet(&d.name).await, "gb-lon", &held);
    f.stop().await;
}

#[tokio::test]
async fn reconciliation_replaces_vanished_machines_and_settles_unrecorded_ones() {
    let f = fixture(Duration::from_millis(100), TestDb::sqlite().await, |s| {
        s.reconcile_interval = Duration::from_secs(1);
    })
    .await;
    let d = one_region("1").deployment;
    let region = d.regions[0].clone();
    let cmd = send_apply(&f, &d, "gb-lon").await;
    f.events
        .region_outcome("gb-lon", cmd.meta.correlation_id, "applied")
        .await;
    let held = assert_exactly_the_spec(&f.sim, &d.name, &region);
    let http = reqwest::Client::new();

    // Deleted behind our back.
    let gone = held
        .iter()
        .find(|m| m.role == Some(Role::Webserver))
        .unwrap()
        .clone();
    http.delete(format!("{}/linode/instances/{}", f.sim.linode_url(), gone.id))
        .bearer_auth(defaults::LINODE_TOKEN)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    f.events
        .wait("the vanished machine to be reported destroyed", |log| {
            log.iter()
                .any(|e| matches!(e, Event::Machine(m) if m.resource_id == gone.resource_id && m.state == "destroyed"))
                .then_some(())
        })
        .await;
    let replacement = f
        .events
        .wait("a replacement webserver to be healthy", |log| {
            log.iter().find_map(|e| match e {
                Event::Machine(m)
                    if m.role == "webserver" && m.state == "healthy" && m.resource_id != gone.resource_id =>
                {
                    Some(m.clone())
                }
                _ => None,
            })
        })
        .await;
    eventually("the region to match its spec again", PATIENCE, || async {
        (per_role(&sim_region(&f.sim, &d.name, "gb-lon")) == common::wanted(&region)).then_some(())
    })
    .await;
    let held = assert_exactly_the_spec(&f.sim, &d.name, &region);
    assert!(held.iter().any(|m| m.resource_id == replacement.resource_id));

    // Created behind our back, with our marks: recorded, then removed as surplus (the spec is full).
    let marks = Marks {
        deployment: d.name.clone(),
        region: "gb-lon".into(),
        role: Some(Role::Webserver),
        resource_id: "0bad0bad0bad".into(),
    };
    let rogue: serde_json::Value = http
        .post(format!("{}/linode/instances", f.sim.linode_url()))
        .bearer_auth(defaults::LINODE_TOKEN)
        .json(&serde_json::json!({
            "region": "gb-lon", "type": "g6-nanode-1", "image": "linode/debian12",
            "root_pass": "Rogue-Pass-1234", "label": "ws-rogue", "tags": marks.to_tags(),
        }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let rogue_id = rogue["id"].to_string();
    assert_eq!(
        sim_region(&f.sim, &d.name, "gb-lon").len(),
        4,
        "the rogue carries our marks"
    );
    eventually("the unrecorded machine to be settled", PATIENCE, || async {
        let at_sim = sim_region(&f.sim, &d.name, "gb-lon");
        let fleet = f.fleet(&d.name).await;
        let listed = fleet.regions[0].machines.len();
        (at_sim.len() == 3 && listed == 3 && at_sim.iter().all(|m| m.id != rogue_id)).then_some(())
    })
    .await;
    let told: Vec<String> = f
        .events
        .machine("0bad0bad0bad")
        .into_iter()
        .map(|m| m.state)
        .collect();
    assert_eq!(told.last().map(String::as_str), Some("destroyed"), "{told:?}");
    settled(&f.client).await;
    let held = assert_exactly_the_spec(&f.sim, &d.name, &region);
    assert_api_matches(&f.fleet(&d.name).await, "gb-lon", &held);
    f.stop().await;
}

#[tokio::test]
async fn a_reconcile_command_notices_a_vanished_machine_without_waiting_for_the_periodic_pass() {
    // No periodic pass during the test: only the command can notice the deletion.
    let f = fixture(Duration::from_millis(100), TestDb::sqlite().await, |s| {
        s.reconcile_interval = Duration::from_secs(3600);
    })
    .await;
    let d = one_region("1").deployment;
    let region = d.regions[0].clone();
    let cmd = send_apply(&f, &d, "gb-lon").await;
    f.events
        .region_outcome("gb-lon", cmd.meta.correlation_id, "applied")
        .await;
    let held = assert_exactly_the_spec(&f.sim, &d.name, &region);
    let gone = held
        .iter()
        .find(|m| m.role == Some(Role::ReverseProxy))
        .unwrap()
        .clone();
    reqwest::Client::new()
        .delete(format!("{}/linode/instances/{}", f.sim.linode_url(), gone.id))
        .bearer_auth(defaults::LINODE_TOKEN)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let reconcile = flotilla_proto::ReconcileRegion {
        meta: flotilla_proto::CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: "gb-lon".into(),
    };
    f.send(
        &d.name,
        "gb-lon",
        "reconcile",
        &reconcile.meta.id.to_string(),
        &reconcile,
    )
    .await;
    let replacement = f
        .events
        .wait(
            "a replacement reverse proxy, told under the command's correlation id",
            |log| {
                log.iter().find_map(|e| match e {
                    Event::Machine(m)
                        if m.role == "reverse-proxy"
                            && m.state == "healthy"
                            && m.resource_id != gone.resource_id
                            && m.meta.correlation_id == reconcile.meta.correlation_id =>
                    {
                        Some(m.clone())
                    }
                    _ => None,
                })
            },
        )
        .await;
    assert!(
        f.events
            .machine(&gone.resource_id)
            .iter()
            .any(|m| m.state == "destroyed"),
        "the vanished machine is reported destroyed"
    );
    let held = assert_exactly_the_spec(&f.sim, &d.name, &region);
    assert!(held.iter().any(|m| m.resource_id == replacement.resource_id));
}

#[tokio::test]
async fn simulator_credentials_are_never_sent_to_a_real_api() {
    // Simulator credentials, but no simulator endpoint for Exoscale: its region is refused, not sent to
    // api-ch-gva-2.exoscale.com.
    let sim = common::simulator(Duration::from_millis(100), Duration::from_millis(200)).await;
    let settings = common::settings(&sim);
    let f = Fixture::start(sim, TestDb::sqlite().await, settings, |c| {
        c.consumer.max_deliver = 3;
        c.clouds.endpoints.exoscale = None;
    })
    .await;
    let d = three_regions();
    let cmd = send_apply(&f, &d, "ch-gva-2").await;
    let refused = f.events.rejection(&cmd.meta.id.to_string()).await;
    assert!(
        refused.error.contains("refusing to call the real API") && refused.error.contains("exoscale"),
        "{refused:?}"
    );
    assert_eq!(refused.deliveries, 1, "refused at once, not retried: {refused:?}");
    // Linode, which has its simulator endpoint, still applies.
    let cmd = send_apply(&f, &d, "gb-lon").await;
    f.events
        .region_outcome("gb-lon", cmd.meta.correlation_id, "applied")
        .await;
}

#[tokio::test]
async fn concurrent_scale_outs_both_count() {
    for db in databases().await {
        let f = fixture(Duration::from_millis(100), db, |_| {}).await;
        let d = one_region("1").deployment;
        let cmd = send_apply(&f, &d, "gb-lon").await;
        f.events
            .region_outcome("gb-lon", cmd.meta.correlation_id, "applied")
            .await;
        // Two scale-outs of one webserver each, published together.
        let creates: Vec<CreateMachines> = (0..2)
            .map(|_| CreateMachines {
                meta: CommandMeta::new("test"),
                deployment: d.name.clone(),
                region: "gb-lon".into(),
                role: Role::Webserver,
                count: 1,
            })
            .collect();
        for c in &creates {
            f.send(&d.name, "gb-lon", "create-machines", &c.meta.id.to_string(), c)
                .await;
        }
        for c in &creates {
            f.events
                .region_outcome("gb-lon", c.meta.correlation_id, "applied")
                .await;
        }
        settled(&f.client).await;
        assert_eq!(
            per_role(&sim_region(&f.sim, &d.name, "gb-lon")).get(&Role::Webserver),
            Some(&3),
            "1 + 1 + 1 webservers: neither change lost"
        );
        f.stop().await;
    }
}

#[tokio::test]
async fn an_apply_waiting_for_the_primary_stops_if_its_region_is_destroyed_meanwhile() {
    let f = fixture(Duration::from_millis(100), TestDb::sqlite().await, |_| {}).await;
    let d = templates::seed_import().deployment;
    // The secondary first: it waits for the primary's DBaaS.
    let waiting = send_apply(&f, &d, "nl-ams").await;
    f.events
        .region_outcome("nl-ams", waiting.meta.correlation_id, "blocked")
        .await;
    let destroy = flotilla_proto::DestroyRegion {
        meta: CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: "nl-ams".into(),
        generation: flotilla_integration_tests::next_generation(),
    };
    f.send(
        &d.name,
        "nl-ams",
        "destroy",
        &destroy.meta.id.to_string(),
        &destroy,
    )
    .await;
    f.events
        .region_outcome("nl-ams", destroy.meta.correlation_id, "destroyed")
        .await;
    // Now the primary: once its DBaaS is ready the secondary's apply wakes up — and stops, building nothing.
    let primary = send_apply(&f, &d, "gb-lon").await;
    f.events
        .region_outcome("gb-lon", primary.meta.correlation_id, "applied")
        .await;
    let refused = f.events.rejection(&waiting.meta.id.to_string()).await;
    assert!(
        refused.error.contains("destroyed while this apply waited"),
        "{refused:?}"
    );
    settled(&f.client).await;
    assert!(
        sim_region(&f.sim, &d.name, "nl-ams").is_empty(),
        "nothing built in the destroyed region: {:?}",
        f.sim.machines()
    );
    assert!(
        f.fleet(&d.name)
            .await
            .regions
            .iter()
            .all(|r| r.region != "nl-ams")
    );
    f.stop().await;
}

#[tokio::test]
async fn an_apply_issued_before_a_destroy_never_rebuilds_the_region() {
    let f = fixture(Duration::from_millis(100), TestDb::sqlite().await, |_| {}).await;
    let d = one_region("1").deployment;
    // Issued now, delivered only after the region's destroy (a retry that came late).
    let stale = common::apply(&d, "gb-lon");
    let first = send_apply(&f, &d, "gb-lon").await;
    f.events
        .region_outcome("gb-lon", first.meta.correlation_id, "applied")
        .await;
    let destroy = flotilla_proto::DestroyRegion {
        meta: CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: "gb-lon".into(),
        generation: flotilla_integration_tests::next_generation(),
    };
    f.send(
        &d.name,
        "gb-lon",
        "destroy",
        &destroy.meta.id.to_string(),
        &destroy,
    )
    .await;
    f.events
        .region_outcome("gb-lon", destroy.meta.correlation_id, "destroyed")
        .await;
    f.send(&d.name, "gb-lon", "apply", &stale.meta.id.to_string(), &stale)
        .await;
    let refused = f.events.rejection(&stale.meta.id.to_string()).await;
    assert!(
        refused.error.contains("stale apply")
            && refused
                .error
                .contains("destroyed or withdrawn after this apply was issued"),
        "{refused:?}"
    );
    assert!(
        sim_region(&f.sim, &d.name, "gb-lon").is_empty(),
        "nothing rebuilt"
    );
    // A new apply rebuilds it.
    let again = send_apply(&f, &d, "gb-lon").await;
    f.events
        .region_outcome("gb-lon", again.meta.correlation_id, "applied")
        .await;
    assert_exactly_the_spec(&f.sim, &d.name, &d.regions[0]);
    f.stop().await;
}
