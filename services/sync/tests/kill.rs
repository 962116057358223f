//! An agent (the `flotilla-sync` binary) SIGKILLed while it pulls a large file, and started again: the
//! file never appears in its webroot half-written, the temporary file of the killed transfer is gone, the
//! agent says READY only once it has caught up (the whole file there, checksum equal), and a file written
//! into its webroot while it was dead is pushed to the other regions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Harness, write};
use flotilla_integration_tests::process::{start_binary, start_binary_with};
use sha2::Digest;
use tokio::net::UnixDatagram;

const BIN: &str = env!("CARGO_BIN_EXE_flotilla-sync");
const BIG: usize = 64 * 1024 * 1024;

fn config(h: &Harness, machine: &str, region: &str) -> PathBuf {
    let text = format!(
        r#"data_dir = {data:?}

[nats]
urls = [{nats:?}]

[admin]
disabled = true

[service]
role = "agent"
debounce = "20ms"

[service.agent]
deployment = {deployment:?}
region = {region:?}
machine = {machine:?}
webroot = {webroot:?}

{clouds}"#,
        clouds = flotilla_integration_tests::sim::datastores_toml(h.sim.linode_url(), h.sim.s3_endpoints()),
        data = h.dir.path().join("data").join(machine).display().to_string(),
        nats = h.nats.url(),
        deployment = h.deployment.name,
        webroot = h.webroot(machine).display().to_string(),
    );
    let path = h.dir.path().join(format!("{machine}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn sha(path: &Path) -> Option<(u64, String)> {
    let body = std::fs::read(path).ok()?;
    Some((body.len() as u64, hex::encode(sha2::Sha256::digest(&body))))
}

fn temporaries(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(flotilla_sync::local::TEMP_PREFIX)
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_killed_mid_transfer_serves_no_partial_file_and_loses_nothing() {
    let mut h = Harness::start().await;
    h.start_replicator().await;
    h.start_agent(0, "lon-ws-1").await;
    let notify_path = h.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let ams_region = h.deployment.regions[1].name.clone();
    let cfg = config(&h, "ams-ws-1", &ams_region);
    let (mut child, log) = start_binary(BIN, &cfg, &notify_path, &notify, h.dir.path(), "ams-ws-1", 1).await;
    let ams = h.webroot("ams-ws-1");

    // A large file arrives in London (whole, renamed into place).
    let lon = h.webroot("lon-ws-1");
    {
        let mut f = std::fs::File::create(lon.join("video.tmp")).unwrap();
        let chunk: Vec<u8> = (0..(1 << 20)).map(|i| (i % 241) as u8).collect();
        for _ in 0..(BIG >> 20) {
            f.write_all(&chunk).unwrap();
        }
    }
    std::fs::rename(lon.join("video.tmp"), lon.join("video.bin")).unwrap();
    let want = sha(&lon.join("video.bin")).unwrap();

    // Killed while the transfer into Amsterdam's webroot is under way.
    let mut killed = false;
    for _ in 0..6000 {
        if let Ok(meta) = std::fs::metadata(ams.join("video.bin")) {
            assert_eq!(meta.len(), BIG as u64, "a partial file under its name");
        }
        if !temporaries(&ams).is_empty() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        killed,
        "the transfer was never seen under way:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(!ams.join("video.bin").exists(), "a partial file under its name");

    // While it is dead, a file is written into its webroot.
    write(&ams, "written-while-down.html", b"not lost");

    // Started again: READY only once caught up.
    let (_child, log) = start_binary_with(
        BIN,
        &cfg,
        &notify_path,
        &notify,
        h.dir.path(),
        "ams-ws-1",
        2,
        &[("WATCHDOG_USEC", "400000")],
    )
    .await;
    // systemd's watchdog is pinged (every 200 ms here) once it is ready.
    let mut buf = [0u8; 256];
    let pinged = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let got = notify.recv(&mut buf).await.unwrap();
            if String::from_utf8_lossy(&buf[..got]).contains("WATCHDOG=1") {
                return;
            }
        }
    })
    .await;
    assert!(pinged.is_ok(), "no WATCHDOG=1 within 5 s");
    assert_eq!(
        sha(&ams.join("video.bin")),
        Some(want),
        "READY before the catch-up:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(temporaries(&ams).is_empty(), "{:?}", temporaries(&ams));
    // Its log, written to a file, is plain text (no terminal colour codes).
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("caught up") && !text.contains('\u{1b}'), "{text}");

    // Nothing lost: what was written while it was dead reaches London.
    let waited = tokio::time::timeout(common::PATIENCE, async {
        while std::fs::read(lon.join("written-while-down.html")).ok().as_deref()
            != Some(b"not lost".as_slice())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    h.stop_replicator().await;
    h.stop_agent("lon-ws-1").await;
}
