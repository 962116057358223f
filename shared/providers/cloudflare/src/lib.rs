//! Flotilla's Cloudflare adapter: zones and DNS records through the Cloudflare API v4.
//!
//! - [`Cloudflare`] implements [`flotilla_cloud::Dns`] for one account, authenticated by a scoped API token
//!   (`Authorization: Bearer`) or the legacy global key ([`GlobalKeySigner`]: `X-Auth-Email` +
//!   `X-Auth-Key`), at Cloudflare's published 1200 requests per five minutes.
//! - Every answer is an envelope; a `200` that says `success: false` is an error too. Error codes map onto
//!   [`flotilla_cloud::CloudError`] (authentication, record exists, invalid, not found) before the status
//!   does; `429` honours `Retry-After`.
//! - Lists follow `result_info` to the last page.
//! - [`flotilla_cloud::Dns::apply_batch`] uses the batch endpoint, 200 changes per call; a batch Cloudflare
//!   refuses is replayed change by change, and each refused change is reported (a rate limit or a 5xx is
//!   returned as it is: the batch may have been applied, so the caller lists again).

mod auth;
mod batch;
mod config;
mod dns;
mod envelope;

#[doc(hidden)]
pub mod answers;

use std::sync::Arc;

use flotilla_cloud::http::{ApiClient, BearerToken, Signer};
use flotilla_cloud::{CloudError, ProviderKind, Result};
use reqwest::Method;
use serde::de::DeserializeOwned;

pub use auth::GlobalKeySigner;
pub use config::{CloudflareConfig, DEFAULT_BASE_URL, DEFAULT_RATE};
pub use flotilla_spec::CloudflareAuth;

const P: ProviderKind = ProviderKind::Cloudflare;

/// Most pages a list follows: a guard against an API that never says it is done.
const MAX_PAGES: u32 = 10_000;

/// One Cloudflare account.
#[derive(Debug)]
pub struct Cloudflare {
    api: ApiClient,
}

impl Cloudflare {
    /// An adapter for `config`'s account. Every adapter of one credential (token, or email and global key)
    /// and base URL in the process shares its rate budget ([`flotilla_cloud::http::Limiters::global`]).
    pub fn new(config: CloudflareConfig) -> Result<Self> {
        let signer: Arc<dyn Signer> = match &config.auth {
            CloudflareAuth::ApiToken { token, .. } => {
                if token.is_empty() {
                    return Err(missing("API token"));
                }
                Arc::new(BearerToken::new(P, token.expose()))
            }
            CloudflareAuth::GlobalKey { email, key } => {
                if email.trim().is_empty() {
                    return Err(missing(
                        "account email (DNS_USERNAME) the global API key belongs to",
                    ));
                }
                if key.is_empty() {
                    return Err(missing("global API key"));
                }
                Arc::new(GlobalKeySigner::new(email.trim(), key.clone()))
            }
        };
        let base = config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let api = ApiClient::new(P, base, signer, config.rate, config.retry, envelope::map_error)?;
        Ok(Self { api })
    }

    /// The HTTP client (call counters for tests and metrics).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// `method path` (with a body), the envelope checked and its `result` returned.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<T>> {
        let answer = self.api.request(method, path, &[], body, &[]).await?;
        envelope::result_of(P, &answer.headers, &answer.body)
    }

    /// [`Cloudflare::call`] for an answer that must carry a result.
    async fn call_for<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        self.call(method, path, body)
            .await?
            .ok_or_else(|| CloudError::protocol(P, format!("{path}: the answer has no result")))
    }

    /// Every item of a paginated list, page after page until `result_info` says it was the last (or, when
    /// it does not say, until a short page).
    async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        per_page: u32,
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut page = 1_u32;
        loop {
            let mut q = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", per_page.to_string()));
            let answer = self.api.request(Method::GET, path, &q, None, &[]).await?;
            let (got, more) = envelope::page_of(P, &answer.headers, &answer.body, page, per_page)?;
            items.extend(got);
            if !more {
                return Ok(items);
            }
            if page >= MAX_PAGES {
                // A truncated list would make the caller delete or re-create what it did not see.
                return Err(CloudError::protocol(
                    P,
                    format!("{path}: more than {MAX_PAGES} pages"),
                ));
            }
            page += 1;
        }
    }
}

fn missing(what: &str) -> CloudError {
    CloudError::Auth {
        provider: P,
        message: format!("no {what} configured"),
    }
}

#[cfg(test)]
mod tests {
    use flotilla_spec::Secret;

    use super::*;

    #[test]
    fn credentials_are_checked_up_front() {
        let no_email = CloudflareConfig::new(CloudflareAuth::GlobalKey {
            email: String::new(),
            key: Secret::new("k"),
        });
        assert!(matches!(Cloudflare::new(no_email), Err(CloudError::Auth { .. })));
        let token = CloudflareConfig::new(CloudflareAuth::ApiToken {
            account_id: "a".into(),
            token: Secret::new("t"),
        });
        assert!(Cloudflare::new(token).is_ok());
    }

    #[test]
    fn adapters_of_one_credential_share_its_budget() {
        let token = |t: &str| {
            Cloudflare::new(CloudflareConfig::new(CloudflareAuth::ApiToken {
                account_id: "a".into(),
                token: Secret::new(t),
            }))
            .unwrap()
        };
        let global = |email: &str, key: &str| {
            Cloudflare::new(CloudflareConfig::new(CloudflareAuth::GlobalKey {
                email: email.into(),
                key: Secret::new(key),
            }))
            .unwrap()
        };
        let limiter = |c: &Cloudflare| Arc::clone(c.api().limiter().unwrap());
        assert!(Arc::ptr_eq(
            &limiter(&token("cf-budget-a")),
            &limiter(&token("cf-budget-a"))
        ));
        assert!(!Arc::ptr_eq(
            &limiter(&token("cf-budget-a")),
            &limiter(&token("cf-budget-b"))
        ));
        let key = limiter(&global("ops@example.com", "cf-budget-key"));
        assert!(Arc::ptr_eq(
            &key,
            &limiter(&global("ops@example.com", "cf-budget-key"))
        ));
        assert!(!Arc::ptr_eq(
            &key,
            &limiter(&global("dev@example.com", "cf-budget-key"))
        ));
    }
}
