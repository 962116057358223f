//! `provisioner.apply.v1` over the bus, against the simulator: the fleet is built, events report it, and the
//! same apply again changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_cloud::MarkFilter;
use flotilla_cloudsim::{SimConfig, Simulator, defaults};
use flotilla_integration_tests::{TestNats, free_port, init_logging, service_config};
use flotilla_proto::{ApplyRegion, CommandMeta, RegionApplied};
use flotilla_provisioner::Settings;
use flotilla_provisioner::clouds::{Endpoints, connect};
use futures::StreamExt;

#[tokio::test]
async fn an_apply_over_the_bus_builds_the_region_once() {
    init_logging();
    let health_port = free_port();
    let sim = Simulator::start(SimConfig {
        boot_delay: Duration::from_millis(100),
        health_port,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let nats = TestNats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let import = flotilla_integration_tests::templates::import(&[("TOKEN", defaults::LINODE_TOKEN)]);
    let (_, secrets_file) = import.write_to_dir(dir.path()).unwrap();
    let mut config = service_config::<Settings>(&nats, None, dir.path());
    config.secrets_file = Some(secrets_file);
    config.service = Settings {
        endpoints: Endpoints {
            linode: Some(sim.linode_url().to_owned()),
            ..Endpoints::default()
        },
        health_port,
        health_path: "/health".into(),
        boot_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(50),
        max_rounds: 5,
    };
    config.consumer.ack_wait = Duration::from_secs(5);
    let svc = flotilla_runtime::host::start(flotilla_provisioner::DEF, config, flotilla_provisioner::routes)
        .await
        .unwrap();

    let client = nats.client().await;
    let deployment = import.deployment.clone();
    let mut events = client
        .subscribe(format!("flotilla.evt.region.{}.gb-lon.>", deployment.name))
        .await
        .unwrap();
    let publisher = Publisher::new(client.clone(), PublishConfig::default());
    let subj = subject::command("provisioner", &deployment.name, "gb-lon", "apply").unwrap();
    let cmd = ApplyRegion {
        meta: CommandMeta::new("test"),
        deployment: deployment.clone(),
        region: "gb-lon".into(),
    };
    publisher
        .publish(&subj, &cmd.meta.id.to_string(), &cmd)
        .await
        .unwrap();
    let applied = next_event(&mut events).await;
    assert_eq!(applied.outcome, "applied", "{applied:?}");
    assert_eq!(
        applied.created.len(),
        3,
        "a webserver, the database machine, a reverse proxy: {applied:?}"
    );
    assert_eq!(applied.meta.correlation_id, cmd.meta.correlation_id);

    // The same command again is dropped by the stream; a new apply of the same spec changes nothing.
    let dup = publisher
        .publish(&subj, &cmd.meta.id.to_string(), &cmd)
        .await
        .unwrap();
    assert!(dup.duplicate);
    let again = ApplyRegion {
        meta: CommandMeta::new("test"),
        ..cmd.clone()
    };
    publisher
        .publish(&subj, &again.meta.id.to_string(), &again)
        .await
        .unwrap();
    let second = next_event(&mut events).await;
    assert_eq!(second.outcome, "applied");
    assert!(
        second.created.is_empty() && second.destroyed.is_empty(),
        "{second:?}"
    );

    let region = &import.deployment.regions[0];
    let cloud = connect(
        region,
        import.secrets.region("gb-lon").unwrap(),
        &Endpoints {
            linode: Some(sim.linode_url().to_owned()),
            ..Endpoints::default()
        },
    )
    .unwrap();
    assert_eq!(
        cloud
            .compute
            .list_machines(&MarkFilter::region(&deployment.name, "gb-lon"))
            .await
            .unwrap()
            .len(),
        3
    );
    svc.shutdown().await.unwrap();
    sim.shutdown().await;
}

async fn next_event(events: &mut async_nats::Subscriber) -> RegionApplied {
    let msg = tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .expect("a region event")
        .unwrap();
    let kind = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(flotilla_proto::KIND_HEADER))
        .map(|v| v.to_string());
    flotilla_proto::decode::<RegionApplied>(kind.as_deref(), None, &msg.payload).unwrap()
}
