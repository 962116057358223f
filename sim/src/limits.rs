//! Rate limits per credential (sliding windows) and the request counters an operator or a test reads.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Provider, RateRule};

/// Where a credential stands against its tightest rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    /// The rule's limit.
    pub limit: u32,
    /// Requests left in the window.
    pub remaining: u32,
    /// Seconds until the oldest counted request leaves the window.
    pub reset_secs: u64,
}

/// Sliding-window request logs per provider, credential and rule.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    windows: HashMap<(Provider, String, bool, usize), VecDeque<Instant>>,
}

impl Limiter {
    /// Counts a request against `rules` (the `creates` set when `creates`); `Err(retry_after_secs)` when
    /// a rule is exhausted (the request is then not counted).
    pub fn check(
        &mut self,
        provider: Provider,
        credential: &str,
        creates: bool,
        rules: &[RateRule],
        now: Instant,
    ) -> Result<Option<Standing>, u64> {
        let mut tightest: Option<Standing> = None;
        for (i, rule) in rules.iter().enumerate() {
            let log = self
                .windows
                .entry((provider, credential.to_owned(), creates, i))
                .or_default();
            while log.front().is_some_and(|t| now.duration_since(*t) >= rule.per) {
                log.pop_front();
            }
            let used = u32::try_from(log.len()).unwrap_or(u32::MAX);
            if used >= rule.requests {
                let wait = log
                    .front()
                    .map(|t| rule.per.saturating_sub(now.duration_since(*t)))
                    .unwrap_or(rule.per);
                return Err(ceil_secs(wait));
            }
        }
        for (i, rule) in rules.iter().enumerate() {
            let log = self
                .windows
                .entry((provider, credential.to_owned(), creates, i))
                .or_default();
            log.push_back(now);
            let used = u32::try_from(log.len()).unwrap_or(u32::MAX);
            let reset = log
                .front()
                .map(|t| rule.per.saturating_sub(now.duration_since(*t)))
                .unwrap_or(rule.per);
            let standing = Standing {
                limit: rule.requests,
                remaining: rule.requests.saturating_sub(used),
                reset_secs: ceil_secs(reset),
            };
            if tightest.is_none_or(|t| standing.remaining < t.remaining) {
                tightest = Some(standing);
            }
        }
        Ok(tightest)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// What one credential has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialCounters {
    /// Authenticated requests received (every one, answered or refused).
    pub requests: u64,
    /// 429 answers sent (rate limits and storms).
    pub rate_limited: u64,
    /// Injected server errors sent.
    pub server_errors: u64,
    /// Creates failed by the `fail_creates` fault.
    pub failed_creates: u64,
}

/// What one provider's API has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCounters {
    /// Requests refused for bad or missing credentials.
    pub auth_failures: u64,
    /// Requests answered 503 because their region was down.
    pub region_down: u64,
    /// Per credential name.
    pub credentials: BTreeMap<String, CredentialCounters>,
}

impl ProviderCounters {
    /// Requests by every credential.
    pub fn requests(&self) -> u64 {
        self.credentials.values().map(|c| c.requests).sum()
    }

    /// 429s to every credential.
    pub fn rate_limited(&self) -> u64 {
        self.credentials.values().map(|c| c.rate_limited).sum()
    }
}

/// Request counters of every provider, as `GET /counters` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Per provider.
    pub providers: BTreeMap<Provider, ProviderCounters>,
}

impl Counters {
    /// The counters of `provider`.
    pub fn provider(&self, provider: Provider) -> ProviderCounters {
        self.providers.get(&provider).cloned().unwrap_or_default()
    }

    pub(crate) fn of(&mut self, provider: Provider) -> &mut ProviderCounters {
        self.providers.entry(provider).or_default()
    }

    pub(crate) fn credential(&mut self, provider: Provider, name: &str) -> &mut CredentialCounters {
        self.of(provider).credentials.entry(name.to_owned()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_slide() {
        let mut l = Limiter::default();
        let rules = [RateRule::per_secs(2, 10)];
        let t0 = Instant::now();
        let s = l
            .check(Provider::Linode, "a", false, &rules, t0)
            .unwrap()
            .unwrap();
        assert_eq!((s.limit, s.remaining), (2, 1));
        assert!(l.check(Provider::Linode, "a", false, &rules, t0).is_ok());
        assert_eq!(
            l.check(Provider::Linode, "a", false, &rules, t0 + Duration::from_secs(3)),
            Err(7)
        );
        // Another credential has its own window.
        assert!(l.check(Provider::Linode, "b", false, &rules, t0).is_ok());
        assert!(
            l.check(Provider::Linode, "a", false, &rules, t0 + Duration::from_secs(10))
                .is_ok()
        );
    }
}
