//! The platform every service stands on, through a small test service (`inventory`) hosted beside the real
//! provisioner: it follows the desired state and the fleet view, consumes machine events through a
//! durable subscription (idempotent however late an event comes again), and gets adapters from the secrets
//! file to ask the simulator about each healthy machine. Plus the fleet view's snapshot-then-stream under
//! a burst of changes, and an event consumer's dead letters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_bus::state::FleetView;
use flotilla_bus::{PublishConfig, Publisher, Topology, TopologyConfig, subject};
use flotilla_cloudsim::defaults;
use flotilla_integration_tests::inventory::{self, Seen};
use flotilla_integration_tests::{TestNats, eventually, next_generation, service_config, sim, templates};
use flotilla_proto::{ApplyRegion, CommandMeta, EventMeta, MachineChanged, MachineRecord};
use flotilla_runtime::NoSettings;

const PATIENCE: Duration = Duration::from_secs(60);

/// Deploys one Linode region with the provisioner and checks the inventory service ends with the same
/// fleet, the same desired state, one effect per event, and every healthy machine confirmed at the
/// simulator through adapters made from the secrets file.
#[tokio::test]
async fn a_service_on_the_platform_sees_what_the_provisioner_did() {
    flotilla_integration_tests::init_logging();
    let nats = TestNats::private().await;
    let sim = sim::simulator(Duration::from_millis(50), Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let import = templates::import(&[("TOKEN", defaults::LINODE_TOKEN), ("INPARALLEL", "1")]);
    let (_, secrets_file) = import.write_to_dir(dir.path()).unwrap();
    let d = import.deployment.clone();
    let region = d.regions[0].name.clone();

    let mut config = service_config::<flotilla_provisioner::Settings>(&nats, None, &dir.path().join("p"));
    config.clouds = sim.cloud_settings();
    config.service = sim::provisioner_settings(&sim);
    let provisioner =
        flotilla_runtime::host::start(flotilla_provisioner::DEF, config, flotilla_provisioner::routes)
            .await
            .unwrap();

    // The inventory service reads the real secrets file: the simulator's endpoints, no simulator
    // credentials.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut config = service_config::<NoSettings>(&nats, None, &dir.path().join("i"));
    config.clouds.endpoints = sim::endpoints(&sim);
    config.secrets_file = Some(secrets_file);
    let s = Arc::clone(&seen);
    let inv = flotilla_runtime::host::start(inventory::DEF, config, move |ctx| inventory::routes(ctx, s))
        .await
        .unwrap();

    let client = nats.client().await;
    let publisher = Publisher::new(client.clone(), PublishConfig::default());
    let cmd = ApplyRegion {
        meta: CommandMeta::new("test"),
        deployment: d.clone(),
        region: region.clone(),
        generation: next_generation(),
    };
    publisher.publish_command(&cmd).await.unwrap();

    let name = d.name.clone();
    let api = move |client: async_nats::Client| {
        let name = name.clone();
        async move {
            flotilla_bus::api::request::<flotilla_proto::ListMachines, flotilla_proto::Fleet>(
                &client,
                &subject::api("provisioner", "machines").unwrap(),
                &flotilla_proto::ListMachines {
                    deployment: Some(name),
                    region: None,
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap()
        }
    };
    let wanted: usize = d.regions[0].machines.iter().map(|(_, m)| m.count as usize).sum();
    let fleet = eventually("every machine healthy", PATIENCE, || {
        let client = client.clone();
        let api = api.clone();
        async move {
            let fleet = api(client).await;
            let machines = &fleet.regions.first()?.machines;
            (machines.len() == wanted && machines.iter().all(|m| m.state == "healthy")).then_some(fleet)
        }
    })
    .await;
    let recorded: std::collections::BTreeMap<_, _> = fleet.regions[0]
        .machines
        .iter()
        .map(|m| {
            (
                m.resource_id.clone(),
                (m.state.clone(), m.provider_id.clone(), m.public_ipv4.clone()),
            )
        })
        .collect();
    eventually("the inventory to see the same fleet", PATIENCE, || {
        let seen = Arc::clone(&seen);
        let recorded = recorded.clone();
        async move {
            let seen = seen.lock().unwrap();
            let viewed: std::collections::BTreeMap<_, _> = seen
                .fleet
                .values()
                .map(|m| {
                    (
                        m.resource_id.clone(),
                        (m.state.clone(), m.provider_id.clone(), m.public_ipv4.clone()),
                    )
                })
                .collect();
            (seen.fleet_current && viewed == recorded && seen.confirmed.len() == wanted).then_some(())
        }
    })
    .await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.desired.get(&d.name).map(|s| s.generation),
            Some(cmd.generation)
        );
        assert_eq!(seen.effects, seen.events.len(), "one effect per event");
        assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    }

    // An event delivered again long after the de-duplication window (here: under another message id, as
    // the stream would keep it) has no second effect.
    let effects = seen.lock().unwrap().effects;
    let any: MachineChanged = {
        let view = Topology::ensure(&client, &TopologyConfig::default())
            .await
            .unwrap()
            .fleet_view()
            .snapshot(Some(&d.name))
            .await
            .unwrap();
        let m = view.values().next().unwrap().clone();
        MachineChanged {
            meta: EventMeta {
                id: m.event_id,
                correlation_id: cmd.meta.correlation_id,
                occurred_at: chrono::Utc::now(),
                source: "provisioner".into(),
            },
            deployment: m.deployment,
            region: m.region,
            resource_id: m.resource_id,
            role: m.role,
            name: m.name,
            size: m.size,
            provider: m.provider,
            provider_id: m.provider_id,
            state: m.state,
            public_ipv4: m.public_ipv4,
            private_ipv4: m.private_ipv4,
        }
    };
    let subj = subject::event_for(&any).unwrap();
    publisher.publish(&subj, "a-late-copy", &any).await.unwrap();
    // A marker after it: once the marker is handled, the copy was too.
    let marker = MachineChanged {
        meta: EventMeta::new(uuid::Uuid::now_v7(), "test"),
        state: "running".into(),
        ..any.clone()
    };
    publisher.publish_event(&marker).await.unwrap();
    let marker_id = marker.meta.id.to_string();
    eventually("the marker event handled", PATIENCE, || {
        let seen = Arc::clone(&seen);
        let marker_id = marker_id.clone();
        async move { seen.lock().unwrap().events.contains(&marker_id).then_some(()) }
    })
    .await;
    assert_eq!(
        seen.lock().unwrap().effects,
        effects + 1,
        "the late copy had no effect"
    );

    // The service's own metric is served by /metrics beside its event consumer's counters.
    let metrics = reqwest::get(format!("http://{}/metrics", inv.admin_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let effects = seen.lock().unwrap().effects;
    assert!(
        metrics.contains(&format!("inventory_events_handled_total {effects}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("flotilla_events_acked_total{service=\"inventory\",purpose=\"machines\"}"),
        "{metrics}"
    );

    inv.shutdown().await.unwrap();
    provisioner.shutdown().await.unwrap();
    sim.shutdown().await;
}

fn record(deployment: &str, n: usize, state: &str) -> MachineRecord {
    MachineRecord {
        deployment: deployment.into(),
        region: "gb-lon".into(),
        resource_id: format!("m{n:03}"),
        role: "webserver".into(),
        name: format!("ws-{n}"),
        size: "g6-nanode-1".into(),
        provider: "linode".into(),
        provider_id: Some(n.to_string()),
        state: state.into(),
        public_ipv4: Some(format!("192.0.2.{}", n % 250)),
        private_ipv4: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
        event_id: uuid::Uuid::now_v7(),
    }
}

/// A follower started while 100 machines are being created and destroyed ends with exactly the view
/// the writer left, and so does one started after it; a follower of another deployment sees none.
#[tokio::test]
async fn a_fleet_follower_started_mid_burst_ends_with_the_same_fleet() {
    let nats = TestNats::private().await;
    let client = nats.client().await;
    let topology = Topology::ensure(&client, &TopologyConfig::default())
        .await
        .unwrap();
    let view: FleetView = topology.fleet_view();
    let writer = {
        let view = view.clone();
        tokio::spawn(async move {
            for n in 0..100 {
                view.put(&record("burst", n, "created")).await.unwrap();
                view.put(&record("burst", n, "healthy")).await.unwrap();
                if n % 3 == 0 {
                    view.remove("burst", "gb-lon", &format!("m{n:03}")).await.unwrap();
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut follower = view.follow(Some("burst")).await.unwrap();
    writer.await.unwrap();
    let expected = view.snapshot(Some("burst")).await.unwrap();
    assert_eq!(expected.len(), 100 - 34);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while follower.values() != &expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the follower never caught up"
        );
        tokio::select! {
            c = follower.next() => { c.unwrap().unwrap(); }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    assert!(expected.values().all(|m| m.state == "healthy"));
    let other = view.snapshot(Some("another")).await.unwrap();
    assert!(other.is_empty());
}
