//! The Flotilla `provisioner` service: Machines, VPCs and managed databases of every region, on every provider.
//!
//! It consumes `flotilla.cmd.provisioner.<deployment>.<region>.<verb>` through its durable consumer and answers
//! `flotilla.api.provisioner.status` and the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
//! Its command routes so far: none — the `apply`, `destroy` and machine-level commands come with the issue that builds them; until then every
//! command sent to it is dead-lettered as an unknown kind, with the reason, rather than left to rot.

pub mod apply;
pub mod clouds;
pub mod plan;
pub mod store;

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef, config::NoSettings};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "provisioner",
    version: env!("CARGO_PKG_VERSION"),
    description: "Machines, VPCs and managed databases of every region, on every provider",
    admin_port: 9101,
};

/// The service's own settings (`[service]` in its configuration).
pub type Settings = NoSettings;

/// The command routes of the service.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    Dispatcher::new(ctx.def.name)
}
