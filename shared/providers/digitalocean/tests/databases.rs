//! Database clusters and their trusted sources against DigitalOcean's example answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flotilla_cloud::{CloudError, ManagedDatabases};
use flotilla_digitalocean::MAX_DATABASE_RULES;
use ipnet::Ipv4Net;
use serde_json::json;
use support::{Spec, cloud};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DB: &str = "9cc10173-e9ea-4176-9dbc-a4cee4c4ff30";

async fn serve_cluster(server: &MockServer, spec: &Spec) {
    Mock::given(method("GET"))
        .and(path("/v2/databases"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "databases/databases_list_clusters.yml",
            "200",
            None,
        )))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/databases/{DB}/firewall")))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "databases/databases_list_firewall_rules.yml",
            "200",
            None,
        )))
        .mount(server)
        .await;
}

#[tokio::test]
async fn find_database_reads_the_cluster_and_its_ip_trusted_sources() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    serve_cluster(&server, &spec).await;
    let c = cloud(&server);
    let db = c.find_database("backend").await.unwrap().unwrap();
    assert_eq!(db.id, DB);
    assert_eq!(db.engine, "pg");
    assert_eq!(db.region, "nyc3");
    assert_eq!(db.status, "online");
    assert!(db.is_ready());
    assert_eq!(
        db.host.as_deref(),
        Some("backend-do-user-19081923-0.db.ondigitalocean.com")
    );
    assert_eq!(db.port, Some(25060));
    // Of the four rules (k8s, ip_addr, droplet, tag) only the address is an allow-list entry.
    assert_eq!(db.allow_list, vec!["192.168.1.1/32".parse::<Ipv4Net>().unwrap()]);
    assert_eq!(c.find_database("frontend").await.unwrap(), None);
}

#[tokio::test]
async fn replacing_the_allow_list_keeps_the_other_trusted_sources() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    serve_cluster(&server, &spec).await;
    Mock::given(method("PUT"))
        .and(path(format!("/v2/databases/{DB}/firewall")))
        .and(body_json(json!({"rules": [
            {"type": "k8s", "value": "ff2a6c52-5a44-4b63-b99c-0e98e7a63d61"},
            {"type": "droplet", "value": "163973392"},
            {"type": "tag", "value": "backend"},
            {"type": "ip_addr", "value": "203.0.113.4"},
            {"type": "ip_addr", "value": "10.0.1.0/24"},
        ]})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let allow: Vec<Ipv4Net> = vec!["203.0.113.4/32".parse().unwrap(), "10.0.1.0/24".parse().unwrap()];
    cloud(&server).replace_allow_list(DB, &allow).await.unwrap();
}

#[tokio::test]
async fn more_than_a_hundred_rules_is_invalid_before_anything_is_sent() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let c = cloud(&server);
    let many: Vec<Ipv4Net> = (0..=MAX_DATABASE_RULES)
        .map(|i| Ipv4Net::new(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32), 32).unwrap())
        .collect();
    assert_eq!(many.len(), 101);
    let err = c.replace_allow_list(DB, &many).await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Invalid { field: Some(f), .. } if f == "rules"),
        "{err}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());

    // 98 addresses and the cluster's three other sources make 101: refused without a PUT.
    serve_cluster(&server, &spec).await;
    let err = c.replace_allow_list(DB, &many[..98]).await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err}");
    let sent = server.received_requests().await.unwrap();
    assert!(sent.iter().all(|r| r.method.as_str() == "GET"), "no PUT");
}
