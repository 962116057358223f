//! Credentials, kept apart from the deployment spec.
//!
//! [`Secrets`] holds, per region name, everything a template carried that must not be shown: cloud
//! credentials, datastore keys, DNS credentials, the DBaaS password, repository passwords/tokens and the
//! email credentials. Every value is a [`Secret`], whose `Debug` output is redacted, so `{:?}` of any
//! type in this module shows no secret. The TOML form is written with mode 0600 by [`Secrets::write_to`].

use std::{collections::BTreeMap, fmt, fs, io::Write, path::Path};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SpecError;

/// A secret string. `Debug` prints `"<redacted>"`; there is no `Display`. Use [`Secret::expose`] where
/// the value is really needed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// All credentials of one deployment, by region name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Secrets {
    /// Credentials per region, keyed by [`Region::name`](crate::Region::name).
    #[serde(default)]
    pub regions: BTreeMap<String, RegionSecrets>,
}

/// The credentials one region's template carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegionSecrets {
    /// Cloud provider API credentials.
    #[serde(default)]
    pub cloud: CloudCredentials,
    /// Keys per datastore endpoint; entry N belongs to
    /// [`Region::datastores`](crate::Region::datastores)`[N]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datastores: Vec<DatastoreCredentials>,
    /// DNS provider credentials (template keys `DNS_USERNAME`, `DNS_SECURITY_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsCredentials>,
    /// Credentials of the authenticator's DNS provider (template keys `AUTH_DNS_USERNAME`,
    /// `AUTH_DNS_SECURITY_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_dns: Option<DnsCredentials>,
    /// Password of the DBaaS application user (last field of `DATABASE_DBaaS_INSTALLATION_TYPE`);
    /// set for the primary region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbaas_password: Option<Secret>,
    /// Git repository credentials.
    #[serde(default)]
    pub repositories: RepositoryCredentials,
    /// SMTP credentials for system emails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailCredentials>,
}

/// Cloud provider API credentials: a token (Linode, DigitalOcean, Vultr) or an access/secret key pair
/// (Exoscale). The account id (`CLOUDHOST_ACCOUNT_ID`) is not secret and lives in the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CloudCredentials {
    /// Personal access token (template key `TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// API access key (template key `ACCESS_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<Secret>,
    /// API secret key (template key `SECRET_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<Secret>,
}

/// S3 keys of one datastore endpoint (position N of `S3_ACCESS_KEY` / `S3_SECRET_KEY`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DatastoreCredentials {
    /// S3 access key.
    pub access_key: Secret,
    /// S3 secret key.
    pub secret_key: Secret,
}

/// Credentials of a DNS provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DnsCredentials {
    /// Account user name or email (template key `DNS_USERNAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The key (template key `DNS_SECURITY_KEY`): for Cloudflare `<account-id>:::<api-token>` or a legacy
    /// global API key; for Exoscale `<access-key>:<secret-key>`; otherwise an API token.
    pub security_key: Secret,
}

/// How to authenticate to Cloudflare, from [`DnsCredentials::cloudflare_auth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudflareAuth {
    /// A scoped API token (`Authorization: Bearer`), with the account it belongs to.
    ApiToken {
        /// The Cloudflare account id.
        account_id: String,
        /// The API token.
        token: Secret,
    },
    /// The legacy global API key (`X-Auth-Email` + `X-Auth-Key`).
    GlobalKey {
        /// The account email (`DNS_USERNAME`); empty when it was not given.
        email: String,
        /// The global API key.
        key: Secret,
    },
}

impl DnsCredentials {
    /// Reads the key the Cloudflare way: `<account-id>:::<api-token>` is an API token, anything else the
    /// legacy global key used with `username` as the email.
    pub fn cloudflare_auth(&self) -> CloudflareAuth {
        match self.security_key.expose().split_once(":::") {
            Some((account_id, token)) => CloudflareAuth::ApiToken {
                account_id: account_id.trim().to_owned(),
                token: Secret::new(token.trim()),
            },
            None => CloudflareAuth::GlobalKey {
                email: self.username.clone().unwrap_or_default(),
                key: self.security_key.clone(),
            },
        }
    }
}

