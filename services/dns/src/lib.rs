//! The Flotilla `dns` service: The site's DNS records: reverse proxies in round-robin, one active authenticator.
//!
//! It consumes `flotilla.cmd.dns.<deployment>.<region>.<verb>` through its durable consumer (`failover`:
//! point the authenticator name at a region's authenticator) and answers `flotilla.api.dns.records|hand-over|
//! adopt|status` and the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
//!
//! - [`plan`]: the pure core — the wanted record sets from the spec, fleet and health; the active
//!   authenticator region; the difference with a zone's records (owned records only, foreign ones reported
//!   as conflicts).
//! - [`store`]: the service's database — the ownership registry and the active authenticator.
//! - [`service`]: the record loop (views → one list of the zone → plan → apply, by the replica holding the
//!   deployment's lease), its events, the API and the `failover` handler.

pub mod plan;
pub mod service;
pub mod store;

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "dns",
    version: env!("CARGO_PKG_VERSION"),
    description: "The site's DNS records: reverse proxies in round-robin, one active authenticator",
    admin_port: 9102,
    migrations: Some(store::migrations),
};

pub use service::Settings;

/// The command routes of the service (`failover`, `reconcile`), its record loop and its API.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    let records = service::start(ctx);
    let again = std::sync::Arc::clone(&records);
    Dispatcher::new(ctx.def.name)
        .on(move |cmd: flotilla_proto::FailoverAuthenticator, _delivery| {
            let records = std::sync::Arc::clone(&records);
            async move { records.failover(cmd).await }
        })
        .on(move |cmd: flotilla_proto::ReconcileRecords, _delivery| {
            let records = std::sync::Arc::clone(&again);
            async move { records.reconcile_now(cmd).await }
        })
}
