//! Connection options and the server check every Flotilla process makes at connect.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectOptions, ServerAddr};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::BusError;
use crate::redact::redact;

/// The oldest NATS server Flotilla runs against: 2.10 brought multi-filter consumers and the KV features
/// async-nats relies on.
pub const MIN_SERVER_VERSION: semver::Version = semver::Version::new(2, 10, 0);

/// How to reach NATS. Deserialized from the `[nats]` section of a service's configuration.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`); the client fails over between them. In the
    /// environment, comma-separated.
    #[serde(deserialize_with = "crate::config_de::strings")]
    pub urls: Vec<String>,
    /// User name, with `password`.
    pub user: Option<String>,
    /// Password, with `user`. Taken as written (`0123` stays a string); exposed only to the NATS client,
    /// never in `Debug`.
    pub password: Option<SecretString>,
    /// Token authentication. Exposed only to the NATS client, never in `Debug`.
    pub token: Option<SecretString>,
    /// File holding an NKey seed (`SU…`).
    pub nkey_seed_file: Option<PathBuf>,
    /// A `.creds` file (JWT and NKey seed).
    pub creds_file: Option<PathBuf>,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Connection name shown by the server (`nats server report connections`).
    pub name: Option<String>,
    /// Time allowed to establish the connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for a request/reply or a JetStream API call.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// TLS for the NATS connection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Refuse a server that does not offer TLS.
    pub required: bool,
    /// CA certificate(s) to trust, PEM.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, PEM (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// Client key, PEM.
    pub key_file: Option<PathBuf>,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            urls: vec!["nats://127.0.0.1:4222".to_owned()],
            user: None,
            password: None,
            token: None,
            nkey_seed_file: None,
            creds_file: None,
            tls: TlsConfig::default(),
            name: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl BusConfig {
    /// Options for the servers at `urls` with no authentication.
    pub fn for_urls(urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Checks what can be checked without a server: URLs parse, credentials are complete and not given
    /// twice, files exist.
    pub fn validate(&self) -> Result<(), BusError> {
        self.server_addrs()?;
        if self.user.is_some() != self.password.is_some() {
            return Err(BusError::Options(
                "`user` and `password` must be given together".into(),
            ));
        }
        let methods = [
            self.user.is_some(),
            self.token.is_some(),
            self.nkey_seed_file.is_some(),
            self.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(BusError::Options(
                "give one of user/password, token, nkey_seed_file or creds_file, not several".into(),
            ));
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(BusError::Options(
                "tls.cert_file and tls.key_file must be given together".into(),
            ));
        }
        for (what, path) in [
            ("nkey_seed_file", &self.nkey_seed_file),
            ("creds_file", &self.creds_file),
            ("tls.ca_file", &self.tls.ca_file),
            ("tls.cert_file", &self.tls.cert_file),
            ("tls.key_file", &self.tls.key_file),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                return Err(BusError::Options(format!(
                    "{what} {} does not exist or is not a file",
                    p.display()
                )));
            }
        }
        Ok(())
    }

    fn server_addrs(&self) -> Result<Vec<ServerAddr>, BusError> {
        if self.urls.is_empty() {
            return Err(BusError::Options("no server URL given".into()));
        }
        self.urls
            .iter()
            .map(|u| {
                u.parse::<ServerAddr>()
                    .map_err(|e| BusError::Options(format!("server URL {:?}: {e}", redact(u))))
            })
            .collect()
    }

    async fn options(&self) -> Result<ConnectOptions, BusError> {
        let mut opts = match &self.creds_file {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| BusError::Options(format!("creds_file {}: {e}", path.display())))?,
            None => ConnectOptions::new(),
        };
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            opts = opts.user_and_password(user.clone(), password.expose_secret().to_owned());
        }
        if let Some(token) = &self.token {
            opts = opts.token(token.expose_secret().to_owned());
        }
        if let Some(path) = &self.nkey_seed_file {
            let seed = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| BusError::Options(format!("nkey_seed_file {}: {e}", path.display())))?;
            opts = opts.nkey(seed.trim().to_owned());
        }
        if let Some(ca) = &self.tls.ca_file {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls.cert_file, &self.tls.key_file) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls.required {
            opts = opts.require_tls(true);
        }
        if let Some(name) = &self.name {
            opts = opts.name(name);
        }
        Ok(opts
            .connection_timeout(self.connect_timeout)
            .request_timeout(Some(self.request_timeout)))
    }
}

