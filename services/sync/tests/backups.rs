//! Webroot backups across three providers: a backup lands on every datastore; an endpoint down during it
//! is filled in from the durable queue when it returns; a redelivered command writes no second archive;
//! a restore reads the datastores themselves, skips a corrupted copy by its checksum, and takes the
//! backup from the second provider when the first is gone — the restored files reach every webroot;
//! retention keeps the newest complete backups, so an endpoint missing a new one keeps its old one; two
//! backups asked for within a second are two archives; scheduled backups are taken when due, once each;
//! one backup built by several deliveries at once is one archive everywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Harness, write};
use flotilla_cloudsim::{Fault, FaultKind, Provider};
use flotilla_proto::{AnyEvent, BackupWritten, CommandMeta, RestoreBackup, TakeBackup};

fn backup_event(h: &Harness, outcome: &'static str) -> impl Fn(&AnyEvent) -> Option<BackupWritten> + use<> {
    let name = h.deployment.name.clone();
    move |e| match e {
        AnyEvent::Backup(b) if b.deployment == name && b.outcome == outcome => Some(b.clone()),
        _ => None,
    }
}

/// A migrated SQLite database holding the sync service's tables (one per test, shared by its replicas).
async fn sync_db() -> flotilla_integration_tests::TestDb {
    let db = flotilla_integration_tests::TestDb::sqlite().await;
    let (sqlite, postgres) = flotilla_sync::store::migrations();
    db.store.migrate_with(sqlite, postgres).await.unwrap();
    db
}

/// A replica's backups, with `settings`, the database `db` and a work directory of its own (`<name>-work`).
fn replica(
    h: &Harness,
    name: &str,
    settings: flotilla_sync::settings::Settings,
    db: &flotilla_store::Store,
) -> flotilla_sync::backup::Backups {
    replica_in(h, name, settings, db, h.dir.path().join(format!("{name}-work")))
}

/// [`replica`] with its work directory at `dir`.
fn replica_in(
    h: &Harness,
    name: &str,
    settings: flotilla_sync::settings::Settings,
    db: &flotilla_store::Store,
    dir: std::path::PathBuf,
) -> flotilla_sync::backup::Backups {
    flotilla_sync::backup::Backups::new(
        settings,
        flotilla_clouds::Clouds::new(h.sim.cloud_settings(), None),
        flotilla_sync::store::SyncStore::new(db.clone()),
        flotilla_bus::Publisher::new(h.client.clone(), flotilla_bus::PublishConfig::default()),
        dir,
        std::sync::Arc::new(flotilla_sync::stamps::StampSource::new(
            h.topology.clone(),
            flotilla_bus::TopologyConfig::default(),
            name,
        )),
    )
}

/// The site in the home region's webroot-sync bucket (what an archive is made of): one front page; the
/// home region's datastore.
async fn site(h: &Harness) -> flotilla_datastore::Datastore {
    let home = h.datastore(0);
    let bucket = h.deployment.bucket("webroot-sync");
    home.ensure_bucket(&bucket).await.unwrap();
    home.put(
        &bucket,
        "index.php",
        Bytes::from_static(b"<?php // the front page"),
    )
    .await
    .unwrap();
    home
}

