//! The Flotilla `provisioner` service: Machines, VPCs and managed databases of every region, on every provider.
//!
//! It consumes `flotilla.cmd.provisioner.<deployment>.<region>.<verb>` through its durable consumer:
//! `apply` (a region's VPC, the primary's DBaaS, its machines — a secondary waits for the primary's DBaaS),
//! `destroy` (everything Flotilla created in a region, and nothing else), `create-machines`,
//! `destroy-machine`, `replace-machine` (the autoscaler's) and `reconcile` (one region compared with its cloud
//! now). It publishes `MachineChanged`, `RegionApplied` and `DbaasReady` events, answers
//! `flotilla.api.provisioner.{machines,plan,status}` and the NATS service API, and reconciles every region
//! with its cloud every `reconcile_interval`. See ARCHITECTURE.md for how the modules fit.

pub mod api;
pub mod apply;
pub mod desired;
/// Adapters from credentials: the shared `flotilla-clouds` crate.
pub use flotilla_clouds as clouds;
pub mod handler;
pub mod infra;
pub mod lock;
pub mod plan;
pub mod store;

use std::sync::Arc;

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "provisioner",
    version: env!("CARGO_PKG_VERSION"),
    description: "Machines, VPCs and managed databases of every region, on every provider",
    admin_port: 9101,
    migrations: Some(store::migrations),
};

pub use handler::{Settings, Shared};

/// The command routes of the service, its API endpoints (`machines`, `plan`) and its reconciler.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    let provisioner = handler::Provisioner::new(
        ctx.config.service.clone(),
        flotilla_clouds::Clouds::new(ctx.config.clouds.clone(), ctx.config.secrets_file.clone()),
        ctx.store.clone(),
        ctx.publisher.clone(),
        Some(handler::Shared {
            leases: ctx.leases(),
            desired: ctx.desired(),
            fleet: ctx.fleet(),
        }),
    );
    let p = Arc::clone(&provisioner);
    ctx.api("accept", move |req: flotilla_proto::AcceptDeployment| {
        let p = Arc::clone(&p);
        async move { p.accept(req).await }
    });
    let p = Arc::clone(&provisioner);
    ctx.api("withdraw", move |req: flotilla_proto::WithdrawRegions| {
        let p = Arc::clone(&p);
        async move { p.withdraw(req).await }
    });
    let p = Arc::clone(&provisioner);
    ctx.api("machines", move |req: flotilla_proto::ListMachines| {
        let p = Arc::clone(&p);
        async move { p.list(req).await }
    });
    let p = Arc::clone(&provisioner);
    ctx.api("plan", move |req: flotilla_proto::ShowPlan| {
        let p = Arc::clone(&p);
        async move { p.show_plan(req).await }
    });
    ctx.spawn(reconciler(
        Arc::clone(&provisioner),
        ctx.leases(),
        ctx.shutdown.clone(),
    ));
    macro_rules! route {
        ($dispatcher:expr, $msg:ty, $method:ident) => {{
            let p = Arc::clone(&provisioner);
            $dispatcher.on(move |cmd: $msg, delivery| {
                let p = Arc::clone(&p);
                async move { p.$method(cmd, delivery).await }
            })
        }};
    }
    let d = Dispatcher::new(ctx.def.name);
    let d = route!(d, flotilla_proto::ApplyRegion, apply);
    let d = route!(d, flotilla_proto::DestroyRegion, destroy);
    let d = route!(d, flotilla_proto::CreateMachines, create_machines);
    let d = route!(d, flotilla_proto::DestroyMachine, destroy_machine);
    let d = route!(d, flotilla_proto::ReplaceMachine, replace_machine);
    route!(d, flotilla_proto::ReconcileRegion, reconcile)
}

/// Every `reconcile_interval`, the replica holding the reconcile lease compares every region with its
/// cloud (see [`handler::Provisioner::reconcile_all`]).
async fn reconciler(
    provisioner: Arc<handler::Provisioner>,
    leases: flotilla_bus::lease::Leases,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let every = provisioner.settings.reconcile_interval;
    let holder = uuid::Uuid::now_v7().to_string();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: skip it, so a starting service serves its commands first.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match leases.acquire("provisioner.reconcile", &holder, every).await {
            Ok(flotilla_bus::lease::Acquire::Acquired { .. }) => {}
            Ok(flotilla_bus::lease::Acquire::Held(_)) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reconcile lease unavailable; reconciling anyway");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = provisioner.reconcile_all() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "reconcile failed");
                }
            }
        }
    }
}
