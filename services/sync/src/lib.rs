//! The Flotilla `sync` service: Webroots, assets and backups kept in step across regions through S3 datastores.
//!
//! It consumes `flotilla.cmd.sync.<deployment>.<region>.<verb>` through its durable consumer and answers
//! `flotilla.api.sync.status` and the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
//! Its command routes so far: none — webroot sync, asset mirroring and backups come with the issue that builds them; until then every
//! command sent to it is dead-lettered as an unknown kind, with the reason, rather than left to rot.
//!
//! - [`plan`]: the pure core of replication — two sides' manifests and their last agreed base in, what to
//!   copy, delete and keep out (rclone bisync's semantics, with a max-delete guard).
//! - [`replicate`]: one pass of a bucket between two endpoints (list, plan, apply part by part, the new
//!   base only after a pass that fully succeeded).
//! - [`store`]: the service's database — each replicated bucket's base. The service loop, the agent and
//!   backups come next.

pub mod plan;
pub mod replicate;
pub mod store;

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef, config::NoSettings};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "sync",
    version: env!("CARGO_PKG_VERSION"),
    description: "Webroots, assets and backups kept in step across regions through S3 datastores",
    admin_port: 9104,
    migrations: Some(store::migrations),
};

/// The service's own settings (`[service]` in its configuration).
pub type Settings = NoSettings;

/// The command routes of the service.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    Dispatcher::new(ctx.def.name)
}
