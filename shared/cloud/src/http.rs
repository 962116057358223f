//! The HTTP client every provider adapter uses.
//!
//! One [`ApiClient`] per provider account: a base URL (the real API or the simulator), a [`Signer`] that
//! adds credentials to each request, a rate limiter at the provider's published limit, and retries.
//!
//! Rate budgets are per account, not per client: every client of one account (same provider, base URL and
//! credential, see [`Signer::fingerprint`]) draws from one limiter in a [`Limiters`] registry, the
//! process-wide [`Limiters::global`] unless [`ApiClient::with_budget`] names another.
//!
//! Retries: a rate-limited answer (429) waits for its `Retry-After` (capped at
//! [`RetryPolicy::max_retry_after`], by default [`MAX_RETRY_AFTER`]) and tries again; a busy,
//! maintenance or 5xx answer, a timeout or a refused connection back off exponentially. A `POST` (a create)
//! is retried only when the provider surely did not act on it — rate limited, or the connection never
//! opened — because a create that timed out may have happened: the caller finds it by its marks instead.
//!
//! Error texts built here from a provider's answer, a URL or a path pass through
//! [`flotilla_redact::redact`], and so does every error an [`ErrorMapper`] returns: a provider that echoes a
//! token, a header or a password in its error body does not put it in a [`CloudError`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;

pub use crate::limiters::{AccountKey, CredentialFingerprint, Limiters};
use crate::{CloudError, ProviderKind, Result};

/// The parts of a request a signer may cover.
#[derive(Debug)]
pub struct RequestParts<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Full path, including the base URL's path (`/v2/instance`).
    pub path: &'a str,
    /// Query parameters, in order.
    pub query: &'a [(String, String)],
    /// Body bytes (empty when there is none).
    pub body: &'a [u8],
}

/// Adds credentials to a request.
pub trait Signer: Send + Sync {
    /// The headers that authenticate this request.
    fn sign(&self, request: &RequestParts<'_>) -> Result<Vec<(HeaderName, HeaderValue)>>;

    /// A fingerprint of the credential this signer sends ([`CredentialFingerprint::of`] the token, or the
    /// key and its secret), so that every client of one account shares the account's rate budget. `None`
    /// (the default) gives each client built with this signer a budget of its own.
    fn fingerprint(&self) -> Option<CredentialFingerprint> {
        None
    }
}

/// `Authorization: Bearer <token>` (Linode, DigitalOcean, Vultr, Cloudflare API tokens).
pub struct BearerToken {
    provider: ProviderKind,
    token: String,
}

impl BearerToken {
    /// A bearer token for `provider`.
    pub fn new(provider: ProviderKind, token: impl Into<String>) -> Self {
        Self {
            provider,
            token: token.into(),
        }
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("provider", &self.provider)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Signer for BearerToken {
    fn sign(&self, _request: &RequestParts<'_>) -> Result<Vec<(HeaderName, HeaderValue)>> {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", self.token)).map_err(|_| CloudError::Auth {
                provider: self.provider,
                message: "the API token holds characters that cannot go in a header".into(),
            })?;
        value.set_sensitive(true);
        Ok(vec![(reqwest::header::AUTHORIZATION, value)])
    }

    fn fingerprint(&self) -> Option<CredentialFingerprint> {
        Some(CredentialFingerprint::of(&[&self.token]))
    }
}

/// A provider's published request rate: `requests` per `per`.
///
/// Providers count requests in (sliding) windows of `per`. A token bucket with a burst of `b` and a refill
/// rate `r` can send `b + r·per` requests in one such window, so to stay under `requests` in *every*
/// window the limiter keeps a tenth of the budget as burst and refills the rest evenly:
/// `b = requests / 10`, `r = (requests − b) / per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Requests allowed…
    pub requests: u32,
    /// …per this period.
    pub per: Duration,
}

impl RateLimit {
    /// `requests` per minute.
    pub const fn per_minute(requests: u32) -> Self {
        Self {
            requests,
            per: Duration::from_secs(60),
        }
    }

    /// `requests` per second.
    pub const fn per_second(requests: u32) -> Self {
        Self {
            requests,
            per: Duration::from_secs(1),
        }
    }

    pub(crate) fn quota(self) -> Option<Quota> {
        if self.requests == 0 {
            return None;
        }
        let burst = (self.requests / 10).max(1);
        let refill = self.requests.checked_sub(burst).filter(|r| *r > 0).unwrap_or(1);
        let period = self.per.checked_div(refill)?;
        Some(Quota::with_period(period)?.allow_burst(std::num::NonZeroU32::new(burst)?))
    }
}

