//! The account: configuration, the HTTP client, error mapping and cursor pagination.

use std::sync::Arc;

use flotilla_cloud::http::{
    ApiClient, ApiResponse, BearerToken, RateLimit, RetryPolicy, body_excerpt, error_for_status,
};
use flotilla_cloud::{CloudError, ProviderKind, Result};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::wire::Meta;

/// The Vultr API.
pub const DEFAULT_BASE_URL: &str = "https://api.vultr.com/v2";

/// Vultr's published limit: 30 requests a second, then 429.
pub const DEFAULT_RATE: RateLimit = RateLimit::per_second(30);

/// Largest page Vultr serves.
pub(crate) const PER_PAGE: &str = "500";

/// Pages followed before a list is declared runaway.
const MAX_PAGES: usize = 10_000;

pub(crate) const PROVIDER: ProviderKind = ProviderKind::Vultr;

/// One Vultr account.
#[derive(Clone)]
pub struct VultrConfig {
    /// API base URL; [`DEFAULT_BASE_URL`] when `None` (set it to drive the simulator).
    pub base_url: Option<String>,
    /// API key.
    pub token: String,
    /// Request rate; [`DEFAULT_RATE`] when `None`.
    pub rate: Option<RateLimit>,
}

impl std::fmt::Debug for VultrConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VultrConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("rate", &self.rate)
            .finish()
    }
}

/// Vultr: instances, VPCs, firewall groups, managed database trusted IPs and DNS.
#[derive(Debug)]
pub struct VultrCloud {
    pub(crate) api: ApiClient,
}

impl VultrCloud {
    /// A client for the account in `config`, with the default retry policy. Every client of one account
    /// (key and base URL) in the process shares its rate budget
    /// ([`flotilla_cloud::http::Limiters::global`]).
    pub fn new(config: VultrConfig) -> Result<Self> {
        Self::with_retry_policy(config, RetryPolicy::default())
    }

    /// A client for the account in `config` that retries as `retry` says.
    pub fn with_retry_policy(config: VultrConfig, retry: RetryPolicy) -> Result<Self> {
        if config.token.trim().is_empty() {
            return Err(CloudError::Invalid {
                provider: PROVIDER,
                field: Some("token".into()),
                message: "no API key configured".into(),
            });
        }
        let api = ApiClient::new(
            PROVIDER,
            config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
            Arc::new(BearerToken::new(PROVIDER, config.token)),
            config.rate.unwrap_or(DEFAULT_RATE),
            retry,
            map_error,
        )?;
        Ok(Self { api })
    }

    /// The HTTP client (call and rate-limit counters).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// `method path` with a JSON body, ignoring whatever the answer holds (204s have nothing).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<ApiResponse> {
        self.api.request(method, path, &[], Some(body), &[]).await
    }

    /// `DELETE path`; gone already (404, or Vultr's 400 "invalid … ID") is success.
    pub(crate) async fn delete(&self, path: &str) -> Result<()> {
        match self.api.delete(path).await {
            Err(e) if !is_gone(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Every item of a list, following `meta.links.next` cursors until one is empty.
    pub(crate) async fn get_all<P: Page>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<P::Item>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut q: Vec<(&str, String)> = query.to_vec();
            if !q.iter().any(|(k, _)| *k == "per_page") {
                q.push(("per_page", PER_PAGE.to_owned()));
            }
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: P = self.api.get(path, &q).await?;
            let (mut batch, next) = split_page(page);
            items.append(&mut batch);
            match next {
                None => return Ok(items),
                Some(n) if cursor.as_deref() == Some(n.as_str()) => {
                    return Err(CloudError::protocol(
                        PROVIDER,
                        format!("{path}: the next cursor repeats the current one"),
                    ));
                }
                Some(n) => cursor = Some(n),
            }
        }
        Err(CloudError::protocol(
            PROVIDER,
            format!("{path}: more than {MAX_PAGES} pages"),
        ))
    }
}

/// One page of a list.
pub(crate) trait Page: DeserializeOwned {
    /// What the list holds.
    type Item;
    /// The items and the paging information.
    fn into_parts(self) -> (Vec<Self::Item>, Option<Meta>);
}

/// A page's items, and the cursor of the next page when there is one.
pub(crate) fn split_page<P: Page>(page: P) -> (Vec<P::Item>, Option<String>) {
    let (items, meta) = page.into_parts();
    let next = meta
        .and_then(|m| m.links)
        .and_then(|l| l.next)
        .filter(|n| !n.is_empty());
    (items, next)
}

