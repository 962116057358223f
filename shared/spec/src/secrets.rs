//! Credentials, kept apart from the deployment spec.
//!
//! [`Secrets`] holds one deployment's credentials per region name: cloud credentials, datastore keys, DNS
//! credentials, the DBaaS password, repository passwords/tokens and the email credentials. Every value is
//! a [`Secret`], whose `Debug` output is redacted, so `{:?}` of any type in this module shows no secret.
//!
//! None of these types is `Serialize`, so a secret cannot reach the bus, an event or a JSON log line by
//! accident. The one way out is the secrets file: [`SecretsFile`] holds several deployments' [`Secrets`],
//! keyed by deployment name, and [`SecretsFile::to_toml`] / [`SecretsFile::write_to`] expose every value
//! explicitly to write it (with mode 0600).

use std::{collections::BTreeMap, fmt, fs, io::Write, path::Path};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::SpecError;

/// A secret string. `Debug` prints `"<redacted>"`; there is no `Display` and no `Serialize`. Use
/// [`Secret::expose`] where the value is really needed. The value is held in a [`SecretString`], which
/// wipes it from memory when dropped.
///
/// A `Secret` cannot be serialized, so it cannot be put on the bus or into a JSON log line by accident:
///
/// ```compile_fail,E0277
/// let json = serde_json::to_string(&flotilla_spec::Secret::new("hunter2"));
/// ```
///
/// nor shown with `{}`:
///
/// ```compile_fail,E0277
/// let shown = format!("{}", flotilla_spec::Secret::new("hunter2"));
/// ```
///
/// while the same lines compile for a plain string (so the failures above are the missing traits, not
/// a missing crate):
///
/// ```
/// let json = serde_json::to_string(&"hunter2").unwrap();
/// let shown = format!("{}", "hunter2");
/// let secret = flotilla_spec::Secret::new("hunter2");
/// assert_eq!(format!("{secret:?}"), "\"<redacted>\"");
/// assert_eq!(secret.expose(), "hunter2");
/// # let _ = (json, shown);
/// ```
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// Compares the exposed values without stopping at the first differing byte (only the length can show
/// through the time taken).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.expose().as_bytes(), other.expose().as_bytes())
    }
}

impl Eq for Secret {}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(SecretString::from(value))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value))
    }
}

/// All credentials of one deployment, by region name. Not `Serialize` (see [`Secret`]): written only as
/// part of a [`SecretsFile`], or explicitly with [`Secrets::to_toml`].
///
/// ```compile_fail,E0277
/// let json = serde_json::to_string(&flotilla_spec::Secrets::default());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Credentials per region, keyed by [`Region::name`](crate::Region::name).
    #[serde(default)]
    pub regions: BTreeMap<String, RegionSecrets>,
}

/// The credentials one region's template carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RegionSecrets {
    /// Cloud provider API credentials.
    #[serde(default)]
    pub cloud: CloudCredentials,
    /// Keys per datastore endpoint; entry N belongs to
    /// [`Region::datastores`](crate::Region::datastores)`[N]`.
    #[serde(default)]
    pub datastores: Vec<DatastoreCredentials>,
    /// DNS provider credentials (template keys `DNS_USERNAME`, `DNS_SECURITY_KEY`).
    #[serde(default)]
    pub dns: Option<DnsCredentials>,
    /// Credentials of the authenticator's DNS provider (template keys `AUTH_DNS_USERNAME`,
    /// `AUTH_DNS_SECURITY_KEY`).
    #[serde(default)]
    pub auth_dns: Option<DnsCredentials>,
    /// Password of the DBaaS application user (last field of `DATABASE_DBaaS_INSTALLATION_TYPE`);
    /// set for the primary region.
    #[serde(default)]
    pub dbaas_password: Option<Secret>,
    /// Git repository credentials.
    #[serde(default)]
    pub repositories: RepositoryCredentials,
    /// SMTP credentials for system emails.
    #[serde(default)]
    pub email: Option<EmailCredentials>,
}

