//! Machine health: the one prober of the system. [`Tracker`] turns check results into health with
//! thresholds and a grace period after boot (a pure state machine); [`check`] makes one HTTP check.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::settings::Probe;

/// What one check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Whether it answered 2xx in time.
    pub ok: bool,
    /// What it answered (`200 OK`) or why not (`connection refused`, `timed out after 2s`).
    pub reason: String,
    /// When the check ended.
    pub at: DateTime<Utc>,
}

/// A machine's health as judged so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// `None` until the thresholds say either way.
    pub healthy: Option<bool>,
    /// Good checks in a row.
    pub successes: u32,
    /// Failed checks in a row (not counting those in the grace period of a machine never healthy).
    pub failures: u32,
    /// Since when in this state.
    pub since: DateTime<Utc>,
    /// What the last check saw.
    pub last: Option<Observation>,
}

/// Health per machine, by resource id.
#[derive(Debug, Default)]
pub struct Tracker {
    machines: HashMap<String, Judged>,
}

impl Tracker {
    /// Takes a check's result for `resource_id` (created at `created_at`), judged by `probe`'s thresholds.
    /// Returns the machine's judgement when its health changed.
    pub fn observe(
        &mut self,
        resource_id: &str,
        created_at: DateTime<Utc>,
        probe: &Probe,
        observation: Observation,
    ) -> Option<Judged> {
        let at = observation.at;
        let judged = self
            .machines
            .entry(resource_id.to_owned())
            .or_insert_with(|| Judged {
                healthy: None,
                successes: 0,
                failures: 0,
                since: at,
                last: None,
            });
        let before = judged.healthy;
        if observation.ok {
            judged.successes = judged.successes.saturating_add(1);
            judged.failures = 0;
            if judged.healthy != Some(true) && judged.successes >= probe.healthy_threshold {
                judged.healthy = Some(true);
            }
        } else {
            judged.successes = 0;
            let grace_ends = chrono::Duration::from_std(probe.grace)
                .ok()
                .and_then(|g| created_at.checked_add_signed(g));
            let booting = judged.healthy.is_none() && grace_ends.is_none_or(|end| at < end);
            if !booting {
                judged.failures = judged.failures.saturating_add(1);
            }
            if judged.healthy != Some(false) && judged.failures >= probe.unhealthy_threshold {
                judged.healthy = Some(false);
            }
        }
        judged.last = Some(observation);
        if judged.healthy != before {
            judged.since = at;
            Some(judged.clone())
        } else {
            None
        }
    }

    /// A machine's judgement, if it was checked.
    pub fn get(&self, resource_id: &str) -> Option<&Judged> {
        self.machines.get(resource_id)
    }

    /// Forgets machines no longer in the fleet.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.machines.retain(|id, _| keep(id));
    }
}

/// Checks `http://<address>:<port><path>` once.
pub async fn check(http: &reqwest::Client, address: &str, probe: &Probe) -> Observation {
    let url = format!("http://{address}:{}{}", probe.port, probe.path);
    let result = tokio::time::timeout(probe.timeout, http.get(&url).send()).await;
    let (ok, reason) = match result {
        Err(_) => (false, format!("timed out after {}", humantime(probe.timeout))),
        Ok(Err(e)) => (false, describe(e)),
        Ok(Ok(response)) => {
            let status = response.status();
            (status.is_success(), status.to_string())
        }
    };
    Observation {
        ok,
        reason,
        at: Utc::now(),
    }
}

fn describe(e: reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or unreachable".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        // No URL in the text: it is the machine's address, already in the record.
        e.without_url().to_string()
    }
}

fn humantime(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn probe() -> Probe {
        Probe {
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            grace: Duration::from_secs(60),
            ..Probe::default()
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    fn obs(ok: bool, secs: i64) -> Observation {
        Observation {
            ok,
            reason: if ok { "200 OK" } else { "connection refused" }.into(),
            at: at(secs),
        }
    }

    #[test]
    fn thresholds_decide_and_only_changes_are_reported() {
        let mut t = Tracker::default();
        let p = probe();
        assert_eq!(
            t.observe("m", at(0), &p, obs(true, 100)),
            None,
            "one good check is not enough"
        );
        let healthy = t.observe("m", at(0), &p, obs(true, 105)).unwrap();
        assert_eq!(healthy.healthy, Some(true));
        assert_eq!(
            t.observe("m", at(0), &p, obs(true, 110)),
            None,
            "no change, no report"
        );
        assert_eq!(
            t.observe("m", at(0), &p, obs(false, 115)),
            None,
            "one failure is not enough"
        );
        let sick = t.observe("m", at(0), &p, obs(false, 120)).unwrap();
        assert_eq!((sick.healthy, sick.failures), (Some(false), 2));
        assert_eq!(sick.since, at(120));
        assert_eq!(t.observe("m", at(0), &p, obs(false, 125)), None);
        assert_eq!(
            t.get("m").unwrap().failures,
            3,
            "failures keep counting for replacement"
        );
        assert_eq!(t.observe("m", at(0), &p, obs(true, 130)), None);
        assert_eq!(
            t.observe("m", at(0), &p, obs(true, 135)).unwrap().healthy,
            Some(true)
        );
    }

    #[test]
    fn a_booting_machine_is_not_failed_during_its_grace_period() {
        let mut t = Tracker::default();
        let p = probe();
        for s in [10, 20, 30, 40, 50] {
            assert_eq!(t.observe("m", at(0), &p, obs(false, s)), None, "booting");
        }
        assert_eq!(t.get("m").unwrap().failures, 0);
        // Past the grace period, failures count.
        assert_eq!(t.observe("m", at(0), &p, obs(false, 61)), None);
        assert_eq!(
            t.observe("m", at(0), &p, obs(false, 66)).unwrap().healthy,
            Some(false)
        );
        // A machine once healthy gets no grace again.
        let mut t = Tracker::default();
        t.observe("n", at(0), &p, obs(true, 1));
        t.observe("n", at(0), &p, obs(true, 2));
        t.observe("n", at(0), &p, obs(false, 3));
        assert_eq!(
            t.observe("n", at(0), &p, obs(false, 4)).unwrap().healthy,
            Some(false)
        );
    }

    #[tokio::test]
    async fn a_check_says_what_it_saw() {
        let http = reqwest::Client::new();
        // Nothing listens on port 9 of the loopback.
        let p = Probe {
            port: 9,
            timeout: Duration::from_secs(2),
            ..Probe::default()
        };
        let seen = check(&http, "127.0.0.1", &p).await;
        assert!(!seen.ok);
        assert!(!seen.reason.is_empty(), "{seen:?}");
    }
}