/// Waits until `check` holds (looked at every 50 ms); fails, saying `what`, after [`common::PATIENCE`].
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let waited = tokio::time::timeout(common::PATIENCE, async {
        while !check().await {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}");
}

/// The SQLite pool of a test database (to change its rows behind the service's back).
fn sqlite(db: &flotilla_integration_tests::TestDb) -> &sqlx::SqlitePool {
    let flotilla_store::Store::Sqlite(pool) = &db.store else {
        panic!("a SQLite test database")
    };
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_reach_every_provider_and_restore_from_the_one_that_still_has_a_good_copy() {
    let mut h = Harness::start().await;
    h.start_replicator().await;
    h.start_agent(0, "lon-ws-1").await;
    h.start_agent(1, "ams-ws-1").await;
    let lon = h.webroot("lon-ws-1");
    write(&lon, "index.php", b"<?php // the front page");
    write(&lon, "images/logo.svg", b"<svg/>");
    h.until_all("the site", |t| t.len() == 2).await;
    let (lon_region, ams_region) = (
        h.deployment.regions[0].name.clone(),
        h.deployment.regions[1].name.clone(),
    );

    // DigitalOcean's datastore is down while the backup is taken.
    h.sim.add_fault(&Fault {
        provider: Provider::DigitalOcean,
        kind: FaultKind::DatastoreDown {
            region: "ams3".into(),
        },
    });
    let cmd = TakeBackup {
        meta: CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: lon_region.clone(),
        period: "manual".into(),
    };
    h.command(&cmd).await;
    let first = h
        .event("an incomplete backup", backup_event(&h, "incomplete"))
        .await;
    assert_eq!(first.written.len(), 2, "{first:?}");
    assert!(
        first.missing.iter().any(|m| m.starts_with("digitalocean:")),
        "{first:?}"
    );
    for region in [0, 2] {
        let d = h.datastore(region);
        let body = Box::pin(d.get(&first.bucket, &first.key)).await.unwrap().unwrap();
        assert_eq!(body.len() as u64, first.size);
        let sum = Box::pin(d.get(&first.bucket, &format!("{}.sha256", first.key)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&sum).trim(), first.checksum);
    }

    // Back: filled in from the queue, without a new command.
    h.sim.clear_faults(Some(Provider::DigitalOcean));
    let filled = h.event("the backup filled in", backup_event(&h, "filled")).await;
    assert_eq!(filled.key, first.key);
    assert_eq!(filled.written.len(), 3, "{filled:?}");
    let ams = h.datastore(1);
    assert_eq!(
        Box::pin(ams.get(&first.bucket, &first.key))
            .await
            .unwrap()
            .map(|b| b.len() as u64),
        Some(first.size)
    );

    // The same command again (redelivered after the stream's de-duplication window): no second archive.
    let replicator = h.replicator.take().unwrap();
    replicator.shutdown().await.unwrap();
    h.start_replicator().await;
    h.command(&TakeBackup {
        meta: CommandMeta {
            id: cmd.meta.id,
            ..CommandMeta::new("test")
        },
        ..cmd.clone()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let v = h.show().await;
    assert_eq!(v.backups.len(), 1, "{:?}", v.backups);
    assert!(
        v.backups[0].missing.is_empty() && v.backups[0].written.len() == 3,
        "{:?}",
        v.backups
    );

    // Loss: a page deleted (everywhere), the copy on Exoscale corrupted, Linode's datastore gone.
    std::fs::remove_file(h.webroot("ams-ws-1").join("images/logo.svg")).unwrap();
    h.until_all("the deletion", |t| !t.contains_key("images/logo.svg"))
        .await;
    let exo = h.datastore(2);
    Box::pin(exo.put(&first.bucket, &first.key, Bytes::from_static(b"not a tarball")))
        .await
        .unwrap();
    h.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::DatastoreDown {
            region: "gb-lon-1".into(),
        },
    });

    // Only from Exoscale: its copy is corrupted, so there is nothing good to restore.
    h.command(&RestoreBackup {
        meta: CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: ams_region.clone(),
        from: Some("exoscale".into()),
        at: None,
    })
    .await;
    let refused = h.event("a refused restore", backup_event(&h, "failed")).await;
    assert!(refused.message.contains("checksum"), "{}", refused.message);

    // From anywhere: DigitalOcean's good copy.
    h.command(&RestoreBackup {
        meta: CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: ams_region.clone(),
        from: None,
        at: None,
    })
    .await;
    let restored = h.event("a restore", backup_event(&h, "restored")).await;
    assert_eq!(
        restored.written,
        ["digitalocean:ams3.digitaloceanspaces.com"],
        "{restored:?}"
    );
    assert_eq!(restored.checksum, first.checksum);
    let ams_root = h.webroot("ams-ws-1");
    until("the restored file never reached the webroot", async || {
        std::fs::read(ams_root.join("images/logo.svg")).ok().as_deref() == Some(b"<svg/>".as_slice())
    })
    .await;

    h.sim.clear_faults(None);
    h.stop_replicator().await;
    h.stop_agent("lon-ws-1").await;
    h.stop_agent("ams-ws-1").await;
}

/// Retention keeps the newest complete backups of a period (written to every endpoint): one missing
/// somewhere does not count, so no endpoint is left without its `keep` good copies; once newer ones are
/// complete, the older go everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_keeps_the_newest_complete_backups_and_never_empties_an_endpoint() {
    let mut h = Harness::start().await;
    h.start_replicator_keeping("manual", 1).await;
    h.start_agent(0, "lon-ws-1").await;
    write(&h.webroot("lon-ws-1"), "index.php", b"<?php // the front page");
    let (lon_store, bucket) = (h.datastore(0), h.deployment.bucket("webroot-sync"));
    until("the page never pushed", async || {
        Box::pin(lon_store.get(&bucket, "index.php"))
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let take = || TakeBackup {
        meta: CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: h.deployment.regions[0].name.clone(),
        period: "manual".into(),
    };
    let name = h.deployment.name.clone();
    let newer_than = move |outcome: &'static str, seen: Vec<String>| {
        let name = name.clone();
        move |e: &AnyEvent| match e {
            AnyEvent::Backup(b) if b.deployment == name && b.outcome == outcome && !seen.contains(&b.key) => {
                Some(b.clone())
            }
            _ => None,
        }
    };
    let present = |h: &Harness, region: usize, b: &BackupWritten| {
        let d = h.datastore(region);
        let (bucket, key) = (b.bucket.clone(), b.key.clone());
        async move { Box::pin(d.get(&bucket, &key)).await.unwrap().is_some() }
    };

    h.command(&take()).await;
    let a = h.event("backup A", newer_than("written", vec![])).await;

    // B while DigitalOcean's datastore is down: incomplete, so A stays everywhere (the only complete one).
    let down = Fault {
        provider: Provider::DigitalOcean,
        kind: FaultKind::DatastoreDown {
            region: "ams3".into(),
        },
    };
    h.sim.add_fault(&down);
    h.command(&take()).await;
    let b = h
        .event(
            "backup B, incomplete",
            newer_than("incomplete", vec![a.key.clone()]),
        )
        .await;
    assert_ne!(a.key, b.key, "two backups, two archives");
    for region in [0, 2] {
        assert!(
            present(&h, region, &a).await,
            "A deleted in region {region} while B is incomplete"
        );
        assert!(present(&h, region, &b).await);
    }
    h.sim.clear_faults(Some(Provider::DigitalOcean));
    h.event("backup B filled in", newer_than("filled", vec![a.key.clone()]))
        .await;
    assert!(present(&h, 1, &a).await, "A deleted on DigitalOcean");

    // C complete: with B complete too, only C is kept, everywhere.
    h.command(&take()).await;
    let c = h
        .event("backup C", newer_than("written", vec![a.key.clone()]))
        .await;
    for region in 0..3 {
        assert!(present(&h, region, &c).await, "C missing in region {region}");
        assert!(!present(&h, region, &a).await, "A kept in region {region}");
        assert!(!present(&h, region, &b).await, "B kept in region {region}");
    }
    // Each deletion told, naming every datastore.
    for gone in [&a, &b] {
        let key = gone.key.clone();
        let name = h.deployment.name.clone();
        let expired = h
            .event("an expiry", move |e| match e {
                AnyEvent::Backup(x) if x.deployment == name && x.outcome == "expired" && x.key == key => {
                    Some(x.clone())
                }
                _ => None,
            })
            .await;
        assert_eq!(expired.written.len(), 3, "{expired:?}");
    }
    h.stop_replicator().await;
    h.stop_agent("lon-ws-1").await;
}

/// `restore --at TIME` takes the newest backup taken by then, not the newest of all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_at_a_time_takes_the_newest_backup_taken_by_then() {
    let mut h = Harness::start().await;
    h.start_replicator().await;
    h.start_agent(0, "lon-ws-1").await;
    let lon = h.webroot("lon-ws-1");
    // A backup archives the region's datastore: each version is waited for there (pushed), not in the
    // webroot where it was written.
    let bucket = h.deployment.bucket("webroot-sync");
    let pushed = |h: &Harness, body: &'static [u8]| {
        let (d, bucket) = (h.datastore(0), bucket.clone());
        async move {
            let what = format!("{} never pushed", String::from_utf8_lossy(body));
            until(&what, async || {
                Box::pin(d.get(&bucket, "index.php")).await.unwrap().as_deref() == Some(body)
            })
            .await;
        }
    };
    write(&lon, "index.php", b"version one");
    pushed(&h, b"version one").await;
    let take = || TakeBackup {
        meta: CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: h.deployment.regions[0].name.clone(),
        period: "manual".into(),
    };
    h.command(&take()).await;
    let first = h.event("the first backup", backup_event(&h, "written")).await;
    // The archives' keys carry their time to the second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    write(&lon, "index.php", b"version two, later");
    pushed(&h, b"version two, later").await;
    h.command(&take()).await;
    let first_key = first.key.clone();
    let name = h.deployment.name.clone();
    let second = h
        .event("the second backup", move |e| match e {
            AnyEvent::Backup(b) if b.deployment == name && b.outcome == "written" && b.key != first_key => {
                Some(b.clone())
            }
            _ => None,
        })
        .await;
    assert_ne!(first.checksum, second.checksum);
    let taken = |key: &str| {
        let stamp = key.strip_prefix("webroot-").and_then(|k| k.get(..16)).unwrap();
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc()
    };
    assert!(taken(&first.key) < taken(&second.key));

    h.command(&RestoreBackup {
        meta: CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: h.deployment.regions[0].name.clone(),
        from: None,
        at: Some(taken(&first.key)),
    })
    .await;
    let restored = h.event("a restore", backup_event(&h, "restored")).await;
    assert_eq!(restored.checksum, first.checksum, "{restored:?}");
    h.until_all("the first version back", |t| {
        t.get("index.php").map(Vec::as_slice) == Some(b"version one".as_slice())
    })
    .await;
    h.stop_replicator().await;
    h.stop_agent("lon-ws-1").await;
}

