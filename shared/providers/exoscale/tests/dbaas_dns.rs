//! DBaaS services (created, found, IP filters replaced, deleted) and DNS against answers built from the
//! Exoscale OpenAPI spec.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{adapter, assert_conforms, component, example, operation, request_properties, spec};
use flotilla_cloud::{CloudError, DatabaseRequest, Dns, DnsRecord, ManagedDatabases, NewDnsRecord, Zone};
use ipnet::Ipv4Net;
use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OP: &str = "e2047130-b86e-11ed-afa1-0242ac120002";
const DOMAIN: &str = "7d1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const RECORD: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn services() -> serde_json::Value {
    example(
        "/dbaas-service",
        "get",
        &[(
            "/dbaas-services",
            json!([
                component(
                    "dbaas-service-common",
                    &[("/name", json!("cache")), ("/type", json!("valkey"))]
                ),
                component(
                    "dbaas-service-common",
                    &[
                        ("/name", json!("www-db")),
                        ("/type", json!("mysql")),
                        ("/state", json!("running"))
                    ]
                ),
                component(
                    "dbaas-service-common",
                    &[("/name", json!("pg-db")), ("/type", json!("pg"))]
                ),
            ]),
        )],
    )
}

#[tokio::test]
async fn find_database_reads_the_engine_view() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/dbaas-service"))
        .respond_with(ResponseTemplate::new(200).set_body_json(services()))
        .mount(&server)
        .await;
    let mysql = example(
        "/dbaas-mysql/{name}",
        "get",
        &[
            ("/name", json!("www-db")),
            ("/type", json!("mysql")),
            ("/state", json!("running")),
            ("/zone", json!("ch-gva-2")),
            (
                "/ip-filter",
                json!(["10.0.0.0/24", "185.19.28.170/32", "203.0.113.9"]),
            ),
            (
                "/components",
                json!([
                    {"component": "mysql", "host": "www-db-exoscale-1.a.aivencloud.com", "port": 21699, "route": "dynamic", "usage": "primary"},
                    {"component": "prometheus", "host": "x", "port": 9273, "route": "dynamic", "usage": "primary"}
                ]),
            ),
        ],
    );
    Mock::given(method("GET"))
        .and(path("/v2/dbaas-mysql/www-db"))
        .respond_with(ResponseTemplate::new(200).set_body_json(mysql))
        .expect(1)
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let db = exo.find_database("www-db").await.unwrap().unwrap();
    assert_eq!(db.id, "www-db");
    assert_eq!(db.name, "www-db");
    assert_eq!(db.engine, "mysql");
    assert_eq!(db.region, "ch-gva-2");
    assert!(db.is_ready());
    assert_eq!(db.host.as_deref(), Some("www-db-exoscale-1.a.aivencloud.com"));
    assert_eq!(db.port, Some(21699));
    assert_eq!(
        db.allow_list,
        vec![net("10.0.0.0/24"), net("185.19.28.170/32"), net("203.0.113.9/32")]
    );
    assert!(exo.find_database("nope").await.unwrap().is_none());
    assert_conforms(&server).await;
}

