//! The sync service's database on SQLite and PostgreSQL: a bucket's base recorded after a pass and read
//! back as it was; another pair of endpoints has its own; none before the first pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_integration_tests::databases;
use flotilla_sync::plan::{Base, Entry, Manifest};
use flotilla_sync::store::{PairKey, SyncStore, migrations};

#[tokio::test]
async fn bases_are_kept_per_bucket_and_pair_on_every_backend() {
    for db in databases().await {
        let (sqlite, postgres) = migrations();
        db.store.migrate_with(sqlite, postgres).await.unwrap();
        let store = SyncStore::new(db.store.clone());
        let pair = PairKey {
            deployment: "shop".into(),
            bucket: "www-example-com-webroot-sync".into(),
            side_a: "nl-ams-1.linodeobjects.com".into(),
            side_b: "ams3.digitaloceanspaces.com".into(),
        };
        assert_eq!(store.base(&pair).await.unwrap(), None);
        let entry = |size: u64, secs: i64| Entry {
            size,
            modified: chrono::DateTime::from_timestamp(1_765_000_000 + secs, 0).unwrap(),
            checksum: Some(format!("sum-{size}")),
        };
        let base = Base {
            a: Manifest::from([("index.php".to_owned(), entry(10, 0))]),
            b: Manifest::from([("index.php".to_owned(), entry(10, 60))]),
        };
        store.record(&pair, &base).await.unwrap();
        assert_eq!(store.base(&pair).await.unwrap().as_ref(), Some(&base));
        // Replaced whole by the next pass.
        let next = Base {
            a: Manifest::new(),
            b: Manifest::new(),
        };
        store.record(&pair, &next).await.unwrap();
        assert_eq!(store.base(&pair).await.unwrap(), Some(next));
        // Another pair of endpoints for the same bucket: its own.
        let other = PairKey {
            side_b: "sos-ch-gva-2.exo.io".into(),
            ..pair.clone()
        };
        assert_eq!(store.base(&other).await.unwrap(), None);
    }
}
