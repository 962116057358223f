//! The Flotilla `firewall` service: provider-native firewalls per role, and the DBaaS allow-list.
//!
//! It consumes `flotilla.cmd.firewall.<deployment>.<region>.<verb>` through its durable consumer
//! (`reconcile`: now, rather than at the next change) and answers `flotilla.api.firewall.show|why|
//! machine-rules|status` and the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
//!
//! - [`plan`]: the pure core — each role's rules, the allow-list with why each entry is there and each
//!   machine left out is, and the difference with what a provider holds.
//! - [`service`]: the loop (views → one read of the provider → plan → apply, by the replica holding the
//!   deployment's lease), its events, the API and the `reconcile` handler.
//! - [`markers`]: the original toolkit's `dbaas_ips/<ip>` markers, kept in step both ways.
//! - [`store`]: the service's database — what was last written to each target (drift detection).

pub mod markers;
pub mod plan;
pub mod service;
pub mod store;

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "firewall",
    version: env!("CARGO_PKG_VERSION"),
    description: "Provider-native firewalls per role and the DBaaS allow-list",
    admin_port: 9103,
    migrations: Some(store::migrations),
};

pub use service::Settings;

/// The command routes of the service (`reconcile`), its loop and its API.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    let service = service::start(ctx);
    Dispatcher::new(ctx.def.name).on(move |cmd: flotilla_proto::ReconcileFirewalls, _delivery| {
        let service = std::sync::Arc::clone(&service);
        async move { service.reconcile_now(cmd).await }
    })
}
