//! A pass a chunk of keys at a time, so that its memory stays flat whatever the number of objects: both
//! sides and the base are read in key order a page at a time (a listing's page, a page of base rows, a
//! batch of the webroot's sorted walk), merged, and each chunk of keys is planned ([`crate::plan::plan`]),
//! applied and its new base written before the next is read. Only the deletions wait for the end of the
//! pass: the max-delete guard needs the whole pass's counts, so they are gathered (at most `max_delete` of
//! them per side — past that they are held back anyway) and made only once every chunk was listed.
//!
//! The two kinds of pass share this: the replicator's (two S3 endpoints, [`crate::replicate`]) and the
//! agent's (a webroot and its region's bucket, [`crate::agent`]); each says how to read and write its
//! sides through [`Sides`].

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::plan::{self, Action, Base, Entry, Manifest, Plan, Rules, Side};
use crate::store::{BaseRow, Exact, PairKey, SyncStore};

/// How many actions a report keeps to show (every one in a dry run), and keys an event lists.
pub const SAMPLE: usize = flotilla_proto::SYNC_EVENT_KEYS;

/// The user metadata that tells when a webroot change was first made (RFC 3339): the agent that pushes the
/// change sets it from when the file last changed in its webroot ([`crate::local::changed_at`]), and every
/// copy keeps it
/// ([`flotilla_datastore::Datastore::copy_to`]), so that the lag of each hop is measured from the change
/// itself, not from the hop before.
pub const ORIGIN: &str = "flotilla-changed";

/// The metadata naming `changed` as a change's origin ([`ORIGIN`]).
pub fn origin_metadata(changed: DateTime<Utc>) -> flotilla_datastore::Metadata {
    [(ORIGIN.to_owned(), changed.to_rfc3339())].into()
}

/// The origin `metadata` names, if it names a valid one.
pub fn origin_of(metadata: &flotilla_datastore::Metadata) -> Option<DateTime<Utc>> {
    metadata
        .get(ORIGIN)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// What applying one action gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    /// The destination's new entry, when it is known without a listing.
    pub entry: Option<Entry>,
    /// For a copy: when the change it carried was first made, when the source says so ([`ORIGIN`]);
    /// else the source's modification time stands for it.
    pub origin: Option<DateTime<Utc>>,
}

/// How a pass reads and writes its two sides.
pub trait Sides: Sync {
    /// The next entries of `side` in key order (bytewise, as S3 lists), after those already given;
    /// `None` once there are no more. Never asked for the same side twice at once.
    fn page(&self, side: Side) -> impl Future<Output = Result<Option<Vec<(String, Entry)>>, String>> + Send;

    /// Completes a chunk of side `a`'s entries before it is planned, given side `b`'s and the chunk's
    /// `base`: the agent fills in the checksums of its files — comparing by checksum, every new and
    /// changed one's; otherwise only those changed on both sides to the same size (a conflict or two equal
    /// writes).
    fn prepare(
        &self,
        a: Manifest,
        b: &Manifest,
        base: Option<&Base>,
    ) -> impl Future<Output = Manifest> + Send;

    /// Applies one action of a chunk whose sides are `a` and `b`.
    fn apply(
        &self,
        action: &Action,
        a: &Manifest,
        b: &Manifest,
    ) -> impl Future<Output = Result<Done, String>> + Send;

    /// Side `side`'s entries for the keys in `(after, upto]` as it holds them now (after copies to it).
    fn relist(
        &self,
        side: Side,
        after: Option<&str>,
        upto: &str,
    ) -> impl Future<Output = Result<Manifest, String>> + Send;
}

/// What a pass did with the keys of one kind (copied to a side, deleted on a side).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many.
    pub count: usize,
    /// The first [`SAMPLE`] keys.
    pub keys: Vec<String>,
    /// The earliest origin of the changes copied (see [`Done::origin`]): the lag is measured from it.
    pub oldest: Option<DateTime<Utc>>,
}

