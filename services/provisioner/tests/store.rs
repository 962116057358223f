//! The provisioner's machine store on SQLite and PostgreSQL: create fencing, updates, the plan's view.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_integration_tests::databases;
use flotilla_provisioner::plan::KnownState;
use flotilla_provisioner::store::{MachineRow, MachineStore};
use flotilla_spec::Role;

fn row(id: &str, role: Role) -> MachineRow {
    MachineRow {
        resource_id: id.into(),
        deployment: "www-codetesters-uk".into(),
        region: "gb-lon".into(),
        role,
        size: "g6-nanode-1".into(),
        name: format!("ws-gb-lon-{id}"),
        provider: "linode".into(),
        provider_id: None,
        state: KnownState::CreatePending,
        public_ipv4: None,
        private_ipv4: None,
        attempts: 0,
        created_ms: 0,
    }
}

#[tokio::test]
async fn fencing_records_a_pending_create_once() {
    for db in databases().await {
        let machines = MachineStore::open(db.store.clone()).await.unwrap();
        assert!(
            machines
                .record_pending(&row("a1", Role::Webserver))
                .await
                .unwrap()
        );
        assert!(
            !machines
                .record_pending(&row("a1", Role::Webserver))
                .await
                .unwrap(),
            "a retry finds the record"
        );
        let rows = machines.region("www-codetesters-uk", "gb-lon").await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, KnownState::CreatePending);
        assert!(rows[0].created_ms > 0);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn updates_attempts_and_removal() {
    for db in databases().await {
        let machines = MachineStore::open(db.store.clone()).await.unwrap();
        machines
            .record_pending(&row("b1", Role::ReverseProxy))
            .await
            .unwrap();
        machines
            .record_pending(&row("b2", Role::Webserver))
            .await
            .unwrap();
        assert_eq!(machines.add_attempt("b1").await.unwrap(), 1);
        assert_eq!(machines.add_attempt("b1").await.unwrap(), 2);
        machines
            .update("b1", Some("4711"), KnownState::Provisioning, None, None)
            .await
            .unwrap();
        // Later updates keep what they do not mention.
        machines
            .update(
                "b1",
                None,
                KnownState::Healthy,
                Some("127.10.0.5"),
                Some("10.0.1.5"),
            )
            .await
            .unwrap();
        let rows = machines.region("www-codetesters-uk", "gb-lon").await.unwrap();
        let b1 = rows.iter().find(|r| r.resource_id == "b1").unwrap();
        assert_eq!(b1.provider_id.as_deref(), Some("4711"));
        assert_eq!(b1.state, KnownState::Healthy);
        assert_eq!(b1.public_ipv4.as_deref(), Some("127.10.0.5"));
        assert_eq!(b1.attempts, 2);
        assert_eq!(b1.known().role, Role::ReverseProxy);
        machines.remove("b1").await.unwrap();
        machines.remove("b1").await.unwrap();
        let left: Vec<String> = machines
            .region("www-codetesters-uk", "gb-lon")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.resource_id)
            .collect();
        assert_eq!(left, vec!["b2"]);
        assert!(
            machines
                .region("www-codetesters-uk", "nl-ams")
                .await
                .unwrap()
                .is_empty()
        );
        db.cleanup().await;
    }
}
