//! The cloud simulator and a provisioner pointed at it, as tests and benchmarks set them up.

use std::time::Duration;

use flotilla_cloudsim::{RunningSim, SimConfig, Simulator, Token, defaults};
use flotilla_provisioner::Settings;
use flotilla_provisioner::clouds::{CloudSettings, Endpoints, SimulatorCredentials};
use flotilla_spec::Secret;

/// The name the observer's credentials are counted under at the simulator.
pub const OBSERVER: &str = "observer";
const OBSERVER_LINODE: &str = "observer-linode-token";
const OBSERVER_DIGITALOCEAN: &str = "observer-digitalocean-token";
const OBSERVER_VULTR: &str = "observer-vultr-token";
const OBSERVER_CLOUDFLARE: &str = "observer-cloudflare-token";
const OBSERVER_EXOSCALE_KEY: &str = "EXOobserver00000000000000000";
const OBSERVER_EXOSCALE_SECRET: &str = "observer-exoscale-secret";

/// A simulator whose machines boot after `boot` and managed databases become ready after `database`, with
/// health checks on a free port. Besides its default credentials it accepts an observer's
/// ([`observer_settings`]), for tests to read back what the services wrote.
pub async fn simulator(boot: Duration, database: Duration) -> RunningSim {
    Simulator::start(simulator_config(boot, database))
        .await
        .expect("the simulator starts")
}

/// The configuration [`simulator`] starts with, for a test that adds to it (credentials, endpoints).
pub fn simulator_config(boot: Duration, database: Duration) -> SimConfig {
    let mut credentials = flotilla_cloudsim::Credentials::default();
    credentials.linode.push(Token::new(OBSERVER, OBSERVER_LINODE));
    credentials
        .digitalocean
        .push(Token::new(OBSERVER, OBSERVER_DIGITALOCEAN));
    credentials.vultr.push(Token::new(OBSERVER, OBSERVER_VULTR));
    credentials
        .cloudflare
        .push(Token::new(OBSERVER, OBSERVER_CLOUDFLARE));
    credentials.exoscale.push(flotilla_cloudsim::ExoscaleKey {
        name: OBSERVER.into(),
        key: OBSERVER_EXOSCALE_KEY.into(),
        secret: OBSERVER_EXOSCALE_SECRET.into(),
    });
    SimConfig {
        boot_delay: boot,
        database_delay: database,
        health_port: crate::free_port(),
        credentials,
        ..SimConfig::default()
    }
}

/// The `[clouds]` settings of `sim` with the observer's credentials instead of the services': a test that
/// polls the providers through them draws on a rate budget of its own (the client-side limiter is per
/// credential, shared by everything in the process), so its polling never slows the services it watches,
/// and its requests are counted apart at the simulator.
pub fn observer_settings(sim: &RunningSim) -> CloudSettings {
    let mut settings = sim.cloud_settings();
    if let Some(c) = settings.simulator.as_mut() {
        c.linode_token = Some(Secret::new(OBSERVER_LINODE));
        c.digitalocean_token = Some(Secret::new(OBSERVER_DIGITALOCEAN));
        c.vultr_token = Some(Secret::new(OBSERVER_VULTR));
        c.cloudflare_token = Some(Secret::new(OBSERVER_CLOUDFLARE));
        c.exoscale_key = Some(Secret::new(OBSERVER_EXOSCALE_KEY));
        c.exoscale_secret = Some(Secret::new(OBSERVER_EXOSCALE_SECRET));
    }
    settings
}

/// The simulator's provider endpoints.
pub fn endpoints(sim: &RunningSim) -> Endpoints {
    sim.cloud_settings().endpoints
}

/// The simulator's credentials (for any simulator: they are fixed).
pub fn credentials() -> flotilla_provisioner::clouds::SimulatorCredentials {
    SimulatorCredentials {
        linode_token: Some(Secret::new(defaults::LINODE_TOKEN)),
        digitalocean_token: Some(Secret::new(defaults::DIGITALOCEAN_TOKEN)),
        vultr_token: Some(Secret::new(defaults::VULTR_TOKEN)),
        exoscale_key: Some(Secret::new(defaults::EXOSCALE_KEY)),
        exoscale_secret: Some(Secret::new(defaults::EXOSCALE_SECRET)),
        cloudflare_token: Some(Secret::new(defaults::CLOUDFLARE_TOKEN)),
        s3: Default::default(),
    }
}

/// The `[clouds]` settings pointing every service at the simulator, with its credentials.
pub fn cloud_settings(sim: &RunningSim) -> CloudSettings {
    sim.cloud_settings()
}

/// The provisioner's own settings for tests against `sim`: its health port, short timeouts, no periodic
/// reconcile.
pub fn provisioner_settings(sim: &RunningSim) -> Settings {
    Settings {
        health_port: sim.health_port(),
        health_path: "/health".into(),
        boot_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(50),
        reconcile_interval: Duration::from_secs(3600),
        primary_wait: Duration::from_secs(60),
        dbaas_timeout: Duration::from_secs(60),
        ..Settings::default()
    }
}

/// The `[clouds]` section of a service's configuration file pointing at the simulator's S3 endpoints
/// `endpoints` (for a service binary run as a process that only needs datastores, such as the sync agent):
/// the Linode endpoint at `linode_url` (the configuration wants one endpoint overridden before it accepts
/// simulator credentials), and each S3 endpoint keyed by the host base it stands in for.
pub fn datastores_toml(linode_url: &str, endpoints: &[flotilla_cloudsim::S3Endpoint]) -> String {
    let mut out = format!("[clouds.endpoints]\nlinode = {linode_url:?}\n");
    for e in endpoints {
        if let Some(host) = e.host_base() {
            out.push_str(&format!(
                "\n[clouds.simulator.s3.{host:?}]\nurl = {:?}\naccess_key = {:?}\nsecret_key = {:?}\n",
                e.url, e.access_key, e.secret_key
            ));
        }
    }
    out
}
