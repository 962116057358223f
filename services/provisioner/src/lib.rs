//! The Flotilla `provisioner` service: Machines, VPCs and managed databases of every region, on every provider.
//!
//! It consumes `flotilla.cmd.provisioner.<deployment>.<region>.<verb>` through its durable consumer and answers
//! `flotilla.api.provisioner.status` and the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
//! Its command routes so far: `provisioner.apply.v1` — make one region's machines match its spec (create
//! fencing, boot and health checks, replacements), then publish a `MachineChanged` event per machine and a
//! `RegionApplied` event; `provisioner.destroy.v1` — remove everything Flotilla created in a region (what it
//! recorded, and anything still carrying the region's marks) and nothing else. Machine-level commands,
//! primary-first waiting, VPCs, the DBaaS and periodic reconciliation come with the rest of the
//! provisioner's issue.

pub mod apply;
pub mod clouds;
pub mod handler;
pub mod plan;
pub mod store;

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "provisioner",
    version: env!("CARGO_PKG_VERSION"),
    description: "Machines, VPCs and managed databases of every region, on every provider",
    admin_port: 9101,
};

pub use handler::Settings;

/// The command routes of the service.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    let provisioner = handler::Provisioner::new(
        ctx.config.service.clone(),
        ctx.config.secrets_file.clone(),
        ctx.store.clone(),
        ctx.publisher.clone(),
    );
    let for_destroy = std::sync::Arc::clone(&provisioner);
    Dispatcher::new(ctx.def.name)
        .on(move |cmd: flotilla_proto::ApplyRegion, delivery| {
            let provisioner = std::sync::Arc::clone(&provisioner);
            async move { provisioner.apply(cmd, delivery).await }
        })
        .on(move |cmd: flotilla_proto::DestroyRegion, delivery| {
            let provisioner = std::sync::Arc::clone(&for_destroy);
            async move { provisioner.destroy(cmd, delivery).await }
        })
}
