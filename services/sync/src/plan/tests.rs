#![allow(clippy::unwrap_used)]

use super::*;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_765_000_000 + secs, 0).unwrap()
}

fn entry(size: u64, secs: i64) -> Entry {
    Entry {
        size,
        modified: at(secs),
        checksum: None,
    }
}

fn manifest(entries: &[(&str, u64, i64)]) -> Manifest {
    entries
        .iter()
        .map(|(k, size, secs)| ((*k).to_owned(), entry(*size, *secs)))
        .collect()
}

/// The base of two sides that held the same objects with the same times.
fn both(m: &Manifest) -> Base {
    Base {
        a: m.clone(),
        b: m.clone(),
    }
}

fn lines(p: &Plan) -> Vec<String> {
    p.describe()
}

#[test]
fn a_first_pass_merges_both_sides_and_deletes_nothing() {
    let a = manifest(&[("index.php", 10, 0), ("a-only.css", 5, 0), ("both.js", 7, 10)]);
    let b = manifest(&[("b-only.png", 3, 0), ("both.js", 8, 20)]);
    let p = plan(&a, &b, None, &Rules::default(), at(100));
    assert_eq!(
        lines(&p),
        [
            "copy a-only.css a → b",
            "copy b-only.png b → a",
            // No base: both differ, the newer wins, no conflict recorded.
            "copy both.js b → a",
            "copy index.php a → b",
        ]
    );
    assert!(p.conflicts.is_empty());
}

#[test]
fn changes_go_one_way_and_deletions_follow_the_base() {
    let base = manifest(&[("x", 1, 0), ("y", 1, 0), ("z", 1, 0), ("w", 1, 0)]);
    // a changed x and deleted y; b deleted z; w untouched on both.
    let a = manifest(&[("x", 2, 50), ("z", 1, 0), ("w", 1, 0)]);
    let b = manifest(&[("x", 1, 0), ("y", 1, 0), ("w", 1, 0)]);
    let p = plan(&a, &b, Some(&both(&base)), &Rules::default(), at(100));
    assert_eq!(lines(&p), ["copy x a → b", "delete z on a", "delete y on b"]);
}

#[test]
fn a_change_beats_a_delete() {
    let base = manifest(&[("page.html", 1, 0)]);
    let a = manifest(&[("page.html", 9, 60)]);
    let b = Manifest::new();
    let p = plan(&a, &b, Some(&both(&base)), &Rules::default(), at(100));
    assert_eq!(lines(&p), ["copy page.html a → b"]);
}

#[test]
fn a_conflict_keeps_the_loser_renamed_or_overwrites_it() {
    let base = manifest(&[("c.txt", 1, 0)]);
    let a = manifest(&[("c.txt", 2, 30)]);
    let b = manifest(&[("c.txt", 3, 40)]);
    let p = plan(&a, &b, Some(&both(&base)), &Rules::default(), at(100));
    assert_eq!(p.conflicts, ["c.txt"]);
    assert_eq!(
        p.actions,
        [
            Action::KeepLoser {
                key: "c.txt".into(),
                on: Side::A,
                as_key: loser_key("c.txt", Side::A, at(30)),
            },
            Action::Copy {
                key: "c.txt".into(),
                from: Side::B,
                backup: None
            },
        ]
    );
    assert!(loser_key("c.txt", Side::A, at(30)).starts_with("c.txt.conflict-a-2025"));
    let rules = Rules {
        conflict: ConflictRule::NewerWins,
        backup_prefix: Some(".flotilla-backup/".into()),
        ..Rules::default()
    };
    let p = plan(&a, &b, Some(&both(&base)), &rules, at(100));
    assert_eq!(p.actions.len(), 1);
    assert!(
        matches!(&p.actions[0], Action::Copy { from: Side::B, backup: Some(k), .. }
            if k.starts_with(".flotilla-backup/") && k.ends_with("/c.txt")),
        "{:?}",
        p.actions
    );
}

