//! The autoscaler's settings (`[service]` in its configuration).

use std::time::Duration;

use flotilla_bus::TopologyConfig;
use serde::Deserialize;

/// How one role's machines are probed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Probe {
    /// Port of the health check, on the machine's public address.
    pub port: u16,
    /// Path of the health check.
    pub path: String,
    /// Time between two checks of one machine (a machine not judged yet — new, or just seen — is checked
    /// every second until it is).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long one check may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive good checks that make an unhealthy (or new) machine healthy.
    pub healthy_threshold: u32,
    /// Consecutive failed checks that make a healthy machine unhealthy.
    pub unhealthy_threshold: u32,
    /// Time after a machine was created during which failed checks do not count (it is booting).
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Consecutive failed checks after which an unhealthy machine is replaced (0: never replaced).
    pub replace_after: u32,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            port: 80,
            path: "/".into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            grace: Duration::from_secs(300),
            replace_after: 3,
        }
    }
}

impl Probe {
    fn validate(&self, role: &str) -> Result<(), String> {
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Err(format!("probe.{role}: interval and timeout must be positive"));
        }
        if self.timeout > self.interval {
            return Err(format!(
                "probe.{role}: timeout {:?} is longer than the interval {:?}",
                self.timeout, self.interval
            ));
        }
        if self.healthy_threshold == 0 || self.unhealthy_threshold == 0 {
            return Err(format!("probe.{role}: thresholds must be at least 1"));
        }
        if self.replace_after != 0 && self.replace_after < self.unhealthy_threshold {
            return Err(format!(
                "probe.{role}: replace_after {} is below unhealthy_threshold {}: a machine would be replaced before \
                 it is unhealthy",
                self.replace_after, self.unhealthy_threshold
            ));
        }
        if !self.path.starts_with('/') {
            return Err(format!("probe.{role}: path {:?} must start with '/'", self.path));
        }
        Ok(())
    }
}

/// Probe settings per role that serves something.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Probes {
    /// Webservers.
    pub webserver: Probe,
    /// Reverse proxies.
    pub reverse_proxy: Probe,
    /// Authenticators.
    pub authenticator: Probe,
}

impl Probes {
    /// The settings of `role` (`webserver`, `reverse-proxy`, `authenticator`); `None` for a role that is not
    /// probed (the database machine, autoscaler machines).
    pub fn of(&self, role: &str) -> Option<&Probe> {
        match role {
            "webserver" => Some(&self.webserver),
            "reverse-proxy" => Some(&self.reverse_proxy),
            "authenticator" => Some(&self.authenticator),
            _ => None,
        }
    }

    /// The same settings for every role.
    pub fn all(probe: Probe) -> Self {
        Self {
            webserver: probe.clone(),
            reverse_proxy: probe.clone(),
            authenticator: probe,
        }
    }
}

/// The autoscaler's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Health checks, per role.
    pub probe: Probes,
    /// Checks in flight at once, over every region this instance leads.
    pub max_concurrent_probes: usize,
    /// How long a region's leadership outlives an instance that stops renewing it (renewed every third of
    /// it): after a crash, another replica takes the region over within this time.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How often a region's leader looks at it even when nothing changed (a safety net: changes wake it at
    /// once).
    #[serde(with = "humantime_serde")]
    pub resync_interval: Duration,
    /// How long machines picked for scale-in drain (out of DNS, reported unhealthy) before they are
    /// destroyed.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// How long an action may take before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub action_timeout: Duration,
    /// First back-off after a failed action; doubled with each failure in a row.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest back-off.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Activities kept per region for `explain`.
    pub activities_kept: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            probe: Probes::default(),
            max_concurrent_probes: 64,
            lease_ttl: Duration::from_secs(15),
            resync_interval: Duration::from_secs(10),
            drain_delay: Duration::from_secs(30),
            action_timeout: Duration::from_secs(20 * 60),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(10 * 60),
            activities_kept: 20,
        }
    }
}

impl flotilla_runtime::ServiceSettings for Settings {
    fn validate(&self, bus: &TopologyConfig) -> Result<(), String> {
        for (role, probe) in [
            ("webserver", &self.probe.webserver),
            ("reverse_proxy", &self.probe.reverse_proxy),
            ("authenticator", &self.probe.authenticator),
        ] {
            probe.validate(role)?;
        }
        if self.max_concurrent_probes == 0 {
            return Err("max_concurrent_probes must be at least 1".into());
        }
        for (name, value) in [
            ("lease_ttl", self.lease_ttl),
            ("resync_interval", self.resync_interval),
            ("action_timeout", self.action_timeout),
            ("backoff_base", self.backoff_base),
            ("backoff_max", self.backoff_max),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be positive"));
            }
        }
        if self.lease_ttl < Duration::from_secs(3) {
            return Err(format!(
                "lease_ttl {:?} is too short: it is renewed every third of it (at least 3s)",
                self.lease_ttl
            ));
        }
        if self.lease_ttl > bus.lease_max_age {
            return Err(format!(
                "lease_ttl {:?} exceeds bus.lease_max_age {:?}: the lease bucket would drop a held lease",
                self.lease_ttl, bus.lease_max_age
            ));
        }
        if self.backoff_base > self.backoff_max {
            return Err("backoff_base is longer than backoff_max".into());
        }
        if self.activities_kept == 0 {
            return Err("activities_kept must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use flotilla_runtime::ServiceSettings;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        let bus = TopologyConfig::default();
        Settings::default().validate(&bus).unwrap();
        let bad = |f: fn(&mut Settings)| {
            let mut s = Settings::default();
            f(&mut s);
            s.validate(&bus).unwrap_err()
        };
        assert!(bad(|s| s.probe.webserver.interval = Duration::ZERO).contains("probe.webserver"));
        assert!(bad(|s| s.probe.reverse_proxy.timeout = Duration::from_secs(60)).contains("timeout"));
        assert!(bad(|s| s.probe.authenticator.replace_after = 1).contains("replace_after"));
        assert!(bad(|s| s.lease_ttl = Duration::from_secs(7200)).contains("lease_max_age"));
        assert!(bad(|s| s.resync_interval = Duration::ZERO).contains("resync_interval"));
        assert!(bad(|s| s.max_concurrent_probes = 0).contains("max_concurrent_probes"));
    }
}
