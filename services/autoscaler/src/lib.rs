//! The Flotilla `autoscaler` service: Per-region webserver counts between min and max; unhealthy machines replaced.
//!
//! It consumes `flotilla.cmd.autoscaler.<deployment>.<region>.<verb>` through its durable consumer and answers
//! `flotilla.api.autoscaler.status` and the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
//! Its command routes so far: none — scaling decisions and replacement of unhealthy machines come with the issue that builds them; until then every
//! command sent to it is dead-lettered as an unknown kind, with the reason, rather than left to rot.

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef, config::NoSettings};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "autoscaler",
    version: env!("CARGO_PKG_VERSION"),
    description: "Per-region webserver counts between min and max; unhealthy machines replaced",
    admin_port: 9105,
    migrations: None,
};

/// The service's own settings (`[service]` in its configuration).
pub type Settings = NoSettings;

/// The command routes of the service.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    Dispatcher::new(ctx.def.name)
}