/// Chaos seed 1 `datastore-down`: an upload whose write landed but whose answer was lost (the endpoint
/// closed the connection) leaves both sides changed since the base, with the same bytes at different
/// times. Comparing by size and time, the checksums of exactly those keys are what tell it from a
/// conflict: in step, no loser kept.
#[test]
fn both_sides_changed_to_the_same_content_is_in_step_whatever_the_comparison() {
    let base = manifest(&[("p.html", 5, 0), ("q.html", 5, 0), ("r.html", 5, 0)]);
    let mut a = manifest(&[("p.html", 7, 30), ("q.html", 7, 30), ("r.html", 5, 0)]);
    let mut b = manifest(&[("p.html", 7, 31), ("q.html", 8, 31), ("r.html", 5, 0)]);
    let rules = Rules::default();
    assert_eq!(rules.compare, Compare::SizeAndTime);
    // Only p.html needs its contents compared: q.html differs in size, r.html changed nowhere.
    assert_eq!(
        changed_on_both_alike(&a, &b, Some(&both(&base)), rules.compare),
        ["p.html"]
    );
    assert!(changed_on_both_alike(&a, &b, None, rules.compare).is_empty());
    // Unknown contents: a conflict, as before.
    let p = plan(&a, &b, Some(&both(&base)), &rules, at(100));
    assert_eq!(p.conflicts, ["p.html", "q.html"]);
    // The same checksum on both sides: in step.
    for m in [&mut a, &mut b] {
        m.get_mut("p.html").unwrap().checksum = Some("etag-of-p".into());
    }
    let p = plan(&a, &b, Some(&both(&base)), &rules, at(100));
    assert_eq!(p.conflicts, ["q.html"]);
    assert!(
        p.actions.iter().all(|x| !format!("{x:?}").contains("p.html")),
        "{:?}",
        p.actions
    );
    // Different checksums: still a conflict.
    b.get_mut("p.html").unwrap().checksum = Some("another".into());
    let p = plan(&a, &b, Some(&both(&base)), &rules, at(100));
    assert_eq!(p.conflicts, ["p.html", "q.html"]);
}

#[test]
fn an_empty_listing_never_empties_the_other_side() {
    let base: Manifest = (0..20).map(|i| (format!("f{i}"), entry(1, 0))).collect();
    let a = base.clone();
    // b answers an empty listing (a broken endpoint): every object "deleted" there.
    let p = plan(
        &a,
        &Manifest::new(),
        Some(&both(&base)),
        &Rules::default(),
        at(100),
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.held_back.len(), 1);
    let (side, why) = &p.held_back[0];
    assert_eq!(*side, Side::A);
    assert!(
        why.starts_with("the other side lists no object where it held 20"),
        "{why}"
    );
    // A listing that kept only a few objects: the share rule holds.
    let few: Manifest = base.iter().take(3).map(|(k, v)| (k.clone(), v.clone())).collect();
    let p = plan(&a, &few, Some(&both(&base)), &Rules::default(), at(100));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(
        p.held_back[0]
            .1
            .starts_with("17 of its 20 objects would be deleted (85%)"),
        "{:?}",
        p.held_back
    );
    // Small sites: deleting a few of a handful is no broken listing.
    let small = manifest(&[("a", 1, 0), ("b", 1, 0), ("c", 1, 0)]);
    let kept = manifest(&[("a", 1, 0)]);
    let p = plan(&small, &kept, Some(&both(&small)), &Rules::default(), at(100));
    assert_eq!(lines(&p), ["delete b on a", "delete c on a"]);
    // A few deletions within the limits go through.
    let b: Manifest = base.iter().skip(2).map(|(k, v)| (k.clone(), v.clone())).collect();
    let p = plan(&a, &b, Some(&both(&base)), &Rules::default(), at(100));
    assert_eq!(lines(&p), ["delete f0 on a", "delete f1 on a"]);
    // And an absolute limit holds too.
    let rules = Rules {
        max_delete: 1,
        ..Rules::default()
    };
    assert_eq!(
        plan(&a, &b, Some(&both(&base)), &rules, at(100)).held_back.len(),
        1
    );
}

