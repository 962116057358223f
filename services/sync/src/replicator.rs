//! The replicator (the control plane's role): for each deployment, by the one replica holding its lease
//! ([`flotilla_runtime::deployments`]), each shared bucket kept equal across the regions' datastores —
//! the webroot-sync bucket (so that every region sees every change), the asset buckets (when assets are
//! persisted to the datastore) and the multi-region bucket.
//!
//! The regions' endpoints 1 form a star around the hub (the primary region's): a run passes each region
//! with the hub ([`crate::replicate::Pair::pass`]) and, when a region brought the hub something new, passes
//! the others again, so that a change made in any region reaches every other within one run. A run starts
//! on an agent's `pushed` event (within the debounce), on a `sync.reconcile` command, on a change of the
//! desired state or fleet, and on the periodic resync (the safety net). A region whose datastore fails is
//! tried again with a growing delay; its base is untouched, so nothing is deleted after a failed pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use flotilla_bus::{HandlerError, Publisher};
use flotilla_clouds::Clouds;
use flotilla_datastore::Datastore;
use flotilla_proto::{
    AgentSync, AnyEvent, BucketSync, DryRunPass, EventMeta, ReconcileSync, RestoreBackup, SYNC_EVENT_KEYS,
    ShowSync, SyncApplied, SyncDryRun, SyncDryRunView, SyncView, TakeBackup,
};
use flotilla_runtime::ApiFailure;
use flotilla_runtime::deployments::{Nudge, Ran, Reconciler, Views};
use flotilla_spec::Deployment;

use crate::plan::{Action, Side};
use crate::replicate::{Pair, PassReport};
use crate::settings::Settings;
use crate::store::{PairKey, SyncStore};

/// The most rounds of passes one run makes (a change reaches every region in two; a conflict's loser in
/// three); whatever is left is carried by the next run.
const MAX_ROUNDS: usize = 3;

/// One region's endpoint 1, as a side of the star.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The region.
    pub region: String,
    /// `<provider>:<host>` (stable across restarts: the key of the bases).
    pub name: String,
    /// The client.
    pub store: Datastore,
}

/// The buckets the replicator keeps equal across `d`'s regions: `<site>-webroot-sync` when any region
/// syncs webroots, `<site>-assets-<dir>` for each asset directory of a region persisting assets, and
/// `<site>-multi-region`.
pub fn buckets(d: &Deployment) -> Vec<String> {
    let mut out = BTreeSet::new();
    if d.regions.iter().any(|r| r.sync_webroots) {
        out.insert(d.bucket("webroot-sync"));
    }
    for r in d.regions.iter().filter(|r| r.persist_assets) {
        for dir in &r.directories_to_mount {
            let name: String = dir
                .trim_matches('/')
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            if !name.is_empty() {
                out.insert(d.bucket(&format!("assets-{name}")));
            }
        }
    }
    out.insert(d.bucket("multi-region"));
    out.into_iter().collect()
}

/// A deployment's entries by (bucket, region) or (region, machine).
type PerKey<T> = BTreeMap<(String, String), T>;

/// Failed actions of a pass kept in its record (the rest counted).
const FAILED_SHOWN: usize = 20;

/// The replicator.
pub struct Replicator {
    settings: Settings,
    backups: crate::backup::Backups,
    desired: flotilla_bus::state::DesiredStates,
    clouds: Clouds,
    store: SyncStore,
    publisher: Publisher,
    nudge: std::sync::OnceLock<Nudge>,
    /// What the last pass of each bucket and region did, per deployment.
    status: Mutex<BTreeMap<String, PerKey<BucketSync>>>,
    /// What each deployment's agents last said.
    agents: Mutex<BTreeMap<String, PerKey<AgentSync>>>,
    /// Buckets known to exist, per endpoint.
    ensured: Mutex<BTreeSet<(String, String)>>,
    /// The bucket stamps (a side nobody wrote since its last listing is not listed again).
    stamps: Arc<crate::stamps::StampSource>,
    /// When each pair (deployment, bucket, spoke's endpoint) was last listed in full on both sides.
    compared: Mutex<BTreeMap<(String, String, String), std::time::Instant>>,
    /// `status`, shared with the other replicas after each run (any of them answers `show`).
    passes: crate::passes::PassRecords,
}

