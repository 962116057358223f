//! The `flotilla-dns` binary SIGKILLed at random points while it writes many records, and restarted,
//! several times: the zone ends with each address exactly once and every record owned — no duplicate from
//! a create whose answer was lost, no orphan nobody owns.
//!
//! On Linode's DNS (no batch endpoint, no mark on the record: one call per create, ownership by the
//! service's registry alone — the hard case), with API latency so that kills land between a create and
//! the record of it. The seeds are printed; set `FLOTILLA_DNS_KILL_SEED=<n>` to replay one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Harness, deployment};
use flotilla_cloudsim::{Fault, FaultKind, Provider, defaults};
use flotilla_integration_tests::process::{Rng, start_binary};
use flotilla_proto::{RecordsView, ShowRecords};
use flotilla_spec::DnsProvider;
use tokio::net::UnixDatagram;

const BIN: &str = env!("CARGO_BIN_EXE_flotilla-dns");
/// Proxies, so records to write.
const PROXIES: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_writing_records_leaves_no_duplicate_and_no_orphan() {
    let seeds: Vec<u64> = match std::env::var("FLOTILLA_DNS_KILL_SEED") {
        Ok(s) => vec![s.parse().expect("FLOTILLA_DNS_KILL_SEED is a number")],
        Err(_) => vec![1, 2, 3],
    };
    for seed in seeds {
        run(seed).await;
    }
}

async fn run(seed: u64) {
    eprintln!("dns kill test: seed {seed} (replay with FLOTILLA_DNS_KILL_SEED={seed})");
    let mut rng = Rng(seed);
    let h = Harness::without_service().await;
    let latency = 20 + rng.between(0, 30);
    h.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::Latency { millis: latency },
    });
    let d = deployment("killed", "www.example.com", DnsProvider::Linode, 1, 1, 0);
    let region = d.regions[0].name.clone();
    h.deploy(&d).await;
    // The live proxies: id → address.
    let mut live: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..PROXIES {
        let (id, ip) = (format!("rp{i}"), format!("198.51.100.{}", 10 + i));
        h.machine(&d, &region, "reverse-proxy", &id, &ip).await;
        live.insert(id, ip);
    }
    let mut next = PROXIES;
    let config = write_config(h.dir.path(), &h);
    let notify_path = h.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();

    // One create costs about the latency; kill somewhere in the whole write — after the killed process's
    // lease (3 s) ran out, so that each restarted process writes before it is killed in turn.
    let window = latency * PROXIES as u64;
    let mut kills = Vec::new();
    for n in 0..rng.between(2, 3) {
        if n > 0 {
            // While it is down, a third of the proxies are replaced: the next process deletes and creates.
            for _ in 0..PROXIES / 3 {
                let victim = live
                    .keys()
                    .nth(rng.between(0, live.len() as u64 - 1) as usize)
                    .cloned()
                    .unwrap();
                live.remove(&victim);
                h.topology
                    .fleet_view()
                    .remove(&d.name, &region, &victim)
                    .await
                    .unwrap();
                let (id, ip) = (format!("rp{next}"), format!("198.51.101.{next}"));
                h.machine(&d, &region, "reverse-proxy", &id, &ip).await;
                live.insert(id, ip);
                next += 1;
            }
        }
        let (mut child, _log) =
            start_binary(BIN, &config, &notify_path, &notify, h.dir.path(), "dns", n).await;
        let lease = if n == 0 { 0 } else { 3_100 };
        let after = lease + rng.between(0, window);
        tokio::time::sleep(Duration::from_millis(after)).await;
        child.kill().await.unwrap();
        let written = h.records(&d, "www.example.com").await.len();
        kills.push(format!("{after}ms: {written} records"));
    }
    eprintln!("seed {seed}: latency {latency} ms, kills {kills:?}");
    let (_child, log) = start_binary(BIN, &config, &notify_path, &notify, h.dir.path(), "dns", 99).await;
    let mut want: Vec<String> = live.values().cloned().collect();
    let refs: Vec<&str> = want.iter().map(String::as_str).collect();
    // A killed process's lease must run out (3 s) before the last one takes over.
    h.wait_for(&d, "www.example.com", &refs, &format!("seed {seed}"))
        .await;
    let records = h.records(&d, "www.example.com").await;
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *count.entry(r.content.as_str()).or_default() += 1;
    }
    assert!(
        count.values().all(|n| *n == 1),
        "seed {seed}: duplicates {count:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Every record is the deployment's: nothing to create or delete, no conflict.
    let view: RecordsView = h
        .api(
            "records",
            &ShowRecords {
                deployment: d.name.clone(),
            },
        )
        .await
        .unwrap();
    let site = &view.names[0];
    assert_eq!(site.current.len(), PROXIES, "seed {seed}: {view:?}");
    assert!(
        site.creates.is_empty() && site.deletes.is_empty() && site.conflicts.is_empty(),
        "seed {seed}: {view:?}"
    );
    // And it still follows changes: one proxy gone, its record goes.
    let (id, gone) = live.pop_first().unwrap();
    want.retain(|ip| ip != &gone);
    h.topology
        .fleet_view()
        .remove(&d.name, &region, &id)
        .await
        .unwrap();
    let refs: Vec<&str> = want.iter().map(String::as_str).collect();
    h.wait_for(&d, "www.example.com", &refs, &format!("seed {seed}: {gone} out"))
        .await;
    h.shutdown().await;
}

fn write_config(dir: &Path, h: &Harness) -> PathBuf {
    let text = format!(
        r#"data_dir = {data:?}

[nats]
urls = [{nats:?}]

[admin]
disabled = true

[service]
debounce = "20ms"
resync_interval = "1h"
lease_ttl = "3s"

[clouds.endpoints]
linode = {linode:?}

[clouds.simulator]
linode_token = {token:?}
"#,
        data = dir.join("data").display().to_string(),
        nats = h.nats.url(),
        linode = h.sim.linode_url(),
        token = defaults::LINODE_TOKEN,
    );
    let path = dir.join("dns.toml");
    std::fs::write(&path, text).unwrap();
    path
}
