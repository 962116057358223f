//! Every error mapping, with DigitalOcean's own example error bodies where the spec has them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use flotilla_cloud::{CloudError, Compute};
use serde_json::json;
use support::{Spec, TOKEN, assert_conforms, cloud};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The error `GET /droplets/1` ends in when the server always answers `response`, and how many calls it took.
async fn error_for(response: ResponseTemplate) -> (CloudError, u64) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/droplets/1"))
        .respond_with(response)
        .mount(&server)
        .await;
    let c = cloud(&server);
    let err = c.get_machine("1").await.unwrap_err();
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(!format!("{err:?}").contains(TOKEN), "{err:?}");
    assert_conforms(&server).await;
    (err, c.api().calls())
}

#[tokio::test]
async fn client_errors_map_to_their_kinds_with_digitalocean_s_message() {
    let spec = Spec::load();
    let cases = [
        (400, "bad_request", "error parsing request body"),
        (401, "unauthorized", "Unable to authenticate you."),
        (
            403,
            "forbidden",
            "You do not have permission to perform this action.",
        ),
        (404, "not_found", "The resource you requested could not be found."),
        (
            409,
            "conflict",
            "The request could not be completed due to a conflict.",
        ),
        (422, "unprocessable_entity", "request payload validation failed"),
    ];
    for (status, body, message) in cases {
        let (err, calls) = error_for(ResponseTemplate::new(status).set_body_json(spec.error(body))).await;
        let kind_ok = match status {
            400 | 422 => matches!(&err, CloudError::Invalid { message: m, .. } if m == message),
            401 | 403 => matches!(&err, CloudError::Auth { message: m, .. } if m == message),
            404 => matches!(&err, CloudError::NotFound { what, .. } if what == message),
            409 => matches!(&err, CloudError::Conflict { message: m, .. } if m == message),
            _ => unreachable!(),
        };
        assert!(kind_ok, "{status}: {err:?}");
        assert_eq!(calls, 1, "{status} is not retried");
    }
}

#[tokio::test]
async fn server_errors_are_retryable_and_retried() {
    let spec = Spec::load();
    let (err, calls) = error_for(ResponseTemplate::new(500).set_body_json(spec.error("server_error"))).await;
    assert!(
        matches!(&err, CloudError::Retryable { message, .. } if message.contains("Unexpected server-side error")),
        "{err:?}"
    );
    assert_eq!(calls, 3, "every attempt used");
    let (err, _) = error_for(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>")).await;
    assert!(
        matches!(&err, CloudError::Retryable { message, .. } if message.contains("bad gateway")),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limits_carry_retry_after_or_ratelimit_reset() {
    let spec = Spec::load();
    let (err, calls) = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "7")
            .set_body_json(spec.error("too_many_requests")),
    )
    .await;
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)), "{err:?}");
    assert_eq!(calls, 3);

    let reset = chrono::Utc::now().timestamp() + 30;
    let (err, _) = error_for(
        ResponseTemplate::new(429)
            .insert_header("ratelimit-limit", "5000")
            .insert_header("ratelimit-remaining", "0")
            .insert_header("ratelimit-reset", reset.to_string().as_str())
            .set_body_json(spec.error("too_many_requests")),
    )
    .await;
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
}

#[tokio::test]
async fn a_rate_limited_call_succeeds_once_the_limit_lifts() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/droplets/3164444"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(spec.error("too_many_requests")),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/droplets/3164444"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "droplets/droplets_get.yml",
            "200",
            None,
        )))
        .mount(&server)
        .await;
    let c = cloud(&server);
    assert_eq!(c.get_machine("3164444").await.unwrap().id, "3164444");
    assert_eq!((c.api().calls(), c.api().rate_limited()), (2, 1));
    assert_conforms(&server).await;
}

#[tokio::test]
async fn unreadable_answers_are_protocol_errors_naming_the_field() {
    let (err, _) = error_for(ResponseTemplate::new(200).set_body_json(json!({"droplet": {"id": "x"}}))).await;
    assert!(
        matches!(&err, CloudError::Protocol { message, .. } if message.contains("droplet.id")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_empty_token_is_refused() {
    let err = flotilla_digitalocean::DigitalOceanCloud::new(flotilla_digitalocean::DigitalOceanConfig {
        base_url: None,
        token: " ".into(),
        rate: None,
    })
    .unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err}");
}
