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
        why.starts_with("20 of its 20 objects would be deleted (100%)"),
        "{why}"
    );
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
    let p = plan(
        &a,
        &Manifest::new(),
        Some(&base),
        &Rules {
            max_delete_percent: 100,
            ..Rules::default()
        },
        at(100),
    );
    assert_eq!(lines(&p), ["delete x on a"]);
}
