//! Flotilla's Exoscale adapter: compute instances, private networks, security groups, DBaaS services and
//! their IP filters, and DNS through the Exoscale API v2.
//!
//! - [`Exoscale`] implements [`flotilla_cloud::Compute`], [`flotilla_cloud::Network`],
//!   [`flotilla_cloud::ManagedDatabases`] and [`flotilla_cloud::Dns`] for one account in one zone (the API
//!   is zone-local: `https://api-{zone}.exoscale.com/v2`, or the simulator's fixed URL).
//! - Every request is signed with EXO2-HMAC-SHA256 ([`ExoscaleSigner`]) and goes through
//!   [`flotilla_cloud::http::ApiClient`] (rate limit, retries).
//! - Every mutation answers with an operation; the adapter polls `GET /operation/{id}` with a growing delay
//!   until it succeeds, fails (mapped to a typed error by its reason) or the wait bound passes
//!   ([`OperationPolling`]).
//! - Ownership marks are instance labels; security groups have no labels, so theirs go in the description.
//!   Lists filter by label client-side after one call (the spec leaves the `labels` query format
//!   undocumented).
//! - Instance types (`tiny`, `standard.tiny`) and templates (by name) are resolved once and cached; ids are
//!   used as given.

#[doc(hidden)]
pub mod answers;
mod compute;
mod config;
mod dbaas;
mod dns;
mod errors;
mod network;
mod operation;
mod signer;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use flotilla_cloud::http::ApiClient;
use flotilla_cloud::{CloudError, ProviderKind, Result};

pub use config::{DEFAULT_BASE_URL, DEFAULT_DISK_SIZE_GIB, DEFAULT_RATE, ExoscaleConfig, OperationPolling};
pub use signer::ExoscaleSigner;

const P: ProviderKind = ProviderKind::Exoscale;

/// One Exoscale account in one zone.
#[derive(Debug)]
pub struct Exoscale {
    api: ApiClient,
    zone: String,
    polling: OperationPolling,
    disk_size_gib: u32,
    lookups: Mutex<Lookups>,
}

/// Name → id lookups that do not change while we run.
#[derive(Debug, Default)]
struct Lookups {
    /// `family.size` → instance type id.
    instance_types: HashMap<String, String>,
    /// Template name → id.
    templates: HashMap<String, String>,
    /// DBaaS service name → service type (`mysql`, `pg` …).
    dbaas_types: HashMap<String, String>,
}

impl Exoscale {
    /// An adapter for `config`'s account and zone. Every adapter of one key pair and zone endpoint in the
    /// process shares its rate budget ([`flotilla_cloud::http::Limiters::global`]).
    pub fn new(config: ExoscaleConfig) -> Result<Self> {
        if config.zone.trim().is_empty() {
            return Err(CloudError::Invalid {
                provider: P,
                field: Some("zone".into()),
                message: "an Exoscale zone is required (e.g. ch-gva-2)".into(),
            });
        }
        if config.api_key.is_empty() || config.api_secret.is_empty() {
            return Err(CloudError::Auth {
                provider: P,
                message: "an Exoscale API key and secret are required".into(),
            });
        }
        let signer = ExoscaleSigner::new(config.api_key.clone(), config.api_secret.clone());
        let api = ApiClient::new(
            P,
            &config.resolved_base_url(),
            Arc::new(signer),
            config.rate,
            config.retry,
            errors::map_error,
        )?;
        Ok(Self {
            api,
            zone: config.zone,
            polling: config.polling,
            disk_size_gib: config.disk_size_gib,
            lookups: Mutex::new(Lookups::default()),
        })
    }

    /// The zone this adapter drives.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The HTTP client (call counters for tests and metrics).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    fn lookups(&self) -> MutexGuard<'_, Lookups> {
        // The maps hold plain strings: a panic elsewhere cannot leave them half-written.
        self.lookups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a region other than this adapter's zone (each zone has its own endpoint).
    fn check_zone(&self, region: &str) -> Result<()> {
        if region == self.zone {
            Ok(())
        } else {
            Err(CloudError::Invalid {
                provider: P,
                field: Some("region".into()),
                message: format!("this Exoscale adapter drives zone {}, not {region:?}", self.zone),
            })
        }
    }
}

/// Whether `s` is a UUID (`8-4-4-4-12` hex digits), i.e. an id rather than a name.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("a02baf5a-a3e4-49a0-857b-8a08d276c1c0"));
        assert!(!is_uuid("standard.tiny"));
        assert!(!is_uuid("a02baf5a-a3e4-49a0-857b-8a08d276c1cz"));
    }

    #[test]
    fn a_zone_and_credentials_are_required() {
        let err = Exoscale::new(ExoscaleConfig::new(" ", "k", "s")).unwrap_err();
        assert!(matches!(err, CloudError::Invalid { .. }));
        let err = Exoscale::new(ExoscaleConfig::new("ch-gva-2", "k", "")).unwrap_err();
        assert!(matches!(err, CloudError::Auth { .. }));
        assert!(Exoscale::new(ExoscaleConfig::new("ch-gva-2", "k", "s")).is_ok());
    }

    #[test]
    fn adapters_of_one_key_pair_and_zone_share_its_budget() {
        let make = |zone: &str, key: &str, secret: &str| {
            Exoscale::new(ExoscaleConfig::new(zone, key, secret)).unwrap()
        };
        let limiter = |e: &Exoscale| Arc::clone(e.api().limiter().unwrap());
        let one = make("ch-gva-2", "EXObudget", "s1");
        let two = make("ch-gva-2", "EXObudget", "s1");
        assert!(Arc::ptr_eq(&limiter(&one), &limiter(&two)));
        for other in [
            make("ch-gva-2", "EXObudget", "s2"),
            make("ch-gva-2", "EXOother", "s1"),
            make("de-fra-1", "EXObudget", "s1"),
        ] {
            assert!(!Arc::ptr_eq(&limiter(&one), &limiter(&other)));
        }
    }
}
