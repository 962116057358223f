//! Fault injection: what can go wrong, per provider, and the state of what is going wrong now.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Provider;

/// One fault, as the admin API (`POST /faults`) and the `--fault` flag take it, e.g.
/// `{"provider":"linode","kind":"fail_creates","count":2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The provider it hits.
    pub provider: Provider,
    /// What goes wrong.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// The next `count` machine creates fail with a 500 in the provider's error shape (nothing is created).
    FailCreates {
        /// How many.
        count: u32,
    },
    /// The next `count` machines created are accepted but never boot: they stay provisioning (their
    /// provider's "new", "starting" or "pending" state) and never answer health checks, as a machine whose
    /// image or host fails does.
    NeverBoots {
        /// How many.
        count: u32,
    },
    /// Every authenticated request is answered 429 with `Retry-After: retry_after_secs`, for
    /// `duration_secs` or for `count` answers (whichever ends first; forever when neither is given).
    RateLimitStorm {
        /// The `Retry-After` sent.
        retry_after_secs: u64,
        /// How long the storm lasts.
        #[serde(default)]
        duration_secs: Option<u64>,
        /// How many 429s it sends.
        #[serde(default)]
        count: Option<u32>,
    },
    /// Every request waits this long before it is handled.
    Latency {
        /// Added delay.
        millis: u64,
    },
    /// The next `count` authenticated requests fail with `status` (default 503) in the provider's shape.
    ServerErrors {
        /// How many.
        count: u32,
        /// Status code (500–599; default 503).
        #[serde(default)]
        status: Option<u16>,
    },
    /// A whole region is down: API calls about it answer 503 (for Exoscale, the zone's whole endpoint)
    /// and its machines stop answering health checks.
    RegionDown {
        /// Provider region (zone) id.
        region: String,
    },
    /// The provider's S3 endpoint in `region` (its S3 region id: `gb-lon-1`, `ams3` …) is down: it closes
    /// every connection, open or new, until the fault is cleared.
    DatastoreDown {
        /// The S3 endpoint's region id.
        region: String,
    },
    /// One machine stops answering health checks (its listener closes).
    Unhealthy {
        /// The provider's machine id.
        machine_id: String,
    },
}

/// A rate-limit storm in progress.
#[derive(Debug, Clone)]
struct Storm {
    retry_after_secs: u64,
    until: Option<Instant>,
    remaining: Option<u32>,
}

/// The faults in force for one provider.
#[derive(Debug, Clone, Default)]
struct ProviderFaults {
    fail_creates: u32,
    never_boots: u32,
    storm: Option<Storm>,
    latency: Duration,
    server_errors: u32,
    server_error_status: u16,
    regions_down: BTreeSet<String>,
    datastores_down: BTreeSet<String>,
    unhealthy: BTreeSet<String>,
}

/// Every fault in force.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    by_provider: BTreeMap<Provider, ProviderFaults>,
}

/// The faults in force for one provider, as the admin API shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultsView {
    /// Creates still to fail.
    pub fail_creates: u32,
    /// Machines still to be created that will never boot.
    #[serde(default)]
    pub never_boots: u32,
    /// `Retry-After` of the storm in progress, if any.
    pub rate_limit_storm_retry_after_secs: Option<u64>,
    /// 429s the storm still sends, if limited by count.
    pub rate_limit_storm_remaining: Option<u32>,
    /// Added latency in milliseconds.
    pub latency_millis: u64,
    /// Server errors still to send.
    pub server_errors: u32,
    /// Regions down.
    pub regions_down: Vec<String>,
    /// S3 endpoints down (their region ids).
    pub datastores_down: Vec<String>,
    /// Machines that do not answer health checks.
    pub unhealthy: Vec<String>,
}

impl Faults {
    fn of(&mut self, provider: Provider) -> &mut ProviderFaults {
        self.by_provider.entry(provider).or_default()
    }

    /// Puts a fault in force (adding to what is already there).
    pub fn add(&mut self, fault: &Fault, now: Instant) {
        let f = self.of(fault.provider);
        match &fault.kind {
            FaultKind::FailCreates { count } => f.fail_creates = f.fail_creates.saturating_add(*count),
            FaultKind::NeverBoots { count } => f.never_boots = f.never_boots.saturating_add(*count),
            FaultKind::RateLimitStorm {
                retry_after_secs,
                duration_secs,
                count,
            } => {
                f.storm = Some(Storm {
                    retry_after_secs: *retry_after_secs,
                    until: duration_secs.and_then(|d| now.checked_add(Duration::from_secs(d))),
                    remaining: *count,
                })
            }
            FaultKind::Latency { millis } => f.latency = Duration::from_millis(*millis),
            FaultKind::ServerErrors { count, status } => {
                f.server_errors = f.server_errors.saturating_add(*count);
                f.server_error_status = status.filter(|s| (500..600).contains(s)).unwrap_or(503);
            }
            FaultKind::RegionDown { region } => {
                f.regions_down.insert(region.clone());
            }
            FaultKind::DatastoreDown { region } => {
                f.datastores_down.insert(region.clone());
            }
            FaultKind::Unhealthy { machine_id } => {
                f.unhealthy.insert(machine_id.clone());
            }
        }
    }

