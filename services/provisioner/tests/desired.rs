//! The desired state and the fleet view over the bus: stale applies and destroys refused by generation,
//! scaling kept across a redeploy, commands checked against their subject, the accept API, and the fleet
//! view equal to the provisioner's record — on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Fixture, apply, per_role, sim_region};
use flotilla_bus::state::FleetView;
use flotilla_bus::{Topology, TopologyConfig, api, subject};
use flotilla_cloudsim::defaults;
use flotilla_integration_tests::{TestDb, databases, next_generation, templates};
use flotilla_proto::{AcceptDeployment, Accepted, CommandMeta, CreateMachines, DestroyRegion};
use flotilla_spec::{Deployment, Role};

/// One Linode region with `webservers` webservers (at most 6).
fn one_region(webservers: &str) -> Deployment {
    let mut d = templates::import(&[
        ("TOKEN", defaults::LINODE_TOKEN),
        ("NO_WEBSERVERS", webservers),
        ("INPARALLEL", "1"),
    ])
    .deployment;
    d.regions[0].scaling.max = 6;
    d
}

async fn fixture(db: TestDb) -> Fixture {
    let sim = common::simulator(Duration::from_millis(50), Duration::from_millis(100)).await;
    let settings = common::settings(&sim);
    Fixture::start(sim, db, settings, |c| {
        c.consumer.max_deliver = 3;
        c.consumer.retry_delays = vec![Duration::from_millis(200)];
    })
    .await
}

async fn send_apply(f: &Fixture, cmd: &flotilla_proto::ApplyRegion) {
    f.send(
        &cmd.deployment.name,
        &cmd.region,
        "apply",
        &cmd.meta.id.to_string(),
        cmd,
    )
    .await;
}

async fn applied(f: &Fixture, cmd: &flotilla_proto::ApplyRegion) {
    send_apply(f, cmd).await;
    f.events
        .region_outcome(&cmd.region, cmd.meta.correlation_id, "applied")
        .await;
}

fn webservers(f: &Fixture, d: &Deployment) -> usize {
    per_role(&sim_region(&f.sim, &d.name, &d.regions[0].name))
        .get(&Role::Webserver)
        .copied()
        .unwrap_or(0)
}

async fn fleet_view(f: &Fixture) -> FleetView {
    Topology::ensure(&f.client, &TopologyConfig::default())
        .await
        .unwrap()
        .fleet_view()
}

#[tokio::test]
async fn a_late_apply_never_replaces_a_newer_spec() {
    for db in databases().await {
        let f = fixture(db).await;
        let two = one_region("2");
        let region = two.regions[0].name.clone();
        let old = apply(&two, &region);
        applied(&f, &old).await;
        let three = one_region("3");
        let new = apply(&three, &region);
        assert!(new.generation > old.generation);
        applied(&f, &new).await;
        assert_eq!(webservers(&f, &three), 3);
        // The old apply again, as a retry published late (a new command id, its old generation).
        let late = flotilla_proto::ApplyRegion {
            meta: CommandMeta::new("test"),
            ..old.clone()
        };
        send_apply(&f, &late).await;
        let refused = f.events.rejection(&late.meta.id.to_string()).await;
        assert!(refused.error.contains("stale apply"), "{refused:?}");
        assert_eq!(webservers(&f, &three), 3, "the late apply changed nothing");
        // The fleet view holds exactly the provisioner's machines.
        let view = fleet_view(&f).await.snapshot(Some(&three.name)).await.unwrap();
        let fleet = f.fleet(&three.name).await;
        let recorded: std::collections::BTreeSet<_> = fleet.regions[0]
            .machines
            .iter()
            .map(|m| (m.resource_id.clone(), m.state.clone(), m.public_ipv4.clone()))
            .collect();
        let viewed: std::collections::BTreeSet<_> = view
            .values()
            .map(|m| (m.resource_id.clone(), m.state.clone(), m.public_ipv4.clone()))
            .collect();
        assert_eq!(viewed, recorded);
        f.stop().await;
    }
}

