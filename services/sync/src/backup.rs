//! Webroot backups (the replicator takes them): an archive (`.tar.gz`) of a region's webroot — its
//! webroot-sync bucket, which every agent keeps equal to its webroot — written to every datastore endpoint
//! of every region of the deployment at once, with its SHA-256 beside it (`<key>.sha256`).
//!
//! - **Put to all, then fill in**: each copy is recorded in the service's database before it is written;
//!   a copy that fails stays in that durable queue and is tried again (from the local archive, or copied
//!   from an endpoint that has it) until it succeeds — a restart loses nothing.
//! - **Schedule** as the original toolkit's: hourly at minute 2, daily 02:30, weekly on Sunday 03:30,
//!   monthly on the 1st 04:30, bimonthly on the 1st of odd months 05:30 (UTC); a slot missed by less
//!   than [`GRACE`] (the replicator was restarting) is taken late, an older one is not.
//! - **Retention** per period: the oldest archives beyond the period's count are deleted everywhere.
//! - **Restore** reads the datastores themselves (not this database, which may be what was lost): the newest
//!   archive (at or before a time) from any endpoint (or one provider's), its checksum verified — a
//!   corrupted copy is skipped for the next copy or the next archive — and its files written into the
//!   region's webroot-sync bucket, from where the agents and the replicator carry them everywhere. Files
//!   added since the backup are kept.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Duration as ChronoDuration, TimeZone, Timelike, Utc};
use flotilla_bus::Publisher;
use flotilla_clouds::Clouds;
use flotilla_datastore::Datastore;
use flotilla_proto::{BackupView, BackupWritten, EventMeta};
use flotilla_spec::Deployment;
use futures::StreamExt;
use sha2::Digest;

use crate::local;
use crate::settings::Settings;
use crate::store::{BackupRow, SyncStore};

/// The periods, as the original toolkit names its backup buckets (`<site>-<period>`), and `manual`.
pub const PERIODS: [&str; 6] = ["manual", "hourly", "daily", "weekly", "monthly", "bimonthly"];

/// How long an archive kept here that no recorded backup needs is left before it is removed: longer than
/// any delivery takes from building an archive to recording it.
pub const UNNEEDED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// How late a missed scheduled backup is still taken.
pub const GRACE: ChronoDuration = ChronoDuration::minutes(15);

/// The name prefix and suffix of archives.
const PREFIX: &str = "webroot-";
const SUFFIX: &str = ".tar.gz";

/// The time of `period`'s slot in the hour/day/month that `t` is in (or the one before), as the original
/// toolkit's crontab places them; `None` for `manual` or an unknown period.
pub fn last_slot(period: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let at = |d: DateTime<Utc>, h: u32, m: u32| {
        Utc.with_ymd_and_hms(d.year(), d.month(), d.day(), h, m, 0)
            .single()
    };
    let slot = match period {
        "hourly" => {
            let s = Utc
                .with_ymd_and_hms(now.year(), now.month(), now.day(), now.hour(), 2, 0)
                .single()?;
            if s <= now { s } else { s - ChronoDuration::hours(1) }
        }
        "daily" => {
            let s = at(now, 2, 30)?;
            if s <= now { s } else { s - ChronoDuration::days(1) }
        }
        "weekly" => {
            let back = i64::from(now.weekday().num_days_from_sunday());
            let s = at(now - ChronoDuration::days(back), 3, 30)?;
            if s <= now { s } else { s - ChronoDuration::weeks(1) }
        }
        "monthly" | "bimonthly" => {
            let (h, m) = if period == "monthly" { (4, 30) } else { (5, 30) };
            let mut y = now.year();
            let mut mo = now.month();
            loop {
                let s = Utc.with_ymd_and_hms(y, mo, 1, h, m, 0).single()?;
                if s <= now && (period == "monthly" || mo % 2 == 1) {
                    break s;
                }
                if mo == 1 {
                    y -= 1;
                    mo = 12;
                } else {
                    mo -= 1;
                }
            }
        }
        _ => return None,
    };
    Some(slot)
}

/// The first slot of `period` after `now`.
pub fn next_slot(period: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let step = match period {
        "hourly" => ChronoDuration::hours(1),
        "daily" => ChronoDuration::days(1),
        "weekly" => ChronoDuration::weeks(1),
        // Walk forward a day at a time from the last slot: months differ in length.
        "monthly" | "bimonthly" => ChronoDuration::days(1),
        _ => return None,
    };
    let last = last_slot(period, now)?;
    let mut t = last + step;
    while last_slot(period, t)? == last {
        t += step;
    }
    last_slot(period, t)
}