/// Whether `e` says the addressed resource does not exist: a 404, or the 400 `"invalid instance ID"` Vultr
/// has answered for deleted resources.
pub(crate) fn is_gone(e: &CloudError) -> bool {
    match e {
        CloudError::NotFound { .. } => true,
        CloudError::Invalid { message, .. } => {
            let m = message.trim().trim_end_matches('.').to_ascii_lowercase();
            m.starts_with("invalid") && (m.ends_with(" id") || m.ends_with("-id"))
        }
        _ => false,
    }
}

/// `e`, or [`CloudError::NotFound`] when it says the resource is gone.
pub(crate) fn gone_as_not_found(e: CloudError, what: &str) -> CloudError {
    if is_gone(&e) && !e.is_not_found() {
        CloudError::NotFound {
            provider: PROVIDER,
            what: what.to_owned(),
        }
    } else {
        e
    }
}

/// `{"error":"…","status":N}`
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
}

/// Vultr's error body to a [`CloudError`].
pub(crate) fn map_error(
    provider: ProviderKind,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> CloudError {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| fallback_message(status, body));
    error_for_status(provider, status, headers, message, None)
}

/// A short, redacted message for an error answer without Vultr's JSON body.
fn fallback_message(status: StatusCode, body: &[u8]) -> String {
    let text = body_excerpt(body, 200);
    if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    }
}

/// `id` checked for use as one path segment (no `/`, `?`, `#`, `%` or dot segments).
pub(crate) fn segment<'a>(what: &str, id: &'a str) -> Result<&'a str> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c));
    if ok {
        Ok(id)
    } else {
        Err(CloudError::Invalid {
            provider: PROVIDER,
            field: Some(what.to_owned()),
            message: format!("{id:?} is not a valid {what}"),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn gone_means_404_or_an_invalid_id() {
        let invalid = |m: &str| CloudError::Invalid {
            provider: PROVIDER,
            field: None,
            message: m.into(),
        };
        assert!(is_gone(&invalid("invalid instance ID")));
        assert!(is_gone(&invalid("Invalid instance-id.")));
        assert!(!is_gone(&invalid("Invalid plan chosen.")));
        assert!(is_gone(&CloudError::NotFound {
            provider: PROVIDER,
            what: "x".into()
        }));
        assert!(gone_as_not_found(invalid("invalid instance ID"), "instance").is_not_found());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = VultrConfig {
            base_url: None,
            token: "VULTR-SECRET".into(),
            rate: None,
        };
        assert!(!format!("{c:?}").contains("SECRET"));
        let cloud = VultrCloud::new(c).unwrap();
        assert!(!format!("{cloud:?}").contains("SECRET"));
    }

    #[test]
    fn path_segments_are_checked() {
        assert!(segment("instance id", "cb676a46-66fd-4dfb-b839-443f2e6c0b60").is_ok());
        assert!(segment("instance id", "../x").is_err());
        assert!(segment("instance id", "a?b").is_err());
    }

    #[test]
    fn echoed_credentials_are_redacted() {
        for (status, body) in [
            (
                StatusCode::UNAUTHORIZED,
                r#"{"error":"Invalid API key: Bearer abc123","status":401}"#,
            ),
            (StatusCode::BAD_GATEWAY, r#"proxy said: {"token":"abc123"}"#),
            (StatusCode::FORBIDDEN, "X-Auth-Key: abc123"),
        ] {
            let e = map_error(PROVIDER, status, &HeaderMap::new(), body.as_bytes());
            assert!(!e.to_string().contains("abc123"), "{e}");
        }
    }

    #[test]
    fn clients_of_one_account_share_its_budget() {
        let make = |token: &str| {
            VultrCloud::new(VultrConfig {
                base_url: None,
                token: token.into(),
                rate: None,
            })
            .unwrap()
        };
        let (one, two, other) = (
            make("vultr-budget-a"),
            make("vultr-budget-a"),
            make("vultr-budget-b"),
        );
        let limiter = |c: &VultrCloud| std::sync::Arc::clone(c.api().limiter().unwrap());
        assert!(std::sync::Arc::ptr_eq(&limiter(&one), &limiter(&two)));
        assert!(!std::sync::Arc::ptr_eq(&limiter(&one), &limiter(&other)));
    }
}
