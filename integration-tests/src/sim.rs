//! The cloud simulator and a provisioner pointed at it, as tests and benchmarks set them up.

use std::time::Duration;

use flotilla_cloudsim::{RunningSim, SimConfig, Simulator, defaults};
use flotilla_provisioner::Settings;
use flotilla_provisioner::clouds::{Endpoints, SimulatorCredentials};
use flotilla_spec::Secret;

/// A simulator whose machines boot after `boot` and managed databases become ready after `database`, with
/// health checks on a free port.
pub async fn simulator(boot: Duration, database: Duration) -> RunningSim {
    Simulator::start(SimConfig {
        boot_delay: boot,
        database_delay: database,
        health_port: crate::free_port(),
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

/// The simulator's endpoints for every provider.
pub fn endpoints(sim: &RunningSim) -> Endpoints {
    Endpoints {
        linode: Some(sim.linode_url().to_owned()),
        digitalocean: Some(sim.digitalocean_url().to_owned()),
        vultr: Some(sim.vultr_url().to_owned()),
        exoscale: Some(sim.exoscale_zone_url("{zone}")),
    }
}

/// The simulator's built-in credentials for every provider.
pub fn credentials() -> SimulatorCredentials {
    SimulatorCredentials {
        linode_token: Some(Secret::new(defaults::LINODE_TOKEN)),
        digitalocean_token: Some(Secret::new(defaults::DIGITALOCEAN_TOKEN)),
        vultr_token: Some(Secret::new(defaults::VULTR_TOKEN)),
        exoscale_key: Some(Secret::new(defaults::EXOSCALE_KEY)),
        exoscale_secret: Some(Secret::new(defaults::EXOSCALE_SECRET)),
    }
}

/// Provisioner settings against `sim`: its endpoints and credentials, its health checks, short polls, and
/// no periodic reconciliation (a test that wants it sets `reconcile_interval`).
pub fn provisioner_settings(sim: &RunningSim) -> Settings {
    Settings {
        endpoints: endpoints(sim),
        simulator_credentials: Some(credentials()),
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
