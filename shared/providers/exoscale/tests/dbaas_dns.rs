//! DBaaS IP filters and DNS against answers built from the Exoscale OpenAPI spec.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{adapter, component, example, operation, request_properties};
use flotilla_cloud::{Dns, DnsRecord, ManagedDatabases, NewDnsRecord, Zone};
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
}
