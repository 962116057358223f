//! The adapter itself: configuration, the HTTP clients, pagination and `X-Filter`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_cloud::http::{ApiClient, ApiResponse, BearerToken, Budget, RateLimit, RetryPolicy};
use flotilla_cloud::{CloudError, ProviderKind, Result};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;

use crate::error::map_error;
use crate::wire::Page;

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.linode.com/v4";

/// Linode's published limit for most calls: about 1600 a minute.
pub const GENERAL_RATE: RateLimit = RateLimit::per_minute(1600);

/// Linode's limit on instance creates (`POST /linode/instances`): 20 per 15 seconds.
pub const CREATE_RATE: RateLimit = RateLimit {
    requests: 20,
    per: Duration::from_secs(15),
};

/// The rate-budget lane of instance creates: limited apart from the account's other calls.
const CREATES_LANE: &str = "linode-instance-creates";

/// Items per page asked for (Linode's maximum).
const PAGE_SIZE: u32 = 500;

/// More pages than this is an answer we do not believe (250 000 items).
const MAX_PAGES: u64 = 500;

const PROVIDER: ProviderKind = ProviderKind::Linode;

/// How to reach one Linode account.
#[derive(Clone)]
pub struct LinodeConfig {
    /// API base URL including the version; [`DEFAULT_BASE_URL`] when `None` (a simulator's URL in tests).
    pub base_url: Option<String>,
    /// Personal access token. Never logged or formatted.
    pub token: String,
    /// Rate limit of all calls but instance creates; [`GENERAL_RATE`] when `None`.
    pub rate: Option<RateLimit>,
    /// Rate limit of instance creates; [`CREATE_RATE`] when `None`.
    pub create_rate: Option<RateLimit>,
    /// Retry policy; [`RetryPolicy::default`] when `None`.
    pub retry: Option<RetryPolicy>,
}

impl LinodeConfig {
    /// The real API with `token` and Linode's published limits.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            base_url: None,
            token: token.into(),
            rate: None,
            create_rate: None,
            retry: None,
        }
    }

    /// The same account reached at `base_url` (a simulator, a proxy).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

impl std::fmt::Debug for LinodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinodeConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("rate", &self.rate)
            .field("create_rate", &self.create_rate)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A Linode account: implements [`Compute`](flotilla_cloud::Compute), [`Network`](flotilla_cloud::Network),
/// [`ManagedDatabases`](flotilla_cloud::ManagedDatabases) and [`Dns`](flotilla_cloud::Dns).
pub struct LinodeCloud {
    /// Every call but instance creates.
    pub(crate) api: ApiClient,
    /// `POST /linode/instances` only, under its own, tighter limit.
    pub(crate) creates: ApiClient,
    /// Database id → engine path segment (`mysql`, `postgresql`), learnt from lookups.
    pub(crate) engines: Mutex<HashMap<u64, &'static str>>,
}

impl std::fmt::Debug for LinodeCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinodeCloud")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl LinodeCloud {
    /// An adapter for the account `config` describes. Fails on an empty token or a base URL that does not
    /// parse; it does not call the API. Every adapter of one account (token and base URL) in the process
    /// shares its rate budgets ([`flotilla_cloud::http::Limiters::global`]).
    pub fn new(config: LinodeConfig) -> Result<Self> {
        if config.token.trim().is_empty() {
            return Err(CloudError::Auth {
                provider: PROVIDER,
                message: "the Linode API token is empty".into(),
            });
        }
        let base = config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let signer = Arc::new(BearerToken::new(PROVIDER, config.token));
        let retry = config.retry.unwrap_or_default();
        let api = ApiClient::new(
            PROVIDER,
            base,
            signer.clone(),
            config.rate.unwrap_or(GENERAL_RATE),
            retry,
            map_error,
        )?;
        let creates = ApiClient::with_budget(
            PROVIDER,
            base,
            signer,
            config.create_rate.unwrap_or(CREATE_RATE),
            retry,
            map_error,
            Budget {
                limiters: None,
                lane: CREATES_LANE,
            },
        )?;
        Ok(Self {
            api,
            creates,
            engines: Mutex::new(HashMap::new()),
        })
    }

    /// HTTP requests sent so far, every attempt counted.
    pub fn calls(&self) -> u64 {
        self.api.calls() + self.creates.calls()
    }

    /// Answers so far that said "rate limited".
    pub fn rate_limited(&self) -> u64 {
        self.api.rate_limited() + self.creates.rate_limited()
    }

    /// `GET path`, parsed.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.api.get(path, &[]).await
    }

    /// `method path` with a JSON body, the answer parsed.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T> {
        self.api.send(method, path, body).await
    }

    /// `method path` with a JSON body, the answer ignored.
    pub(crate) async fn call(&self, method: Method, path: &str, body: &serde_json::Value) -> Result<()> {
        self.api
            .request(method, path, &[], Some(body), &[])
            .await
            .map(|_: ApiResponse| ())
    }

    /// Every item of a collection, following all pages, optionally filtered server-side with `X-Filter`.
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        filter: Option<&serde_json::Value>,
    ) -> Result<Vec<T>> {
        let headers = match filter {
            Some(f) => vec![x_filter(f)?],
            None => Vec::new(),
        };
        let mut items = Vec::new();
        let mut page = 1_u64;
        loop {
            let query = [("page", page.to_string()), ("page_size", PAGE_SIZE.to_string())];
            let answer: Page<T> = self
                .api
                .request(Method::GET, path, &query, None, &headers)
                .await?
                .json(PROVIDER)?;
            items.extend(answer.data);
            // An answer without paging fields is a single page. The page asked for is the one counted:
            // a server that keeps answering "page 1 of 2" must not keep us here.
            if answer.page != 0 && answer.page != page {
                return Err(CloudError::protocol(
                    PROVIDER,
                    format!("{path}: asked for page {page}, got page {}", answer.page),
                ));
            }
            let current = page;
            if current >= answer.pages {
                return Ok(items);
            }
            if current >= MAX_PAGES {
                return Err(CloudError::protocol(
                    PROVIDER,
                    format!("{path}: more than {MAX_PAGES} pages"),
                ));
            }
            page = current + 1;
        }
    }
}

