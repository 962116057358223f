//! Region locks across replicas: two provisioner instances sharing one NATS lease bucket never work on the
//! same region at once; a lease held by an instance that died is taken over once it expires.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flotilla_bus::topology::{Topology, TopologyConfig};
use flotilla_integration_tests::TestNats;
use flotilla_provisioner::lock::RegionLocks;

async fn leases(nats: &TestNats) -> flotilla_bus::lease::Leases {
    let client = nats.client().await;
    Topology::ensure(&client, &TopologyConfig::default())
        .await
        .unwrap()
        .leases()
}

#[tokio::test]
async fn two_replicas_never_hold_the_same_region_at_once() {
    let nats = TestNats::private().await;
    let a = RegionLocks::new(
        Some(leases(&nats).await),
        "replica-a".into(),
        Duration::from_millis(50),
    );
    let b = RegionLocks::new(
        Some(leases(&nats).await),
        "replica-b".into(),
        Duration::from_millis(50),
    );

    let held = a.hold("dep", "gb-lon").await.unwrap();
    assert!(
        b.try_hold("dep", "gb-lon").await.unwrap().is_none(),
        "B must not get a region A holds"
    );
    assert!(
        b.try_hold("dep", "nl-ams").await.unwrap().is_some(),
        "another region is free"
    );
    // B waits for A; once A lets go, B has it.
    let waiting = tokio::spawn(async move {
        let guard = b.hold("dep", "gb-lon").await.unwrap();
        drop(guard);
        b
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "B waits while A holds the region");
    drop(held);
    let b = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("B gets the region once A releases it")
        .unwrap();

    // Within one replica, the second caller waits too.
    let first = b.hold("dep", "gb-lon").await.unwrap();
    assert!(b.try_hold("dep", "gb-lon").await.unwrap().is_none());
    drop(first);
}

#[tokio::test]
async fn a_held_lease_is_renewed_while_the_work_runs() {
    let nats = TestNats::private().await;
    let ttl = Duration::from_secs(2);
    let locks = |name: &str, leases: flotilla_bus::lease::Leases| {
        RegionLocks::new(Some(leases), name.into(), Duration::from_millis(50)).with_ttl(ttl)
    };
    let a = locks("replica-a", leases(&nats).await);
    let b = locks("replica-b", leases(&nats).await);
    let held = a.hold("dep", "gb-lon").await.unwrap();
    // Longer than the lease's TTL: renewal keeps it ours.
    tokio::time::sleep(ttl * 3).await;
    assert!(
        b.try_hold("dep", "gb-lon").await.unwrap().is_none(),
        "a lease renewed while held is not taken over"
    );
    drop(held);

    // A replica that dies holding a region (its lease neither renewed nor released) holds it until the
    // lease expires, then another takes over.
    // The dying replica runs on a runtime of its own, shut down with the lease held: its renewal stops as a
    // killed process's would.
    let url = nats.url().to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = async_nats::connect(url).await.unwrap();
            let leases = Topology::ensure(&client, &TopologyConfig::default())
                .await
                .unwrap()
                .leases();
            let dead = RegionLocks::new(Some(leases), "replica-dead".into(), Duration::from_millis(50))
                .with_ttl(ttl);
            std::mem::forget(dead.hold("dep", "nl-ams").await.unwrap());
        });
        rt.shutdown_background();
    })
    .join()
    .unwrap();
    assert!(
        b.try_hold("dep", "nl-ams").await.unwrap().is_none(),
        "held by the dead replica until its lease expires"
    );
    let took_over = tokio::time::timeout(ttl * 10, b.hold("dep", "nl-ams")).await;
    assert!(
        took_over.is_ok_and(|r| r.is_ok()),
        "the dead replica's lease expires and B takes the region"
    );
}

#[tokio::test]
async fn a_replica_whose_lease_is_taken_over_is_told_to_stop() {
    let nats = TestNats::private().await;
    let client = nats.client().await;
    let topology = Topology::ensure(&client, &TopologyConfig::default())
        .await
        .unwrap();
    let ttl = Duration::from_millis(900);
    let a = RegionLocks::new(
        Some(topology.leases()),
        "replica-a".into(),
        Duration::from_millis(50),
    )
    .with_ttl(ttl);
    let held = a.hold("dep", "gb-lon").await.unwrap();
    assert!(!held.is_lost());
    // Another replica writes the lease behind A's back (as one does once A was paused past its TTL): A's next
    // renewal — a compare-and-set on the revision A last wrote — fails, and its guard says stop.
    let record = serde_json::json!({
        "holder": "replica-b",
        "expires_at": chrono::Utc::now() + chrono::Duration::seconds(60),
    });
    topology
        .leases
        .put(
            "provisioner.region.dep.gb-lon",
            serde_json::to_vec(&record).unwrap().into(),
        )
        .await
        .unwrap();
    tokio::time::timeout(ttl * 5, held.lost())
        .await
        .expect("the guard reports the lease lost within a renewal period or two");
    assert!(held.is_lost());
    // Dropping the lost guard leaves the new holder's lease alone.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let holder = topology
        .leases()
        .holder("provisioner.region.dep.gb-lon")
        .await
        .unwrap()
        .expect("still held");
    assert_eq!(holder.holder, "replica-b");

    // Without a takeover the guard is never lost.
    let kept = a.hold("dep", "nl-ams").await.unwrap();
    tokio::time::sleep(ttl * 2).await;
    assert!(!kept.is_lost(), "a lease renewed in time is not lost");
}
