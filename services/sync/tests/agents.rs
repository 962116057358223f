//! Webroots in step across three regions on three providers (the simulator's S3), two agents per region
//! and the replicator, all through a private NATS: a file written in one webroot appears in the five
//! others; a modification and a deletion likewise; excluded paths stay where they are; a conflicting edit
//! in two regions keeps both versions; a restarted agent catches up before it is ready; every change is
//! announced, its lag measured from the change itself; and the asset and multi-region buckets are kept
//! equal like the webroot's; an upload that landed though its answer was lost is no conflict.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, tree, write};
use flotilla_proto::AnyEvent;

const MACHINES: [(usize, &str); 6] = [
    (0, "lon-ws-1"),
    (0, "lon-ws-2"),
    (1, "ams-ws-1"),
    (1, "ams-ws-2"),
    (2, "gva-ws-1"),
    (2, "gva-ws-2"),
];

async fn world() -> Harness {
    let mut h = Harness::start().await;
    h.start_replicator().await;
    for (region, machine) in MACHINES {
        h.start_agent(region, machine).await;
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_in_one_webroot_reaches_every_other_region() {
    let mut h = world().await;
    let lon = h.webroot("lon-ws-1");
    let gva = h.webroot("gva-ws-2");

    // A new file, in a new directory (beside the site's front page).
    write(&lon, "index.php", b"<?php require 'blog/index.php';");
    write(&lon, "blog/index.php", b"<?php echo 'v1';");
    h.until_all("a new file", |t| {
        t.get("blog/index.php").map(Vec::as_slice) == Some(b"<?php echo 'v1';".as_slice())
    })
    .await;

    // A modification elsewhere.
    write(&gva, "blog/index.php", b"<?php echo 'version two';");
    h.until_all("a modification", |t| {
        t.get("blog/index.php").map(Vec::as_slice) == Some(b"<?php echo 'version two';".as_slice())
    })
    .await;

    // A deletion: gone from every webroot, its empty directory too.
    std::fs::remove_file(h.webroot("ams-ws-2").join("blog/index.php")).unwrap();
    h.until_all("a deletion", |t| !t.contains_key("blog/index.php"))
        .await;
    assert!(!lon.join("blog").exists(), "an emptied directory stays behind");

    // Excluded paths stay put: neither pushed nor deleted.
    write(&lon, "wp-config.php", b"secret config");
    write(&lon, "upload.tmp", b"half");
    write(&lon, "style.css", b"body{}");
    h.until_all("a file written after excluded ones", |t| {
        t.contains_key("style.css")
    })
    .await;
    for (m, t) in h.trees() {
        let mine = m == "lon-ws-1";
        assert_eq!(
            t.contains_key("wp-config.php"),
            mine,
            "{m}: the excluded configuration file"
        );
        assert_eq!(
            t.contains_key("upload.tmp"),
            mine,
            "{m}: an excluded temporary file"
        );
    }

    // Every change was announced: pushes by agents, replication by the replicator, pulls by agents.
    let events = h.events();
    let outcome = |o: &str| {
        events
            .iter()
            .filter(|e| matches!(e, AnyEvent::Sync(s) if s.outcome == o))
            .count()
    };
    assert!(outcome("pushed") >= 3, "pushes announced: {}", outcome("pushed"));
    assert!(
        outcome("replicated") >= 2,
        "replication announced: {}",
        outcome("replicated")
    );
    assert!(outcome("pulled") >= 5, "pulls announced: {}", outcome("pulled"));
    assert!(
        events.iter().any(|e| matches!(e, AnyEvent::Sync(s)
            if s.outcome == "pulled" && s.deleted.contains(&"blog/index.php".to_owned()))),
        "the deletion was announced by the agents applying it"
    );

    // The replicator's status knows every region and every agent.
    let view = h.show().await;
    let regions: std::collections::BTreeSet<&str> = view.buckets.iter().map(|b| b.region.as_str()).collect();
    assert_eq!(regions.len(), 2, "the two regions passed with the hub: {view:#?}");
    assert!(
        view.buckets
            .iter()
            .all(|b| b.last_full_pass.is_some() && b.failed.is_empty())
    );
    assert_eq!(view.agents.len(), 6, "{view:#?}");

    h.stop_replicator().await;
    for (_, m) in MACHINES {
        h.stop_agent(m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflicting_edit_keeps_both_versions_and_a_new_agent_catches_up_before_ready() {
    let mut h = Harness::start().await;
    h.start_replicator().await;
    for (region, machine) in [(0, "lon-ws-1"), (1, "ams-ws-1"), (2, "gva-ws-1")] {
        h.start_agent(region, machine).await;
    }
    write(&h.webroot("lon-ws-1"), "page.html", b"original");
    h.until_all("the original", |t| {
        t.get("page.html").map(Vec::as_slice) == Some(b"original".as_slice())
    })
    .await;

    // The replicator away, two regions edit the same page.
    h.stop_replicator().await;
    write(&h.webroot("ams-ws-1"), "page.html", b"amsterdam's edit");
    write(&h.webroot("gva-ws-1"), "page.html", b"geneva's edit, longer");
    // Each agent pushes its edit to its own region's datastore.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    h.start_replicator().await;

    // Converged: every webroot holds the same files, one version as the page and the other kept beside it.
    h.until_all("both versions", |t| {
        let versions: std::collections::BTreeSet<&[u8]> = t
            .iter()
            .filter(|(k, _)| k.starts_with("page.html"))
            .map(|(_, v)| v.as_slice())
            .collect();
        versions.contains(b"amsterdam's edit".as_slice())
            && versions.contains(b"geneva's edit, longer".as_slice())
    })
    .await;
    let trees = h.trees();
    let first = trees.values().next().unwrap();
    assert!(
        trees.values().all(|t| t == first),
        "{:#?}",
        common::summary(&trees)
    );
    assert!(
        first.keys().any(|k| k.starts_with("page.html.conflict-")),
        "{:?}",
        first.keys()
    );
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, AnyEvent::Sync(s) if s.conflicts.contains(&"page.html".to_owned()))),
        "the conflict was announced"
    );

    // A new agent in a region catches up before it says ready.
    h.start_agent(2, "gva-ws-9").await;
    assert_eq!(&tree(&h.webroot("gva-ws-9")), first, "caught up when ready");

    h.stop_replicator().await;
    for m in ["lon-ws-1", "ams-ws-1", "gva-ws-1", "gva-ws-9"] {
        h.stop_agent(m).await;
    }
}

/// The examples' shape: every region's datastore on one endpoint (one bucket, nothing to replicate). A push
/// there reaches the other regions' agents at once, not at their next resync (a minute here).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regions_sharing_one_datastore_see_each_others_changes_at_once() {
    let mut shared = common::deployment();
    let one = shared.regions[0].datastores.clone();
    for r in &mut shared.regions {
        r.datastores = one.clone();
    }
    let mut h = Harness::start_with(shared).await;
    h.start_agent(0, "lon-ws-1").await;
    h.start_agent(1, "ams-ws-1").await;
    h.start_agent(2, "gva-ws-1").await;
    // Within the harness's patience (30 s), shorter than the agents' resync (60 s).
    write(
        &h.webroot("ams-ws-1"),
        "news/today.html",
        b"<p>from Amsterdam</p>",
    );
    h.until_all("a file pushed to the shared datastore", |t| {
        t.get("news/today.html").map(Vec::as_slice) == Some(b"<p>from Amsterdam</p>".as_slice())
    })
    .await;
    for m in ["lon-ws-1", "ams-ws-1", "gva-ws-1"] {
        h.stop_agent(m).await;
    }
}

/// Two regions sharing an endpoint that is not the hub's: the replicator replicates that endpoint once,
/// under the first region's name. A change from the hub's region must still reach the second region's
/// agent at once (the event names the endpoints it changed), not at its next resync (a minute here).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replicated_change_reaches_every_region_sharing_the_endpoint() {
    let mut d = common::deployment();
    d.regions[2].datastores = d.regions[1].datastores.clone();
    let mut h = Harness::start_with(d).await;
    h.start_replicator().await;
    h.start_agent(0, "lon-ws-1").await;
    h.start_agent(1, "ams-ws-1").await;
    h.start_agent(2, "gva-ws-1").await;
    // Within the harness's patience (30 s), shorter than the agents' resync (60 s).
    write(&h.webroot("lon-ws-1"), "news/today.html", b"<p>from London</p>");
    h.until_all("a file replicated to the shared endpoint", |t| {
        t.get("news/today.html").map(Vec::as_slice) == Some(b"<p>from London</p>".as_slice())
    })
    .await;
    // And back: a change from the second region sharing the endpoint reaches the hub's region.
    write(
        &h.webroot("gva-ws-1"),
        "news/today.html",
        b"<p>from Geneva, later</p>",
    );
    h.until_all("a change pushed from the second sharing region", |t| {
        t.get("news/today.html").map(Vec::as_slice) == Some(b"<p>from Geneva, later</p>".as_slice())
    })
    .await;
    for m in ["lon-ws-1", "ams-ws-1", "gva-ws-1"] {
        h.stop_agent(m).await;
    }
}