/// Cloud provider API credentials: a token (Linode, DigitalOcean, Vultr) or an access/secret key pair
/// (Exoscale). The account id (`CLOUDHOST_ACCOUNT_ID`) is not secret and lives in the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CloudCredentials {
    /// Personal access token (template key `TOKEN`).
    #[serde(default)]
    pub token: Option<Secret>,
    /// API access key (template key `ACCESS_KEY`).
    #[serde(default)]
    pub access_key: Option<Secret>,
    /// API secret key (template key `SECRET_KEY`).
    #[serde(default)]
    pub secret_key: Option<Secret>,
}

/// S3 keys of one datastore endpoint (position N of `S3_ACCESS_KEY` / `S3_SECRET_KEY`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DatastoreCredentials {
    /// S3 access key.
    pub access_key: Secret,
    /// S3 secret key.
    pub secret_key: Secret,
}

/// Credentials of a DNS provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DnsCredentials {
    /// Account user name or email (template key `DNS_USERNAME`).
    #[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RepositoryCredentials {
    /// Template key `APPLICATION_REPOSITORY_PASSWORD`.
    #[serde(default)]
    pub application_password: Option<Secret>,
    /// Template key `APPLICATION_REPOSITORY_TOKEN` (preferred over the password).
    #[serde(default)]
    pub application_token: Option<Secret>,
    /// Template key `INFRASTRUCTURE_REPOSITORY_PASSWORD`.
    #[serde(default)]
    pub infrastructure_password: Option<Secret>,
}

/// SMTP credentials (template keys `SYSTEM_EMAIL_USERNAME`, `SYSTEM_EMAIL_PASSWORD`). The user name is
/// an API key with some services, so it is secret too.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EmailCredentials {
    /// SMTP user name.
    #[serde(default)]
    pub username: Option<Secret>,
    /// SMTP password.
    pub password: Secret,
}

/// What names text that was not read from a file in errors.
const TEXT_ORIGIN: &str = "secrets TOML";

impl Secrets {
    /// The credentials of one region.
    pub fn region(&self, name: &str) -> Option<&RegionSecrets> {
        self.regions.get(name)
    }

    /// Parses one deployment's secrets: `[regions.<region>.cloud]` … — the layout of a secrets file before
    /// files were keyed by deployment, and what goes under `[deployments.<deployment>]` in a
    /// [`SecretsFile`]. Text keyed by deployment is refused: read it with [`SecretsFile::from_toml`].
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        Self::parse(text, TEXT_ORIGIN)
    }

    /// This deployment's secrets as TOML, in the layout [`Secrets::from_toml`] reads, with every value
    /// exposed. For a secrets file use [`SecretsFile::to_toml`], which keys them by deployment.
    pub fn to_toml(&self) -> Result<String, SpecError> {
        Ok(toml::to_string(&self.exposed())?)
    }

    /// Reads a secrets file in the old one-deployment layout (top-level `[regions.…]`).
    ///
    /// Kept for callers that serve a single deployment and have not moved to [`SecretsFile::load`]; a file
    /// keyed by deployment (as `flotilla template import` writes now) is refused with an error saying so.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SpecError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| SpecError::io(path, source))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Self, SpecError> {
        let table: toml::Table = parse_toml(text, origin)?;
        if table.contains_key("deployments") {
            return Err(SpecError::Secrets {
                origin: origin.to_owned(),
                message: "these secrets are keyed by deployment (`[deployments.<deployment>…]`); \
                          read them with `SecretsFile` and pick the deployment"
                    .to_owned(),
            });
        }
        parse_toml(text, origin)
    }

    fn exposed(&self) -> ExposedSecrets<'_> {
        ExposedSecrets {
            regions: self
                .regions
                .iter()
                .map(|(name, region)| (name.as_str(), region.exposed()))
                .collect(),
        }
    }
}

