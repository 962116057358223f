//! State kept in a directory survives a restart: machines keep their ids and addresses and answer
//! health checks again; other resources come back too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HEALTH_PORT, call, config, exo, exo_wait, start, wait_answering};
use flotilla_cloudsim::defaults::{CLOUDFLARE_TOKEN, LINODE_TOKEN};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_restarted_simulator_keeps_its_machines() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.state_dir = Some(dir.path().to_path_buf());

    let sim = start(cfg.clone()).await;
    let (status, m) = call(
        Method::POST,
        &format!("{}/linode/instances", sim.linode_url()),
        LINODE_TOKEN,
        Some(&json!({"region": "gb-lon", "type": "g6-nanode-1", "label": "keep-me", "tags": ["flotilla"]})),
    )
    .await;
    assert_eq!(status, 200, "{m}");
    let id = m["id"].as_u64().unwrap();
    let ip = m["ipv4"][0].as_str().unwrap().to_owned();
    let types = exo(
        Method::GET,
        &format!("{}/instance-type", sim.exoscale_url()),
        None,
    )
    .await
    .1;
    let tiny = types["instance-types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["size"] == "tiny")
        .unwrap()["id"]
        .clone();
    let templates = exo(Method::GET, &format!("{}/template", sim.exoscale_url()), None)
        .await
        .1;
    let template = templates["templates"][0]["id"].clone();
    let zone = sim.exoscale_zone_url("de-fra-1");
    let (status, op) = exo(
        Method::POST,
        &format!("{zone}/instance"),
        Some(&json!({"name": "exo-keep", "instance-type": {"id": tiny}, "template": {"id": template}, "disk-size": 10})),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let exo_id = exo_wait(&zone, &op).await["reference"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let zones = call(
        Method::GET,
        &format!("{}/zones?name=example.com", sim.cloudflare_url()),
        CLOUDFLARE_TOKEN,
        None,
    )
    .await
    .1;
    let zone_id = zones["result"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        Method::POST,
        &format!("{}/zones/{zone_id}/dns_records", sim.cloudflare_url()),
        CLOUDFLARE_TOKEN,
        Some(&json!({"type": "A", "name": "www", "content": "203.0.113.9", "ttl": 60})),
    )
    .await;
    assert_eq!(status, 200);
    let health = format!("http://{ip}:{HEALTH_PORT}/health");
    wait_answering(&health, true).await;
    sim.shutdown().await;
    wait_answering(&health, false).await;

    let sim = start(cfg).await;
    let (status, again) = call(
        Method::GET,
        &format!("{}/linode/instances/{id}", sim.linode_url()),
        LINODE_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["ipv4"][0], ip.as_str());
    assert_eq!(again["label"], "keep-me");
    wait_answering(&health, true).await;
    let zone = sim.exoscale_zone_url("de-fra-1");
    let (status, exo_again) = exo(Method::GET, &format!("{zone}/instance/{exo_id}"), None).await;
    assert_eq!(status, 200, "{exo_again}");
    assert_eq!(exo_again["state"], "running");
    let zones = call(
        Method::GET,
        &format!("{}/zones?name=example.com", sim.cloudflare_url()),
        CLOUDFLARE_TOKEN,
        None,
    )
    .await
    .1;
    assert_eq!(
        zones["result_info"]["total_count"], 1,
        "the seeded zone is not duplicated"
    );
    assert_eq!(zones["result"][0]["id"], zone_id.as_str());
    let records = call(
        Method::GET,
        &format!(
            "{}/zones/{zone_id}/dns_records?name=www.example.com",
            sim.cloudflare_url()
        ),
        CLOUDFLARE_TOKEN,
        None,
    )
    .await
    .1;
    assert_eq!(records["result"][0]["content"], "203.0.113.9");
    // New ids do not collide with restored ones.
    let (_, m2) = call(
        Method::POST,
        &format!("{}/linode/instances", sim.linode_url()),
        LINODE_TOKEN,
        Some(&json!({"region": "gb-lon", "type": "g6-nanode-1", "label": "new-one"})),
    )
    .await;
    assert_ne!(m2["id"].as_u64().unwrap(), id);
    assert_ne!(m2["ipv4"][0], ip.as_str());
    sim.shutdown().await;
}
