//! The pure core of bucket replication: given the manifests of two sides (each object's size, modification
//! time and, when known, checksum) and each side's manifest at the end of the last fully successful pass
//! (the base: per side, because a copy gets the time of its writing on the side it is written to, so two
//! sides never agree on times — what tells a change is a side against its own base), what to copy, what
//! to delete and which conflicts to keep — with semantics at least as careful as rclone's bisync:
//!
//! - an object changed on one side since the base goes to the other; a new one is copied; with no base (a
//!   first pass) the sides are merged and nothing is deleted;
//! - an object changed on both sides is a conflict: the newer wins and, by default, the loser is kept
//!   beside it renamed (`<key>.conflict-<side>-<time>`), so nothing is lost — unless both changed to the
//!   same content (their checksums say so, whatever the comparison: a copy whose write landed but whose
//!   answer was lost leaves both sides changed and equal), which is in step;
//! - an object deleted on one side since the base is deleted on the other — unless it changed there since
//!   (a change beats a delete) — and only when the deletions stay within the max-delete guard: an empty
//!   listing from a broken endpoint must never empty the other side;
//! - an object about to be overwritten or deleted can be kept under a backup prefix first.
//!
//! No I/O here: the replicator reads the manifests, this decides, the replicator applies and records the
//! new base only after a pass that fully succeeded.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};

/// One object as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub modified: DateTime<Utc>,
    /// A content checksum, when the side knows one (the same algorithm on both sides).
    pub checksum: Option<String>,
}

/// A bucket's objects, by key.
pub type Manifest = BTreeMap<String, Entry>;

/// Each side's manifest at the end of the last fully successful pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Base {
    /// Side `a`'s.
    pub a: Manifest,
    /// Side `b`'s.
    pub b: Manifest,
}

/// One side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The first side (`a`).
    A,
    /// The second side (`b`).
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Self {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "a",
            Side::B => "b",
        })
    }
}

/// How two versions of an object are told apart (`size-and-time` or `checksum` in settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compare {
    /// Size and modification time (at the coarser precision of the two sides: see [`same_time`]).
    #[default]
    SizeAndTime,
    /// The checksum where both sides have one, else size and modification time.
    Checksum,
}

/// What to do with an object changed on both sides since the base (`keep-loser-renamed` or `newer-wins`
/// in settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictRule {
    /// The newer wins; the loser is kept beside it, renamed (rclone bisync's default).
    #[default]
    KeepLoserRenamed,
    /// The newer wins; the loser is overwritten (kept under the backup prefix if there is one).
    NewerWins,
}

/// The rules of a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// How versions are compared.
    pub compare: Compare,
    /// Conflicts.
    pub conflict: ConflictRule,
    /// At most this many deletions per side per pass…
    pub max_delete: usize,
    /// …and at most this share (percent) of the side's objects (when more than [`PERCENT_GUARD_FLOOR`]
    /// would go); past either — or when the other side lists nothing where it held objects — no deletion
    /// is made on that side and the pass says why.
    pub max_delete_percent: u8,
    /// Keep an object about to be overwritten or deleted under `<prefix><time>/<key>` first.
    pub backup_prefix: Option<String>,
    /// How many objects are copied or deleted at once.
    pub transfers: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            compare: Compare::SizeAndTime,
            conflict: ConflictRule::KeepLoserRenamed,
            max_delete: 1000,
            max_delete_percent: 50,
            backup_prefix: None,
            transfers: crate::replicate::TRANSFERS,
        }
    }
}

/// One thing a pass does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Copy `key` from `from` to the other side (new, or newer there).
    Copy {
        /// The key.
        key: String,
        /// Where it is copied from.
        from: Side,
        /// Keep the version it replaces under this key first (the backup prefix).
        backup: Option<String>,
    },
    /// Delete `key` on `on` (it was deleted on the other side since the base).
    Delete {
        /// The key.
        key: String,
        /// Where it is deleted.
        on: Side,
        /// Keep it under this key first (the backup prefix).
        backup: Option<String>,
    },
    /// Keep the losing version of a conflict: copy `key` on `on` to `as_key` on the same side (the next
    /// pass carries it to the other side like any new object).
    KeepLoser {
        /// The key.
        key: String,
        /// The loser's side.
        on: Side,
        /// The name it is kept under.
        as_key: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = |b: &Option<String>| b.as_ref().map(|b| format!(" (kept as {b})")).unwrap_or_default();
        match self {
            Action::Copy { key, from, backup } => {
                write!(f, "copy {key} {from} → {}{}", from.other(), kept(backup))
            }
            Action::Delete { key, on, backup } => write!(f, "delete {key} on {on}{}", kept(backup)),
            Action::KeepLoser { key, on, as_key } => {
                write!(
                    f,
                    "conflict on {key}: the losing version on {on} kept as {as_key}"
                )
            }
        }
    }
}

