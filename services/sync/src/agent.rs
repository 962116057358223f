//! The agent (one per webserver): its webroot and its region's datastore (endpoint 1, bucket
//! `<site>-webroot-sync`) kept in step, both ways, by the same plan as the replicator's
//! ([`crate::plan::plan`], the webroot as side `a`):
//!
//! - a change in the webroot (seen by `notify`, within the debounce) is pushed to the datastore and
//!   announced (`pushed`), so the replicator carries it to the other regions and the region's other agents
//!   pull it;
//! - a change announced by another machine of the region, or by the replicator for the region, is pulled
//!   — each file written to a temporary name beside it, flushed, then renamed over the old one, so that a
//!   web server never serves half a file; a local file changed while the pass ran is never overwritten;
//! - a full comparison every `resync_interval` is the safety net (a missed notification, a missed event);
//! - at start the agent catches up with the datastore before `/ready` turns green, and removes the
//!   temporary files a killed predecessor left.
//!
//! Excluded paths (configuration, mounted asset directories, temporary files) are neither pushed, pulled
//! nor deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flotilla_bus::Publisher;
use flotilla_bus::state::DesiredStates;
use flotilla_clouds::Clouds;
use flotilla_datastore::Datastore;
use flotilla_proto::{AnyEvent, EventMeta, SYNC_EVENT_KEYS, SyncApplied};
use flotilla_runtime::admin::ReadyGate;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::chunks::{self, Done, Options, PassReport};
use crate::local::{self, Excludes};
use crate::plan::{self, Action, Base, Manifest, Side};
use crate::replicate::Known;
use crate::settings::{AgentSettings, Settings};
use crate::stamps::{StampSource, Stamped};
use crate::store::{PairKey, SyncStore};

/// What an agent works with.
pub struct Agent {
    settings: Settings,
    agent: AgentSettings,
    clouds: Clouds,
    store: SyncStore,
    publisher: Publisher,
    excludes: Excludes,
    gate: ReadyGate,
    stamps: StampSource,
    /// When the bucket was last listed (it is listed at least every `full_compare_interval`).
    compared: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Where the agent's region keeps the webroot.
#[derive(Clone)]
struct Remote {
    store: Datastore,
    bucket: String,
    endpoint: String,
}

/// Starts the agent of `ctx`'s `[service.agent]` (the service's settings were validated: it is there).
pub fn start(
    ctx: &flotilla_runtime::Context<Settings>,
    clouds: Clouds,
    store: SyncStore,
    stamps: StampSource,
) {
    let settings = ctx.config.service.clone();
    let Some(agent) = settings.agent.clone() else {
        return;
    };
    let excludes = match Excludes::new(&agent.excludes) {
        Ok(e) => e,
        Err(e) => {
            // Validated at start-up; kept closed rather than syncing what should be left alone.
            ctx.gate(&format!("agent.excludes: {e}"));
            return;
        }
    };
    let gate = ctx.gate("the agent has not caught up with its region's datastore yet");
    let agent = Arc::new(Agent {
        settings,
        agent,
        clouds,
        store,
        publisher: ctx.publisher.clone(),
        excludes,
        gate,
        stamps,
        compared: std::sync::Mutex::new(None),
    });
    let (desired, client, stop) = (ctx.desired(), ctx.client.clone(), ctx.shutdown.clone());
    ctx.spawn(async move { agent.run(desired, client, stop).await });
}

impl Agent {
    fn root(&self) -> &Path {
        &self.agent.webroot
    }

