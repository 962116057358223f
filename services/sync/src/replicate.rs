//! One replication pass of a bucket between two endpoints (two regions' datastores, on any providers):
//! both listed (one listing each, no HEAD per object), [`crate::plan::plan`] against the base of the last
//! fully successful pass, then applied — losers of conflicts kept first, copies (part by part, so memory
//! stays at one part whatever the size), then deletions, each object about to be overwritten or deleted
//! kept under the backup prefix first when there is one. The new base is given back only when every
//! action succeeded: a pass that failed anywhere propagates no deletion next time, it is simply run again.

use chrono::{DateTime, Utc};
use flotilla_datastore::{Datastore, DatastoreError, ObjectInfo};
use futures::StreamExt;

use crate::plan::{self, Action, Base, Entry, Manifest, Plan, Rules, Side};

/// How many objects a pass copies or deletes at once unless `transfers` says otherwise (32 copied 10,000
/// small objects in 19.6 s where 16 took 33.9 s against the simulator; see BENCHMARKS.md).
pub const TRANSFERS: usize = 32;

/// What went wrong with a pass as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A side could not be listed: nothing was planned or changed.
    #[error("side {side} of bucket {bucket} could not be listed: {source}")]
    List {
        /// The side.
        side: Side,
        /// The bucket.
        bucket: String,
        /// Why.
        source: DatastoreError,
    },
}

/// One bucket between two endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    /// Side `a`.
    pub a: &'a Datastore,
    /// Side `b`.
    pub b: &'a Datastore,
    /// The bucket (the same name on both).
    pub bucket: &'a str,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// What it planned (all of it, in a dry run).
    pub plan: Plan,
    /// The actions applied.
    pub applied: usize,
    /// The actions that failed, with why (they are planned again next pass).
    pub failed: Vec<(String, String)>,
    /// The new base (not in a dry run): what was applied moves it on, what failed or was held back keeps
    /// its old base, so the next pass plans it again the same way.
    pub base: Option<Base>,
    /// The modification time of the oldest change it carried (for the lag).
    pub changed_at: Option<DateTime<Utc>>,
    /// Per side (`a`, `b`), whether it was listed (not known unchanged by its stamp).
    pub listed: (bool, bool),
    /// Per side, whether the pass wrote to it.
    pub wrote: (bool, bool),
    /// Whether the new base is exactly what both sides hold: nothing failed, nothing was held back and no
    /// conflict's loser was kept under a new name (the next pass carries it across).
    pub exact: bool,
}

/// The sides' manifests when they are known without a listing (by their stamps, [`crate::stamps`]).
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Side `a`'s.
    pub a: Option<Manifest>,
    /// Side `b`'s.
    pub b: Option<Manifest>,
}

