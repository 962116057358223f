//! Settings for building datastore clients: endpoint overrides, retries, timeouts, list page size.

use std::{collections::BTreeMap, time::Duration};

use backon::ExponentialBuilder;

/// How the clients of a [`DatastoreSet`](crate::DatastoreSet) are built. [`Default`] suits the real
/// providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreOptions {
    /// URLs that replace endpoints' host bases, by position in the region's list (0 = endpoint 1):
    /// for the simulator or test servers, e.g. `{0: "http://127.0.0.1:9000"}`. An overridden endpoint
    /// keeps its region string and is addressed path-style (see
    /// [`EndpointConfig::with_url`](crate::EndpointConfig::with_url)).
    pub endpoint_overrides: BTreeMap<usize, String>,
    /// How each request is retried.
    pub retry: RetryPolicy,
    /// Longest wait for a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Longest time one try of a request may take, from sending it to having read the whole response,
    /// when no body is involved; a try that takes longer is abandoned as a (retryable) timeout.
    pub request_timeout: Duration,
    /// Bytes per second a transfer is allowed to be as slow as: a try that uploads or downloads `n`
    /// bytes gets `n / min_transfer_rate` seconds on top of `request_timeout` (0: no allowance).
    pub min_transfer_rate: u64,
    /// Keys asked for per `ListObjectsV2` page (S3's maximum is 1000).
    pub list_page_size: i32,
}

impl Default for DatastoreOptions {
    fn default() -> Self {
        Self {
            endpoint_overrides: BTreeMap::new(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            min_transfer_rate: 256 * 1024,
            list_page_size: 1000,
        }
    }
}

impl DatastoreOptions {
    /// Adds an endpoint override: endpoint `index` (0 = endpoint 1) is reached at `url` instead.
    pub fn with_override(mut self, index: usize, url: impl Into<String>) -> Self {
        self.endpoint_overrides.insert(index, url.into());
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// How a request that failed in a retryable way (timeout, unreachable endpoint, 5xx, throttling) is
/// retried: up to `attempts` tries in all, with exponentially growing delays (doubling from
/// `min_delay`, capped at `max_delay`, each plus a random jitter of up to itself). Other failures are
/// returned at once. The SDK's own retries are turned off, so these are the only ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (0 counts as 1).
    pub attempts: usize,
    /// Delay before the second try.
    pub min_delay: Duration,
    /// Longest delay between two tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 tries, 250 ms doubling up to 4 s: at most about 7.5 s of waiting.
    fn default() -> Self {
        Self {
            attempts: 5,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// A policy of `attempts` tries with delays from `min_delay` up to `max_delay`.
    pub const fn new(attempts: usize, min_delay: Duration, max_delay: Duration) -> Self {
        Self {
            attempts,
            min_delay,
            max_delay,
        }
    }

    /// One try only.
    pub const fn none() -> Self {
        Self::new(1, Duration::ZERO, Duration::ZERO)
    }

    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_factor(2.0)
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
            .with_jitter_seed(random_seed())
    }
}

/// A seed that differs between processes and calls, so that clients retrying at the same moment
/// spread out (backon's jitter has a fixed seed without its `std` feature).
fn random_seed() -> u64 {
    use std::{
        hash::{BuildHasher, RandomState},
        sync::atomic::{AtomicU64, Ordering},
    };
    static CALLS: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(CALLS.fetch_add(1, Ordering::Relaxed))
}
