//! The `flotilla-provisioner` binary SIGKILLed at random points of an apply, and restarted, several times.
//!
//! Each run (one per seed) starts the simulator in this process, a private NATS and the binary (configured
//! through a TOML file), publishes one `ApplyRegion`, kills the process with SIGKILL after a random delay
//! within the apply's expected duration, restarts it, and does so a few times; then lets the last process
//! finish. It proves that, wherever the kills land (before a create, between the cloud's answer and our
//! record, while machines boot, after the apply but before its ack):
//! - the simulator ends up holding exactly the machines the spec asks for — counted per role by the marks
//!   the simulator reports, every resource id once, and no machine of any other kind (no orphans);
//! - the machines API lists the same machines, all healthy, and the region as applied;
//! - the command is finished (acknowledged) without ever being dead-lettered or reported failed.
//!
//! The seeds are printed; set `FLOTILLA_KILL_SEED=<n>` to replay one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{EventLog, Rng, assert_api_matches, assert_exactly_the_spec};
use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_cloudsim::{Fault, FaultKind, Provider, RunningSim, defaults};
use flotilla_integration_tests::{TestDb, TestNats, templates};
use flotilla_proto::{ApplyRegion, CommandMeta};
use flotilla_spec::Region;
use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_flotilla-provisioner");

/// How long a machine of the simulator takes to boot.
const BOOT: Duration = Duration::from_millis(300);
/// The consumer's ack-wait: how soon a killed process's command is delivered again.
const ACK_WAIT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_anywhere_in_an_apply_leaves_exactly_the_spec_on_sqlite() {
    let seeds: Vec<u64> = match std::env::var("FLOTILLA_KILL_SEED") {
        Ok(s) => vec![s.parse().expect("FLOTILLA_KILL_SEED is a number")],
        Err(_) => (1..=8).collect(),
    };
    let started = Instant::now();
    // Four at a time: each run is mostly waiting (boots, redeliveries), and CI has two cores.
    for batch in seeds.chunks(4) {
        // The binary's own SQLite file in its data directory (no database_url).
        let runs = batch.iter().map(|&seed| run(seed, None));
        futures::future::join_all(runs).await;
    }
    eprintln!("{} seeds in {:?}", seeds.len(), started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_anywhere_in_an_apply_leaves_exactly_the_spec_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let seed = std::env::var("FLOTILLA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(101);
    run(seed, Some(db.url.clone())).await;
    db.cleanup().await;
}

/// One process of the binary; killed (SIGKILL) when dropped.
struct Provisioner {
    child: Child,
    log: PathBuf,
}

struct Run {
    seed: u64,
    dir: tempfile::TempDir,
    nats: TestNats,
    sim: RunningSim,
    config: PathBuf,
    notify: UnixDatagram,
    notify_path: PathBuf,
    starts: usize,
}

impl Run {
    /// Starts the binary and waits until it says it is ready (its consumer and API are up).
    async fn start(&mut self) -> Provisioner {
        self.starts += 1;
        let log = self.dir.path().join(format!("provisioner-{}.log", self.starts));
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .env("NOTIFY_SOCKET", &self.notify_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut buf = [0u8; 256];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(30), self.notify.recv(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "seed {}: no READY=1 from the provisioner:\n{}",
                        self.seed,
                        tail(&log)
                    )
                })
                .unwrap();
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                break;
            }
        }
        Provisioner { child, log }
    }
}

