//! The Flotilla `firewall` service: Provider-native firewalls per role and the DBaaS allow-list.
//!
//! It consumes `flotilla.cmd.firewall.<deployment>.<region>.<verb>` through its durable consumer and answers
//! `flotilla.api.firewall.status` and the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
//! Its command routes so far: none — firewall and allow-list reconciliation from machine events come with the issue that builds them; until then every
//! command sent to it is dead-lettered as an unknown kind, with the reason, rather than left to rot.

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef, config::NoSettings};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "firewall",
    version: env!("CARGO_PKG_VERSION"),
    description: "Provider-native firewalls per role and the DBaaS allow-list",
    admin_port: 9103,
    migrations: None,
};

/// The service's own settings (`[service]` in its configuration).
pub type Settings = NoSettings;

/// The command routes of the service.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    Dispatcher::new(ctx.def.name)
}
