//! The account: configuration, the HTTP client, error mapping and pagination.

use std::sync::Arc;
use std::time::Duration;

use flotilla_cloud::http::{
    ApiClient, ApiResponse, BearerToken, RateLimit, RetryPolicy, body_excerpt, error_for_status, retry_after,
};
use flotilla_cloud::{CloudError, ProviderKind, Result};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::wire::Links;

/// The DigitalOcean API.
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com/v2";

/// DigitalOcean's published per-minute limit (there is also 5000 an hour).
pub const DEFAULT_RATE: RateLimit = RateLimit::per_minute(250);

/// Most trusted sources a database cluster accepts.
pub const MAX_DATABASE_RULES: usize = 100;

/// Largest page DigitalOcean serves.
pub(crate) const PER_PAGE: &str = "200";

/// Pages followed before a list is declared runaway.
const MAX_PAGES: usize = 10_000;

pub(crate) const PROVIDER: ProviderKind = ProviderKind::DigitalOcean;

/// One DigitalOcean account.
#[derive(Clone)]
pub struct DigitalOceanConfig {
    /// API base URL; [`DEFAULT_BASE_URL`] when `None` (set it to drive the simulator).
    pub base_url: Option<String>,
    /// Personal access token.
    pub token: String,
    /// Request rate; [`DEFAULT_RATE`] when `None`.
    pub rate: Option<RateLimit>,
}

impl std::fmt::Debug for DigitalOceanConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigitalOceanConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("rate", &self.rate)
            .finish()
    }
}

/// DigitalOcean: droplets, VPCs, Cloud Firewalls, database trusted sources and DNS.
#[derive(Debug)]
pub struct DigitalOceanCloud {
    pub(crate) api: ApiClient,
}

impl DigitalOceanCloud {
    /// A client for the account in `config`, with the default retry policy. Every client of one account
    /// (token and base URL) in the process shares its rate budget
    /// ([`flotilla_cloud::http::Limiters::global`]).
    pub fn new(config: DigitalOceanConfig) -> Result<Self> {
        Self::with_retry_policy(config, RetryPolicy::default())
    }

