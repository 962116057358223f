//! Sync under faults (three regions on three providers, one agent each, the replicator): a datastore down
//! while files are written, changed and deleted elsewhere loses nothing and catches up when it returns —
//! its region's files are never deleted while it cannot be listed; and a bucket emptied behind our back
//! (a broken endpoint listing nothing) never empties the other regions or a webroot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, write};
use flotilla_cloudsim::{Fault, FaultKind, Provider};
use flotilla_proto::AnyEvent;

async fn world() -> Harness {
    let mut h = Harness::start().await;
    h.start_replicator().await;
    for (region, machine) in [(0, "lon-ws-1"), (1, "ams-ws-1"), (2, "gva-ws-1")] {
        h.start_agent(region, machine).await;
    }
    let lon = h.webroot("lon-ws-1");
    write(&lon, "index.php", b"front page");
    write(&lon, "about.html", b"about v1");
    write(&lon, "old.html", b"to be deleted");
    for i in 0..20 {
        write(&lon, &format!("posts/{i}.html"), format!("post {i}").as_bytes());
    }
    h.until_all("the site", |t| t.len() == 23).await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_datastore_down_loses_nothing_and_catches_up_when_it_returns() {
    let mut h = world().await;
    let down = Fault {
        provider: Provider::DigitalOcean,
        kind: FaultKind::DatastoreDown {
            region: "ams3".into(),
        },
    };
    h.sim.add_fault(&down);
    let (lon, ams, gva) = (
        h.webroot("lon-ws-1"),
        h.webroot("ams-ws-1"),
        h.webroot("gva-ws-1"),
    );
    write(&lon, "news.html", b"news from london");
    write(&gva, "about.html", b"about v2, from geneva");
    std::fs::remove_file(lon.join("old.html")).unwrap();
    // Amsterdam's own change, made while its datastore is away.
    write(&ams, "ams.html", b"written in amsterdam during the outage");

    // London and Geneva converge without Amsterdam…
    let reached = |t: &std::collections::BTreeMap<String, Vec<u8>>| {
        t.get("news.html").is_some_and(|b| b == b"news from london")
            && t.get("about.html").is_some_and(|b| b == b"about v2, from geneva")
            && !t.contains_key("old.html")
    };
    let waited = tokio::time::timeout(common::PATIENCE, async {
        loop {
            if reached(&common::tree(&lon)) && reached(&common::tree(&gva)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{:#?}", common::summary(&h.trees()));
    // …and Amsterdam's webroot lost nothing and deleted nothing while it could not list its datastore.
    let t = common::tree(&ams);
    assert_eq!(
        t.get("old.html").map(Vec::as_slice),
        Some(b"to be deleted".as_slice())
    );
    assert!(t.contains_key("ams.html"));
    // The replicator's failed passes with Amsterdam are told (an event) and shown (its status).
    let ams_region = h.deployment.regions[1].name.clone();
    let told = |h: &Harness| {
        h.events().into_iter().any(|e| {
            matches!(e, AnyEvent::Sync(s)
            if s.origin == "replicator" && s.outcome == "failed" && s.region == ams_region
                && s.copied_count == 0 && !s.failed.is_empty())
        })
    };
    let waited = tokio::time::timeout(common::PATIENCE, async {
        while !told(&h) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "no failed pass with {ams_region} was announced");
    // And Amsterdam's agent's own.
    assert!(
        h.events().into_iter().any(|e| matches!(e, AnyEvent::Sync(s)
            if s.origin == "ams-ws-1" && s.outcome == "failed"
                && s.failed.iter().any(|f| f.starts_with("the pass: ")))),
        "the agent's failed pass was not announced"
    );
    // Shown once the run that made the pass has ended (its records are shared at the end of a run).
    let webroot_sync = h.deployment.bucket("webroot-sync");
    let mut shown = None;
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while tokio::time::Instant::now() < deadline {
        shown = h
            .show()
            .await
            .buckets
            .into_iter()
            .find(|b| b.region == ams_region && b.bucket == webroot_sync);
        if shown
            .as_ref()
            .is_some_and(|b| b.failed.iter().any(|f| f.starts_with("the pass: ")))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        shown
            .as_ref()
            .is_some_and(|b| b.failed.iter().any(|f| f.starts_with("the pass: "))),
        "the failed pass is not shown: {shown:#?}"
    );

    // Back: everything arrives everywhere, the deletion included, Amsterdam's own file too.
    h.sim.clear_faults(Some(Provider::DigitalOcean));
    h.until_all("the catch-up after the outage", |t| {
        reached(t)
            && t.get("ams.html")
                .is_some_and(|b| b == b"written in amsterdam during the outage")
    })
    .await;
    let trees = h.trees();
    let first = trees.values().next().unwrap();
    assert!(
        trees.values().all(|t| t == first),
        "{:#?}",
        common::summary(&trees)
    );

    h.stop_replicator().await;
    for m in ["lon-ws-1", "ams-ws-1", "gva-ws-1"] {
        h.stop_agent(m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucket_listing_nothing_never_empties_the_others() {
    let mut h = world().await;
    // Geneva's bucket is emptied behind our back (a broken endpoint, the wrong bucket…).
    let clouds = flotilla_clouds::Clouds::new(h.sim.cloud_settings(), None);
    let gva_store = clouds
        .datastores(&h.deployment.name, &h.deployment.regions[2])
        .unwrap()
        .primary()
        .clone();
    let bucket = h.deployment.bucket("webroot-sync");
    for o in Box::pin(gva_store.list(&bucket, "")).await.unwrap() {
        Box::pin(gva_store.delete(&bucket, &o.key)).await.unwrap();
    }
    // A run of the replicator and of Geneva's agent (a change elsewhere starts both).
    write(&h.webroot("lon-ws-1"), "later.html", b"later");
    h.until_all("a later change", |t| t.contains_key("later.html"))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Nothing was deleted anywhere: every webroot still has the whole site.
    for (m, t) in h.trees() {
        for key in ["index.php", "about.html", "old.html", "posts/19.html"] {
            assert!(t.contains_key(key), "{m} lost {key}: {:?}", t.keys());
        }
        assert_eq!(t.len(), 24, "{m}: {:?}", t.keys());
    }
    let held: Vec<String> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            AnyEvent::Sync(s) if !s.held_back.is_empty() => Some(s.held_back.join("; ")),
            _ => None,
        })
        .collect();
    // Said by whichever pass saw the emptied bucket first: the agent's (its bucket's stamp changed when
    // the later change arrived) or the replicator's (at its full comparison: the emptying left no stamp).
    assert!(
        held.iter().any(|h| h.contains("listing nothing by mistake")),
        "the guard said why: {held:?}"
    );
    // The dry run says the same, file by file, and changes nothing.
    let view: flotilla_proto::SyncDryRunView = flotilla_bus::api::request(
        &h.client,
        &flotilla_bus::subject::api("sync", "dry-run").unwrap(),
        &flotilla_proto::SyncDryRun {
            deployment: h.deployment.name.clone(),
        },
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let gva = &h.deployment.regions[2].name;
    let pass = view
        .passes
        .iter()
        .find(|p| p.bucket == bucket && &p.region == gva)
        .unwrap_or_else(|| panic!("{view:?}"));
    assert!(
        pass.lines.iter().any(|l| l.starts_with(&format!(
            "deletions on {} held back",
            h.deployment.regions[0].name
        ))),
        "{pass:?}"
    );
    let other = view
        .passes
        .iter()
        .find(|p| p.bucket == bucket && p.region == h.deployment.regions[1].name)
        .unwrap();
    assert!(other.lines.is_empty() && other.error.is_none(), "{other:?}");

    h.stop_replicator().await;
    for m in ["lon-ws-1", "ams-ws-1", "gva-ws-1"] {
        h.stop_agent(m).await;
    }
}
