//! Sync figures against the simulator's S3 endpoints (Linode gb-lon-1, DigitalOcean ams3, Exoscale
//! ch-gva-2: real S3 protocol) over a real NATS, the services in-process:
//! - propagation lag, a file written into one region's webroot until it is in another's: from the hub
//!   region (one replication hop) and between two other regions (two hops), p50 and p99;
//! - a full sync of 10,000 files (10 KiB each, about 100 MB) between two S3 endpoints, the replicator's
//!   pass against `rclone sync` (Debian's package, as many transfers and checkers as the replicator's
//!   concurrency) on the same endpoints: wall time and S3 requests, for the
//!   first copy and for a no-change re-run;
//! - the memory of an agent (the release binary, as a process) watching 100,000 files: peak while it
//!   catches up, and steady afterwards.
//!
//! `PATH=.ci/venv/bin:$PATH cargo bench -p flotilla-sync --bench sync` (rclone from `apt-get install
//! rclone`; without it its lines say so). Prints figures; asserts nothing about speed. `BENCH_LAG_FILES`,
//! `BENCH_SYNC_FILES` and `BENCH_AGENT_FILES` change the sizes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use flotilla_bus::Topology;
use flotilla_cloud::settings::CloudSettings;
use flotilla_cloudsim::{Provider, S3Endpoint};
use flotilla_integration_tests::figures::{latencies, ms};
use flotilla_integration_tests::{TestNats, next_generation, service_config, sim};
use flotilla_proto::DesiredDeployment;
use flotilla_spec::Deployment;
use flotilla_sync::settings::{AgentSettings, Role, Settings};
use flotilla_sync::stamps::Stamped;

const POLL: Duration = Duration::from_millis(2);
const PATIENCE: Duration = Duration::from_secs(120);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The simulator on a runtime (and threads) of its own, as if it were another process: the services' and
/// rclone's requests are served alike, neither taking the other's worker threads.
struct Sim {
    settings: CloudSettings,
    endpoints: Vec<S3Endpoint>,
    linode_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sim {
    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let sim = sim::simulator(Duration::ZERO, Duration::ZERO).await;
                tx.send((
                    sim.cloud_settings(),
                    sim.s3_endpoints().to_vec(),
                    sim.linode_url().to_owned(),
                ))
                .unwrap();
                let _ = stopped.await;
                sim.shutdown().await;
            });
        });
        let (settings, endpoints, linode_url) = rx.recv().unwrap();
        Self {
            settings,
            endpoints,
            linode_url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn cloud_settings(&self) -> CloudSettings {
        self.settings.clone()
    }

    fn s3_endpoints(&self) -> &[S3Endpoint] {
        &self.endpoints
    }

    fn s3_endpoint(&self, provider: Provider, region: &str) -> Option<&S3Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.provider == provider && e.region == region)
    }

    fn linode_url(&self) -> &str {
        &self.linode_url
    }

    fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Stack {
    nats: TestNats,
    sim: Sim,
    dir: tempfile::TempDir,
    deployment: Deployment,
    running: Vec<flotilla_runtime::host::Running>,
}

impl Stack {
    async fn start() -> Self {
        let nats = TestNats::private().await;
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let client = nats.client().await;
        let topology = Topology::ensure(&client, &flotilla_bus::TopologyConfig::default())
            .await
            .unwrap();
        let deployment = common::deployment();
        topology
            .desired_states()
            .put(
                &DesiredDeployment {
                    generation: next_generation(),
                    deployment: deployment.clone(),
                    updated_at: chrono::Utc::now(),
                    updated_by: "bench".into(),
                },
                None,
            )
            .await
            .unwrap()
            .unwrap();
        Self {
            nats,
            sim,
            dir,
            deployment,
            running: Vec::new(),
        }
    }

    fn config(&self, name: &str) -> flotilla_runtime::ServiceConfig<Settings> {
        let mut n = service_config::<Settings>(&self.nats, None, &self.dir.path().join("data").join(name));
        n.clouds = self.sim.cloud_settings();
        n.service.backups.scheduled = false;
        n
    }

    async fn replicator(&mut self) {
        let n = self.config("replicator");
        self.running.push(
            flotilla_runtime::host::start(flotilla_sync::DEF, n, flotilla_sync::routes)
                .await
                .unwrap(),
        );
    }

    fn webroot(&self, machine: &str) -> PathBuf {
        self.dir.path().join("webroots").join(machine)
    }