/// The longest `Retry-After` honoured by default (Cloudflare can block for five minutes): the default of
/// [`RetryPolicy::max_retry_after`].
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// `delay` capped at [`MAX_RETRY_AFTER`]: for callers that wait on a [`CloudError::retry_after`] outside
/// the client (a provider cannot park them longer than the client itself would wait).
pub fn cap_retry_after(delay: Duration) -> Duration {
    delay.min(MAX_RETRY_AFTER)
}

/// How failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts, the first included.
    pub max_attempts: u32,
    /// First back-off delay.
    pub min_delay: Duration,
    /// Longest back-off delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured: a longer one is waited for this long, then the call is retried.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

/// Turns a failed answer into a [`CloudError`]: status, headers and body in, typed error out.
pub type ErrorMapper = fn(ProviderKind, reqwest::StatusCode, &HeaderMap, &[u8]) -> CloudError;

/// A successful answer. Its `Debug` leaves the body out: answers can carry secrets (a new machine's
/// default password, a database URI with its password).
#[derive(Clone)]
pub struct ApiResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl std::fmt::Debug for ApiResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl ApiResponse {
    /// The body parsed as `T`; a mismatch names the path of the offending field.
    pub fn json<T: DeserializeOwned>(&self, provider: ProviderKind) -> Result<T> {
        parse_json(provider, &self.body)
    }
}

/// Parses `body` as `T`, naming the path of the offending field on failure. The parser's message can quote
/// the offending value: it is redacted, and left out altogether when the path names a secret
/// ([`flotilla_redact::is_secret_key`]).
pub fn parse_json<T: DeserializeOwned>(provider: ProviderKind, body: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let secret = path.split(['.', '[', ']']).any(flotilla_redact::is_secret_key);
        if secret {
            CloudError::protocol(
                provider,
                format!("at `{path}`: the value does not fit (withheld: the field holds a secret)"),
            )
        } else {
            CloudError::protocol(provider, format!("at `{path}`: {}", e.inner()))
        }
    })
}

/// Up to `max_chars` characters of a provider's answer `body`, for an error message: decoded leniently,
/// trimmed, redacted ([`flotilla_redact::redact`]) before it is cut, and ended with `…` when cut. Empty when
/// the body is.
pub fn body_excerpt(body: &[u8], max_chars: usize) -> String {
    /// Bytes looked at: beyond this nothing can reach the excerpt, and the redaction patterns tolerate a
    /// credential cut at the end.
    const LOOK_AT: usize = 64 * 1024;
    let head = body.get(..LOOK_AT).unwrap_or(body);
    let text = flotilla_redact::redact(String::from_utf8_lossy(head).trim());
    let mut chars = text.char_indices();
    match chars.nth(max_chars) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or_default()),
        None => text,
    }
}

/// One provider account's API.
pub struct ApiClient {
    provider: ProviderKind,
    http: reqwest::Client,
    base: url::Url,
    signer: Arc<dyn Signer>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    retry: RetryPolicy,
    map_error: ErrorMapper,
    calls: AtomicU64,
    rate_limited: AtomicU64,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("provider", &self.provider)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// Which rate budget an [`ApiClient`] draws from.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    /// The registry; `None` for [`Limiters::global`].
    pub limiters: Option<Limiters>,
    /// The lane within the account: `""` for its general budget; another name for endpoints the provider
    /// limits apart (Linode's instance creates).
    pub lane: &'static str,
}

impl ApiClient {
    /// A client for `base_url` (e.g. `https://api.linode.com/v4`), drawing from its account's general budget
    /// in [`Limiters::global`]: every client of the same account (provider, base URL and
    /// [`Signer::fingerprint`]) at the same `rate` shares one limiter.
    pub fn new(
        provider: ProviderKind,
        base_url: &str,
        signer: Arc<dyn Signer>,
        rate: RateLimit,
        retry: RetryPolicy,
        map_error: ErrorMapper,
    ) -> Result<Self> {
        Self::with_budget(
            provider,
            base_url,
            signer,
            rate,
            retry,
            map_error,
            Budget::default(),
        )
    }

