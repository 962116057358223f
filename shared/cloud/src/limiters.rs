//! Rate budgets shared by every client of one provider account in the process.
//!
//! A provider counts requests per account, not per client. Services build adapters per command, so a rate
//! limiter per [`ApiClient`](crate::http::ApiClient) would hand every adapter the account's whole budget
//! (and a fresh burst). [`Limiters`] is the registry that makes them share: one governor limiter per
//! account (provider, API base URL, [`CredentialFingerprint`]), lane and rate, created on first use and kept
//! for the life of the registry — dropping the last client must not reset the budget, or an adapter built
//! for the next command would start with a full burst again.
//!
//! [`Limiters::global`] is the process-wide registry every client uses by default; [`Limiters::new`] makes
//! an isolated one (tests).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use governor::{DefaultDirectRateLimiter, RateLimiter};
use sha2::{Digest, Sha256};

use crate::ProviderKind;
use crate::http::RateLimit;

/// A SHA-256 of an account's credential: tells accounts apart without holding the secret. `Debug` shows
/// only its first four bytes; there is no `Display`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialFingerprint([u8; 32]);

impl CredentialFingerprint {
    /// The fingerprint of a credential made of `parts`: a token; an API key and its secret; an account email
    /// and its key. Each part is length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ.
    pub fn of(parts: &[&str]) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"flotilla-credential-v1");
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        Self(hash.finalize().into())
    }
}

impl std::fmt::Debug for CredentialFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sha256:")?;
        for byte in self.0.iter().take(4) {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("…")
    }
}

/// One provider account: the provider, its API base URL (normalised: `https://api.linode.com/v4` and
/// `https://API.linode.com/v4/` are the same) and the fingerprint of the credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountKey {
    provider: ProviderKind,
    base_url: String,
    credential: CredentialFingerprint,
}

impl AccountKey {
    /// The account reached at `base_url` with the credential `credential` was made from.
    pub fn new(provider: ProviderKind, base_url: &str, credential: CredentialFingerprint) -> Self {
        let base_url = match url::Url::parse(base_url.trim()) {
            Ok(mut url) => {
                if !url.path().ends_with('/') {
                    let path = format!("{}/", url.path());
                    url.set_path(&path);
                }
                url.to_string()
            }
            Err(_) => base_url.trim().to_owned(),
        };
        Self {
            provider,
            base_url,
            credential,
        }
    }

    /// The provider.
    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    /// The normalised API base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// What one limiter is shared by: an account, a lane within it, and the rate it was configured at (the same
/// account configured at two rates gets two limiters, so a limiter never runs at a rate it was not given).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BudgetKey {
    account: AccountKey,
    lane: String,
    rate: RateLimit,
}

/// A registry of rate limiters, one per account, lane and rate. Cheap to clone: clones share the registry.
#[derive(Clone, Default)]
pub struct Limiters {
    inner: Arc<Mutex<HashMap<BudgetKey, Arc<DefaultDirectRateLimiter>>>>,
}

static GLOBAL: LazyLock<Limiters> = LazyLock::new(Limiters::new);

impl Limiters {
    /// An empty, isolated registry (tests; a process that wants budgets apart from the global one).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry, used by [`ApiClient::new`](crate::http::ApiClient::new).
    pub fn global() -> Self {
        GLOBAL.clone()
    }

    /// The limiter of `account`'s `lane` at `rate`, created on first use and the same `Arc` afterwards;
    /// `None` when `rate` sets no limit (zero requests).
    ///
    /// Lanes separate budgets a provider counts separately within one account (Linode limits instance
    /// creates apart from everything else); `""` is the account's general budget.
    pub fn limiter(
        &self,
        account: &AccountKey,
        lane: &str,
        rate: RateLimit,
    ) -> Option<Arc<DefaultDirectRateLimiter>> {
        let quota = rate.quota()?;
        let key = BudgetKey {
            account: account.clone(),
            lane: lane.to_owned(),
            rate,
        };
        // Inserting cannot leave the map half-written: a poisoned lock still holds a consistent map.
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Some(Arc::clone(
            map.entry(key)
                .or_insert_with(|| Arc::new(RateLimiter::direct(quota))),
        ))
    }

