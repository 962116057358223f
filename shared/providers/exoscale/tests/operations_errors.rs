//! Operation polling, every error mapping, deleting the gone, and the signature on the wire.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{KEY, SECRET, ZONE, adapter, adapter_with, assert_conforms, operation};
use flotilla_cloud::{CloudError, Compute, Dns, Network, VpcRequest, Zone};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const INSTANCE: &str = "9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d";
const OP: &str = "e2047130-b86e-11ed-afa1-0242ac120002";

fn vpc() -> VpcRequest {
    VpcRequest {
        name: "vpc".into(),
        region: ZONE.into(),
        cidr: "10.0.0.0/24".parse().unwrap(),
    }
}

async fn post_network_answers(server: &MockServer, op: serde_json::Value) {
    Mock::given(method("POST"))
        .and(path("/v2/private-network"))
        .respond_with(ResponseTemplate::new(200).set_body_json(op))
        .mount(server)
        .await;
}

#[tokio::test]
async fn pending_pending_success() {
    let server = MockServer::start().await;
    post_network_answers(&server, operation(OP, "pending", "")).await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "pending", "")))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let net = "4a3b7d2e-1c5f-4e8a-9b6d-2f0e8c7a1b3d";
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", net)))
        .expect(1)
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let created = exo.create_vpc(&vpc()).await.unwrap();
    assert_eq!(
        created.id, net,
        "the id comes from the final operation's reference"
    );
    assert_eq!(exo.api().calls(), 3);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn failures_carry_their_message_and_reason() {
    let server = MockServer::start().await;
    let mut failed = operation(OP, "failure", "");
    failed["reason"] = json!("incorrect");
    failed["message"] = json!("netmask and range disagree");
    post_network_answers(&server, operation(OP, "pending", "")).await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(failed.clone()))
        .mount(&server)
        .await;
    let err = adapter(&server).create_vpc(&vpc()).await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Invalid { message, .. } if message.contains("netmask and range disagree")),
        "{err}"
    );

    // `reset` forgets the requests received so far: judged before it.
    assert_conforms(&server).await;
    server.reset().await;
    failed["reason"] = json!("conflict");
    failed["message"] = json!("name already in use");
    post_network_answers(&server, failed).await;
    let err = adapter(&server).create_vpc(&vpc()).await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Conflict { message, .. } if message.contains("name already in use")),
        "{err}"
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn an_operation_that_never_settles_is_retryable_after_the_bound() {
    let server = MockServer::start().await;
    post_network_answers(&server, operation(OP, "pending", "")).await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "pending", "")))
        .mount(&server)
        .await;
    let exo = adapter_with(&server, |c| {
        c.polling.timeout = Duration::from_millis(200);
        c.polling.max_delay = Duration::from_millis(20);
    });
    let err = exo.create_vpc(&vpc()).await.unwrap_err();
    assert!(
        err.is_retryable() && err.to_string().contains("still pending"),
        "{err}"
    );
    let polls = exo.api().calls() - 1;
    // It polled, and stopped: bounded by the timeout, whatever the machine's load.
    assert!(
        (1..=200).contains(&polls),
        "growing delays, bounded: {polls} polls"
    );

    // `reset` forgets the requests received so far: judged before it.
    assert_conforms(&server).await;
    server.reset().await;
    post_network_answers(&server, operation(OP, "timeout", "")).await;
    let err = adapter(&server).create_vpc(&vpc()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_conforms(&server).await;
}

async fn get_instance_answers(status: u16, body: serde_json::Value, headers: &[(&str, &str)]) -> CloudError {
    let server = MockServer::start().await;
    let mut answer = ResponseTemplate::new(status).set_body_json(body);
    for (k, v) in headers {
        answer = answer.insert_header(*k, *v);
    }
    Mock::given(method("GET"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(answer)
        .mount(&server)
        .await;
    let err = adapter(&server).get_machine(INSTANCE).await.unwrap_err();
    assert_conforms(&server).await;
    err
}

#[tokio::test]
async fn every_status_maps_to_its_error_with_the_message() {
    let m = |s: &str| json!({ "message": s });
    let e = get_instance_answers(400, m("invalid UUID"), &[]).await;
    assert!(
        matches!(&e, CloudError::Invalid { message, .. } if message == "invalid UUID"),
        "{e}"
    );
    let e = get_instance_answers(401, m("unauthorized"), &[]).await;
    assert!(
        matches!(&e, CloudError::Auth { message, .. } if message == "unauthorized"),
        "{e}"
    );
    let e = get_instance_answers(403, m("forbidden by IAM policy"), &[]).await;
    assert!(
        matches!(&e, CloudError::Auth { message, .. } if message == "forbidden by IAM policy"),
        "{e}"
    );
    let e = get_instance_answers(404, m("resource not found"), &[]).await;
    assert!(
        matches!(&e, CloudError::NotFound { what, .. } if what == "resource not found"),
        "{e}"
    );
    let e = get_instance_answers(409, m("conflict"), &[]).await;
    assert!(matches!(&e, CloudError::Conflict { .. }), "{e}");
    let e = get_instance_answers(412, m("instance is not running"), &[]).await;
    assert!(
        matches!(&e, CloudError::Conflict { message, .. } if message == "instance is not running"),
        "{e}"
    );
    let e = get_instance_answers(429, m("too many requests"), &[("Retry-After", "1")]).await;
    assert!(
        matches!(e, CloudError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(1)),
        "{e}"
    );
    let e = get_instance_answers(429, json!({"error": "slow down", "retry_after": 1}), &[]).await;
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)), "{e}");
    let e = get_instance_answers(500, m("internal error"), &[]).await;
    assert!(
        matches!(&e, CloudError::Retryable { message, .. } if message.contains("internal error")),
        "{e}"
    );
    let e = get_instance_answers(503, m("maintenance"), &[]).await;
    assert!(e.is_retryable(), "{e}");
    let problem =
        json!({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "bad field"});
    let e = get_instance_answers(400, problem, &[]).await;
    assert!(
        matches!(&e, CloudError::Invalid { message, .. } if message == "bad field"),
        "{e}"
    );
    let e = get_instance_answers(200, json!({"name": "no id"}), &[]).await;
    assert!(matches!(&e, CloudError::Protocol { .. }), "{e}");
}

