//! The Flotilla `dns` service: The site's DNS records: reverse proxies in round-robin, one active authenticator.
//!
//! It consumes `flotilla.cmd.dns.<deployment>.<region>.<verb>` through its durable consumer and answers
//! `flotilla.api.dns.status` and the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
//! Its command routes so far: none — record reconciliation from machine events come with the issue that builds them; until then every
//! command sent to it is dead-lettered as an unknown kind, with the reason, rather than left to rot.
//!
//! Built so far: [`plan`], the pure core of the record loop (desired record sets from the fleet and health
//! views; the difference with a zone's records, owned records only, foreign ones reported as conflicts),
//! and [`service`], a first record loop on it (Cloudflare ownership by comment mark; no commands, events or
//! API yet).

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

/// The command routes of the service (`failover`), its record loop and its API.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    let records = service::start(ctx);
    Dispatcher::new(ctx.def.name).on(move |cmd: flotilla_proto::FailoverAuthenticator, _delivery| {
        let records = std::sync::Arc::clone(&records);
        async move { records.failover(cmd).await }
    })
}
