//! Exoscale failures as [`CloudError`]s: error answers, and operations that ended badly. Every message
//! quoting Exoscale is redacted ([`flotilla_redact::redact`]).

use std::time::Duration;

use flotilla_cloud::http::{body_excerpt, error_for_status};
use flotilla_cloud::{CloudError, ProviderKind};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::wire::Operation;

const P: ProviderKind = ProviderKind::Exoscale;

/// The error bodies Exoscale sends: `{"message"}` (API v2), RFC 9457 problem details (`{"title","detail"}`,
/// newer endpoints) and `{"error","retry_after"}` (rate limited).
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    retry_after: Option<f64>,
}

/// The [`flotilla_cloud::http::ErrorMapper`] of the Exoscale API.
pub(crate) fn map_error(
    provider: ProviderKind,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> CloudError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed
        .message
        .as_deref()
        .or(parsed.detail.as_deref())
        .or(parsed.error.as_deref())
        .or(parsed.title.as_deref())
        .map(flotilla_redact::redact)
        .unwrap_or_else(|| {
            let text = body_excerpt(body, 300);
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            }
        });
    match status.as_u16() {
        // Precondition failed: the resource is not in a state that allows this yet.
        412 => CloudError::Conflict { provider, message },
        429 => {
            // A wait too long for a `Duration` (1e300 seconds) is no wait we can honour: none, not a panic.
            let from_body = parsed
                .retry_after
                .and_then(|s| Duration::try_from_secs_f64(s).ok());
            match error_for_status(provider, status, headers, message, None) {
                CloudError::RateLimited {
                    provider,
                    retry_after,
                } => CloudError::RateLimited {
                    provider,
                    retry_after: retry_after.or(from_body),
                },
                other => other,
            }
        }
        _ => error_for_status(provider, status, headers, message, None),
    }
}

/// The error an operation that ended in `failure` or `timeout` stands for.
pub(crate) fn operation_failed(op: &Operation) -> CloudError {
    let message = flotilla_redact::redact(&match (&op.message, &op.reason) {
        (Some(m), _) if !m.is_empty() => format!("operation {}: {m}", op.id),
        (_, Some(r)) => format!("operation {} failed: {r}", op.id),
        _ => format!("operation {} failed", op.id),
    });
    match op.reason.as_deref() {
        Some("not-found") => CloudError::NotFound {
            provider: P,
            what: message,
        },
        Some("conflict" | "busy") => CloudError::Conflict { provider: P, message },
        Some("forbidden") => CloudError::Auth { provider: P, message },
        Some("unavailable" | "interrupted") => CloudError::Retryable { provider: P, message },
        _ => CloudError::Invalid {
            provider: P,
            field: None,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::OperationState;

    fn map(status: u16, body: &str) -> CloudError {
        map_error(
            P,
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn bodies_of_every_shape_give_their_message() {
        let e = map(400, r#"{"message":"Invalid parameter disk-size"}"#);
        assert!(
            matches!(&e, CloudError::Invalid { message, .. } if message == "Invalid parameter disk-size")
        );
        let e = map(
            404,
            r#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no such key"}"#,
        );
        assert!(matches!(&e, CloudError::NotFound { what, .. } if what == "no such key"));
        let e = map(429, r#"{"error":"slow down","retry_after":2.5}"#);
        assert_eq!(e.retry_after(), Some(Duration::from_millis(2500)));
        assert!(matches!(map(412, "{}"), CloudError::Conflict { .. }));
        // A wait beyond `Duration` panicked (seen writing the provider_answers fuzz target, which replays it).
        for wait in ["1e300", "-1", "1.8446744073709552e19"] {
            let e = map(429, &format!(r#"{{"error":"slow down","retry_after":{wait}}}"#));
            assert_eq!(e.retry_after(), None, "{wait}");
        }
        let e = map(502, "<html>bad gateway</html>");
        assert!(e.is_retryable() && e.to_string().contains("bad gateway"), "{e}");
    }

    #[test]
    fn echoed_credentials_are_redacted() {
        for (status, body) in [
            (
                403,
                r#"{"message":"bad signature: EXO2-HMAC-SHA256 credential=EXOabc123,expires=1,signature=abc123"}"#,
            ),
            (412, r#"{"detail":"precondition: {\"api_key\":\"abc123\"}"}"#),
            (502, r#"upstream echoed {"secret":"abc123"}"#),
        ] {
            let e = map(status, body);
            assert!(!e.to_string().contains("abc123"), "{e}");
        }
        let op = Operation {
            id: "op".into(),
            state: OperationState::Failure,
            reason: Some("incorrect".into()),
            message: Some("password: abc123 rejected".into()),
            reference: None,
        };
        assert!(!operation_failed(&op).to_string().contains("abc123"));
    }

    #[test]
    fn operation_reasons() {
        let op = |reason: &str| Operation {
            id: "op".into(),
            state: OperationState::Failure,
            reason: Some(reason.into()),
            message: Some("boom".into()),
            reference: None,
        };
        assert!(operation_failed(&op("not-found")).is_not_found());
        assert!(matches!(
            operation_failed(&op("conflict")),
            CloudError::Conflict { .. }
        ));
        assert!(matches!(
            operation_failed(&op("incorrect")),
            CloudError::Invalid { .. }
        ));
        assert!(operation_failed(&op("unavailable")).is_retryable());
        assert!(operation_failed(&op("fault")).to_string().contains("boom"));
    }
}
