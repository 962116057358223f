//! Replication passes between two regions' datastores on two providers (the simulator's Linode and
//! DigitalOcean S3, real S3 protocol): a first pass merges, a change and a deletion follow, a conflict
//! keeps the loser, a large object is copied part by part, an empty side is never propagated as
//! deletions, a dry run changes nothing, and a pass after a pass changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use flotilla_datastore::{Datastore, MIN_PART_SIZE};
use flotilla_integration_tests::{TestDb, sim, unique};
use flotilla_sync::plan::Rules;
use flotilla_sync::replicate::{Known, Pair};
use flotilla_sync::store::{PairKey, SyncStore, migrations};

// The SDK's futures are large: each call is boxed so that the test's own future stays small.

async fn store() -> (TestDb, SyncStore) {
    let db = TestDb::sqlite().await;
    let (sqlite, postgres) = migrations();
    db.store.migrate_with(sqlite, postgres).await.unwrap();
    let store = SyncStore::new(db.store.clone());
    (db, store)
}

async fn keys(d: &Datastore, bucket: &str) -> Vec<String> {
    Box::pin(d.list(bucket, ""))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

async fn body(d: &Datastore, bucket: &str, key: &str) -> Option<Bytes> {
    Box::pin(d.get(bucket, key)).await.unwrap()
}

async fn put(d: &Datastore, bucket: &str, key: &str, body: impl Into<Bytes>) {
    Box::pin(d.put(bucket, key, body.into())).await.unwrap();
}

async fn delete(d: &Datastore, bucket: &str, key: &str) {
    Box::pin(d.delete(bucket, key)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_keep_two_providers_datastores_in_step() {
    let sim = sim::simulator(Duration::from_millis(10), Duration::from_millis(10)).await;
    let clouds = flotilla_clouds::Clouds::new(sim.cloud_settings(), None);
    let mut d = flotilla_integration_tests::templates::seed_import().deployment;
    d.regions[1].datastores[0].host_base = "ams3.digitaloceanspaces.com".into();
    let a = clouds
        .datastores(&d.name, &d.regions[0])
        .unwrap()
        .primary()
        .clone();
    let b = clouds
        .datastores(&d.name, &d.regions[1])
        .unwrap()
        .primary()
        .clone();
    let bucket = unique("www-example-com-webroot-sync");
    Box::pin(a.ensure_bucket(&bucket)).await.unwrap();
    Box::pin(b.ensure_bucket(&bucket)).await.unwrap();
    let (_db, store) = store().await;
    let key = PairKey {
        deployment: d.name.clone(),
        bucket: bucket.clone(),
        side_a: "a".into(),
        side_b: "b".into(),
    };
    let pair = Pair {
        a: &a,
        b: &b,
        bucket: &bucket,
    };
    let rules = Rules::default();

    // First pass: a merge.
    put(&a, &bucket, "index.php", "a1").await;
    put(&a, &bucket, "gone-soon.css", "x").await;
    put(&b, &bucket, "images/logo.png", "png").await;
    let first = pair
        .pass(&store, &key, Known::default(), &rules, MIN_PART_SIZE, false)
        .await
        .unwrap();
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert_eq!(keys(&a, &bucket).await, keys(&b, &bucket).await);
    // Again: nothing to do (the copies' own times are in the base).
    let again = pair
        .pass(&store, &key, Known::default(), &rules, MIN_PART_SIZE, false)
        .await
        .unwrap();
    assert!(again.is_quiet(), "{:?}", again.plan.describe());

    // A change on b and a deletion on a follow; a dry run first changes nothing.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&b, &bucket, "index.php", "b2").await;
    delete(&a, &bucket, "gone-soon.css").await;
    let dry = pair
        .pass(&store, &key, Known::default(), &rules, MIN_PART_SIZE, true)
        .await
        .unwrap();
    assert_eq!(
        dry.plan.describe(),
        ["copy index.php b → a", "delete gone-soon.css on b"]
    );
    assert_eq!(body(&a, &bucket, "index.php").await.as_deref(), Some(&b"a1"[..]));
    let pass = pair
        .pass(&store, &key, Known::default(), &rules, MIN_PART_SIZE, false)
        .await
        .unwrap();
    assert_eq!((pass.applied, pass.failures), (2, 0), "{:?}", pass.failed);
    assert_eq!(body(&a, &bucket, "index.php").await.as_deref(), Some(&b"b2"[..]));
    assert_eq!(body(&b, &bucket, "gone-soon.css").await, None);

    // Changed on both sides: the newer (b's) wins, a's is kept beside it, on both sides after a pass.
    // (A second after the last write: object stores keep times to the second, and a change of the same
    // size within the second of the last write cannot be told by size and time — checksums are for that.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&a, &bucket, "index.php", "a3").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&b, &bucket, "index.php", "b3").await;
    let pass = pair
        .pass(&store, &key, Known::default(), &rules, MIN_PART_SIZE, false)
        .await
        .unwrap();
    assert_eq!(pass.plan.conflicts, ["index.php"]);
    assert_eq!(body(&a, &bucket, "index.php").await.as_deref(), Some(&b"b3"[..]));
    let kept: Vec<String> = keys(&a, &bucket)
        .await
        .into_iter()
        .filter(|k| k.starts_with("index.php.conflict-a-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(body(&a, &bucket, &kept[0]).await.as_deref(), Some(&b"a3"[..]));
    let pass = pair
        .pass(&store, &key, Known::default(), &rules, MIN_PART_SIZE, false)
        .await
        .unwrap();
    assert_eq!(pass.copied_to.1.keys, [kept[0].clone()]);
    assert_eq!(body(&b, &bucket, &kept[0]).await.as_deref(), Some(&b"a3"[..]));

    // A large object goes part by part.
    let big: Vec<u8> = (0..(11 * 1024 * 1024)).map(|i: usize| (i % 253) as u8).collect();
    put(&a, &bucket, "assets/big.bin", big.clone()).await;
    let pass = pair
        .pass(&store, &key, Known::default(), &rules, MIN_PART_SIZE, false)
        .await
        .unwrap();
    assert!(pass.failed.is_empty(), "{:?}", pass.failed);
    assert_eq!(body(&b, &bucket, "assets/big.bin").await.unwrap()[..], big[..]);

    // b's bucket emptied (a broken endpoint listing nothing, or a wipe): nothing is deleted on a, and the
    // new base keeps those objects' old entries, so the deletions stay held back pass after pass.
    for k in keys(&b, &bucket).await {
        delete(&b, &bucket, &k).await;
    }
    let before = keys(&a, &bucket).await;
    let pass = pair
        .pass(&store, &key, Known::default(), &rules, MIN_PART_SIZE, false)
        .await
        .unwrap();
    assert_eq!(pass.plan.held_back.len(), 1, "{:?}", pass.plan);
    assert_eq!(keys(&a, &bucket).await, before);
    let again = pair
        .pass(&store, &key, Known::default(), &rules, MIN_PART_SIZE, false)
        .await
        .unwrap();
    assert_eq!(again.plan.held_back.len(), 1, "{:?}", again.plan);
    assert!(again.plan.actions.is_empty(), "{:?}", again.plan);
    assert_eq!(keys(&a, &bucket).await, before);
    sim.shutdown().await;
}

/// Compared by checksum (the listings' entity tags): the same content written again with a new time is no
/// change; different content of the same size written within the same second is one; two sides holding
/// the same content at different times need no copy on a first pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_pass_copies_content_not_times() {
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
    let bucket = unique("www-example-com-webroot-sync");
    Box::pin(a.ensure_bucket(&bucket)).await.unwrap();
    Box::pin(b.ensure_bucket(&bucket)).await.unwrap();
    let (_db, store) = store().await;
    let key = PairKey {
        deployment: d.name.clone(),
        bucket: bucket.clone(),
        side_a: "a".into(),
        side_b: "b".into(),
    };
    let pair = Pair {
        a: &a,
        b: &b,
        bucket: &bucket,
    };
    let rules = Rules {
        compare: flotilla_sync::plan::Compare::Checksum,
        ..Rules::default()
    };
    let pass = || {
        let (pair, rules, store, key) = (&pair, &rules, &store, &key);
        async move {
            let report = pair
                .pass(store, key, Known::default(), rules, MIN_PART_SIZE, false)
                .await
                .unwrap();
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            report
        }
    };

    // Same content on both sides, written at different times: nothing to copy.
    put(&a, &bucket, "same.html", "same").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&b, &bucket, "same.html", "same").await;
    put(&a, &bucket, "index.php", "v1").await;
    let first = pass().await;
    assert_eq!(first.applied, 1, "{:?}", first.plan);
    let base = store.base(&key).await.unwrap().unwrap();
    assert!(base.a.values().all(|e| e.checksum.is_some()), "{base:?}");

    // Written again with the same bytes (a new time): no change.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&a, &bucket, "index.php", "v1").await;
    let again = pass().await;
    assert!(again.is_quiet(), "{:?}", again.plan);
    // Other bytes of the same size: a change, carried.
    put(&a, &bucket, "index.php", "v2").await;
    let changed = pass().await;
    assert_eq!(changed.applied, 1, "{:?}", changed.plan);
    assert_eq!(body(&b, &bucket, "index.php").await.unwrap(), "v2");
    sim.shutdown().await;
}

/// Datastores of the seed's first two regions (the simulator's Linode and DigitalOcean S3) listing
/// `page` objects at a time: with a page of a few objects, a pass runs in many chunks.
fn paged_stores(
    sim: &flotilla_cloudsim::RunningSim,
    d: &flotilla_spec::Deployment,
    page: i32,
) -> (Datastore, Datastore) {
    let store = |i: usize, provider, region: &str| {
        let s3 = sim.s3_endpoint(provider, region).unwrap();
        let options = flotilla_datastore::DatastoreOptions {
            list_page_size: page,
            ..flotilla_datastore::DatastoreOptions::default()
        }
        .with_override(0, s3.url.clone());
        let secrets = flotilla_spec::RegionSecrets {
            datastores: vec![flotilla_spec::DatastoreCredentials {
                access_key: flotilla_spec::Secret::new(s3.access_key.clone()),
                secret_key: flotilla_spec::Secret::new(s3.secret_key.clone()),
            }],
            ..flotilla_spec::RegionSecrets::default()
        };
        flotilla_datastore::DatastoreSet::from_region_with(&d.regions[i], &secrets, &options)
            .unwrap()
            .primary()
            .clone()
    };
    (
        store(0, flotilla_cloudsim::Provider::Linode, "gb-lon-1"),
        store(1, flotilla_cloudsim::Provider::DigitalOcean, "ams3"),
    )
}

/// A pass made of many chunks (listings and the base read three objects at a time, the sides' keys
/// interleaved so that chunks end in different places on each side) does what one whole pass does: new
/// objects, changes and deletions on either side, in every chunk, reach the other; nothing else moves;
/// the guard still sees the whole pass (a side emptied is never propagated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_in_many_chunks_is_one_pass() {
    let sim = sim::simulator(Duration::from_millis(10), Duration::from_millis(10)).await;
    let mut d = flotilla_integration_tests::templates::seed_import().deployment;
    d.regions[1].datastores[0].host_base = "ams3.digitaloceanspaces.com".into();
    let (a, b) = paged_stores(&sim, &d, 3);
    let bucket = unique("www-example-com-webroot-sync");
    Box::pin(a.ensure_bucket(&bucket)).await.unwrap();
    Box::pin(b.ensure_bucket(&bucket)).await.unwrap();
    let (_db, store) = store().await;
    let key = PairKey {
        deployment: d.name.clone(),
        bucket: bucket.clone(),
        side_a: "a".into(),
        side_b: "b".into(),
    };
    let pair = Pair {
        a: &a,
        b: &b,
        bucket: &bucket,
    };
    let rules = Rules::default();
    let pass = || {
        let (pair, rules, store, key) = (&pair, &rules, &store, &key);
        async move {
            let report = pair
                .pass(store, key, Known::default(), rules, MIN_PART_SIZE, false)
                .await
                .unwrap();
            assert_eq!(report.failures, 0, "{:?}", report.failed);
            report
        }
    };
    // Even keys on a, odd ones on b, in several directories (`d-1` sorts before `d/…`).
    let name = |i: usize| match i % 3 {
        0 => format!("d/{i:02}.html"),
        1 => format!("d-1/{i:02}.html"),
        _ => format!("{i:02}.html"),
    };
    for i in 0..30 {
        let side = if i % 2 == 0 { &a } else { &b };
        put(side, &bucket, &name(i), format!("v1-{i}")).await;
    }
    let first = pass().await;
    assert_eq!(first.applied, 30);
    assert_eq!(keys(&a, &bucket).await.len(), 30);
    assert_eq!(keys(&a, &bucket).await, keys(&b, &bucket).await);
    assert!(pass().await.is_quiet());

    // Changes spread over every chunk: on a, keys 0, 5, 10…; deletions on b, keys 3, 8, 13…; new keys
    // on both.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in (0..30).step_by(5) {
        put(&a, &bucket, &name(i), format!("v2-{i}")).await;
    }
    for i in (3..30).step_by(5) {
        delete(&b, &bucket, &name(i)).await;
    }
    for i in 30..36 {
        let side = if i % 2 == 0 { &b } else { &a };
        put(side, &bucket, &name(i), format!("v1-{i}")).await;
    }
    let second = pass().await;
    assert_eq!(second.copied_to.1.count, 6 + 3, "{:?}", second.plan);
    assert_eq!(second.copied_to.0.count, 3, "{:?}", second.plan);
    assert_eq!(second.deleted_on.0.count, 6, "{:?}", second.plan);
    assert_eq!(keys(&a, &bucket).await, keys(&b, &bucket).await);
    assert_eq!(keys(&a, &bucket).await.len(), 30);
    for i in (0..30).step_by(5) {
        assert_eq!(body(&b, &bucket, &name(i)).await.unwrap(), format!("v2-{i}"));
    }
    assert!(pass().await.is_quiet());

    // b emptied: the whole pass's guard holds back every deletion, in every chunk.
    for k in keys(&b, &bucket).await {
        delete(&b, &bucket, &k).await;
    }
    let held = pass().await;
    assert_eq!(held.withheld, 30, "{:?}", held.plan);
    assert_eq!(held.plan.held_back.len(), 1);
    assert_eq!(keys(&a, &bucket).await.len(), 30);
    sim.shutdown().await;
}