    /// [`ApiClient::new`], drawing from the rate budget `budget` names. A signer without a
    /// [`Signer::fingerprint`] gets a limiter of its own, whatever the budget says.
    pub fn with_budget(
        provider: ProviderKind,
        base_url: &str,
        signer: Arc<dyn Signer>,
        rate: RateLimit,
        retry: RetryPolicy,
        map_error: ErrorMapper,
        budget: Budget,
    ) -> Result<Self> {
        let mut base = url::Url::parse(base_url).map_err(|e| CloudError::Invalid {
            provider,
            field: Some("base_url".into()),
            message: flotilla_redact::redact(&format!("{base_url:?}: {e}")),
        })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("flotilla/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CloudError::Transport {
                provider,
                message: flotilla_redact::redact(&e.to_string()),
            })?;
        let limiter = match signer.fingerprint() {
            Some(credential) => {
                let account = AccountKey::new(provider, base.as_str(), credential);
                let limiters = budget.limiters.unwrap_or_else(Limiters::global);
                limiters.limiter(&account, budget.lane, rate)
            }
            None => rate.quota().map(|q| Arc::new(RateLimiter::direct(q))),
        };
        Ok(Self {
            provider,
            http,
            base,
            signer,
            limiter,
            retry,
            map_error,
            calls: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        })
    }

    /// The provider.
    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    /// HTTP requests sent so far (every attempt counts).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Answers that said "rate limited" so far.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// The rate limiter every request waits on, shared with every client of the same account, lane and rate
    /// in the same [`Limiters`] registry; `None` when the rate sets no limit.
    pub fn limiter(&self) -> Option<&Arc<DefaultDirectRateLimiter>> {
        self.limiter.as_ref()
    }

    /// `GET path?query`, parsed as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T> {
        self.request(Method::GET, path, query, None, &[])
            .await?
            .json(self.provider)
    }

    /// `method path` with a JSON body, the answer parsed as `T`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T> {
        self.request(method, path, &[], Some(body), &[])
            .await?
            .json(self.provider)
    }

    /// `DELETE path`; an answer of "not found" is success (it is gone either way).
    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.request(Method::DELETE, path, &[], None, &[]).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends a request (rate limited, signed, retried as the module documentation says) and returns a
    /// successful answer, or the mapped error.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<ApiResponse> {
        let body_bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| CloudError::protocol(self.provider, e))?,
            None => Vec::new(),
        };
        check_path(self.provider, path)?;
        let query: Vec<(String, String)> = query.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let mut url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| CloudError::Invalid {
                provider: self.provider,
                field: Some("path".into()),
                message: flotilla_redact::redact(&format!("{path:?}: {e}")),
            })?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let is_create = method == Method::POST;
        let attempt = || self.attempt(&method, &url, &query, &body_bytes, body.is_some(), headers);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        let max_retry_after = self.retry.max_retry_after;
        attempt
            .retry(backoff)
            .when(|e: &Attempt| e.retry_safe(is_create))
            .adjust(|e: &Attempt, delay| {
                delay.map(|d| e.error.retry_after().map_or(d, |r| r.min(max_retry_after)))
            })
            .notify(|e: &Attempt, delay| {
                tracing::debug!(provider = %self.provider, path, error = %e.error, ?delay, "retrying");
            })
            .await
            .map_err(|e| e.error)
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &url::Url,
        query: &[(String, String)],
        body: &[u8],
        has_body: bool,
        headers: &[(HeaderName, HeaderValue)],
    ) -> std::result::Result<ApiResponse, Attempt> {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let parts = RequestParts {
            method,
            path: url.path(),
            query,
            body,
        };
        let auth = self.signer.sign(&parts).map_err(Attempt::final_error)?;
        let mut request = self.http.request(method.clone(), url.clone());
        for (name, value) in auth.into_iter().chain(headers.iter().cloned()) {
            request = request.header(name, value);
        }
        if has_body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| Attempt {
            // A refused connection never reached the provider; anything later might have.
            never_sent: e.is_connect(),
            error: CloudError::Transport {
                provider: self.provider,
                message: without_url(&e),
            },
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| Attempt {
            never_sent: false,
            error: CloudError::Transport {
                provider: self.provider,
                message: without_url(&e),
            },
        })?;
        if status.is_success() {
            return Ok(ApiResponse {
                status: status.as_u16(),
                headers,
                body: bytes,
            });
        }
        // Whatever the adapter's mapper quoted from the answer, no credential leaves in the error.
        let error = (self.map_error)(self.provider, status, &headers, &bytes).redacted();
        if matches!(error, CloudError::RateLimited { .. }) {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        Err(Attempt {
            never_sent: false,
            error,
        })
    }
}

/// A failed attempt and whether retrying it is safe.
struct Attempt {
    never_sent: bool,
    error: CloudError,
}

impl Attempt {
    fn final_error(error: CloudError) -> Self {
        Self {
            never_sent: false,
            error,
        }
    }

    fn retry_safe(&self, is_create: bool) -> bool {
        if !self.error.is_retryable() {
            return false;
        }
        !is_create || self.never_sent || matches!(self.error, CloudError::RateLimited { .. })
    }
}

