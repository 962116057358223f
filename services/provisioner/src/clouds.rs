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