    /// How many limiters the registry holds.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").field("limiters", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A burst of 2, refilled every 200 s: a third request inside a test would have to wait.
    const SLOW: RateLimit = RateLimit {
        requests: 20,
        per: Duration::from_secs(3600),
    };

    fn account(token: &str) -> AccountKey {
        AccountKey::new(
            ProviderKind::Linode,
            "https://api.linode.com/v4",
            CredentialFingerprint::of(&[token]),
        )
    }

    #[test]
    fn one_limiter_per_account_lane_and_rate() {
        let limiters = Limiters::new();
        let a = limiters.limiter(&account("tok-a"), "", SLOW).unwrap();
        let again = limiters.limiter(&account("tok-a"), "", SLOW).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let other_token = limiters.limiter(&account("tok-b"), "", SLOW).unwrap();
        assert!(!Arc::ptr_eq(&a, &other_token));
        let other_lane = limiters.limiter(&account("tok-a"), "creates", SLOW).unwrap();
        assert!(!Arc::ptr_eq(&a, &other_lane));
        let other_rate = limiters
            .limiter(&account("tok-a"), "", RateLimit::per_second(5))
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &other_rate));
        assert_eq!(limiters.len(), 4);
        assert!(
            limiters
                .limiter(&account("tok-a"), "", RateLimit::per_second(0))
                .is_none()
        );

        // The budget is shared: the burst spent through one handle is gone for the other.
        assert!(a.check().is_ok() && a.check().is_ok());
        assert!(again.check().is_err(), "the third request waits");
        assert!(other_token.check().is_ok(), "another account has its own budget");
    }

    #[test]
    fn registries_are_isolated_and_clones_share() {
        let one = Limiters::new();
        let two = Limiters::new();
        let a = one.limiter(&account("t"), "", SLOW).unwrap();
        let b = two.limiter(&account("t"), "", SLOW).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        let c = one.clone().limiter(&account("t"), "", SLOW).unwrap();
        assert!(Arc::ptr_eq(&a, &c));
        let g = Limiters::global()
            .limiter(&account("global-test-token"), "", SLOW)
            .unwrap();
        let h = Limiters::global()
            .limiter(&account("global-test-token"), "", SLOW)
            .unwrap();
        assert!(Arc::ptr_eq(&g, &h));
    }

    #[test]
    fn accounts_are_told_apart_by_provider_url_and_credential() {
        let fp = CredentialFingerprint::of(&["tok"]);
        let key = |p, u: &str| AccountKey::new(p, u, fp);
        assert_eq!(
            key(ProviderKind::Linode, "https://api.linode.com/v4"),
            key(ProviderKind::Linode, "https://API.linode.com/v4/")
        );
        assert_ne!(
            key(ProviderKind::Linode, "https://api.linode.com/v4"),
            key(ProviderKind::Linode, "http://127.0.0.1:9000/v4")
        );
        assert_ne!(
            key(ProviderKind::Linode, "https://x/v2"),
            key(ProviderKind::Vultr, "https://x/v2")
        );
        assert_ne!(
            CredentialFingerprint::of(&["ab", "c"]),
            CredentialFingerprint::of(&["a", "bc"])
        );
    }

    #[test]
    fn fingerprints_never_show_the_secret() {
        let fp = CredentialFingerprint::of(&["sk-live-123"]);
        let key = AccountKey::new(ProviderKind::DigitalOcean, "https://api.digitalocean.com/v2", fp);
        let debug = format!("{key:?}");
        assert!(
            !debug.contains("sk-live-123") && debug.contains("sha256:"),
            "{debug}"
        );
    }
}