/// What a pass does, and what it holds back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The actions, in order: conflicts' losers kept first, then copies, then deletions.
    pub actions: Vec<Action>,
    /// Deletions held back by the max-delete guard, per side, with why (none are made on that side).
    pub held_back: Vec<(Side, String)>,
    /// The deletions held back (planned again, and held back again, next pass).
    pub withheld: Vec<Action>,
    /// Keys changed on both sides since the base.
    pub conflicts: Vec<String>,
}

impl Plan {
    /// Whether the pass changes nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The dry run: one line per object, then what was held back.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.actions.iter().map(ToString::to_string).collect();
        lines.extend(
            self.held_back
                .iter()
                .map(|(side, why)| format!("deletions on {side} held back: {why}")),
        );
        lines
    }
}

/// Whether `x` and `y` are the same version under `compare`: equal checksums where both have one and
/// `compare` asks for it, else equal sizes and equal modification times at the coarser precision of the
/// two ([`same_time`]).
pub fn same(x: &Entry, y: &Entry, compare: Compare) -> bool {
    if compare == Compare::Checksum
        && let (Some(cx), Some(cy)) = (&x.checksum, &y.checksum)
    {
        return cx == cy;
    }
    x.size == y.size && same_time(x.modified, y.modified)
}

/// Whether two modification times are equal at the coarser precision of the two — whole seconds,
/// milliseconds, microseconds or nanoseconds, told by the trailing zeros of each one's fraction.
///
/// A local file system keeps nanoseconds and an object store seconds or milliseconds, so a file and its
/// object are compared to what the coarser keeps; but a side compared with its own base (one source, one
/// precision) is compared exactly, so a same-size rewrite within the same second is still a change.
pub fn same_time(x: DateTime<Utc>, y: DateTime<Utc>) -> bool {
    /// The divisor of the precision a fraction (in nanoseconds) is kept at.
    fn unit(nanos: u32) -> u32 {
        [1_000_000_000, 1_000_000, 1_000]
            .into_iter()
            .find(|u| nanos.is_multiple_of(*u))
            .unwrap_or(1)
    }
    if x.timestamp() != y.timestamp() {
        return false;
    }
    let (nx, ny) = (x.timestamp_subsec_nanos(), y.timestamp_subsec_nanos());
    let unit = unit(nx).max(unit(ny));
    nx / unit == ny / unit
}

/// The keys changed on both sides since `base` to the same size: the only ones whose contents must be
/// compared to tell a conflict from two equal writes (the agent reads these files' checksums when it
/// compares by size and time).
pub fn changed_on_both_alike(
    a: &Manifest,
    b: &Manifest,
    base: Option<&Base>,
    compare: Compare,
) -> Vec<String> {
    let Some(base) = base else {
        return Vec::new();
    };
    let changed = |now: &Entry, was: Option<&Entry>| was.is_none_or(|was| !same(now, was, compare));
    a.iter()
        .filter_map(|(key, x)| {
            let y = b.get(key)?;
            (x.size == y.size && changed(x, base.a.get(key)) && changed(y, base.b.get(key)))
                .then(|| key.clone())
        })
        .collect()
}

/// The name the losing version of `key` is kept under.
pub fn loser_key(key: &str, side: Side, modified: DateTime<Utc>) -> String {
    format!("{key}.conflict-{side}-{}", modified.format("%Y%m%dT%H%M%SZ"))
}

/// Where an object about to be overwritten or deleted is kept.
fn backup_key(rules: &Rules, key: &str, now: DateTime<Utc>) -> Option<String> {
    rules
        .backup_prefix
        .as_ref()
        .map(|p| format!("{p}{}/{key}", now.format("%Y%m%dT%H%M%SZ")))
}

/// Deleting at most this many objects is never held back by the share rule (a small site deleting one of
/// its three pages is no broken listing); the count rule and the empty-listing rule still apply.
pub const PERCENT_GUARD_FLOOR: usize = 10;