#[test]
fn versions_compare_by_size_and_second_or_by_checksum() {
    let x = Entry {
        size: 4,
        modified: at(10),
        checksum: Some("abc".into()),
    };
    // The same second, finer time lost by the object store: the same.
    let y = Entry {
        modified: at(10) + chrono::Duration::milliseconds(400),
        ..x.clone()
    };
    assert!(same(&x, &y, Compare::SizeAndTime));
    // Touched but not changed: the checksum says it is the same.
    let touched = Entry {
        modified: at(99),
        ..x.clone()
    };
    assert!(!same(&x, &touched, Compare::SizeAndTime));
    assert!(same(&x, &touched, Compare::Checksum));
    let edited = Entry {
        checksum: Some("abd".into()),
        ..x.clone()
    };
    assert!(!same(&x, &edited, Compare::Checksum));
    // Equal sides plan nothing.
    let m: Manifest = [("k".to_owned(), x)].into();
    assert!(plan(&m, &m.clone(), Some(&both(&m)), &Rules::default(), at(0)).is_empty());
}

#[test]
fn times_compare_at_the_coarser_precision_of_the_two() {
    let t = at(10);
    let ns = |n: i64| t + chrono::Duration::nanoseconds(n);
    // A second-precision time against finer ones: the second decides.
    assert!(same_time(t, ns(400_000_000)));
    assert!(same_time(ns(999_999_999), t));
    // Milliseconds against nanoseconds: the millisecond decides.
    assert!(same_time(ns(123_000_000), ns(123_456_789)));
    assert!(!same_time(ns(124_000_000), ns(123_456_789)));
    // Both at nanoseconds (a file against its own base): exact.
    assert!(same_time(ns(123_456_789), ns(123_456_789)));
    assert!(!same_time(ns(123_456_789), ns(123_456_790)));
    // Another second: never the same.
    assert!(!same_time(t, at(11)));
}

/// Chaos seed 7 (datastore-down): a webroot file rewritten with the same size within the same second as
/// its last sync was not seen, because a side was compared with its own base to the second.
#[test]
fn a_same_size_rewrite_in_the_same_second_is_a_change() {
    let synced = Entry {
        size: 5,
        modified: at(10) + chrono::Duration::nanoseconds(100_000_123),
        checksum: None,
    };
    let rewritten = Entry {
        modified: at(10) + chrono::Duration::nanoseconds(700_000_456),
        ..synced.clone()
    };
    // b (an object store) keeps its copy at the second.
    let stored = entry(5, 11);
    let base = Base {
        a: [("p5.html".to_owned(), synced)].into(),
        b: [("p5.html".to_owned(), stored.clone())].into(),
    };
    let a: Manifest = [("p5.html".to_owned(), rewritten)].into();
    let b: Manifest = [("p5.html".to_owned(), stored)].into();
    assert_eq!(
        lines(&plan(&a, &b, Some(&base), &Rules::default(), at(100))),
        ["copy p5.html a → b"]
    );
    // Unchanged since the base: nothing, at any precision.
    assert!(plan(&base.a, &b, Some(&base), &Rules::default(), at(100)).is_empty());
}

#[test]
fn copies_carry_the_time_of_their_writing_and_are_still_in_step() {
    // The last pass copied x a → b: b's copy has the time of its writing, not a's.
    let a = manifest(&[("x", 5, 10)]);
    let b = manifest(&[("x", 5, 70)]);
    let base = Base {
        a: a.clone(),
        b: b.clone(),
    };
    assert!(plan(&a, &b, Some(&base), &Rules::default(), at(100)).is_empty());
    // Then a changes it again: a → b, not a conflict.
    let a2 = manifest(&[("x", 6, 90)]);
    assert_eq!(
        lines(&plan(&a2, &b, Some(&base), &Rules::default(), at(100))),
        ["copy x a → b"]
    );
    // A deletion on b is told by b's own base, whatever a's times.
    let a = manifest(&[("x", 5, 10), ("y", 1, 10)]);
    let b = manifest(&[("x", 5, 70), ("y", 1, 70)]);
    let base = Base {
        a: a.clone(),
        b: b.clone(),
    };
    let p = plan(
        &a,
        &manifest(&[("y", 1, 70)]),
        Some(&base),
        &Rules {
            max_delete_percent: 100,
            ..Rules::default()
        },
        at(100),
    );
    assert_eq!(lines(&p), ["delete x on a"]);
}

