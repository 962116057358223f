//! What a simulator serves: ports, credentials, timings, rate limits, S3 endpoints and start-up faults.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::faults::Fault;

/// A provider the simulator imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Linode API v4.
    Linode,
    /// DigitalOcean API v2.
    DigitalOcean,
    /// Vultr API v2.
    Vultr,
    /// Exoscale API v2 (zonal).
    Exoscale,
    /// Cloudflare API v4 (DNS).
    Cloudflare,
}

impl Provider {
    /// Every provider, in a fixed order.
    pub const ALL: [Provider; 5] = [
        Provider::Linode,
        Provider::DigitalOcean,
        Provider::Vultr,
        Provider::Exoscale,
        Provider::Cloudflare,
    ];

    /// The lowercase name (`linode`, `digitalocean` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Linode => "linode",
            Provider::DigitalOcean => "digitalocean",
            Provider::Vultr => "vultr",
            Provider::Exoscale => "exoscale",
            Provider::Cloudflare => "cloudflare",
        }
    }

    /// Whether the provider runs machines (Cloudflare does not).
    pub fn has_machines(self) -> bool {
        self != Provider::Cloudflare
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown provider {s:?} (linode, digitalocean, vultr, exoscale, cloudflare)")
            })
    }
}

impl From<Provider> for flotilla_cloud::ProviderKind {
    fn from(p: Provider) -> Self {
        match p {
            Provider::Linode => flotilla_cloud::ProviderKind::Linode,
            Provider::DigitalOcean => flotilla_cloud::ProviderKind::DigitalOcean,
            Provider::Vultr => flotilla_cloud::ProviderKind::Vultr,
            Provider::Exoscale => flotilla_cloud::ProviderKind::Exoscale,
            Provider::Cloudflare => flotilla_cloud::ProviderKind::Cloudflare,
        }
    }
}

/// The credentials every test uses unless it configures its own.
pub mod defaults {
    /// Linode personal access token.
    pub const LINODE_TOKEN: &str = "sim-linode-token";
    /// DigitalOcean personal access token.
    pub const DIGITALOCEAN_TOKEN: &str = "sim-digitalocean-token";
    /// Vultr API key.
    pub const VULTR_TOKEN: &str = "sim-vultr-token";
    /// Cloudflare API token.
    pub const CLOUDFLARE_TOKEN: &str = "sim-cloudflare-token";
    /// Cloudflare legacy account e-mail.
    pub const CLOUDFLARE_EMAIL: &str = "ops@example.com";
    /// Cloudflare legacy global API key.
    pub const CLOUDFLARE_KEY: &str = "sim-cloudflare-global-key";
    /// Exoscale API key.
    pub const EXOSCALE_KEY: &str = "EXOsim0000000000000000000000";
    /// Exoscale API secret.
    pub const EXOSCALE_SECRET: &str = "sim-exoscale-secret";
    /// The name the default credential of each provider is counted under.
    pub const CREDENTIAL_NAME: &str = "default";
}

/// A bearer token the simulator accepts, with the name its requests are counted under.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Name shown in counters (never the token itself).
    pub name: String,
    /// The token.
    pub token: String,
}

impl Token {
    /// A token counted under `name`.
    pub fn new(name: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            token: token.into(),
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// An Exoscale API key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct ExoscaleKey {
    /// Name shown in counters.
    pub name: String,
    /// The API key (`EXO…`), sent in the clear in the `credential=` pragma.
    pub key: String,
    /// The API secret, which signs requests.
    pub secret: String,
}

impl std::fmt::Debug for ExoscaleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExoscaleKey")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A Cloudflare legacy e-mail + global API key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct CloudflareKey {
    /// Name shown in counters.
    pub name: String,
    /// Account e-mail (`X-Auth-Email`).
    pub email: String,
    /// Global API key (`X-Auth-Key`).
    pub key: String,
}