/// Git repository credentials. The toolkit's placeholder `none` is read as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RepositoryCredentials {
    /// Template key `APPLICATION_REPOSITORY_PASSWORD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_password: Option<Secret>,
    /// Template key `APPLICATION_REPOSITORY_TOKEN` (preferred over the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_token: Option<Secret>,
    /// Template key `INFRASTRUCTURE_REPOSITORY_PASSWORD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_password: Option<Secret>,
}

/// SMTP credentials (template keys `SYSTEM_EMAIL_USERNAME`, `SYSTEM_EMAIL_PASSWORD`). The user name is
/// an API key with some services, so it is secret too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EmailCredentials {
    /// SMTP user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Secret>,
    /// SMTP password.
    pub password: Secret,
}

impl Secrets {
    /// The credentials of one region.
    pub fn region(&self, name: &str) -> Option<&RegionSecrets> {
        self.regions.get(name)
    }

    /// Parses the TOML form.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        Ok(toml::from_str(text)?)
    }

    /// The TOML form.
    pub fn to_toml(&self) -> Result<String, SpecError> {
        Ok(toml::to_string(self)?)
    }

    /// Reads a secrets file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SpecError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| SpecError::io(path, source))?;
        Self::from_toml(&text)
    }

    /// Writes the TOML form to `path`, creating or truncating it; on Unix the file gets mode 0600 (also
    /// when it already existed with a wider mode) before anything is written to it.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<(), SpecError> {
        let path = path.as_ref();
        let text = self.to_toml()?;
        write_private(path, text.as_bytes()).map_err(|source| SpecError::io(path, source))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Secrets {
        let region = RegionSecrets {
            cloud: CloudCredentials {
                token: Some("tok-123".into()),
                ..CloudCredentials::default()
            },
            datastores: vec![DatastoreCredentials {
                access_key: "ak-1".into(),
                secret_key: "sk-1".into(),
            }],
            dns: Some(DnsCredentials {
                username: Some("me@example.com".into()),
                security_key: "acc:::cf-tok".into(),
            }),
            dbaas_password: Some("pw-db".into()),
            email: Some(EmailCredentials {
                username: Some("mail-user".into()),
                password: "mail-pw".into(),
            }),
            ..RegionSecrets::default()
        };
        Secrets {
            regions: BTreeMap::from([("gb-lon".to_owned(), region)]),
        }
    }

    #[test]
    fn debug_is_redacted() {
        let debug = format!("{:?} {:#?}", sample(), sample());
        for secret in [
            "tok-123",
            "ak-1",
            "sk-1",
            "cf-tok",
            "pw-db",
            "mail-user",
            "mail-pw",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn toml_round_trip() {
        let text = sample().to_toml().unwrap();
        assert!(text.contains("tok-123"));
        assert_eq!(Secrets::from_toml(&text).unwrap(), sample());
    }

    #[test]
    fn cloudflare_auth_forms() {
        let dns = sample().regions["gb-lon"].dns.clone().unwrap();
        assert_eq!(
            dns.cloudflare_auth(),
            CloudflareAuth::ApiToken {
                account_id: "acc".into(),
                token: "cf-tok".into()
            }
        );
        let legacy = DnsCredentials {
            username: Some("me@example.com".into()),
            security_key: "global".into(),
        };
        assert_eq!(
            legacy.cloudflare_auth(),
            CloudflareAuth::GlobalKey {
                email: "me@example.com".into(),
                key: "global".into()
            }
        );
    }

    #[cfg(unix)]
    #[test]
    fn write_to_makes_an_owner_only_file() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.secrets.toml");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        sample().write_to(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Secrets::load(&path).unwrap(), sample());
    }
}
