//! Record changes, authentication headers and every error mapping, against wiremock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TOKEN, adapter, fixture, legacy_adapter};
use flotilla_cloud::{CloudError, Dns, DnsRecord, NewDnsRecord, Zone};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ZONE_ID: &str = "ff12ab34cd5611334422ab3322997650";

fn zone() -> Zone {
    Zone {
        id: ZONE_ID.into(),
        name: "unit.tests".into(),
    }
}

fn ok(result: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"success": true, "errors": [], "messages": [], "result": result}))
}

fn fail(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null
    }))
}

/// A record of the recorded first page, as a create or update would echo it.
fn recorded(i: usize) -> Value {
    fixture("cloudflare-dns_records-page-1.json")["result"][i].clone()
}

fn new_record() -> NewDnsRecord {
    NewDnsRecord {
        kind: "A".into(),
        name: "www.unit.tests".into(),
        content: "2.2.3.6".into(),
        ttl: 300,
        proxied: Some(false),
        comment: Some("flotilla:www-codetesters-uk".into()),
    }
}

#[tokio::test]
async fn create_update_delete_with_an_api_token() {
    let server = MockServer::start().await;
    let mut echoed = recorded(2);
    echoed["comment"] = json!("flotilla:www-codetesters-uk");
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "type": "A", "name": "www.unit.tests", "content": "2.2.3.6", "ttl": 300,
            "proxied": false, "comment": "flotilla:www-codetesters-uk",
        })))
        .respond_with(ok(echoed))
        .expect(1)
        .mount(&server)
        .await;
    let mut updated = recorded(2);
    updated["content"] = json!("2.2.3.7");
    updated["ttl"] = json!(1);
    Mock::given(method("PATCH"))
        .and(path(format!(
            "/client/v4/zones/{ZONE_ID}/dns_records/fc12ab34cd5611334422ab3322997653"
        )))
        .and(body_json(
            json!({"type": "A", "name": "www.unit.tests", "content": "2.2.3.7", "ttl": 1}),
        ))
        .respond_with(ok(updated))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!(
            "/client/v4/zones/{ZONE_ID}/dns_records/fc12ab34cd5611334422ab3322997653"
        )))
        .respond_with(ok(json!({"id": "fc12ab34cd5611334422ab3322997653"})))
        .expect(1)
        .mount(&server)
        .await;

    let cf = adapter(&server);
    let created = cf.create_record(&zone(), &new_record()).await.unwrap();
    assert_eq!(created.id, "fc12ab34cd5611334422ab3322997653");
    assert_eq!(created.comment.as_deref(), Some("flotilla:www-codetesters-uk"));
    let after = cf
        .update_record(
            &zone(),
            &DnsRecord {
                id: created.id.clone(),
                kind: "A".into(),
                name: "www.unit.tests".into(),
                content: "2.2.3.7".into(),
                ttl: 1,
                proxied: None,
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((after.content.as_str(), after.ttl), ("2.2.3.7", 1));
    cf.delete_record(&zone(), &created.id).await.unwrap();
}

#[tokio::test]
async fn the_legacy_global_key_sends_email_and_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/client/v4/zones"))
        .and(header("x-auth-email", "ops@example.com"))
        .and(header("x-auth-key", "global-456"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("cloudflare-internal-zones-mixed.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let zone = legacy_adapter(&server)
        .find_zone("public.example.com")
        .await
        .unwrap();
    assert_eq!(zone.unwrap().id, "aa00000000000000000000000000full");
    let request = &server.received_requests().await.unwrap()[0];
    assert!(request.headers.get("authorization").is_none());
}

#[tokio::test]
async fn deleting_the_gone_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/gone-404")))
        .respond_with(fail(404, 81044, "Record does not exist."))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/gone-200")))
        .respond_with(fail(
            200,
            7003,
            "Could not route to /zones/x/dns_records/gone-200",
        ))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/locked")))
        .respond_with(fail(400, 1004, "DNS Validation Error"))
        .mount(&server)
        .await;
    let cf = adapter(&server);
    cf.delete_record(&zone(), "gone-404").await.unwrap();
    cf.delete_record(&zone(), "gone-200").await.unwrap();
    let err = cf.delete_record(&zone(), "locked").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err}");
}

async fn create_answers(answer: ResponseTemplate) -> (CloudError, u64) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records")))
        .respond_with(answer)
        .mount(&server)
        .await;
    let cf = adapter(&server);
    let err = cf.create_record(&zone(), &new_record()).await.unwrap_err();
    (err, cf.api().calls())
}