    async fn agent(&mut self, region: usize, machine: &str) {
        let mut n = self.config(machine);
        n.service.role = Role::Agent;
        n.service.agent = Some(AgentSettings {
            deployment: self.deployment.name.clone(),
            region: self.deployment.regions[region].name.clone(),
            machine: machine.into(),
            webroot: self.webroot(machine),
            excludes: flotilla_sync::settings::default_excludes(),
        });
        let running = flotilla_runtime::host::start(flotilla_sync::DEF, n, flotilla_sync::routes)
            .await
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        while !running.waiting_for().is_empty() {
            assert!(Instant::now() < deadline, "agent {machine} never caught up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.running.push(running);
    }

    async fn stop(self) {
        for r in self.running {
            r.shutdown().await.unwrap();
        }
        tokio::task::block_in_place(|| self.sim.shutdown());
    }

    fn endpoint(&self, provider: Provider, region: &str) -> &S3Endpoint {
        self.sim.s3_endpoint(provider, region).unwrap()
    }
}

async fn lag(files: usize) {
    let mut s = Stack::start().await;
    s.replicator().await;
    s.agent(0, "lon").await;
    s.agent(1, "ams").await;
    s.agent(2, "gva").await;
    let mut one_hop = Vec::new();
    let mut two_hops = Vec::new();
    for i in 0..files {
        for (from, to, samples) in [("lon", "gva", &mut one_hop), ("ams", "gva", &mut two_hops)] {
            let key = format!("lag/{from}-{i}.html");
            let target = s.webroot(to).join(&key);
            let path = s.webroot(from).join(&key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let started = Instant::now();
            std::fs::write(&path, format!("<p>{i}</p>")).unwrap();
            while !target.exists() {
                assert!(started.elapsed() < PATIENCE, "{key} never reached {to}");
                tokio::time::sleep(POLL).await;
            }
            samples.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!(
        "{}",
        latencies("webroot → webroot, from the hub region (one hop)", &one_hop)
    );
    println!(
        "{}",
        latencies(
            "webroot → webroot, between two other regions (two hops)",
            &two_hops
        )
    );
    s.stop().await;
}

/// Requests served by both endpoints so far.
fn requests(a: &S3Endpoint, b: &S3Endpoint) -> u64 {
    a.requests() + b.requests()
}

async fn fill(store: &flotilla_datastore::Datastore, bucket: &str, files: usize) {
    use futures::StreamExt;
    Box::pin(store.ensure_bucket(bucket)).await.unwrap();
    futures::stream::iter(0..files)
        .map(|i| async move {
            let body: Vec<u8> = (0..10 * 1024).map(|j| ((i + j) % 251) as u8).collect();
            Box::pin(store.put(bucket, &format!("site/{:03}/{i}.html", i % 100), body.into()))
                .await
                .unwrap();
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

fn rclone(args: &[&str], src: &S3Endpoint, dst: &S3Endpoint) -> Option<Duration> {
    let mut cmd = std::process::Command::new("rclone");
    // The endpoints are plain HTTP on loopback; a CA bundle meant for other clients only gets in the way.
    cmd.env_remove("AWS_CA_BUNDLE");
    for (name, e) in [("SRC", src), ("DST", dst)] {
        cmd.env(format!("RCLONE_CONFIG_{name}_TYPE"), "s3")
            .env(format!("RCLONE_CONFIG_{name}_PROVIDER"), "Other")
            .env(format!("RCLONE_CONFIG_{name}_ENDPOINT"), &e.url)
            .env(format!("RCLONE_CONFIG_{name}_ACCESS_KEY_ID"), &e.access_key)
            .env(format!("RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY"), &e.secret_key)
            .env(format!("RCLONE_CONFIG_{name}_FORCE_PATH_STYLE"), "true");
    }
    let parallel = flotilla_sync::replicate::TRANSFERS.to_string();
    let started = Instant::now();
    let out = cmd
        .args(args)
        // As many transfers and checkers as the replicator runs at once.
        .args([
            "--transfers",
            &parallel,
            "--checkers",
            &parallel,
            "--config",
            "/dev/null",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        println!("  rclone failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(started.elapsed())
}

async fn full_sync(files: usize) {
    let s = Stack::start().await;
    let d = &s.deployment;
    let clouds = flotilla_clouds::Clouds::new(s.sim.cloud_settings(), None);
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
    let (ea, eb) = (
        s.endpoint(Provider::Linode, "gb-lon-1"),
        s.endpoint(Provider::DigitalOcean, "ams3"),
    );
    fill(&a, "bench-source", files).await;
    Box::pin(b.ensure_bucket("bench-rclone")).await.unwrap();
    println!("full sync of {files} files of 10 KiB between two S3 endpoints (Linode → DigitalOcean)");

    // Ours: the replicator keeps one bucket name on both endpoints (bench-source there is empty); rclone
    // copies into another bucket of the same destination endpoint.
    Box::pin(b.ensure_bucket("bench-source")).await.unwrap();
    let pair = flotilla_sync::replicate::Pair {
        a: &a,
        b: &b,
        bucket: "bench-source",
    };
    let rules = flotilla_sync::plan::Rules::default();
    // As the replicator runs it: stamps read first, the base in a database.
    let client = s.nats.client().await;
    let config = flotilla_bus::TopologyConfig::default();
    let topology = Topology::ensure(&client, &config).await.unwrap();
    let stamps = flotilla_sync::stamps::StampSource::new(topology, config, "replicator");
    let db = flotilla_integration_tests::TestDb::sqlite().await;
    let (sqlite, postgres) = flotilla_sync::store::migrations();
    db.store.migrate_with(sqlite, postgres).await.unwrap();
    let store = flotilla_sync::store::SyncStore::new(db.store.clone());
    let key = flotilla_sync::store::PairKey {
        deployment: d.name.clone(),
        bucket: "bench-source".into(),
        side_a: "linode:gb-lon-1.linodeobjects.com".into(),
        side_b: "digitalocean:ams3.digitaloceanspaces.com".into(),
    };
    let stamped = |full: bool| flotilla_sync::stamps::Stamped {
        stamps: None,
        store: &store,
        key: &key,
        full,
    };
    let opened = stamps.get().await;
    let before = requests(ea, eb);
    let started = Instant::now();
    let first = Box::pin(
        Stamped {
            stamps: opened,
            ..stamped(false)
        }
        .pass(&pair, &rules, 8 << 20),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(first.failed.is_empty());
    println!(
        "  flotilla, first copy:      {:>9}  {:>6} requests ({} copied)",
        ms(took),
        requests(ea, eb) - before,
        first.applied
    );
    for (what, stamps) in [("no-change re-run:", opened), ("re-run, no stamps:", None)] {
        let before = requests(ea, eb);
        let started = Instant::now();
        let again = Box::pin(
            Stamped {
                stamps,
                ..stamped(false)
            }
            .pass(&pair, &rules, 8 << 20),
        )
        .await
        .unwrap();
        println!(
            "  flotilla, {what}{:>8}  {:>6} requests ({} copied, sides listed: {:?})",
            ms(started.elapsed()),
            requests(ea, eb) - before,
            again.applied,
            again.listed
        );
    }

    let src = "src:bench-source";
    let dst = "dst:bench-rclone";
    for what in ["first copy:     ", "no-change re-run:"] {
        let before = requests(ea, eb);
        match rclone(&["sync", src, dst], ea, eb) {
            Some(took) => println!(
                "  rclone sync, {what}{:>9}  {:>6} requests",
                ms(took),
                requests(ea, eb) - before
            ),
            None => {
                println!("  rclone sync, {what} not run (rclone is not installed: apt-get install rclone)")
            }
        }
    }
    s.stop().await;
}

/// VmHWM and VmRSS of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn agent_memory(files: usize) {
    let s = Stack::start().await;
    let root = s.webroot("big");
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i % 1000));
        if i < 1000 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("{i}.html")), b"<p>x</p>").unwrap();
    }
    let config = s.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[nats]\nurls = [{:?}]\n[admin]\ndisabled = true\n[service]\nrole = \"agent\"\n\
             [service.agent]\ndeployment = {:?}\nregion = {:?}\nmachine = \"big\"\nwebroot = {:?}\n{}",
            s.dir.path().join("data/big").display().to_string(),
            s.nats.url(),
            s.deployment.name,
            s.deployment.regions[0].name,
            root.display().to_string(),
            sim::datastores_toml(s.sim.linode_url(), s.sim.s3_endpoints()),
        ),
    )
    .unwrap();
    let notify_path = s.dir.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&notify_path).unwrap();
    let started = Instant::now();
    let (child, _log) = flotilla_integration_tests::process::start_binary(
        env!("CARGO_BIN_EXE_flotilla-sync"),
        &config,
        &notify_path,
        &notify,
        s.dir.path(),
        "agent",
        1,
    )
    .await;
    let pid = child.id().unwrap();
    let caught_up = started.elapsed();
    let (peak, _) = memory(pid);
    // Steady: a few resync-free seconds with one change a second.
    for i in 0..5 {
        std::fs::write(root.join(format!("d000/steady-{i}.html")), b"y").unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (peak_after, steady) = memory(pid);
    println!(
        "agent watching {files} files: caught up (pushed them all) in {}; peak RSS {peak:.1} MiB during the \
         catch-up, {peak_after:.1} MiB peak overall, {steady:.1} MiB steady",
        ms(caught_up)
    );
    drop(child);
    s.stop().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        lag(env_usize("BENCH_LAG_FILES", 30)).await;
        full_sync(env_usize("BENCH_SYNC_FILES", 10_000)).await;
        agent_memory(env_usize("BENCH_AGENT_FILES", 100_000)).await;
    });
}