impl Pair<'_> {
    fn side(&self, s: Side) -> &Datastore {
        match s {
            Side::A => self.a,
            Side::B => self.b,
        }
    }

    /// Both sides' manifests (objects under the backup prefix left out: backups are not replicated); a
    /// side `known` is not listed.
    async fn manifests(&self, rules: &Rules, known: Known) -> Result<(Manifest, Manifest), PassError> {
        let list = |side: Side, known: Option<Manifest>| async move {
            if let Some(m) = known {
                return Ok(m);
            }
            self.side(side)
                .list(self.bucket, "")
                .await
                .map_err(|source| PassError::List {
                    side,
                    bucket: self.bucket.to_owned(),
                    source,
                })
                .map(|objects| manifest(&objects, rules))
        };
        // Boxed: a listing's future is large (the SDK's, with retries).
        let (a, b) = futures::join!(Box::pin(list(Side::A, known.a)), Box::pin(list(Side::B, known.b)));
        Ok((a?, b?))
    }

    /// Runs one pass against `base` (none: a first pass) with `rules`, listing the sides not `known` —
    /// planned only, with `dry_run`.
    pub async fn pass(
        &self,
        base: Option<&Base>,
        known: Known,
        rules: &Rules,
        part_size: u64,
        dry_run: bool,
    ) -> Result<PassReport, PassError> {
        let listed = (known.a.is_none(), known.b.is_none());
        let (a, b) = Box::pin(self.manifests(rules, known)).await?;
        let now = Utc::now();
        let planned = plan::plan(&a, &b, base, rules, now);
        let mut report = PassReport {
            plan: planned,
            listed,
            ..PassReport::default()
        };
        if dry_run {
            return Ok(report);
        }
        let sides = |s: Side| if s == Side::A { &a } else { &b };
        let apply = |action: Action| async move {
            let done = match &action {
                Action::KeepLoser { key, on, as_key } => {
                    let size = sides(*on).get(key).map_or(0, |e| e.size);
                    self.copy(*on, key, *on, as_key, size, part_size).await
                }
                Action::Copy { key, from, backup } => {
                    let to = from.other();
                    let mut done = Ok(());
                    if let (Some(backup), Some(old)) = (backup, sides(to).get(key)) {
                        done = self.copy(to, key, to, backup, old.size, part_size).await;
                    }
                    let size = sides(*from).get(key).map_or(0, |e| e.size);
                    match done {
                        Ok(()) => self.copy(*from, key, to, key, size, part_size).await,
                        Err(e) => Err(e),
                    }
                }
                Action::Delete { key, on, backup } => {
                    let mut done = Ok(());
                    if let (Some(backup), Some(old)) = (backup, sides(*on).get(key)) {
                        done = self.copy(*on, key, *on, backup, old.size, part_size).await;
                    }
                    match done {
                        Ok(()) => Box::pin(self.side(*on).delete(self.bucket, key)).await,
                        Err(e) => Err(e),
                    }
                }
            };
            (action, done)
        };
        // Losers first, one by one (before their key is overwritten); then the rest, many at once.
        let (losers, rest) = plan::losers_first(&report.plan.actions);
        let mut results = Vec::new();
        for action in losers {
            results.push(apply(action).await);
        }
        let lost = plan::failed_losers(&results);
        let (rest, skipped) = plan::skip_unkept(rest, &lost);
        results.extend(
            futures::stream::iter(rest)
                .map(apply)
                .buffer_unordered(rules.transfers.max(1))
                .collect::<Vec<_>>()
                .await,
        );
        let mut applied = Vec::new();
        let mut not_applied = report.plan.withheld.clone();
        for action in skipped {
            report.failed.push((
                action.to_string(),
                "its losing version could not be kept first".into(),
            ));
            not_applied.push(action);
        }
        for (action, done) in results {
            match done {
                Ok(()) => applied.push(action),
                Err(e) => {
                    report.failed.push((action.to_string(), e.to_string()));
                    not_applied.push(action);
                }
            }
        }
        report.applied = applied.len();
        report.changed_at = plan::oldest_change(&a, &b, &applied);
        report.wrote = plan::written_sides(&applied);
        report.exact =
            not_applied.is_empty() && !applied.iter().any(|a| matches!(a, Action::KeepLoser { .. }));
        // The sides as read at the start, with each copy as its destination holds it now.
        let written = self.written(&applied, rules).await?;
        report.base = Some(plan::next_base(&a, &b, base, &applied, &not_applied, &written));
        Ok(report)
    }

    /// Each side's entries for the keys copied to it (one listing of a side that was copied to).
    async fn written(&self, actions: &[Action], rules: &Rules) -> Result<Base, PassError> {
        let mut written = Base::default();
        for side in [Side::A, Side::B] {
            let copied: std::collections::BTreeSet<&str> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Copy { key, from, .. } if from.other() == side => Some(key.as_str()),
                    _ => None,
                })
                .collect();
            if copied.is_empty() {
                continue;
            }
            let objects = Box::pin(self.side(side).list(self.bucket, ""))
                .await
                .map_err(|source| PassError::List {
                    side,
                    bucket: self.bucket.to_owned(),
                    source,
                })?;
            let mut listed = manifest(&objects, rules);
            listed.retain(|k, _| copied.contains(k.as_str()));
            match side {
                Side::A => written.a = listed,
                Side::B => written.b = listed,
            }
        }
        Ok(written)
    }

    async fn copy(
        &self,
        from: Side,
        key: &str,
        to: Side,
        to_key: &str,
        size: u64,
        part_size: u64,
    ) -> Result<(), DatastoreError> {
        // Boxed: a copy's future is large (retries, parts), and a pass awaits many.
        Box::pin(self.side(from).copy_to(
            self.bucket,
            key,
            self.side(to),
            self.bucket,
            to_key,
            size,
            part_size,
        ))
        .await
        .map(drop)
    }
}

/// A listing as a manifest, without the objects under the backup prefix, with each object's entity tag as
/// its checksum when `rules` compare by checksum (the MD5 of a single-part object, the MD5 of the parts'
/// MD5s for a multipart one: equal for equal content written with the same part size, which every
/// Flotilla writer uses).
pub fn manifest(objects: &[ObjectInfo], rules: &Rules) -> Manifest {
    let skip = rules.backup_prefix.as_deref();
    let checksums = rules.compare == plan::Compare::Checksum;
    objects
        .iter()
        .filter(|o| skip.is_none_or(|p| !o.key.starts_with(p)))
        .map(|o| {
            let modified: DateTime<Utc> = o
                .last_modified
                .map(DateTime::<Utc>::from)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            (
                o.key.clone(),
                Entry {
                    size: o.size,
                    modified,
                    checksum: o
                        .etag
                        .as_deref()
                        .filter(|_| checksums)
                        .map(flotilla_datastore::normal_etag),
                },
            )
        })
        .collect()
}
