//! Batched record changes: chunks of at most 200, and record-by-record replay of a refused chunk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::adapter;
use flotilla_cloud::{CloudError, Dns, DnsBatch, DnsRecord, NewDnsRecord, Zone};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

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

fn create(i: usize) -> NewDnsRecord {
    NewDnsRecord {
        kind: "A".into(),
        name: format!("ws{i}.unit.tests"),
        content: format!("10.0.{}.{}", i / 250, i % 250 + 1),
        ttl: 60,
        proxied: None,
        comment: None,
    }
}

fn update(i: usize) -> DnsRecord {
    DnsRecord {
        id: format!("u{i}"),
        kind: "A".into(),
        name: format!("up{i}.unit.tests"),
        content: "203.0.113.1".into(),
        ttl: 60,
        proxied: Some(true),
        comment: None,
    }
}

fn batch(deletes: usize, updates: usize, creates: usize) -> DnsBatch {
    DnsBatch {
        deletes: (0..deletes).map(|i| format!("d{i}")).collect(),
        updates: (0..updates).map(update).collect(),
        creates: (0..creates).map(create).collect(),
    }
}

fn sizes(r: &Request) -> (usize, usize, usize) {
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let n = |k: &str| body[k].as_array().unwrap().len();
    (n("deletes"), n("patches"), n("posts"))
}

#[tokio::test]
async fn changes_go_in_chunks_of_200_in_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/batch")))
        .respond_with(ok(json!({"deletes": [], "patches": [], "posts": []})))
        .expect(3)
        .mount(&server)
        .await;
    let cf = adapter(&server);
    cf.apply_batch(&zone(), &batch(150, 100, 200)).await.unwrap();
    let received = server.received_requests().await.unwrap();
    let chunks: Vec<_> = received.iter().map(sizes).collect();
    assert_eq!(chunks, [(150, 50, 0), (0, 50, 150), (0, 0, 50)]);
    let first: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(first["deletes"][0], json!({"id": "d0"}));
    assert_eq!(
        first["patches"][0],
        json!({"id": "u0", "type": "A", "name": "up0.unit.tests", "content": "203.0.113.1", "ttl": 60, "proxied": true})
    );
    let last: Value = serde_json::from_slice(&received[2].body).unwrap();
    assert_eq!(
        last["posts"][49],
        json!({"type": "A", "name": "ws199.unit.tests", "content": "10.0.0.200", "ttl": 60})
    );

    // Nothing to do, nothing sent.
    cf.apply_batch(&zone(), &DnsBatch::default()).await.unwrap();
    assert_eq!(cf.api().calls(), 3);
}

#[tokio::test]
async fn a_refused_chunk_is_replayed_record_by_record_and_each_refusal_reported() {
    let server = MockServer::start().await;
    // The batch is refused as a whole (one bad record rolls the transaction back).
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/batch")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "success": false, "messages": [], "result": null,
            "errors": [{"code": 81058, "message": "An identical record already exists."}],
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/d0")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "success": false, "messages": [], "result": null,
            "errors": [{"code": 81044, "message": "Record does not exist."}],
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/u0")))
        .respond_with(ok(
            json!({"id": "u0", "type": "A", "name": "up0.unit.tests", "content": "203.0.113.1", "ttl": 60}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    // ws0 already exists; ws1 is fine: both are tried.
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records")))
        .and(body_json(
            json!({"type": "A", "name": "ws0.unit.tests", "content": "10.0.0.1", "ttl": 60}),
        ))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "success": false, "messages": [], "result": null,
            "errors": [{"code": 81058, "message": "An identical record already exists."}],
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records")))
        .and(body_json(
            json!({"type": "A", "name": "ws1.unit.tests", "content": "10.0.0.2", "ttl": 60}),
        ))
        .respond_with(ok(
            json!({"id": "n1", "type": "A", "name": "ws1.unit.tests", "content": "10.0.0.2", "ttl": 60}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let report = adapter(&server)
        .apply_batch(&zone(), &batch(1, 1, 2))
        .await
        .unwrap();
    // The delete of a record already gone is not a refusal; the duplicate create is, alone.
    assert_eq!(report.refused.len(), 1, "{report:?}");
    let (change, err) = &report.refused[0];
    assert!(
        matches!(change, flotilla_cloud::DnsChange::Create(r) if r.name == "ws0.unit.tests"),
        "{change}"
    );
    assert!(
        matches!(err, CloudError::Conflict { message, .. } if message.contains("identical record")),
        "{err}"
    );
    assert_eq!(report.calls, 5, "one batch, then four single changes");
    let order: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path().rsplit('/').next().unwrap()))
        .collect();
    assert_eq!(
        order,
        [
            "POST batch",
            "DELETE d0",
            "PATCH u0",
            "POST dns_records",
            "POST dns_records"
        ]
    );
}

#[tokio::test]
async fn later_chunks_still_go_after_a_refused_one_and_bad_credentials_stop_at_once() {
    let server = MockServer::start().await;
    // The first chunk (200 deletes) is refused; its deletes replay; the second chunk goes as a batch.
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/batch")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "success": false, "messages": [], "result": null,
            "errors": [{"code": 1004, "message": "DNS Validation Error"}],
        })))
        .up_to_n_times(1) // refused outright: nothing in the chunk was applied
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/batch")))
        .respond_with(ok(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(format!(
            "^/client/v4/zones/{ZONE_ID}/dns_records/d[0-9]+$"
        )))
        .respond_with(ok(json!({"id": "d"})))
        .expect(200)
        .mount(&server)
        .await;
    let cf = adapter(&server);
    let report = cf.apply_batch(&zone(), &batch(200, 0, 5)).await.unwrap();
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(report.calls, 202);
    assert_eq!(
        cf.api().calls(),
        202,
        "refused batch, 200 deletes, then the second batch"
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "success": false, "messages": [], "result": null,
            "errors": [{"code": 10000, "message": "Authentication error"}],
        })))
        .mount(&server)
        .await;
    let cf = adapter(&server);
    let err = cf.apply_batch(&zone(), &batch(0, 0, 300)).await.unwrap_err();
    assert!(matches!(err, CloudError::Auth { .. }), "{err}");
    assert_eq!(cf.api().calls(), 1, "no replay, no further chunks");
}

#[tokio::test]
async fn a_batch_that_may_have_been_applied_is_not_replayed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/client/v4/zones/{ZONE_ID}/dns_records/batch")))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "success": false, "messages": [], "result": null,
            "errors": [{"code": 1000, "message": "internal"}],
        })))
        .mount(&server)
        .await;
    let cf = adapter(&server);
    let err = cf.apply_batch(&zone(), &batch(1, 0, 2)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        cf.api().calls(),
        1,
        "no replay and no repeat of a create that may have happened"
    );
}
