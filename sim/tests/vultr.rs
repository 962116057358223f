//! The Vultr API as a client sees it: instances (202, main_ip "0.0.0.0" until booted), cursor
//! pagination, firewall groups and rules, VPCs, databases, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HEALTH_PORT, call, config, start, unlimited, wait_answering};
use flotilla_cloudsim::defaults::VULTR_TOKEN;
use reqwest::Method;
use serde_json::{Value, json};

async fn vultr(method: Method, url: &str, body: Option<Value>) -> (u16, Value) {
    call(method, url, VULTR_TOKEN, body.as_ref()).await
}

fn instance(label: &str, tag: &str) -> Value {
    json!({"region": "ams", "plan": "vc2-1c-1gb", "os_id": 2136, "label": label, "hostname": label, "tags": ["flotilla", tag]})
}

#[tokio::test]
async fn instances_get_their_main_ip_when_booted() {
    let sim = start(config()).await;
    let base = sim.vultr_url().to_owned();
    let (status, v) = vultr(
        Method::POST,
        &format!("{base}/instances"),
        Some(instance("ws-1", "fl-dep:www")),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let i = &v["instance"];
    assert_eq!(i["main_ip"], "0.0.0.0");
    assert_eq!(i["status"], "pending");
    assert!(i["default_password"].is_string());
    let id = i["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (_, got) = vultr(Method::GET, &format!("{base}/instances/{id}"), None).await;
    let i = &got["instance"];
    assert_eq!(i["status"], "active");
    assert!(i.get("default_password").is_none());
    let ip = i["main_ip"].as_str().unwrap();
    assert!(ip.starts_with("127."));
    wait_answering(&format!("http://{ip}:{HEALTH_PORT}/health"), true).await;
    assert_eq!(
        vultr(Method::DELETE, &format!("{base}/instances/{id}"), None).await,
        (204, Value::Null)
    );
    let (status, body) = vultr(Method::GET, &format!("{base}/instances/{id}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn cursors_walk_every_page_and_tags_filter() {
    let sim = start(unlimited()).await;
    let base = sim.vultr_url().to_owned();
    for i in 0..7 {
        let tag = if i % 2 == 0 { "fl-dep:www" } else { "fl-dep:other" };
        assert_eq!(
            vultr(
                Method::POST,
                &format!("{base}/instances"),
                Some(instance(&format!("ws-{i}"), tag))
            )
            .await
            .0,
            202
        );
    }
    let mut cursor = String::new();
    let mut labels = Vec::new();
    loop {
        let (status, page) = vultr(
            Method::GET,
            &format!("{base}/instances?tag=fl-dep:www&per_page=3&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["meta"]["total"], 4);
        labels.extend(
            page["instances"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["label"].as_str().unwrap().to_owned()),
        );
        cursor = page["meta"]["links"]["next"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(labels, ["ws-0", "ws-2", "ws-4", "ws-6"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn refusals_in_vultrs_shape() {
    let sim = start(config()).await;
    let base = sim.vultr_url().to_owned();
    for (field, value) in [
        ("region", json!("atlantis")),
        ("plan", json!("vc9-huge")),
        ("os_id", json!(1)),
    ] {
        let mut body = instance("x", "y");
        body[field] = value;
        let (status, v) = vultr(Method::POST, &format!("{base}/instances"), Some(body)).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["status"], 400);
        assert!(v["error"].as_str().unwrap().starts_with("Invalid"), "{v}");
    }
    let (status, v) = call(Method::GET, &format!("{base}/instances"), "bad", None).await;
    assert_eq!((status, v["status"].clone()), (401, json!(401)));
    sim.shutdown().await;
}

#[tokio::test]
async fn firewall_groups_rules_vpcs_and_databases() {
    let sim = start(config()).await;
    let base = sim.vultr_url().to_owned();
    let (status, g) = vultr(
        Method::POST,
        &format!("{base}/firewalls"),
        Some(json!({"description": "fl-www-web"})),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let gid = g["firewall_group"]["id"].as_str().unwrap().to_owned();
    let rules = format!("{base}/firewalls/{gid}/rules");
    let rule = json!({"ip_type": "v4", "protocol": "TCP", "subnet": "0.0.0.0", "subnet_size": 0, "port": "8000:9000", "notes": "app"});
    let (status, r) = vultr(Method::POST, &rules, Some(rule.clone())).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["firewall_rule"]["protocol"], "tcp");
    assert_eq!(
        vultr(Method::POST, &rules, Some(rule)).await.0,
        400,
        "duplicates are refused"
    );
    let (status, _) = vultr(
        Method::POST,
        &rules,
        Some(json!({"ip_type": "v4", "protocol": "TCP", "subnet": "", "subnet_size": 0, "port": "443", "source": "cloudflare"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, list) = vultr(Method::GET, &rules, None).await;
    assert_eq!(list["meta"]["total"], 2);

    let (status, vpc) = vultr(
        Method::POST,
        &format!("{base}/vpcs"),
        Some(
            json!({"region": "ams", "description": "fl-www", "v4_subnet": "10.99.0.0", "v4_subnet_mask": 24}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{vpc}");
    let vpc_id = vpc["vpc"]["id"].as_str().unwrap().to_owned();
    let mut body = instance("ws-vpc", "x");
    body["firewall_group_id"] = json!(gid);
    body["attach_vpc"] = json!([vpc_id]);
    let (status, i) = vultr(Method::POST, &format!("{base}/instances"), Some(body)).await;
    assert_eq!(status, 202, "{i}");
    assert_eq!(i["instance"]["firewall_group_id"], gid.as_str());
    let iid = i["instance"]["id"].as_str().unwrap().to_owned();
    let (_, g) = vultr(Method::GET, &format!("{base}/firewalls/{gid}"), None).await;
    assert_eq!(g["firewall_group"]["instance_count"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (_, got) = vultr(Method::GET, &format!("{base}/instances/{iid}"), None).await;
    assert_eq!(got["instance"]["internal_ip"], "10.99.0.2");

    let (status, db) = vultr(
        Method::POST,
        &format!("{base}/databases"),
        Some(
            json!({"database_engine": "mysql", "database_engine_version": "8", "region": "ams",
            "plan": "vultr-dbaas-hobbyist-cc-1-25-1", "label": "fl-db"}),
        ),
    )
    .await;
    assert_eq!(status, 202, "{db}");
    let db_id = db["database"]["id"].as_str().unwrap().to_owned();
    let (status, db) = vultr(
        Method::PUT,
        &format!("{base}/databases/{db_id}"),
        Some(json!({"trusted_ips": ["203.0.113.4/32", "10.99.0.2"]})),
    )
    .await;
    assert_eq!(status, 202, "{db}");
    assert_eq!(
        db["database"]["trusted_ips"],
        json!(["203.0.113.4/32", "10.99.0.2/32"])
    );
    sim.shutdown().await;
}

/// Deleting VPCs: one with instances attached is refused (400 in Vultr's shape), one that is gone is 404,
/// an empty one goes with 204.
#[tokio::test]
async fn vpcs_with_instances_are_refused_and_gone_ones_are_not_found() {
    let sim = start(config()).await;
    let base = sim.vultr_url().to_owned();
    let (status, vpc) = vultr(
        Method::POST,
        &format!("{base}/vpcs"),
        Some(
            json!({"region": "ams", "description": "fl-del", "v4_subnet": "10.98.0.0", "v4_subnet_mask": 24}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{vpc}");
    let vpc_id = vpc["vpc"]["id"].as_str().unwrap().to_owned();
    let mut body = instance("ws-del", "x");
    body["attach_vpc"] = json!([vpc_id]);
    let (status, i) = vultr(Method::POST, &format!("{base}/instances"), Some(body)).await;
    assert_eq!(status, 202, "{i}");
    let iid = i["instance"]["id"].as_str().unwrap().to_owned();

    let (status, refused) = vultr(Method::DELETE, &format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["status"], 400);
    assert!(
        refused["error"].as_str().unwrap().contains("attached"),
        "{refused}"
    );
    let (status, _) = vultr(Method::DELETE, &format!("{base}/instances/{iid}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = vultr(Method::DELETE, &format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = vultr(Method::DELETE, &format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!(
        (status, body),
        (404, json!({"error": "Not found.", "status": 404}))
    );
    sim.shutdown().await;
}