impl std::fmt::Debug for CloudflareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareKey")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Which credentials each API accepts. Every credential sees the same account (one account per
/// provider); the name separates their request counters and rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Linode tokens.
    pub linode: Vec<Token>,
    /// DigitalOcean tokens.
    pub digitalocean: Vec<Token>,
    /// Vultr API keys.
    pub vultr: Vec<Token>,
    /// Cloudflare API tokens.
    pub cloudflare: Vec<Token>,
    /// Cloudflare legacy e-mail + key pairs.
    pub cloudflare_keys: Vec<CloudflareKey>,
    /// Exoscale key pairs.
    pub exoscale: Vec<ExoscaleKey>,
}

impl Default for Credentials {
    fn default() -> Self {
        use defaults::*;
        Self {
            linode: vec![Token::new(CREDENTIAL_NAME, LINODE_TOKEN)],
            digitalocean: vec![Token::new(CREDENTIAL_NAME, DIGITALOCEAN_TOKEN)],
            vultr: vec![Token::new(CREDENTIAL_NAME, VULTR_TOKEN)],
            cloudflare: vec![Token::new(CREDENTIAL_NAME, CLOUDFLARE_TOKEN)],
            cloudflare_keys: vec![CloudflareKey {
                name: "legacy".into(),
                email: CLOUDFLARE_EMAIL.into(),
                key: CLOUDFLARE_KEY.into(),
            }],
            exoscale: vec![ExoscaleKey {
                name: CREDENTIAL_NAME.into(),
                key: EXOSCALE_KEY.into(),
                secret: EXOSCALE_SECRET.into(),
            }],
        }
    }
}

impl Credentials {
    /// The bearer tokens of `provider` (empty for Exoscale, which signs instead).
    pub fn tokens(&self, provider: Provider) -> &[Token] {
        match provider {
            Provider::Linode => &self.linode,
            Provider::DigitalOcean => &self.digitalocean,
            Provider::Vultr => &self.vultr,
            Provider::Cloudflare => &self.cloudflare,
            Provider::Exoscale => &[],
        }
    }
}

/// `requests` per `per`, counted per credential over a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRule {
    /// Requests allowed…
    pub requests: u32,
    /// …per this window.
    pub per: Duration,
}

impl RateRule {
    /// `requests` per `secs` seconds.
    pub const fn per_secs(requests: u32, secs: u64) -> Self {
        Self {
            requests,
            per: Duration::from_secs(secs),
        }
    }
}

/// A provider's rate limits: every rule in `general` applies to every request; `creates` also apply to
/// machine creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Limits on every request.
    pub general: Vec<RateRule>,
    /// Extra limits on machine creates.
    pub creates: Vec<RateRule>,
}

impl RateLimits {
    /// The provider's published limits: Linode 1600/min and 20 instance creates per 15 s; DigitalOcean
    /// 250/min and 5000/h; Vultr 30/s; Cloudflare 1200 per 5 min; Exoscale none (unpublished).
    pub fn published(provider: Provider) -> Self {
        match provider {
            Provider::Linode => Self {
                general: vec![RateRule::per_secs(1600, 60)],
                creates: vec![RateRule::per_secs(20, 15)],
            },
            Provider::DigitalOcean => Self {
                general: vec![RateRule::per_secs(250, 60), RateRule::per_secs(5000, 3600)],
                creates: vec![],
            },
            Provider::Vultr => Self {
                general: vec![RateRule::per_secs(30, 1)],
                creates: vec![],
            },
            Provider::Cloudflare => Self {
                general: vec![RateRule::per_secs(1200, 300)],
                creates: vec![],
            },
            Provider::Exoscale => Self::default(),
        }
    }
}

/// Ports to listen on; 0 picks a free one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ports {
    /// Linode API.
    pub linode: u16,
    /// DigitalOcean API.
    pub digitalocean: u16,
    /// Vultr API.
    pub vultr: u16,
    /// Exoscale API (every zone).
    pub exoscale: u16,
    /// Cloudflare API.
    pub cloudflare: u16,
    /// Admin API (faults, counters, machines).
    pub admin: u16,
}

impl Ports {
    /// The configured port of `provider`'s API.
    pub fn of(&self, provider: Provider) -> u16 {
        match provider {
            Provider::Linode => self.linode,
            Provider::DigitalOcean => self.digitalocean,
            Provider::Vultr => self.vultr,
            Provider::Exoscale => self.exoscale,
            Provider::Cloudflare => self.cloudflare,
        }
    }
}

