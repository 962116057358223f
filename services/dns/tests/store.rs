//! The dns service's database on SQLite and PostgreSQL: ownership rows claimed, bound, handed over and
//! released whatever the case of the zone and name; the active authenticator moved by compare-and-set, so a
//! concurrent move wins and the other changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_dns::store::{DnsStore, migrations};
use flotilla_integration_tests::databases;

#[tokio::test]
async fn ownership_rows_and_the_active_authenticator_on_every_backend() {
    for db in databases().await {
        let (sqlite, postgres) = migrations();
        db.store.migrate_with(sqlite, postgres).await.unwrap();
        let store = DnsStore::new(db.store.clone());

        // Claimed before the create (no id), bound after; the zone and name in any case are one row.
        store
            .claim(
                "linode",
                "Example.COM",
                "WWW.example.com",
                "192.0.2.1",
                "shop",
                None,
            )
            .await
            .unwrap();
        store
            .claim(
                "linode",
                "example.com",
                "www.example.com",
                "192.0.2.1",
                "shop",
                Some("42"),
            )
            .await
            .unwrap();
        let rows = store.owned("linode", "EXAMPLE.com").await.unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            (rows[0].name.as_str(), rows[0].record_id.as_deref()),
            ("www.example.com", Some("42"))
        );
        // Handed over: one owner at a time, never none.
        store
            .transfer(
                "linode",
                "example.com",
                "www.example.com",
                "192.0.2.1",
                Some("42"),
                "shop",
                "shop2",
            )
            .await
            .unwrap();
        let rows = store.owned("linode", "example.com").await.unwrap();
        assert_eq!(rows.len(), 1, "{} {rows:?}", db.url);
        assert_eq!(rows[0].owner, "shop2");
        // Another provider's zone of the same name is another registry.
        assert!(store.owned("vultr", "example.com").await.unwrap().is_empty());
        store
            .release("linode", "EXAMPLE.COM", "www.example.com", "192.0.2.1", "shop2")
            .await
            .unwrap();
        assert!(store.owned("linode", "example.com").await.unwrap().is_empty());

        // The active authenticator: never failed over, then moved; a move that expects a state that is no
        // longer so changes nothing.
        assert_eq!(store.active_authenticator("shop").await.unwrap(), None);
        let (changed, before) = store
            .set_active_authenticator("shop", "nl-ams", "command", "by test", None)
            .await
            .unwrap();
        assert!(changed && before.is_none());
        let (changed, _) = store
            .set_active_authenticator("shop", "ch-gva-2", "health", "stale", Some(None))
            .await
            .unwrap();
        assert!(!changed, "expected never failed over, but it was");
        let (changed, _) = store
            .set_active_authenticator("shop", "ch-gva-2", "health", "stale", Some(Some("gb-lon")))
            .await
            .unwrap();
        assert!(!changed, "expected gb-lon, but it is nl-ams");
        let (changed, before) = store
            .set_active_authenticator("shop", "ch-gva-2", "health", "down", Some(Some("nl-ams")))
            .await
            .unwrap();
        assert!(changed);
        assert_eq!(before.as_deref(), Some("nl-ams"));
        let now = store.active_authenticator("shop").await.unwrap().unwrap();
        assert_eq!((now.region.as_str(), now.cause.as_str()), ("ch-gva-2", "health"));
        // The same region again: nothing changes.
        let (changed, _) = store
            .set_active_authenticator("shop", "ch-gva-2", "command", "again", None)
            .await
            .unwrap();
        assert!(!changed);
        db.cleanup().await;
    }
}