    /// A client for the account in `config` that retries as `retry` says.
    pub fn with_retry_policy(config: DigitalOceanConfig, retry: RetryPolicy) -> Result<Self> {
        if config.token.trim().is_empty() {
            return Err(CloudError::Invalid {
                provider: PROVIDER,
                field: Some("token".into()),
                message: "no API token configured".into(),
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

    /// Every item of a paginated list, following `links.pages.next` to the end.
    pub(crate) async fn get_all<P: Page>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<P::Item>> {
        let mut query: Vec<(String, String)> =
            query.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let borrowed: Vec<(&str, String)> = query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let page: P = self.api.get(path, &borrowed).await?;
            let (mut batch, next) = split_page(page)?;
            items.append(&mut batch);
            let Some(next_query) = next else {
                return Ok(items);
            };
            if next_query == query {
                return Err(CloudError::protocol(
                    PROVIDER,
                    format!("{path}: the next page link points at the same page"),
                ));
            }
            query = next_query;
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
    /// The items and the links to other pages.
    fn into_parts(self) -> (Vec<Self::Item>, Option<Links>);
}

/// The query of a request, as pairs.
type Query = Vec<(String, String)>;

/// A page's items, and the query of the next page when there is one.
pub(crate) fn split_page<P: Page>(page: P) -> Result<(Vec<P::Item>, Option<Query>)> {
    let (items, links) = page.into_parts();
    let next = links
        .and_then(|l| l.pages)
        .and_then(|p| p.next)
        .map(|next| next_page_query(&next))
        .transpose()?;
    Ok((items, next))
}

/// The query of a `links.pages.next` URL (absolute, as DigitalOcean sends it, or relative). Only the query is
/// used: the path and host stay those of the configured base URL, so the simulator works the same.
fn next_page_query(next: &str) -> Result<Query> {
    let url = reqwest::Url::parse(next)
        .or_else(|_| reqwest::Url::parse("http://relative.invalid/").and_then(|base| base.join(next)))
        .map_err(|e| CloudError::protocol(PROVIDER, format!("next page link {next:?}: {e}")))?;
    Ok(url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// `{"id":"not_found","message":"…","request_id":"…"}`
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// DigitalOcean's error body and rate-limit headers to a [`CloudError`].
pub(crate) fn map_error(
    provider: ProviderKind,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> CloudError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return CloudError::RateLimited {
            provider,
            retry_after: retry_after(headers).or_else(|| rate_limit_reset(headers)),
        };
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|b| b.message.clone().or_else(|| b.id.clone()))
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| fallback_message(status, body));
    error_for_status(provider, status, headers, message, None)
}

/// The wait until `ratelimit-reset` (Unix seconds), when DigitalOcean sends no `Retry-After`.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let reset: i64 = headers
        .get("ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let wait = reset.checked_sub(chrono::Utc::now().timestamp())?;
    Some(Duration::from_secs(u64::try_from(wait).unwrap_or(0)))
}

/// A short, redacted message for an error answer without DigitalOcean's JSON body.
pub(crate) fn fallback_message(status: StatusCode, body: &[u8]) -> String {
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

/// A numeric id (droplets, records).
pub(crate) fn numeric_id(what: &str, id: &str) -> Result<u64> {
    id.parse().map_err(|_| CloudError::Invalid {
        provider: PROVIDER,
        field: Some(what.to_owned()),
        message: format!("{id:?} is not a valid {what}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn next_links_keep_only_their_query() {
        let q = next_page_query("https://api.digitalocean.com/v2/droplets?page=2&per_page=200&tag_name=a:b")
            .unwrap();
        assert_eq!(
            q,
            vec![
                ("page".to_owned(), "2".to_owned()),
                ("per_page".to_owned(), "200".to_owned()),
                ("tag_name".to_owned(), "a:b".to_owned()),
            ]
        );
        let q = next_page_query("/v2/vpcs?page=3").unwrap();
        assert_eq!(q, vec![("page".to_owned(), "3".to_owned())]);
    }

    #[test]
    fn a_429_without_retry_after_waits_for_ratelimit_reset() {
        let mut h = HeaderMap::new();
        let reset = chrono::Utc::now().timestamp() + 20;
        h.insert(
            "ratelimit-reset",
            HeaderValue::from_str(&reset.to_string()).unwrap(),
        );
        let e = map_error(PROVIDER, StatusCode::TOO_MANY_REQUESTS, &h, b"{}");
        let wait = e.retry_after().unwrap();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
    }

    #[test]
    fn path_segments_are_checked() {
        assert!(segment("firewall id", "bb4b2611-3d72").is_ok());
        assert!(segment("firewall id", "../x").is_err());
        assert!(segment("firewall id", "a/b").is_err());
        assert!(segment("firewall id", "").is_err());
        assert!(numeric_id("droplet id", "12x").is_err());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = DigitalOceanConfig {
            base_url: None,
            token: "dop_v1_secret".into(),
            rate: None,
        };
        assert!(!format!("{c:?}").contains("secret"));
        let cloud = DigitalOceanCloud::new(c).unwrap();
        assert!(!format!("{cloud:?}").contains("secret"));
    }

    #[test]
    fn echoed_credentials_are_redacted() {
        for (status, body) in [
            (
                StatusCode::UNAUTHORIZED,
                r#"{"id":"unauthorized","message":"Unable to authenticate you: token=abc123"}"#,
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
            DigitalOceanCloud::new(DigitalOceanConfig {
                base_url: None,
                token: token.into(),
                rate: None,
            })
            .unwrap()
        };
        let (one, two, other) = (
            make("digitalocean-budget-a"),
            make("digitalocean-budget-a"),
            make("digitalocean-budget-b"),
        );
        let limiter = |c: &DigitalOceanCloud| std::sync::Arc::clone(c.api().limiter().unwrap());
        assert!(std::sync::Arc::ptr_eq(&limiter(&one), &limiter(&two)));
        assert!(!std::sync::Arc::ptr_eq(&limiter(&one), &limiter(&other)));
    }
}