/// Scheduled backups, as the original toolkit's crontab places them, asked at chosen times (the
/// replicator asks at the real time, and runs again at the next slot the answer names): at 02:35 on
/// Sunday 1 November the daily backup is due and taken, once, on every datastore, into the period's own
/// bucket; asked again at the same time (a redelivery, another replica, a restart) nothing is taken
/// twice; at 03:03 the hourly one, at 03:31 the weekly one — and the hourly one is not taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_backups_are_taken_when_due_once_each_on_every_datastore() {
    use chrono::TimeZone;
    let h = Harness::start().await;
    let d = h.deployment.clone();
    site(&h).await;

    let db = sync_db().await;
    let mut settings = h.settings("scheduler").service;
    settings.backups.scheduled = true;
    let backups = replica(&h, "scheduler", settings, &db.store);
    let at = |h: u32, m: u32| chrono::Utc.with_ymd_and_hms(2026, 11, 1, h, m, 0).unwrap();
    let periods = || async {
        let mut p: Vec<(String, usize)> = backups
            .view(&d.name)
            .await
            .into_iter()
            .map(|b| (b.period, b.written.len()))
            .collect();
        p.sort();
        p
    };

    // 02:35: the daily one (02:30) is due; the next slot is the hourly one at 03:02.
    assert_eq!(backups.scheduled(&d, at(2, 35)).await, Some(at(3, 2)));
    assert_eq!(periods().await, [("daily".to_owned(), 3)]);
    for i in 0..3 {
        let archives = h.datastore(i).list(&d.bucket("daily"), "").await.unwrap();
        assert!(
            archives.iter().any(|o| o.key.ends_with(".tar.gz")),
            "datastore {i}: {archives:?}"
        );
    }
    let written = h
        .event("the daily backup announced", backup_event(&h, "written"))
        .await;
    assert_eq!(written.bucket, d.bucket("daily"));
    // Asked again at the same time: nothing more.
    backups.scheduled(&d, at(2, 35)).await;
    assert_eq!(periods().await, [("daily".to_owned(), 3)]);
    // 03:03: the hourly one; 03:31: the weekly one (Sunday), not the hourly one again.
    backups.scheduled(&d, at(3, 3)).await;
    assert_eq!(
        periods().await,
        [("daily".to_owned(), 3), ("hourly".to_owned(), 3)]
    );
    backups.scheduled(&d, at(3, 31)).await;
    assert_eq!(
        periods().await,
        [
            ("daily".to_owned(), 3),
            ("hourly".to_owned(), 3),
            ("weekly".to_owned(), 3)
        ]
    );
}