#[tokio::test]
async fn a_late_destroy_never_wipes_a_region_deployed_again() {
    for db in databases().await {
        let f = fixture(db).await;
        let d = one_region("1");
        let region = d.regions[0].name.clone();
        applied(&f, &apply(&d, &region)).await;
        let destroy = DestroyRegion {
            meta: CommandMeta::new("test"),
            deployment: d.name.clone(),
            region: region.clone(),
            generation: next_generation(),
        };
        f.send(
            &d.name,
            &region,
            "destroy",
            &destroy.meta.id.to_string(),
            &destroy,
        )
        .await;
        f.events
            .region_outcome(&region, destroy.meta.correlation_id, "destroyed")
            .await;
        assert!(sim_region(&f.sim, &d.name, &region).is_empty());
        // The autoscaler's replacement of a machine of the region, delivered after the destroy: superseded
        // (no one's mistake), not dead-lettered as a command for a region never applied.
        let late_replace = flotilla_proto::ReplaceMachine {
            meta: CommandMeta::new("autoscaler"),
            deployment: d.name.clone(),
            region: region.clone(),
            resource_id: "gone-machine".into(),
        };
        f.send(
            &d.name,
            &region,
            "replace-machine",
            &late_replace.meta.id.to_string(),
            &late_replace,
        )
        .await;
        let refused = f.events.rejection(&late_replace.meta.id.to_string()).await;
        assert!(refused.error.contains("was destroyed"), "{refused:?}");
        let dlq = async_nats::jetstream::new(f.client.clone())
            .get_stream(flotilla_bus::topology::DLQ_STREAM)
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap();
        assert_eq!(dlq.state.messages, 0, "nothing dead-lettered");
        // Deployed again, then the old destroy arrives late under a new id.
        let again = apply(&d, &region);
        applied(&f, &again).await;
        let late = DestroyRegion {
            meta: CommandMeta::new("test"),
            ..destroy.clone()
        };
        f.send(&d.name, &region, "destroy", &late.meta.id.to_string(), &late)
            .await;
        let refused = f.events.rejection(&late.meta.id.to_string()).await;
        assert!(refused.error.contains("stale destroy"), "{refused:?}");
        assert_eq!(sim_region(&f.sim, &d.name, &region).len(), 3, "the region stands");
        // The same destroy redelivered after it was handled changes nothing either (its inbox).
        f.send(
            &d.name,
            &region,
            "destroy",
            &format!("{}-again", destroy.meta.id),
            &destroy,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(sim_region(&f.sim, &d.name, &region).len(), 3);
        f.stop().await;
    }
}

#[tokio::test]
async fn a_redeploy_keeps_the_autoscalers_count_until_the_initial_count_changes() {
    for db in databases().await {
        let f = fixture(db).await;
        let d = one_region("2");
        let region = d.regions[0].name.clone();
        applied(&f, &apply(&d, &region)).await;
        let out = CreateMachines {
            meta: CommandMeta::new("autoscaler"),
            deployment: d.name.clone(),
            region: region.clone(),
            role: Role::Webserver,
            count: 1,
        };
        f.send(
            &d.name,
            &region,
            "create-machines",
            &out.meta.id.to_string(),
            &out,
        )
        .await;
        f.events
            .region_outcome(&region, out.meta.correlation_id, "applied")
            .await;
        assert_eq!(webservers(&f, &d), 3);
        // The same spec deployed again: the scale-out stays.
        applied(&f, &apply(&d, &region)).await;
        assert_eq!(webservers(&f, &d), 3);
        // A new initial count is the operator's word.
        let four = one_region("4");
        applied(&f, &apply(&four, &region)).await;
        assert_eq!(webservers(&f, &four), 4);
        f.stop().await;
    }
}

#[tokio::test]
async fn commands_whose_subject_and_body_disagree_are_rejected_not_dropped() {
    let f = fixture(TestDb::sqlite().await).await;
    let d = one_region("1");
    let region = d.regions[0].name.clone();
    // A destroy body naming another deployment, published on an apply subject.
    let body = DestroyRegion {
        meta: CommandMeta::new("test"),
        deployment: "../../etc".into(),
        region: region.clone(),
        generation: next_generation(),
    };
    f.send(&d.name, &region, "apply", &body.meta.id.to_string(), &body)
        .await;
    let refused = f.events.rejection(&body.meta.id.to_string()).await;
    assert!(refused.error.contains("subject"), "{refused:?}");
    // A destroy of a region nobody ever deployed: refused, never silence.
    let unknown = DestroyRegion {
        meta: CommandMeta::new("test"),
        deployment: "never-deployed".into(),
        region: "nowhere".into(),
        generation: next_generation(),
    };
    f.send(
        "never-deployed",
        "nowhere",
        "destroy",
        &unknown.meta.id.to_string(),
        &unknown,
    )
    .await;
    let refused = f.events.rejection(&unknown.meta.id.to_string()).await;
    assert!(refused.error.contains("never deployed"), "{refused:?}");
    // An apply of an invalid deployment (the CLI's checks bypassed).
    let mut invalid = apply(&d, &region);
    invalid.deployment.regions[0].scaling.min = 9;
    send_apply(&f, &invalid).await;
    let refused = f.events.rejection(&invalid.meta.id.to_string()).await;
    assert!(refused.error.contains("not valid"), "{refused:?}");
    f.stop().await;
}

#[tokio::test]
async fn the_accept_api_validates_and_keeps_the_generation_of_an_unchanged_spec() {
    let f = fixture(TestDb::sqlite().await).await;
    let d = one_region("2");
    let accept = |deployment: Deployment| async {
        api::request::<AcceptDeployment, Accepted>(
            &f.client,
            &subject::api("provisioner", "accept").unwrap(),
            &AcceptDeployment {
                deployment,
                issued_by: "test".into(),
            },
            Duration::from_secs(5),
        )
        .await
    };
    let first = accept(d.clone()).await.unwrap();
    assert!(first.changed && first.generation >= 1);
    let same = accept(d.clone()).await.unwrap();
    assert_eq!((same.generation, same.changed), (first.generation, false));
    let changed = accept(one_region("3")).await.unwrap();
    assert_eq!(
        (changed.generation, changed.changed),
        (first.generation + 1, true)
    );
    let mut bad = d.clone();
    bad.regions[0].scaling.min = 9;
    let err = accept(bad).await.unwrap_err().to_string();
    assert!(err.contains("400") && err.contains("not valid"), "{err}");
    // The desired state every service reads.
    let desired = Topology::ensure(&f.client, &TopologyConfig::default())
        .await
        .unwrap()
        .desired_states()
        .get(&d.name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(desired.value.generation, changed.generation);
    assert_eq!(desired.value.deployment, one_region("3"));
    f.stop().await;
}
