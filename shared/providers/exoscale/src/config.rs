//! How one Exoscale account and zone is reached.

use std::time::Duration;

use flotilla_cloud::http::{RateLimit, RetryPolicy};
use flotilla_spec::Secret;

/// The public API, one endpoint per zone; `{zone}` is replaced by [`ExoscaleConfig::zone`].
pub const DEFAULT_BASE_URL: &str = "https://api-{zone}.exoscale.com/v2";

/// Exoscale publishes no request rate for API v2; this stays well below what its SDKs are seen to sustain.
pub const DEFAULT_RATE: RateLimit = RateLimit::per_second(10);

/// Root disk of a new instance, in GiB, unless [`ExoscaleConfig::disk_size_gib`] says otherwise.
pub const DEFAULT_DISK_SIZE_GIB: u32 = 50;

/// One Exoscale account in one zone. `Debug` never shows the key or the secret.
#[derive(Clone)]
pub struct ExoscaleConfig {
    /// API base URL; `None` for [`DEFAULT_BASE_URL`]. May hold a `{zone}` placeholder, or be fixed (the
    /// simulator).
    pub base_url: Option<String>,
    /// The zone, e.g. `ch-gva-2`: the API is zone-local, so machines, networks and firewalls live here.
    pub zone: String,
    /// API key (`EXO…`).
    pub api_key: Secret,
    /// API secret.
    pub api_secret: Secret,
    /// Request rate.
    pub rate: RateLimit,
    /// How failed calls are retried.
    pub retry: RetryPolicy,
    /// How asynchronous operations are waited for.
    pub polling: OperationPolling,
    /// Root disk of new instances, in GiB (Exoscale requires one; at least 10).
    pub disk_size_gib: u32,
}

impl ExoscaleConfig {
    /// The public API of `zone` with default rate, retries, polling and disk size.
    pub fn new(zone: impl Into<String>, api_key: impl Into<Secret>, api_secret: impl Into<Secret>) -> Self {
        Self {
            base_url: None,
            zone: zone.into(),
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            rate: DEFAULT_RATE,
            retry: RetryPolicy::default(),
            polling: OperationPolling::default(),
            disk_size_gib: DEFAULT_DISK_SIZE_GIB,
        }
    }

    /// The same, against `base_url` (the simulator, or another endpoint).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// The base URL with the zone filled in.
    pub fn resolved_base_url(&self) -> String {
        self.base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE_URL)
            .replace("{zone}", &self.zone)
    }
}

impl std::fmt::Debug for ExoscaleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExoscaleConfig")
            .field("base_url", &self.resolved_base_url())
            .field("zone", &self.zone)
            .field("api_key", &"<redacted>")
            .field("api_secret", &"<redacted>")
            .field("rate", &self.rate)
            .field("retry", &self.retry)
            .field("polling", &self.polling)
            .field("disk_size_gib", &self.disk_size_gib)
            .finish()
    }
}

/// How an operation (what every Exoscale mutation returns) is polled until it settles: a short first delay
/// that grows up to a ceiling, within a total bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationPolling {
    /// Delay before the first poll.
    pub first_delay: Duration,
    /// Longest delay between polls.
    pub max_delay: Duration,
    /// Longest total wait; past it the operation is reported as still pending (retryable).
    pub timeout: Duration,
}

impl Default for OperationPolling {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_placeholder_and_redaction() {
        let c = ExoscaleConfig::new("ch-gva-2", "EXOkey123", "very-secret");
        assert_eq!(c.resolved_base_url(), "https://api-ch-gva-2.exoscale.com/v2");
        let fixed = c.clone().with_base_url("http://127.0.0.1:9000/exoscale/v2");
        assert_eq!(fixed.resolved_base_url(), "http://127.0.0.1:9000/exoscale/v2");
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("very-secret") && !debug.contains("EXOkey123"),
            "{debug}"
        );
    }
}
