//! The cloud simulator and a provisioner pointed at it, as tests and benchmarks set them up.

use std::time::Duration;

use flotilla_cloudsim::{RunningSim, SimConfig, Simulator, defaults};
use flotilla_provisioner::Settings;
use flotilla_provisioner::clouds::{CloudSettings, Endpoints, SimulatorCredentials};
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
