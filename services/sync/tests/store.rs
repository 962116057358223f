//! The sync service's database on SQLite and PostgreSQL: a bucket's base recorded after a pass and read
//! back as it was, with the stamps it is exact at; another pair of endpoints has its own; none before the
//! first pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_integration_tests::databases;
use flotilla_sync::plan::{Base, Entry, Manifest};
use flotilla_sync::store::{Exact, PairKey, SyncStore, migrations};

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
        assert_eq!(store.base(&pair).await.unwrap(), Some(next.clone()));
        // With the stamps it is exact at, per side; a plain record is exact nowhere.
        let exact = Exact {
            a: None,
            b: Some("6f1c".into()),
        };
        store.record_stamped(&pair, &base, &exact).await.unwrap();
        assert_eq!(
            store.stamped_base(&pair).await.unwrap(),
            Some((base.clone(), exact))
        );
        store.record(&pair, &next).await.unwrap();
        assert_eq!(
            store.stamped_base(&pair).await.unwrap(),
            Some((next, Exact::default()))
        );
        // Another pair of endpoints for the same bucket: its own.
        let other = PairKey {
            side_b: "sos-ch-gva-2.exo.io".into(),
            ..pair.clone()
        };
        assert_eq!(store.base(&other).await.unwrap(), None);
    }
}

#[tokio::test]
async fn backups_and_their_copies_are_a_durable_queue_on_every_backend() {
    use flotilla_sync::store::BackupRow;
    for db in databases().await {
        let (sqlite, postgres) = migrations();
        db.store.migrate_with(sqlite, postgres).await.unwrap();
        let store = SyncStore::new(db.store.clone());
        let row = |id: &str, secs: i64| BackupRow {
            deployment: "shop".into(),
            id: id.into(),
            period: "daily".into(),
            region: "gb-lon".into(),
            bucket: "www-example-com-daily".into(),
            key: format!("webroot-{id}.tar.gz"),
            taken_at: chrono::DateTime::from_timestamp_millis(1_765_000_000_000 + secs * 1000).unwrap(),
            checksum: "ab".repeat(32),
            size: 4096,
        };
        let endpoints = ["linode:a".to_owned(), "digitalocean:b".to_owned()];
        store.record_backup(&row("one", 0), &endpoints).await.unwrap();
        // Recorded again (a redelivered command): unchanged, no second row.
        store.record_backup(&row("one", 99), &endpoints).await.unwrap();
        store
            .record_backup(&row("two", 10), &endpoints[..1])
            .await
            .unwrap();
        let backups = store.backups("shop").await.unwrap();
        assert_eq!(
            backups.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
            ["two", "one"]
        );
        assert_eq!(backups[1], row("one", 0));
        // Copies: pending until written; a failure keeps it pending with why.
        store.copy_done("shop", "one", "linode:a", None).await.unwrap();
        store
            .copy_done("shop", "one", "digitalocean:b", Some("unreachable"))
            .await
            .unwrap();
        let copies = store.copies("shop").await.unwrap();
        let one: Vec<_> = copies.iter().filter(|c| c.id == "one").collect();
        assert_eq!(one.len(), 2);
        assert!(
            one.iter()
                .any(|c| c.endpoint == "linode:a" && c.written && c.error.is_none())
        );
        assert!(one.iter().any(|c| c.endpoint == "digitalocean:b"
            && !c.written
            && c.error.as_deref() == Some("unreachable")));
        store.forget_backup("shop", "one").await.unwrap();
        assert_eq!(store.backups("shop").await.unwrap().len(), 1);
        assert!(store.copies("shop").await.unwrap().iter().all(|c| c.id == "two"));
        assert!(store.backups("other").await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_base_recorded_by_an_earlier_version_is_converted_once() {
    for db in databases().await {
        let (sqlite, postgres) = migrations();
        db.store.migrate_with(sqlite, postgres).await.unwrap();
        let store = SyncStore::new(db.store.clone());
        let pair = PairKey {
            deployment: "shop".into(),
            bucket: "www-example-com-webroot-sync".into(),
            side_a: "linode:gb-lon-1.linodeobjects.com".into(),
            side_b: "digitalocean:ams3.digitaloceanspaces.com".into(),
        };
        let a = r#"{"index.php":{"size":10,"modified":"2026-12-01T10:00:00Z","checksum":null}}"#;
        let b = r#"{"index.php":{"size":10,"modified":"2026-12-01T10:00:05Z","checksum":null},"x.css":{"size":3,"modified":"2026-12-01T10:00:06Z","checksum":null}}"#;
        let q = "INSERT INTO sync_base (deployment, bucket, side_a, side_b, manifest_a, manifest_b, passed_ms, stamp_a) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0, 'st-a')";
        match &db.store {
            flotilla_store::Store::Sqlite(p) => sqlx::query(q)
                .bind(&pair.deployment)
                .bind(&pair.bucket)
                .bind(&pair.side_a)
                .bind(&pair.side_b)
                .bind(a)
                .bind(b)
                .execute(p)
                .await
                .map(drop),
            flotilla_store::Store::Postgres(p) => sqlx::query(q)
                .bind(&pair.deployment)
                .bind(&pair.bucket)
                .bind(&pair.side_a)
                .bind(&pair.side_b)
                .bind(a)
                .bind(b)
                .execute(p)
                .await
                .map(drop),
        }
        .unwrap();
        let (base, exact) = store.stamped_base(&pair).await.unwrap().unwrap();
        assert_eq!(base.a.len(), 1);
        assert_eq!(base.b.len(), 2);
        assert_eq!(base.b["x.css"].size, 3);
        assert_eq!(exact.a.as_deref(), Some("st-a"));
        assert!(store.pair(&pair).await.unwrap().unwrap().complete);
        // Converted once: the old row is gone, the new rows stay.
        let left: i64 = match &db.store {
            flotilla_store::Store::Sqlite(p) => sqlx::query_scalar("SELECT COUNT(*) FROM sync_base")
                .fetch_one(p)
                .await
                .unwrap(),
            flotilla_store::Store::Postgres(p) => sqlx::query_scalar("SELECT COUNT(*) FROM sync_base")
                .fetch_one(p)
                .await
                .unwrap(),
        };
        assert_eq!(left, 0);
        assert_eq!(store.base(&pair).await.unwrap(), Some(base));
    }
}