/// Two replicas of the replicator: one runs the deployment (its lease), either answers `show` (the NATS
/// service API hands a request to any). Both answers hold every region's passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn either_replica_of_the_replicator_shows_the_passes() {
    let mut h = Harness::start().await;
    h.start_replicator().await;
    let second = h.start_replica("replicator-2").await;
    h.start_agent(0, "lon-ws-1").await;
    h.start_agent(1, "ams-ws-1").await;
    h.start_agent(2, "gva-ws-1").await;
    write(&h.webroot("lon-ws-1"), "index.html", b"<p>one site</p>");
    h.until_all("a file everywhere", |t| t.contains_key("index.html"))
        .await;
    // The records are written after each run: wait for the first, then ask often enough that both
    // replicas answer (each answer is a coin toss between them).
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while h.show().await.buckets.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no passes shown");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for i in 0..16 {
        let view = h.show().await;
        let regions: std::collections::BTreeSet<&str> =
            view.buckets.iter().map(|b| b.region.as_str()).collect();
        assert_eq!(regions.len(), 2, "answer {i}: {view:#?}");
        assert!(
            view.buckets.iter().all(|b| b.last_full_pass.is_some()),
            "answer {i}: {view:#?}"
        );
    }
    second.shutdown().await.unwrap();
    h.stop_replicator().await;
    for m in ["lon-ws-1", "ams-ws-1", "gva-ws-1"] {
        h.stop_agent(m).await;
    }
}