/// One endpoint a backup is written to.
#[derive(Clone)]
struct Target {
    name: String,
    provider: String,
    store: Datastore,
}

/// An archive found on an endpoint: its time, bucket, key and endpoint.
type Found = (DateTime<Utc>, String, String, Target);

/// Takes, fills in, prunes and restores backups.
pub struct Backups {
    settings: Settings,
    clouds: Clouds,
    store: SyncStore,
    publisher: Publisher,
    dir: PathBuf,
    stamps: std::sync::Arc<crate::stamps::StampSource>,
    /// One lock per deployment, held while its copies are written or its archives removed here: a
    /// delivery, the deployment's runs (lease holder) and the filling in of held archives
    /// ([`Backups::fill_held`]) never write one copy at once, nor remove an archive another is writing.
    filling: std::sync::Mutex<std::collections::BTreeMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

/// The taken time written in an archive's key.
fn taken_of(key: &str) -> Option<DateTime<Utc>> {
    let stamp = key.strip_prefix(PREFIX)?.get(..16)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Removes the work directories and half-built archives of builds stopped midway under `dir` (each
/// deployment's folder); finished archives, kept until their copies are written, stay.
fn remove_unfinished(dir: &Path) {
    let Ok(deployments) = std::fs::read_dir(dir) else {
        return;
    };
    for deployment in deployments.flatten() {
        let Ok(entries) = std::fs::read_dir(deployment.path()) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            match path.extension().and_then(|x| x.to_str()) {
                Some("files") => {
                    let _ = std::fs::remove_dir_all(&path);
                }
                Some("building") => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
    }
}

impl Backups {
    /// Backups kept in `store`, archives built under `dir` (one per replica); a restore leaves its stamp
    /// in `stamps`. What builds stopped midway left under `dir` (the replica was killed) is removed: no
    /// build runs before this.
    pub fn new(
        settings: Settings,
        clouds: Clouds,
        store: SyncStore,
        publisher: Publisher,
        dir: PathBuf,
        stamps: std::sync::Arc<crate::stamps::StampSource>,
    ) -> Self {
        remove_unfinished(&dir);
        Self {
            settings,
            clouds,
            store,
            publisher,
            dir,
            stamps,
            filling: std::sync::Mutex::default(),
        }
    }

    /// Waits for `deployment`'s lock (see `filling`).
    async fn lock(&self, deployment: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            // The map stays whole whatever a panicking holder did: it only ever gains entries.
            let mut locks = self
                .filling
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::sync::Arc::clone(locks.entry(deployment.to_owned()).or_default())
        };
        lock.lock_owned().await
    }

    /// Every endpoint of every region of `d`, once each.
    fn targets(&self, d: &Deployment) -> Result<Vec<Target>, String> {
        let mut out: Vec<Target> = Vec::new();
        for r in &d.regions {
            if r.datastores.is_empty() {
                continue;
            }
            let set = self
                .clouds
                .datastores(&d.name, r)
                .map_err(|e| format!("region {}: {e}", r.name))?;
            for (endpoint, store) in r.datastores.iter().zip(set.endpoints()) {
                let name = crate::stamps::endpoint_name(endpoint);
                if out.iter().any(|t| t.name == name) {
                    continue;
                }
                out.push(Target {
                    name,
                    provider: endpoint.provider.to_string(),
                    store: store.clone(),
                });
            }
        }
        Ok(out)
    }

    /// `region`'s endpoint 1 and webroot-sync bucket.
    fn source(&self, d: &Deployment, region: &str) -> Result<(Datastore, String), String> {
        let r = d
            .region(region)
            .ok_or_else(|| format!("deployment {} has no region {region}", d.name))?;
        let set = self
            .clouds
            .datastores(&d.name, r)
            .map_err(|e| format!("region {region}: {e}"))?;
        Ok((set.primary().clone(), d.bucket("webroot-sync")))
    }

    /// Where this replica keeps the archive of `id` with `checksum` until every copy is written: named by
    /// its checksum too, so two deliveries building the same backup at once never share a file unless
    /// their archives are the same bytes.
    fn archive_path(&self, d: &Deployment, id: &str, checksum: &str) -> PathBuf {
        self.dir.join(&d.name).join(format!("{id}-{checksum}{SUFFIX}"))
    }

    /// Takes backup `id` of `region`'s webroot for `period` (again: only what is missing is done).
    pub async fn take(
        &self,
        d: &Deployment,
        region: &str,
        period: &str,
        id: &str,
        correlation: uuid::Uuid,
    ) -> Result<BackupWritten, String> {
        if !PERIODS.contains(&period) {
            return Err(format!(
                "unknown backup period {period:?} (one of {})",
                PERIODS.join(", ")
            ));
        }
        let row = match self.recorded(d, id).await? {
            // Recorded by an earlier delivery, which may have stopped before every copy was recorded (the
            // database went away between the inserts): the copies are recorded again, each once.
            Some(row) => {
                self.record(d, &row).await?;
                row
            }
            None => self.archive(d, region, period, id).await?,
        };
        let (written, missing, _) = self.fill(d, &row).await?;
        self.retain(d, period).await;
        let outcome = if missing.is_empty() {
            "written"
        } else {
            "incomplete"
        };
        let event = self.event(d, &row, outcome, written, missing, correlation);
        self.publish(&event).await;
        Ok(event)
    }

    /// Backup `id` of `d` as recorded, if it is.
    async fn recorded(&self, d: &Deployment, id: &str) -> Result<Option<BackupRow>, String> {
        Ok(self
            .store
            .backups(&d.name)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|b| b.id == id))
    }

    /// Records `row` (unless a backup of its id is) and a copy to write on every endpoint of `d` (each
    /// once).
    async fn record(&self, d: &Deployment, row: &BackupRow) -> Result<(), String> {
        let names: Vec<String> = self.targets(d)?.into_iter().map(|t| t.name).collect();
        self.store
            .record_backup(row, &names)
            .await
            .map_err(|e| e.to_string())
    }

    /// Builds the archive of `region`'s webroot and records it with its copies to write.
    async fn archive(
        &self,
        d: &Deployment,
        region: &str,
        period: &str,
        id: &str,
    ) -> Result<BackupRow, String> {
        let (source, bucket) = self.source(d, region)?;
        // This build's own work directory and file: another delivery may be building the same id here.
        let build = uuid::Uuid::new_v4().simple();
        let work = self.dir.join(&d.name).join(format!("{id}.{build}.files"));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        // Each object to a file (streamed), a few at once, a page of the listing at a time.
        let mut listing = source.listing(&bucket, "", None);
        loop {
            let page = match Box::pin(listing.next_page()).await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&work);
                    return Err(format!("listing {bucket}: {e}"));
                }
            };
            let results: Vec<Result<(), String>> = futures::stream::iter(page)
                .map(|o| {
                    let (source, bucket, work) = (&source, &bucket, &work);
                    async move {
                        let path = local::path_of(work, &o.key).map_err(|e| e.to_string())?;
                        if let Some(dir) = path.parent() {
                            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                        }
                        Box::pin(source.get_to_file(bucket, &o.key, &path))
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                })
                .buffer_unordered(self.settings.transfers.max(1))
                .collect()
                .await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                let _ = std::fs::remove_dir_all(&work);
                return Err(format!("reading the webroot of {region}: {e}"));
            }
        }
        let building = self.dir.join(&d.name).join(format!("{id}.{build}.building"));
        let (work2, archive2) = (work.clone(), building.clone());
        let built = tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
            let file = std::fs::File::create(&archive2)?;
            let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            let mut tar = tar::Builder::new(gz);
            tar.follow_symlinks(false);
            tar.append_dir_all(".", &work2)?;
            tar.into_inner()?.finish()?.sync_all()?;
            sha256_file(&archive2)
        })
        .await
        .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&work);
        let (checksum, size) = match built {
            Ok(built) => built,
            Err(e) => {
                let _ = std::fs::remove_file(&building);
                return Err(format!("building the archive: {e}"));
            }
        };
        let archive = self.archive_path(d, id, &checksum);
        if let Err(e) = std::fs::rename(&building, &archive) {
            let _ = std::fs::remove_file(&building);
            return Err(format!("{}: {e}", archive.display()));
        }
        let taken_at = Utc::now();
        // The whole id: a command's is a UUIDv7, whose first digits are its time, so a prefix of it is the
        // same for two backups asked for within seconds of each other (and one archive overwrote the other).
        let short: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
        let row = BackupRow {
            deployment: d.name.clone(),
            id: id.to_owned(),
            period: period.to_owned(),
            region: region.to_owned(),
            bucket: d.bucket(period),
            key: format!("{PREFIX}{}-{short}{SUFFIX}", taken_at.format("%Y%m%dT%H%M%SZ")),
            taken_at,
            checksum,
            size,
        };
        // Kept when recording fails: the record may have been made (the database went away before it
        // answered), and then the next delivery writes this archive. One never recorded is removed by a
        // later run ([`Self::fill_pending`]).
        self.record(d, &row).await?;
        // The backup is what was recorded first. Another delivery of the same command (a redelivery, or the
        // command reaching both replicas) may have built and recorded its own archive meanwhile: then this
        // one is dropped and only the recorded one is written — never two archives of one backup, nor one
        // key holding one delivery's bytes and the other's checksum.
        let recorded = self
            .recorded(d, id)
            .await?
            .ok_or_else(|| format!("backup {id} was recorded but is not found"))?;
        if recorded.checksum != row.checksum {
            let _ = std::fs::remove_file(&archive);
        }
        Ok(recorded)
    }

    /// Writes every copy of `row` not written yet; the endpoints holding it, those still missing it with
    /// why, and whether any copy was left to write (another may have written them all meanwhile).
    async fn fill(
        &self,
        d: &Deployment,
        row: &BackupRow,
    ) -> Result<(Vec<String>, Vec<String>, bool), String> {
        let _filling = self.lock(&d.name).await;
        let targets = self.targets(d)?;
        let copies: Vec<_> = self
            .store
            .copies(&d.name)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|c| c.id == row.id)
            .collect();
        let archive = self.archive_path(d, &row.id, &row.checksum);
        let local = archive.exists();
        let holder = targets
            .iter()
            .find(|t| copies.iter().any(|c| c.written && c.endpoint == t.name))
            .cloned();
        let mut written = Vec::new();
        let mut missing = Vec::new();
        let pending: Vec<crate::store::CopyRow> = copies.iter().filter(|c| !c.written).cloned().collect();
        let any = !pending.is_empty();
        written.extend(copies.iter().filter(|c| c.written).map(|c| c.endpoint.clone()));
        let results: Vec<(String, Result<(), String>)> = futures::stream::iter(pending)
            .map(|c: crate::store::CopyRow| {
                let (targets, archive, holder) = (&targets, &archive, &holder);
                async move {
                    let Some(t) = targets.iter().find(|t| t.name == c.endpoint) else {
                        return (
                            c.endpoint.clone(),
                            Err("no longer an endpoint of the deployment".into()),
                        );
                    };
                    let done = async {
                        Box::pin(t.store.ensure_bucket(&row.bucket))
                            .await
                            .map_err(|e| e.to_string())?;
                        if local {
                            Box::pin(t.store.put_file(
                                &row.bucket,
                                &row.key,
                                archive,
                                row.size,
                                self.settings.part_size,
                                &flotilla_datastore::Metadata::new(),
                            ))
                            .await
                            .map_err(|e| e.to_string())?;
                        } else if let Some(h) = holder {
                            Box::pin(h.store.copy_to(
                                &row.bucket,
                                &row.key,
                                &t.store,
                                &row.bucket,
                                &row.key,
                                row.size,
                                self.settings.part_size,
                            ))
                            .await
                            .map_err(|e| e.to_string())?;
                        } else {
                            return Err(
                                "the archive is neither here nor on any endpoint yet (the delivery that built \
                                 it writes it)"
                                    .to_owned(),
                            );
                        }
                        Box::pin(t.store.put(
                            &row.bucket,
                            &format!("{}.sha256", row.key),
                            bytes::Bytes::from(format!("{}\n", row.checksum)),
                        ))
                        .await
                        .map_err(|e| e.to_string())
                    };
                    (c.endpoint.clone(), done.await)
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        for (endpoint, done) in results {
            let error = done.as_ref().err().map(String::as_str);
            if let Err(e) = self.store.copy_done(&d.name, &row.id, &endpoint, error).await {
                tracing::warn!(error = %e, "sync: a backup copy's outcome was not recorded; it is written again");
            }
            match done {
                Ok(()) => written.push(endpoint),
                Err(e) => missing.push(format!("{endpoint}: {e}")),
            }
        }
        if missing.is_empty() {
            let _ = std::fs::remove_file(&archive);
        }
        Ok((written, missing, any))
    }

    /// Fills in every backup of `d` with copies still missing (the deployment's runs, by the replica holding
    /// its lease); whether some remain missing.
    pub async fn fill_pending(&self, d: &Deployment) -> Result<bool, String> {
        self.fill_backups(d, false).await
    }

    /// The deployments this replica keeps a finished archive of (whose copies may still be missing).
    pub fn held(&self) -> Vec<String> {
        let Ok(deployments) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        deployments
            .flatten()
            .filter(|e| {
                std::fs::read_dir(e.path()).is_ok_and(|mut entries| {
                    entries.any(|x| x.is_ok_and(|x| x.file_name().to_string_lossy().ends_with(SUFFIX)))
                })
            })
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect()
    }

    /// Fills in the copies still missing of `d`'s backups whose archive this replica keeps, whichever
    /// replica holds the deployment's lease: a delivery that recorded a backup and stopped before writing
    /// its first copy left the archive only here, and the lease holder, with no archive and no endpoint
    /// holding one, cannot write it. Archives no backup needs are removed as in [`Self::fill_pending`];
    /// whether some copies remain missing.
    pub async fn fill_held(&self, d: &Deployment) -> Result<bool, String> {
        self.fill_backups(d, true).await
    }

    /// Fills in the backups of `d` with copies still missing — only those whose archive is kept here if
    /// `held_only` — after removing the archives kept here that no backup needs; whether some remain.
    async fn fill_backups(&self, d: &Deployment, held_only: bool) -> Result<bool, String> {
        let filling = self.lock(&d.name).await;
        let copies = self.store.copies(&d.name).await.map_err(|e| e.to_string())?;
        let backups = self.store.backups(&d.name).await.map_err(|e| e.to_string())?;
        let mut remaining = false;
        let pending = |b: &&BackupRow| copies.iter().any(|c| c.id == b.id && !c.written);
        // Archives kept here that no copy still needs: finished from elsewhere (copied from an endpoint by
        // another delivery), or never recorded (the database went away) and built again since — once old
        // enough that no delivery can still be between building and recording them.
        let paths = |wanted: bool| -> std::collections::BTreeSet<PathBuf> {
            backups
                .iter()
                .filter(|b| pending(b) == wanted)
                .map(|b| self.archive_path(d, &b.id, &b.checksum))
                .collect()
        };
        let (needed, finished) = (paths(true), paths(false));
        if let Ok(entries) = std::fs::read_dir(self.dir.join(&d.name)) {
            for e in entries.flatten() {
                let path = e.path();
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= UNNEEDED_AFTER);
                if path.to_string_lossy().ends_with(SUFFIX)
                    && !needed.contains(&path)
                    && (finished.contains(&path) || old)
                {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        drop(filling);
        let here = |b: &&BackupRow| !held_only || self.archive_path(d, &b.id, &b.checksum).exists();
        for row in backups.iter().filter(pending).filter(here) {
            let (written, missing, any) = self.fill(d, row).await?;
            // Announced once, by whoever wrote the last copies (a replica's two fillers take turns).
            if missing.is_empty() && any {
                let event = self.event(d, row, "filled", written, missing, uuid::Uuid::now_v7());
                self.publish(&event).await;
            } else if !missing.is_empty() {
                remaining = true;
            }
        }
        Ok(remaining)
    }

    /// Deletes the archives of `period` older than its newest `keep` complete ones (written to every
    /// endpoint), everywhere: a backup missing somewhere never counts, so every endpoint always keeps
    /// `keep` good copies — an endpoint refusing new backups is never emptied of its old ones.
    async fn retain(&self, d: &Deployment, period: &str) {
        let keep = self.settings.backups.keep(period).max(1);
        let (Ok(backups), Ok(copies)) = (
            self.store.backups(&d.name).await,
            self.store.copies(&d.name).await,
        ) else {
            return;
        };
        let Ok(targets) = self.targets(d) else {
            return;
        };
        let complete = |b: &BackupRow| {
            targets.iter().all(|t| {
                copies
                    .iter()
                    .any(|c| c.id == b.id && c.endpoint == t.name && c.written)
            })
        };
        // Newest first: everything after the keep-th complete one goes.
        let of_period: Vec<&BackupRow> = backups.iter().filter(|b| b.period == period).collect();
        let Some(last_kept) = of_period
            .iter()
            .enumerate()
            .filter(|(_, b)| complete(b))
            .nth(keep - 1)
            .map(|(i, _)| i)
        else {
            return;
        };
        for old in of_period.into_iter().skip(last_kept + 1) {
            let mut all = true;
            for t in &targets {
                for key in [old.key.clone(), format!("{}.sha256", old.key)] {
                    if let Err(e) = Box::pin(t.store.delete(&old.bucket, &key)).await {
                        all = false;
                        tracing::warn!(endpoint = %t.name, key, error = %e, "sync: an old backup was not deleted; next time");
                    }
                }
            }
            if !all {
                continue;
            }
            match self.store.forget_backup(&d.name, &old.id).await {
                Ok(()) => {
                    let names = targets.iter().map(|t| t.name.clone()).collect();
                    let mut event = self.event(d, old, "expired", names, Vec::new(), uuid::Uuid::now_v7());
                    event.message = format!(
                        "backup {} of {}'s webroot deleted from every datastore: {} newer complete {period} \
                         backup(s) are kept",
                        old.key, old.region, keep
                    );
                    self.publish(&event).await;
                }
                Err(e) => tracing::warn!(error = %e, "sync: an old backup was not forgotten"),
            }
        }
    }

    /// Takes the scheduled backups of `d` that are due; when the next one is.
    pub async fn scheduled(&self, d: &Deployment, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.settings.backups.scheduled {
            return None;
        }
        let home = d
            .regions
            .iter()
            .find(|r| r.primary)
            .or_else(|| d.regions.first())?;
        let taken = self.store.backups(&d.name).await.unwrap_or_default();
        let mut next: Option<DateTime<Utc>> = None;
        for period in PERIODS.iter().skip(1) {
            if let Some(slot) = last_slot(period, now)
                && now - slot < GRACE
                && !taken.iter().any(|b| b.period == *period && b.taken_at >= slot)
            {
                let id = format!("{period}-{}", slot.format("%Y%m%dT%H%M"));
                if let Err(e) = self.take(d, &home.name, period, &id, uuid::Uuid::now_v7()).await {
                    tracing::warn!(deployment = %d.name, period, error = %e, "sync: a scheduled backup failed; tried again at the next run");
                }
            }
            if let Some(n) = next_slot(period, now) {
                next = Some(next.map_or(n, |x| x.min(n)));
            }
        }
        next
    }

    /// What `flotilla.api.sync.show` says of `d`'s backups.
    pub async fn view(&self, deployment: &str) -> Vec<BackupView> {
        let backups = self.store.backups(deployment).await.unwrap_or_default();
        let copies = self.store.copies(deployment).await.unwrap_or_default();
        backups
            .into_iter()
            .map(|b| {
                let mine = copies.iter().filter(|c| c.id == b.id);
                BackupView {
                    written: mine
                        .clone()
                        .filter(|c| c.written)
                        .map(|c| c.endpoint.clone())
                        .collect(),
                    missing: mine
                        .filter(|c| !c.written)
                        .map(|c| match &c.error {
                            Some(e) => format!("{}: {e}", c.endpoint),
                            None => c.endpoint.clone(),
                        })
                        .collect(),
                    period: b.period,
                    key: b.key,
                    taken_at: b.taken_at,
                    checksum: b.checksum,
                    size: b.size,
                }
            })
            .collect()
    }

    /// Restores the newest good archive (at or before `at`, from `from`'s endpoints only when given) into
    /// `region`'s webroot-sync bucket.
    pub async fn restore(
        &self,
        d: &Deployment,
        region: &str,
        from: Option<&str>,
        at: Option<DateTime<Utc>>,
        correlation: uuid::Uuid,
    ) -> Result<BackupWritten, String> {
        let (dest, dest_bucket) = self.source(d, region)?;
        let dest_endpoint = d
            .region(region)
            .and_then(|r| r.datastores.first())
            .map(crate::stamps::endpoint_name)
            .unwrap_or_default();
        let targets: Vec<Target> = self
            .targets(d)?
            .into_iter()
            .filter(|t| from.is_none_or(|p| t.provider == p))
            .collect();
        if targets.is_empty() {
            return Err(format!(
                "no datastore of provider {} in deployment {}",
                from.unwrap_or("?"),
                d.name
            ));
        }
        // Every archive on every endpoint, by the datastores' own listings.
        // Endpoints at once; an endpoint that cannot be listed is noted once and left out.
        let listed: Vec<(Vec<Found>, Option<String>)> =
            futures::future::join_all(targets.iter().map(|t| async move {
                let mut found = Vec::new();
                for period in PERIODS {
                    let bucket = d.bucket(period);
                    match Box::pin(t.store.list(&bucket, PREFIX)).await {
                        Ok(objects) => found.extend(objects.into_iter().filter_map(|o| {
                            let taken = taken_of(&o.key)?;
                            (o.key.ends_with(SUFFIX) && at.is_none_or(|a| taken <= a))
                                .then(|| (taken, bucket.clone(), o.key, t.clone()))
                        })),
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return (found, Some(format!("{}: {bucket}: {e}", t.name))),
                    }
                }
                (found, None)
            }))
            .await;
        let mut found = Vec::new();
        let mut notes = Vec::new();
        for (f, note) in listed {
            found.extend(f);
            notes.extend(note);
        }
        found.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.2.cmp(&y.2)));
        let work = self
            .dir
            .join(&d.name)
            .join(format!("restore-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        let archive = work.join("archive.tar.gz");
        let mut chosen = None;
        for (_, bucket, key, t) in &found {
            let expected = match Box::pin(t.store.get(bucket, &format!("{key}.sha256"))).await {
                Ok(Some(b)) => String::from_utf8_lossy(&b).trim().to_owned(),
                Ok(None) => {
                    notes.push(format!("{}: {key}: no checksum beside it; skipped", t.name));
                    continue;
                }
                Err(e) => {
                    notes.push(format!("{}: {key}: {e}", t.name));
                    continue;
                }
            };
            if let Err(e) = Box::pin(t.store.get_to_file(bucket, key, &archive)).await {
                notes.push(format!("{}: {key}: {e}", t.name));
                continue;
            }
            let path = archive.clone();
            let got = tokio::task::spawn_blocking(move || sha256_file(&path))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if got.0 != expected {
                notes.push(format!(
                    "{}: {key}: checksum {} is not {expected}; a corrupted copy, skipped",
                    t.name, got.0
                ));
                continue;
            }
            chosen = Some((bucket.clone(), key.clone(), t.name.clone(), got));
            break;
        }
        let Some((bucket, key, endpoint, (checksum, size))) = chosen else {
            let _ = std::fs::remove_dir_all(&work);
            if notes.is_empty() {
                return Err(format!(
                    "no backup of deployment {}'s webroot on any datastore{}",
                    d.name,
                    at.map(|a| format!(" taken at or before {a}")).unwrap_or_default()
                ));
            }
            return Err(format!("no good backup found: {}", notes.join("; ")));
        };
        // Unpacked (paths that would leave the directory are refused by `tar`), then written into the
        // bucket the agents follow.
        let files = work.join("files");
        let (archive2, files2) = (archive.clone(), files.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let gz = flate2::read::GzDecoder::new(std::fs::File::open(&archive2)?);
            tar::Archive::new(gz).unpack(&files2)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("unpacking {key}: {e}"))?;
        // Written a batch of the unpacked files at a time, in key order.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<(String, crate::plan::Entry)>>(2);
        let walked = files.clone();
        let walker = tokio::task::spawn_blocking(move || {
            let none = local::Excludes::new(&[]).map_err(|e| e.to_string())?;
            local::walk_sorted(&walked, &none, 1000, |batch| tx.blocking_send(batch).is_ok())
                .map_err(|e| e.to_string())
        });
        let (mut written, mut sample, mut failed) = (0usize, Vec::new(), Vec::new());
        while let Some(batch) = rx.recv().await {
            let results: Vec<Result<String, String>> = futures::stream::iter(batch)
                .map(|(k, entry)| {
                    let (dest, dest_bucket, files) = (&dest, &dest_bucket, &files);
                    async move {
                        let path = local::path_of(files, &k).map_err(|e| format!("{k}: {e}"))?;
                        // No origin: a restored file is a change made now (its write's time says so).
                        let origin = flotilla_datastore::Metadata::new();
                        Box::pin(dest.put_file(
                            dest_bucket,
                            &k,
                            &path,
                            entry.size,
                            self.settings.part_size,
                            &origin,
                        ))
                        .await
                        .map(|_| k.clone())
                        .map_err(|e| format!("{k}: {e}"))
                    }
                })
                .buffer_unordered(self.settings.transfers.max(1))
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(k) => {
                        written += 1;
                        if sample.len() < flotilla_proto::SYNC_EVENT_KEYS {
                            sample.push(k);
                        }
                    }
                    Err(e) if failed.len() < 100 => failed.push(e),
                    Err(_) => {}
                }
            }
        }
        if let Ok(Err(e)) = walker.await {
            failed.push(format!("reading the unpacked archive: {e}"));
        }
        let _ = std::fs::remove_dir_all(&work);
        // Written (even in part): whoever reads the bucket next lists it.
        if let Some(stamps) = self.stamps.get().await {
            let spot = crate::stamps::Spot {
                deployment: &d.name,
                bucket: &dest_bucket,
                endpoint: &dest_endpoint,
            };
            if let Err(e) = stamps.left(spot, None).await {
                tracing::warn!(error = %e, "sync: the restored bucket's stamp could not be left; the agents' full comparison finds the files");
            }
        }
        if !failed.is_empty() {
            return Err(format!(
                "restoring {key}: {} files not written: {}",
                failed.len(),
                failed.join("; ")
            ));
        }
        // The region's agents pull what the restore wrote, as after any change of their datastore.
        let applied = flotilla_proto::SyncApplied {
            endpoints: vec![dest_endpoint.clone()],
            copied_count: written as u64,
            copied: sample,
            ..crate::announcement(
                EventMeta::new(correlation, "sync"),
                &d.name,
                region,
                &dest_bucket,
                "replicator",
                "restored",
                format!("{key} restored into {region}'s webroot"),
            )
        };
        if let Err(e) = self.publisher.publish_event(&applied).await {
            tracing::warn!(error = %e, "sync: the restore was not announced; the agents' resync carries it");
        }
        let event = BackupWritten {
            meta: EventMeta::new(correlation, "sync"),
            deployment: d.name.clone(),
            region: region.to_owned(),
            outcome: "restored".into(),
            bucket,
            key: key.clone(),
            checksum,
            size,
            written: vec![endpoint.clone()],
            missing: notes,
            message: format!(
                "{} files of {key} (from {endpoint}) restored into {region}'s webroot",
                written
            ),
        };
        self.publish(&event).await;
        Ok(event)
    }

    fn event(
        &self,
        d: &Deployment,
        row: &BackupRow,
        outcome: &str,
        written: Vec<String>,
        missing: Vec<String>,
        correlation: uuid::Uuid,
    ) -> BackupWritten {
        BackupWritten {
            meta: EventMeta::new(correlation, "sync"),
            deployment: d.name.clone(),
            region: row.region.clone(),
            outcome: outcome.into(),
            bucket: row.bucket.clone(),
            key: row.key.clone(),
            checksum: row.checksum.clone(),
            size: row.size,
            message: format!(
                "backup {} of {}'s webroot: on {} endpoints{}",
                row.key,
                row.region,
                written.len(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(", {} still missing it (retried)", missing.len())
                }
            ),
            written,
            missing,
        }
    }

    async fn publish(&self, event: &BackupWritten) {
        if let Err(e) = self.publisher.publish_event(event).await {
            tracing::warn!(error = %e, "sync: a backup event was not published");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_removes_the_builds_stopped_midway_and_keeps_finished_archives() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("cmd-1.abc.files/pages")).expect("a work directory");
        std::fs::write(site.join("cmd-1.abc.files/pages/index.html"), "x").expect("a work file");
        std::fs::write(site.join("cmd-1.abc.building"), "half").expect("a half-built archive");
        std::fs::write(site.join("cmd-2-0f0f.tar.gz"), "whole").expect("a finished archive");
        remove_unfinished(dir.path());
        let left: Vec<String> = std::fs::read_dir(&site)
            .expect("the deployment's folder")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["cmd-2-0f0f.tar.gz"]);
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn slots_follow_the_original_crontab() {
        let now = t("2026-12-06T13:20:00Z"); // a Sunday
        assert_eq!(last_slot("hourly", now), Some(t("2026-12-06T13:02:00Z")));
        assert_eq!(
            last_slot("hourly", t("2026-12-06T13:01:00Z")),
            Some(t("2026-12-06T12:02:00Z"))
        );
        assert_eq!(last_slot("daily", now), Some(t("2026-12-06T02:30:00Z")));
        assert_eq!(
            last_slot("daily", t("2026-12-06T01:00:00Z")),
            Some(t("2026-12-05T02:30:00Z"))
        );
        assert_eq!(last_slot("weekly", now), Some(t("2026-12-06T03:30:00Z")));
        assert_eq!(
            last_slot("weekly", t("2026-12-06T03:00:00Z")),
            Some(t("2026-11-29T03:30:00Z"))
        );
        assert_eq!(last_slot("monthly", now), Some(t("2026-12-01T04:30:00Z")));
        assert_eq!(last_slot("bimonthly", now), Some(t("2026-11-01T05:30:00Z")));
        assert_eq!(
            last_slot("bimonthly", t("2027-01-01T05:00:00Z")),
            Some(t("2026-11-01T05:30:00Z"))
        );
        assert_eq!(last_slot("manual", now), None);
        assert_eq!(next_slot("hourly", now), Some(t("2026-12-06T14:02:00Z")));
        assert_eq!(next_slot("monthly", now), Some(t("2027-01-01T04:30:00Z")));
        assert_eq!(next_slot("bimonthly", now), Some(t("2027-01-01T05:30:00Z")));
        assert_eq!(next_slot("weekly", now), Some(t("2026-12-13T03:30:00Z")));
    }

    #[test]
    fn archive_keys_carry_their_time() {
        assert_eq!(
            taken_of("webroot-20261206T132000Z-abc.tar.gz"),
            Some(t("2026-12-06T13:20:00Z"))
        );
        assert_eq!(taken_of("other"), None);
    }
}
