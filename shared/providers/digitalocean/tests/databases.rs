//! Database clusters, their creation and deletion, and their trusted sources against DigitalOcean's example
//! answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flotilla_cloud::{CloudError, DatabaseRequest, ManagedDatabases};
use flotilla_digitalocean::MAX_DATABASE_RULES;
use ipnet::Ipv4Net;
use serde_json::json;
use support::{Spec, assert_conforms, cloud};
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
    assert_conforms(&server).await;
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
    assert_conforms(&server).await;
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
    assert_conforms(&server).await;
}

fn database_request(allow: &[&str]) -> DatabaseRequest {
    DatabaseRequest {
        name: "backend".into(),
        engine: "postgresql/14".into(),
        region: "nyc3".into(),
        size: "db-s-2vcpu-4gb".into(),
        nodes: 2,
        vpc_id: Some("d455e75d-4858-4eec-8c95-da2f0a5f93a7".into()),
        subnet_id: None,
        allow_list: allow.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

#[tokio::test]
async fn a_create_posts_the_cluster_then_its_allow_list() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/databases"))
        .and(body_json(json!({
            "name": "backend", "engine": "pg", "version": "14", "region": "nyc3",
            "size": "db-s-2vcpu-4gb", "num_nodes": 2,
            "private_network_uuid": "d455e75d-4858-4eec-8c95-da2f0a5f93a7"
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(spec.response(
            "databases/databases_create_cluster.yml",
            "201",
            None,
        )))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/databases/{DB}/firewall")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"rules": []})))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/v2/databases/{DB}/firewall")))
        .and(body_json(json!({"rules": [
            {"type": "ip_addr", "value": "203.0.113.4"},
            {"type": "ip_addr", "value": "10.0.1.0/24"},
        ]})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    let db = c
        .create_database(&database_request(&["203.0.113.4/32", "10.0.1.0/24"]))
        .await
        .unwrap();
    assert_eq!(db.id, DB);
    assert_eq!(db.engine, "pg");
    assert_eq!(db.status, "creating");
    assert!(!db.is_ready());
    assert_eq!(db.allow_list.len(), 2);

    // No allow-list: no firewall call.
    let db = c.create_database(&database_request(&[])).await.unwrap();
    assert!(db.allow_list.is_empty());
    server.verify().await;
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_taken_name_is_a_conflict_and_a_gone_cluster_is_not_found() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    serve_cluster(&server, &spec).await;
    Mock::given(method("POST"))
        .and(path("/v2/databases"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "id": "unprocessable_entity", "message": "cluster name is not available"
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/databases/{DB}")))
        .respond_with(ResponseTemplate::new(204))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(404).set_body_json(spec.error("not_found")))
        .mount(&server)
        .await;
    let c = cloud(&server);
    // "backend" is the name of the listed cluster.
    let err = c.create_database(&database_request(&[])).await.unwrap_err();
    assert!(matches!(err, CloudError::Conflict { .. }), "{err:?}");
    // Refused for another reason, the refusal stands.
    let mut free = database_request(&[]);
    free.name = "frontend".into();
    let err = c.create_database(&free).await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");

    c.delete_database(DB).await.unwrap();
    let err = c.delete_database(DB).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = c.delete_database("../account").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    let deletes = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .count();
    assert_eq!(deletes, 2, "a malformed id is refused before any call");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_create_with_too_many_addresses_or_an_unknown_engine_sends_nothing() {
    let server = MockServer::start().await;
    let c = cloud(&server);
    let mut request = database_request(&[]);
    request.allow_list = (0..=MAX_DATABASE_RULES)
        .map(|i| Ipv4Net::new(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32), 32).unwrap())
        .collect();
    let err = c.create_database(&request).await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    let mut request = database_request(&[]);
    request.engine = "mongodb/7".into();
    let err = c.create_database(&request).await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Invalid { field: Some(f), .. } if f == "engine"),
        "{err:?}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}