impl Tally {
    fn add(&mut self, key: &str, changed: Option<DateTime<Utc>>) {
        self.count += 1;
        if self.keys.len() < SAMPLE {
            self.keys.push(key.to_owned());
        }
        if let Some(t) = changed {
            self.oldest = Some(self.oldest.map_or(t, |o| o.min(t)));
        }
    }
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// What it planned: the first [`SAMPLE`] actions (every one in a dry run), the deletions held back by
    /// the guard with why (`held_back`; `withheld` counts them in [`PassReport::withheld`]), the first
    /// conflicts.
    pub plan: Plan,
    /// How many actions were planned.
    pub planned: usize,
    /// How many deletions the guard held back.
    pub withheld: usize,
    /// How many conflicts.
    pub conflicts: usize,
    /// The actions applied.
    pub applied: usize,
    /// Copies applied, per destination side (`a`, `b`).
    pub copied_to: (Tally, Tally),
    /// Deletions applied, per side.
    pub deleted_on: (Tally, Tally),
    /// Conflicts' losers kept under a new name.
    pub losers_kept: usize,
    /// The first actions that failed, with why (they are planned again next pass).
    pub failed: Vec<(String, String)>,
    /// How many failed.
    pub failures: usize,
    /// Whether the pass listed every chunk (and so recorded its base): not in a dry run, nor when a
    /// side could not be read.
    pub based: bool,
    /// Per side (`a`, `b`), whether it was listed (not known unchanged by its stamp).
    pub listed: (bool, bool),
    /// Per side, whether the pass wrote to it.
    pub wrote: (bool, bool),
    /// Whether the new base is exactly what both sides hold: nothing failed, nothing was held back and no
    /// conflict's loser was kept under a new name (the next pass carries it across).
    pub exact: bool,
}

impl PassReport {
    /// When the oldest change it carried was first made (for the lag).
    pub fn changed_at(&self) -> Option<DateTime<Utc>> {
        match (self.copied_to.0.oldest, self.copied_to.1.oldest) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    /// The first conflicts, for an announcement.
    pub fn conflicts_sample(&self) -> Vec<String> {
        self.plan.conflicts.iter().take(SAMPLE).cloned().collect()
    }

    /// The first failed actions with why (`<action>: <error>`), for an announcement.
    pub fn failed_sample(&self) -> Vec<String> {
        self.failed
            .iter()
            .take(SAMPLE)
            .map(|(a, e)| format!("{a}: {e}"))
            .collect()
    }

    /// Whether it planned nothing and held nothing back.
    pub fn is_quiet(&self) -> bool {
        self.planned == 0 && self.plan.held_back.is_empty()
    }

    /// Keeps `actions` among those shown (all of them in a dry run).
    fn sample(&mut self, actions: &[Action], all: bool) {
        let keep = if all { usize::MAX } else { SAMPLE };
        let room = keep.saturating_sub(self.plan.actions.len());
        self.plan.actions.extend(actions.iter().take(room).cloned());
    }

    fn failed(&mut self, what: String, why: String) {
        self.failures += 1;
        if self.failed.len() < 1000 {
            self.failed.push((what, why));
        }
    }

    fn tally(&mut self, action: &Action, a: &Manifest, b: &Manifest, origin: Option<DateTime<Utc>>) {
        let side = |s: Side| if s == Side::A { a } else { b };
        match action {
            Action::Copy { key, from, .. } => {
                let changed = origin.or_else(|| side(*from).get(key).map(|e| e.modified));
                match from.other() {
                    Side::A => self.copied_to.0.add(key, changed),
                    Side::B => self.copied_to.1.add(key, changed),
                }
                self.wrote_to(from.other());
            }
            Action::Delete { key, on, .. } => {
                match on {
                    Side::A => self.deleted_on.0.add(key, None),
                    Side::B => self.deleted_on.1.add(key, None),
                }
                self.wrote_to(*on);
            }
            Action::KeepLoser { on, .. } => {
                self.losers_kept += 1;
                self.wrote_to(*on);
            }
        }
    }

    fn wrote_to(&mut self, side: Side) {
        match side {
            Side::A => self.wrote.0 = true,
            Side::B => self.wrote.1 = true,
        }
    }
}

/// One side's entries as read so far, not yet given to a chunk.
struct Buffer<T> {
    items: VecDeque<(String, T)>,
    done: bool,
    /// The last key read.
    read: Option<String>,
}

impl<T> Buffer<T> {
    /// Empty; `done` when the side is not read at all.
    fn new(done: bool) -> Self {
        Self {
            items: VecDeque::new(),
            done,
            read: None,
        }
    }

    /// The last key read (every key of this side up to it has been read).
    fn last(&self) -> Option<&str> {
        self.items.back().map(|(k, _)| k.as_str())
    }

