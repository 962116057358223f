//! The sync service's settings (`[service]` in its configuration): which role this process plays — the
//! control plane's replicator, or one webserver's agent — and the rules both follow.

use std::path::PathBuf;
use std::time::Duration;

use flotilla_bus::TopologyConfig;
use flotilla_runtime::deployments::LoopSettings;
use serde::Deserialize;

use crate::plan::{Compare, ConflictRule, Rules};

/// Which of the service's two roles this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The control plane's replicator: keeps each deployment's buckets equal across its regions'
    /// datastores, and takes and restores backups.
    #[default]
    Replicator,
    /// One webserver's agent: keeps its webroot and its region's datastore in step (`[service.agent]`).
    Agent,
}

/// The sync service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The role of this process.
    pub role: Role,
    /// How often every deployment's buckets are compared even when nothing was announced (the safety
    /// net, not the mechanism): by their stamps, so a side nobody stamped since it was last listed is not
    /// listed again.
    #[serde(with = "humantime_serde")]
    pub resync_interval: Duration,
    /// How often every side is listed whatever its stamp says (a change by a writer that left no stamp —
    /// one killed between its write and its stamp, a tool outside Flotilla — is found within this).
    #[serde(with = "humantime_serde")]
    pub full_compare_interval: Duration,
    /// How many objects a pass copies or deletes at once.
    pub transfers: usize,
    /// Changes within this window are carried together.
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// How long a replicator replica's hold on a deployment lasts unless renewed.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How versions are compared.
    pub compare: Compare,
    /// What happens to a file changed on both sides since the last pass.
    pub conflict: ConflictRule,
    /// At most this many deletions per side per pass…
    pub max_delete: usize,
    /// …and at most this share (percent) of a side's objects.
    pub max_delete_percent: u8,
    /// Keep objects about to be overwritten or deleted under `<prefix><time>/<key>` first (none: not
    /// kept).
    pub backup_prefix: Option<String>,
    /// Objects larger than this are copied part by part (at least 5 MiB).
    pub part_size: u64,
    /// The agent's settings (with `role = "agent"`).
    pub agent: Option<AgentSettings>,
    /// Webroot backups (the replicator takes them).
    pub backups: BackupSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            role: Role::Replicator,
            resync_interval: Duration::from_secs(60),
            full_compare_interval: Duration::from_secs(600),
            transfers: crate::replicate::TRANSFERS,
            debounce: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(30),
            compare: Compare::SizeAndTime,
            conflict: ConflictRule::KeepLoserRenamed,
            max_delete: 1000,
            max_delete_percent: 50,
            backup_prefix: None,
            part_size: 8 * 1024 * 1024,
            agent: None,
            backups: BackupSettings::default(),
        }
    }
}

/// One webserver's agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// The deployment.
    pub deployment: String,
    /// The region (its datastore endpoint 1 is the one the agent reads and writes).
    pub region: String,
    /// This machine's resource id (in events and status).
    pub machine: String,
    /// The webroot watched and written.
    pub webroot: PathBuf,
    /// Paths left alone, as globs relative to the webroot (the application's configuration file, asset
    /// directories mounted from the datastore, temporary files): neither pushed, nor pulled, nor deleted.
    #[serde(default = "default_excludes")]
    pub excludes: Vec<String>,
}

/// What an agent leaves alone unless told otherwise: editors' and the agent's own temporary files.
pub fn default_excludes() -> Vec<String> {
    ["**/*.tmp", "**/*.swp", "**/*~", "**/.#*"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Webroot backups.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// Take the original toolkit's scheduled backups (hourly at minute 2, daily 02:30, weekly on Sunday
    /// 03:30, monthly on the 1st 04:30, bimonthly on the 1st of odd months 05:30, UTC).
    pub scheduled: bool,
    /// How many archives are kept per period (`manual`, `hourly`, `daily`, `weekly`, `monthly`,
    /// `bimonthly`); a period not named keeps 7.
    pub keep: std::collections::BTreeMap<String, usize>,
    /// How often endpoints that missed an archive are tried again.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            scheduled: true,
            keep: [
                ("manual", 10),
                ("hourly", 24),
                ("daily", 7),
                ("weekly", 4),
                ("monthly", 12),
                ("bimonthly", 6),
            ]
            .into_iter()
            .map(|(p, n)| (p.to_owned(), n))
            .collect(),
            retry_interval: Duration::from_secs(30),
        }
    }
}

