//! Cloudflare's response envelope (`{success, errors, messages, result, result_info}`) and its errors.
//! Messages quoting Cloudflare are redacted ([`flotilla_redact::redact`]): an authentication error can echo
//! `X-Auth-Key`/`X-Auth-Email`.

use flotilla_cloud::http::{body_excerpt, error_for_status, parse_json, retry_after};
use flotilla_cloud::{CloudError, ProviderKind, Result};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The envelope, `result` parsed as `T`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(crate) struct Envelope<T> {
    #[serde(default)]
    pub result: Option<T>,
    #[serde(default)]
    pub result_info: Option<ResultInfo>,
}

/// Where a page sits in a list. Cloudflare's schema types these as numbers.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct ResultInfo {
    #[serde(default)]
    pub total_pages: Option<f64>,
}

/// The envelope's status part, read before the result.
#[derive(Debug, Default, Deserialize)]
struct Status {
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    errors: Vec<Message>,
}

/// One entry of `errors` (or `messages`).
#[derive(Debug, Clone, Default, Deserialize)]
struct Message {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    source: Option<Source>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Source {
    #[serde(default)]
    pointer: Option<String>,
}

/// The `result` of a successful HTTP answer (`None` when it has none), or the error its envelope carries.
pub(crate) fn result_of<T: DeserializeOwned>(
    provider: ProviderKind,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<T>> {
    if let Some(e) = failure_in(provider, headers, body) {
        return Err(e);
    }
    Ok(parse_json::<Envelope<T>>(provider, body)?.result)
}

/// The items of page `page` of a list asked for `per_page` at a time, and whether more pages follow:
/// as `result_info` says, or, when it does not say, when the page was full.
pub(crate) fn page_of<T: DeserializeOwned>(
    provider: ProviderKind,
    headers: &HeaderMap,
    body: &[u8],
    page: u32,
    per_page: u32,
) -> Result<(Vec<T>, bool)> {
    if let Some(e) = failure_in(provider, headers, body) {
        return Err(e);
    }
    let envelope: Envelope<Vec<T>> = parse_json(provider, body)?;
    let items = envelope.result.unwrap_or_default();
    let more = match envelope.result_info.and_then(|i| i.total_pages) {
        Some(total) => f64::from(page) < total,
        None => !items.is_empty() && items.len() >= per_page as usize,
    };
    Ok((items, more))
}

/// The error a successful HTTP answer carries when its envelope says `success: false`.
pub(crate) fn failure_in(provider: ProviderKind, headers: &HeaderMap, body: &[u8]) -> Option<CloudError> {
    let status: Status = serde_json::from_slice(body).ok()?;
    (status.success == Some(false)).then(|| from_status(provider, StatusCode::OK, headers, &status, body))
}

/// The [`flotilla_cloud::http::ErrorMapper`] of the Cloudflare API.
pub(crate) fn map_error(
    provider: ProviderKind,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> CloudError {
    let parsed: Status = serde_json::from_slice(body).unwrap_or_default();
    from_status(provider, status, headers, &parsed, body)
}

fn from_status(
    provider: ProviderKind,
    status: StatusCode,
    headers: &HeaderMap,
    parsed: &Status,
    body: &[u8],
) -> CloudError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return CloudError::RateLimited {
            provider,
            retry_after: retry_after(headers),
        };
    }
    let message = if parsed.errors.is_empty() {
        let text = body_excerpt(body, 300);
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text
        }
    } else {
        flotilla_redact::redact(
            &parsed
                .errors
                .iter()
                .map(|e| format!("{} ({})", e.message, e.code))
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    let field = parsed
        .errors
        .iter()
        .find_map(|e| e.source.as_ref()?.pointer.as_deref())
        .map(|p| flotilla_redact::redact(&p.trim_start_matches('/').replace('/', ".")))
        .filter(|f| !f.is_empty());
    match parsed.errors.iter().find_map(|e| kind_of(e.code)) {
        Some(Kind::Auth) => CloudError::Auth { provider, message },
        Some(Kind::Conflict) => CloudError::Conflict { provider, message },
        Some(Kind::Invalid) => CloudError::Invalid {
            provider,
            field,
            message,
        },
        Some(Kind::NotFound) => CloudError::NotFound {
            provider,
            what: message,
        },
        None => error_for_status(provider, status, headers, message, field),
    }
}

enum Kind {
    Auth,
    Conflict,
    Invalid,
    NotFound,
}

/// What a Cloudflare error code means, where the status alone does not say it.
fn kind_of(code: i64) -> Option<Kind> {
    match code {
        // Authentication error; unknown X-Auth-Key/Email; missing credentials; invalid or unauthorised token.
        10000 | 9103 | 9106 | 9109 => Some(Kind::Auth),
        // An identical record exists; a record with that host exists; A/AAAA/CNAME clash.
        81057 | 81058 | 81053 => Some(Kind::Conflict),
        // Invalid or missing zone identifier / parameters.
        1003 | 1004 => Some(Kind::Invalid),
        // No route for the URI; no such object; record does not exist.
        7000 | 7003 | 81044 => Some(Kind::NotFound),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ProviderKind = ProviderKind::Cloudflare;

    fn map(status: u16, body: &str) -> CloudError {
        map_error(
            P,
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn codes_win_over_statuses() {
        let e = map(
            400,
            r#"{"success":false,"errors":[{"code":81057,"message":"Record already exists."}]}"#,
        );
        assert!(
            matches!(&e, CloudError::Conflict { message, .. } if message == "Record already exists. (81057)")
        );
        let e = map(
            400,
            r#"{"success":false,"errors":[{"code":1004,"message":"DNS Validation Error","source":{"pointer":"/content"}}]}"#,
        );
        assert!(
            matches!(&e, CloudError::Invalid { field: Some(f), .. } if f == "content"),
            "{e}"
        );
        assert!(
            map(
                403,
                r#"{"errors":[{"code":10000,"message":"Authentication error"}]}"#
            )
            .to_string()
            .contains("Authentication error")
        );
        assert!(
            map(
                404,
                r#"{"errors":[{"code":7003,"message":"No route for the URI"}]}"#
            )
            .is_not_found()
        );
        assert!(map(502, "").is_retryable());
    }

    #[test]
    fn echoed_credentials_are_redacted() {
        for (status, body) in [
            (
                403,
                r#"{"success":false,"errors":[{"code":9103,"message":"Unknown X-Auth-Key: abc123 or X-Auth-Email: ops@example.com"}]}"#,
            ),
            (
                400,
                r#"{"success":false,"errors":[{"code":1004,"message":"bad \"token\":\"abc123\""}]}"#,
            ),
            (502, "X-Auth-Key: abc123"),
        ] {
            let shown = map(status, body).to_string();
            assert!(
                !shown.contains("abc123") && !shown.contains("ops@example.com"),
                "{shown}"
            );
        }
        let body = br#"{"success":false,"errors":[{"code":10000,"message":"Authorization: Bearer abc123"}]}"#;
        let e = failure_in(P, &HeaderMap::new(), body).unwrap();
        assert!(!e.to_string().contains("abc123"), "{e}");
    }

    #[test]
    fn success_false_in_a_200_is_an_error() {
        let body =
            br#"{"success":false,"errors":[{"code":81058,"message":"exists"}],"messages":[],"result":null}"#;
        let e = failure_in(P, &HeaderMap::new(), body).unwrap();
        assert!(matches!(e, CloudError::Conflict { .. }));
        assert!(
            failure_in(
                P,
                &HeaderMap::new(),
                br#"{"success":true,"errors":[],"result":{}}"#
            )
            .is_none()
        );
    }
}
