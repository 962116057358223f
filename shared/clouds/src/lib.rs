//! From credentials to provider adapters, the same way for every service.
//!
//! [`Clouds`] turns a region of a deployment into the adapters that manage it — compute, networks,
//! managed databases ([`RegionCloud`]), DNS ([`Clouds::dns`]) and the region's S3 datastores
//! ([`Clouds::datastores`]) — with credentials read afresh from the secrets file (keyed by deployment and
//! region, so one process serves several deployments; a rotated file is picked up by the next call), or,
//! under `flotilla dev` and in tests, the simulator's credentials from the `[clouds]` settings. Simulator
//! credentials are only ever sent to an overridden endpoint: a provider without one is refused, never
//! called.
//!
//! Every adapter made for the same provider account shares one rate limiter in the process (the
//! `flotilla-cloud` limiter registry), however many times it is rebuilt.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flotilla_cloud::{CloudError, Compute, Dns, ManagedDatabases, Network, ProviderKind};
use flotilla_datastore::{DatastoreError, DatastoreOptions, DatastoreSet};
use flotilla_spec::{
    CloudProvider, CloudflareAuth, DatastoreCredentials, DnsProvider, Region, RegionSecrets, Secret,
    SecretsFile,
};

/// The Exoscale zone whose endpoint serves Exoscale DNS to deployments whose primary region is elsewhere.
pub const EXOSCALE_DNS_ZONE: &str = "ch-gva-2";

/// Why a region's adapters could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CloudsError {
    /// The service has no secrets file and no simulator settings.
    #[error("no secrets_file is configured: the service cannot reach any cloud")]
    NoSecretsFile,
    /// The secrets file cannot be read or parsed.
    #[error("secrets file {path}: {reason}")]
    Secrets {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The secrets file has nothing for this region.
    #[error("the secrets file has no credentials for region {region} of deployment {deployment}")]
    NoCredentials {
        /// Deployment.
        deployment: String,
        /// Region.
        region: String,
    },
    /// A credential the provider needs is missing.
    #[error("region {region}: no {key} in the secrets{}", if deployment.is_empty() { String::new() } else { format!(" of deployment {deployment}") })]
    MissingKey {
        /// Deployment.
        deployment: String,
        /// Region.
        region: String,
        /// The missing key.
        key: &'static str,
    },
    /// Simulator credentials are set but this provider has no simulator endpoint.
    #[error(
        "simulator credentials are set but {provider} has no simulator endpoint; refusing to call the real API"
    )]
    NoSimulatorEndpoint {
        /// The provider.
        provider: String,
    },
    /// The adapter refused its configuration.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The datastore clients could not be built.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
}