/// One backup asked for by several deliveries at once (the command reaching both replicas, a redelivery
/// while the first still builds): one archive on every datastore, its checksum beside it its own, the same
/// bytes everywhere — chaos seeds 48, 49, 52 and 53 found two archives of one backup, or one key holding
/// one delivery's archive and another's checksum. Here replica b's delivery comes first but builds slowly
/// (one file at a time); replica a's two deliveries build fast; a datastore is down while a's copies are
/// written and back before b's archive is built. The archive recorded first (a's) is the backup: b drops
/// its own and copies a's to the endpoint that missed it, and nothing is left in the work directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_by_several_deliveries_at_once_is_written_once() {
    let h = Harness::start().await;
    let d = h.deployment.clone();
    let home = h.datastore(0);
    let bucket = d.bucket("webroot-sync");
    home.ensure_bucket(&bucket).await.unwrap();
    for n in 0..1500 {
        home.put(
            &bucket,
            &format!("pages/page-{n}.html"),
            Bytes::from(format!("<p>page {n}</p>").repeat(50)),
        )
        .await
        .unwrap();
    }
    let db = sync_db().await;
    let store = flotilla_sync::store::SyncStore::new(db.store.clone());
    // Two replicas: one database, a work directory each.
    let with_transfers = |name: &str, transfers: usize| {
        let mut settings = h.settings(name).service;
        settings.transfers = transfers;
        replica(&h, name, settings, &db.store)
    };
    let (a, b) = (with_transfers("a", 32), with_transfers("b", 1));
    let region = d.regions[0].name.clone();
    let correlation = uuid::Uuid::now_v7();
    let id = "cmd-several";
    h.sim.add_fault(&Fault {
        provider: Provider::DigitalOcean,
        kind: FaultKind::DatastoreDown {
            region: "ams3".into(),
        },
    });
    let b_done = std::sync::atomic::AtomicBool::new(false);
    let slow = async {
        let taken = b.take(&d, &region, "manual", id, correlation).await;
        b_done.store(true, std::sync::atomic::Ordering::SeqCst);
        taken
    };
    let fast = async || {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        a.take(&d, &region, "manual", id, correlation).await
    };
    let back = async {
        // a's copy to DigitalOcean failed: the datastore comes back.
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while !store
                .copies(&d.name)
                .await
                .unwrap()
                .iter()
                .any(|c| c.endpoint.starts_with("digitalocean") && c.error.is_some())
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("a's copy to the datastore that is down fails");
        assert!(
            !b_done.load(std::sync::atomic::Ordering::SeqCst),
            "the test's premise: b is still building when a has recorded and written its copies"
        );
        h.sim.clear_faults(Some(Provider::DigitalOcean));
    };
    let (on_b, first, again_on_a, ()) = tokio::join!(slow, fast(), fast(), back);
    for taken in [&on_b, &first, &again_on_a] {
        assert!(taken.is_ok(), "{taken:?}");
    }
    // The deployment's next runs (on either replica) fill in whatever is still missing.
    a.fill_pending(&d).await.unwrap();
    b.fill_pending(&d).await.unwrap();
    let recorded = store.backups(&d.name).await.unwrap();
    let [backup] = recorded.as_slice() else {
        panic!("one backup recorded: {recorded:?}")
    };
    let copies = store.copies(&d.name).await.unwrap();
    assert_eq!(copies.len(), 3, "{copies:?}");
    assert!(copies.iter().all(|c| c.written), "{copies:?}");
    let mut bodies = Vec::new();
    for i in 0..3 {
        let store = h.datastore(i);
        let keys: Vec<String> = store
            .list(&d.bucket("manual"), "")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(
            keys,
            [backup.key.clone(), format!("{}.sha256", backup.key)],
            "datastore {i}"
        );
        let body = Box::pin(store.get(&d.bucket("manual"), &backup.key))
            .await
            .unwrap()
            .unwrap();
        let sum = Box::pin(store.get(&d.bucket("manual"), &format!("{}.sha256", backup.key)))
            .await
            .unwrap()
            .unwrap();
        use sha2::Digest;
        assert_eq!(
            String::from_utf8_lossy(&sum).trim(),
            hex::encode(sha2::Sha256::digest(&body)),
            "datastore {i}: the checksum beside the archive is its own"
        );
        assert_eq!(String::from_utf8_lossy(&sum).trim(), backup.checksum);
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "the same archive everywhere"
    );
    // Nothing left behind in either work directory: the dropped archives, the work files, the archive
    // whose last copy another delivery wrote.
    for name in ["a-work", "b-work"] {
        let left: Vec<_> = walkdir(&h.dir.path().join(name));
        assert!(left.is_empty(), "{name}: {left:?}");
    }
}