/// The max-delete guard: why `deletions` on a side holding `total` objects are held back, if they are —
/// the other side lists nothing (`other_total`) where its base held `other_base` objects (the classic
/// broken endpoint, or the wrong bucket: never believed), or they are more than `rules.max_delete`, or
/// more than `rules.max_delete_percent` of the side (when more than [`PERCENT_GUARD_FLOOR`]).
pub fn guard(
    deletions: usize,
    total: usize,
    other_total: usize,
    other_base: usize,
    rules: &Rules,
) -> Option<String> {
    let share = deletions.saturating_mul(100).checked_div(total).unwrap_or(0);
    if other_total == 0 && other_base > 0 {
        return Some(format!(
            "the other side lists no object where it held {other_base} at the last pass: it may be listing \
             nothing by mistake, so none of its {deletions} deletions is made"
        ));
    }
    let over_share = deletions > PERCENT_GUARD_FLOOR && share > usize::from(rules.max_delete_percent);
    (deletions > rules.max_delete || over_share).then(|| {
        format!(
            "{deletions} of its {total} objects would be deleted ({share}%), over the limit of {} or {}%: \
             the other side may be listing nothing by mistake",
            rules.max_delete, rules.max_delete_percent
        )
    })
}

/// The pass that makes `a` and `b` equal, given `base` (each side's manifest after the last fully
/// successful pass; `None` for a first pass: merge, delete nothing) and `rules`, at `now` (for backup
/// names).
pub fn plan(a: &Manifest, b: &Manifest, base: Option<&Base>, rules: &Rules, now: DateTime<Utc>) -> Plan {
    let mut out = Plan::default();
    let mut copies = Vec::new();
    let mut deletes: BTreeMap<Side, Vec<Action>> = BTreeMap::new();
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let side = |s: Side| if s == Side::A { a } else { b };
    let base_of = |s: Side| base.map(|b| if s == Side::A { &b.a } else { &b.b });
    // Whether `key` on `s` changed since that side's base (new counts as changed).
    let changed = |key: &str, s: Side| -> bool {
        match (side(s).get(key), base_of(s).and_then(|m| m.get(key))) {
            (Some(now), Some(was)) => !same(now, was, rules.compare),
            (Some(_), None) => true,
            (None, _) => false,
        }
    };
    for key in keys {
        match (a.get(key), b.get(key)) {
            // No base: equal by size and time (or checksum) is in step.
            (Some(x), Some(y)) if base.is_none() && same(x, y, rules.compare) => {}
            (Some(x), Some(y)) => {
                let (ca, cb) = (changed(key, Side::A), changed(key, Side::B));
                let winner = match (ca, cb) {
                    // Neither side changed since the last pass: in step.
                    (false, false) if base.is_some() => continue,
                    (true, false) => Side::A,
                    (false, true) => Side::B,
                    // Both changed to the same content (the checksums say so, whatever the comparison): in
                    // step. A copy whose write landed but whose answer was lost (an endpoint closing the
                    // connection) leaves exactly this: the next pass must not call it a conflict.
                    (true, true) if x.checksum.is_some() && x.checksum == y.checksum => {
                        continue;
                    }
                    // Both changed, or no base to tell: a conflict; the newer wins (A on a tie).
                    _ => {
                        let winner = if y.modified > x.modified { Side::B } else { Side::A };
                        if base.is_some() {
                            out.conflicts.push(key.clone());
                            if rules.conflict == ConflictRule::KeepLoserRenamed {
                                let loser = winner.other();
                                let modified = side(loser).get(key).map_or(now, |e| e.modified);
                                out.actions.push(Action::KeepLoser {
                                    key: key.clone(),
                                    on: loser,
                                    as_key: loser_key(key, loser, modified),
                                });
                            }
                        }
                        winner
                    }
                };
                copies.push(Action::Copy {
                    key: key.clone(),
                    from: winner,
                    backup: backup_key(rules, key, now),
                });
            }
            (Some(_), None) | (None, Some(_)) => {
                let holder = if a.contains_key(key) { Side::A } else { Side::B };
                let was_there = base_of(holder.other()).is_some_and(|m| m.contains_key(key));
                if was_there && !changed(key, holder) {
                    // Deleted on the other side since the last pass, unchanged here: delete it here too.
                    deletes.entry(holder).or_default().push(Action::Delete {
                        key: key.clone(),
                        on: holder,
                        backup: backup_key(rules, key, now),
                    });
                } else {
                    // New here, or changed here since the other side deleted it (a change beats a delete).
                    copies.push(Action::Copy {
                        key: key.clone(),
                        from: holder,
                        backup: None,
                    });
                }
            }
            (None, None) => {}
        }
    }
    out.actions.extend(copies);
    for (on, actions) in deletes {
        let other_base = base_of(on.other()).map_or(0, BTreeMap::len);
        match guard(
            actions.len(),
            side(on).len(),
            side(on.other()).len(),
            other_base,
            rules,
        ) {
            Some(why) => {
                out.withheld.extend(actions.iter().cloned());
                out.held_back.push((on, why));
            }
            None => out.actions.extend(actions),
        }
    }
    out
}