/// Refuses a path that could leave the resource it names: a query or fragment smuggled in with an id, or a
/// `.`/`..` segment (also percent-encoded, which URL parsing would resolve). Adapters build paths from
/// provider ids; this is the one place every path passes.
fn check_path(provider: ProviderKind, path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(CloudError::Invalid {
            provider,
            field: Some("path".into()),
            message: flotilla_redact::redact(&format!("{why} in {path:?}")),
        })
    };
    if path.contains(['?', '#']) || path.chars().any(char::is_control) {
        return bad("a query, fragment or control character");
    }
    for segment in path.split('/') {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        if decoded == "." || decoded == ".." {
            return bad("a dot segment");
        }
    }
    Ok(())
}

/// reqwest's error text without the URL (which may carry a query with credentials), redacted.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), url.path());
    }
    let text = flotilla_redact::redact(&text);
    if e.is_timeout() {
        format!("timed out ({text})")
    } else if e.is_connect() {
        format!("connection failed ({text})")
    } else {
        text
    }
}

/// The error most providers' status codes mean, given the provider's own message (and field, if it named
/// one), both redacted. Adapters parse their error body, then call this.
pub fn error_for_status(
    provider: ProviderKind,
    status: reqwest::StatusCode,
    headers: &HeaderMap,
    message: String,
    field: Option<String>,
) -> CloudError {
    let message = flotilla_redact::redact(&message);
    let field = field.map(|f| flotilla_redact::redact(&f));
    match status.as_u16() {
        401 | 403 => CloudError::Auth { provider, message },
        404 => CloudError::NotFound {
            provider,
            what: message,
        },
        409 => CloudError::Conflict { provider, message },
        429 => CloudError::RateLimited {
            provider,
            retry_after: retry_after(headers),
        },
        500..=599 => CloudError::Retryable {
            provider,
            message: format!("{status}: {message}"),
        },
        _ => CloudError::Invalid {
            provider,
            field,
            message,
        },
    }
}

/// The `Retry-After` header as a delay (seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape_their_resource() {
        let p = ProviderKind::Exoscale;
        assert!(check_path(p, "instance/0c4f2e52-3b0a-4d2e-9c2f-1b2a3c4d5e6f").is_ok());
        assert!(check_path(p, "private-network/abc:attach").is_ok());
        for bad in [
            "instance/../account",
            "instance/%2E%2E/account",
            "instance/x?admin=1",
            "instance/x#frag",
            "a/./b",
        ] {
            assert!(check_path(p, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_in_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_str(&later).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn bearer_tokens_are_sensitive_and_never_debug_printed() {
        let t = BearerToken::new(ProviderKind::Linode, "tok-123");
        assert!(!format!("{t:?}").contains("tok-123"));
        let parts = RequestParts {
            method: &Method::GET,
            path: "/",
            query: &[],
            body: &[],
        };
        let headers = t.sign(&parts).unwrap();
        assert!(headers[0].1.is_sensitive());
        assert_eq!(headers[0].1.to_str().unwrap(), "Bearer tok-123");
    }

    #[test]
    fn body_excerpts_are_redacted_before_they_are_cut() {
        let body = br#"  {"error":"bad token","token":"sk-live-123"}  "#;
        assert_eq!(
            body_excerpt(body, 200),
            r#"{"error":"bad token","token":"<redacted>"}"#
        );
        let cut = body_excerpt(b"X-Auth-Key: abc123456789", 15);
        assert_eq!(cut, "X-Auth-Key: <re…");
        assert_eq!(body_excerpt(b"  ", 10), "");
        assert_eq!(body_excerpt("é".repeat(10).as_bytes(), 3), "ééé…");
        assert_eq!(body_excerpt(b"\xff ok", 10), "\u{fffd} ok");
    }

    #[test]
    fn status_errors_are_redacted() {
        let e = error_for_status(
            ProviderKind::Cloudflare,
            reqwest::StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            "Unknown X-Auth-Key: abc123 or X-Auth-Email: ops@example.com".into(),
            Some("token=abc".into()),
        );
        let shown = e.to_string();
        assert!(
            !shown.contains("abc123") && !shown.contains("ops@example.com"),
            "{shown}"
        );
    }

    #[test]
    fn rate_limits_make_quotas() {
        assert!(
            RateLimit {
                requests: 0,
                per: Duration::from_secs(1)
            }
            .quota()
            .is_none()
        );
        // Never more than the budget in one window: burst + refill over the window.
        for limit in [
            RateLimit::per_minute(1600),
            RateLimit::per_minute(250),
            RateLimit::per_second(30),
        ] {
            let q = limit.quota().unwrap();
            let refills = (limit.per.as_secs_f64() / q.replenish_interval().as_secs_f64()).floor();
            assert!(
                f64::from(q.burst_size().get()) + refills <= f64::from(limit.requests) + 1e-9,
                "{limit:?}"
            );
        }
    }
}