/// The secrets file a service reads: the credentials of any number of deployments, keyed by deployment
/// name ([`Deployment::name`](crate::Deployment::name)) and then by region name.
///
/// ```toml
/// [deployments.www-example-com.regions.gb-lon]
/// dbaas_password = "…"
///
/// [deployments.www-example-com.regions.gb-lon.cloud]
/// token = "…"
///
/// [[deployments.www-example-com.regions.gb-lon.datastores]]
/// access_key = "…"
/// secret_key = "…"
/// ```
///
/// `flotilla template import` writes one deployment's file (`<deployment>.secrets.toml`). Every table of
/// such a file sits under its own `[deployments.<deployment>…]`, so the files of different deployments
/// can be concatenated (`cat a.secrets.toml b.secrets.toml > all.secrets.toml`) into one file for a
/// service that serves them all; concatenating two files of the same deployment is refused as a
/// duplicate table.
///
/// A file in the layout before files were keyed by deployment (top-level `[regions.…]`) is refused by
/// [`SecretsFile::load`] with an error saying how to convert it.
///
/// Not `Serialize` (see [`Secret`]): [`SecretsFile::to_toml`] and [`SecretsFile::write_to`] are the
/// explicit way to write the values out.
///
/// ```compile_fail,E0277
/// let json = serde_json::to_string(&flotilla_spec::SecretsFile::default());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsFile {
    /// Credentials per deployment, keyed by deployment name.
    #[serde(default)]
    pub deployments: BTreeMap<String, Secrets>,
}

impl SecretsFile {
    /// A file holding one deployment's secrets.
    pub fn for_deployment(deployment: impl Into<String>, secrets: Secrets) -> Self {
        Self {
            deployments: BTreeMap::from([(deployment.into(), secrets)]),
        }
    }

    /// The credentials of one deployment.
    pub fn deployment(&self, name: &str) -> Option<&Secrets> {
        self.deployments.get(name)
    }

    /// The credentials of one region of one deployment.
    pub fn region(&self, deployment: &str, region: &str) -> Option<&RegionSecrets> {
        self.deployment(deployment)?.region(region)
    }

    /// Parses the TOML form. Text in the old one-deployment layout (top-level `[regions.…]`) is refused.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        Self::parse(text, TEXT_ORIGIN)
    }

    /// Reads a secrets file. A file in the old one-deployment layout (top-level `[regions.…]`) is refused
    /// with an error that names it and says to re-run `flotilla template import` or to move its tables
    /// under `[deployments.<deployment>]`. Errors name the file and the line but never quote its text.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SpecError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| SpecError::io(path, source))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The TOML form, with every value exposed: the text of a secrets file. Keep it off the bus and out
    /// of logs.
    pub fn to_toml(&self) -> Result<String, SpecError> {
        Ok(toml::to_string(&self.exposed())?)
    }

    /// Writes the TOML form to `path`, creating or truncating it; on Unix the file gets mode 0600 (also
    /// when it already existed with a wider mode) before anything is written to it.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<(), SpecError> {
        let path = path.as_ref();
        let text = self.to_toml()?;
        write_private(path, text.as_bytes()).map_err(|source| SpecError::io(path, source))
    }

    fn parse(text: &str, origin: &str) -> Result<Self, SpecError> {
        let table: toml::Table = parse_toml(text, origin)?;
        if table.contains_key("regions") {
            return Err(SpecError::Secrets {
                origin: origin.to_owned(),
                message: "secrets in the old layout (top-level `[regions.…]`), not keyed by deployment; \
                          re-run `flotilla template import` to write the file again, or put its tables \
                          under `[deployments.<deployment>]` (e.g. `[regions.gb-lon.cloud]` becomes \
                          `[deployments.<deployment>.regions.gb-lon.cloud]`)"
                    .to_owned(),
            });
        }
        parse_toml(text, origin)
    }

    fn exposed(&self) -> ExposedFile<'_> {
        ExposedFile {
            deployments: self
                .deployments
                .iter()
                .map(|(name, secrets)| (name.as_str(), secrets.exposed()))
                .collect(),
        }
    }
}