/// One S3-compatible endpoint: a provider's object storage in one region (cluster), with its own
/// credentials and data directory.
#[derive(Clone, PartialEq, Eq)]
pub struct S3EndpointConfig {
    /// Provider.
    pub provider: Provider,
    /// Region or cluster id as the provider names it (`nl-ams-1`, `ams3`, `ams1`, `ch-gva-2`).
    pub region: String,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

impl S3EndpointConfig {
    /// An endpoint with deterministic credentials derived from provider and region.
    pub fn new(provider: Provider, region: &str) -> Self {
        let compact: String = region
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_uppercase();
        Self {
            provider,
            region: region.to_owned(),
            port: 0,
            access_key: format!("SIM{}{}", provider.as_str().to_uppercase(), compact),
            secret_key: format!("sim-secret-{}-{}", provider.as_str(), region),
        }
    }

    /// Default endpoints: two per machine provider.
    pub fn defaults() -> Vec<Self> {
        [
            (Provider::Linode, "nl-ams-1"),
            (Provider::Linode, "gb-lon-1"),
            (Provider::DigitalOcean, "ams3"),
            (Provider::DigitalOcean, "lon1"),
            (Provider::Vultr, "ams1"),
            (Provider::Vultr, "ewr1"),
            (Provider::Exoscale, "ch-gva-2"),
            (Provider::Exoscale, "de-fra-1"),
        ]
        .into_iter()
        .map(|(p, r)| Self::new(p, r))
        .collect()
    }
}

impl std::fmt::Debug for S3EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3EndpointConfig")
            .field("provider", &self.provider)
            .field("region", &self.region)
            .field("port", &self.port)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Everything a simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address every API listens on (default 127.0.0.1).
    pub bind: IpAddr,
    /// API ports.
    pub ports: Ports,
    /// How long a new machine provisions before it runs and answers health checks.
    pub boot_delay: Duration,
    /// How long a new managed database provisions before it is active.
    pub database_delay: Duration,
    /// The port every machine answers health checks on, at its own public IP (default 8080).
    pub health_port: u16,
    /// Where machines' public IPs come from (default 127.10.0.0/16; Linux routes all of 127/8 to
    /// loopback, so binding them needs no setup).
    pub public_ips: Ipv4Net,
    /// Where state is kept across restarts; `None` keeps it in memory only.
    pub state_dir: Option<PathBuf>,
    /// Accepted credentials.
    pub credentials: Credentials,
    /// Rate limits per provider (default: each provider's published limits).
    pub rate_limits: BTreeMap<Provider, RateLimits>,
    /// S3 endpoints.
    pub s3: Vec<S3EndpointConfig>,
    /// Faults in force from start-up.
    pub faults: Vec<Fault>,
    /// The Exoscale zone `…/v2` (without a zone prefix) serves.
    pub exoscale_default_zone: String,
    /// Cloudflare zones that exist from the start.
    pub cloudflare_zones: Vec<String>,
    /// Zones the DNS of Linode, DigitalOcean, Vultr and Exoscale each hold from the start.
    pub provider_zones: Vec<String>,
    /// Keep every API request received (method, path, query, body), for [`crate::RunningSim::take_requests`].
    pub record_requests: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: Ports::default(),
            boot_delay: Duration::from_secs(2),
            database_delay: Duration::from_secs(2),
            health_port: 8080,
            public_ips: Ipv4Net::new(Ipv4Addr::new(127, 10, 0, 0), 16).unwrap_or_default(),
            state_dir: None,
            credentials: Credentials::default(),
            rate_limits: Provider::ALL
                .into_iter()
                .map(|p| (p, RateLimits::published(p)))
                .collect(),
            s3: S3EndpointConfig::defaults(),
            faults: Vec::new(),
            exoscale_default_zone: "ch-gva-2".into(),
            cloudflare_zones: vec!["example.com".into()],
            provider_zones: vec!["example.com".into()],
            record_requests: false,
        }
    }
}

impl SimConfig {
    /// The rate limits of `provider` (none when not configured).
    pub fn rate_limits_of(&self, provider: Provider) -> RateLimits {
        self.rate_limits.get(&provider).cloned().unwrap_or_default()
    }
}
