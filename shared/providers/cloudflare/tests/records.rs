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