#[tokio::test]
async fn replace_allow_list_puts_the_ip_filter_at_the_engine_path_and_waits() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/dbaas-service"))
        .respond_with(ResponseTemplate::new(200).set_body_json(services()))
        // Once for www-db (then remembered, pg-db with it), once more for the unknown name.
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/dbaas-mysql/www-db"))
        .and(body_json(
            json!({"ip-filter": ["10.0.0.0/16", "185.19.28.170/32"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "pending", "")))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/dbaas-postgres/pg-db"))
        .and(body_json(json!({"ip-filter": ["203.0.113.0/24"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", "")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", "")))
        .expect(2)
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let allow = [net("10.0.0.0/16"), net("185.19.28.170/32")];
    exo.replace_allow_list("www-db", &allow).await.unwrap();
    // The service type is remembered: the second call needs no listing.
    exo.replace_allow_list("www-db", &allow).await.unwrap();
    exo.replace_allow_list("pg-db", &[net("203.0.113.7/24")])
        .await
        .unwrap();
    let err = exo.replace_allow_list("nope", &allow).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(request_properties("/dbaas-mysql/{name}", "put").contains(&"ip-filter".to_owned()));
    assert!(request_properties("/dbaas-postgres/{name}", "put").contains(&"ip-filter".to_owned()));
    assert_conforms(&server).await;
}

fn database_request(name: &str, engine: &str) -> DatabaseRequest {
    DatabaseRequest {
        name: name.into(),
        engine: engine.into(),
        region: common::ZONE.into(),
        size: "hobbyist-2".into(),
        nodes: 1,
        vpc_id: None,
        subnet_id: None,
        allow_list: vec![net("10.0.0.0/24"), net("203.0.113.9/32")],
    }
}

#[tokio::test]
async fn a_create_posts_plan_filter_and_version_at_the_engine_path_and_waits() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/dbaas-mysql/www-db"))
        .and(body_json(
            json!({"plan": "hobbyist-2", "ip-filter": ["10.0.0.0/24", "203.0.113.9/32"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "pending", "")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/dbaas-postgres/pg-db"))
        .and(body_json(json!({
            "plan": "hobbyist-2", "ip-filter": ["10.0.0.0/24", "203.0.113.9/32"], "version": "16"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", "")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", "")))
        .expect(1)
        .mount(&server)
        .await;
    for (engine, name, kind) in [("mysql", "www-db", "mysql"), ("postgres", "pg-db", "pg")] {
        let view = example(
            &format!("/dbaas-{engine}/{{name}}"),
            "get",
            &[
                ("/name", json!(name)),
                ("/type", json!(kind)),
                ("/state", json!("rebuilding")),
                ("/zone", json!("ch-gva-2")),
                ("/ip-filter", json!(["10.0.0.0/24", "203.0.113.9/32"])),
            ],
        );
        Mock::given(method("GET"))
            .and(path(format!("/v2/dbaas-{engine}/{name}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(view))
            .expect(1)
            .mount(&server)
            .await;
    }
    // The type is remembered from the create: the allow-list needs no listing.
    Mock::given(method("PUT"))
        .and(path("/v2/dbaas-postgres/pg-db"))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", "")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/dbaas-service"))
        .respond_with(ResponseTemplate::new(200).set_body_json(services()))
        .expect(0)
        .mount(&server)
        .await;

    let exo = adapter(&server);
    let db = exo
        .create_database(&database_request("www-db", "mysql"))
        .await
        .unwrap();
    assert_eq!((db.id.as_str(), db.engine.as_str()), ("www-db", "mysql"));
    assert!(!db.is_ready(), "rebuilding");
    assert_eq!(db.allow_list, vec![net("10.0.0.0/24"), net("203.0.113.9/32")]);
    let db = exo
        .create_database(&database_request("pg-db", "postgresql/16"))
        .await
        .unwrap();
    assert_eq!(db.engine, "pg");
    exo.replace_allow_list("pg-db", &[]).await.unwrap();
    for key in ["plan", "ip-filter", "version"] {
        assert!(request_properties("/dbaas-mysql/{name}", "post").contains(&key.to_owned()));
        assert!(request_properties("/dbaas-postgres/{name}", "post").contains(&key.to_owned()));
    }
    server.verify().await;
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_create_is_refused_outside_the_zone_for_an_unknown_engine_or_a_bad_name() {
    let server = MockServer::start().await;
    let exo = adapter(&server);
    let mut elsewhere = database_request("www-db", "mysql");
    elsewhere.region = "de-fra-1".into();
    let valkey = database_request("www-db", "valkey");
    let slashed = database_request("www/db", "mysql");
    for request in [elsewhere, valkey, slashed] {
        let err = exo.create_database(&request).await.unwrap_err();
        assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_taken_name_is_a_conflict() {
    let server = MockServer::start().await;
    // Refused as a conflict outright…
    Mock::given(method("POST"))
        .and(path("/v2/dbaas-mysql/www-db"))
        .respond_with(
            ResponseTemplate::new(409).set_body_json(json!({"message": "Service www-db already exists"})),
        )
        .mount(&server)
        .await;
    // …or as invalid, and the name is listed.
    Mock::given(method("POST"))
        .and(path("/v2/dbaas-postgres/pg-db"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "Invalid parameter name"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/dbaas-postgres/free-db"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "Invalid plan"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/dbaas-service"))
        .respond_with(ResponseTemplate::new(200).set_body_json(services()))
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let err = exo
        .create_database(&database_request("www-db", "mysql"))
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Conflict { .. }), "{err:?}");
    let err = exo
        .create_database(&database_request("pg-db", "pg"))
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Conflict { .. }), "{err:?}");
    let err = exo
        .create_database(&database_request("free-db", "pg"))
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_delete_goes_through_dbaas_service_and_a_gone_service_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/v2/dbaas-service/www-db"))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "pending", "")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/dbaas-service/www-db"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
        .await;
    // An operation that fails as not found is the same answer.
    Mock::given(method("DELETE"))
        .and(path("/v2/dbaas-service/pg-db"))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "pending", "")))
        .mount(&server)
        .await;
    let op = |state: &str| operation(OP, state, "");
    let mut failed = op("failure");
    failed["reason"] = json!("not-found");
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(op("success")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(failed))
        .mount(&server)
        .await;
    let exo = adapter(&server);
    exo.delete_database("www-db").await.unwrap();
    let err = exo.delete_database("www-db").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = exo.delete_database("pg-db").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = exo.delete_database("../instance").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        5,
        "delete and poll, delete, delete and poll; a malformed name sends nothing"
    );
    assert!(spec()["paths"]["/dbaas-service/{name}"]["delete"].is_object());
    assert_conforms(&server).await;
}

fn zone() -> Zone {
    Zone {
        id: DOMAIN.into(),
        name: "codetesters.uk".into(),
    }
}

#[tokio::test]
async fn dns_zones_and_records_use_relative_names() {
    let server = MockServer::start().await;
    let domains = example(
        "/dns-domain",
        "get",
        &[(
            "/dns-domains",
            json!([
                component(
                    "dns-domain",
                    &[
                        ("/id", json!("11111111-1111-4111-8111-111111111111")),
                        ("/unicode-name", json!("example.com"))
                    ]
                ),
                component(
                    "dns-domain",
                    &[("/id", json!(DOMAIN)), ("/unicode-name", json!("codetesters.uk"))]
                ),
            ]),
        )],
    );
    Mock::given(method("GET"))
        .and(path("/v2/dns-domain"))
        .respond_with(ResponseTemplate::new(200).set_body_json(domains))
        .mount(&server)
        .await;
    let rec = |id: &str, name: &str, kind: &str, content: &str, ttl: u32| {
        component(
            "dns-domain-record",
            &[
                ("/id", json!(id)),
                ("/name", json!(name)),
                ("/type", json!(kind)),
                ("/content", json!(content)),
                ("/ttl", json!(ttl)),
            ],
        )
    };
    let records = example(
        "/dns-domain/{domain-id}/record",
        "get",
        &[(
            "/dns-domain-records",
            json!([
                rec("a1", "", "A", "185.19.28.170", 60),
                rec("a2", "www", "A", "185.19.28.170", 60),
                rec("a3", "www", "A", "194.182.160.2", 60),
                rec("t1", "www", "TXT", "hello", 300),
                rec("n1", "", "NS", "ns1.exoscale.ch", 3600),
            ]),
        )],
    );
    Mock::given(method("GET"))
        .and(path(format!("/v2/dns-domain/{DOMAIN}/record")))
        .respond_with(ResponseTemplate::new(200).set_body_json(records))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/dns-domain/{DOMAIN}/record")))
        .and(body_json(
            json!({"name": "www", "type": "A", "content": "203.0.113.5", "ttl": 60}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", RECORD)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/v2/dns-domain/{DOMAIN}/record/{RECORD}")))
        .and(body_json(
            json!({"name": "", "content": "203.0.113.6", "ttl": 120}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", RECORD)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/dns-domain/{DOMAIN}/record/{RECORD}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", RECORD)))
        .expect(1)
        .mount(&server)
        .await;

    let exo = adapter(&server);
    assert_eq!(exo.find_zone("Codetesters.UK.").await.unwrap(), Some(zone()));
    assert_eq!(exo.find_zone("missing.uk").await.unwrap(), None);

    let all = exo.list_records(&zone(), None, None).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].name, "codetesters.uk");
    let www_a = exo
        .list_records(&zone(), Some("www.codetesters.uk"), Some("A"))
        .await
        .unwrap();
    let got: Vec<(&str, &str, u32)> = www_a
        .iter()
        .map(|r| (r.id.as_str(), r.content.as_str(), r.ttl))
        .collect();
    assert_eq!(got, [("a2", "185.19.28.170", 60), ("a3", "194.182.160.2", 60)]);

    let created = exo
        .create_record(
            &zone(),
            &NewDnsRecord {
                kind: "A".into(),
                name: "www.codetesters.uk".into(),
                content: "203.0.113.5".into(),
                ttl: 60,
                proxied: None,
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (created.id.as_str(), created.name.as_str()),
        (RECORD, "www.codetesters.uk")
    );
    let updated = exo
        .update_record(
            &zone(),
            &DnsRecord {
                id: RECORD.into(),
                kind: "A".into(),
                name: "codetesters.uk".into(),
                content: "203.0.113.6".into(),
                ttl: 120,
                proxied: None,
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.content, "203.0.113.6");
    exo.delete_record(&zone(), RECORD).await.unwrap();

    let err = exo
        .create_record(
            &zone(),
            &NewDnsRecord {
                kind: "A".into(),
                name: "www.example.com".into(),
                content: "203.0.113.5".into(),
                ttl: 60,
                proxied: None,
                comment: None,
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not in zone"), "{err}");
    for key in ["name", "type", "content", "ttl"] {
        assert!(request_properties("/dns-domain/{domain-id}/record", "post").contains(&key.to_owned()));
    }
    assert_conforms(&server).await;
}
