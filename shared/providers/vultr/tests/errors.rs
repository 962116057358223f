//! Every error mapping, with Vultr's error body `{"error": "…", "status": N}`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use flotilla_cloud::{CloudError, Compute};
use serde_json::json;
use support::{Spec, TOKEN, assert_conforms, cloud, error};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The error `GET /instances/i-1` ends in when the server always answers `response`, and the calls it took.
async fn error_for(response: ResponseTemplate) -> (CloudError, u64) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/instances/i-1"))
        .respond_with(response)
        .mount(&server)
        .await;
    let c = cloud(&server);
    let err = c.get_machine("i-1").await.unwrap_err();
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(!format!("{err:?}").contains(TOKEN), "{err:?}");
    assert_conforms(&server).await;
    (err, c.api().calls())
}

#[tokio::test]
async fn client_errors_map_to_their_kinds_with_vultr_s_message() {
    let cases = [
        (400, "Invalid plan chosen."),
        (401, "Invalid API token."),
        (403, "Unauthorized IP address: 203.0.113.9"),
        (404, "instance not found"),
        (409, "Conflict: resource is busy"),
        (422, "Unprocessable"),
    ];
    for (status, message) in cases {
        let (err, calls) =
            error_for(ResponseTemplate::new(status).set_body_json(error(status, message))).await;
        let kind_ok = match status {
            400 | 422 => matches!(&err, CloudError::Invalid { message: m, .. } if m == message),
            401 | 403 => matches!(&err, CloudError::Auth { message: m, .. } if m == message),
            404 => err.is_not_found(),
            409 => matches!(&err, CloudError::Conflict { message: m, .. } if m == message),
            _ => unreachable!(),
        };
        assert!(kind_ok, "{status}: {err:?}");
        assert_eq!(calls, 1, "{status} is not retried");
    }
}

#[tokio::test]
async fn server_errors_are_retryable_and_retried() {
    let (err, calls) =
        error_for(ResponseTemplate::new(500).set_body_json(error(500, "Internal server error"))).await;
    assert!(
        matches!(&err, CloudError::Retryable { message, .. } if message.contains("Internal server error")),
        "{err:?}"
    );
    assert_eq!(calls, 3, "every attempt used");
    let (err, _) = error_for(ResponseTemplate::new(503).set_body_string("<html>unavailable</html>")).await;
    assert!(
        matches!(&err, CloudError::Retryable { message, .. } if message.contains("unavailable")),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limits_carry_retry_after_and_are_retried() {
    let (err, calls) = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "2")
            .set_body_json(error(429, "Rate limit reached")),
    )
    .await;
    assert!(matches!(err, CloudError::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(calls, 3);

    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/instances/i-1"))
        .respond_with(ResponseTemplate::new(429).set_body_json(error(429, "Rate limit reached")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/instances/i-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "/instances/{instance-id}",
            "get",
            "200",
        )))
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.get_machine("i-1").await.unwrap();
    assert_eq!((c.api().calls(), c.api().rate_limited()), (2, 1));
    assert_conforms(&server).await;
}

#[tokio::test]
async fn unreadable_answers_are_protocol_errors_naming_the_field() {
    let (err, _) = error_for(ResponseTemplate::new(200).set_body_json(json!({"instance": {"id": 5}}))).await;
    assert!(
        matches!(&err, CloudError::Protocol { message, .. } if message.contains("instance.id")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_empty_key_is_refused() {
    let err = flotilla_vultr::VultrCloud::new(flotilla_vultr::VultrConfig {
        base_url: None,
        token: String::new(),
        rate: None,
    })
    .unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err}");
}