/// Every file under `dir`.
fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A backup whose copies were only partly recorded (chaos seed 16 `postgres`: PostgreSQL stopped between
/// the backup's insert and its copies'): the next delivery of its command records the missing copies and
/// writes them, so the backup still reaches every datastore.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_whose_copies_were_partly_recorded_reaches_every_datastore_on_its_next_delivery() {
    let h = Harness::start().await;
    let d = h.deployment.clone();
    site(&h).await;
    let db = sync_db().await;
    let store = flotilla_sync::store::SyncStore::new(db.store.clone());
    let backups = replica(&h, "a", h.settings("a").service, &db.store);
    let region = d.regions[0].name.clone();
    let id = "cmd-partial";
    let first = backups
        .take(&d, &region, "manual", id, uuid::Uuid::now_v7())
        .await
        .unwrap();
    assert_eq!(first.written.len(), 3, "{first:?}");
    // As if the database had gone away before DigitalOcean's copy was recorded: no row, no copy.
    sqlx::query("DELETE FROM sync_backup_copy WHERE id = $1 AND endpoint LIKE 'digitalocean%'")
        .bind(id)
        .execute(sqlite(&db))
        .await
        .unwrap();
    let ams = h.datastore(1);
    for key in [first.key.clone(), format!("{}.sha256", first.key)] {
        ams.delete(&first.bucket, &key).await.unwrap();
    }
    assert_eq!(store.copies(&d.name).await.unwrap().len(), 2);

    // Delivered again: the missing copy recorded and written (from an endpoint that has the archive).
    let again = backups
        .take(&d, &region, "manual", id, uuid::Uuid::now_v7())
        .await
        .unwrap();
    assert_eq!(again.key, first.key);
    assert_eq!(again.written.len(), 3, "{again:?}");
    let copies = store.copies(&d.name).await.unwrap();
    assert_eq!(copies.len(), 3, "{copies:?}");
    assert!(copies.iter().all(|c| c.written), "{copies:?}");
    let body = Box::pin(ams.get(&first.bucket, &first.key))
        .await
        .unwrap()
        .unwrap();
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&body)), first.checksum);
}