    /// Takes the entries up to `bound` (all of them when `None`).
    fn take(&mut self, bound: Option<&str>) -> Vec<(String, T)> {
        let n = match bound {
            Some(b) => self.items.iter().take_while(|(k, _)| k.as_str() <= b).count(),
            None => self.items.len(),
        };
        self.items.drain(..n).collect()
    }
}

/// A pass's options.
pub struct Options<'a> {
    /// The rules.
    pub rules: &'a Rules,
    /// Side `a`'s entries are the base's (known unchanged by its stamp): not read.
    pub known_a: bool,
    /// Side `b`'s likewise.
    pub known_b: bool,
    /// Plan only.
    pub dry_run: bool,
    /// How many rows of the base are read at a time (a listing's page: a chunk holds about as many keys).
    pub base_page: usize,
}

/// The sources of a pass as read so far.
struct Sources {
    a: Buffer<Entry>,
    b: Buffer<Entry>,
    base: Buffer<(Option<Entry>, Option<Entry>)>,
    base_after: Option<String>,
}

impl Sources {
    /// Reads a page of every source that ran dry, all at once (a page may come back empty and still not
    /// be the last).
    async fn refill<S: Sides>(
        &mut self,
        sides: &S,
        store: &SyncStore,
        pair: Option<i64>,
        base_page: usize,
    ) -> Result<(), String> {
        let (base, base_after) = (&mut self.base, &mut self.base_after);
        let base = async move {
            let Some(id) = pair.filter(|_| base.items.is_empty() && !base.done) else {
                return Ok(());
            };
            let size = base_page.max(1);
            let page = store
                .base_page(id, base_after.as_deref(), size)
                .await
                .map_err(|e| e.to_string())?;
            if page.len() < size {
                base.done = true;
            }
            if let Some((k, _, _)) = page.last() {
                *base_after = Some(k.clone());
            }
            base.items.extend(page.into_iter().map(|(k, a, b)| (k, (a, b))));
            Ok::<(), String>(())
        };
        let (a, b, base) = futures::join!(
            fill(sides, &mut self.a, Side::A),
            fill(sides, &mut self.b, Side::B),
            base
        );
        a.and(b).and(base)
    }

    fn is_empty(&self) -> bool {
        self.a.items.is_empty() && self.b.items.is_empty() && self.base.items.is_empty()
    }

    /// Every key up to the smallest "last key read" of the sources still reading is known on all of
    /// them (`None`: every source is read to its end).
    fn bound(&self) -> Option<String> {
        [&self.a, &self.b]
            .iter()
            .filter(|b| !b.done)
            .filter_map(|b| b.last())
            .chain((!self.base.done).then(|| self.base.last()).flatten())
            .min()
            .map(str::to_owned)
    }
}

/// Reads pages of `side` into `buf` until it holds an entry or the side is read to its end. Keys out of
/// order fail the pass: merged as they come, they would look absent where they are (and be deleted on
/// the other side).
async fn fill<S: Sides>(sides: &S, buf: &mut Buffer<Entry>, side: Side) -> Result<(), String> {
    while buf.items.is_empty() && !buf.done {
        match sides.page(side).await? {
            Some(page) => {
                for (key, entry) in page {
                    if buf
                        .read
                        .as_ref()
                        .is_some_and(|last| key.as_str() <= last.as_str())
                    {
                        return Err(format!(
                            "side {side} listed {key:?} after {:?}: not in key order, so nothing is planned",
                            buf.read.as_deref().unwrap_or_default()
                        ));
                    }
                    buf.read = Some(key.clone());
                    buf.items.push_back((key, entry));
                }
            }
            None => buf.done = true,
        }
    }
    Ok(())
}

/// A chunk of keys: both sides, their base, the range it covers.
struct Chunk {
    a: Manifest,
    b: Manifest,
    base: Base,
    /// The keys it covers: `(prev, upto]`.
    prev: Option<String>,
    upto: Option<String>,
}

/// A chunk once applied, waiting for its base to be written.
struct Applied {
    chunk: Chunk,
    applied: Vec<Action>,
    not_applied: Vec<Action>,
    written: Base,
}

