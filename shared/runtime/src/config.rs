//! Layered configuration: defaults → file → environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use flotilla_bus::{BusConfig, ConsumerConfig, PublishConfig, TopologyConfig};
use flotilla_cloud::settings::CloudSettings;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Prefix of configuration environment variables: `FLOTILLA__NATS__URLS=nats://a:4222,nats://b:4222`.
pub const ENV_PREFIX: &str = "FLOTILLA";

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or does not fit the schema.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range or inconsistent.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directives (`info`, `flotilla_bus=debug,info`); `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            filter: "info".into(),
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin HTTP endpoints; the service's default port on 127.0.0.1 when unset; port 0 picks
    /// a free one.
    pub listen: Option<SocketAddr>,
    /// Turns the admin endpoints off.
    pub disabled: bool,
}

/// A service's own `[service]` settings: loaded with the rest of the configuration, and checked with it —
/// by `--check-config` too — so a value that parses but cannot work is refused before the service starts.
pub trait ServiceSettings: DeserializeOwned + Default + Send + Sync + 'static {
    /// Checks values that parse but cannot work, given the bus settings they must fit (a lease no longer
    /// than `bus.lease_max_age`, say). The message names the setting.
    fn validate(&self, bus: &TopologyConfig) -> Result<(), String> {
        let _ = bus;
        Ok(())
    }
}

/// No service-specific settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

impl ServiceSettings for NoSettings {}

/// Configuration of one service. `S` is the service's own `[service]` section.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig<S = NoSettings> {
    /// Directory for the service's SQLite database and other local state.
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://…` or `postgres://…`); a SQLite file in `data_dir` when unset.
    pub database_url: Option<String>,
    /// A file holding the password of `database_url`'s user (a mounted secret, a systemd credential), so
    /// that the URL itself holds none. Its first line is the password.
    pub database_password_file: Option<PathBuf>,
    /// File of local secrets (cloud credentials, S3 keys) written by `flotilla template import`, for the
    /// services that talk to clouds. It must exist and be private to its owner (mode 0600).
    pub secrets_file: Option<PathBuf>,
    /// `[nats]`: how to reach NATS.
    pub nats: BusConfig,
    /// `[bus]`: streams and buckets.
    pub bus: TopologyConfig,
    /// `[publish]`: publish retries.
    pub publish: PublishConfig,
    /// `[consumer]`: command consumption.
    pub consumer: ConsumerConfig,
    /// `[admin]`: admin HTTP.
    pub admin: AdminConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[clouds]`: endpoints and simulator credentials replacing the real providers (every service that
    /// talks to a cloud honours it).
    pub clouds: CloudSettings,
    /// `[service]`: settings of this service.
    pub service: S,
}

impl<S: Default> Default for ServiceConfig<S> {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./.flotilla"),
            database_url: None,
            database_password_file: None,
            secrets_file: None,
            nats: BusConfig::default(),
            bus: TopologyConfig::default(),
            publish: PublishConfig::default(),
            consumer: ConsumerConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            clouds: CloudSettings::default(),
            service: S::default(),
        }
    }
}

impl<S> std::fmt::Debug for ServiceConfig<S> {
    // The database URL may hold a password: show only its scheme.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let db = self
            .database_url
            .as_deref()
            .map(|u| format!("{}://<redacted>", u.split(':').next().unwrap_or("?")));
        f.debug_struct("ServiceConfig")
            .field("data_dir", &self.data_dir)
            .field("database_url", &db)
            .field("database_password_file", &self.database_password_file)
            .field("secrets_file", &self.secrets_file)
            .field("nats", &self.nats)
            .field("bus", &self.bus)
            .field("consumer", &self.consumer)
            .field("admin", &self.admin)
            .field("log", &self.log)
            .field("clouds", &self.clouds)
            .finish_non_exhaustive()
    }
}

impl<S: ServiceSettings> ServiceConfig<S> {
    /// Loads defaults, then `file` (when given; it must exist), then `FLOTILLA__…` environment variables,
    /// and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`ServiceConfig::load`], with the environment given explicitly (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                // Values stay strings until the schema says otherwise, so a password such as `0123`
                // arrives as written; lists are comma-separated strings (see the bus's deserializers).
                .try_parsing(false)
                .source(Some(env)),
        );
        let loaded: Self = builder.build()?.try_deserialize()?;
        loaded.validate()?;
        Ok(loaded)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.nats
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.consumer
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.bus
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.publish
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.publish.worst_case_span() >= self.bus.duplicate_window {
            return Err(ConfigError::Invalid(format!(
                "publish retries can span {:?}, longer than bus.duplicate_window {:?}: a late retry could store a second copy",
                self.publish.worst_case_span(),
                self.bus.duplicate_window
            )));
        }
        self.clouds.validate().map_err(ConfigError::Invalid)?;
        self.service
            .validate(&self.bus)
            .map_err(|e| ConfigError::Invalid(format!("service: {e}")))?;
        if let Some(path) = &self.secrets_file {
            check_secrets_file(path)?;
        }
        if let Some(url) = &self.database_url {
            flotilla_store::backend_of(url)
                .map_err(|e| ConfigError::Invalid(format!("database_url: {e}")))?;
        }
        match (&self.database_password_file, &self.database_url) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "database_password_file is given without a database_url".into(),
                ));
            }
            (Some(path), Some(url)) => {
                with_password(url, &read_password(path)?)?;
            }
            (None, _) => {}
        }
        Ok(())
    }
}

/// The first line of a password file.
fn read_password(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Invalid(format!("database_password_file {}: {e}", path.display())))?;
    let password = text.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "database_password_file {} is empty",
            path.display()
        )));
    }
    Ok(password)
}

/// `url` with `password` as its user's password (a URL that already holds one is refused: two sources
/// for one password is a mistake).
fn with_password(url: &str, password: &str) -> Result<String, ConfigError> {
    let mut parsed = url::Url::parse(url).map_err(|e| ConfigError::Invalid(format!("database_url: {e}")))?;
    if parsed.password().is_some() {
        return Err(ConfigError::Invalid(
            "database_url holds a password and database_password_file gives one too; keep one".into(),
        ));
    }
    parsed
        .set_password(Some(password))
        .map_err(|()| ConfigError::Invalid("database_url cannot take a password".into()))?;
    Ok(parsed.into())
}

impl<S> ServiceConfig<S> {
    /// The database URL to connect with for `service`: [`ServiceConfig::database_url_for`], with the
    /// password of `database_password_file` (read now) when one is given. Never to be logged.
    pub fn database_url_to_connect(&self, service: &str) -> Result<String, ConfigError> {
        match (&self.database_password_file, &self.database_url) {
            (Some(path), Some(url)) => with_password(url, &read_password(path)?),
            _ => Ok(self.database_url_for(service)),
        }
    }

    /// The database URL in effect for `service` (without the password of `database_password_file`).
    pub fn database_url_for(&self, service: &str) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| flotilla_store::default_sqlite_url(&self.data_dir, service))
    }
}

/// A secrets file must exist, be readable by its owner only (on Unix), and parse.
fn check_secrets_file(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::Invalid(format!("secrets_file {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::Invalid(format!(
                "secrets_file {} is readable by others (mode {mode:o}); chmod 600 it",
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    flotilla_spec::SecretsFile::load(path)
        .map(|_| ())
        .map_err(|e| ConfigError::Invalid(format!("secrets_file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "data_dir = \"/var/lib/flotilla\"\n[nats]\nurls = [\"nats://file:4222\"]\n[consumer]\nmax_deliver = 7\nack_wait = \"45s\"\n[log]\nformat = \"json\""
        )
        .unwrap();
        let cfg: ServiceConfig = ServiceConfig::load_from(
            Some(file.path()),
            env(&[
                ("FLOTILLA__NATS__URLS", "nats://a:4222,nats://b:4222"),
                ("FLOTILLA__CONSUMER__MAX_IN_FLIGHT", "3"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/flotilla"));
        assert_eq!(cfg.nats.urls, vec!["nats://a:4222", "nats://b:4222"]);
        assert_eq!(cfg.consumer.max_deliver, 7);
        assert_eq!(cfg.consumer.ack_wait, Duration::from_secs(45));
        assert_eq!(cfg.consumer.max_in_flight, 3);
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(cfg.bus.replicas, 1);
    }

    #[test]
    fn rejects_typos_and_bad_values() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "[nats]\nulrs = [\"nats://x:4222\"]").unwrap();
        let err = ServiceConfig::<NoSettings>::load_from(Some(file.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ulrs"), "{err}");

        let err = ServiceConfig::<NoSettings>::load_from(None, env(&[("FLOTILLA__BUS__REPLICAS", "9")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("replicas"), "{err}");

        let err = ServiceConfig::<NoSettings>::load_from(
            None,
            env(&[("FLOTILLA__DATABASE_URL", "mysql://u:pw@h/db")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("database_url") && !err.contains("pw@"), "{err}");

        let missing =
            ServiceConfig::<NoSettings>::load_from(Some(Path::new("/nonexistent/f.toml")), env(&[]));
        assert!(missing.is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_secrets_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().display().to_string();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ServiceConfig::<NoSettings>::load_from(None, env(&[("FLOTILLA__SECRETS_FILE", &path)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("readable by others") && err.contains("644"), "{err}");
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        ServiceConfig::<NoSettings>::load_from(None, env(&[("FLOTILLA__SECRETS_FILE", &path)])).unwrap();
        let err = ServiceConfig::<NoSettings>::load_from(
            None,
            env(&[("FLOTILLA__SECRETS_FILE", "/nonexistent/s.toml")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/s.toml"), "{err}");
    }

    #[test]
    fn environment_strings_are_taken_as_written() {
        let cfg: ServiceConfig = ServiceConfig::load_from(
            None,
            env(&[
                ("FLOTILLA__NATS__USER", "007"),
                ("FLOTILLA__NATS__PASSWORD", "0123"),
                ("FLOTILLA__CONSUMER__RETRY_DELAYS", "1s, 2500ms"),
                ("FLOTILLA__ADMIN__DISABLED", "true"),
                ("FLOTILLA__NATS__URLS", "nats://one:4222"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.nats.user.as_deref(), Some("007"));
        assert_eq!(
            cfg.nats
                .password
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret),
            Some("0123")
        );
        assert_eq!(
            cfg.consumer.retry_delays,
            vec![Duration::from_secs(1), Duration::from_millis(2500)]
        );
        assert!(cfg.admin.disabled);
        assert_eq!(cfg.nats.urls, vec!["nats://one:4222"]);
        let err =
            ServiceConfig::<NoSettings>::load_from(None, env(&[("FLOTILLA__CONSUMER__MAX_DELIVER", "many")]))
                .unwrap_err()
                .to_string();
        assert!(err.contains("max_deliver"), "{err}");
    }

    #[test]
    fn publish_retries_must_fit_the_duplicate_window() {
        let err = ServiceConfig::<NoSettings>::load_from(
            None,
            env(&[
                ("FLOTILLA__BUS__DUPLICATE_WINDOW", "5s"),
                ("FLOTILLA__PUBLISH__MAX_ATTEMPTS", "6"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("duplicate_window"), "{err}");
    }

    #[test]
    fn debug_hides_database_password() {
        let cfg: ServiceConfig = ServiceConfig {
            database_url: Some("postgres://flotilla:hunter2@db/flotilla".into()),
            ..ServiceConfig::default()
        };
        let s = format!("{cfg:?}");
        assert!(
            !s.contains("hunter2") && s.contains("postgres://<redacted>"),
            "{s}"
        );
    }

    #[test]
    fn the_database_password_comes_from_its_file_and_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db-password");
        std::fs::write(&file, "s3cr3t/pw@x\n").unwrap();
        let path = file.display().to_string();
        let cfg = ServiceConfig::<NoSettings>::load_from(
            None,
            env(&[
                (
                    "FLOTILLA__DATABASE_URL",
                    "postgres://flotilla@db:5432/flotilla_dns",
                ),
                ("FLOTILLA__DATABASE_PASSWORD_FILE", &path),
            ]),
        )
        .unwrap();
        let url = cfg.database_url_to_connect("dns").unwrap();
        // Percent-encoded as a URL must be, and only there.
        assert_eq!(url, "postgres://flotilla:s3cr3t%2Fpw%40x@db:5432/flotilla_dns");
        assert!(!cfg.database_url_for("dns").contains("s3cr3t"));
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
        // Two passwords, a missing or empty file, a file without a URL: each refused, saying which.
        let both = ServiceConfig::<NoSettings>::load_from(
            None,
            env(&[
                (
                    "FLOTILLA__DATABASE_URL",
                    "postgres://flotilla:other@db/flotilla_dns",
                ),
                ("FLOTILLA__DATABASE_PASSWORD_FILE", &path),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("keep one") && !both.contains("other"), "{both}");
        let missing = dir.path().join("none").display().to_string();
        let err = ServiceConfig::<NoSettings>::load_from(
            None,
            env(&[
                ("FLOTILLA__DATABASE_URL", "postgres://flotilla@db/flotilla_dns"),
                ("FLOTILLA__DATABASE_PASSWORD_FILE", &missing),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("database_password_file"), "{err}");
        std::fs::write(&file, "\n").unwrap();
        let err = ServiceConfig::<NoSettings>::load_from(
            None,
            env(&[
                ("FLOTILLA__DATABASE_URL", "postgres://flotilla@db/flotilla_dns"),
                ("FLOTILLA__DATABASE_PASSWORD_FILE", &path),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is empty"), "{err}");
        let err =
            ServiceConfig::<NoSettings>::load_from(None, env(&[("FLOTILLA__DATABASE_PASSWORD_FILE", &path)]))
                .unwrap_err()
                .to_string();
        assert!(err.contains("without a database_url"), "{err}");
    }
}