    /// The region's datastore and bucket, from the deployment's desired state.
    async fn remote(&self, desired: &DesiredStates) -> Result<Remote, String> {
        let d = desired
            .get(&self.agent.deployment)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("deployment {} is not deployed (yet)", self.agent.deployment))?
            .value
            .deployment;
        let region = d
            .region(&self.agent.region)
            .ok_or_else(|| format!("deployment {} has no region {}", d.name, self.agent.region))?;
        let endpoint = region
            .datastores
            .first()
            .ok_or_else(|| format!("region {} has no datastore", region.name))?;
        let set = self
            .clouds
            .datastores(&d.name, region)
            .map_err(|e| e.to_string())?;
        let remote = Remote {
            store: set.primary().clone(),
            bucket: d.bucket("webroot-sync"),
            endpoint: crate::stamps::endpoint_name(endpoint),
        };
        Box::pin(remote.store.ensure_bucket(&remote.bucket))
            .await
            .map_err(|e| e.to_string())?;
        Ok(remote)
    }

    async fn run(
        self: Arc<Self>,
        desired: DesiredStates,
        client: async_nats::Client,
        stop: CancellationToken,
    ) {
        let remote = loop {
            match self.remote(&desired).await {
                Ok(r) => break r,
                Err(e) => {
                    self.gate.close(format!("agent: {e}"));
                    tracing::info!(error = %e, "sync agent: waiting for its region's datastore");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        // Watch before the catch-up, so that nothing written during it is missed.
        let (tx, mut changes) = mpsc::unbounded_channel::<()>();
        let watcher = watch(self.root(), tx.clone());
        if let Err(e) = &watcher {
            tracing::warn!(error = %e, "sync agent: the webroot cannot be watched; relying on the resync");
        }
        let mut announced = self.follow(&client, &remote.endpoint).await;
        // Catch up before ready.
        let mut attempt = 0u32;
        loop {
            match self.pass(&remote).await {
                Ok(p) if p.failures == 0 => break,
                Ok(p) => tracing::warn!(
                    failed = p.failures,
                    "sync agent: catching up; some transfers failed"
                ),
                Err(e) => tracing::warn!(error = %e, "sync agent: catching up failed"),
            }
            attempt += 1;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(flotilla_runtime::deployments::backoff(attempt, self.settings.resync_interval)) => {}
            }
        }
        self.gate.open();
        tracing::info!(webroot = %self.root().display(), bucket = %remote.bucket, "sync agent: caught up");
        let mut due: Option<Instant> = None;
        let mut resync = Instant::now() + self.settings.resync_interval;
        let mut failures = 0u32;
        loop {
            let next = due.map_or(resync, |d| d.min(resync));
            tokio::select! {
                () = stop.cancelled() => return,
                Some(()) = changes.recv() => {
                    due.get_or_insert_with(|| Instant::now() + self.settings.debounce);
                }
                Some(()) = announced.recv() => {
                    due.get_or_insert_with(|| Instant::now() + self.settings.debounce);
                }
                () = tokio::time::sleep_until(next) => {
                    due = None;
                    resync = Instant::now() + self.settings.resync_interval;
                    match self.pass(&remote).await {
                        Ok(p) if p.failures == 0 => {
                            failures = 0;
                            // A conflict's loser kept in the bucket is pulled (and one kept here pushed) at once.
                            if p.losers_kept > 0 {
                                due = Some(Instant::now());
                            }
                        }
                        outcome => {
                            failures += 1;
                            let wait = flotilla_runtime::deployments::backoff(failures, self.settings.resync_interval);
                            match outcome {
                                Ok(p) => tracing::warn!(failed = ?p.failed, retry_in = ?wait, "sync agent: some transfers failed"),
                                Err(e) => {
                                    tracing::warn!(error = %e, retry_in = ?wait, "sync agent: a pass failed");
                                    self.announce_failure(&remote, &e).await;
                                }
                            }
                            due = Some(Instant::now() + wait);
                        }
                    }
                }
            }
        }
    }

    /// The announcements that concern this webroot: another machine pushed to this region's datastore
    /// (of this region, or of another region sharing the endpoint), or the replicator brought the region's
    /// datastore something. A plain subscription: one missed while disconnected is made up for by the
    /// resync.
    async fn follow(&self, client: &async_nats::Client, endpoint: &str) -> mpsc::UnboundedReceiver<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        let filter = match flotilla_bus::subject::events_filter(
            Some(<SyncApplied as flotilla_proto::Event>::TOPIC),
            Some(&self.agent.deployment),
        ) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "sync agent: cannot follow announcements; relying on the resync");
                return rx;
            }
        };
        let mut sub = match client.subscribe(filter).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "sync agent: cannot follow announcements; relying on the resync");
                return rx;
            }
        };
        let (region, machine) = (self.agent.region.clone(), self.agent.machine.clone());
        let endpoint = endpoint.to_owned();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(AnyEvent::Sync(e)) = flotilla_bus::decode_event(&msg) else {
                    continue;
                };
                let concerns = match e.outcome.as_str() {
                    "pushed" => {
                        e.origin != machine
                            && (e.region == region || e.endpoint.as_deref() == Some(endpoint.as_str()))
                    }
                    // The replicator changed the region's datastore (whatever else it held back or
                    // failed to do): named by region, or by endpoint when regions share one.
                    _ if e.origin == "replicator" => {
                        (e.region == region
                            || e.peer.as_deref() == Some(region.as_str())
                            || e.endpoints.contains(&endpoint))
                            && e.copied_count + e.deleted_count > 0
                    }
                    _ => false,
                };
                if concerns && tx.send(()).is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// One pass: the webroot (side `a`, walked in key order) against the bucket (side `b`, listed page by
    /// page — or, when its stamp says nobody wrote to it since the base was exact, the base itself),
    /// a chunk of keys at a time ([`crate::chunks`]): memory stays flat whatever the size of the tree.
    async fn pass(&self, remote: &Remote) -> Result<PassReport, String> {
        let started = std::time::Instant::now();
        let rules = self.settings.rules();
        let key = PairKey {
            deployment: self.agent.deployment.clone(),
            bucket: remote.bucket.clone(),
            side_a: format!("webroot:{}", self.agent.machine),
            side_b: remote.endpoint.clone(),
        };
        // The bucket's stamp before its listing: unchanged since the base was exact, the base is its
        // manifest (see `crate::stamps`); the bucket is listed anyway every `full_compare_interval`. The
        // webroot is not a bucket: it is walked every pass.
        let full = self.compared.lock().map_or(true, |c| {
            c.is_none_or(|at| at.elapsed() >= self.settings.full_compare_interval)
        });
        let stamped = Stamped {
            stamps: self.stamps.get().await,
            store: &self.store,
            key: &key,
            full,
        };
        let begun = stamped.begin(Known { a: false, b: true }).await?;
        let known_b = begun.known.b;
        // The webroot, walked in key order on a blocking thread, a batch at a time.
        let (tx, rx) = mpsc::channel::<Result<Vec<(String, plan::Entry)>, String>>(2);
        let (root, excludes) = (self.root().to_path_buf(), self.excludes.clone());
        let walker = tokio::task::spawn_blocking(move || {
            let walked = local::walk_sorted(&root, &excludes, WALK_BATCH, |batch| {
                tx.blocking_send(Ok(batch)).is_ok()
            });
            if let Err(e) = walked {
                let _ = tx.blocking_send(Err(e.to_string()));
            }
        });
        let sides = AgentSides {
            agent: self,
            remote,
            rules: &rules,
            local: std::sync::Mutex::new(Some(rx)),
            listing: std::sync::Mutex::new(
                (!known_b).then(|| remote.store.listing(&remote.bucket, "", None)),
            ),
        };
        let options = Options {
            rules: &rules,
            known_a: false,
            known_b,
            dry_run: false,
            base_page: remote.store.list_page_size(),
        };
        let done = Box::pin(chunks::pass(&sides, &self.store, &key, &options)).await;
        drop(sides);
        let _ = walker.await;
        // The bucket's stamp left if it was written to; the base recorded exact at it when it is.
        let report = stamped.end(begun, done).await?;
        if !known_b && let Ok(mut c) = self.compared.lock() {
            *c = Some(std::time::Instant::now());
        }
        if report.is_quiet() {
            return Ok(report);
        }
        self.announce(remote, &report).await;
        tracing::info!(
            applied = report.applied,
            failed = report.failures,
            held_back = report.withheld,
            elapsed = ?started.elapsed(),
            "sync agent: pass"
        );
        Ok(report)
    }

    /// Applies one action; a pulled file's entry as it now is in the webroot.
    async fn apply(
        &self,
        remote: &Remote,
        local: &Manifest,
        listed: &Manifest,
        action: &Action,
    ) -> Result<Done, String> {
        let root = self.root();
        let part = self.settings.part_size;
        let (store, bucket) = (&remote.store, remote.bucket.as_str());
        let keep = |key: &str, backup: &Option<String>| {
            let size = listed.get(key).map(|e| e.size);
            let backup = backup.clone();
            let key = key.to_owned();
            async move {
                match (backup, size) {
                    (Some(to), Some(size)) => {
                        Box::pin(store.copy_to(bucket, &key, store, bucket, &to, size, part))
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                    _ => Ok(()),
                }
            }
        };
        match action {
            Action::Copy {
                key,
                from: Side::A,
                backup,
            } => {
                keep(key, backup).await?;
                let path = local::path_of(root, key).map_err(|e| e.to_string())?;
                let entry = local.get(key);
                let size = entry.map_or(0, |e| e.size);
                // The change was made when the file last changed here (not its modification time, which
                // a file unpacked or moved in keeps from elsewhere): every copy of it says so.
                let origin = local::changed_at(&path).or_else(|| entry.map(|e| e.modified));
                let metadata = origin.map(chunks::origin_metadata).unwrap_or_default();
                Box::pin(store.put_file(bucket, key, &path, size, part, &metadata))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Done { entry: None, origin })
            }
            Action::Copy {
                key, from: Side::B, ..
            } => {
                let path = local::path_of(root, key).map_err(|e| e.to_string())?;
                let temp = local::temp_beside(&path).map_err(|e| e.to_string())?;
                let got = Box::pin(store.get_to_file(bucket, key, &temp)).await;
                let origin = match got {
                    Ok(Some(moved)) => chunks::origin_of(&moved.metadata),
                    Ok(None) => {
                        let _ = std::fs::remove_file(&temp);
                        return Err("the object went away before it was pulled".into());
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&temp);
                        return Err(e.to_string());
                    }
                };
                // Never overwrite a local change made while the pass ran: the next pass sees it.
                if !unchanged(&path, local.get(key)) {
                    let _ = std::fs::remove_file(&temp);
                    return Err(
                        "changed in the webroot while it was pulled; compared again next pass".into(),
                    );
                }
                // The file is the object's bytes: its checksum is the object's.
                local::commit(&temp, &path)
                    .map(|entry| Done {
                        entry: Some(plan::Entry {
                            checksum: listed.get(key).and_then(|e| e.checksum.clone()),
                            ..entry
                        }),
                        origin,
                    })
                    .map_err(|e| e.to_string())
            }
            Action::Delete { key, on: Side::A, .. } => {
                let path = local::path_of(root, key).map_err(|e| e.to_string())?;
                if !unchanged(&path, local.get(key)) {
                    return Err("changed in the webroot while the pass ran; compared again next pass".into());
                }
                local::remove(root, &path)
                    .map(|()| Done::default())
                    .map_err(|e| e.to_string())
            }
            Action::Delete {
                key,
                on: Side::B,
                backup,
            } => {
                keep(key, backup).await?;
                Box::pin(store.delete(bucket, key))
                    .await
                    .map(|()| Done::default())
                    .map_err(|e| e.to_string())
            }
            Action::KeepLoser {
                key,
                on: Side::A,
                as_key,
            } => {
                let from = local::path_of(root, key).map_err(|e| e.to_string())?;
                let to = local::path_of(root, as_key).map_err(|e| e.to_string())?;
                local::copy_atomic(&from, &to)
                    .map(|()| Done::default())
                    .map_err(|e| e.to_string())
            }
            Action::KeepLoser {
                key,
                on: Side::B,
                as_key,
            } => {
                let size = listed.get(key).map_or(0, |e| e.size);
                Box::pin(store.copy_to(bucket, key, store, bucket, as_key, size, part))
                    .await
                    .map(|_| Done::default())
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Announces that a pass failed as a whole (its datastore could not be listed, say): `failed`, nothing
    /// copied or deleted.
    async fn announce_failure(&self, remote: &Remote, error: &str) {
        let a = &self.agent;
        let event = crate::failed_pass(&a.deployment, &a.region, &remote.bucket, &a.machine, None, error);
        if let Err(e) = self.publisher.publish_event(&event).await {
            tracing::warn!(error = %e, "sync agent: the failure of a pass was not published");
        }
    }

    /// Announces what a pass pushed and what it pulled.
    async fn announce(&self, remote: &Remote, pass: &PassReport) {
        let failed = pass.failed_sample();
        let held: Vec<String> = pass
            .plan
            .held_back
            .iter()
            .map(|(s, why)| format!("on {s}: {why}"))
            .collect();
        let mut events = Vec::new();
        // Pushed: copied to and deleted on the bucket (`b`); pulled: the webroot (`a`).
        for (outcome, copied, deleted) in [
            ("pushed", &pass.copied_to.1, &pass.deleted_on.1),
            ("pulled", &pass.copied_to.0, &pass.deleted_on.0),
        ] {
            if copied.count + deleted.count > 0 {
                events.push((outcome, Some((copied, deleted))));
            }
        }
        if events.is_empty() && (!failed.is_empty() || !held.is_empty()) {
            events.push((if failed.is_empty() { "held-back" } else { "failed" }, None));
        }
        let none = crate::chunks::Tally::default();
        for (outcome, tallies) in events {
            let (copied, deleted) = tallies.unwrap_or((&none, &none));
            let message = format!(
                "{} {}: {} copied, {} deleted, {} failed",
                self.agent.machine, outcome, copied.count, deleted.count, pass.failures
            );
            let event = SyncApplied {
                endpoint: (outcome == "pushed").then(|| remote.endpoint.clone()),
                copied_count: copied.count as u64,
                deleted_count: deleted.count as u64,
                copied: copied.keys.iter().take(SYNC_EVENT_KEYS).cloned().collect(),
                deleted: deleted.keys.iter().take(SYNC_EVENT_KEYS).cloned().collect(),
                conflicts: pass.conflicts_sample(),
                held_back: held.clone(),
                failed: failed.clone(),
                changed_at: copied.oldest,
                ..crate::announcement(
                    EventMeta::new(uuid::Uuid::now_v7(), "sync"),
                    &self.agent.deployment,
                    &self.agent.region,
                    &remote.bucket,
                    &self.agent.machine,
                    outcome,
                    message,
                )
            };
            if let Err(e) = self.publisher.publish_event(&event).await {
                tracing::warn!(error = %e, "sync agent: an announcement was not published; the resync carries it");
            }
        }
    }
}

/// How many webroot entries the walker hands over at a time.
const WALK_BATCH: usize = 1000;

/// The batches of the webroot's walk.
type Walk = mpsc::Receiver<Result<Vec<(String, plan::Entry)>, String>>;

/// The webroot and its region's bucket as the sides of a chunked pass (each source taken out while a
/// page is read, put back after; gone once read to its end).
struct AgentSides<'a> {
    agent: &'a Agent,
    remote: &'a Remote,
    rules: &'a plan::Rules,
    local: std::sync::Mutex<Option<Walk>>,
    listing: std::sync::Mutex<Option<flotilla_datastore::Listing<'a>>>,
}

