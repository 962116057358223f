//! The Flotilla `sync` service: webroots, assets and backups kept in step across regions through S3
//! datastores. One binary, two roles chosen by configuration ([`settings::Role`]):
//!
//! - the **replicator** (control plane): consumes `flotilla.cmd.sync.<deployment>.<region>.<verb>`
//!   (`reconcile`, `backup`, `restore`) through its durable consumer, keeps each deployment's buckets equal across its regions
//!   ([`replicator`]), and answers `flotilla.api.sync.show|dry-run|status` and the NATS service API;
//! - the **agent** (one per webserver, [`agent`]): keeps its webroot and its region's datastore in step,
//!   pushing each local change and pulling each announced one.
//!
//! The parts:
//! - [`plan`]: the pure core of replication — two sides' manifests and their last agreed base in, what to
//!   copy, delete and keep out (rclone bisync's semantics, with a max-delete guard).
//! - [`chunks`]: a pass a chunk of keys at a time (both sides and the base read in key order a page at a
//!   time), so that memory stays flat whatever the number of objects; deletions last, behind the guard.
//! - [`replicate`]: one pass of a bucket between two endpoints (listed page by page, applied part by part).
//! - [`local`]: a webroot as a side (its manifest, atomic writes, excludes).
//! - [`backup`]: webroot backups — put to every endpoint, filled in from a durable queue, pruned per
//!   period, restored from whichever provider still has a good copy.
//! - [`stamps`]: who last wrote each bucket on each endpoint (in NATS KV), so that a pass lists only the
//!   sides written since their last listing.
//! - [`store`]: the service's database — each replicated pair's base, the backups and their copies.
//! - [`settings`]: the role and the rules.

pub mod agent;
pub mod backup;
pub mod chunks;
pub mod local;
pub mod passes;
pub mod plan;
pub mod replicate;
pub mod replicator;
pub mod settings;
pub mod stamps;
pub mod store;

use std::sync::Arc;

use flotilla_bus::Dispatcher;
use flotilla_clouds::Clouds;
use flotilla_runtime::{Context, ServiceDef};

pub use settings::Settings;

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "sync",
    version: env!("CARGO_PKG_VERSION"),
    description: "Webroots, assets and backups kept in step across regions through S3 datastores",
    admin_port: 9104,
    migrations: Some(store::migrations),
};

/// An announcement of `outcome` by `origin` (an agent's machine, or `replicator`) about `bucket` of
/// `region`, saying `message`, with nothing copied, deleted, held back or failed: each announcer (the
/// agent's pass, the replicator's, a restore, a failed pass) fills in what it has.
pub(crate) fn announcement(
    meta: flotilla_proto::EventMeta,
    deployment: &str,
    region: &str,
    bucket: &str,
    origin: &str,
    outcome: &str,
    message: String,
) -> flotilla_proto::SyncApplied {
    flotilla_proto::SyncApplied {
        meta,
        deployment: deployment.to_owned(),
        region: region.to_owned(),
        bucket: bucket.to_owned(),
        origin: origin.to_owned(),
        peer: None,
        endpoint: None,
        endpoints: Vec::new(),
        outcome: outcome.to_owned(),
        copied_count: 0,
        deleted_count: 0,
        copied: Vec::new(),
        deleted: Vec::new(),
        conflicts: Vec::new(),
        held_back: Vec::new(),
        failed: Vec::new(),
        changed_at: None,
        message,
    }
}

/// The `failed` event of a pass that failed as a whole (nothing copied or deleted), by `origin` (an agent's
/// machine, or `replicator` with the hub's region as `peer`); the error redacted and bounded.
pub(crate) fn failed_pass(
    deployment: &str,
    region: &str,
    bucket: &str,
    origin: &str,
    peer: Option<&str>,
    error: &str,
) -> flotilla_proto::SyncApplied {
    let why = format!(
        "the pass: {}",
        flotilla_bus::redact::redact_and_truncate(error, 1024)
    );
    let message = match peer {
        Some(hub) => format!("{bucket} between {hub} and {region}: failed, nothing applied: {why}"),
        None => format!("{origin} ({region}): failed, nothing applied: {why}"),
    };
    flotilla_proto::SyncApplied {
        peer: peer.map(str::to_owned),
        failed: vec![why],
        ..announcement(
            flotilla_proto::EventMeta::new(uuid::Uuid::now_v7(), "sync"),
            deployment,
            region,
            bucket,
            origin,
            "failed",
            message,
        )
    }
}

/// The command routes of the service and its work: the replicator's loop, API and `reconcile`; or the
/// agent.
pub fn routes(ctx: &Context<Settings>) -> Dispatcher {
    let settings = ctx.config.service.clone();
    let clouds = Clouds::new(ctx.config.clouds.clone(), ctx.config.secrets_file.clone());
    let store = store::SyncStore::new(ctx.store.clone());
    let stamps =
        |writer: String| stamps::StampSource::new(ctx.topology.clone(), ctx.config.bus.clone(), writer);
    if settings.role == settings::Role::Agent {
        let writer = settings
            .agent
            .as_ref()
            .map_or_else(|| "agent".to_owned(), |a| format!("agent:{}", a.machine));
        agent::start(ctx, clouds, store, stamps(writer));
        return Dispatcher::new(ctx.def.name);
    }
    let replicator = Arc::new(replicator::Replicator::new(
        settings.clone(),
        clouds,
        store,
        ctx.publisher.clone(),
        ctx.desired(),
        ctx.config.data_dir.join("backups"),
        Arc::new(stamps("replicator".to_owned())),
        passes::PassRecords::new(ctx.topology.clone(), ctx.config.bus.clone()),
    ));
    let looped = flotilla_runtime::deployments::DeploymentLoop::new(
        Arc::clone(&replicator),
        settings.loop_settings(),
        flotilla_runtime::deployments::Sources {
            desired: ctx.desired(),
            fleet: ctx.fleet(),
            health: ctx.topology.health_view(),
            leases: ctx.leases(),
        },
    );
    replicator.attach(looped.nudge());
    let api = Arc::clone(&replicator);
    ctx.api("show", move |req: flotilla_proto::ShowSync| {
        let api = Arc::clone(&api);
        async move { api.show(req).await }
    });
    let api = Arc::clone(&replicator);
    ctx.api("dry-run", move |req: flotilla_proto::SyncDryRun| {
        let api = Arc::clone(&api);
        async move { api.dry_run(req).await }
    });
    let stop = ctx.shutdown.clone();
    ctx.spawn(replicator::follow_agents(
        ctx.client.clone(),
        Arc::clone(&replicator),
        stop.clone(),
    ));
    ctx.spawn(Arc::clone(&replicator).fill_held(stop.clone()));
    ctx.spawn(async move { looped.run(stop).await });
    let (backup, restore) = (Arc::clone(&replicator), Arc::clone(&replicator));
    Dispatcher::new(ctx.def.name)
        .on(move |cmd: flotilla_proto::ReconcileSync, _delivery| {
            let replicator = Arc::clone(&replicator);
            async move { replicator.reconcile_now(cmd).await }
        })
        .on(move |cmd: flotilla_proto::TakeBackup, _delivery| {
            let backup = Arc::clone(&backup);
            async move { backup.backup(cmd).await }
        })
        .on(move |cmd: flotilla_proto::RestoreBackup, _delivery| {
            let restore = Arc::clone(&restore);
            async move { restore.restore(cmd).await }
        })
}
