//! The `flotilla-firewall` binary SIGKILLed at random points while it creates firewalls, attaches
//! machines and writes the allow-list, and restarted, several times, machines coming and going while it
//! is down: in the end every firewall exists once, every machine is attached, and the allow-list holds
//! exactly the addresses it should — no firewall created twice from a create whose answer was lost, no
//! address lost.
//!
//! On Linode (the seed's two Linode regions), with API latency so that kills land between calls. The seeds
//! are printed; set `FLOTILLA_FIREWALL_KILL_SEED=<n>` to replay one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Harness, host};
use flotilla_cloudsim::{Fault, FaultKind, Provider, defaults};
use flotilla_integration_tests::process::{Rng, start_binary};
use flotilla_spec::Role;
use tokio::net::UnixDatagram;

const BIN: &str = env!("CARGO_BIN_EXE_flotilla-firewall");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_writing_leaves_one_firewall_each_and_loses_no_address() {
    let seeds: Vec<u64> = match std::env::var("FLOTILLA_FIREWALL_KILL_SEED") {
        Ok(s) => vec![s.parse().expect("FLOTILLA_FIREWALL_KILL_SEED is a number")],
        Err(_) => vec![1, 2],
    };
    for seed in seeds {
        run(seed).await;
    }
}

async fn run(seed: u64) {
    eprintln!("firewall kill test: seed {seed} (replay with FLOTILLA_FIREWALL_KILL_SEED={seed})");
    let mut rng = Rng(seed);
    let h = Harness::without_service().await;
    let latency = 20 + rng.between(0, 30);
    let mut d = flotilla_integration_tests::templates::seed_import().deployment;
    d.name = format!("killed{seed}");
    d.regions.truncate(2);
    for r in &mut d.regions {
        r.build_identifier = format!("{}-{}", d.name, r.name);
    }
    h.database(&d).await;
    h.deploy(&d).await;
    h.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::Latency { millis: latency },
    });
    // The secondary's webservers, by id.
    let mut live = BTreeMap::new();
    for i in 0..4 {
        let m = h.machine(&d, "nl-ams", Role::Webserver, &format!("ws{i}")).await;
        live.insert(m.resource_id.clone(), m);
    }
    let mut next = 4;
    let config = write_config(h.dir.path(), &h);
    let notify_path = h.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let mut kills = Vec::new();
    for n in 0..rng.between(2, 3) {
        if n > 0 {
            // While it is down, a machine goes and two come.
            let victim = live.keys().next().cloned().unwrap();
            let gone = live.remove(&victim).unwrap();
            h.destroy(&d, &gone).await;
            for _ in 0..2 {
                let m = h
                    .machine(&d, "nl-ams", Role::Webserver, &format!("ws{next}"))
                    .await;
                live.insert(m.resource_id.clone(), m);
                next += 1;
            }
        }
        let (mut child, _log) =
            start_binary(BIN, &config, &notify_path, &notify, h.dir.path(), "firewall", n).await;
        // After the killed process's lease (3 s) ran out, so that each process writes before it dies.
        let lease = if n == 0 { 0 } else { 3_100 };
        let after = lease + rng.between(0, latency * 20);
        tokio::time::sleep(Duration::from_millis(after)).await;
        child.kill().await.unwrap();
        kills.push(format!("{after}ms"));
    }
    eprintln!("seed {seed}: latency {latency} ms, kills after {kills:?}");
    let (_child, log) = start_binary(BIN, &config, &notify_path, &notify, h.dir.path(), "firewall", 99).await;
    let mut want: Vec<String> = vec![d.regions[0].vpc.cidr.to_string()];
    want.extend(live.values().map(|m| host(&m.public_ipv4)));
    h.wait_for_list(&d, &want, &format!("seed {seed}")).await;
    // Each firewall once, every live machine attached.
    let labels = firewall_labels(&h).await;
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in labels.iter().filter(|l| l.contains(&d.name)) {
        *count.entry(l.as_str()).or_default() += 1;
    }
    assert!(
        !count.is_empty() && count.values().all(|n| *n == 1),
        "seed {seed}: firewalls {count:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    for m in live.values() {
        common::until(&format!("seed {seed}: {} attached", m.resource_id), || async {
            h.firewall(&d, "nl-ams", Role::Webserver)
                .await
                .is_some_and(|f| f.machine_ids.iter().any(|id| Some(id) == m.provider_id.as_ref()))
        })
        .await;
    }
    h.shutdown().await;
}

/// Every firewall label in the simulated Linode account (all pages).
async fn firewall_labels(h: &Harness) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut labels = Vec::new();
    let mut page = 1;
    loop {
        let body: serde_json::Value = client
            .get(format!(
                "{}/networking/firewalls?page={page}&page_size=500",
                h.sim.linode_url()
            ))
            .bearer_auth(defaults::LINODE_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        labels.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["label"].as_str().map(str::to_owned)),
        );
        if body["page"].as_u64() >= body["pages"].as_u64() {
            return labels;
        }
        page += 1;
    }
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
markers = false

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
    let path = dir.join("firewall.toml");
    std::fs::write(&path, text).unwrap();
    path
}
