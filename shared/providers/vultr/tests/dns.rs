//! Domains and records against Vultr's example answers: names relative on the wire, FQDN here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flotilla_cloud::{CloudError, Dns, DnsRecord, NewDnsRecord, Zone};
use serde_json::json;
use support::{Spec, assert_conforms, cloud, error};
use wiremock::matchers::{body_json, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RECORD: &str = "cb676a46-66fd-4dfb-b839-443f2e6c0b60";

fn zone() -> Zone {
    Zone {
        id: "example.com".into(),
        name: "example.com".into(),
    }
}

fn new_record(name: &str, content: &str, ttl: u32) -> NewDnsRecord {
    NewDnsRecord {
        kind: "A".into(),
        name: name.into(),
        content: content.into(),
        ttl,
        proxied: None,
        comment: None,
    }
}

#[tokio::test]
async fn find_zone_by_domain() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/domains/example.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "/domains/{dns-domain}",
            "get",
            "200",
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/domains/example.org"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error(404, "domain not found")))
        .mount(&server)
        .await;
    let c = cloud(&server);
    assert_eq!(c.find_zone("example.com.").await.unwrap(), Some(zone()));
    assert_eq!(c.find_zone("example.org").await.unwrap(), None);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn records_come_back_fully_qualified_filtered_across_cursors() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let mut first = spec.response("/domains/{dns-domain}/records", "get", "200");
    first["meta"]["links"]["next"] = json!("page-2");
    Mock::given(method("GET"))
        .and(path("/v2/domains/example.com/records"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ResponseTemplate::new(200).set_body_json(first))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/domains/example.com/records"))
        .and(query_param("cursor", "page-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records": [
                {"id": "apex", "type": "A", "name": "", "data": "192.0.2.1", "priority": 0, "ttl": 60},
                {"id": "www-aaaa", "type": "AAAA", "name": "www", "data": "2001:db8::1", "priority": 0, "ttl": 60},
                {"id": "www-a", "type": "A", "name": "www", "data": "192.0.2.2", "priority": 0, "ttl": 60},
            ],
            "meta": {"total": 4, "links": {"next": "", "prev": "page-1"}}
        })))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let all = c.list_records(&zone(), None, None).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        [
            "foo.example.com",
            "example.com",
            "www.example.com",
            "www.example.com"
        ]
    );
    assert_eq!(
        all[0],
        DnsRecord {
            id: RECORD.into(),
            kind: "A".into(),
            name: "foo.example.com".into(),
            content: "192.0.2.123".into(),
            ttl: 300,
            proxied: None,
            comment: None,
        }
    );
    let www_a = c
        .list_records(&zone(), Some("www.example.com"), Some("A"))
        .await
        .unwrap();
    assert_eq!(www_a.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["www-a"]);
    let apex = c.list_records(&zone(), Some("example.com"), None).await.unwrap();
    assert_eq!(apex.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["apex"]);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn create_update_and_delete_send_relative_names() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/domains/example.com/records"))
        .and(body_json(
            json!({"name": "www", "type": "A", "data": "192.0.2.123", "ttl": 300}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(spec.response(
            "/domains/{dns-domain}/records",
            "post",
            "201",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/domains/example.com/records"))
        .and(body_json(
            json!({"name": "", "type": "A", "data": "192.0.2.1", "ttl": 60}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"record": {
            "id": "apex", "type": "A", "name": "", "data": "192.0.2.1", "priority": 0, "ttl": 60
        }})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/v2/domains/example.com/records/{RECORD}")))
        .and(body_json(
            json!({"name": "www", "data": "192.0.2.200", "ttl": 60}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/domains/example.com/records/{RECORD}")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/domains/example.com/records/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error(404, "record not found")))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);

    let www = c
        .create_record(&zone(), &new_record("www.example.com", "192.0.2.123", 300))
        .await
        .unwrap();
    assert_eq!(
        (www.id.as_str(), www.name.as_str(), www.ttl),
        (RECORD, "www.example.com", 300)
    );
    let apex = c
        .create_record(&zone(), &new_record("example.com", "192.0.2.1", 60))
        .await
        .unwrap();
    assert_eq!(apex.name, "example.com");

    let changed = DnsRecord {
        content: "192.0.2.200".into(),
        ttl: 60,
        ..www.clone()
    };
    assert_eq!(c.update_record(&zone(), &changed).await.unwrap(), changed);
    c.delete_record(&zone(), RECORD).await.unwrap();
    c.delete_record(&zone(), "gone").await.unwrap();

    let err = c
        .create_record(&zone(), &new_record("www.example.org", "192.0.2.1", 60))
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err}");
    assert_conforms(&server).await;
}