    /// Clears every fault of `provider`, or of every provider.
    pub fn clear(&mut self, provider: Option<Provider>) {
        match provider {
            Some(p) => {
                self.by_provider.remove(&p);
            }
            None => self.by_provider.clear(),
        }
    }

    /// The added latency.
    pub fn latency(&self, provider: Provider) -> Duration {
        self.by_provider
            .get(&provider)
            .map(|f| f.latency)
            .unwrap_or_default()
    }

    /// Whether `region` of `provider` is down.
    pub fn region_down(&self, provider: Provider, region: &str) -> bool {
        self.by_provider
            .get(&provider)
            .is_some_and(|f| f.regions_down.contains(region))
    }

    /// Whether the S3 endpoint of `provider` in `region` is down.
    pub fn datastore_down(&self, provider: Provider, region: &str) -> bool {
        self.by_provider
            .get(&provider)
            .is_some_and(|f| f.datastores_down.contains(region))
    }

    /// Whether machine `id` of `provider` was made unhealthy.
    pub fn unhealthy(&self, provider: Provider, id: &str) -> bool {
        self.by_provider
            .get(&provider)
            .is_some_and(|f| f.unhealthy.contains(id))
    }

    /// If a storm is in progress, counts one 429 and returns its `Retry-After`.
    pub fn storm_hit(&mut self, provider: Provider, now: Instant) -> Option<u64> {
        let f = self.by_provider.get_mut(&provider)?;
        let storm = f.storm.as_mut()?;
        let over = storm.until.is_some_and(|u| now >= u) || storm.remaining == Some(0);
        if over {
            f.storm = None;
            return None;
        }
        if let Some(r) = storm.remaining.as_mut() {
            *r -= 1;
        }
        Some(storm.retry_after_secs)
    }

    /// If server errors are pending, takes one and returns its status.
    pub fn take_server_error(&mut self, provider: Provider) -> Option<u16> {
        let f = self.by_provider.get_mut(&provider)?;
        if f.server_errors == 0 {
            return None;
        }
        f.server_errors -= 1;
        Some(f.server_error_status)
    }

    /// If creates are to fail, takes one.
    pub fn take_fail_create(&mut self, provider: Provider) -> bool {
        match self.by_provider.get_mut(&provider) {
            Some(f) if f.fail_creates > 0 => {
                f.fail_creates -= 1;
                true
            }
            _ => false,
        }
    }

    /// Whether the `never_boots` fault takes the machine being created now (counting it).
    pub fn take_never_boots(&mut self, provider: Provider) -> bool {
        match self.by_provider.get_mut(&provider) {
            Some(f) if f.never_boots > 0 => {
                f.never_boots -= 1;
                true
            }
            _ => false,
        }
    }

    /// What is in force, per provider.
    pub fn view(&self) -> BTreeMap<Provider, FaultsView> {
        self.by_provider
            .iter()
            .map(|(p, f)| {
                (
                    *p,
                    FaultsView {
                        fail_creates: f.fail_creates,
                        never_boots: f.never_boots,
                        rate_limit_storm_retry_after_secs: f.storm.as_ref().map(|s| s.retry_after_secs),
                        rate_limit_storm_remaining: f.storm.as_ref().and_then(|s| s.remaining),
                        latency_millis: u64::try_from(f.latency.as_millis()).unwrap_or(u64::MAX),
                        server_errors: f.server_errors,
                        regions_down: f.regions_down.iter().cloned().collect(),
                        datastores_down: f.datastores_down.iter().cloned().collect(),
                        unhealthy: f.unhealthy.iter().cloned().collect(),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_the_admin_shape() {
        let f: Fault =
            serde_json::from_str(r#"{"provider":"linode","kind":"fail_creates","count":2}"#).unwrap();
        assert_eq!(
            f,
            Fault {
                provider: Provider::Linode,
                kind: FaultKind::FailCreates { count: 2 }
            }
        );
        let f: Fault = serde_json::from_str(
            r#"{"provider":"digitalocean","kind":"rate_limit_storm","retry_after_secs":3,"count":2}"#,
        )
        .unwrap();
        let mut faults = Faults::default();
        let now = Instant::now();
        faults.add(&f, now);
        assert_eq!(faults.storm_hit(Provider::DigitalOcean, now), Some(3));
        assert_eq!(faults.storm_hit(Provider::DigitalOcean, now), Some(3));
        assert_eq!(faults.storm_hit(Provider::DigitalOcean, now), None);
        assert_eq!(faults.storm_hit(Provider::Linode, now), None);
    }

    #[test]
    fn storms_end_after_their_duration() {
        let mut faults = Faults::default();
        let now = Instant::now();
        faults.add(
            &Fault {
                provider: Provider::Vultr,
                kind: FaultKind::RateLimitStorm {
                    retry_after_secs: 1,
                    duration_secs: Some(5),
                    count: None,
                },
            },
            now,
        );
        assert_eq!(faults.storm_hit(Provider::Vultr, now), Some(1));
        assert_eq!(
            faults.storm_hit(Provider::Vultr, now + Duration::from_secs(6)),
            None
        );
    }
}
