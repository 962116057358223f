//! Managed databases: created, found, their trusted IPs replaced, deleted.
//!
//! Vultr's OpenAPI document in `shared/provider-specs` has no `/databases` paths, so the answers here follow
//! the fields of Vultr's managed database API as its Go client (govultr) reads them: `label`,
//! `database_engine`, `host`, `public_host`, `port` (text) and `trusted_ips`; the requests are judged
//! against `flotilla-conformance`'s supplement of the document (written from Vultr's API reference).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flotilla_cloud::{CloudError, DatabaseRequest, ManagedDatabases};
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use support::{assert_conforms, cloud, error};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DB: &str = "9b8f6d9a-0b1a-4c3f-8d5e-2f1a0c6b7e11";

fn database() -> Value {
    json!({
        "id": DB,
        "date_created": "2023-01-16 21:41:23",
        "plan": "vultr-dbaas-startup-cc-1-55-2",
        "plan_disk": 55,
        "plan_ram": 2048,
        "plan_vcpus": 1,
        "plan_replicas": 0,
        "region": "ewr",
        "status": "Running",
        "label": "wp-db",
        "tag": "",
        "database_engine": "mysql",
        "database_engine_version": "8",
        "dbname": "defaultdb",
        "host": "vultr-prod-private.vultrdb.com",
        "public_host": "vultr-prod-public.vultrdb.com",
        "user": "vultradmin",
        "password": "not-a-real-password",
        "port": "16751",
        "maintenance_dow": "sunday",
        "maintenance_time": "06:00",
        "latest_backup": "2023-01-17 06:00:00",
        "trusted_ips": ["192.0.2.1/32", "10.0.0.0/24", "2001:db8::/32"],
        "mysql_sql_modes": ["ANSI"],
        "cluster_time_zone": "UTC",
        "read_replicas": []
    })
}

#[tokio::test]
async fn find_database_by_label_reads_host_port_and_trusted_ips() {
    let server = MockServer::start().await;
    let mut other = database();
    other["label"] = json!("wp-db-old");
    Mock::given(method("GET"))
        .and(path("/v2/databases"))
        .and(query_param("label", "wp-db"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "databases": [other, database()],
            "meta": {"total": 2, "links": {"next": "", "prev": ""}}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/databases"))
        .and(query_param("label", "nothing"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"databases": [], "meta": {"total": 0}})),
        )
        .mount(&server)
        .await;
    let c = cloud(&server);
    let db = c.find_database("wp-db").await.unwrap().unwrap();
    assert_eq!(db.id, DB);
    assert_eq!(db.engine, "mysql");
    assert_eq!(db.region, "ewr");
    assert!(db.is_ready(), "status Running");
    assert_eq!(db.host.as_deref(), Some("vultr-prod-public.vultrdb.com"));
    assert_eq!(db.port, Some(16751));
    let expected: Vec<Ipv4Net> = vec!["192.0.2.1/32".parse().unwrap(), "10.0.0.0/24".parse().unwrap()];
    assert_eq!(db.allow_list, expected, "IPv6 entries have no neutral form");
    assert!(!format!("{db:?}").contains("not-a-real-password"));
    assert_eq!(c.find_database("nothing").await.unwrap(), None);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn replacing_the_allow_list_puts_every_entry_as_a_cidr() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(format!("/v2/databases/{DB}")))
        .and(body_json(
            json!({"trusted_ips": ["203.0.113.4/32", "10.0.1.0/24"]}),
        ))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"database": database()})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/databases/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error(404, "database not found")))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let allow: Vec<Ipv4Net> = vec!["203.0.113.4/32".parse().unwrap(), "10.0.1.0/24".parse().unwrap()];
    c.replace_allow_list(DB, &allow).await.unwrap();
    assert!(
        c.replace_allow_list("gone", &allow)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_conforms(&server).await;
}

fn database_request() -> DatabaseRequest {
    DatabaseRequest {
        name: "wp-db".into(),
        engine: "mysql/8".into(),
        region: "ewr".into(),
        size: "vultr-dbaas-startup-cc-1-55-2".into(),
        nodes: 1,
        vpc_id: Some("cb676a46-66fd-4dfb-b839-443f2e6c0b60".into()),
        subnet_id: None,
        allow_list: vec!["203.0.113.4/32".parse().unwrap(), "10.0.1.0/24".parse().unwrap()],
    }
}

fn no_databases() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "databases": [], "meta": {"total": 0, "links": {"next": "", "prev": ""}}
    }))
}

#[tokio::test]
async fn a_create_posts_engine_version_plan_trusted_ips_and_vpc() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/databases"))
        .and(query_param("label", "wp-db"))
        .respond_with(no_databases())
        .mount(&server)
        .await;
    let mut created = database();
    created["status"] = json!("Rebuilding");
    Mock::given(method("POST"))
        .and(path("/v2/databases"))
        .and(body_json(json!({
            "database_engine": "mysql", "database_engine_version": "8", "region": "ewr",
            "plan": "vultr-dbaas-startup-cc-1-55-2", "label": "wp-db",
            "trusted_ips": ["203.0.113.4/32", "10.0.1.0/24"],
            "vpc_id": "cb676a46-66fd-4dfb-b839-443f2e6c0b60"
        })))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"database": created})))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    let db = c.create_database(&database_request()).await.unwrap();
    assert_eq!(db.id, DB);
    assert_eq!(db.name, "wp-db");
    assert!(!db.is_ready(), "Rebuilding");
    assert!(!format!("{db:?}").contains("not-a-real-password"));
    server.verify().await;
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_taken_label_is_a_conflict_before_anything_is_created() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/databases"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "databases": [database()], "meta": {"total": 1, "links": {"next": "", "prev": ""}}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"database": database()})))
        .expect(0)
        .mount(&server)
        .await;
    let c = cloud(&server);
    let err = c.create_database(&database_request()).await.unwrap_err();
    assert!(matches!(err, CloudError::Conflict { .. }), "{err:?}");
    // Vultr needs a version: refused before any call.
    let calls = c.api().calls();
    let mut request = database_request();
    request.engine = "postgresql".into();
    let err = c.create_database(&request).await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Invalid { field: Some(f), .. } if f == "engine"),
        "{err:?}"
    );
    assert_eq!(c.api().calls(), calls);
    server.verify().await;
    assert_conforms(&server).await;
}

#[tokio::test]
async fn deleting_a_gone_database_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/databases/{DB}")))
        .respond_with(ResponseTemplate::new(204))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/databases/{DB}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(error(404, "database not found")))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/databases/old-id"))
        .respond_with(ResponseTemplate::new(400).set_body_json(error(400, "Invalid database ID.")))
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.delete_database(DB).await.unwrap();
    let err = c.delete_database(DB).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = c.delete_database("old-id").await.unwrap_err();
    assert!(err.is_not_found(), "Vultr's invalid-id answer: {err:?}");
    let err = c.delete_database("../account").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    assert_eq!(c.api().calls(), 3, "a malformed id is refused before any call");
    assert_conforms(&server).await;
}