impl Replicator {
    /// A replicator writing through `clouds`, keeping bases and backups in `store`, archives under
    /// `backup_dir`, reading deployments (for commands) from `desired`, reading and leaving bucket stamps
    /// in `stamps`, sharing what its passes did in `passes`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        clouds: Clouds,
        store: SyncStore,
        publisher: Publisher,
        desired: flotilla_bus::state::DesiredStates,
        backup_dir: std::path::PathBuf,
        stamps: Arc<crate::stamps::StampSource>,
        passes: crate::passes::PassRecords,
    ) -> Self {
        Self {
            backups: crate::backup::Backups::new(
                settings.clone(),
                clouds.clone(),
                store.clone(),
                publisher.clone(),
                backup_dir,
                Arc::clone(&stamps),
            ),
            desired,
            settings,
            clouds,
            store,
            publisher,
            nudge: std::sync::OnceLock::new(),
            status: Mutex::default(),
            agents: Mutex::default(),
            ensured: Mutex::default(),
            stamps,
            compared: Mutex::default(),
            passes,
        }
    }

    /// Connects the replicator to the loop that runs it.
    pub fn attach(&self, nudge: Nudge) {
        let _ = self.nudge.set(nudge);
    }

    /// The regions' endpoints 1, the hub (the primary region's) first, one per distinct endpoint.
    pub fn endpoints(&self, d: &Deployment) -> Result<Vec<Endpoint>, String> {
        let mut regions: Vec<&flotilla_spec::Region> =
            d.regions.iter().filter(|r| !r.datastores.is_empty()).collect();
        regions.sort_by_key(|r| !r.primary);
        let mut out: Vec<Endpoint> = Vec::new();
        for r in regions {
            let Some(endpoint) = r.datastores.first() else {
                continue;
            };
            let name = crate::stamps::endpoint_name(endpoint);
            if out.iter().any(|e| e.name == name) {
                continue;
            }
            let set = self
                .clouds
                .datastores(&d.name, r)
                .map_err(|e| format!("region {}: {e}", r.name))?;
            out.push(Endpoint {
                region: r.name.clone(),
                name,
                store: set.primary().clone(),
            });
        }
        Ok(out)
    }

    async fn ensure(&self, e: &Endpoint, bucket: &str) -> Result<(), String> {
        let key = (e.name.clone(), bucket.to_owned());
        if self.ensured.lock().is_ok_and(|s| s.contains(&key)) {
            return Ok(());
        }
        Box::pin(e.store.ensure_bucket(bucket))
            .await
            .map_err(|err| format!("bucket {bucket} on {}: {err}", e.name))?;
        if let Ok(mut s) = self.ensured.lock() {
            s.insert(key);
        }
        Ok(())
    }

    /// One pass of `bucket` between the hub and `spoke`; the base recorded when it fully succeeded.
    async fn pass(
        &self,
        d: &Deployment,
        bucket: &str,
        hub: &Endpoint,
        spoke: &Endpoint,
    ) -> Result<PassReport, String> {
        let key = PairKey {
            deployment: d.name.clone(),
            bucket: bucket.to_owned(),
            side_a: hub.name.clone(),
            side_b: spoke.name.clone(),
        };
        let started = std::time::Instant::now();
        let compared = (d.name.clone(), bucket.to_owned(), spoke.name.clone());
        let full = self.compared.lock().map_or(true, |c| {
            c.get(&compared)
                .is_none_or(|at| at.elapsed() >= self.settings.full_compare_interval)
        });
        let pair = Pair {
            a: &hub.store,
            b: &spoke.store,
            bucket,
        };
        // Only the webroot-sync bucket is written by Flotilla alone (agents, this replicator, restores),
        // so only its stamps tell the truth; asset buckets (written through the webservers' mounts) and
        // the multi-region bucket (the original toolkit's scripts, the firewall's markers) are listed on
        // every pass.
        let stamps = if bucket == d.bucket("webroot-sync") {
            self.stamps.get().await
        } else {
            None
        };
        let stamped = crate::stamps::Stamped {
            stamps,
            store: &self.store,
            key: &key,
            full,
        };
        let report =
            match Box::pin(stamped.pass(&pair, &self.settings.rules(), self.settings.part_size)).await {
                Ok(report) => report,
                Err(e) => {
                    // A pass that failed whole (a datastore down, a listing refused) is shown and told too.
                    self.note_failure(d, bucket, hub, spoke, &e);
                    self.announce_failure(d, bucket, hub, spoke, &e).await;
                    return Err(e);
                }
            };
        if report.listed == (true, true)
            && report.based
            && let Ok(mut c) = self.compared.lock()
        {
            c.insert(compared, std::time::Instant::now());
        }
        if report.listed == (false, false) {
            tracing::debug!(deployment = %d.name, bucket, region = %spoke.region, "sync: pass: both sides unchanged by their stamps");
        } else {
            tracing::info!(
                deployment = %d.name,
                bucket,
                region = %spoke.region,
                listed = ?report.listed,
                applied = report.applied,
                failed = report.failures,
                elapsed = ?started.elapsed(),
                "sync: pass"
            );
        }
        self.note(d, bucket, hub, spoke, &report);
        self.announce(d, bucket, hub, spoke, &report).await;
        Ok(report)
    }

    /// Leaves what this run's passes of `deployment` did for the other replicas (see [`crate::passes`]).
    async fn share_passes(&self, deployment: &str) {
        let buckets = self.local_passes(deployment);
        if buckets.is_empty() {
            return;
        }
        let passes = flotilla_proto::SyncPasses {
            deployment: deployment.to_owned(),
            buckets,
            at: Some(Utc::now()),
        };
        self.passes.put(&passes).await;
    }

    /// Changes the status entry of `bucket` between the hub and `spoke` (made when missing).
    fn with_entry(
        &self,
        d: &Deployment,
        bucket: &str,
        hub: &Endpoint,
        spoke: &Endpoint,
        change: impl FnOnce(&mut BucketSync),
    ) {
        let Ok(mut status) = self.status.lock() else {
            return;
        };
        let entry = status
            .entry(d.name.clone())
            .or_default()
            .entry((bucket.to_owned(), spoke.region.clone()))
            .or_insert_with(|| BucketSync {
                bucket: bucket.to_owned(),
                region: spoke.region.clone(),
                peer: hub.region.clone(),
                ..BucketSync::default()
            });
        change(entry);
    }

    /// This replica's status entries of `deployment`.
    fn local_passes(&self, deployment: &str) -> Vec<BucketSync> {
        self.status
            .lock()
            .map(|s| {
                s.get(deployment)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Takes note of a pass that failed as a whole: its time and why (what it last applied is none).
    fn note_failure(&self, d: &Deployment, bucket: &str, hub: &Endpoint, spoke: &Endpoint, error: &str) {
        let why = format!(
            "the pass: {}",
            flotilla_bus::redact::redact_and_truncate(error, 1024)
        );
        self.with_entry(d, bucket, hub, spoke, |entry| {
            entry.last_pass = Some(Utc::now());
            entry.last_applied = 0;
            entry.failed = vec![why];
        });
    }

    /// Publishes that a pass failed as a whole (`failed`, nothing copied or deleted).
    async fn announce_failure(
        &self,
        d: &Deployment,
        bucket: &str,
        hub: &Endpoint,
        spoke: &Endpoint,
        error: &str,
    ) {
        let event = crate::failed_pass(
            &d.name,
            &spoke.region,
            bucket,
            "replicator",
            Some(&hub.region),
            error,
        );
        if let Err(e) = self.publisher.publish_event(&event).await {
            tracing::warn!(deployment = %d.name, error = %e, "sync: the event of a failed pass was not published");
        }
    }

    fn note(&self, d: &Deployment, bucket: &str, hub: &Endpoint, spoke: &Endpoint, report: &PassReport) {
        self.with_entry(d, bucket, hub, spoke, |entry| {
            Self::noted(entry, hub, spoke, report)
        });
    }

    /// What a pass did, in its status entry.
    fn noted(entry: &mut BucketSync, hub: &Endpoint, spoke: &Endpoint, report: &PassReport) {
        let now = Utc::now();
        entry.last_pass = Some(now);
        entry.last_applied = report.applied as u64;
        if report.failures == 0 && report.plan.held_back.is_empty() {
            entry.last_full_pass = Some(now);
            if report.listed == (true, true) {
                entry.last_full_comparison = Some(now);
            }
        }
        if let Some(changed) = report.changed_at() {
            entry.lag_ms = u64::try_from((now - changed).num_milliseconds()).ok();
        }
        entry.pending = (report.failures + report.withheld) as u64;
        // A few, and how many more: the records of every bucket and region fit one message.
        entry.failed = report
            .failed
            .iter()
            .take(FAILED_SHOWN)
            .map(|(a, e)| format!("{a}: {e}"))
            .collect();
        if report.failures > FAILED_SHOWN {
            entry
                .failed
                .push(format!("… and {} more", report.failures - FAILED_SHOWN));
        }
        entry.held_back = report
            .plan
            .held_back
            .iter()
            .map(|(side, why)| {
                format!(
                    "on {}: {why}",
                    if *side == Side::A {
                        &hub.region
                    } else {
                        &spoke.region
                    }
                )
            })
            .collect();
    }

    /// `flotilla.api.sync.dry-run`: what a run would do, pass by pass and object by object.
    pub async fn dry_run(&self, req: SyncDryRun) -> Result<SyncDryRunView, ApiFailure> {
        let d = match self.desired.get(&req.deployment).await {
            Ok(Some(d)) => d.value.deployment,
            Ok(None) => {
                return Err(ApiFailure {
                    code: 404,
                    message: format!("deployment {} is not deployed", req.deployment),
                });
            }
            Err(e) => return Err(ApiFailure::internal(e)),
        };
        let endpoints = self.endpoints(&d).map_err(ApiFailure::internal)?;
        let mut passes = Vec::new();
        let mut budget = flotilla_proto::SYNC_DRY_RUN_BYTES;
        let Some((hub, spokes)) = endpoints.split_first() else {
            return Ok(SyncDryRunView {
                deployment: d.name,
                passes,
            });
        };
        for bucket in buckets(&d) {
            for spoke in spokes {
                let key = PairKey {
                    deployment: d.name.clone(),
                    bucket: bucket.clone(),
                    side_a: hub.name.clone(),
                    side_b: spoke.name.clone(),
                };
                let mut pass = DryRunPass {
                    bucket: bucket.clone(),
                    region: spoke.region.clone(),
                    peer: hub.region.clone(),
                    ..DryRunPass::default()
                };
                let pair = Pair {
                    a: &hub.store,
                    b: &spoke.store,
                    bucket: &bucket,
                };
                match Box::pin(pair.pass(
                    &self.store,
                    &key,
                    crate::replicate::Known::default(),
                    &self.settings.rules(),
                    self.settings.part_size,
                    true,
                ))
                .await
                {
                    Ok(report) => {
                        let lines = describe(&report.plan, &hub.region, &spoke.region);
                        (pass.lines, pass.omitted) = within(lines, &mut budget);
                    }
                    Err(e) => pass.error = Some(e.to_string()),
                }
                passes.push(pass);
            }
        }
        Ok(SyncDryRunView {
            deployment: d.name,
            passes,
        })
    }

    /// Publishes what a pass did (nothing when it did nothing).
    async fn announce(
        &self,
        d: &Deployment,
        bucket: &str,
        hub: &Endpoint,
        spoke: &Endpoint,
        report: &PassReport,
    ) {
        if report.is_quiet() {
            return;
        }
        let region_of = |s: Side| if s == Side::A { &hub.region } else { &spoke.region };
        let (to_hub, to_spoke) = &report.copied_to;
        let copied: Vec<String> = to_spoke
            .keys
            .iter()
            .map(|k| format!("{k} ({} → {})", hub.region, spoke.region))
            .chain(
                to_hub
                    .keys
                    .iter()
                    .map(|k| format!("{k} ({} → {})", spoke.region, hub.region)),
            )
            .collect();
        let (on_hub, on_spoke) = &report.deleted_on;
        let deleted: Vec<String> = on_hub
            .keys
            .iter()
            .map(|k| format!("{k} (on {})", hub.region))
            .chain(on_spoke.keys.iter().map(|k| format!("{k} (on {})", spoke.region)))
            .collect();
        let outcome = if report.failures > 0 {
            "failed"
        } else if !report.plan.held_back.is_empty() {
            "held-back"
        } else {
            "replicated"
        };
        // The endpoints changed: regions sharing one are replicated once, under one region's name.
        let endpoints: Vec<String> = [
            (to_hub.count + on_hub.count > 0).then(|| hub.name.clone()),
            (to_spoke.count + on_spoke.count > 0).then(|| spoke.name.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let message = format!(
            "{bucket} between {} and {}: {} applied, {} failed{}",
            hub.region,
            spoke.region,
            report.applied,
            report.failures,
            if report.plan.held_back.is_empty() {
                ""
            } else {
                ", deletions held back"
            }
        );
        let event = SyncApplied {
            endpoints,
            peer: Some(hub.region.clone()),
            copied_count: (to_hub.count + to_spoke.count) as u64,
            deleted_count: (on_hub.count + on_spoke.count) as u64,
            copied: copied.into_iter().take(SYNC_EVENT_KEYS).collect(),
            deleted: deleted.into_iter().take(SYNC_EVENT_KEYS).collect(),
            conflicts: report.conflicts_sample(),
            held_back: report
                .plan
                .held_back
                .iter()
                .map(|(s, why)| format!("on {}: {why}", region_of(*s)))
                .collect(),
            failed: report.failed_sample(),
            changed_at: report.changed_at(),
            ..crate::announcement(
                EventMeta::new(uuid::Uuid::now_v7(), "sync"),
                &d.name,
                &spoke.region,
                bucket,
                "replicator",
                outcome,
                message,
            )
        };
        if let Err(e) = self.publisher.publish_event(&event).await {
            tracing::warn!(deployment = %d.name, error = %e, "sync: the event of a pass was not published");
        }
    }

    /// Takes note of an agent's event (its push or pull), and runs the deployment soon after a push.
    pub fn heard(&self, event: &SyncApplied) {
        if event.origin == "replicator" {
            return;
        }
        if event.outcome == "pushed"
            && let Some(nudge) = self.nudge.get()
        {
            nudge.deployment(&event.deployment);
        }
        let Ok(mut agents) = self.agents.lock() else {
            return;
        };
        let agent = agents
            .entry(event.deployment.clone())
            .or_default()
            .entry((event.region.clone(), event.origin.clone()))
            .or_insert_with(|| AgentSync {
                region: event.region.clone(),
                machine: event.origin.clone(),
                ..AgentSync::default()
            });
        let at = event.meta.occurred_at;
        match event.outcome.as_str() {
            "pushed" => agent.last_push = Some(at),
            "pulled" => {
                agent.last_pull = Some(at);
                agent.lag_ms = event
                    .changed_at
                    .and_then(|c| u64::try_from((at - c).num_milliseconds()).ok());
            }
            _ => {}
        }
        agent.failed = event.failed.len() as u64;
    }

    /// `flotilla.api.sync.show`: the passes as the replica running the deployment last shared them (this
    /// one's own memory when they cannot be read), the agents as this replica heard them (every replica
    /// hears every agent), the backups from the store.
    pub async fn show(&self, req: ShowSync) -> Result<SyncView, ApiFailure> {
        let buckets = match self.passes.get(&req.deployment).await {
            Some(shared) => shared.buckets,
            None => self.local_passes(&req.deployment),
        };
        let agents = self
            .agents
            .lock()
            .map(|s| {
                s.get(&req.deployment)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let backups = self.backups.view(&req.deployment).await;
        Ok(SyncView {
            deployment: req.deployment,
            buckets,
            agents,
            backups,
        })
    }

    /// The `sync.reconcile` command: the deployment's buckets passed now. Refused when no desired state holds
    /// the region (a deployment nobody deployed).
    pub async fn reconcile_now(&self, cmd: ReconcileSync) -> Result<(), HandlerError> {
        // A deployment nobody deployed is refused, not nudged to no effect.
        self.desired.require_region(&cmd.deployment, &cmd.region).await?;
        if let Some(nudge) = self.nudge.get() {
            nudge.deployment(&cmd.deployment);
        }
        Ok(())
    }

    /// A command's deployment, which must have its region.
    async fn deployment(&self, name: &str, region: &str) -> Result<Deployment, HandlerError> {
        match self.desired.get(name).await {
            Ok(Some(d)) if d.value.deployment.region(region).is_none() => Err(HandlerError::Reject(format!(
                "deployment {name} has no region {region}"
            ))),
            Ok(Some(d)) => Ok(d.value.deployment),
            Ok(None) => Err(HandlerError::Reject(format!("deployment {name} is not deployed"))),
            Err(e) => Err(HandlerError::retry(e)),
        }
    }

    /// The `sync.backup` command: the archive (named by the command's id, so a redelivery writes no
    /// second one) on every endpoint; endpoints that fail are filled in later, so it is acknowledged.
    pub async fn backup(&self, cmd: TakeBackup) -> Result<(), HandlerError> {
        let d = self.deployment(&cmd.deployment, &cmd.region).await?;
        if !crate::backup::PERIODS.contains(&cmd.period.as_str()) {
            return Err(HandlerError::Reject(format!(
                "unknown backup period {:?} (one of {})",
                cmd.period,
                crate::backup::PERIODS.join(", ")
            )));
        }
        let id = format!("cmd-{}", cmd.meta.id.0.simple());
        let taken = self
            .backups
            .take(&d, &cmd.region, &cmd.period, &id, cmd.meta.correlation_id)
            .await
            .map_err(HandlerError::retry)?;
        // Copies still missing are written again by the deployment's runs, every retry interval.
        if !taken.missing.is_empty()
            && let Some(nudge) = self.nudge.get()
        {
            nudge.deployment(&d.name);
        }
        Ok(())
    }

    /// Writes, every backups retry interval until `stop` (and once at the start), the copies still missing
    /// of the backups whose archive this replica keeps ([`crate::backup::Backups::fill_held`]): the
    /// replica holding a deployment's lease fills in the rest, but not an archive only another replica
    /// has.
    pub async fn fill_held(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut every = tokio::time::interval(self.settings.backups.retry_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            for name in self.backups.held() {
                let d = match self.desired.get(&name).await {
                    Ok(Some(d)) => d.value.deployment,
                    // Gone: its archives stay, as its backups' records do (a redeploy fills them in).
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::debug!(deployment = %name, error = %e, "sync: held backups not filled in; next time");
                        continue;
                    }
                };
                let filled = tokio::select! {
                    () = stop.cancelled() => return,
                    filled = self.backups.fill_held(&d) => filled,
                };
                if let Err(e) = filled {
                    let e = flotilla_bus::redact::redact_and_truncate(&e, 1024);
                    tracing::warn!(deployment = %name, error = %e, "sync: held backups not filled in; next time");
                }
            }
        }
    }

    /// The `sync.restore` command.
    pub async fn restore(&self, cmd: RestoreBackup) -> Result<(), HandlerError> {
        let d = self.deployment(&cmd.deployment, &cmd.region).await?;
        match self
            .backups
            .restore(
                &d,
                &cmd.region,
                cmd.from.as_deref(),
                cmd.at,
                cmd.meta.correlation_id,
            )
            .await
        {
            Ok(_) => {
                // The other regions get the restored files from the next run.
                if let Some(nudge) = self.nudge.get() {
                    nudge.deployment(&d.name);
                }
                Ok(())
            }
            // Nothing to restore from is an answer, not a failure to retry forever.
            Err(e) if e.starts_with("no good backup") || e.starts_with("no datastore") => {
                let event = flotilla_proto::BackupWritten {
                    meta: EventMeta::new(cmd.meta.correlation_id, "sync"),
                    deployment: d.name.clone(),
                    region: cmd.region.clone(),
                    outcome: "failed".into(),
                    bucket: String::new(),
                    key: String::new(),
                    checksum: String::new(),
                    size: 0,
                    written: Vec::new(),
                    missing: Vec::new(),
                    message: e.clone(),
                };
                let _ = self.publisher.publish_event(&event).await;
                Err(HandlerError::Reject(e))
            }
            Err(e) => Err(HandlerError::retry(e)),
        }
    }

    /// The last time `deployment`'s `bucket` fully passed with `region` (tests, status).
    pub fn last_full_pass(&self, deployment: &str, bucket: &str, region: &str) -> Option<DateTime<Utc>> {
        self.status.lock().ok().and_then(|s| {
            s.get(deployment)
                .and_then(|m| m.get(&(bucket.to_owned(), region.to_owned())))
                .and_then(|b| b.last_full_pass)
        })
    }
}

impl Reconciler for Replicator {
    fn service(&self) -> &'static str {
        "sync"
    }

    async fn reconcile(&self, views: &Views, deployment: &str) -> Result<Ran, String> {
        let Some(d) = views.deployments.get(deployment) else {
            if let Ok(mut s) = self.status.lock() {
                s.remove(deployment);
            }
            self.passes.remove(deployment).await;
            return Ok(Ran::Done);
        };
        let endpoints = self.endpoints(d)?;
        let Some((hub, spokes)) = endpoints.split_first() else {
            return Ok(Ran::Done);
        };
        if spokes.is_empty() {
            return Ok(Ran::Done);
        }
        let mut errors = Vec::new();
        for bucket in buckets(d) {
            let mut ready = Vec::new();
            if let Err(e) = self.ensure(hub, &bucket).await {
                errors.push(e);
                continue;
            }
            for spoke in spokes {
                match self.ensure(spoke, &bucket).await {
                    Ok(()) => ready.push(spoke),
                    Err(e) => errors.push(e),
                }
            }
            // Round one gathers every region's changes on the hub and gives each the hub's; another round
            // carries what a round brought the hub (or a conflict's kept loser) to the regions passed
            // before it.
            for _ in 0..MAX_ROUNDS {
                let mut again = false;
                for spoke in &ready {
                    match self.pass(d, &bucket, hub, spoke).await {
                        Ok(report) => {
                            // The hub changed (or a loser was kept): the others need another round.
                            again |= report.copied_to.0.count > 0
                                || report.deleted_on.0.count > 0
                                || report.losers_kept > 0;
                            errors.extend(
                                report
                                    .failed
                                    .iter()
                                    .map(|(a, e)| format!("{bucket} with {}: {a}: {e}", spoke.region)),
                            );
                        }
                        Err(e) => errors.push(format!("{bucket} with {}: {e}", spoke.region)),
                    }
                }
                if !again {
                    break;
                }
            }
        }
        self.share_passes(&d.name).await;
        // Backups: copies still missing are written again, scheduled ones taken when due.
        let now = Utc::now();
        let mut again = match self.backups.fill_pending(d).await {
            Ok(true) => Some(
                now + chrono::Duration::from_std(self.settings.backups.retry_interval).unwrap_or_default(),
            ),
            Ok(false) => None,
            Err(e) => {
                errors.push(format!("backups: {e}"));
                None
            }
        };
        if let Some(next) = self.backups.scheduled(d, now).await {
            again = Some(again.map_or(next, |a| a.min(next)));
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        Ok(match again {
            Some(at) => {
                Ran::Again(tokio::time::Instant::now() + (at - Utc::now()).to_std().unwrap_or_default())
            }
            None => Ran::Done,
        })
    }
}

/// The first of `lines` that fit in `budget` bytes (which they use up), and how many were left out.
fn within(lines: Vec<String>, budget: &mut usize) -> (Vec<String>, u64) {
    let total = lines.len();
    let mut kept = Vec::new();
    for line in lines {
        // The encoding's quotes and comma, and an escaped character or two.
        let cost = line.len() + 8;
        if cost > *budget {
            break;
        }
        *budget -= cost;
        kept.push(line);
    }
    let omitted = (total - kept.len()) as u64;
    (kept, omitted)
}

/// A plan in words, sides named by their regions (`a` the hub's).
pub fn describe(plan: &crate::plan::Plan, hub: &str, spoke: &str) -> Vec<String> {
    let name = |s: Side| if s == Side::A { hub } else { spoke };
    let mut lines: Vec<String> = plan
        .actions
        .iter()
        .map(|a| match a {
            Action::Copy { key, from, backup } => format!(
                "copy {key} {} → {}{}",
                name(*from),
                name(from.other()),
                backup
                    .as_ref()
                    .map(|b| format!(" (the old one kept as {b})"))
                    .unwrap_or_default()
            ),
            Action::Delete { key, on, backup } => format!(
                "delete {key} on {}{}",
                name(*on),
                backup
                    .as_ref()
                    .map(|b| format!(" (kept as {b})"))
                    .unwrap_or_default()
            ),
            Action::KeepLoser { key, on, as_key } => {
                format!("conflict on {key}: the version on {} kept as {as_key}", name(*on))
            }
        })
        .collect();
    lines.extend(
        plan.held_back
            .iter()
            .map(|(s, why)| format!("deletions on {} held back: {why}", name(*s))),
    );
    lines
}

/// Follows the agents' events (plain subscription: a missed one is made up for by the resync).
pub async fn follow_agents(
    client: async_nats::Client,
    replicator: Arc<Replicator>,
    stop: tokio_util::sync::CancellationToken,
) {
    {
        use futures::StreamExt;
        let Ok(filter) =
            flotilla_bus::subject::events_filter(Some(<SyncApplied as flotilla_proto::Event>::TOPIC), None)
        else {
            return;
        };
        let mut sub = match client.subscribe(filter).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "sync: cannot follow the agents' events; the resync carries their changes");
                return;
            }
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                msg = sub.next() => match msg {
                    Some(msg) => {
                        if let Some(AnyEvent::Sync(e)) = flotilla_bus::decode_event(&msg) {
                            replicator.heard(&e);
                        }
                    }
                    None => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_answer_keeps_to_its_budget_across_passes_and_counts_the_rest() {
        let lines = |n: usize| -> Vec<String> {
            (0..n)
                .map(|i| format!("copy wp-content/uploads/{i:06}.jpg gb-lon → nl-ams"))
                .collect()
        };
        let mut budget = flotilla_proto::SYNC_DRY_RUN_BYTES;
        let (first, left_out) = within(lines(1_000), &mut budget);
        assert_eq!((first.len(), left_out), (1_000, 0));
        // 100,000 objects in the second pass: cut at the budget, the rest counted.
        let (second, left_out) = within(lines(100_000), &mut budget);
        assert!(!second.is_empty() && second.len() < 100_000);
        assert_eq!(second.len() as u64 + left_out, 100_000);
        let view = flotilla_proto::SyncDryRunView {
            deployment: "d".into(),
            passes: vec![
                DryRunPass {
                    lines: first,
                    ..DryRunPass::default()
                },
                DryRunPass {
                    lines: second,
                    omitted: left_out,
                    ..DryRunPass::default()
                },
            ],
        };
        for encoding in [
            flotilla_proto::Encoding::MessagePack,
            flotilla_proto::Encoding::Json,
        ] {
            flotilla_proto::encode(&view, encoding).expect("an answer within the message limit");
        }
        // The budget is spent: a third pass keeps nothing and counts everything.
        let (third, left_out) = within(lines(10), &mut budget);
        assert_eq!((third.len(), left_out), (0, 10));
    }
}
