//! Linode's error answers mapped onto [`CloudError`].
//!
//! Linode answers failures with `{"errors":[{"reason":"…","field":"…"}]}`. Beyond the usual status codes:
//! `400` with a reason such as `"Linode busy."` means the resource is in the middle of another operation
//! (retryable), and `503` carrying `X-Maintenance-Mode` means the API is in maintenance (retryable).
//! Messages are redacted ([`flotilla_redact::redact`]) before they are cut.

use flotilla_cloud::http::error_for_status;
use flotilla_cloud::{CloudError, ProviderKind};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

/// Longest provider message kept in an error (bodies of proxies in front of the API can be whole pages).
const MAX_MESSAGE: usize = 300;

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

/// The [`flotilla_cloud::http::ErrorMapper`] of the Linode API.
pub(crate) fn map_error(
    provider: ProviderKind,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> CloudError {
    let (message, field, busy) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) if !parsed.errors.is_empty() => {
            let busy = parsed.errors.iter().any(|e| {
                e.reason
                    .as_deref()
                    .is_some_and(|r| r.to_ascii_lowercase().contains("busy"))
            });
            let field = parsed.errors.iter().find_map(|e| e.field.clone());
            let message = parsed
                .errors
                .iter()
                .map(|e| {
                    let reason = e.reason.as_deref().unwrap_or("no reason given");
                    match &e.field {
                        Some(f) => format!("{f}: {reason}"),
                        None => reason.to_owned(),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            (message, field, busy)
        }
        _ => (fallback_message(status, body), None, false),
    };
    let message = truncate(flotilla_redact::redact(&message));
    if status == StatusCode::BAD_REQUEST && busy {
        return CloudError::Retryable { provider, message };
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && headers.contains_key("x-maintenance-mode") {
        return CloudError::Retryable {
            provider,
            message: format!("the API is in maintenance: {message}"),
        };
    }
    error_for_status(provider, status, headers, message, field)
}

/// A message for a body that is not Linode's error JSON: the text itself when short, else the status.
fn fallback_message(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() || text.starts_with('<') {
        status
            .canonical_reason()
            .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned)
    } else {
        text.to_owned()
    }
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> CloudError {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, reqwest::header::HeaderValue::from_static(v));
        }
        map_error(
            ProviderKind::Linode,
            StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            &h,
            body.as_bytes(),
        )
    }

    #[test]
    fn fields_and_reasons_are_kept() {
        let e = map(
            400,
            &[],
            r#"{"errors":[{"reason":"Must only use ASCII letters, numbers, and underscores","field":"label"}]}"#,
        );
        assert_eq!(
            e,
            CloudError::Invalid {
                provider: ProviderKind::Linode,
                field: Some("label".into()),
                message: "label: Must only use ASCII letters, numbers, and underscores".into(),
            }
        );
    }

    #[test]
    fn busy_and_maintenance_are_retryable() {
        assert!(map(400, &[], r#"{"errors":[{"reason":"Linode busy."}]}"#).is_retryable());
        assert!(map(503, &[("x-maintenance-mode", "1")], "").is_retryable());
        assert!(!map(400, &[], r#"{"errors":[{"reason":"bad"}]}"#).is_retryable());
    }

    #[test]
    fn echoed_credentials_are_redacted() {
        for e in [
            map(
                401,
                &[],
                r#"{"errors":[{"reason":"Invalid Token: Bearer abc123"}]}"#,
            ),
            map(400, &[], r#"{"error":"bad token","token":"abc123"}"#),
            map(400, &[], r#"{"errors":[{"reason":"Linode busy. token=abc123"}]}"#),
            map(503, &[("x-maintenance-mode", "1")], "Authorization: abc123"),
        ] {
            assert!(!e.to_string().contains("abc123"), "{e}");
        }
    }

    #[test]
    fn odd_bodies_give_short_messages() {
        let e = map(502, &[], "<html>bad gateway</html>");
        assert!(e.to_string().contains("Bad Gateway"), "{e}");
        let long = "x".repeat(1000);
        let e = map(400, &[], &long);
        assert!(e.to_string().len() < 400, "{e}");
    }
}
