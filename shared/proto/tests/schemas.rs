//! The checked-in JSON Schemas under `schemas/` are exactly what the `proto` types generate.
//! Regenerate with `FLOTILLA_BLESS=1 cargo test -p flotilla-proto --test schemas`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let bless = std::env::var("FLOTILLA_BLESS").is_ok_and(|v| v == "1");
    let mut expected_files = BTreeSet::new();
    let mut stale = Vec::new();
    for (kind, schema) in flotilla_proto::all_schemas() {
        let file = format!("{kind}.json");
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(&file);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &generated).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            stale.push(file.clone());
        }
        expected_files.insert(file);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let extra: Vec<_> = present
        .iter()
        .filter(|f| f.ends_with(".json") && !expected_files.contains(*f))
        .collect();
    if bless {
        for f in &extra {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        return;
    }
    assert!(
        stale.is_empty() && extra.is_empty(),
        "schemas/ is out of date (differs: {stale:?}; no longer generated: {extra:?}); \
         run `FLOTILLA_BLESS=1 cargo test -p flotilla-proto --test schemas` and commit the result"
    );
}

#[test]
fn kinds_are_unique_and_well_formed() {
    let kinds: Vec<&str> = flotilla_proto::all_schemas()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let unique: BTreeSet<&str> = kinds.iter().copied().collect();
    assert_eq!(unique.len(), kinds.len(), "duplicate kind in {kinds:?}");
    for kind in kinds {
        let parts: Vec<&str> = kind.split('.').collect();
        assert_eq!(parts.len(), 3, "{kind}: expected <service>.<name>.v<N>");
        assert!(
            parts[2]
                .strip_prefix('v')
                .is_some_and(|n| n.parse::<u32>().is_ok()),
            "{kind}: version suffix"
        );
    }
}