impl AgentSides<'_> {
    /// Whether the agent handles `key` of the bucket (a path below the webroot, not excluded).
    fn usable(&self, key: &str) -> bool {
        let usable = local::path_of(self.agent.root(), key).is_ok();
        if !usable {
            tracing::warn!(%key, "sync agent: a key that is no path below the webroot is left alone");
        }
        usable && !self.agent.excludes.excluded(key)
    }
}

impl crate::chunks::Sides for AgentSides<'_> {
    async fn page(&self, side: Side) -> Result<Option<Vec<(String, plan::Entry)>>, String> {
        if side == Side::A {
            let Some(mut walk) = self.local.lock().ok().and_then(|mut l| l.take()) else {
                return Ok(None);
            };
            let batch = walk.recv().await;
            if batch.is_some()
                && let Ok(mut l) = self.local.lock()
            {
                *l = Some(walk);
            }
            return batch.transpose();
        }
        let Some(mut listing) = self.listing.lock().ok().and_then(|mut l| l.take()) else {
            return Ok(None);
        };
        let Some(objects) = Box::pin(listing.next_page())
            .await
            .map_err(|e| format!("listing {}: {e}", self.remote.bucket))?
        else {
            return Ok(None);
        };
        if let Ok(mut l) = self.listing.lock() {
            *l = Some(listing);
        }
        let page = crate::replicate::manifest(&objects, self.rules);
        Ok(Some(page.into_iter().filter(|(k, _)| self.usable(k)).collect()))
    }

    async fn prepare(&self, a: Manifest, b: &Manifest, base: Option<&Base>) -> Manifest {
        let (root, part) = (self.agent.root().to_path_buf(), self.agent.settings.part_size);
        let fallback = a.clone();
        if self.rules.compare == plan::Compare::Checksum {
            // Only new and changed files are read (the others keep the base's checksum).
            let known = base.map(|b| b.a.clone());
            return tokio::task::spawn_blocking(move || {
                let mut a = a;
                local::checksums(&root, &mut a, known.as_ref(), part);
                a
            })
            .await
            .unwrap_or(fallback);
        }
        // By size and time: only files changed on both sides to the same size are read, to tell two
        // equal writes (an upload that landed but whose answer was lost) from a conflict.
        let alike = plan::changed_on_both_alike(&a, b, base, self.rules.compare);
        if alike.is_empty() {
            return a;
        }
        tokio::task::spawn_blocking(move || {
            let mut a = a;
            local::checksums_of(&root, &mut a, &alike, part);
            a
        })
        .await
        .unwrap_or(fallback)
    }

    async fn apply(&self, action: &Action, a: &Manifest, b: &Manifest) -> Result<Done, String> {
        self.agent.apply(self.remote, a, b, action).await
    }

    async fn relist(&self, side: Side, after: Option<&str>, upto: &str) -> Result<Manifest, String> {
        if side == Side::A {
            // What is pulled is known as written (its entry comes back from the pull).
            return Ok(Manifest::new());
        }
        let mut listed =
            crate::replicate::relist(&self.remote.store, &self.remote.bucket, after, upto, self.rules)
                .await?;
        listed.retain(|k, _| self.usable(k));
        Ok(listed)
    }
}

/// Whether the file at `path` is still as `listed` (absent when `None`).
fn unchanged(path: &Path, listed: Option<&plan::Entry>) -> bool {
    match (std::fs::metadata(path), listed) {
        (Ok(meta), Some(was)) => plan::same(&local::entry_of(&meta), was, plan::Compare::SizeAndTime),
        (Err(e), None) => e.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// Watches `root` recursively; every change sends a tick (the pass finds what changed).
fn watch(root: &Path, tx: mpsc::UnboundedSender<()>) -> Result<notify::RecommendedWatcher, notify::Error> {
    use notify::Watcher;
    std::fs::create_dir_all(root).map_err(notify::Error::io)?;
    let temp = local::TEMP_PREFIX;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => {
                !e.kind.is_access()
                    && !e.paths.iter().all(|p: &PathBuf| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(temp))
                    })
            }
            Err(_) => true,
        };
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(root, notify::RecursiveMode::Recursive)?;
    Ok(watcher)
}