/// With a backup prefix, what a change overwrites or deletes in a region's datastore is kept there under
/// `<prefix><time>/<key>` first, and the kept copies are nobody's files: never replicated, never pulled into
/// a webroot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overwritten_and_deleted_objects_are_kept_under_the_backup_prefix() {
    const PREFIX: &str = ".flotilla-backup/";
    let mut h = Harness::start().await;
    h.backup_prefix = Some(PREFIX.into());
    h.start_replicator().await;
    h.start_agent(0, "lon-ws-1").await;
    h.start_agent(1, "ams-ws-1").await;
    let lon = h.webroot("lon-ws-1");
    write(&lon, "about.html", b"about v1");
    write(&lon, "old.html", b"to be deleted");
    h.until_all("the site", |t| t.len() == 2).await;

    write(&lon, "about.html", b"about, version two");
    std::fs::remove_file(lon.join("old.html")).unwrap();
    h.until_all("the change", |t| {
        t.get("about.html").map(Vec::as_slice) == Some(b"about, version two".as_slice())
            && !t.contains_key("old.html")
    })
    .await;

    // In Amsterdam's datastore (changed by the replicator): the old version and the deleted page, kept.
    let bucket = h.deployment.bucket("webroot-sync");
    let ams = h.datastore(1);
    let kept = tokio::time::timeout(common::PATIENCE, async {
        loop {
            let listed = Box::pin(ams.list(&bucket, PREFIX)).await.unwrap();
            let keys: Vec<String> = listed.into_iter().map(|o| o.key).collect();
            if keys.iter().any(|k| k.ends_with("/about.html"))
                && keys.iter().any(|k| k.ends_with("/old.html"))
            {
                return keys;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the overwritten and the deleted object kept under the prefix");
    for key in &kept {
        let body = Box::pin(ams.get(&bucket, key)).await.unwrap().unwrap();
        if key.ends_with("/about.html") {
            assert_eq!(body.as_ref(), b"about v1", "{key}");
        } else if key.ends_with("/old.html") {
            assert_eq!(body.as_ref(), b"to be deleted", "{key}");
        }
    }
    // Nobody's files: no webroot holds them, and another change still passes without carrying them.
    write(&lon, "news.html", b"news");
    h.until_all("a later change", |t| t.contains_key("news.html"))
        .await;
    for (machine, tree) in h.trees() {
        assert!(
            tree.keys().all(|k| !k.starts_with(PREFIX)),
            "{machine} holds kept copies: {:?}",
            tree.keys().collect::<Vec<_>>()
        );
    }
    h.stop_replicator().await;
    for m in ["lon-ws-1", "ams-ws-1"] {
        h.stop_agent(m).await;
    }
}

/// The lag of every hop is measured from the change itself — when the file changed in the webroot it was
/// written in, which every copy carries as object metadata — not from the hop before: with the replicator
/// away for three seconds after a change was pushed, the agent pulling it in another region shows at
/// least those three seconds (from the replicator's own copy it would show a fraction of a second), and
/// a file moved in with an old modification time counts from its move, not from that time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_is_measured_from_the_change_not_from_the_hop_before() {
    let mut h = Harness::start().await;
    for (region, machine) in [(0, "lon-ws-1"), (2, "gva-ws-1")] {
        h.start_agent(region, machine).await;
    }
    // Made a day ago elsewhere, then moved into the webroot whole (a rename keeps the time).
    let made = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    let outside = h.dir.path().join("made-earlier.html");
    std::fs::write(&outside, b"<p>a day old</p>").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&outside)
        .unwrap()
        .set_modified(made)
        .unwrap();
    std::fs::rename(&outside, h.webroot("lon-ws-1").join("old.html")).unwrap();
    h.event("the push", |e| match e {
        AnyEvent::Sync(s) if s.outcome == "pushed" && s.copied.contains(&"old.html".to_owned()) => Some(()),
        _ => None,
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    h.start_replicator().await;
    h.until_all("a file pushed while the replicator was away", |t| {
        t.contains_key("old.html")
    })
    .await;

    let mut view = h.show().await;
    for _ in 0..100 {
        if view
            .agents
            .iter()
            .any(|a| a.machine == "gva-ws-1" && a.lag_ms.is_some())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        view = h.show().await;
    }
    let gva = h.deployment.regions[2].name.clone();
    let pass = view
        .buckets
        .iter()
        .find(|b| b.region == gva && b.bucket.ends_with("webroot-sync"))
        .and_then(|b| b.lag_ms);
    let pulled = view
        .agents
        .iter()
        .find(|a| a.machine == "gva-ws-1")
        .and_then(|a| a.lag_ms);
    for (what, lag) in [("the pass", pass), ("gva-ws-1's pull", pulled)] {
        let lag = lag.unwrap_or_default();
        assert!(
            (3_000..60_000).contains(&lag),
            "{what}: lag {lag} ms, not from the change: {view:#?}"
        );
    }
    for m in ["lon-ws-1", "gva-ws-1"] {
        h.stop_agent(m).await;
    }
}

/// The buckets beside the webroot's: a region persisting its assets to the datastore gets one bucket per
/// mounted directory (`<site>-assets-<dir>`), and every deployment the multi-region bucket; the replicator
/// keeps each equal across the regions' datastores on three providers like the webroot's — an object
/// written in any region reaches the others, a deletion follows — when a replication run is asked for
/// (these buckets are written through mounts and scripts, which announce nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn asset_and_multi_region_buckets_are_kept_equal_across_regions() {
    let mut d = common::deployment();
    d.regions[1].persist_assets = true;
    d.regions[1].directories_to_mount = vec!["wp-content/uploads".into()];
    let mut h = Harness::start_with(d).await;
    let assets = h.deployment.bucket("assets-wp-content-uploads");
    let multi = h.deployment.bucket("multi-region");
    let buckets = flotilla_sync::replicator::buckets(&h.deployment);
    assert!(
        buckets.contains(&assets) && buckets.contains(&multi),
        "{buckets:?}"
    );
    h.start_replicator().await;
    let stores: Vec<_> = (0..3).map(|i| h.datastore(i)).collect();
    let run = || flotilla_proto::ReconcileSync {
        meta: flotilla_proto::CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: h.deployment.regions[0].name.clone(),
    };
    let everywhere = |bucket: String, key: &'static str, there: bool| {
        let stores = stores.clone();
        async move {
            tokio::time::timeout(common::PATIENCE, async {
                loop {
                    let mut all = true;
                    for s in &stores {
                        all &= s.get(&bucket, key).await.ok().flatten().is_some() == there;
                    }
                    if all {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{bucket}/{key} present {there} everywhere: never"));
        }
    };
    // An upload in Amsterdam, a marker in Geneva, once the replicator has made the buckets.
    let put = |store: usize, bucket: String, key: &'static str, body: &'static str| {
        let store = stores[store].clone();
        async move {
            tokio::time::timeout(common::PATIENCE, async {
                while store.put(&bucket, key, body.into()).await.is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{bucket}: never made"));
        }
    };
    put(1, assets.clone(), "2026/12/cat.jpg", "jpeg").await;
    put(1, assets.clone(), "2026/12/dog.jpg", "jpeg too").await;
    put(2, multi.clone(), "markers/ch-gva-2", "up").await;
    h.command(&run()).await;
    everywhere(assets.clone(), "2026/12/cat.jpg", true).await;
    everywhere(multi.clone(), "markers/ch-gva-2", true).await;
    for s in &stores {
        assert_eq!(
            s.get(&assets, "2026/12/cat.jpg").await.unwrap().as_deref(),
            Some(&b"jpeg"[..])
        );
    }
    // A deletion in London (the hub) reaches the others. (Not of the last object: an empty listing is
    // never believed, see `plan::guard`.)
    everywhere(assets.clone(), "2026/12/dog.jpg", true).await;
    stores[0].delete(&assets, "2026/12/cat.jpg").await.unwrap();
    h.command(&run()).await;
    everywhere(assets.clone(), "2026/12/cat.jpg", false).await;
    everywhere(assets, "2026/12/dog.jpg", true).await;
    h.stop_replicator().await;
}

/// An upload whose write landed though its answer was lost (chaos seed 1 `datastore-down`: the endpoint
/// closed the connection after storing the object): the agent's base still holds the old version, and
/// both the file and the object have changed since — to the same bytes, at different times. That is in
/// step, not a conflict: no `.conflict-` copy anywhere, one version of the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_that_landed_though_its_answer_was_lost_is_no_conflict() {
    let mut h = Harness::start().await;
    h.start_agent(0, "lon-ws-1").await;
    let root = h.webroot("lon-ws-1");
    let bucket = h.deployment.bucket("webroot-sync");
    let store = h.datastore(0);
    write(&root, "page.html", b"the first version");
    let pushed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if let Ok(Some(body)) = Box::pin(store.get(&bucket, "page.html")).await
                && body.as_ref() == b"the first version"
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(pushed.is_ok(), "the first version never reached the bucket");
    // The pass that pushed it records its base as it ends; a graceful stop lets it finish.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    h.stop_agent("lon-ws-1").await;

    // The second version written here, and its upload landing without the agent hearing of it.
    let second: &[u8] = b"the second version, the same on both sides";
    write(&root, "page.html", second);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    store
        .put(&bucket, "page.html", bytes::Bytes::from_static(second))
        .await
        .unwrap();
    // Started again: ready once caught up (a pass made).
    h.start_agent(0, "lon-ws-1").await;
    let files = tree(&root);
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["page.html"],
        "no conflict copy in the webroot"
    );
    assert_eq!(files["page.html"], second);
    let keys: Vec<String> = store
        .list(&bucket, "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["page.html"], "no conflict copy in the bucket");
    h.stop_agent("lon-ws-1").await;
}
