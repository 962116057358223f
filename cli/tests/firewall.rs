//! `flotilla firewall show|why` over a real NATS, against the real firewall service and the simulator: a deployment whose managed database allows one secondary
//! webserver; a refusal (an address that is not IPv4: exit 2; a deployment not deployed: exit 1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flotilla_cloud::DatabaseRequest;
use flotilla_integration_tests::{TestNats, eventually, service_config, sim};
use flotilla_proto::{DesiredDeployment, MachineRecord};
use flotilla_spec::Dbaas;

async fn flotilla(nats_url: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .env("NATS_URL", nats_url)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_and_why_tell_the_allow_list() {
    let nats = TestNats::private().await;
    let sim = sim::simulator(Duration::from_millis(50), Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let client = nats.client().await;
    let topology = flotilla_bus::Topology::ensure(&client, &flotilla_bus::TopologyConfig::default())
        .await
        .unwrap();
    let mut config = service_config::<flotilla_firewall::Settings>(&nats, None, dir.path());
    config.clouds = sim.cloud_settings();
    config.service.debounce = Duration::from_millis(20);
    config.service.lease_ttl = Duration::from_secs(3);
    let service = flotilla_runtime::host::start(flotilla_firewall::DEF, config, flotilla_firewall::routes)
        .await
        .unwrap();

    let mut d = flotilla_integration_tests::templates::seed_import().deployment;
    d.name = "shop".into();
    d.regions.truncate(2);
    let (home, label) = flotilla_firewall::plan::database_home(&d).unwrap();
    let Some(Dbaas::Primary {
        version, size, nodes, ..
    }) = &home.dbaas
    else {
        unreachable!()
    };
    let clouds = flotilla_clouds::Clouds::new(sim::observer_settings(&sim), None);
    let databases = clouds.region(&d.name, home).unwrap().databases;
    databases
        .create_database(&DatabaseRequest {
            name: label.into(),
            engine: version.clone(),
            region: home.provider_region.clone(),
            size: size.clone(),
            nodes: *nodes,
            vpc_id: None,
            subnet_id: None,
            allow_list: vec![home.vpc.cidr],
        })
        .await
        .unwrap();
    topology
        .desired_states()
        .put(
            &DesiredDeployment {
                generation: flotilla_integration_tests::next_generation(),
                deployment: d.clone(),
                updated_at: chrono::Utc::now(),
                updated_by: "test".into(),
            },
            None,
        )
        .await
        .unwrap()
        .unwrap();
    let ws = MachineRecord {
        deployment: d.name.clone(),
        region: "nl-ams".into(),
        resource_id: "ws-ams".into(),
        role: "webserver".into(),
        name: "ws-ams".into(),
        size: "s".into(),
        provider: "linode".into(),
        provider_id: None,
        state: "running".into(),
        public_ipv4: Some("203.0.113.50".into()),
        private_ipv4: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
        event_id: uuid::Uuid::now_v7(),
    };
    topology.fleet_view().put(&ws).await.unwrap();
    eventually("the allow-list written", Duration::from_secs(30), || async {
        let db = databases.find_database(label).await.ok()??;
        db.allow_list
            .iter()
            .any(|n| n.to_string() == "203.0.113.50/32")
            .then_some(())
    })
    .await;

    let url = nats.url();
    let out = flotilla(url, &["firewall", "why", "shop", "203.0.113.50"]).await;
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("allowed: webserver ws-ams of region nl-ams"),
        "{}",
        text(&out)
    );
    let out = flotilla(url, &["firewall", "why", "shop", "192.0.2.1", "--output", "json"]).await;
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        out.status.success() && verdict["desired"] == false && verdict["at_provider"] == false,
        "{}",
        text(&out)
    );
    let out = flotilla(url, &["firewall", "why", "shop", "not-an-address"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = flotilla(url, &["firewall", "show", "nowhere"]).await;
    assert!(
        out.status.code() == Some(1) && String::from_utf8_lossy(&out.stderr).contains("is not deployed"),
        "{}",
        text(&out)
    );
    let out = flotilla(url, &["firewall", "show", "shop"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("allow-list of database test-cluster")
            && stdout.contains("203.0.113.50/32")
            && stdout.contains("firewall adt-webserver-"),
        "{}",
        text(&out)
    );
    service.shutdown().await.unwrap();
    sim.shutdown().await;
}
