//! The shared HTTP client against a wiremock server: retries, Retry-After, create safety, delete of the gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use flotilla_cloud::http::{ApiClient, BearerToken, RateLimit, RetryPolicy, error_for_status};
use flotilla_cloud::{CloudError, ProviderKind};
use reqwest::Method;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn map(
    provider: ProviderKind,
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> CloudError {
    error_for_status(
        provider,
        status,
        headers,
        String::from_utf8_lossy(body).into_owned(),
        None,
    )
}

fn client(server: &MockServer) -> ApiClient {
    ApiClient::new(
        ProviderKind::Linode,
        &format!("{}/v4", server.uri()),
        Arc::new(BearerToken::new(ProviderKind::Linode, "tok")),
        RateLimit::per_second(1000),
        RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        map,
    )
    .unwrap()
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v4/linode/instances"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4/linode/instances"))
        .and(header("Authorization", "Bearer tok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": []})))
        .mount(&server)
        .await;
    let c = client(&server);
    let started = std::time::Instant::now();
    let v: serde_json::Value = c.get("linode/instances", &[]).await.unwrap();
    assert_eq!(v["data"], serde_json::json!([]));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert_eq!((c.calls(), c.rate_limited()), (2, 1));
}

#[tokio::test]
async fn idempotent_calls_retry_server_errors_but_creates_do_not() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .mount(&server)
        .await;
    let c = client(&server);
    let _: serde_json::Value = c.get("x", &[]).await.unwrap();
    assert_eq!(c.calls(), 3);
    let err = c
        .send::<serde_json::Value>(Method::POST, "linode/instances", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Retryable { .. }), "{err}");
    assert_eq!(c.calls(), 4, "a create that may have happened is not repeated");
}

#[tokio::test]
async fn creates_are_retried_when_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"id":1}"#))
        .mount(&server)
        .await;
    let c = client(&server);
    let v: serde_json::Value = c
        .send(
            Method::POST,
            "linode/instances",
            &serde_json::json!({"label": "x"}),
        )
        .await
        .unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(c.calls(), 3);
}

#[tokio::test]
async fn a_storm_gives_up_with_a_clear_error_after_the_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    let c = client(&server);
    let err = c.get::<serde_json::Value>("x", &[]).await.unwrap_err();
    assert!(matches!(err, CloudError::RateLimited { .. }), "{err}");
    assert_eq!(c.calls(), u64::from(RetryPolicy::default().max_attempts));
}

#[tokio::test]
async fn deleting_what_is_gone_succeeds_and_other_errors_are_typed() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4/auth"))
        .respond_with(ResponseTemplate::new(401).set_body_string("Invalid Token"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4/bad"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
        .mount(&server)
        .await;
    let c = client(&server);
    c.delete("linode/instances/1").await.unwrap();
    let err = c.get::<serde_json::Value>("auth", &[]).await.unwrap_err();
    assert!(
        matches!(err, CloudError::Auth { .. }) && err.to_string().contains("Invalid Token"),
        "{err}"
    );
    assert_eq!(c.calls(), 2, "auth errors are not retried");
    let err = c.get::<serde_json::Value>("bad", &[]).await.unwrap_err();
    assert!(matches!(err, CloudError::Protocol { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_api_is_a_transport_error_without_the_query() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = ApiClient::new(
        ProviderKind::Vultr,
        &format!("http://127.0.0.1:{port}/v2"),
        Arc::new(BearerToken::new(ProviderKind::Vultr, "t")),
        RateLimit::per_second(100),
        RetryPolicy {
            max_attempts: 2,
            min_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        map,
    )
    .unwrap();
    let err = c
        .get::<serde_json::Value>("instances", &[("api_key", "SECRET".into())])
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Transport { .. }), "{err}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
}
