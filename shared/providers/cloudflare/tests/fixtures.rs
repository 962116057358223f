//! The recorded zone and DNS record pages, served by wiremock to the real adapter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{adapter, common_yaml, fixture};
use flotilla_cloud::{CloudError, Dns, Zone};
use serde_json::Value;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ZONE_ID: &str = "ff12ab34cd5611334422ab3322997650";

fn unit_tests() -> Zone {
    Zone {
        id: ZONE_ID.into(),
        name: "unit.tests".into(),
    }
}

async fn serve_pages(server: &MockServer, at: &str, pages: &[&str]) {
    for (i, name) in pages.iter().enumerate() {
        Mock::given(method("GET"))
            .and(path(at))
            .and(query_param("page", (i + 1).to_string()))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture(name)))
            .expect(1)
            .mount(server)
            .await;
    }
}

const RECORD_PAGES: [&str; 3] = [
    "cloudflare-dns_records-page-1.json",
    "cloudflare-dns_records-page-2.json",
    "cloudflare-dns_records-page-3.json",
];

#[tokio::test]
async fn records_follow_all_three_pages() {
    let server = MockServer::start().await;
    serve_pages(
        &server,
        &format!("/client/v4/zones/{ZONE_ID}/dns_records"),
        &RECORD_PAGES,
    )
    .await;
    let cf = adapter(&server);
    let records = cf.list_records(&unit_tests(), None, None).await.unwrap();
    // Pages of 10, 12 and 10 records: the fixtures' own counts disagree with their contents, so the
    // adapter goes by total_pages, not by counting.
    assert_eq!(records.len(), 32);
    assert_eq!(cf.api().calls(), 3);

    let first = &records[0];
    assert_eq!(first.id, "fc12ab34cd5611334422ab3322997650");
    assert_eq!(
        (first.kind.as_str(), first.name.as_str(), first.content.as_str()),
        ("A", "unit.tests", "1.2.3.4")
    );
    assert_eq!(
        (first.ttl, first.proxied, first.comment.as_deref()),
        (300, Some(false), None)
    );

    let aaaa = records.iter().find(|r| r.kind == "AAAA").unwrap();
    assert_eq!(aaaa.content, "2601:644:500:e210:62f8:1dff:feb8:947a");
    assert_eq!(aaaa.ttl, 600);
    // Structured records (SRV, CAA) carry `data` instead of `content`.
    let srv: Vec<_> = records.iter().filter(|r| r.kind == "SRV").collect();
    assert_eq!(srv.len(), 4);
    assert!(srv.iter().all(|r| r.content.is_empty()));
    let naptr = records.iter().find(|r| r.kind == "NAPTR").unwrap();
    assert_eq!(naptr.ttl, 1, "1 = automatic");
    let idn = records.iter().find(|r| r.name == "txt.gíthub.com").unwrap();
    assert_eq!(idn.content, "\"IDNA test data\"");
    let https = records.iter().find(|r| r.kind == "HTTPS").unwrap();
    assert_eq!(https.ttl, 304);
    assert_eq!(records.last().unwrap().kind, "HTTPS");

    // Every page was asked for with the same page size, in order.
    let asked: Vec<(String, String)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let q: std::collections::HashMap<_, _> = r.url.query_pairs().into_owned().collect();
            (q["page"].clone(), q["per_page"].clone())
        })
        .collect();
    assert_eq!(
        asked,
        [("1", "1000"), ("2", "1000"), ("3", "1000")].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

#[tokio::test]
async fn record_filters_go_to_the_server_and_are_checked_here() {
    let server = MockServer::start().await;
    // The fixtures ignore filters (they are recordings): the adapter narrows the answer itself.
    for (i, name) in RECORD_PAGES.iter().enumerate() {
        Mock::given(method("GET"))
            .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records")))
            .and(query_param("type", "MX"))
            .and(query_param("name", "mx.unit.tests"))
            .and(query_param("page", (i + 1).to_string()))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture(name)))
            .mount(&server)
            .await;
    }
    let mx = adapter(&server)
        .list_records(&unit_tests(), Some("MX.unit.tests."), Some("mx"))
        .await
        .unwrap();
    let contents: Vec<&str> = mx.iter().map(|r| r.content.as_str()).collect();
    assert_eq!(
        contents,
        [
            "smtp-1.unit.tests",
            "smtp-2.unit.tests",
            "smtp-3.unit.tests",
            "smtp-4.unit.tests"
        ]
    );
}

#[tokio::test]
async fn a_single_page_is_one_call() {
    let server = MockServer::start().await;
    let zone = Zone {
        id: "bb000000000000000000000000000001".into(),
        name: "corp.internal.tests".into(),
    };
    serve_pages(
        &server,
        "/client/v4/zones/bb000000000000000000000000000001/dns_records",
        &["cloudflare-internal-dns_records.json"],
    )
    .await;
    let cf = adapter(&server);
    let records = cf.list_records(&zone, None, None).await.unwrap();
    let got: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str(), r.content.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("A", "corp.internal.tests", "10.0.0.1"),
            ("CNAME", "www.corp.internal.tests", "corp.internal.tests"),
            ("MX", "corp.internal.tests", "mail.corp.internal.tests"),
        ]
    );
    assert_eq!(cf.api().calls(), 1);
}