/// Applies a chunk's actions (not its deletions): conflicts' losers first, one by one, then the rest,
/// `transfers` at once. Gives back each action with its outcome, and those skipped (their losing version
/// could not be kept first).
async fn apply<S: Sides>(
    sides: &S,
    chunk: &Chunk,
    actions: Vec<Action>,
    transfers: usize,
) -> (Vec<(Action, Result<Done, String>)>, Vec<Action>) {
    let (losers, rest) = plan::losers_first(&actions);
    let mut results = Vec::new();
    for action in losers {
        let done = sides.apply(&action, &chunk.a, &chunk.b).await;
        results.push((action, done));
    }
    let lost = plan::failed_losers(&results);
    let (rest, skipped) = plan::skip_unkept(rest, &lost);
    results.extend(
        futures::stream::iter(rest)
            .map(|action| async move {
                let done = sides.apply(&action, &chunk.a, &chunk.b).await;
                (action, done)
            })
            .buffer_unordered(transfers.max(1))
            .collect::<Vec<_>>()
            .await,
    );
    (results, skipped)
}

/// Writes an applied chunk's new base: each side copied to listed again over the chunk's range (the
/// copies' own times), then only the rows that changed.
async fn settle<S: Sides>(
    sides: &S,
    store: &SyncStore,
    pair: Option<i64>,
    done: Option<Applied>,
    complete: bool,
) -> Result<(), String> {
    let Some(Applied {
        chunk,
        applied,
        not_applied,
        mut written,
    }) = done
    else {
        return Ok(());
    };
    for side in [Side::A, Side::B] {
        let copied: BTreeSet<&str> = applied
            .iter()
            .filter_map(|x| match x {
                Action::Copy { key, from, .. } if from.other() == side => Some(key.as_str()),
                _ => None,
            })
            .filter(|k| {
                let known = if side == Side::A { &written.a } else { &written.b };
                !known.contains_key(*k)
            })
            .collect();
        let Some(upto) = chunk.upto.as_deref().filter(|_| !copied.is_empty()) else {
            continue;
        };
        let mut listed = sides.relist(side, chunk.prev.as_deref(), upto).await?;
        listed.retain(|k, _| copied.contains(k.as_str()));
        match side {
            Side::A => written.a.extend(listed),
            Side::B => written.b.extend(listed),
        }
    }
    let base = complete.then_some(&chunk.base);
    let next = plan::next_base(&chunk.a, &chunk.b, base, &applied, &not_applied, &written);
    let keys: BTreeSet<&String> = chunk
        .a
        .keys()
        .chain(chunk.b.keys())
        .chain(chunk.base.a.keys())
        .chain(chunk.base.b.keys())
        .collect();
    let rows: Vec<BaseRow> = keys
        .into_iter()
        .filter_map(|k| {
            let (na, nb) = (next.a.get(k), next.b.get(k));
            (na != chunk.base.a.get(k) || nb != chunk.base.b.get(k))
                .then(|| (k.clone(), na.cloned(), nb.cloned()))
        })
        .collect();
    match pair {
        Some(id) if !rows.is_empty() => store.write_base(id, &rows).await.map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

/// Runs one pass of the pair `key` (its base in `store`) over `sides`. Chunks go through a pipeline:
/// while one chunk's copies run, the next chunk's pages are read and the previous chunk's base is
/// written.
pub async fn pass<S: Sides>(
    sides: &S,
    store: &SyncStore,
    key: &PairKey,
    options: &Options<'_>,
) -> Result<PassReport, String> {
    let rules = options.rules;
    let state = store.pair(key).await.map_err(|e| e.to_string())?;
    // A base from a first pass that never finished listing is no base: that pass is merged again.
    let complete = state.as_ref().is_some_and(|s| s.complete);
    let pair = match (&state, options.dry_run) {
        (Some(s), _) => Some(s.id),
        (None, true) => None,
        (None, false) => Some(store.open_pair(key).await.map_err(|e| e.to_string())?),
    };
    if let (Some(id), false) = (pair, options.dry_run) {
        // Exact nowhere until this pass ends well (a pass that stops half-way leaves no false promise).
        store
            .finish_pass(id, &Exact::default(), complete)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut report = PassReport {
        listed: (!options.known_a, !options.known_b),
        ..PassReport::default()
    };
    // Each chunk is planned with the guard off; the guard is applied to the whole pass's deletions.
    let unguarded = Rules {
        max_delete: usize::MAX,
        max_delete_percent: 100,
        ..rules.clone()
    };
    let mut sources = Sources {
        a: Buffer::new(options.known_a),
        b: Buffer::new(options.known_b),
        base: Buffer::new(pair.is_none()),
        base_after: None,
    };
    let mut prev: Option<String> = None;
    let mut totals = [0usize; 2];
    let mut base_totals = [0usize; 2];
    // Each with the entry it deletes (a backup copy needs its size).
    let mut deletions: [Vec<(Action, Option<Entry>)>; 2] = [Vec::new(), Vec::new()];
    let mut deletion_counts = [0usize; 2];
    let mut not_exact = false;
    let mut settling: Option<Applied> = None;
    let now = Utc::now();
    sources.refill(sides, store, pair, options.base_page).await?;
    while !sources.is_empty() {
        let bound = sources.bound();
        let mut chunk_base = Base::default();
        for (k, (a, b)) in sources.base.take(bound.as_deref()) {
            if let Some(a) = a {
                chunk_base.a.insert(k.clone(), a);
            }
            if let Some(b) = b {
                chunk_base.b.insert(k, b);
            }
        }
        let a: Manifest = if options.known_a {
            chunk_base.a.clone()
        } else {
            sources.a.take(bound.as_deref()).into_iter().collect()
        };
        let b: Manifest = if options.known_b {
            chunk_base.b.clone()
        } else {
            sources.b.take(bound.as_deref()).into_iter().collect()
        };
        let base = complete.then_some(&chunk_base);
        let a = sides.prepare(a, &b, base).await;
        totals[0] += a.len();
        totals[1] += b.len();
        base_totals[0] += chunk_base.a.len();
        base_totals[1] += chunk_base.b.len();
        let upto = bound.clone().or_else(|| {
            a.keys()
                .chain(b.keys())
                .chain(chunk_base.a.keys())
                .chain(chunk_base.b.keys())
                .max()
                .cloned()
        });
        let planned = plan::plan(&a, &b, base, &unguarded, now);
        report.conflicts += planned.conflicts.len();
        for c in planned
            .conflicts
            .iter()
            .take(SAMPLE.saturating_sub(report.plan.conflicts.len()))
        {
            report.plan.conflicts.push(c.clone());
        }
        // Deletions wait for the end of the pass (and the guard: those the chunk's own plan held back,
        // where the other side lists nothing, too); the rest is applied now.
        let (now_actions, mut later): (Vec<Action>, Vec<Action>) = planned
            .actions
            .into_iter()
            .partition(|x| !matches!(x, Action::Delete { .. }));
        later.extend(planned.withheld);
        report.planned += now_actions.len();
        report.sample(&now_actions, options.dry_run);
        for d in &later {
            if let Action::Delete { key, on, .. } = d {
                let i = usize::from(*on == Side::B);
                deletion_counts[i] += 1;
                if deletions[i].len() <= rules.max_delete {
                    let entry = if *on == Side::A { a.get(key) } else { b.get(key) };
                    deletions[i].push((d.clone(), entry.cloned()));
                }
            }
        }
        let chunk = Chunk {
            a,
            b,
            base: chunk_base,
            prev: prev.clone(),
            upto: upto.clone(),
        };
        prev = upto;
        if options.dry_run {
            sources.refill(sides, store, pair, options.base_page).await?;
            continue;
        }
        // This chunk's copies, the previous chunk's base and the next chunk's pages, all at once.
        let ((results, skipped), settled, refilled) = futures::join!(
            apply(sides, &chunk, now_actions, rules.transfers),
            settle(sides, store, pair, settling.take(), complete),
            sources.refill(sides, store, pair, options.base_page)
        );
        settled?;
        refilled?;
        let mut applied = Vec::new();
        let mut not_applied = later;
        let mut written = Base::default();
        for action in skipped {
            report.failed(
                action.to_string(),
                "its losing version could not be kept first".into(),
            );
            not_exact = true;
            not_applied.push(action);
        }
        for (action, done) in results {
            match done {
                Ok(Done { entry, origin }) => {
                    report.applied += 1;
                    report.tally(&action, &chunk.a, &chunk.b, origin);
                    if let (Action::Copy { key, from, .. }, Some(entry)) = (&action, entry) {
                        match from.other() {
                            Side::A => written.a.insert(key.clone(), entry),
                            Side::B => written.b.insert(key.clone(), entry),
                        };
                    }
                    applied.push(action);
                }
                Err(e) => {
                    report.failed(action.to_string(), e);
                    not_exact = true;
                    not_applied.push(action);
                }
            }
        }
        not_exact |= applied.iter().any(|x| matches!(x, Action::KeepLoser { .. }));
        settling = Some(Applied {
            chunk,
            applied,
            not_applied,
            written,
        });
    }
    settle(sides, store, pair, settling.take(), complete).await?;
    // The deletions, now that the whole pass is known: held back on a side past the guard, and everywhere
    // when anything else of the pass failed (as rclone does: deletions only after a fully successful pass).
    let copies_failed = report.failures;
    let mut deleted_rows: Vec<BaseRow> = Vec::new();
    for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
        let n = deletion_counts[i];
        if n == 0 {
            continue;
        }
        let other = 1 - i;
        let held = if copies_failed > 0 {
            Some(format!(
                "{copies_failed} other action(s) of this pass failed: its {n} deletion(s) wait for a pass in \
                 which everything else succeeds"
            ))
        } else {
            plan::guard(n, totals[i], totals[other], base_totals[other], rules)
        };
        if let Some(why) = held {
            report.plan.held_back.push((side, why));
            report.withheld += n;
            not_exact = true;
            continue;
        }
        report.planned += n;
        let listed: Vec<Action> = deletions[i].iter().map(|(x, _)| x.clone()).collect();
        report.sample(&listed, options.dry_run);
        if options.dry_run {
            continue;
        }
        let results: Vec<(Action, Result<Done, String>)> =
            futures::stream::iter(std::mem::take(&mut deletions[i]))
                .map(|(action, entry)| async move {
                    // The deleted object as its side listed it (for a backup copy's size).
                    let mut one = Manifest::new();
                    if let Some(entry) = entry {
                        one.insert(action.key().to_owned(), entry);
                    }
                    let empty = Manifest::new();
                    let (a, b) = if side == Side::A {
                        (&one, &empty)
                    } else {
                        (&empty, &one)
                    };
                    let done = sides.apply(&action, a, b).await;
                    (action, done)
                })
                .buffer_unordered(rules.transfers.max(1))
                .collect()
                .await;
        let empty = Manifest::new();
        for (action, done) in results {
            match done {
                Ok(_) => {
                    report.applied += 1;
                    report.tally(&action, &empty, &empty, None);
                    deleted_rows.push((action.key().to_owned(), None, None));
                }
                Err(e) => {
                    report.failed(action.to_string(), e);
                    not_exact = true;
                }
            }
        }
    }
    if options.dry_run {
        return Ok(report);
    }
    if let Some(id) = pair {
        if !deleted_rows.is_empty() {
            store
                .write_base(id, &deleted_rows)
                .await
                .map_err(|e| e.to_string())?;
        }
        // Every chunk was listed: a base from now on (exact nowhere until the caller says).
        store
            .finish_pass(id, &Exact::default(), true)
            .await
            .map_err(|e| e.to_string())?;
        report.based = true;
    }
    report.exact = !not_exact && report.failures == 0;
    Ok(report)
}

/// Records the end of a pass that listed everything: exact at `exact`, complete from now on.
pub async fn finish(store: &SyncStore, key: &PairKey, exact: &Exact) -> Result<(), String> {
    let id = store.open_pair(key).await.map_err(|e| e.to_string())?;
    store
        .finish_pass(id, exact, true)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A side's pages, in the order they are handed out.
    type Queue = Mutex<VecDeque<Vec<(String, Entry)>>>;

    /// Two sides held in memory, handed out a page at a time; every action applied is recorded, and
    /// copies fail while `fail_copies` says so.
    struct Pages {
        pages: [Queue; 2],
        applied: Mutex<Vec<String>>,
        fail_copies: bool,
    }

    impl Sides for Pages {
        async fn page(&self, side: Side) -> Result<Option<Vec<(String, Entry)>>, String> {
            let i = usize::from(side == Side::B);
            Ok(self.pages[i].lock().map_err(|e| e.to_string())?.pop_front())
        }

        async fn prepare(&self, a: Manifest, _b: &Manifest, _base: Option<&Base>) -> Manifest {
            a
        }

        async fn apply(&self, action: &Action, _a: &Manifest, _b: &Manifest) -> Result<Done, String> {
            if self.fail_copies && matches!(action, Action::Copy { .. }) {
                return Err("503 Slow Down".into());
            }
            self.applied
                .lock()
                .map_err(|e| e.to_string())?
                .push(action.to_string());
            Ok(Done::default())
        }

        async fn relist(&self, _side: Side, _after: Option<&str>, _upto: &str) -> Result<Manifest, String> {
            Ok(Manifest::new())
        }
    }

    fn entry() -> Entry {
        Entry {
            size: 1,
            modified: DateTime::<Utc>::UNIX_EPOCH,
            checksum: None,
        }
    }

    /// A migrated SQLite store (the database held by the caller) and a pair key in it.
    async fn store_and_pair() -> (flotilla_integration_tests::TestDb, SyncStore, PairKey) {
        let db = flotilla_integration_tests::TestDb::sqlite().await;
        let (sqlite, postgres) = crate::store::migrations();
        db.store
            .migrate_with(sqlite, postgres)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let store = SyncStore::new(db.store.clone());
        let key = PairKey {
            deployment: "d".into(),
            bucket: "b".into(),
            side_a: "a".into(),
            side_b: "b".into(),
        };
        (db, store, key)
    }

    #[tokio::test]
    async fn keys_out_of_order_fail_the_pass_and_delete_nothing() {
        let (_db, store, key) = store_and_pair().await;
        let page = |keys: &[&str]| {
            keys.iter()
                .map(|k| ((*k).to_owned(), entry()))
                .collect::<Vec<_>>()
        };
        // Side a's second page goes back to a key before its first page's last.
        let sides = Pages {
            pages: [
                Mutex::new(VecDeque::from([page(&["b", "d"]), page(&["c"])])),
                Mutex::new(VecDeque::from([page(&["a"])])),
            ],
            applied: Mutex::new(Vec::new()),
            fail_copies: false,
        };
        let rules = Rules::default();
        let options = Options {
            rules: &rules,
            known_a: false,
            known_b: false,
            dry_run: false,
            base_page: 2,
        };
        let failed = pass(&sides, &store, &key, &options).await;
        let e = failed.err().unwrap_or_default();
        assert!(e.contains("not in key order"), "{e}");
        // What came before the disorder may have been copied; nothing was deleted, and the pass left no
        // base (the next one merges again).
        let applied = sides.applied.lock().map(|a| a.clone()).unwrap_or_default();
        assert!(!applied.iter().any(|a| a.starts_with("delete")), "{applied:?}");
        assert!(store.base(&key).await.unwrap_or_else(|e| panic!("{e}")).is_none());
    }

    #[tokio::test]
    async fn a_pass_whose_copies_failed_deletes_nothing_and_the_next_one_does() {
        let (_db, store, key) = store_and_pair().await;
        let page = |keys: &[String]| keys.iter().map(|k| (k.clone(), entry())).collect::<Vec<_>>();
        let ten: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        // Side a: k3 deleted there since the last pass, and a new file.
        let mut changed: Vec<String> = ten.iter().filter(|k| *k != "k3").cloned().collect();
        changed.push("new".into());
        changed.sort();
        let sides = |a: &[String], b: &[String], fail_copies| Pages {
            pages: [
                Mutex::new(VecDeque::from([page(a)])),
                Mutex::new(VecDeque::from([page(b)])),
            ],
            applied: Mutex::new(Vec::new()),
            fail_copies,
        };
        let rules = Rules::default();
        let options = Options {
            rules: &rules,
            known_a: false,
            known_b: false,
            dry_run: false,
            base_page: 100,
        };
        let applied = |s: &Pages| s.applied.lock().map(|a| a.clone()).unwrap_or_default();
        // The base: both sides the same ten keys.
        let first = sides(&ten, &ten, false);
        pass(&first, &store, &key, &options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(applied(&first).is_empty());

        // The copy of the new file fails: k3 is not deleted on b.
        let failing = sides(&changed, &ten, true);
        let report = pass(&failing, &store, &key, &options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.failures, 1, "{:?}", report.failed);
        assert!(applied(&failing).is_empty(), "{:?}", applied(&failing));
        assert_eq!(report.withheld, 1);
        assert!(
            report
                .plan
                .held_back
                .iter()
                .any(|(side, why)| *side == Side::B && why.contains("1 other action(s) of this pass failed")),
            "{:?}",
            report.plan.held_back
        );
        assert!(!report.exact);

        // Everything succeeds: the copy, then the deletion.
        let working = sides(&changed, &ten, false);
        let report = pass(&working, &store, &key, &options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.failures, 0, "{:?}", report.failed);
        let done = applied(&working);
        assert!(done.iter().any(|a| a.starts_with("copy new")), "{done:?}");
        assert!(done.iter().any(|a| a.starts_with("delete k3")), "{done:?}");
    }
}