/// Parses `text` as TOML into `T`. A failure names `origin`, the line and the column, but not the text
/// (which `toml`'s own message would quote), and any quoted value in the message is replaced.
fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, SpecError> {
    toml::from_str(text).map_err(|error| {
        let message = without_quoted_values(error.message().trim());
        let message = match error.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                format!("line {line}, column {column}: {message}")
            }
            None => message,
        };
        SpecError::Secrets {
            origin: origin.to_owned(),
            message,
        }
    })
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `message` with the inside of every double-quoted part replaced: serde quotes an offending value so
/// (`invalid type: string "…", expected a sequence`), and in a secrets file that value may be a secret.
/// A quote mark named in backticks (`` `"` ``) is kept.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    let mut previous = None;
    while let Some(c) = chars.next() {
        out.push(c);
        let named = previous == Some('`') && chars.peek() == Some(&'`');
        previous = Some(c);
        if c != '"' || named {
            continue;
        }
        out.push_str("<redacted>");
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    out.push('"');
                    break;
                }
                _ => {}
            }
        }
        previous = Some('"');
    }
    out
}

// The written form: mirrors of the types above with every value exposed, built only by the explicit
// `exposed` functions, so that serializing a secret is never one `#[derive]` away.

#[derive(Serialize)]
struct ExposedFile<'a> {
    deployments: BTreeMap<&'a str, ExposedSecrets<'a>>,
}

#[derive(Serialize)]
struct ExposedSecrets<'a> {
    regions: BTreeMap<&'a str, ExposedRegion<'a>>,
}

#[derive(Serialize)]
struct ExposedRegion<'a> {
    cloud: ExposedCloud<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    datastores: Vec<ExposedDatastore<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<ExposedDns<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_dns: Option<ExposedDns<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dbaas_password: Option<&'a str>,
    repositories: ExposedRepositories<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<ExposedEmail<'a>>,
}

#[derive(Serialize)]
struct ExposedCloud<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key: Option<&'a str>,
}

#[derive(Serialize)]
struct ExposedDatastore<'a> {
    access_key: &'a str,
    secret_key: &'a str,
}

#[derive(Serialize)]
struct ExposedDns<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    security_key: &'a str,
}

#[derive(Serialize)]
struct ExposedRepositories<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    application_password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    application_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    infrastructure_password: Option<&'a str>,
}

#[derive(Serialize)]
struct ExposedEmail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    password: &'a str,
}

fn exposed(secret: &Option<Secret>) -> Option<&str> {
    secret.as_ref().map(Secret::expose)
}

impl RegionSecrets {
    fn exposed(&self) -> ExposedRegion<'_> {
        ExposedRegion {
            cloud: ExposedCloud {
                token: exposed(&self.cloud.token),
                access_key: exposed(&self.cloud.access_key),
                secret_key: exposed(&self.cloud.secret_key),
            },
            datastores: self
                .datastores
                .iter()
                .map(|d| ExposedDatastore {
                    access_key: d.access_key.expose(),
                    secret_key: d.secret_key.expose(),
                })
                .collect(),
            dns: self.dns.as_ref().map(DnsCredentials::exposed),
            auth_dns: self.auth_dns.as_ref().map(DnsCredentials::exposed),
            dbaas_password: exposed(&self.dbaas_password),
            repositories: ExposedRepositories {
                application_password: exposed(&self.repositories.application_password),
                application_token: exposed(&self.repositories.application_token),
                infrastructure_password: exposed(&self.repositories.infrastructure_password),
            },
            email: self.email.as_ref().map(|e| ExposedEmail {
                username: exposed(&e.username),
                password: e.password.expose(),
            }),
        }
    }
}