const ZONE_PAGES: [&str; 3] = [
    "cloudflare-zones-page-1.json",
    "cloudflare-zones-page-2.json",
    "cloudflare-zones-page-3.json",
];

#[tokio::test]
async fn zones_are_found_across_pages() {
    let server = MockServer::start().await;
    for (i, name) in ZONE_PAGES.iter().enumerate() {
        Mock::given(method("GET"))
            .and(path("/client/v4/zones"))
            .and(query_param("page", (i + 1).to_string()))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture(name)))
            .mount(&server)
            .await;
    }
    let cf = adapter(&server);
    let idn = cf.find_zone("gíthub.com").await.unwrap().unwrap();
    assert_eq!(idn.id, "234234243423aaabb334342bbb343433");
    assert_eq!(cf.api().calls(), 3);
    let zone = cf.find_zone("Unit.Tests.").await.unwrap().unwrap();
    assert_eq!(
        zone,
        Zone {
            id: "234234243423aaabb334342aaa343435".into(),
            name: "unit.tests".into()
        }
    );
    assert_eq!(
        cf.find_zone("github.io").await.unwrap().unwrap().id,
        "234234243423aaabb334342aaa343434"
    );
    assert_eq!(cf.find_zone("example.org").await.unwrap(), None);
    let names: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(names[0], "gíthub.com");
    assert_eq!(names[3], "unit.tests");
}

#[tokio::test]
async fn internal_zones_and_duplicate_names() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/client/v4/zones"))
        .and(query_param("name", "shared.internal.tests"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("cloudflare-internal-zones-duplicate-name.json")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/client/v4/zones"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("cloudflare-internal-zones-mixed.json")),
        )
        .mount(&server)
        .await;
    let cf = adapter(&server);
    let public = cf.find_zone("public.example.com").await.unwrap().unwrap();
    assert_eq!(public.id, "aa00000000000000000000000000full");
    let internal = cf.find_zone("corp.internal.tests").await.unwrap().unwrap();
    assert_eq!(internal.id, "bb000000000000000000000000000001");
    let err = cf.find_zone("shared.internal.tests").await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Conflict { message, .. }
            if message.contains("dupa0000000000000000000000000001") && message.contains("dupb0000000000000000000000000002")),
        "{err}"
    );
}

/// The names `common.yaml` gives the envelope and the page information.
fn envelope_fields() -> (Vec<String>, Vec<String>) {
    let common = common_yaml();
    let schemas = &common["components"]["schemas"];
    let required: Vec<String> = schemas["api-response-common"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let info: Vec<String> = schemas["api-response-collection"]["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|part| part["properties"]["result_info"]["properties"].as_object())
        .unwrap()
        .keys()
        .cloned()
        .collect();
    (required, info)
}

#[test]
fn every_page_fixture_has_the_envelope_common_yaml_describes() {
    let (required, info) = envelope_fields();
    assert_eq!(required, ["success", "errors", "messages"]);
    for key in ["page", "per_page", "total_pages", "count", "total_count"] {
        assert!(info.contains(&key.to_owned()), "{key}");
    }
    let pages = RECORD_PAGES.iter().chain(ZONE_PAGES.iter()).chain(&[
        "cloudflare-internal-dns_records.json",
        "cloudflare-internal-zones-mixed.json",
        "cloudflare-internal-zones-duplicate-name.json",
    ]);
    for name in pages {
        let page = fixture(name);
        for key in &required {
            assert!(page.get(key).is_some(), "{name} lacks {key}");
        }
        assert_eq!(page["success"], Value::Bool(true), "{name}");
        let result_info = page["result_info"].as_object().unwrap();
        for key in result_info.keys() {
            assert!(info.contains(key), "{name}: {key} is not in common.yaml");
        }
    }
}

#[tokio::test]
async fn the_failure_example_of_common_yaml_is_an_error_in_a_404_and_in_a_200() {
    let common = common_yaml();
    let failure = &common["components"]["schemas"]["api-response-common-failure"]["properties"];
    let body = serde_json::json!({
        "success": false,
        "errors": failure["errors"]["example"],
        "messages": [],
        "result": null,
    });
    assert_eq!(body["errors"][0]["code"], 7003);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/client/v4/zones"))
        .and(query_param("name", "a.example"))
        .respond_with(ResponseTemplate::new(404).set_body_json(&body))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/client/v4/zones"))
        .and(query_param("name", "b.example"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&body))
        .mount(&server)
        .await;
    let cf = adapter(&server);
    for name in ["a.example", "b.example"] {
        let err = cf.find_zone(name).await.unwrap_err();
        assert!(
            matches!(&err, CloudError::NotFound { what, .. } if what == "No route for the URI (7003)"),
            "{name}: {err}"
        );
    }
}