impl BackupSettings {
    /// How many archives of `period` are kept.
    pub fn keep(&self, period: &str) -> usize {
        self.keep.get(period).copied().unwrap_or(7)
    }
}

impl Settings {
    /// The loop's timing.
    pub fn loop_settings(&self) -> LoopSettings {
        LoopSettings {
            resync: self.resync_interval,
            debounce: self.debounce,
            lease_ttl: self.lease_ttl,
        }
    }

    /// The rules of a pass.
    pub fn rules(&self) -> Rules {
        Rules {
            compare: self.compare,
            conflict: self.conflict,
            max_delete: self.max_delete,
            max_delete_percent: self.max_delete_percent,
            backup_prefix: self.backup_prefix.clone(),
            transfers: self.transfers,
        }
    }
}

impl flotilla_runtime::ServiceSettings for Settings {
    fn validate(&self, bus: &TopologyConfig) -> Result<(), String> {
        if self.max_delete_percent > 100 {
            return Err("max_delete_percent must be at most 100".into());
        }
        if self.part_size < flotilla_datastore::MIN_PART_SIZE {
            return Err(format!(
                "part_size must be at least {} bytes (S3's smallest part)",
                flotilla_datastore::MIN_PART_SIZE
            ));
        }
        if !(1..=256).contains(&self.transfers) {
            return Err("transfers must be between 1 and 256".into());
        }
        if self.full_compare_interval < self.resync_interval {
            return Err("full_compare_interval must be at least resync_interval".into());
        }
        if self.backups.retry_interval.is_zero() {
            return Err("backups.retry_interval must be positive".into());
        }
        if let Some(prefix) = &self.backup_prefix
            && (prefix.is_empty() || prefix.starts_with('/'))
        {
            return Err("backup_prefix must be a non-empty key prefix such as `.flotilla-backup/`".into());
        }
        match (self.role, &self.agent) {
            (Role::Agent, None) => {
                return Err(
                    "role = \"agent\" needs [service.agent] (deployment, region, machine, webroot)".into(),
                );
            }
            (Role::Agent, Some(agent)) => {
                for (what, value) in [
                    ("deployment", &agent.deployment),
                    ("region", &agent.region),
                    ("machine", &agent.machine),
                ] {
                    flotilla_bus::subject::check_token(what, value)
                        .map_err(|e| format!("agent.{what}: {e}"))?;
                }
                crate::local::Excludes::new(&agent.excludes).map_err(|e| format!("agent.excludes: {e}"))?;
            }
            (Role::Replicator, _) => {}
        }
        self.loop_settings().validate(bus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sync service's block of `compose/flotilla.example.toml`, uncommented.
    fn example() -> String {
        let text = include_str!("../../../compose/flotilla.example.toml");
        let start = text
            .find("# The sync service's")
            .unwrap_or_else(|| panic!("the example has no sync block"));
        text[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('#') && !l.trim_start_matches('#').trim().is_empty())
            .map(|l| {
                let l = l.trim_start_matches('#').trim_start();
                // A trailing comment after a value (two spaces, then `#`).
                match l.find("  #") {
                    Some(at) => l[..at].trim_end().to_owned(),
                    None => l.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_example_configuration_is_what_the_service_reads() {
        #[derive(Deserialize)]
        struct File {
            service: Settings,
        }
        let text = example();
        let file: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let s = file.service;
        assert_eq!(s.role, Role::Replicator);
        assert_eq!(s.backup_prefix.as_deref(), Some(".flotilla-backup/"));
        assert_eq!(s.backups.keep("daily"), 7);
        let agent = s.agent.clone().unwrap_or_else(|| panic!("no agent block"));
        assert_eq!(agent.webroot, PathBuf::from("/var/www/html"));
        assert!(crate::local::Excludes::new(&agent.excludes).is_ok());
        use flotilla_runtime::ServiceSettings;
        assert_eq!(s.validate(&TopologyConfig::default()), Ok(()));
        let agent_role = Settings {
            role: Role::Agent,
            ..s.clone()
        };
        assert_eq!(agent_role.validate(&TopologyConfig::default()), Ok(()));
        let missing = Settings {
            role: Role::Agent,
            agent: None,
            ..s
        };
        assert!(missing.validate(&TopologyConfig::default()).is_err());
    }
}
