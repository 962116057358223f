//! The DigitalOcean API as a client sees it: droplets (202, networks empty until booted), tag
//! filters, `links.pages` pagination, VPCs, firewalls, database firewalls, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HEALTH_PORT, call, config, start, unlimited, wait_answering};
use flotilla_cloudsim::defaults::DIGITALOCEAN_TOKEN;
use reqwest::Method;
use serde_json::{Value, json};

async fn dox(method: Method, url: &str, body: Option<Value>) -> (u16, Value) {
    call(method, url, DIGITALOCEAN_TOKEN, body.as_ref()).await
}

fn droplet(name: &str, tag: &str) -> Value {
    json!({"name": name, "region": "ams3", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "tags": ["flotilla", tag]})
}

#[tokio::test]
async fn droplets_get_their_networks_when_booted() {
    let sim = start(config()).await;
    let base = sim.digitalocean_url().to_owned();
    let (status, created) = dox(
        Method::POST,
        &format!("{base}/droplets"),
        Some(droplet("ws-1", "fl-dep:www")),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let d = &created["droplet"];
    assert_eq!(d["status"], "new");
    assert_eq!(d["networks"], json!({"v4": [], "v6": []}));
    assert_eq!(d["region"]["slug"], "ams3");
    assert_eq!(d["size_slug"], "s-1vcpu-1gb");
    assert!(
        d["vpc_uuid"].is_string(),
        "every droplet lands in the region's default VPC"
    );
    let action = created["links"]["actions"][0]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = d["id"].as_u64().unwrap();
    let (_, a) = dox(Method::GET, &action, None).await;
    assert_eq!(a["action"]["status"], "in-progress");

    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (_, got) = dox(Method::GET, &format!("{base}/droplets/{id}"), None).await;
    let d = &got["droplet"];
    assert_eq!(d["status"], "active");
    let v4 = d["networks"]["v4"].as_array().unwrap();
    let public = v4.iter().find(|n| n["type"] == "public").unwrap()["ip_address"]
        .as_str()
        .unwrap();
    let private = v4.iter().find(|n| n["type"] == "private").unwrap()["ip_address"]
        .as_str()
        .unwrap();
    assert!(private.starts_with("10."), "{private}");
    wait_answering(&format!("http://{public}:{HEALTH_PORT}/health"), true).await;
    let (_, a) = dox(Method::GET, &action, None).await;
    assert_eq!(a["action"]["status"], "completed");

    let (status, body) = dox(Method::DELETE, &format!("{base}/droplets/{id}"), None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = dox(Method::GET, &format!("{base}/droplets/{id}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["id"], "not_found");
    wait_answering(&format!("http://{public}:{HEALTH_PORT}/health"), false).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn lists_follow_links_and_filter_by_tag() {
    let sim = start(unlimited()).await;
    let base = sim.digitalocean_url().to_owned();
    for i in 0..7 {
        let tag = if i < 5 { "fl-dep:www" } else { "fl-dep:other" };
        assert_eq!(
            dox(
                Method::POST,
                &format!("{base}/droplets"),
                Some(droplet(&format!("ws-{i}"), tag))
            )
            .await
            .0,
            202
        );
    }
    let mut url = format!("{base}/droplets?tag_name=fl-dep:www&per_page=2");
    let mut names = Vec::new();
    loop {
        let (status, page) = dox(Method::GET, &url, None).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["meta"]["total"], 5);
        names.extend(
            page["droplets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_owned()),
        );
        match page["links"]["pages"]["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(names, ["ws-0", "ws-1", "ws-2", "ws-3", "ws-4"]);
    assert_eq!(
        dox(
            Method::DELETE,
            &format!("{base}/droplets?tag_name=fl-dep:other"),
            None
        )
        .await
        .0,
        204
    );
    let (_, all) = dox(Method::GET, &format!("{base}/droplets"), None).await;
    assert_eq!(all["meta"]["total"], 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_sizes_regions_images_and_tokens_are_refused_like_digitalocean() {
    let sim = start(config()).await;
    let base = sim.digitalocean_url().to_owned();
    for (field, value, message) in [
        (
            "size",
            "s-99vcpu",
            "You specified an invalid size for Droplet creation.",
        ),
        (
            "region",
            "atlantis1",
            "You specified an invalid region for Droplet creation.",
        ),
        (
            "image",
            "windows-95",
            "You specified an invalid image for Droplet creation.",
        ),
    ] {
        let mut body = droplet("ws-1", "x");
        body[field] = json!(value);
        let (status, v) = dox(Method::POST, &format!("{base}/droplets"), Some(body)).await;
        assert_eq!(status, 422, "{v}");
        assert_eq!(v["id"], "unprocessable_entity");
        assert_eq!(v["message"], message);
        assert!(v["request_id"].is_string());
    }
    let (status, v) = call(Method::GET, &format!("{base}/droplets"), "nope", None).await;
    assert_eq!(status, 401);
    assert_eq!(v["id"], "unauthorized");
    sim.shutdown().await;
}

#[tokio::test]
async fn vpcs_firewalls_and_database_firewalls() {
    let sim = start(config()).await;
    let base = sim.digitalocean_url().to_owned();
    let (status, vpc) = dox(
        Method::POST,
        &format!("{base}/vpcs"),
        Some(json!({"name": "fl-www", "region": "ams3", "ip_range": "10.20.0.0/24"})),
    )
    .await;
    assert_eq!(status, 201, "{vpc}");
    let vpc_id = vpc["vpc"]["id"].as_str().unwrap().to_owned();
    let (status, _) = dox(
        Method::POST,
        &format!("{base}/vpcs"),
        Some(json!({"name": "clash", "region": "ams3", "ip_range": "10.20.0.128/25"})),
    )
    .await;
    assert_eq!(status, 422);
    let mut body = droplet("ws-vpc", "x");
    body["vpc_uuid"] = json!(vpc_id);
    let (_, d) = dox(Method::POST, &format!("{base}/droplets"), Some(body)).await;
    let id = d["droplet"]["id"].as_u64().unwrap();
    assert_eq!(d["droplet"]["vpc_uuid"], vpc_id.as_str());

    let (status, fw) = dox(
        Method::POST,
        &format!("{base}/firewalls"),
        Some(json!({"name": "fl-www-web", "inbound_rules": [{"protocol": "tcp", "ports": "80", "sources": {"addresses": ["0.0.0.0/0"]}}],
            "outbound_rules": [{"protocol": "tcp", "ports": "all", "destinations": {"addresses": ["0.0.0.0/0"]}}]})),
    )
    .await;
    assert_eq!(status, 202, "{fw}");
    let fw_id = fw["firewall"]["id"].as_str().unwrap().to_owned();
    let (status, _) = dox(
        Method::POST,
        &format!("{base}/firewalls/{fw_id}/droplets"),
        Some(json!({"droplet_ids": [id]})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, got) = dox(Method::GET, &format!("{base}/firewalls/{fw_id}"), None).await;
    assert_eq!(got["firewall"]["droplet_ids"], json!([id]));
    let (status, _) = dox(
        Method::DELETE,
        &format!("{base}/firewalls/{fw_id}/droplets"),
        Some(json!({"droplet_ids": [id]})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, v) = dox(
        Method::PUT,
        &format!("{base}/firewalls/{fw_id}"),
        Some(json!({"name": "fl-www-web", "inbound_rules": [{"protocol": "tcp", "ports": "99999", "sources": {"addresses": ["0.0.0.0/0"]}}]})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    // The adapter's old body: an ICMP rule without `ports`, which DigitalOcean's schema requires.
    let (status, v) = dox(
        Method::POST,
        &format!("{base}/firewalls"),
        Some(json!({"name": "fl-www-icmp", "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}}],
            "outbound_rules": [{"protocol": "icmp", "destinations": {"addresses": ["0.0.0.0/0"]}}]})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["id"], "unprocessable_entity", "{v}");
    assert!(v["message"].as_str().unwrap().contains("ports"), "{v}");

    let (status, db) = dox(
        Method::POST,
        &format!("{base}/databases"),
        Some(json!({"name": "fl-db", "engine": "mysql", "version": "8", "region": "ams3", "size": "db-s-1vcpu-1gb", "num_nodes": 1})),
    )
    .await;
    assert_eq!(status, 201, "{db}");
    assert_eq!(db["database"]["status"], "creating");
    let db_id = db["database"]["id"].as_str().unwrap().to_owned();
    let (status, _) = dox(
        Method::PUT,
        &format!("{base}/databases/{db_id}/firewall"),
        Some(json!({"rules": [{"type": "ip_addr", "value": "203.0.113.4"}, {"type": "droplet", "value": id.to_string()}]})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, rules) = dox(Method::GET, &format!("{base}/databases/{db_id}/firewall"), None).await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 2);
    assert_eq!(rules["rules"][0]["cluster_uuid"], db_id.as_str());
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"type": "ip_addr", "value": format!("10.0.0.{i}")}))
        .collect();
    let (status, _) = dox(
        Method::PUT,
        &format!("{base}/databases/{db_id}/firewall"),
        Some(json!({"rules": too_many})),
    )
    .await;
    assert_eq!(status, 422);
    // A VPC with members cannot be deleted.
    assert_eq!(
        dox(Method::DELETE, &format!("{base}/vpcs/{vpc_id}"), None)
            .await
            .0,
        409
    );
    sim.shutdown().await;
}

/// Deleting VPCs: members (droplets, database clusters) make DigitalOcean answer 409, a region's default VPC
/// 403, a VPC that is gone 404; an empty one goes with 204. Members are listed as the API lists them.
#[tokio::test]
async fn vpcs_with_members_or_default_ones_are_refused() {
    let sim = start(config()).await;
    let base = sim.digitalocean_url().to_owned();
    let (status, vpc) = dox(
        Method::POST,
        &format!("{base}/vpcs"),
        Some(json!({"name": "fl-del", "region": "ams3", "ip_range": "10.30.0.0/24"})),
    )
    .await;
    assert_eq!(status, 201, "{vpc}");
    let vpc_id = vpc["vpc"]["id"].as_str().unwrap().to_owned();
    let mut body = droplet("ws-del", "x");
    body["vpc_uuid"] = json!(vpc_id);
    let (_, d) = dox(Method::POST, &format!("{base}/droplets"), Some(body)).await;
    let droplet_id = d["droplet"]["id"].as_u64().unwrap();
    let (status, db) = dox(
        Method::POST,
        &format!("{base}/databases"),
        Some(
            json!({"name": "fl-del-db", "engine": "pg", "region": "ams3", "size": "db-s-1vcpu-1gb",
            "num_nodes": 1, "private_network_uuid": vpc_id}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{db}");
    let db_id = db["database"]["id"].as_str().unwrap().to_owned();

    let (status, members) = dox(Method::GET, &format!("{base}/vpcs/{vpc_id}/members"), None).await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["meta"]["total"], 2, "{members}");
    let (_, droplets) = dox(
        Method::GET,
        &format!("{base}/vpcs/{vpc_id}/members?resource_type=droplet"),
        None,
    )
    .await;
    assert_eq!(droplets["members"][0]["urn"], format!("do:droplet:{droplet_id}"));
    assert_eq!(droplets["members"].as_array().unwrap().len(), 1);

    let (status, refused) = dox(Method::DELETE, &format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["id"], "conflict");
    assert_eq!(refused["message"], "Can not delete VPC with members");
    let (status, _) = dox(Method::DELETE, &format!("{base}/droplets/{droplet_id}"), None).await;
    assert_eq!(status, 204);
    // The database cluster is still a member.
    assert_eq!(
        dox(Method::DELETE, &format!("{base}/vpcs/{vpc_id}"), None)
            .await
            .0,
        409
    );
    let (status, _) = dox(Method::DELETE, &format!("{base}/databases/{db_id}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = dox(Method::DELETE, &format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = dox(Method::DELETE, &format!("{base}/vpcs/{vpc_id}"), None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["id"], "not_found");
    assert_eq!(
        dox(Method::GET, &format!("{base}/vpcs/{vpc_id}/members"), None)
            .await
            .0,
        404
    );

    // A droplet without a VPC lands in the region's default one, which cannot be deleted even when empty.
    let (_, d) = dox(
        Method::POST,
        &format!("{base}/droplets"),
        Some(droplet("ws-default", "x")),
    )
    .await;
    let droplet_id = d["droplet"]["id"].as_u64().unwrap();
    let default = d["droplet"]["vpc_uuid"].as_str().unwrap().to_owned();
    let (status, _) = dox(Method::DELETE, &format!("{base}/droplets/{droplet_id}"), None).await;
    assert_eq!(status, 204);
    let (status, refused) = dox(Method::DELETE, &format!("{base}/vpcs/{default}"), None).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["id"], "forbidden");
    sim.shutdown().await;
}