impl DnsCredentials {
    fn exposed(&self) -> ExposedDns<'_> {
        ExposedDns {
            username: self.username.as_deref(),
            security_key: self.security_key.expose(),
        }
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

    /// Every secret value [`sample`] holds.
    const VALUES: &[&str] = &[
        "tok-123",
        "cak-234",
        "csk-345",
        "ak-1",
        "sk-1",
        "cf-tok",
        "auth-dns-key",
        "pw-db",
        "repo-pw",
        "repo-tok",
        "infra-pw",
        "mail-user",
        "mail-pw",
    ];

    /// A region with every field filled.
    fn sample() -> Secrets {
        let region = RegionSecrets {
            cloud: CloudCredentials {
                token: Some("tok-123".into()),
                access_key: Some("cak-234".into()),
                secret_key: Some("csk-345".into()),
            },
            datastores: vec![DatastoreCredentials {
                access_key: "ak-1".into(),
                secret_key: "sk-1".into(),
            }],
            dns: Some(DnsCredentials {
                username: Some("me@example.com".into()),
                security_key: "acc:::cf-tok".into(),
            }),
            auth_dns: Some(DnsCredentials {
                username: None,
                security_key: "auth-dns-key".into(),
            }),
            dbaas_password: Some("pw-db".into()),
            repositories: RepositoryCredentials {
                application_password: Some("repo-pw".into()),
                application_token: Some("repo-tok".into()),
                infrastructure_password: Some("infra-pw".into()),
            },
            email: Some(EmailCredentials {
                username: Some("mail-user".into()),
                password: "mail-pw".into(),
            }),
        };
        Secrets {
            regions: BTreeMap::from([("gb-lon".to_owned(), region)]),
        }
    }

    fn other() -> Secrets {
        Secrets {
            regions: BTreeMap::from([(
                "nl-ams".to_owned(),
                RegionSecrets {
                    cloud: CloudCredentials {
                        token: Some("other-tok".into()),
                        ..CloudCredentials::default()
                    },
                    ..RegionSecrets::default()
                },
            )]),
        }
    }

    #[test]
    fn debug_is_redacted() {
        let file = SecretsFile::for_deployment("www-example-com", sample());
        let debug = format!("{:?} {:#?} {:?}", sample(), sample(), file);
        for secret in VALUES {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert!(debug.contains("<redacted>"));
        assert!(
            debug.contains("me@example.com"),
            "the DNS user name is not secret"
        );
    }

    #[test]
    fn secrets_compare_by_value() {
        assert_eq!(Secret::new("abc"), Secret::from("abc"));
        assert_eq!(Secret::from(String::from("abc")).clone(), Secret::new("abc"));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
        assert_ne!(Secret::new(""), Secret::new("a"));
        assert!(Secret::new("").is_empty());
        assert!(!Secret::new("x").is_empty());
        assert_ne!(sample(), other());
    }

    #[test]
    fn one_deployment_round_trips_through_toml() {
        let text = sample().to_toml().unwrap();
        for secret in VALUES {
            assert!(text.contains(secret), "{secret} missing from\n{text}");
        }
        assert_eq!(Secrets::from_toml(&text).unwrap(), sample());
    }

    #[test]
    fn the_file_is_keyed_by_deployment_and_region() {
        let file = SecretsFile::for_deployment("www-example-com", sample());
        let text = file.to_toml().unwrap();
        assert!(
            text.contains("[deployments.www-example-com.regions.gb-lon.cloud]"),
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("[regions")),
            "no old-layout table in\n{text}"
        );
        for secret in VALUES {
            assert!(text.contains(secret), "{secret} missing from\n{text}");
        }
        let back = SecretsFile::from_toml(&text).unwrap();
        assert_eq!(back, file);
        assert_eq!(back.deployment("www-example-com"), Some(&sample()));
        assert_eq!(
            back.region("www-example-com", "gb-lon")
                .and_then(|r| r.cloud.token.as_ref())
                .map(Secret::expose),
            Some("tok-123")
        );
        assert_eq!(back.region("www-example-com", "nl-ams"), None);
        assert_eq!(back.region("other", "gb-lon"), None);
        assert_eq!(back.deployment("other"), None);
    }

