//! The shared HTTP client against a wiremock server: retries, Retry-After, create safety, delete of the gone,
//! redaction of what providers echo, and one rate budget per account.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use flotilla_cloud::http::{
    ApiClient, BearerToken, Budget, Limiters, MAX_RETRY_AFTER, RateLimit, RetryPolicy, cap_retry_after,
    error_for_status,
};
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

#[tokio::test]
async fn secrets_a_provider_echoes_never_reach_the_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v4/auth"))
        .respond_with(
            ResponseTemplate::new(401).set_body_string(r#"{"error":"bad token","token":"sk-live-123"}"#),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4/echo"))
        .respond_with(
            ResponseTemplate::new(400).set_body_string(
                "X-Auth-Email: ops@example.com\nX-Auth-Key: abc123\nAuthorization: Bearer tok",
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4/instance"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"id":1,"root_pass":12345678}"#))
        .mount(&server)
        .await;
    let c = client(&server);

    // Through error_for_status, as most adapters map.
    let err = c.get::<serde_json::Value>("auth", &[]).await.unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, CloudError::Auth { .. }), "{shown}");
    assert!(
        !shown.contains("sk-live-123") && shown.contains("bad token"),
        "{shown}"
    );

    // A mapper that quotes the body raw, past error_for_status: the client redacts what it returns.
    fn raw_invalid(
        provider: ProviderKind,
        _: reqwest::StatusCode,
        _: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> CloudError {
        CloudError::Invalid {
            provider,
            field: None,
            message: String::from_utf8_lossy(body).into_owned(),
        }
    }
    let raw = ApiClient::with_budget(
        ProviderKind::Cloudflare,
        &format!("{}/v4", server.uri()),
        Arc::new(BearerToken::new(ProviderKind::Cloudflare, "tok")),
        RateLimit::per_second(1000),
        RetryPolicy::default(),
        raw_invalid,
        Budget {
            limiters: Some(Limiters::new()),
            lane: "",
        },
    )
    .unwrap();
    let shown = raw
        .get::<serde_json::Value>("echo", &[])
        .await
        .unwrap_err()
        .to_string();
    for secret in ["abc123", "ops@example.com", "Bearer tok"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("X-Auth-Key: <redacted>"), "{shown}");

    // A parse error does not quote the value of a secret field.
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Instance {
        id: u64,
        root_pass: String,
    }
    let err = c.get::<Instance>("instance", &[]).await.unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, CloudError::Protocol { .. }), "{shown}");
    assert!(
        shown.contains("root_pass") && !shown.contains("12345678"),
        "{shown}"
    );
}

/// A burst of 2, then one request every 200 s: a third request within a test has to wait.
const SLOW: RateLimit = RateLimit {
    requests: 20,
    per: Duration::from_secs(3600),
};

fn budget_client(server: &MockServer, token: &str, limiters: &Limiters) -> ApiClient {
    ApiClient::with_budget(
        ProviderKind::DigitalOcean,
        &format!("{}/v2", server.uri()),
        Arc::new(BearerToken::new(ProviderKind::DigitalOcean, token)),
        SLOW,
        RetryPolicy::default(),
        map,
        Budget {
            limiters: Some(limiters.clone()),
            lane: "",
        },
    )
    .unwrap()
}

#[tokio::test]
async fn clients_of_one_account_share_one_budget_and_other_accounts_do_not() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let limiters = Limiters::new();
    let first = budget_client(&server, "tok-a", &limiters);
    let second = budget_client(&server, "tok-a", &limiters);
    let other = budget_client(&server, "tok-b", &limiters);
    assert!(Arc::ptr_eq(first.limiter().unwrap(), second.limiter().unwrap()));
    assert!(!Arc::ptr_eq(first.limiter().unwrap(), other.limiter().unwrap()));
    assert_eq!(limiters.len(), 2);

    // The burst (2) spent through the first client…
    for _ in 0..2 {
        let _: serde_json::Value = first.get("droplets", &[]).await.unwrap();
    }
    // …is gone for the second: its next request would wait (200 s), not go out.
    assert!(second.limiter().unwrap().check().is_err());
    assert!(
        tokio::time::timeout(
            Duration::from_millis(300),
            second.get::<serde_json::Value>("droplets", &[])
        )
        .await
        .is_err(),
        "the third request of the account waits"
    );
    assert_eq!(second.calls(), 0);
    // Another token is another account, with its own budget.
    assert!(other.limiter().unwrap().check().is_ok());
    let _: serde_json::Value = other.get("droplets", &[]).await.unwrap();
}

#[tokio::test]
async fn clients_share_the_global_registry_by_default() {
    let server = MockServer::start().await;
    let base = format!("{}/v4", server.uri());
    let make = |token: &str| {
        ApiClient::new(
            ProviderKind::Linode,
            &base,
            Arc::new(BearerToken::new(ProviderKind::Linode, token)),
            SLOW,
            RetryPolicy::default(),
            map,
        )
        .unwrap()
    };
    let (a, b, c) = (make("global-a"), make("global-a"), make("global-c"));
    assert!(Arc::ptr_eq(a.limiter().unwrap(), b.limiter().unwrap()));
    assert!(!Arc::ptr_eq(a.limiter().unwrap(), c.limiter().unwrap()));
    drop((a, b));
    // The budget outlives its clients: an adapter built for the next command does not get a fresh burst.
    let d = make("global-a");
    assert!(d.limiter().unwrap().check().is_ok() && d.limiter().unwrap().check().is_ok());
    assert!(make("global-a").limiter().unwrap().check().is_err());
}

#[tokio::test]
async fn retry_after_is_capped() {
    assert_eq!(RetryPolicy::default().max_retry_after, MAX_RETRY_AFTER);
    assert_eq!(cap_retry_after(Duration::from_secs(3600)), MAX_RETRY_AFTER);
    assert_eq!(cap_retry_after(Duration::from_secs(7)), Duration::from_secs(7));

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let c = ApiClient::with_budget(
        ProviderKind::Cloudflare,
        &server.uri(),
        Arc::new(BearerToken::new(ProviderKind::Cloudflare, "t")),
        RateLimit::per_second(1000),
        RetryPolicy {
            max_retry_after: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        map,
        Budget::default(),
    )
    .unwrap();
    let answer =
        tokio::time::timeout(Duration::from_secs(20), c.get::<serde_json::Value>("zones", &[])).await;
    assert!(
        matches!(answer, Ok(Ok(_))),
        "an hour's Retry-After waited 50 ms: {answer:?}"
    );
    assert_eq!((c.calls(), c.rate_limited()), (2, 1));
}
