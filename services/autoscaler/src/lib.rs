//! The Flotilla `autoscaler` service: the health of every machine that serves something, and per region a
//! webserver count between the spec's min and max, with unhealthy machines replaced.
//!
//! - Commands (`flotilla.cmd.autoscaler.<deployment>.<region>.<verb>`): `scale` (set the desired count,
//!   refused outside the bounds), `pause`, `resume`, `protect`, `schedule`, `track`. Any replica takes them; they change the
//!   region's [`ScalingState`](flotilla_proto::ScalingState), kept in the `flotilla_autoscaler` KV bucket
//!   shared by the replicas, by compare-and-set; a redelivered command changes nothing twice. `schedule`
//!   and `track` set a region's schedule and target-tracking policy ([`policy`]), which move the desired
//!   count too.
//! - Per region one replica leads (a lease in the NATS KV bucket, renewed, its revision the fencing
//!   token; see [`leader`]). The leader probes the region's webservers, reverse proxies and authenticators
//!   ([`health`]; transitions become `machine-health` events and the `flotilla_health` view), and acts on
//!   what [`plan::decide`] — a pure function — says: create webservers, drain then destroy surplus ones,
//!   replace an unhealthy machine (through the provisioner's commands). Every action is an activity,
//!   published as an event and kept for `explain`.
//! - `flotilla.api.autoscaler.explain` answers why a region is at N and not M.

pub mod health;
pub mod leader;
pub mod plan;
pub mod policy;
pub mod region;
pub mod service;
pub mod settings;

use std::sync::Arc;

use flotilla_bus::Dispatcher;
use flotilla_runtime::{Context, ServiceDef};

pub use service::Autoscaler;
pub use settings::Settings;

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "autoscaler",
    version: env!("CARGO_PKG_VERSION"),
    description: "Health of every machine; per-region webserver counts between min and max; unhealthy machines replaced",
    admin_port: 9105,
    migrations: None,
};

/// The command routes, the `explain` API and the leader's work.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    let autoscaler = Autoscaler::new(
        ctx.config.service.clone(),
        ctx.config.bus.clone(),
        ctx.client.clone(),
        ctx.topology.clone(),
        ctx.publisher.clone(),
    );
    let a = Arc::clone(&autoscaler);
    ctx.api("explain", move |req: flotilla_proto::ExplainScaling| {
        let a = Arc::clone(&a);
        async move { a.explain(req).await }
    });
    ctx.spawn(leader::supervise(Arc::clone(&autoscaler), ctx.shutdown.clone()));
    macro_rules! route {
        ($dispatcher:expr, $msg:ty, $method:ident) => {{
            let a = Arc::clone(&autoscaler);
            $dispatcher.on(move |cmd: $msg, _delivery| {
                let a = Arc::clone(&a);
                async move { a.$method(cmd).await }
            })
        }};
    }
    let d = Dispatcher::new(ctx.def.name);
    let d = route!(d, flotilla_proto::ScaleRegion, scale);
    let d = route!(d, flotilla_proto::PauseScaling, pause);
    let d = route!(d, flotilla_proto::ResumeScaling, resume);
    let d = route!(d, flotilla_proto::SetSchedule, schedule);
    let d = route!(d, flotilla_proto::SetTargetTracking, track);
    route!(d, flotilla_proto::ProtectMachine, protect)
}
