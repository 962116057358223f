//! Autoscaler figures against the simulator over a real NATS, beside the real provisioner:
//! - `scale` 1 → 5 until every new webserver is healthy, zero boot delay in the simulator, default probe
//!   settings (the simulator's health port and path);
//! - a webserver killed (its health listener stops) until its replacement is healthy and it is gone, at
//!   default probe settings;
//! - the cost of probing 1,000 machines at a 5 s interval: CPU and memory of an autoscaler process (the
//!   binary) leading one region whose fleet is 1,000 webservers answering in the simulator.
//!
//! `PATH=.ci/venv/bin:$PATH cargo bench -p flotilla-autoscaler --bench autoscaler`. Prints figures;
//! asserts nothing about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla_autoscaler::settings::{Probe, Probes};
use flotilla_bus::{PublishConfig, Publisher, Topology, TopologyConfig, subject};
use flotilla_cloud::{Compute, MachineRequest, Marks};
use flotilla_cloudsim::{Fault, FaultKind, Provider, RunningSim, SimConfig, Simulator, defaults};
use flotilla_integration_tests::{TestNats, free_port, next_generation, service_config, sim, templates};
use flotilla_proto::{
    ApplyRegion, CommandMeta, DesiredDeployment, ExplainScaling, MachineRecord, RegionScaling, ScaleRegion,
    ScalingStatus,
};
use futures::StreamExt;

const RUNS: usize = 3;
const PATIENCE: Duration = Duration::from_secs(120);

async fn explain(client: &async_nats::Client, deployment: &str, region: &str) -> Option<RegionScaling> {
    let status: ScalingStatus = flotilla_bus::api::request(
        client,
        &subject::api("autoscaler", "explain").unwrap(),
        &ExplainScaling {
            deployment: deployment.to_owned(),
            region: Some(region.to_owned()),
        },
        Duration::from_secs(5),
    )
    .await
    .ok()?;
    status.regions.into_iter().next()
}

