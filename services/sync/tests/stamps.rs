//! Bucket stamps (NATS KV) between two providers' datastores (the simulator's Linode and DigitalOcean S3):
//! a no-change re-run makes no S3 request at all; a write another writer stamped is listed and carried on
//! the side it was made, and only there; a write that left no stamp waits for the full comparison, which
//! finds it; a stamp somebody left in between is never taken for one's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use flotilla_bus::{Topology, TopologyConfig};
use flotilla_cloudsim::Provider;
use flotilla_integration_tests::{TestDb, TestNats, sim, unique};
use flotilla_sync::plan::Rules;
use flotilla_sync::replicate::Pair;
use flotilla_sync::stamps::{Spot, StampSource, Stamped};
use flotilla_sync::store::{PairKey, SyncStore, migrations};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_nobody_stamped_is_not_listed_again() {
    let nats = TestNats::private().await;
    let client = nats.client().await;
    let config = TopologyConfig::default();
    let topology = Topology::ensure(&client, &config).await.unwrap();
    let sim = sim::simulator(Duration::from_millis(10), Duration::from_millis(10)).await;
    let clouds = flotilla_clouds::Clouds::new(sim.cloud_settings(), None);
    let mut d = flotilla_integration_tests::templates::seed_import().deployment;
    d.regions[1].datastores[0].host_base = "ams3.digitaloceanspaces.com".into();
    let store_of = |i: usize| {
        clouds
            .datastores(&d.name, &d.regions[i])
            .unwrap()
            .primary()
            .clone()
    };
    let (a, b) = (store_of(0), store_of(1));
    let ends = [
        sim.s3_endpoint(Provider::Linode, "gb-lon-1").unwrap(),
        sim.s3_endpoint(Provider::DigitalOcean, "ams3").unwrap(),
    ];
    let requests = || ends.iter().map(|e| e.requests()).sum::<u64>();
    let bucket = unique("www-example-com-webroot-sync");
    Box::pin(a.ensure_bucket(&bucket)).await.unwrap();
    Box::pin(b.ensure_bucket(&bucket)).await.unwrap();
    let db = TestDb::sqlite().await;
    let (sqlite, postgres) = migrations();
    db.store.migrate_with(sqlite, postgres).await.unwrap();
    let store = SyncStore::new(db.store.clone());
    let key = PairKey {
        deployment: d.name.clone(),
        bucket: bucket.clone(),
        side_a: "linode:gb-lon-1.linodeobjects.com".into(),
        side_b: "digitalocean:ams3.digitaloceanspaces.com".into(),
    };
    let replicator = StampSource::new(topology.clone(), config.clone(), "replicator");
    let agent = StampSource::new(topology.clone(), config.clone(), "agent:ws-1");
    let (replicator, agent) = (replicator.get().await.unwrap(), agent.get().await.unwrap());
    let pair = Pair {
        a: &a,
        b: &b,
        bucket: &bucket,
    };
    let rules = Rules::default();
    let pass = |full: bool| {
        let (store, key, pair, rules) = (&store, &key, &pair, &rules);
        async move {
            let stamped = Stamped {
                stamps: Some(replicator),
                store,
                key,
                full,
            };
            Box::pin(stamped.pass(pair, rules, 8 << 20)).await.unwrap()
        }
    };
    let put = |side: &flotilla_datastore::Datastore, k: &str, body: &'static str| {
        let (side, k, bucket) = (side.clone(), k.to_owned(), bucket.clone());
        async move { Box::pin(side.put(&bucket, &k, Bytes::from(body))).await.unwrap() }
    };

    // The first pass lists both sides and copies.
    for i in 0..30 {
        put(&a, &format!("page-{i}.html"), "a").await;
    }
    let first = pass(false).await;
    assert_eq!(first.listed, (true, true));
    assert_eq!(first.applied, 30);
    assert!(first.exact);

    // Nothing changed: no S3 request at all, whatever the number of objects.
    let before = requests();
    let again = pass(false).await;
    assert_eq!(again.listed, (false, false));
    assert_eq!(again.applied, 0);
    assert_eq!(requests() - before, 0, "a no-change run made S3 requests");

    // An agent pushes to side b and stamps it: only b is listed, the file reaches a.
    put(&b, "new.html", "b").await;
    let spot_b = Spot {
        deployment: &key.deployment,
        bucket: &key.bucket,
        endpoint: &key.side_b,
    };
    agent.left(spot_b, None).await.unwrap();
    let carried = pass(false).await;
    assert_eq!(carried.listed, (false, true));
    assert_eq!(carried.applied, 1);
    assert!(Box::pin(a.get(&bucket, "new.html")).await.unwrap().is_some());
    // The replicator's own stamp on a (by compare-and-set) is known as its own: quiet again.
    let before = requests();
    assert_eq!(pass(false).await.listed, (false, false));
    assert_eq!(requests() - before, 0);

    // A write that left no stamp (a tool outside Flotilla) is not seen until the full comparison.
    put(&a, "unstamped.html", "x").await;
    let missed = pass(false).await;
    assert_eq!(missed.listed, (false, false));
    assert!(
        Box::pin(b.get(&bucket, "unstamped.html"))
            .await
            .unwrap()
            .is_none()
    );
    let full = pass(true).await;
    assert_eq!(full.listed, (true, true));
    assert_eq!(full.applied, 1);
    assert!(
        Box::pin(b.get(&bucket, "unstamped.html"))
            .await
            .unwrap()
            .is_some()
    );

    // A stamp read, then another writer's stamp: compare-and-set on the one read fails, so a pass
    // never records itself exact at a stamp that hides somebody else's write.
    let seen = replicator.read(spot_b).await.unwrap();
    agent.left(spot_b, None).await.unwrap();
    assert_eq!(replicator.left(spot_b, Some(&seen)).await.unwrap(), None);
    let after = replicator.read(spot_b).await.unwrap();
    assert_ne!(after.id, seen.id);
    assert!(replicator.left(spot_b, Some(&after)).await.unwrap().is_some());
}
