//! The Flotilla `dns` service: The site's DNS records: reverse proxies in round-robin, one active authenticator.
//!
//! It consumes `flotilla.cmd.dns.<deployment>.<region>.<verb>` through its durable consumer and answers
//! `flotilla.api.dns.status` and the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
//! Its command routes so far: none — record reconciliation from machine events come with the issue that builds them; until then every
//! command sent to it is dead-lettered as an unknown kind, with the reason, rather than left to rot.
//!
//! Built so far: [`plan`], the pure core of the record loop (desired record sets from the fleet and health
//! views; the difference with a zone's records, owned records only, foreign ones reported as conflicts).

pub mod plan;

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef, config::NoSettings};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "dns",
    version: env!("CARGO_PKG_VERSION"),
    description: "The site's DNS records: reverse proxies in round-robin, one active authenticator",
    admin_port: 9102,
    migrations: None,
};

/// The service's own settings (`[service]` in its configuration).
pub type Settings = NoSettings;

/// The command routes of the service.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    Dispatcher::new(ctx.def.name)
}