impl Action {
    /// The key it is about.
    pub fn key(&self) -> &str {
        match self {
            Action::Copy { key, .. } | Action::Delete { key, .. } | Action::KeepLoser { key, .. } => key,
        }
    }
}

/// The base after a pass whose listings succeeded: each side as it was read at the start of the pass
/// (never read again: a change made while the pass ran must still look like a change next time), with the
/// effect of each applied action — a copied key as its destination now holds it (`written`: each side's
/// entries for the keys copied to it, read after the copies), a deleted key gone from both. The keys of
/// the actions not applied (failed, or deletions held back) keep their old base on both sides, so that the
/// next pass plans them again exactly as this one did — never as a conflict, never as a new deletion.
/// Losers kept under a new name are left out: the next pass carries them across like any new object.
pub fn next_base(
    a: &Manifest,
    b: &Manifest,
    old: Option<&Base>,
    applied: &[Action],
    not_applied: &[Action],
    written: &Base,
) -> Base {
    let mut base = Base {
        a: a.clone(),
        b: b.clone(),
    };
    for action in applied {
        match action {
            Action::Copy { key, from, .. } => {
                let (to, fresh) = match from {
                    Side::A => (&mut base.b, &written.b),
                    Side::B => (&mut base.a, &written.a),
                };
                match fresh.get(key) {
                    Some(entry) => {
                        to.insert(key.clone(), entry.clone());
                    }
                    // Not seen after the copy: left out, so that the next pass looks at it again.
                    None => {
                        to.remove(key);
                    }
                }
            }
            Action::Delete { key, .. } => {
                base.a.remove(key);
                base.b.remove(key);
            }
            Action::KeepLoser { .. } => {}
        }
    }
    for action in not_applied {
        let key = action.key();
        for (now, was) in [
            (&mut base.a, old.and_then(|o| o.a.get(key))),
            (&mut base.b, old.and_then(|o| o.b.get(key))),
        ] {
            match was {
                Some(entry) => {
                    now.insert(key.to_owned(), entry.clone());
                }
                None => {
                    now.remove(key);
                }
            }
        }
    }
    base
}

/// A plan's actions split in the order they are applied: the conflicts' losers first (each kept before
/// its key is overwritten), then the rest (copies and deletions, which may run at once).
pub fn losers_first(actions: &[Action]) -> (Vec<Action>, Vec<Action>) {
    actions
        .iter()
        .cloned()
        .partition(|a| matches!(a, Action::KeepLoser { .. }))
}

/// The keys whose losing version could not be kept, from the losers' results.
pub fn failed_losers<T, E>(results: &[(Action, Result<T, E>)]) -> BTreeSet<String> {
    results
        .iter()
        .filter(|(a, r)| matches!(a, Action::KeepLoser { .. }) && r.is_err())
        .map(|(a, _)| a.key().to_owned())
        .collect()
}

/// `rest` without the actions on a key whose losing version could not be kept (overwriting it would lose
/// it): those are given back second, not applied this pass.
pub fn skip_unkept(rest: Vec<Action>, lost: &BTreeSet<String>) -> (Vec<Action>, Vec<Action>) {
    rest.into_iter().partition(|a| !lost.contains(a.key()))
}

/// The earliest modification time among the sources of the copies in `applied` (the oldest change a pass
/// carried: the lag is measured from it).
pub fn oldest_change(a: &Manifest, b: &Manifest, applied: &[Action]) -> Option<DateTime<Utc>> {
    applied
        .iter()
        .filter_map(|action| match action {
            Action::Copy { key, from, .. } => {
                let side = if *from == Side::A { a } else { b };
                side.get(key).map(|e| e.modified)
            }
            _ => None,
        })
        .min()
}

#[cfg(test)]
mod tests;