async fn until_at(client: &async_nats::Client, deployment: &str, region: &str, n: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(r) = explain(client, deployment, region).await {
            let busy = r.activities.first().is_some_and(|a| a.ended_at.is_none());
            if r.current == n && r.healthy == n && !busy && r.blocked.is_none() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{region} never reached {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn default_settings(sim: &RunningSim) -> flotilla_autoscaler::Settings {
    flotilla_autoscaler::Settings {
        probe: Probes::all(Probe {
            port: sim.health_port(),
            path: "/health".into(),
            ..Probe::default()
        }),
        ..flotilla_autoscaler::Settings::default()
    }
}

/// Scale 1 → 5, then kill a webserver; one fresh stack per run.
async fn scale_and_replace() -> (Vec<Duration>, Vec<Duration>) {
    let (mut scale, mut replace) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let nats = TestNats::private().await;
        let sim = sim::simulator(Duration::ZERO, Duration::ZERO).await;
        let dir = tempfile::tempdir().unwrap();
        let mut p = service_config::<flotilla_provisioner::Settings>(&nats, None, &dir.path().join("p"));
        p.clouds = sim.cloud_settings();
        p.service = flotilla_provisioner::Settings {
            poll_interval: Duration::from_millis(20),
            ..sim::provisioner_settings(&sim)
        };
        let provisioner =
            flotilla_runtime::host::start(flotilla_provisioner::DEF, p, flotilla_provisioner::routes)
                .await
                .unwrap();
        let mut a = service_config::<flotilla_autoscaler::Settings>(&nats, None, &dir.path().join("a"));
        a.service = default_settings(&sim);
        let autoscaler =
            flotilla_runtime::host::start(flotilla_autoscaler::DEF, a, flotilla_autoscaler::routes)
                .await
                .unwrap();
        let d = templates::import(&[
            ("TOKEN", defaults::LINODE_TOKEN),
            ("INPARALLEL", "1"),
            ("NO_WEBSERVERS", "1"),
            ("MAX_WEBSERVERS", "5"),
        ])
        .deployment;
        let region = d.regions[0].name.clone();
        let client = nats.client().await;
        let publisher = Publisher::new(client.clone(), PublishConfig::default());
        publisher
            .publish_command(&ApplyRegion {
                meta: CommandMeta::new("bench"),
                deployment: d.clone(),
                region: region.clone(),
                generation: next_generation(),
            })
            .await
            .unwrap();
        until_at(&client, &d.name, &region, 1).await;
        // Let the provisioner finish the region (reverse proxy, database machine) first.
        tokio::time::sleep(Duration::from_secs(2)).await;

        let started = Instant::now();
        publisher
            .publish_command(&ScaleRegion {
                meta: CommandMeta::new("bench"),
                deployment: d.name.clone(),
                region: region.clone(),
                desired: 5,
            })
            .await
            .unwrap();
        until_at(&client, &d.name, &region, 5).await;
        scale.push(started.elapsed());

        let victim = sim
            .machines()
            .into_iter()
            .find(|m| m.tags.iter().any(|t| t == "fl-role:webserver"))
            .unwrap();
        let started = Instant::now();
        sim.add_fault(&Fault {
            provider: Provider::Linode,
            kind: FaultKind::Unhealthy {
                machine_id: victim.id.clone(),
            },
        });
        loop {
            if sim.machines().iter().all(|m| m.id != victim.id)
                && let Some(r) = explain(&client, &d.name, &region).await
                && r.current == 5
                && r.healthy == 5
            {
                break;
            }
            assert!(started.elapsed() < PATIENCE, "never replaced");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        replace.push(started.elapsed());
        autoscaler.shutdown().await.unwrap();
        provisioner.shutdown().await.unwrap();
        sim.shutdown().await;
    }
    (scale, replace)
}

/// CPU seconds (user + system) and resident memory (KiB, now and peak) of process `pid`.
fn usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which ends with ')'): utime is the 14th field, stime the 15th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // Linux reports CPU time in clock ticks of 100 Hz.
    #[allow(clippy::cast_precision_loss)]
    let seconds = ticks as f64 / 100.0;
    (seconds, kib("VmRSS:"), kib("VmHWM:"))
}

async fn probe_cost(machines: usize, window: Duration) {
    let sim = Simulator::start(SimConfig {
        boot_delay: Duration::ZERO,
        health_port: free_port(),
        rate_limits: BTreeMap::new(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let nats = TestNats::private().await;
    let client = nats.client().await;
    let topology = Topology::ensure(&client, &TopologyConfig::default())
        .await
        .unwrap();
    let import = templates::import(&[
        ("TOKEN", defaults::LINODE_TOKEN),
        ("NO_WEBSERVERS", "1"),
        ("MAX_WEBSERVERS", "5"),
    ]);
    let d = import.deployment;
    let region = d.regions[0].name.clone();

    // The machines, created straight at the simulator, and the fleet view the provisioner would keep.
    let mut cfg = flotilla_linode::LinodeConfig::new(defaults::LINODE_TOKEN).with_base_url(sim.linode_url());
    let unlimited = flotilla_cloud::http::RateLimit {
        requests: 1_000_000,
        per: Duration::from_secs(1),
    };
    cfg.rate = Some(unlimited);
    cfg.create_rate = Some(unlimited);
    let linode = flotilla_linode::LinodeCloud::new(cfg).unwrap();
    let fleet = topology.fleet_view();
    futures::stream::iter(0..machines)
        .map(|i| {
            let (linode, fleet, d, region) = (&linode, &fleet, &d, &region);
            async move {
                let resource_id = format!("m{i:04}");
                let m = linode
                    .create_machine(&MachineRequest {
                        name: format!("ws-{i}"),
                        region: "gb-lon".into(),
                        size: "g6-nanode-1".into(),
                        image: "linode/debian12".into(),
                        vpc_id: None,
                        subnet_id: None,
                        firewall_id: None,
                        ssh_keys: Vec::new(),
                        user_data: None,
                        marks: Marks {
                            deployment: d.name.clone(),
                            region: region.clone(),
                            role: Some(flotilla_spec::Role::Webserver),
                            resource_id: resource_id.clone(),
                        },
                    })
                    .await
                    .unwrap();
                // Its address, once the provider has given it one (as the provisioner waits for it).
                let mut m = m;
                while m.public_ipv4.is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    m = linode.get_machine(&m.id).await.unwrap();
                }
                fleet
                    .put(&MachineRecord {
                        deployment: d.name.clone(),
                        region: region.clone(),
                        resource_id,
                        role: "webserver".into(),
                        name: m.name.clone(),
                        size: "g6-nanode-1".into(),
                        provider: "linode".into(),
                        provider_id: Some(m.id.clone()),
                        state: "healthy".into(),
                        public_ipv4: m.public_ipv4.map(|ip| ip.to_string()),
                        private_ipv4: None,
                        created_at: chrono::Utc::now() - chrono::Duration::hours(1),
                        updated_at: chrono::Utc::now(),
                        event_id: uuid::Uuid::now_v7(),
                    })
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    topology
        .desired_states()
        .put(
            &DesiredDeployment {
                generation: 1,
                deployment: d.clone(),
                updated_at: chrono::Utc::now(),
                updated_by: "bench".into(),
            },
            None,
        )
        .await
        .unwrap()
        .unwrap();
    // Scaling paused: only the prober works (and no provisioner answers, so nothing would be acted on).
    let dir = tempfile::tempdir().unwrap();
    let probe = format!(
        "port = {}\npath = \"/health\"\ninterval = \"5s\"\ntimeout = \"2s\"\n",
        sim.health_port()
    );
    let config = format!(
        "data_dir = \"{}\"\n[nats]\nurls = [\"{}\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[service]\n\
         [service.probe.webserver]\n{probe}[service.probe.reverse_proxy]\n{probe}[service.probe.authenticator]\n{probe}",
        dir.path().join("a").display(),
        nats.url()
    );
    let path = dir.path().join("autoscaler.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("autoscaler.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla-autoscaler"))
        .arg("--config")
        .arg(&path)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Until every machine is judged healthy.
    let health = topology.health_view();
    let started = Instant::now();
    loop {
        let judged = health.snapshot(Some(&d.name)).await.unwrap();
        if judged.values().filter(|h| h.healthy).count() == machines {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{} of {machines} judged; the autoscaler said:\n{}",
            judged.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_judged = started.elapsed();
    let (cpu_before, _, _) = usage(pid);
    tokio::time::sleep(window).await;
    let (cpu_after, rss, peak) = usage(pid);
    child.kill().unwrap();
    let _ = child.wait();
    let cpu = cpu_after - cpu_before;
    println!(
        "probe {machines} machines at a 5 s interval: all judged healthy {:.1} s after start; over {:?}: {:.2} CPU s \
         ({:.1}% of one core), RSS {} MiB (peak {} MiB), {:.0} checks/s",
        all_judged.as_secs_f64(),
        window,
        cpu,
        100.0 * cpu / window.as_secs_f64(),
        rss / 1024,
        peak / 1024,
        {
            #[allow(clippy::cast_precision_loss)]
            let per_second = machines as f64 / 5.0;
            per_second
        }
    );
    sim.shutdown().await;
}

fn summary(what: &str, runs: &[Duration]) {
    let mut sorted = runs.to_vec();
    sorted.sort();
    let ms: Vec<String> = sorted
        .iter()
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .collect();
    println!(
        "{what}: median {:.2} s (runs: {})",
        sorted[sorted.len() / 2].as_secs_f64(),
        ms.join(", ")
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if std::env::var_os("BENCH_ONLY_PROBES").is_none() {
            let (scale, replace) = scale_and_replace().await;
            summary("scale 1 → 5 to all healthy", &scale);
            summary("webserver killed → replacement healthy, old one gone", &replace);
        }
        let machines = std::env::var("BENCH_MACHINES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1000);
        probe_cost(machines, Duration::from_secs(60)).await;
    });
}