#[tokio::test]
async fn error_codes_map_to_errors() {
    let (e, _) = create_answers(fail(403, 10000, "Authentication error")).await;
    assert!(
        matches!(&e, CloudError::Auth { message, .. } if message == "Authentication error (10000)"),
        "{e}"
    );
    // A code alone decides, whatever the status.
    let (e, _) = create_answers(fail(400, 10000, "Authentication error")).await;
    assert!(matches!(e, CloudError::Auth { .. }), "{e}");
    let (e, _) = create_answers(fail(400, 81057, "Record already exists.")).await;
    assert!(matches!(e, CloudError::Conflict { .. }), "{e}");
    let (e, _) = create_answers(fail(400, 81058, "An identical record already exists.")).await;
    assert!(matches!(e, CloudError::Conflict { .. }), "{e}");
    let (e, _) = create_answers(fail(400, 1003, "Invalid or missing zone id.")).await;
    assert!(matches!(e, CloudError::Invalid { .. }), "{e}");
    let pointer = ResponseTemplate::new(400).set_body_json(json!({
        "success": false, "messages": [], "result": null,
        "errors": [{"code": 1004, "message": "DNS Validation Error", "source": {"pointer": "/content"}}],
    }));
    let (e, _) = create_answers(pointer).await;
    assert!(
        matches!(&e, CloudError::Invalid { field: Some(f), .. } if f == "content"),
        "{e}"
    );
    let (e, _) = create_answers(fail(404, 7003, "Could not route")).await;
    assert!(e.is_not_found(), "{e}");
    let (e, _) = create_answers(fail(404, 7000, "No route for that URI")).await;
    assert!(e.is_not_found(), "{e}");
    // success:false in a 200 is an error.
    let (e, _) = create_answers(fail(200, 81057, "Record already exists.")).await;
    assert!(matches!(e, CloudError::Conflict { .. }), "{e}");
    // Unknown codes fall back on the status.
    let (e, _) = create_answers(fail(401, 9999, "who are you")).await;
    assert!(matches!(e, CloudError::Auth { .. }), "{e}");
    let (e, calls) = create_answers(fail(502, 9999, "bad gateway")).await;
    assert!(e.is_retryable(), "{e}");
    assert_eq!(calls, 1, "a create that may have happened is not repeated");
    let (e, calls) = create_answers(
        fail(429, 971, "Please wait and consider throttling your request speed")
            .insert_header("Retry-After", "1"),
    )
    .await;
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)), "{e}");
    assert_eq!(calls, 2, "rate-limited creates are retried after Retry-After");
    let (e, _) = create_answers(ResponseTemplate::new(200).set_body_string("<html>")).await;
    assert!(matches!(e, CloudError::Protocol { .. }), "{e}");
}

#[tokio::test]
async fn a_rate_limited_read_waits_and_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/client/v4/zones"))
        .respond_with(fail(429, 971, "slow down").insert_header("Retry-After", "1"))
        .up_to_n_times(1)
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
    let started = std::time::Instant::now();
    assert!(cf.find_zone("corp.internal.tests").await.unwrap().is_some());
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!((cf.api().calls(), cf.api().rate_limited()), (2, 1));
}

