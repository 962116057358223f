//! From a region's spec and its local secrets to the provider adapters that manage it.

use std::sync::Arc;

use flotilla_cloud::{CloudError, Compute, ManagedDatabases, Network, ProviderKind};
use flotilla_spec::{CloudProvider, Region, RegionSecrets, Secret};
use serde::Deserialize;

/// Base URLs that replace the providers' real APIs (the simulator, under `flotilla dev`); the `[service]`
/// section of the provisioner's configuration. Exoscale's may hold `{zone}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoints {
    /// Linode API v4 base URL.
    pub linode: Option<String>,
    /// DigitalOcean API v2 base URL.
    pub digitalocean: Option<String>,
    /// Vultr API v2 base URL.
    pub vultr: Option<String>,
    /// Exoscale API v2 base URL (`{zone}` is replaced by the region's zone).
    pub exoscale: Option<String>,
}

impl Endpoints {
    /// The base URL replacing `provider`'s real API, if any.
    pub fn get(&self, provider: CloudProvider) -> Option<&str> {
        match provider {
            CloudProvider::Linode => self.linode.as_deref(),
            CloudProvider::DigitalOcean => self.digitalocean.as_deref(),
            CloudProvider::Vultr => self.vultr.as_deref(),
            CloudProvider::Exoscale => self.exoscale.as_deref(),
        }
    }
}

/// Credentials used for every region instead of the secrets file: the simulator's, under `flotilla dev`,
/// so that a template deploys whatever credentials it carries. Only ever sent to an overridden endpoint:
/// a region whose provider has no endpoint override is refused rather than sent to the real API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorCredentials {
    /// Token for Linode, DigitalOcean and Vultr.
    pub linode_token: Option<Secret>,
    /// DigitalOcean token.
    pub digitalocean_token: Option<Secret>,
    /// Vultr token.
    pub vultr_token: Option<Secret>,
    /// Exoscale API key.
    pub exoscale_key: Option<Secret>,
    /// Exoscale API secret.
    pub exoscale_secret: Option<Secret>,
}

impl SimulatorCredentials {
    /// The credentials for `provider`, as a region's secrets.
    pub fn for_provider(&self, provider: CloudProvider) -> RegionSecrets {
        let mut secrets = RegionSecrets::default();
        match provider {
            CloudProvider::Linode => secrets.cloud.token = self.linode_token.clone(),
            CloudProvider::DigitalOcean => secrets.cloud.token = self.digitalocean_token.clone(),
            CloudProvider::Vultr => secrets.cloud.token = self.vultr_token.clone(),
            CloudProvider::Exoscale => {
                secrets.cloud.access_key = self.exoscale_key.clone();
                secrets.cloud.secret_key = self.exoscale_secret.clone();
            }
        }
        secrets
    }
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

fn both<T: Compute + Network + ManagedDatabases + 'static>(
    provider: ProviderKind,
    adapter: T,
) -> RegionCloud {
    let shared = Arc::new(adapter);
    RegionCloud {
        provider,
        compute: shared.clone(),
        network: shared.clone(),
        databases: shared,
    }
}

/// The adapters for `region`, with credentials from its secrets and the base URL from `endpoints` when
/// given (the real API otherwise).
pub fn connect(
    region: &Region,
    secrets: &RegionSecrets,
    endpoints: &Endpoints,
) -> Result<RegionCloud, CloudError> {
    let provider = ProviderKind::from(region.provider);
    let missing = |key: &str| CloudError::Auth {
        provider,
        message: format!("region {}: no {key} in the secrets file", region.name),
    };
    let token = || {
        secrets
            .cloud
            .token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .ok_or_else(|| missing("TOKEN"))
    };
    Ok(match region.provider {
        CloudProvider::Linode => {
            let mut cfg = flotilla_linode::LinodeConfig::new(token()?);
            cfg.base_url = endpoints.linode.clone();
            both(provider, flotilla_linode::LinodeCloud::new(cfg)?)
        }
        CloudProvider::DigitalOcean => both(
            provider,
            flotilla_digitalocean::DigitalOceanCloud::new(flotilla_digitalocean::DigitalOceanConfig {
                base_url: endpoints.digitalocean.clone(),
                token: token()?,
                rate: None,
            })?,
        ),
        CloudProvider::Vultr => both(
            provider,
            flotilla_vultr::VultrCloud::new(flotilla_vultr::VultrConfig {
                base_url: endpoints.vultr.clone(),
                token: token()?,
                rate: None,
            })?,
        ),
        CloudProvider::Exoscale => {
            let key: Secret = secrets
                .cloud
                .access_key
                .clone()
                .ok_or_else(|| missing("ACCESS_KEY"))?;
            let secret: Secret = secrets
                .cloud
                .secret_key
                .clone()
                .ok_or_else(|| missing("SECRET_KEY"))?;
            let mut cfg = flotilla_exoscale::ExoscaleConfig::new(region.provider_region.clone(), key, secret);
            if let Some(url) = &endpoints.exoscale {
                cfg = cfg.with_base_url(url.clone());
            }
            both(provider, flotilla_exoscale::Exoscale::new(cfg)?)
        }
    })
}
