//! Domains and records against DigitalOcean's example answers: names relative on the wire, FQDN here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flotilla_cloud::{Dns, DnsBatch, DnsRecord, NewDnsRecord, Zone};
use serde_json::json;
use support::{Spec, assert_conforms, cloud};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn zone() -> Zone {
    Zone {
        id: "example.com".into(),
        name: "example.com".into(),
    }
}

#[tokio::test]
async fn find_zone_by_name() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/domains/example.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "domains/domains_get.yml",
            "200",
            None,
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/domains/example.org"))
        .respond_with(ResponseTemplate::new(404).set_body_json(spec.error("not_found")))
        .mount(&server)
        .await;
    let c = cloud(&server);
    assert_eq!(c.find_zone("example.com").await.unwrap(), Some(zone()));
    assert_eq!(c.find_zone("example.org").await.unwrap(), None);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn records_come_back_fully_qualified_and_filtered() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let all = spec.response(
        "domains/domains_list_records.yml",
        "200",
        Some("All Domain Records"),
    );
    Mock::given(method("GET"))
        .and(path("/v2/domains/example.com/records"))
        .and(query_param("name", "example.com"))
        .and(query_param("type", "A"))
        .and(query_param("per_page", "200"))
        .respond_with(ResponseTemplate::new(200).set_body_json(all.clone()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/domains/example.com/records"))
        .respond_with(ResponseTemplate::new(200).set_body_json(all))
        .mount(&server)
        .await;
    let c = cloud(&server);

    let a = c
        .list_records(&zone(), Some("example.com"), Some("A"))
        .await
        .unwrap();
    assert_eq!(
        a,
        vec![DnsRecord {
            id: "28448432".into(),
            kind: "A".into(),
            name: "example.com".into(),
            content: "1.2.3.4".into(),
            ttl: 1800,
            proxied: None,
            comment: None,
        }]
    );
    let every = c.list_records(&zone(), None, None).await.unwrap();
    assert_eq!(every.len(), 4);
    assert!(every.iter().all(|r| r.name == "example.com"), "@ is the apex");
    assert_eq!(every[0].content, "ns1.digitalocean.com");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn create_update_and_delete_send_relative_names() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/domains/example.com/records"))
        .and(body_json(
            json!({"type": "A", "name": "www", "data": "162.10.66.0", "ttl": 1800}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(spec.response(
            "domains/domains_create_record.yml",
            "201",
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/domains/example.com/records"))
        .and(body_json(
            json!({"type": "A", "name": "@", "data": "1.2.3.4", "ttl": 60}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"domain_record": {
            "id": 28448434, "type": "A", "name": "@", "data": "1.2.3.4", "ttl": 60
        }})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/domains/example.com/records/3352896"))
        .and(body_json(
            json!({"type": "A", "name": "blog", "data": "162.10.66.0", "ttl": 1800}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "domains/domains_update_record.yml",
            "200",
            None,
        )))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/domains/example.com/records/28448433"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/domains/example.com/records/1"))
        .respond_with(ResponseTemplate::new(404).set_body_json(spec.error("not_found")))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);

    let www = c
        .create_record(
            &zone(),
            &NewDnsRecord {
                kind: "A".into(),
                name: "www.example.com".into(),
                content: "162.10.66.0".into(),
                ttl: 1800,
                proxied: None,
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (www.id.as_str(), www.name.as_str(), www.ttl),
        ("28448433", "www.example.com", 1800)
    );

    let apex = NewDnsRecord {
        kind: "A".into(),
        name: "example.com".into(),
        content: "1.2.3.4".into(),
        ttl: 60,
        proxied: None,
        comment: None,
    };
    let blog = DnsRecord {
        id: "3352896".into(),
        kind: "A".into(),
        name: "blog.example.com".into(),
        content: "162.10.66.0".into(),
        ttl: 1800,
        proxied: None,
        comment: None,
    };
    let updated = c.update_record(&zone(), &blog).await.unwrap();
    assert_eq!(updated, blog);

    // The default batch: deletes (one already gone), then updates, then creates.
    c.apply_batch(
        &zone(),
        &DnsBatch {
            deletes: vec!["28448433".into(), "1".into()],
            updates: vec![blog.clone()],
            creates: vec![apex],
        },
    )
    .await
    .map(|report| assert!(report.refused.is_empty(), "{report:?}"))
    .unwrap();
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_name_outside_the_zone_is_refused_before_sending() {
    let server = MockServer::start().await;
    let err = cloud(&server)
        .create_record(
            &zone(),
            &NewDnsRecord {
                kind: "A".into(),
                name: "www.example.org".into(),
                content: "1.2.3.4".into(),
                ttl: 60,
                proxied: None,
                comment: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, flotilla_cloud::CloudError::Invalid { .. }), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}