impl CloudsError {
    /// Whether trying again later can help (a secrets file being rewritten, a cloud error that is).
    pub fn is_retryable(&self) -> bool {
        match self {
            CloudsError::Secrets { .. } => true,
            CloudsError::Cloud(e) => e.is_retryable(),
            CloudsError::Datastore(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// How long a caller waits at most on a provider's `Retry-After` before trying again: the provider's word,
/// capped (a misbehaving or hostile answer cannot park work for hours).
pub fn retry_after(e: &CloudError) -> Option<Duration> {
    e.retry_after().map(|d| d.min(MAX_RETRY_AFTER))
}

/// The longest `Retry-After` honoured outside the HTTP client (which has its own, equal, cap).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub use flotilla_cloud::settings::{CloudSettings, Endpoints, SimulatedS3, SimulatorCredentials};

/// The adapters of `region` with the given credentials, at `endpoints` (the real APIs where `None`).
pub fn connect(
    region: &Region,
    secrets: &RegionSecrets,
    endpoints: &Endpoints,
) -> Result<RegionCloud, CloudsError> {
    let clouds = Clouds::new(
        CloudSettings {
            endpoints: endpoints.clone(),
            simulator: None,
        },
        None,
    );
    ExplicitSecrets {
        clouds: &clouds,
        secrets,
    }
    .region("", region)
}

/// The adapters of one region's provider account.
#[derive(Clone)]
pub struct RegionCloud {
    /// Which provider.
    pub provider: ProviderKind,
    /// Machines.
    pub compute: Arc<dyn Compute>,
    /// VPCs and firewalls.
    pub network: Arc<dyn Network>,
    /// Managed databases.
    pub databases: Arc<dyn ManagedDatabases>,
}

impl std::fmt::Debug for RegionCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionCloud")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// What every provider adapter is: one client per account serving all four roles.
trait ProviderAdapter: Compute + Network + ManagedDatabases + Dns + 'static {}
impl<T: Compute + Network + ManagedDatabases + Dns + 'static> ProviderAdapter for T {}

/// Makes adapters for any deployment and region, from the secrets file or the simulator's settings.
#[derive(Debug, Clone)]
pub struct Clouds {
    settings: CloudSettings,
    secrets_file: Option<PathBuf>,
}

impl Clouds {
    /// Adapters per `settings` (the `[clouds]` section), with credentials from `secrets_file`.
    pub fn new(settings: CloudSettings, secrets_file: Option<PathBuf>) -> Self {
        Self {
            settings,
            secrets_file,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &CloudSettings {
        &self.settings
    }

    /// Whether the simulator's credentials are used.
    pub fn simulated(&self) -> bool {
        self.settings.simulator.is_some()
    }

    fn simulator(&self) -> Option<&SimulatorCredentials> {
        self.settings.simulator.as_ref()
    }

    /// The region's secrets from the secrets file, read now.
    fn file_secrets(&self, deployment: &str, region: &str) -> Result<RegionSecrets, CloudsError> {
        let path = self.secrets_file.as_ref().ok_or(CloudsError::NoSecretsFile)?;
        let file = SecretsFile::load(path).map_err(|e| CloudsError::Secrets {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        file.region(deployment, region)
            .cloned()
            .ok_or_else(|| CloudsError::NoCredentials {
                deployment: deployment.to_owned(),
                region: region.to_owned(),
            })
    }

    /// The cloud credentials of `region` of `deployment`: the simulator's (only for a provider with a
    /// simulator endpoint), or the secrets file's, read now.
    fn region_secrets(&self, deployment: &str, region: &Region) -> Result<RegionSecrets, CloudsError> {
        match self.simulator() {
            Some(sim) => {
                if self.settings.endpoints.get(region.provider).is_none() {
                    return Err(CloudsError::NoSimulatorEndpoint {
                        provider: region.provider.as_str().to_owned(),
                    });
                }
                Ok(sim.for_provider(region.provider))
            }
            None => self.file_secrets(deployment, &region.name),
        }
    }

    /// The compute, network and managed-database adapters of `region` of `deployment`.
    pub fn region(&self, deployment: &str, region: &Region) -> Result<RegionCloud, CloudsError> {
        let secrets = self.region_secrets(deployment, region)?;
        ExplicitSecrets {
            clouds: self,
            secrets: &secrets,
        }
        .region(deployment, region)
    }

    /// The DNS adapter of `deployment` for `provider` (the deployment's `DNS_CHOICE`), with the DNS
    /// credentials of `region` (the region whose template carried them — the primary, usually).
    pub fn dns(
        &self,
        deployment: &str,
        provider: DnsProvider,
        region: &Region,
    ) -> Result<Arc<dyn Dns>, CloudsError> {
        let missing = |key| CloudsError::MissingKey {
            deployment: deployment.to_owned(),
            region: region.name.clone(),
            key,
        };
        let cloud_provider = match provider {
            DnsProvider::Linode => CloudProvider::Linode,
            DnsProvider::DigitalOcean => CloudProvider::DigitalOcean,
            DnsProvider::Vultr => CloudProvider::Vultr,
            DnsProvider::Exoscale => CloudProvider::Exoscale,
            DnsProvider::Cloudflare => return self.cloudflare(deployment, region),
        };
        // A provider's own DNS: the same account as its compute under the simulator; the template's DNS
        // key otherwise.
        let mut dns_region = region.clone();
        if region.provider != cloud_provider && cloud_provider == CloudProvider::Exoscale {
            // Exoscale's DNS is global but served under a zone's endpoint: a region on another provider
            // names no Exoscale zone, so use Exoscale's first.
            dns_region.provider_region = EXOSCALE_DNS_ZONE.to_owned();
        }
        dns_region.provider = cloud_provider;
        let secrets = if self.simulated() {
            self.region_secrets(deployment, &dns_region)?
        } else {
            let dns = self
                .file_secrets(deployment, &region.name)?
                .dns
                .ok_or_else(|| missing("DNS_SECURITY_KEY"))?;
            let mut creds = RegionSecrets::default();
            match cloud_provider {
                CloudProvider::Exoscale => {
                    let key = dns.security_key.expose();
                    let (access, secret) = key.split_once(':').unwrap_or((key, ""));
                    creds.cloud.access_key = Some(Secret::new(access));
                    creds.cloud.secret_key = Some(Secret::new(secret));
                }
                _ => creds.cloud.token = Some(dns.security_key.clone()),
            }
            creds
        };
        let adapter = ExplicitSecrets {
            clouds: self,
            secrets: &secrets,
        }
        .adapter(deployment, &dns_region)?;
        Ok(adapter)
    }

    /// The Cloudflare adapter of `deployment`, with the DNS credentials of `region` (under the simulator,
    /// its Cloudflare token; the adapter does not use the account id, which stays empty there).
    fn cloudflare(&self, deployment: &str, region: &Region) -> Result<Arc<dyn Dns>, CloudsError> {
        let missing = |key| CloudsError::MissingKey {
            deployment: deployment.to_owned(),
            region: region.name.clone(),
            key,
        };
        let endpoints = &self.settings.endpoints;
        let (auth, base_url) = match self.simulator() {
            Some(sim) => {
                let url = endpoints
                    .cloudflare
                    .clone()
                    .ok_or_else(|| CloudsError::NoSimulatorEndpoint {
                        provider: "cloudflare".into(),
                    })?;
                let token = sim
                    .cloudflare_token
                    .clone()
                    .ok_or_else(|| missing("DNS_SECURITY_KEY"))?;
                (
                    CloudflareAuth::ApiToken {
                        account_id: String::new(),
                        token,
                    },
                    Some(url),
                )
            }
            None => {
                let secrets = self.file_secrets(deployment, &region.name)?;
                let dns = secrets.dns.ok_or_else(|| missing("DNS_SECURITY_KEY"))?;
                (dns.cloudflare_auth(), endpoints.cloudflare.clone())
            }
        };
        let mut cfg = flotilla_cloudflare::CloudflareConfig::new(auth);
        cfg.base_url = base_url;
        Ok(Arc::new(flotilla_cloudflare::Cloudflare::new(cfg)?))
    }

    /// The S3 datastores of `region` of `deployment` (endpoint 1 is the one reads use; writes fan out to
    /// all). Under the simulator every endpoint must have a simulated stand-in.
    pub fn datastores(&self, deployment: &str, region: &Region) -> Result<DatastoreSet, CloudsError> {
        match self.simulator() {
            Some(sim) => {
                let mut options = DatastoreOptions::default();
                let mut secrets = RegionSecrets::default();
                for (index, endpoint) in region.datastores.iter().enumerate() {
                    let s3 =
                        sim.s3
                            .get(&endpoint.host_base)
                            .ok_or_else(|| CloudsError::NoSimulatorEndpoint {
                                provider: format!("the datastore {}", endpoint.host_base),
                            })?;
                    options = options.with_override(index, s3.url.clone());
                    secrets.datastores.push(DatastoreCredentials {
                        access_key: s3.access_key.clone(),
                        secret_key: s3.secret_key.clone(),
                    });
                }
                Ok(DatastoreSet::from_region_with(region, &secrets, &options)?)
            }
            None => {
                let secrets = self.file_secrets(deployment, &region.name)?;
                Ok(DatastoreSet::from_region(region, &secrets)?)
            }
        }
    }
}

/// A [`Clouds`] with credentials given rather than looked up.
struct ExplicitSecrets<'a> {
    clouds: &'a Clouds,
    secrets: &'a RegionSecrets,
}

impl ExplicitSecrets<'_> {
    fn token(&self, deployment: &str, region: &Region) -> Result<String, CloudsError> {
        self.secrets
            .cloud
            .token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .ok_or_else(|| CloudsError::MissingKey {
                deployment: deployment.to_owned(),
                region: region.name.clone(),
                key: "TOKEN",
            })
    }

    fn exoscale(
        &self,
        deployment: &str,
        region: &Region,
    ) -> Result<flotilla_exoscale::Exoscale, CloudsError> {
        let missing = |key| CloudsError::MissingKey {
            deployment: deployment.to_owned(),
            region: region.name.clone(),
            key,
        };
        let key = self
            .secrets
            .cloud
            .access_key
            .clone()
            .ok_or_else(|| missing("ACCESS_KEY"))?;
        let secret = self
            .secrets
            .cloud
            .secret_key
            .clone()
            .ok_or_else(|| missing("SECRET_KEY"))?;
        let mut cfg = flotilla_exoscale::ExoscaleConfig::new(region.provider_region.clone(), key, secret);
        if let Some(url) = &self.clouds.settings.endpoints.exoscale {
            cfg = cfg.with_base_url(url.clone());
        }
        Ok(flotilla_exoscale::Exoscale::new(cfg)?)
    }

    /// The one adapter of `region`'s provider account (it serves compute, networks, managed databases
    /// and the provider's DNS alike).
    fn adapter(&self, deployment: &str, region: &Region) -> Result<Arc<dyn ProviderAdapter>, CloudsError> {
        let endpoints = &self.clouds.settings.endpoints;
        Ok(match region.provider {
            CloudProvider::Linode => {
                let mut cfg = flotilla_linode::LinodeConfig::new(self.token(deployment, region)?);
                cfg.base_url = endpoints.linode.clone();
                Arc::new(flotilla_linode::LinodeCloud::new(cfg)?)
            }
            CloudProvider::DigitalOcean => Arc::new(flotilla_digitalocean::DigitalOceanCloud::new(
                flotilla_digitalocean::DigitalOceanConfig {
                    base_url: endpoints.digitalocean.clone(),
                    token: self.token(deployment, region)?,
                    rate: None,
                },
            )?),
            CloudProvider::Vultr => Arc::new(flotilla_vultr::VultrCloud::new(flotilla_vultr::VultrConfig {
                base_url: endpoints.vultr.clone(),
                token: self.token(deployment, region)?,
                rate: None,
            })?),
            CloudProvider::Exoscale => Arc::new(self.exoscale(deployment, region)?),
        })
    }

    fn region(&self, deployment: &str, region: &Region) -> Result<RegionCloud, CloudsError> {
        let adapter = self.adapter(deployment, region)?;
        Ok(RegionCloud {
            provider: ProviderKind::from(region.provider),
            compute: adapter.clone(),
            network: adapter.clone(),
            databases: adapter,
        })
    }
}