/// The fields a record body may carry, by the evidence: the recorded records (the fixtures' `result`
/// entries, with their JSON types) and the documented create body in `reference/provider-apis.md`
/// (`POST …/dns_records {type, name, content, ttl, proxied, comment, tags}`: `comment` and `tags` postdate the
/// fixtures).
fn record_fields() -> (std::collections::BTreeMap<String, &'static str>, Vec<String>) {
    let mut typed = std::collections::BTreeMap::new();
    for page in 1..=3 {
        let f = fixture(&format!("cloudflare-dns_records-page-{page}.json"));
        for r in f["result"].as_array().unwrap() {
            for (k, v) in r.as_object().unwrap() {
                if !v.is_null() {
                    typed.insert(k.clone(), kind_of(v));
                }
            }
        }
    }
    let doc = common::cloudflare_dir()
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("reference").join("provider-apis.md"))
        .unwrap();
    let text = std::fs::read_to_string(&doc).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("POST …/dns_records `{"))
        .expect("the documented record create");
    let inner = line
        .split("`{")
        .nth(1)
        .and_then(|r| r.split("}`").next())
        .unwrap();
    let documented = inner.split(',').map(|f| f.trim().to_owned()).collect();
    (typed, documented)
}

/// Every body the adapter sends — create, update, and a batch's entries — uses only the fields the fixtures
/// and the documentation show, with the fixtures' types; a batch uses only its documented keys.
#[tokio::test]
async fn request_bodies_use_only_the_fields_the_evidence_shows() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/batch")))
        .respond_with(ok(json!({"deletes": [], "patches": [], "posts": []})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records")))
        .respond_with(ok(recorded(2)))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ok(recorded(2)))
        .mount(&server)
        .await;
    let cf = adapter(&server);
    let mut marked = new_record();
    marked.proxied = Some(true);
    marked.ttl = 1;
    cf.create_record(&zone(), &marked).await.unwrap();
    let existing = DnsRecord {
        id: "fc12ab34cd5611334422ab3322997653".into(),
        kind: "A".into(),
        name: "www.unit.tests".into(),
        content: "2.2.3.7".into(),
        ttl: 60,
        proxied: Some(false),
        comment: Some("flotilla:x".into()),
    };
    cf.update_record(&zone(), &existing).await.unwrap();
    cf.apply_batch(
        &zone(),
        &flotilla_cloud::DnsBatch {
            deletes: vec!["fc12ab34cd5611334422ab3322997650".into()],
            updates: vec![existing.clone()],
            creates: vec![marked.clone()],
        },
    )
    .await
    .unwrap();

    let (typed, documented) = record_fields();
    let mut problems = Vec::new();
    let check_record = |what: &str, body: &Value| -> Vec<String> {
        let mut found = Vec::new();
        for (k, v) in body.as_object().unwrap() {
            match typed.get(k) {
                Some(t) if *t != kind_of(v) => {
                    found.push(format!("{what}: {k} is {} (recorded {t})", kind_of(v)));
                }
                Some(_) => {}
                None if documented.contains(k) => {}
                None => found.push(format!("{what}: {k} is neither recorded nor documented")),
            }
        }
        found
    };
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    problems.extend(check_record("create", &requests[0].body_json().unwrap()));
    problems.extend(check_record("update", &requests[1].body_json().unwrap()));
    let batch: Value = requests[2].body_json().unwrap();
    for (k, entries) in batch.as_object().unwrap() {
        if !["deletes", "patches", "puts", "posts"].contains(&k.as_str()) {
            problems.push(format!("batch: {k} is not a documented key"));
        }
        for e in entries.as_array().unwrap() {
            if k == "deletes" {
                if e.as_object().unwrap().keys().any(|f| f != "id") {
                    problems.push(format!("batch deletes: {e}"));
                }
            } else {
                problems.extend(check_record(&format!("batch {k}"), e));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The evidence is not empty, and a field nobody shows is caught.
    assert!(typed.contains_key("proxied") && documented.contains(&"comment".to_owned()));
    assert!(!typed.contains_key("invented") && !documented.contains(&"invented".to_owned()));
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
