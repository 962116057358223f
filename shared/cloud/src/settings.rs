//! Where the clouds are: the `[clouds]` section every service's configuration shares. Empty for the real
//! providers; under `flotilla dev` and in tests it points every service at the simulator, with the
//! simulator's credentials, so nothing can reach a real API.

use std::collections::BTreeMap;

use flotilla_spec::{CloudProvider, RegionSecrets, Secret};
use serde::Deserialize;

/// Base URLs that replace the providers' real APIs (the simulator's). Exoscale's may hold `{zone}`.
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
    /// Cloudflare API v4 base URL.
    pub cloudflare: Option<String>,
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

    /// Whether any endpoint is overridden.
    pub fn any(&self) -> bool {
        self.linode.is_some()
            || self.digitalocean.is_some()
            || self.vultr.is_some()
            || self.exoscale.is_some()
            || self.cloudflare.is_some()
    }
}

/// One simulated S3 endpoint: the stand-in for the datastore whose host base (as a region's spec gives
/// it, e.g. `nl-ams-1.linodeobjects.com`) is its key in [`SimulatorCredentials::s3`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedS3 {
    /// `http://127.0.0.1:PORT` (path-style addressing).
    pub url: String,
    /// Access key id.
    pub access_key: Secret,
    /// Secret key.
    pub secret_key: Secret,
}

/// Credentials used for every deployment and region instead of the secrets file: the simulator's. Only
/// ever sent to an overridden endpoint: a region whose provider has no endpoint override is refused rather
/// than sent to the real API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorCredentials {
    /// Linode token.
    pub linode_token: Option<Secret>,
    /// DigitalOcean token.
    pub digitalocean_token: Option<Secret>,
    /// Vultr token.
    pub vultr_token: Option<Secret>,
    /// Exoscale API key.
    pub exoscale_key: Option<Secret>,
    /// Exoscale API secret.
    pub exoscale_secret: Option<Secret>,
    /// Cloudflare API token.
    pub cloudflare_token: Option<Secret>,
    /// Simulated S3 endpoints, by the host base they stand in for.
    pub s3: BTreeMap<String, SimulatedS3>,
}

impl SimulatorCredentials {
    /// The cloud credentials for `provider`, as a region's secrets.
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

/// The `[clouds]` section of every service's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudSettings {
    /// Base URLs replacing the providers' real APIs.
    pub endpoints: Endpoints,
    /// The simulator's credentials, used instead of the secrets file; sent only to `endpoints`.
    pub simulator: Option<SimulatorCredentials>,
}

impl CloudSettings {
    /// Checks the settings can work: simulator credentials need at least one endpoint override (they are
    /// never sent to a real API), and every URL must parse.
    pub fn validate(&self) -> Result<(), String> {
        if self.simulator.is_some() && !self.endpoints.any() {
            return Err(
                "clouds.simulator is set but no clouds.endpoints: simulator credentials are only ever \
                 sent to overridden endpoints"
                    .into(),
            );
        }
        let e = &self.endpoints;
        for (name, url) in [
            ("linode", &e.linode),
            ("digitalocean", &e.digitalocean),
            ("vultr", &e.vultr),
            ("exoscale", &e.exoscale),
            ("cloudflare", &e.cloudflare),
        ] {
            if let Some(url) = url {
                let probe = url.replace("{zone}", "zone");
                url::Url::parse(&probe).map_err(|err| format!("clouds.endpoints.{name} {url:?}: {err}"))?;
            }
        }
        if let Some(sim) = &self.simulator {
            for (host, s3) in &sim.s3 {
                url::Url::parse(&s3.url)
                    .map_err(|err| format!("clouds.simulator.s3.{host:?}.url {:?}: {err}", s3.url))?;
            }
        }
        Ok(())
    }
}
