//! The Linode API as a client sees it: shapes from the recorded real traffic, pagination, X-Filter,
//! VPCs, firewalls, databases, domains, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HEALTH_PORT, call, config, start, unlimited, wait_answering};
use flotilla_cloudsim::defaults::LINODE_TOKEN;
use reqwest::Method;
use serde_json::{Value, json};

async fn linode(method: Method, url: String, body: Option<Value>) -> (u16, Value) {
    call(method, &url, LINODE_TOKEN, body.as_ref()).await
}

fn instance(label: &str) -> Value {
    json!({
        "region": "gb-lon", "type": "g6-nanode-1", "image": "linode/debian12",
        "root_pass": "s3cret-Pass", "label": label, "tags": ["flotilla", "fl-dep:www"],
    })
}

#[tokio::test]
async fn instances_boot_answer_health_checks_and_go_away() {
    let sim = start(config()).await;
    let base = sim.linode_url().to_owned();
    let (status, created) = linode(
        Method::POST,
        format!("{base}/linode/instances"),
        Some(instance("ws-1")),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["status"], "provisioning");
    assert_eq!(created["type"], "g6-nanode-1");
    assert_eq!(created["region"], "gb-lon");
    assert!(
        created["created"].as_str().unwrap().len() == 19,
        "{}",
        created["created"]
    );
    let id = created["id"].as_u64().unwrap();
    let ip = created["ipv4"][0].as_str().unwrap().to_owned();
    assert!(ip.starts_with("127.10."), "{ip}");
    let health = format!("http://{ip}:{HEALTH_PORT}/health");
    wait_answering(&health, true).await;
    let (_, got) = linode(Method::GET, format!("{base}/linode/instances/{id}"), None).await;
    assert_eq!(got["status"], "running");
    let (_, ips) = linode(Method::GET, format!("{base}/linode/instances/{id}/ips"), None).await;
    assert_eq!(ips["ipv4"]["public"][0]["address"], ip);
    let (status, body) = linode(Method::DELETE, format!("{base}/linode/instances/{id}"), None).await;
    assert_eq!((status, body), (200, json!({})));
    wait_answering(&health, false).await;
    let (status, body) = linode(Method::GET, format!("{base}/linode/instances/{id}"), None).await;
    assert_eq!(
        (status, body),
        (404, json!({"errors": [{"reason": "Not found"}]}))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn lists_paginate_and_filter_by_tag() {
    let sim = start(unlimited()).await;
    let base = sim.linode_url().to_owned();
    for i in 0..27 {
        let mut body = instance(&format!("ws-{i}"));
        if i % 3 == 0 {
            body["tags"] = json!(["flotilla", "fl-dep:other"]);
        }
        let (status, v) = linode(Method::POST, format!("{base}/linode/instances"), Some(body)).await;
        assert_eq!(status, 200, "{v}");
    }
    let (_, p1) = linode(
        Method::GET,
        format!("{base}/linode/instances?page=1&page_size=25"),
        None,
    )
    .await;
    assert_eq!(
        (p1["page"].clone(), p1["pages"].clone(), p1["results"].clone()),
        (json!(1), json!(2), json!(27))
    );
    assert_eq!(p1["data"].as_array().unwrap().len(), 25);
    let (_, p2) = linode(
        Method::GET,
        format!("{base}/linode/instances?page=2&page_size=25"),
        None,
    )
    .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 2);
    let (status, bad) = linode(Method::GET, format!("{base}/linode/instances?page_size=10"), None).await;
    assert_eq!(status, 400);
    assert_eq!(bad["errors"][0]["field"], "page_size");

    let filtered = common::http()
        .get(format!("{base}/linode/instances"))
        .bearer_auth(LINODE_TOKEN)
        .header("X-Filter", r#"{"tags": "fl-dep:other"}"#)
        .send()
        .await
        .unwrap();
    let (_, filtered) = common::json(filtered).await;
    assert_eq!(filtered["results"], 9);
    assert!(
        filtered["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["tags"].as_array().unwrap().contains(&json!("fl-dep:other")))
    );
    let contains = common::http()
        .get(format!("{base}/linode/instances"))
        .bearer_auth(LINODE_TOKEN)
        .header("X-Filter", r#"{"label": {"+contains": "ws-2"}}"#)
        .send()
        .await
        .unwrap();
    let (_, contains) = common::json(contains).await;
    assert_eq!(contains["results"], 8, "ws-2, ws-20 … ws-26");
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_regions_types_images_and_tokens_are_refused_like_linode() {
    let sim = start(config()).await;
    let base = sim.linode_url().to_owned();
    let mut body = instance("ws-1");
    body["region"] = json!("mars-1");
    let (status, v) = linode(Method::POST, format!("{base}/linode/instances"), Some(body)).await;
    assert_eq!(status, 400);
    assert_eq!(v["errors"][0]["field"], "region");
    let mut body = instance("ws-1");
    body["type"] = json!("g6-huge-99");
    let (status, v) = linode(Method::POST, format!("{base}/linode/instances"), Some(body)).await;
    assert_eq!((status, v["errors"][0]["field"].clone()), (400, json!("type")));
    let mut body = instance("ws-1");
    body["image"] = json!("linode/windows95");
    let (status, v) = linode(Method::POST, format!("{base}/linode/instances"), Some(body)).await;
    assert_eq!((status, v["errors"][0]["field"].clone()), (400, json!("image")));
    let (status, v) = call(
        Method::GET,
        &format!("{base}/linode/instances"),
        "wrong-token",
        None,
    )
    .await;
    assert_eq!(
        (status, v),
        (401, json!({"errors": [{"reason": "Invalid Token"}]}))
    );
    let r = common::http()
        .get(format!("{base}/linode/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Labels are unique.
    assert_eq!(
        linode(
            Method::POST,
            format!("{base}/linode/instances"),
            Some(instance("dup"))
        )
        .await
        .0,
        200
    );
    let (status, v) = linode(
        Method::POST,
        format!("{base}/linode/instances"),
        Some(instance("dup")),
    )
    .await;
    assert_eq!((status, v["errors"][0]["field"].clone()), (400, json!("label")));
    // The real API's region ids are accepted.
    let (status, regions) = linode(Method::GET, format!("{base}/regions"), None).await;
    assert_eq!(status, 200);
    assert!(
        regions["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "nl-ams")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn vpc_interfaces_firewalls_and_devices() {
    let sim = start(config()).await;
    let base = sim.linode_url().to_owned();
    let (status, vpc) = linode(
        Method::POST,
        format!("{base}/vpcs"),
        Some(json!({"label": "fl-www", "region": "gb-lon", "subnets": [{"label": "app", "ipv4": "10.0.1.0/24"}]})),
    )
    .await;
    assert_eq!(status, 200, "{vpc}");
    let subnet = vpc["subnets"][0]["id"].as_u64().unwrap();
    let (status, v) = linode(
        Method::POST,
        format!("{base}/vpcs"),
        Some(json!({"label": "bad!", "region": "gb-lon"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        v["errors"][0]["reason"],
        "Must only use ASCII letters, numbers, and underscores"
    );

    let (status, fw) = linode(
        Method::POST,
        format!("{base}/networking/firewalls"),
        Some(json!({
            "label": "fl-www-web",
            "rules": {
                "inbound_policy": "DROP", "outbound_policy": "ACCEPT",
                "inbound": [{"action": "ACCEPT", "protocol": "TCP", "ports": "80,443", "addresses": {"ipv4": ["0.0.0.0/0"]}}],
            },
            "tags": ["flotilla"],
        })),
    )
    .await;
    assert_eq!(status, 200, "{fw}");
    assert_eq!(fw["rules"]["version"], 1);
    let fw_id = fw["id"].as_u64().unwrap();

    let mut body = instance("ws-vpc");
    body["firewall_id"] = json!(fw_id);
    body["interfaces"] =
        json!([{"purpose": "public"}, {"purpose": "vpc", "subnet_id": subnet, "ipv4": {"nat_1_1": "any"}}]);
    let (status, m) = linode(Method::POST, format!("{base}/linode/instances"), Some(body)).await;
    assert_eq!(status, 200, "{m}");
    let id = m["id"].as_u64().unwrap();
    let (_, ips) = linode(Method::GET, format!("{base}/linode/instances/{id}/ips"), None).await;
    assert_eq!(ips["ipv4"]["vpc"][0]["address"], "10.0.1.2");
    assert_eq!(ips["ipv4"]["vpc"][0]["subnet_id"], subnet);
    assert_eq!(ips["ipv4"]["vpc"][0]["nat_1_1"], m["ipv4"][0]);

    let (_, devices) = linode(
        Method::GET,
        format!("{base}/networking/firewalls/{fw_id}/devices"),
        None,
    )
    .await;
    assert_eq!(devices["results"], 1);
    assert_eq!(devices["data"][0]["entity"]["id"], id);
    let device = devices["data"][0]["id"].as_u64().unwrap();
    let (status, _) = linode(
        Method::POST,
        format!("{base}/networking/firewalls/{fw_id}/devices"),
        Some(json!({"id": id, "type": "linode"})),
    )
    .await;
    assert_eq!(status, 400, "already attached");
    let (status, rules) = linode(
        Method::PUT,
        format!("{base}/networking/firewalls/{fw_id}/rules"),
        Some(json!({"inbound_policy": "DROP", "outbound_policy": "ACCEPT", "inbound": [
            {"action": "ACCEPT", "protocol": "TCP", "ports": "22", "addresses": {"ipv4": ["203.0.113.4/32"]}}]})),
    )
    .await;
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules["version"], 2);
    assert_eq!(rules["inbound"][0]["ports"], "22");
    let (status, v) = linode(
        Method::PUT,
        format!("{base}/networking/firewalls/{fw_id}/rules"),
        Some(json!({"inbound_policy": "MAYBE", "outbound_policy": "ACCEPT"})),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].clone()),
        (400, json!("rules.inbound_policy"))
    );
    let (status, _) = linode(
        Method::DELETE,
        format!("{base}/networking/firewalls/{fw_id}/devices/{device}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = linode(
        Method::GET,
        format!("{base}/networking/firewalls/{fw_id}/devices/{device}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // A VPC with machines cannot go; without them it can.
    let vpc_id = vpc["id"].as_u64().unwrap();
    assert_eq!(
        linode(Method::DELETE, format!("{base}/vpcs/{vpc_id}"), None)
            .await
            .0,
        400
    );
    assert_eq!(
        linode(Method::DELETE, format!("{base}/linode/instances/{id}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        linode(Method::DELETE, format!("{base}/vpcs/{vpc_id}"), None)
            .await
            .0,
        200
    );
    sim.shutdown().await;
}

/// A VPC goes only once nothing is on it: Linodes and databases on its subnets make Linode refuse the delete
/// (400, `errors[].reason`, no field); a VPC that is gone is 404.
#[tokio::test]
async fn vpcs_in_use_are_refused_and_gone_ones_are_not_found() {
    let sim = start(config()).await;
    let base = sim.linode_url().to_owned();
    let (status, vpc) = linode(
        Method::POST,
        format!("{base}/vpcs"),
        Some(json!({"label": "fl-del", "region": "gb-lon", "subnets": [{"label": "flotilla", "ipv4": "10.9.0.0/24"}]})),
    )
    .await;
    assert_eq!(status, 200, "{vpc}");
    let vpc_id = vpc["id"].as_u64().unwrap();
    let subnet = vpc["subnets"][0]["id"].as_u64().unwrap();
    let mut body = instance("ws-del");
    body["interfaces"] =
        json!([{"purpose": "public"}, {"purpose": "vpc", "subnet_id": subnet, "ipv4": {"nat_1_1": "any"}}]);
    let (status, created) = linode(Method::POST, format!("{base}/linode/instances"), Some(body)).await;
    assert_eq!(status, 200, "{created}");
    let machine = created["id"].as_u64().unwrap();
    let (status, db) = linode(
        Method::POST,
        format!("{base}/databases/mysql/instances"),
        Some(
            json!({"label": "fl-del-db", "region": "gb-lon", "type": "g6-nanode-1", "engine": "mysql/8",
            "private_network": {"vpc_id": vpc_id, "subnet_id": subnet}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{db}");
    assert_eq!(
        db["private_network"],
        json!({"vpc_id": vpc_id, "subnet_id": subnet, "public_access": false})
    );
    let db_id = db["id"].as_u64().unwrap();
    let (_, sub) = linode(
        Method::GET,
        format!("{base}/vpcs/{vpc_id}/subnets/{subnet}"),
        None,
    )
    .await;
    assert_eq!(sub["databases"][0]["id"], db_id);
    assert_eq!(sub["linodes"][0]["id"], machine);

    let (status, refused) = linode(Method::DELETE, format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Linodes"),
        "{refused}"
    );
    assert!(refused["errors"][0].get("field").is_none(), "{refused}");
    let (status, _) = linode(Method::DELETE, format!("{base}/linode/instances/{machine}"), None).await;
    assert_eq!(status, 200);
    // The database alone still holds it, and its subnet.
    let (status, refused) = linode(Method::DELETE, format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Databases"),
        "{refused}"
    );
    let (status, _) = linode(
        Method::DELETE,
        format!("{base}/vpcs/{vpc_id}/subnets/{subnet}"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = linode(
        Method::DELETE,
        format!("{base}/databases/mysql/instances/{db_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (status, body) = linode(Method::DELETE, format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!((status, body), (200, json!({})));
    let (status, body) = linode(Method::DELETE, format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!(
        (status, body),
        (404, json!({"errors": [{"reason": "Not found"}]}))
    );
    // A database cannot join a VPC that does not exist.
    let (status, refused) = linode(
        Method::POST,
        format!("{base}/databases/mysql/instances"),
        Some(
            json!({"label": "fl-del-db2", "region": "gb-lon", "type": "g6-nanode-1", "engine": "mysql/8",
            "private_network": {"vpc_id": vpc_id, "subnet_id": subnet}}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "private_network.vpc_id");
    sim.shutdown().await;
}

#[tokio::test]
async fn databases_hold_normalised_allow_lists_once_active() {
    let sim = start(config()).await;
    let base = sim.linode_url().to_owned();
    let (status, db) = linode(
        Method::POST,
        format!("{base}/databases/mysql/instances"),
        Some(
            json!({"label": "fl-db", "region": "gb-lon", "type": "g6-nanode-1", "engine": "mysql/8",
            "allow_list": ["203.0.113.1", "192.0.1.0/24"], "cluster_size": 1}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{db}");
    assert_eq!(db["status"], "provisioning");
    assert_eq!(db["allow_list"], json!(["192.0.1.0/24", "203.0.113.1/32"]));
    let id = db["id"].as_u64().unwrap();
    let url = format!("{base}/databases/mysql/instances/{id}");
    let (status, _) = linode(
        Method::PUT,
        url.clone(),
        Some(json!({"allow_list": ["10.0.0.1"]})),
    )
    .await;
    assert_eq!(status, 400, "not active yet");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (status, db) = linode(
        Method::PUT,
        url.clone(),
        Some(json!({"allow_list": ["10.0.1.0/24", "10.0.0.9"]})),
    )
    .await;
    assert_eq!(status, 200, "{db}");
    assert_eq!(db["status"], "active");
    assert_eq!(db["allow_list"], json!(["10.0.0.9/32", "10.0.1.0/24"]));
    let (status, v) = linode(
        Method::PUT,
        url.clone(),
        Some(json!({"allow_list": ["not-an-ip"]})),
    )
    .await;
    assert_eq!(
        (status, v["errors"][0]["field"].clone()),
        (400, json!("allow_list"))
    );
    let (_, all) = linode(Method::GET, format!("{base}/databases/instances"), None).await;
    assert_eq!(all["results"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn domains_hold_records() {
    let sim = start(config()).await;
    let base = sim.linode_url().to_owned();
    let (status, d) = linode(
        Method::POST,
        format!("{base}/domains"),
        Some(json!({"domain": "codetesters.uk", "type": "master", "soa_email": "ops@codetesters.uk"})),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    let id = d["id"].as_u64().unwrap();
    let (status, r) = linode(
        Method::POST,
        format!("{base}/domains/{id}/records"),
        Some(json!({"type": "A", "name": "www", "target": "203.0.113.7", "ttl_sec": 60})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["ttl_sec"], 60);
    let (status, _) = linode(
        Method::POST,
        format!("{base}/domains/{id}/records"),
        Some(json!({"type": "A", "name": "www", "target": "nope"})),
    )
    .await;
    assert_eq!(status, 400);
    let filtered = common::http()
        .get(format!("{base}/domains/{id}/records"))
        .bearer_auth(LINODE_TOKEN)
        .header("X-Filter", r#"{"name": "www"}"#)
        .send()
        .await
        .unwrap();
    let (_, list) = common::json(filtered).await;
    assert_eq!(list["results"], 1);
    let rid = r["id"].as_u64().unwrap();
    assert_eq!(
        linode(Method::DELETE, format!("{base}/domains/{id}/records/{rid}"), None).await,
        (200, json!({}))
    );
    sim.shutdown().await;
}