async fn run(seed: u64, database_url: Option<String>) {
    eprintln!("kill test: seed {seed} (replay with FLOTILLA_KILL_SEED={seed})");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let webservers = rng.between(1, 3).to_string();
    let in_parallel = rng.between(0, 1).to_string();
    let import = templates::import(&[
        ("TOKEN", defaults::LINODE_TOKEN),
        ("NO_WEBSERVERS", &webservers),
        ("NO_AUTOSCALERS", "1"),
        ("INPARALLEL", &in_parallel),
    ]);
    let deployment = import.deployment.clone();
    let region: Region = deployment.regions[0].clone();
    let machines: u64 = region.machines.iter().map(|(_, s)| u64::from(s.count)).sum();
    let sim = common::simulator(BOOT, Duration::from_millis(500)).await;
    // With API latency, a kill often lands while a create call is under way (recorded, maybe not created).
    let latency = rng.between(0, 1) * 100;
    if latency > 0 {
        sim.add_fault(&Fault {
            provider: Provider::Linode,
            kind: FaultKind::Latency { millis: latency },
        });
    }
    let nats = TestNats::private().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &nats, &sim, database_url.as_deref());
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let mut run = Run {
        seed,
        dir,
        nats,
        sim,
        config,
        notify,
        notify_path,
        starts: 0,
    };
    let client = run.nats.client().await;
    let events = EventLog::start(&client).await;
    let mut process = run.start().await;

    let cmd = ApplyRegion {
        meta: CommandMeta::new("test"),
        deployment: deployment.clone(),
        region: region.name.clone(),
        generation: flotilla_integration_tests::next_generation(),
    };
    let subj = subject::command("provisioner", &deployment.name, &region.name, "apply").unwrap();
    Publisher::new(client.clone(), PublishConfig::default())
        .publish(&subj, &cmd.meta.id.to_string(), &cmd)
        .await
        .unwrap();

    // What an apply takes here: its machines one after the other (or together), each booting, plus the
    // redelivery of a killed process's command.
    let boot_ms = u64::try_from(BOOT.as_millis()).unwrap();
    // A create, a few polls and the health checks: a handful of calls, each slowed by the latency.
    let per_machine = boot_ms + 150 + 4 * latency;
    let apply_ms = if region.in_parallel {
        per_machine
    } else {
        machines * per_machine
    } + 300;
    let window_ms = apply_ms + u64::try_from(ACK_WAIT.as_millis()).unwrap();
    let kills = rng.between(2, 4);
    let mut killed = Vec::new();
    for _ in 0..kills {
        let after = rng.between(0, window_ms);
        tokio::time::sleep(Duration::from_millis(after)).await;
        process.child.kill().await.unwrap();
        // Where the kill landed: machine events told so far, and whether the region was applied yet.
        let told = events.machines(&region.name).len();
        let applied = events
            .regions(&region.name)
            .iter()
            .any(|r| r.outcome == "applied");
        killed.push(format!(
            "{after}ms: {told} machine events{}",
            if applied { ", applied" } else { "" }
        ));
        process = run.start().await;
    }
    eprintln!(
        "seed {seed}: {machines} machines, in parallel: {}, API latency {latency} ms, kills: {killed:?}",
        region.in_parallel
    );

    // The last process finishes: the command acknowledged, the region applied.
    let js = async_nats::jetstream::new(client.clone());
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        let stream = js.get_stream("FLOTILLA_COMMANDS").await.unwrap();
        let consumer = stream.consumer_info("provisioner-commands").await.unwrap();
        let done = consumer.num_ack_pending == 0 && consumer.num_pending == 0;
        let fleet = common::fleet(&client, &deployment.name).await;
        let applied = fleet
            .regions
            .iter()
            .any(|r| r.region == region.name && r.status == "applied");
        if done && applied {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: the apply did not finish (ack pending {}, pending {}, fleet {fleet:?}):\n{}",
            consumer.num_ack_pending,
            consumer.num_pending,
            tail(&process.log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let held = assert_exactly_the_spec(&run.sim, &deployment.name, &region);
    assert_eq!(
        run.sim.machines().len(),
        held.len(),
        "seed {seed}: no machine at the simulator but the region's: {:#?}",
        run.sim.machines()
    );
    assert!(held.iter().all(|m| m.status == "running"), "{held:?}");
    let fleet = common::fleet(&client, &deployment.name).await;
    assert_api_matches(&fleet, &region.name, &held);
    assert!(
        events.rejected().is_empty(),
        "seed {seed}: the command was dead-lettered: {:?}",
        events.rejected()
    );
    let outcomes: Vec<String> = events
        .regions(&region.name)
        .iter()
        .map(|r| r.outcome.clone())
        .collect();
    assert!(
        outcomes.iter().all(|o| o == "applied") && !outcomes.is_empty(),
        "seed {seed}: region outcomes {outcomes:?}"
    );
    // Every machine that exists was announced as healthy; every one announced created but gone now was
    // announced destroyed.
    let told = events.machines(&region.name);
    for m in &held {
        assert!(
            told.iter()
                .any(|e| e.resource_id == m.resource_id && e.state == "healthy"),
            "seed {seed}: {} never announced healthy",
            m.resource_id
        );
    }
    drop(process);
    run.sim.shutdown().await;
    eprintln!(
        "seed {seed}: {} starts, done in {:?}",
        run.starts,
        started.elapsed()
    );
}

fn write_config(dir: &Path, nats: &TestNats, sim: &RunningSim, database_url: Option<&str>) -> PathBuf {
    let database = database_url
        .map(|u| format!("database_url = {u:?}\n"))
        .unwrap_or_default();
    let text = format!(
        r#"data_dir = {data:?}
{database}
[nats]
urls = [{nats:?}]

[admin]
disabled = true

[consumer]
ack_wait = "{ack}ms"
max_deliver = 50
retry_delays = ["100ms"]
pull_expiry = "500ms"
shutdown_grace = "1s"

[service]
health_port = {health}
health_path = "/health"
boot_timeout = "20s"
poll_interval = "50ms"
# A killed provisioner's hold on the region lapses after this (the restarted one is a new replica).
region_lease_ttl = "3s"
max_rounds = 5
reconcile_interval = "1h"

[clouds.endpoints]
linode = {linode:?}

[clouds.simulator]
linode_token = {token:?}
"#,
        data = dir.join("data").display().to_string(),
        nats = nats.url(),
        ack = ACK_WAIT.as_millis(),
        health = sim.health_port(),
        linode = sim.linode_url(),
        token = defaults::LINODE_TOKEN,
    );
    let path = dir.join("provisioner.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The end of a log file, for a failure message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