#[test]
fn the_next_base_keeps_what_was_read_so_that_a_change_during_the_pass_is_not_lost() {
    // Since the last pass: a made x and had "gone" deleted; b made z.
    let a_now = manifest(&[("x", 5, 10), ("y", 1, 10)]);
    let b = manifest(&[("y", 1, 20), ("gone", 1, 20), ("z", 3, 30)]);
    let base = Base {
        a: manifest(&[("y", 1, 10), ("gone", 1, 10)]),
        b: manifest(&[("y", 1, 20), ("gone", 1, 20)]),
    };
    let rules = Rules {
        max_delete_percent: 100,
        ..Rules::default()
    };
    let p = plan(&a_now, &b, Some(&base), &rules, at(100));
    assert_eq!(lines(&p), ["copy x a → b", "copy z b → a", "delete gone on b"]);
    // After the copies, each destination holds its copy with the time of its writing.
    let written = Base {
        a: manifest(&[("z", 3, 101)]),
        b: manifest(&[("x", 5, 102)]),
    };
    let next = next_base(&a_now, &b, Some(&base), &p.actions, &[], &written);
    assert_eq!(next.a, manifest(&[("x", 5, 10), ("y", 1, 10), ("z", 3, 101)]));
    assert_eq!(next.b, manifest(&[("x", 5, 102), ("y", 1, 20), ("z", 3, 30)]));
    // The sides as read then copied to are in step with it…
    let a_after = next.a.clone();
    let b_after = next.b.clone();
    assert!(plan(&a_after, &b_after, Some(&next), &rules, at(110)).is_empty());
    // …and y, changed on a while the pass ran (after its listing), is still a change next time.
    let mut a_changed = a_after.clone();
    a_changed.insert("y".into(), entry(2, 105));
    assert_eq!(
        lines(&plan(&a_changed, &b_after, Some(&next), &rules, at(110))),
        ["copy y a → b"]
    );
    // A copy not seen after it was made is left out of the base: looked at again, never deleted.
    let partial = next_base(&a_now, &b, Some(&base), &p.actions, &[], &Base::default());
    assert!(!partial.b.contains_key("x") && !partial.a.contains_key("z"));
    assert_eq!(oldest_change(&a_now, &b, &p.actions), Some(at(10)));
}

#[test]
fn what_was_not_applied_is_planned_again_the_same_way_never_as_a_conflict() {
    let base = both(&manifest(&[("keep", 1, 0), ("page", 1, 0)]));
    // a changed page and made new; b deleted keep.
    let a = manifest(&[("keep", 1, 0), ("page", 2, 50), ("new", 3, 50)]);
    let b = manifest(&[("page", 1, 0)]);
    let rules = Rules {
        max_delete_percent: 100,
        ..Rules::default()
    };
    let p = plan(&a, &b, Some(&base), &rules, at(100));
    assert_eq!(
        lines(&p),
        ["copy new a → b", "copy page a → b", "delete keep on a"]
    );
    // The copy of page failed; the rest was applied.
    let (failed, applied): (Vec<Action>, Vec<Action>) =
        p.actions.iter().cloned().partition(|a| a.key() == "page");
    let written = Base {
        a: Manifest::new(),
        b: manifest(&[("new", 3, 101)]),
    };
    let next = next_base(&a, &b, Some(&base), &applied, &failed, &written);
    let a2 = manifest(&[("page", 2, 50), ("new", 3, 50)]);
    let b2 = manifest(&[("page", 1, 0), ("new", 3, 101)]);
    let again = plan(&a2, &b2, Some(&next), &rules, at(110));
    assert_eq!(lines(&again), ["copy page a → b"]);
    assert!(again.conflicts.is_empty());
    // A deletion held back stays held back (and is never forgotten into a copy back); page, changed on a
    // since, still goes across (a change beats a delete).
    let emptied = plan(&a2, &Manifest::new(), Some(&next), &rules, at(120));
    assert_eq!(
        lines(&emptied),
        [
            "copy page a → b",
            "deletions on a held back: the other side lists no object where it held 2 at the last pass: it may be listing nothing by mistake, so none of its 1 deletions is made"
        ]
    );
    assert_eq!(emptied.withheld.len(), 1);
    let mut not_applied = emptied.withheld.clone();
    not_applied.extend(emptied.actions.iter().cloned());
    let kept = next_base(
        &a2,
        &Manifest::new(),
        Some(&next),
        &[],
        &not_applied,
        &Base::default(),
    );
    let still = plan(&a2, &Manifest::new(), Some(&kept), &rules, at(130));
    assert_eq!(lines(&still), lines(&emptied));
}