impl std::fmt::Debug for BusConfig {
    // Credentials never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hide = |o: &Option<SecretString>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("BusConfig")
            .field("urls", &self.urls.iter().map(|u| redact(u)).collect::<Vec<_>>())
            .field("user", &self.user)
            .field("password", &hide(&self.password))
            .field("token", &hide(&self.token))
            .field("nkey_seed_file", &self.nkey_seed_file)
            .field("creds_file", &self.creds_file)
            .field("tls", &self.tls)
            .field("name", &self.name)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Connects, then refuses a server older than [`MIN_SERVER_VERSION`] or one without JetStream, with an
/// error that names the version found.
pub async fn connect(config: &BusConfig) -> Result<async_nats::Client, BusError> {
    config.validate()?;
    let addrs = config.server_addrs()?;
    let client = config
        .options()
        .await?
        .connect(addrs)
        .await
        .map_err(|source| BusError::Connect {
            urls: redact(&config.urls.join(",")),
            source,
        })?;
    check_server(&client).await?;
    Ok(client)
}

/// The version and JetStream check made by [`connect`].
pub async fn check_server(client: &async_nats::Client) -> Result<(), BusError> {
    let info = client.server_info();
    check_version(&info.version)?;
    if !info.jetstream {
        return Err(BusError::NoJetStream {
            version: info.version,
            reason: "server INFO says jetstream=false".into(),
        });
    }
    async_nats::jetstream::new(client.clone())
        .query_account()
        .await
        .map_err(|e| BusError::JetStreamUnavailable {
            version: info.version.clone(),
            reason: e.to_string(),
        })?;
    Ok(())
}

/// Refuses a version string older than [`MIN_SERVER_VERSION`] (or one that is not a version at all).
pub fn check_version(found: &str) -> Result<(), BusError> {
    let parsed =
        semver::Version::parse(found.trim_start_matches('v')).map_err(|_| BusError::ServerTooOld {
            found: format!("{found:?} (unparseable)"),
        })?;
    // Pre-release tags (2.11.0-RC.1) count as their release.
    let release = semver::Version::new(parsed.major, parsed.minor, parsed.patch);
    if release < MIN_SERVER_VERSION {
        return Err(BusError::ServerTooOld {
            found: found.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(check_version("2.10.0").is_ok());
        assert!(check_version("2.12.8").is_ok());
        assert!(check_version("2.11.0-RC.2").is_ok());
        assert!(check_version("3.0.0").is_ok());
        let err = check_version("2.9.10").unwrap_err().to_string();
        assert!(err.contains("2.9.10") && err.contains("2.10"), "{err}");
        assert!(check_version("garbage").is_err());
    }

    #[test]
    fn validation() {
        assert!(BusConfig::default().validate().is_ok());
        let mut c = BusConfig::default();
        c.urls.clear();
        assert!(c.validate().is_err());
        let c = BusConfig {
            user: Some("u".into()),
            ..BusConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("together"));
        let c = BusConfig {
            user: Some("u".into()),
            password: Some("p".into()),
            token: Some("t".into()),
            ..BusConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("not several"));
        let c = BusConfig {
            creds_file: Some("/nonexistent/x.creds".into()),
            ..BusConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/x.creds")
        );
    }

    #[test]
    fn credentials_deserialize_as_written() {
        let c: BusConfig = serde_json::from_value(serde_json::json!({
            "user": "007",
            "password": "0123",
            "token": " spaced token ",
        }))
        .unwrap();
        assert_eq!(c.user.as_deref(), Some("007"));
        assert_eq!(c.password.as_ref().map(ExposeSecret::expose_secret), Some("0123"));
        assert_eq!(
            c.token.as_ref().map(ExposeSecret::expose_secret),
            Some(" spaced token ")
        );
        assert!(serde_json::from_value::<BusConfig>(serde_json::json!({ "password": 123 })).is_err());
        let cloned = c.clone();
        assert_eq!(
            cloned.password.as_ref().map(ExposeSecret::expose_secret),
            Some("0123")
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = BusConfig {
            user: Some("alice".into()),
            password: Some("hunter2".into()),
            ..BusConfig::default()
        };
        let s = format!("{c:?}");
        assert!(s.contains("alice") && !s.contains("hunter2"), "{s}");
        let c = BusConfig {
            token: Some("s3cr3t-token".into()),
            ..BusConfig::default()
        };
        assert!(!format!("{c:?}").contains("s3cr3t-token"));
        let c = BusConfig::for_urls(["nats://bob:pa55word@nats.internal:4222"]);
        assert!(!format!("{c:?}").contains("pa55word"));
    }
}