/// The `X-Filter` header for `filter`, JSON with anything outside ASCII escaped (header values are ASCII).
fn x_filter(filter: &serde_json::Value) -> Result<(HeaderName, HeaderValue)> {
    let mut text = String::new();
    for c in filter.to_string().chars() {
        if c.is_ascii() {
            text.push(c);
        } else {
            let mut units = [0_u16; 2];
            for unit in c.encode_utf16(&mut units) {
                text.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    let value = HeaderValue::from_str(&text).map_err(|e| CloudError::Invalid {
        provider: PROVIDER,
        field: Some("X-Filter".into()),
        message: e.to_string(),
    })?;
    Ok((HeaderName::from_static("x-filter"), value))
}

/// A Linode id (an integer) from the text form the traits use.
pub(crate) fn numeric_id(field: &str, id: &str) -> Result<u64> {
    id.trim().parse().map_err(|_| CloudError::Invalid {
        provider: PROVIDER,
        field: Some(field.to_owned()),
        message: format!("{id:?} is not a Linode id (an integer)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_ascii_json() {
        let (name, value) = x_filter(&serde_json::json!({"label": "café"})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.as_str(), "x-filter");
        assert_eq!(value.to_str().ok(), Some(r#"{"label":"caf\u00e9"}"#));
        let back: serde_json::Value =
            serde_json::from_str(value.to_str().unwrap_or_default()).unwrap_or_default();
        assert_eq!(back["label"], "café");
    }

    #[test]
    fn ids_are_integers() {
        assert_eq!(numeric_id("id", "82372946").ok(), Some(82_372_946));
        assert!(numeric_id("id", "1/../account").is_err());
    }

    #[test]
    fn adapters_of_one_account_share_its_budgets() {
        let same = |c: &LinodeCloud, d: &LinodeCloud| {
            let (Some(a), Some(b), Some(x), Some(y)) = (
                c.api.limiter(),
                d.api.limiter(),
                c.creates.limiter(),
                d.creates.limiter(),
            ) else {
                panic!("Linode's clients are rate limited");
            };
            (Arc::ptr_eq(a, b), Arc::ptr_eq(x, y))
        };
        let make = |token: &str| {
            let mut config = LinodeConfig::new(token);
            // Equal rates: the lanes still keep the creates apart.
            config.rate = Some(CREATE_RATE);
            LinodeCloud::new(config).unwrap_or_else(|e| panic!("{e}"))
        };
        let (one, two, other) = (
            make("linode-budget-a"),
            make("linode-budget-a"),
            make("linode-budget-b"),
        );
        assert_eq!(same(&one, &two), (true, true));
        assert_eq!(same(&one, &other), (false, false));
        let (Some(general), Some(creates)) = (one.api.limiter(), one.creates.limiter()) else {
            panic!("Linode's clients are rate limited");
        };
        assert!(!Arc::ptr_eq(general, creates));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let config = LinodeConfig::new("secret-token-123");
        assert!(!format!("{config:?}").contains("secret-token-123"));
        let cloud = LinodeCloud::new(config).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{cloud:?}").contains("secret-token-123"));
        assert!(LinodeCloud::new(LinodeConfig::new(" ")).is_err());
    }
}