    #[test]
    fn files_of_different_deployments_concatenate() {
        let a = SecretsFile::for_deployment("www-a-com", sample());
        let b = SecretsFile::for_deployment("www-b-com", other());
        let joined = format!("{}\n{}", a.to_toml().unwrap(), b.to_toml().unwrap());
        let both = SecretsFile::from_toml(&joined).unwrap();
        assert_eq!(both.deployments.len(), 2);
        assert_eq!(both.deployment("www-a-com"), Some(&sample()));
        assert_eq!(both.deployment("www-b-com"), Some(&other()));

        let twice = format!("{}\n{}", a.to_toml().unwrap(), a.to_toml().unwrap());
        let err = SecretsFile::from_toml(&twice).unwrap_err().to_string();
        for secret in VALUES {
            assert!(!err.contains(secret), "{secret} quoted in {err}");
        }
    }

    #[test]
    fn the_old_layout_is_refused_with_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.secrets.toml");
        fs::write(&path, sample().to_toml().unwrap()).unwrap();
        let err = SecretsFile::load(&path).unwrap_err();
        assert!(matches!(err, SpecError::Secrets { .. }), "{err:?}");
        let err = err.to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("flotilla template import"), "{err}");
        assert!(err.contains("[deployments.<deployment>]"), "{err}");
        for secret in VALUES {
            assert!(!err.contains(secret), "{secret} quoted in {err}");
        }
        // The old reader still reads it, and refuses the new layout instead.
        assert_eq!(Secrets::load(&path).unwrap(), sample());
        SecretsFile::for_deployment("www-example-com", sample())
            .write_to(&path)
            .unwrap();
        let err = Secrets::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("SecretsFile"),
            "{err}"
        );
    }

    #[test]
    fn unknown_top_level_tables_are_refused() {
        let err = SecretsFile::from_toml("[deployment.www-a-com.regions.gb-lon.cloud]\ntoken = \"t\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("deployment") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn errors_never_quote_the_file() {
        let cases = [
            // A value of the wrong type: serde's message quotes it.
            "[deployments.d.regions.r]\ndatastores = \"s3cr3t-value\"\n",
            // A string that never ends.
            "[deployments.d.regions.r.cloud]\ntoken = \"s3cr3t-value\n",
            // A missing field next to a secret.
            "[[deployments.d.regions.r.datastores]]\naccess_key = \"s3cr3t-value\"\n",
            // A secret where a table belongs.
            "[deployments.d.regions.r]\ncloud = \"s3cr3t-value\"\n",
        ];
        for text in cases {
            let err = SecretsFile::from_toml(text).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("line "), "{shown}");
        }
        let err = Secrets::from_toml("[regions.r]\ndatastores = \"s3cr3t-value\"\n").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert!(err.to_string().starts_with("secrets TOML: line 2"), "{err}");
    }

    #[test]
    fn quoted_values_are_cut_out_of_messages() {
        assert_eq!(
            without_quoted_values(r#"invalid type: string "a\"b", expected `x`"#),
            r#"invalid type: string "<redacted>", expected `x`"#
        );
        assert_eq!(without_quoted_values("unclosed \"abc"), "unclosed \"<redacted>");
        assert_eq!(without_quoted_values("plain"), "plain");
        assert_eq!(
            without_quoted_values("invalid basic string, expected `\"`"),
            "invalid basic string, expected `\"`"
        );
        assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_and_column("ab", 0), (1, 1));
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
        let file = SecretsFile::for_deployment("www-example-com", sample());
        file.write_to(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(SecretsFile::load(&path).unwrap(), file);
    }
}