/// A backup whose archive only a replica without the deployment's lease keeps: its delivery recorded the
/// backup and stopped before writing a copy (killed, or every datastore refused it), and the next
/// delivery, or the deployment's runs, reached the other replica — which holds the lease, has no archive
/// and finds no endpoint holding one. The replica keeping the archive writes the copies itself once it
/// runs again. Replica b's delivery is made here in the test, in b's own data directory: DigitalOcean's
/// and Exoscale's datastores are down during it, and the one copy it wrote (Linode's) is then taken back
/// — gone from the datastore and marked unwritten — so that the archive is nowhere but on b's disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_whose_archive_only_a_replica_without_the_lease_keeps_reaches_every_datastore() {
    let h = Harness::start().await;
    let d = h.deployment.clone();
    let home = site(&h).await;
    let db = sync_db().await;
    let store = flotilla_sync::store::SyncStore::new(db.store.clone());
    let config = |name: &str| {
        let mut n = h.settings(name);
        n.database_url = Some(db.url.clone());
        n
    };
    // Replica a runs alone first: it takes the deployment's lease and keeps it while it lives.
    let a = flotilla_runtime::host::start(flotilla_sync::DEF, config("a"), flotilla_sync::routes)
        .await
        .unwrap();
    let leases = h.topology.leases();
    let key = format!("sync.{}", d.name);
    let holder = tokio::time::timeout(common::PATIENCE, async {
        loop {
            if let Some(lease) = leases.holder(&key).await.unwrap() {
                break lease.holder;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("replica a takes the deployment's lease");

    // Replica b's delivery.
    let b_config = config("b");
    let b_dir = b_config.data_dir.join("backups");
    let region = d.regions[0].name.clone();
    let id = "cmd-held";
    let down = [(Provider::DigitalOcean, "ams3"), (Provider::Exoscale, "ch-gva-2")];
    for (provider, region) in down {
        h.sim.add_fault(&Fault {
            provider,
            kind: FaultKind::DatastoreDown {
                region: region.into(),
            },
        });
    }
    let taken = replica_in(&h, "b", b_config.service.clone(), &db.store, b_dir.clone())
        .take(&d, &region, "manual", id, uuid::Uuid::now_v7())
        .await
        .unwrap();
    assert_eq!(taken.written.len(), 1, "only Linode's copy: {taken:?}");
    for (provider, _) in down {
        h.sim.clear_faults(Some(provider));
    }
    for key in [taken.key.clone(), format!("{}.sha256", taken.key)] {
        home.delete(&taken.bucket, &key).await.unwrap();
    }
    sqlx::query("UPDATE sync_backup_copy SET written = false WHERE id = $1")
        .bind(id)
        .execute(sqlite(&db))
        .await
        .unwrap();
    assert_eq!(walkdir(&b_dir).len(), 1, "b keeps the archive");

    // The lease holder's run cannot write it: no archive there, none on any endpoint.
    h.command(&flotilla_proto::ReconcileSync {
        meta: CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: region.clone(),
    })
    .await;
    until(
        "the lease holder tries each copy and finds no archive to write",
        async || {
            let copies = store.copies(&d.name).await.unwrap();
            copies.len() == 3
                && copies
                    .iter()
                    .all(|c| c.error.as_deref().is_some_and(|e| e.contains("neither here")))
        },
    )
    .await;

    // Replica b starts again (it was killed): it writes the copies of the archive it keeps.
    let b = flotilla_runtime::host::start(flotilla_sync::DEF, b_config, flotilla_sync::routes)
        .await
        .unwrap();
    until("every copy written", async || {
        store.copies(&d.name).await.unwrap().iter().all(|c| c.written)
    })
    .await;
    use sha2::Digest;
    for i in 0..3 {
        let datastore = h.datastore(i);
        let body = Box::pin(datastore.get(&taken.bucket, &taken.key))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("datastore {i} holds the archive"));
        let sum = Box::pin(datastore.get(&taken.bucket, &format!("{}.sha256", taken.key)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&body)),
            taken.checksum,
            "datastore {i}"
        );
        assert_eq!(
            String::from_utf8_lossy(&sum).trim(),
            taken.checksum,
            "datastore {i}"
        );
    }
    assert_eq!(
        leases.holder(&key).await.unwrap().map(|l| l.holder),
        Some(holder),
        "the test's premise: b never held the lease"
    );
    until("b removes the archive once every copy is written", async || {
        walkdir(&b_dir).is_empty()
    })
    .await;
    let filled = h.event("the backup filled in", backup_event(&h, "filled")).await;
    assert_eq!(filled.key, taken.key);
    assert_eq!(filled.written.len(), 3, "{filled:?}");
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    let announced = h.events().iter().filter_map(backup_event(&h, "filled")).count();
    assert_eq!(announced, 1, "filled in once, announced once");
}
