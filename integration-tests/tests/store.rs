//! Repository tests, each run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, Utc};
use flotilla_integration_tests::databases;
use flotilla_store::{Inbox, Store};

#[tokio::test]
async fn the_inbox_records_each_command_once() {
    for db in databases().await {
        let inbox = Inbox::new(db.store.clone());
        assert!(inbox.is_empty().await.unwrap());
        assert!(
            inbox.record("cmd-1", "provisioner.apply.v1").await.unwrap(),
            "{:?}",
            db.store.backend()
        );
        assert!(
            !inbox.record("cmd-1", "provisioner.apply.v1").await.unwrap(),
            "duplicate recognised"
        );
        assert!(inbox.contains("cmd-1").await.unwrap());
        assert!(!inbox.contains("cmd-2").await.unwrap());
        assert_eq!(inbox.len().await.unwrap(), 1);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_records_of_one_command_admit_exactly_one() {
    for db in databases().await {
        let inbox = Inbox::new(db.store.clone());
        let tries = (0..16).map(|_| {
            let inbox = inbox.clone();
            tokio::spawn(async move { inbox.record("same", "k").await.unwrap() })
        });
        let wins = futures::future::join_all(tries)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(wins, 1, "{:?}", db.store.backend());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn purging_forgets_only_old_commands() {
    for db in databases().await {
        let inbox = Inbox::new(db.store.clone());
        inbox.record("old", "k").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let cutoff = Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        inbox.record("new", "k").await.unwrap();
        assert_eq!(inbox.purge_before(cutoff).await.unwrap(), 1);
        assert!(!inbox.contains("old").await.unwrap());
        assert!(inbox.contains("new").await.unwrap());
        assert_eq!(
            inbox.purge_before(Utc::now() - Duration::days(1)).await.unwrap(),
            0
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_data_survives_a_reopen() {
    for db in databases().await {
        Inbox::new(db.store.clone()).record("kept", "k").await.unwrap();
        let again = Store::open(&db.url).await.unwrap();
        again.migrate().await.unwrap();
        assert!(Inbox::new(again.clone()).contains("kept").await.unwrap());
        again.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn in_memory_sqlite_works_for_tools() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let inbox = Inbox::new(store);
    assert!(inbox.record("x", "k").await.unwrap());
    assert!(inbox.contains("x").await.unwrap());
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_clear_error() {
    let port = flotilla_integration_tests::free_port();
    let err = Store::open(&format!("postgres://flotilla:secretpw@127.0.0.1:{port}/db"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("postgres") && !err.contains("secretpw"), "{err}");
}

#[tokio::test]
async fn a_service_adds_its_own_migrations_beside_the_common_ones() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("100_machines.sql"),
            "CREATE TABLE machines (id TEXT PRIMARY KEY, role TEXT NOT NULL);",
        )
        .unwrap();
        let own = || async { sqlx::migrate::Migrator::new(dir.path()).await.unwrap() };
        db.store.migrate_with(own().await, own().await).await.unwrap();
        // Again, and the common set alone, in either order: nothing fails on the other's versions.
        db.store.migrate().await.unwrap();
        db.store.migrate_with(own().await, own().await).await.unwrap();
        let reopened = Store::open(&db.url).await.unwrap();
        reopened.migrate_with(own().await, own().await).await.unwrap();
        let q = "INSERT INTO machines (id, role) VALUES ('m1', 'webserver')";
        match &reopened {
            Store::Sqlite(p) => sqlx::query(q).execute(p).await.map(|_| ()),
            Store::Postgres(p) => sqlx::query(q).execute(p).await.map(|_| ()),
        }
        .unwrap();
        assert!(
            Inbox::new(reopened.clone()).record("c", "k").await.unwrap(),
            "the common tables are there too"
        );
        reopened.close().await;
        db.cleanup().await;
    }
}