#[tokio::test]
async fn deleting_the_gone_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "resource not found"})))
        .expect(1)
        .mount(&server)
        .await;
    let mut gone = operation(OP, "failure", "");
    gone["reason"] = json!("not-found");
    Mock::given(method("DELETE"))
        .and(path("/v2/dns-domain/d/record/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(gone))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/instance/11111111-1111-4111-8111-111111111111"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "forbidden"})))
        .mount(&server)
        .await;
    let exo = adapter(&server);
    exo.delete_machine(INSTANCE).await.unwrap();
    let zone = Zone {
        id: "d".into(),
        name: "codetesters.uk".into(),
    };
    exo.delete_record(&zone, "r").await.unwrap();
    let err = exo
        .delete_machine("11111111-1111-4111-8111-111111111111")
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Auth { .. }), "{err}");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn deleting_waits_for_the_operation() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "pending", INSTANCE)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", INSTANCE)))
        .expect(1)
        .mount(&server)
        .await;
    adapter(&server).delete_machine(INSTANCE).await.unwrap();
    assert_conforms(&server).await;
}

/// Checks the Authorization header of a request the way Exoscale's server would, written apart from the
/// adapter's signer: path as received, body as received, single-valued query values sorted by name.
fn verify(request: &Request) -> Result<(), String> {
    let header = request
        .headers
        .get("authorization")
        .ok_or("no Authorization")?
        .to_str()
        .map_err(|e| e.to_string())?;
    let rest = header.strip_prefix("EXO2-HMAC-SHA256 ").ok_or("wrong scheme")?;
    let mut fields = std::collections::HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part.split_once('=').ok_or("malformed pragma")?;
        fields.insert(k, v);
    }
    if fields.get("credential") != Some(&KEY) {
        return Err("wrong credential".into());
    }
    let expires: i64 = fields
        .get("expires")
        .ok_or("no expires")?
        .parse()
        .map_err(|_| "bad expires")?;
    let now = chrono::Utc::now().timestamp();
    if !(now + 590..=now + 610).contains(&expires) {
        return Err(format!("expires {expires} is not now + 600 s"));
    }
    let pairs: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    let names: Vec<&str> = fields
        .get("signed-query-args")
        .map(|a| a.split(';').collect())
        .unwrap_or_default();
    let values: String = names
        .iter()
        .map(|n| {
            pairs
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect();
    let message = format!(
        "{} {}\n{}\n{}\n\n{}",
        request.method,
        request.url.path(),
        String::from_utf8_lossy(&request.body),
        values,
        expires
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    if fields.get("signature") == Some(&expected.as_str()) {
        Ok(())
    } else {
        Err("signature mismatch".into())
    }
}

#[tokio::test]
async fn every_request_on_the_wire_is_signed_over_the_full_path_query_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/template"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"templates": [
            {"id": "c19542b7-d269-4bd4-bf5a-b3e0c4ab5b6f", "name": "Linux Ubuntu 24.04 LTS 64-bit"}
        ]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/instance"))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "failure", "")))
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let request = flotilla_cloud::MachineRequest {
        name: "ws".into(),
        region: ZONE.into(),
        size: "b6cd1ff5-3a2f-4e9d-a4d1-8988c1191735".into(),
        image: "Linux Ubuntu 24.04 LTS 64-bit".into(),
        vpc_id: None,
        subnet_id: None,
        firewall_id: None,
        ssh_keys: vec![],
        user_data: None,
        marks: flotilla_cloud::Marks {
            deployment: "d".into(),
            region: "r".into(),
            role: None,
            resource_id: "i".into(),
        },
    };
    let _ = exo.create_machine(&request).await;
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].url.query(), Some("visibility=public"));
    for r in &received {
        verify(r).unwrap_or_else(|e| panic!("{} {}: {e}", r.method, r.url));
        let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
        assert!(!auth.contains(SECRET));
    }
    assert!(
        received[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .contains(",signed-query-args=visibility,")
    );
    assert_conforms(&server).await;
}
