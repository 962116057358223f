//! How one Cloudflare account is reached.

use std::time::Duration;

use flotilla_cloud::http::{RateLimit, RetryPolicy};
use flotilla_spec::CloudflareAuth;

/// The public API.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// Cloudflare's published limit: 1200 requests per five minutes per user.
pub const DEFAULT_RATE: RateLimit = RateLimit {
    requests: 1200,
    per: Duration::from_secs(300),
};

/// One Cloudflare account. `Debug` never shows the token or key.
#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    /// API base URL; `None` for [`DEFAULT_BASE_URL`] (the simulator sets its own).
    pub base_url: Option<String>,
    /// A scoped API token, or the legacy global key with the account email.
    pub auth: CloudflareAuth,
    /// Request rate.
    pub rate: RateLimit,
    /// How failed calls are retried.
    pub retry: RetryPolicy,
}

impl CloudflareConfig {
    /// The public API with `auth`, at Cloudflare's published rate.
    pub fn new(auth: CloudflareAuth) -> Self {
        Self {
            base_url: None,
            auth,
            rate: DEFAULT_RATE,
            retry: RetryPolicy::default(),
        }
    }

    /// The same, against `base_url`.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use flotilla_spec::Secret;

    use super::*;

    #[test]
    fn debug_hides_credentials() {
        let token = CloudflareConfig::new(CloudflareAuth::ApiToken {
            account_id: "acc".into(),
            token: Secret::new("tok-123"),
        });
        let key = CloudflareConfig::new(CloudflareAuth::GlobalKey {
            email: "ops@example.com".into(),
            key: Secret::new("global-456"),
        });
        assert!(!format!("{token:?}").contains("tok-123"));
        assert!(!format!("{key:?}").contains("global-456"));
    }
}
