//! The whole system at 1,000 webservers (issue 14, "Scale"): 20 regions on the four providers (five each;
//! the primary, with the managed database, on Linode), each region 50 webservers, a reverse proxy, an
//! autoscaler machine and a database machine (1,060 machines), every service a process (one replica each,
//! `integration-tests/src/system.rs`), PostgreSQL, a private nats-server, and the simulator enforcing the
//! providers' published rate limits (its default) for the one credential the services share.
//!
//! Per size (webservers per region; by default 2, then 50):
//! - time to deploy: the spec's initial webservers (at most 5 per region, the spec's rule) until
//!   [`System::violations`] is empty (every machine running and answering, DNS, the allow-list), then
//!   `scale` to the size in every region until it is empty again;
//! - API calls of each service's no-op reconcile: the other four services paused (SIGSTOP) while the
//!   simulator's counters of the services' credential (and its S3 endpoints) are sampled over three and a
//!   half of the service's resync intervals, each burst of requests one run;
//! - memory of each service (VmRSS and VmHWM of `/proc/<pid>/status`), idle before the deploy and once
//!   converged;
//! - the follow time of a 20-region scale-out: every region +1 webserver (`scale`: the allow-list must
//!   take 19 new addresses), then +1 reverse proxy per region (a redeploy: DNS must take 20);
//! - at the largest size, 10,000 files of 1 KiB written into one region's webroot, timed until the sync
//!   agent of every region (20 agents, processes) holds them all.
//!
//! `PATH=.ci/venv/bin:$PATH cargo bench -p flotilla-integration-tests --bench scale`. Sizes with
//! `FLOTILLA_SCALE_SIZES=2,50`, files with `FLOTILLA_SCALE_FILES=10000` (0: none); `FLOTILLA_SCALE_KEEP=1`
//! keeps each size's directory (logs, data, webroots). Prints figures and markdown table rows; asserts
//! nothing about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla_cloudsim::Provider;
use flotilla_integration_tests::system::{Expected, Options, SERVICES, System, tree};
use flotilla_integration_tests::templates::{four_providers, seed_import};
use flotilla_spec::{CloudProvider, DatastoreEndpoint, DatastoreProvider, Deployment, Role, Scaling};

const BIN: &str = env!("CARGO_BIN_EXE_flotilla-service");

/// The name the harness gives the services' credential at the simulator.
const CREDENTIAL: &str = "flotilla";

/// Most webservers a region may scale to.
const MAX_WEBSERVERS: u32 = 60;

/// The spec's largest initial webserver count (`NO_WEBSERVERS`, 1-5).
const MAX_INITIAL: u32 = 5;

/// Each provider's five regions (simulator catalogue ids, also the region names) and the two object
/// storage endpoints its regions use in turn. The first Linode region is the primary.
const LAYOUT: [(CloudProvider, [&str; 5], [&str; 2]); 4] = [
    (
        CloudProvider::Linode,
        ["gb-lon", "nl-ams", "de-fra-2", "fr-par", "se-sto"],
        ["nl-ams-1.linodeobjects.com", "gb-lon-1.linodeobjects.com"],
    ),
    (
        CloudProvider::DigitalOcean,
        ["ams3", "lon1", "fra1", "tor1", "nyc3"],
        ["ams3.digitaloceanspaces.com", "lon1.digitaloceanspaces.com"],
    ),
    (
        CloudProvider::Vultr,
        ["ams", "lhr", "fra", "cdg", "sto"],
        ["ams1.vultrobjects.com", "ewr1.vultrobjects.com"],
    ),
    (
        CloudProvider::Exoscale,
        ["ch-gva-2", "ch-dk-2", "de-fra-1", "de-muc-1", "at-vie-1"],
        ["sos-ch-gva-2.exo.io", "sos-de-fra-1.exo.io"],
    ),
];

/// The 20-region deployment, `initial` webservers per region (at most [`MAX_INITIAL`]), scalable to
/// [`MAX_WEBSERVERS`]. Every region is one of the seed's (the Linode primary with its DBaaS, a Linode
/// secondary) or of [`four_providers`] (Exoscale, Vultr, DigitalOcean), moved to another provider region:
/// its own build identifier, VPC (name and range) and object storage.
fn deployment(name: &str, initial: u32) -> Deployment {
    let seed = seed_import().deployment;
    let mut d = four_providers(name);
    let template = |provider: CloudProvider, primary: bool| {
        let from = if provider == CloudProvider::Linode && !primary {
            &seed.regions
        } else {
            &d.regions
        };
        from.iter()
            .find(|r| r.provider == provider && r.primary == primary)
            .cloned()
            .expect("the seed and four_providers hold a region of every provider")
    };
    let mut regions = Vec::new();
    for (provider, names, stores) in LAYOUT {
        for (i, region) in names.into_iter().enumerate() {
            let mut r = template(provider, provider == CloudProvider::Linode && i == 0);
            r.name = region.into();
            r.provider_region = region.into();
            r.build_identifier = format!("{name}-{region}");
            r.vpc.name = format!("adt-vpc-{region}");
            // DigitalOcean refuses VPC ranges that overlap within an account: one /24 each.
            r.vpc.cidr = format!("10.0.{}.0/24", regions.len() + 1)
                .parse()
                .expect("a VPC range");
            let host = stores[i % 2];
            r.datastores = vec![DatastoreEndpoint {
                provider: match provider {
                    CloudProvider::Linode => DatastoreProvider::Linode,
                    CloudProvider::DigitalOcean => DatastoreProvider::DigitalOcean,
                    CloudProvider::Vultr => DatastoreProvider::Vultr,
                    CloudProvider::Exoscale => DatastoreProvider::Exoscale,
                },
                host_base: host.into(),
                location: host
                    .split('.')
                    .next()
                    .unwrap_or(region)
                    .trim_start_matches("sos-")
                    .into(),
            }];
            r.machines.webserver.count = initial;
            r.scaling = Scaling {
                initial,
                min: initial,
                max: MAX_WEBSERVERS,
            };
            regions.push(r);
        }
    }
    d.regions = regions;
    if let Err(e) = d.check() {
        panic!("the scale deployment is not valid: {e}");
    }
    d
}

/// The autoscaler's settings: the harness's, except the probes at the service's defaults (every 2 s,
/// 2 checks to judge) — the harness probes every 250 ms for its chaos runs, which at 1,000 machines is
/// 4,000 checks a second on a 2-core machine.
fn autoscaler_settings(health_port: u16) -> String {
    let mut probes = String::new();
    for role in ["webserver", "reverse_proxy", "authenticator"] {
        probes.push_str(&format!(
            "\n[service.probe.{role}]\nport = {health_port}\npath = \"/health\"\ninterval = \"2s\"\ntimeout = \"1s\"\n\
             healthy_threshold = 2\nunhealthy_threshold = 2\ngrace = \"10s\"\nreplace_after = 3\n"
        ));
    }
    format!(
        "lease_ttl = \"5s\"\nresync_interval = \"2s\"\ndrain_delay = \"500ms\"\n\
         backoff_base = \"1s\"\n{probes}"
    )
}

/// Resync intervals as the harness sets them (`System::service_config`; the autoscaler's above).
fn resync_interval(service: &str) -> Duration {
    match service {
        "autoscaler" => Duration::from_secs(2),
        _ => Duration::from_secs(10),
    }
}

/// Requests and 429s of the services' credential, per provider (Cloudflare included).
fn api_calls(sys: &System) -> BTreeMap<Provider, (u64, u64)> {
    let counters = sys.sim.counters();
    Provider::ALL
        .into_iter()
        .map(|p| {
            let c = counters
                .provider(p)
                .credentials
                .get(CREDENTIAL)
                .copied()
                .unwrap_or_default();
            (p, (c.requests, c.rate_limited))
        })
        .collect()
}

/// Requests served by every S3 endpoint of the simulator.
fn s3_requests(sys: &System) -> u64 {
    sys.sim.s3_endpoints().iter().map(|e| e.requests()).sum()
}

/// Requests (and 429s) from `before` to `after`, per provider, providers without any left out.
fn delta(
    before: &BTreeMap<Provider, (u64, u64)>,
    after: &BTreeMap<Provider, (u64, u64)>,
) -> BTreeMap<Provider, (u64, u64)> {
    after
        .iter()
        .map(|(p, (r, l))| {
            let (r0, l0) = before.get(p).copied().unwrap_or_default();
            (*p, (r - r0, l - l0))
        })
        .filter(|(_, (r, _))| *r > 0)
        .collect()
}

fn show_calls(calls: &BTreeMap<Provider, (u64, u64)>) -> String {
    if calls.is_empty() {
        return "none".into();
    }
    calls
        .iter()
        .map(|(p, (r, l))| {
            if *l > 0 {
                format!("{} {r} ({l} × 429)", p.as_str())
            } else {
                format!("{} {r}", p.as_str())
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resident memory of a process, in KiB: now and at its peak.
#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss: u64,
    hwm: u64,
}

fn memory(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(name)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some(Mem {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

fn memories(sys: &System) -> BTreeMap<&'static str, Mem> {
    SERVICES
        .into_iter()
        .filter_map(|s| Some((s, memory(sys.pid(s, 0)?)?)))
        .collect()
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn signal(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Which check a violation belongs to (the texts of [`System::violations`]).
fn is_count(v: &str) -> bool {
    v.contains(" machine(s), wanted ") || v.contains(" exists twice") || v.contains("orphaned")
}

fn is_dns(v: &str) -> bool {
    v.contains(": DNS ") || v.contains("DNS zone") || v.contains("DNS records") || v.contains("DNS adapter")
}

fn is_allow_list(v: &str) -> bool {
    v.contains("allow-list") || v.contains("managed database")
}

/// When each part of the expected state held after a change: every machine wanted exists (any state),
/// DNS and the allow-list right from then on (first seen right once the machines exist), everything.
#[derive(Debug, Default)]
struct Followed {
    exist: Option<Duration>,
    dns: Option<Duration>,
    allow_list: Option<Duration>,
    all: Option<Duration>,
    left: Vec<String>,
}

impl Followed {
    fn show(t: Option<Duration>) -> String {
        t.map_or_else(|| "not reached".into(), secs)
    }
}

/// Polls [`System::violations`] every `poll` from `started` until none is left, for up to `patience`.
async fn follow(
    sys: &System,
    expected: &Expected,
    started: Instant,
    poll: Duration,
    patience: Duration,
) -> Followed {
    let mut f = Followed::default();
    let mut shown = Instant::now();
    loop {
        let v = sys.violations(std::slice::from_ref(expected)).await;
        let t = started.elapsed();
        if f.exist.is_none() && !v.iter().any(|v| is_count(v)) {
            f.exist = Some(t);
        }
        if f.exist.is_some() {
            if f.dns.is_none() && !v.iter().any(|v| is_dns(v)) {
                f.dns = Some(t);
            }
            if f.allow_list.is_none() && !v.iter().any(|v| is_allow_list(v)) {
                f.allow_list = Some(t);
            }
        }
        if v.is_empty() {
            f.all = Some(t);
            return f;
        }
        if t > patience {
            f.left = v;
            return f;
        }
        if shown.elapsed() > Duration::from_secs(30) {
            shown = Instant::now();
            let machines = sys.machines(&expected.deployment.name);
            let running = machines
                .iter()
                .filter(|m| m.status == "running" && m.answering)
                .count();
            println!(
                "  … {} s: {} machines, {running} running and answering; {} violation(s), e.g. {:?}",
                t.as_secs(),
                machines.len(),
                v.len(),
                v.iter().take(2).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// API calls of one service's no-op reconciles: the other services and the agents paused, the services'
/// credential (and the S3 endpoints) sampled every 50 ms for three and a half resync intervals. A run is
/// a burst of requests after a quiet spell of a quarter interval; the figures are the mean of the runs
/// seen whole (begun and ended within the window).
#[derive(Debug, Default)]
struct NoOp {
    /// Requests (and 429s) per provider, per run.
    calls: BTreeMap<Provider, (f64, f64)>,
    /// S3 requests per run.
    s3: f64,
    /// Runs seen whole.
    runs: usize,
    /// Their mean duration, first request to last.
    took: Duration,
    /// Every request in the window (runs cut by its ends included).
    window: u64,
}

impl NoOp {
    fn api(&self) -> f64 {
        // Not `sum()`: a sum of no floats is -0.
        self.calls.values().fold(0.0, |all, (r, _)| all + r)
    }

    fn show(&self) -> String {
        let calls = self
            .calls
            .iter()
            .map(|(p, (r, l))| {
                if *l > 0.0 {
                    format!("{} {r:.1} ({l:.1} × 429)", p.as_str())
                } else {
                    format!("{} {r:.1}", p.as_str())
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} whole run(s) of {} each: API {:.1}{}; S3 {:.1} ({} requests in the window)",
            self.runs,
            secs(self.took),
            self.api(),
            if calls.is_empty() {
                String::new()
            } else {
                format!(" ({calls})")
            },
            self.s3,
            self.window
        )
    }
}

async fn no_op(sys: &System, service: &str, agents: &[u32]) -> NoOp {
    let mut paused: Vec<u32> = SERVICES
        .into_iter()
        .filter(|s| *s != service)
        .filter_map(|s| sys.pid(s, 0))
        .collect();
    paused.extend_from_slice(agents);
    for pid in &paused {
        signal(*pid, "STOP");
    }
    // Requests under way finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let interval = resync_interval(service);
    let window = interval * 7 / 2;
    let t0 = Instant::now();
    let mut samples = Vec::new();
    while t0.elapsed() < window {
        samples.push((t0.elapsed(), api_calls(sys), s3_requests(sys)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in &paused {
        signal(*pid, "CONT");
    }
    let total = |i: usize| {
        let (_, api, s3) = &samples[i];
        api.values().map(|(r, _)| r).sum::<u64>() + s3
    };
    // Bursts: (index of the sample before the first increase, index of the last increase).
    let quiet = interval / 4;
    let mut bursts: Vec<(usize, usize)> = Vec::new();
    let mut last_increase: Option<usize> = None;
    for i in 1..samples.len() {
        if total(i) == total(i - 1) {
            continue;
        }
        match (last_increase, bursts.last_mut()) {
            (Some(last), Some(b)) if samples[i].0 - samples[last].0 < quiet => b.1 = i,
            _ => bursts.push((i - 1, i)),
        }
        last_increase = Some(i);
    }
    let end = samples.last().map_or(Duration::ZERO, |s| s.0);
    let whole: Vec<&(usize, usize)> = bursts
        .iter()
        // Quiet before it within the window (bursts after the first are, by construction), and after it.
        .filter(|(from, to)| samples[*from].0 >= quiet && end - samples[*to].0 >= quiet)
        .collect();
    let mut out = NoOp {
        runs: whole.len(),
        window: total(samples.len() - 1) - total(0),
        ..NoOp::default()
    };
    if !whole.is_empty() {
        let n = whole.len() as f64;
        for (from, to) in &whole {
            for (p, (r, l)) in delta(&samples[*from].1, &samples[*to].1) {
                let e = out.calls.entry(p).or_default();
                e.0 += r as f64 / n;
                e.1 += l as f64 / n;
            }
            out.s3 += (samples[*to].2 - samples[*from].2) as f64 / n;
            out.took += (samples[*to].0 - samples[*from].0) / whole.len() as u32;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    out
}

/// Files under `root`'s `bench` directory whose names are final (an agent's temporary files aside).
fn count_files(root: &std::path::Path) -> usize {
    let Ok(dirs) = std::fs::read_dir(root.join("bench")) else {
        return 0;
    };
    dirs.flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .map(|files| {
            files
                .flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with(".html"))
                .count()
        })
        .sum()
}

/// One size's figures, for the tables.
#[derive(Default)]
struct Figures {
    machines: usize,
    deploy_initial: Option<Duration>,
    deploy_scaled: Option<Duration>,
    deploy_calls: BTreeMap<Provider, (u64, u64)>,
    no_ops: Vec<(String, NoOp)>,
    idle: BTreeMap<&'static str, Mem>,
    converged: BTreeMap<&'static str, Mem>,
    end: BTreeMap<&'static str, Mem>,
    webserver_out: Followed,
    proxy_out: Followed,
    sync: Option<Synced>,
}

/// The files' sync: when the first region, the median one and the last held them all, S3 requests, the
/// agents' largest peak RSS (KiB).
struct Synced {
    first: Duration,
    median: Duration,
    last: Duration,
    s3: u64,
    agent_peak: u64,
}

async fn run(per_region: u32, files: usize) -> Option<Figures> {
    let started = Instant::now();
    let initial = per_region.min(MAX_INITIAL);
    let d = deployment("scale", initial);
    let regions: Vec<String> = d.regions.iter().map(|r| r.name.clone()).collect();
    let mut sys = System::start(Options {
        replicas: 1,
        boot: Duration::from_millis(300),
        database: Duration::from_secs(1),
        zones: vec![d.dns.zone.clone()],
        nats_nodes: 1,
        bin: BIN.into(),
    })
    .await?;
    let health_port = sys.sim.health_port();
    sys.set_service_settings("autoscaler", autoscaler_settings(health_port));
    sys.write_secrets_file(&[&d]);
    sys.start_all().await;
    let mut fig = Figures::default();

    // Idle: started, nothing deployed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    fig.idle = memories(&sys);

    // 1. Deploy: the initial webservers, then scaled to the size.
    let mut expected = Expected {
        deployment: d.clone(),
        webservers: BTreeMap::new(),
        agents: vec![],
        webroot: None,
        backup: None,
        gone: Vec::new(),
    };
    let calls = api_calls(&sys);
    let t0 = Instant::now();
    sys.deploy(&d).await;
    let f = follow(
        &sys,
        &expected,
        t0,
        Duration::from_secs(1),
        Duration::from_secs(1200),
    )
    .await;
    println!(
        "  deployed {} regions × {initial} webservers: {} ({} machines)",
        regions.len(),
        Followed::show(f.all),
        sys.machines(&d.name).len()
    );
    fig.deploy_initial = f.all;
    if f.all.is_none() {
        println!("  not converged: {:?}", f.left.iter().take(5).collect::<Vec<_>>());
    }
    if per_region > initial {
        let t1 = Instant::now();
        for r in &regions {
            sys.scale(&d, r, per_region).await;
            expected.webservers.insert(r.clone(), per_region);
        }
        let f = follow(
            &sys,
            &expected,
            t1,
            Duration::from_secs(1),
            Duration::from_secs(1800),
        )
        .await;
        println!(
            "  scaled to {per_region} webservers per region: {}",
            Followed::show(f.all)
        );
        if f.all.is_none() {
            println!("  not converged: {:?}", f.left.iter().take(5).collect::<Vec<_>>());
        }
        fig.deploy_scaled = f.all;
    }
    fig.deploy_calls = delta(&calls, &api_calls(&sys));
    // The machines wanted (the simulator may still hold some being destroyed).
    fig.machines = d
        .regions
        .iter()
        .flat_map(|r| r.machines.iter())
        .map(|(role, spec)| {
            if role == Role::Webserver {
                per_region as usize
            } else {
                spec.count as usize
            }
        })
        .sum();
    println!(
        "  deploy: {} machines wanted ({} at the simulator) in {}; the services' API calls {}",
        fig.machines,
        sys.machines(&d.name).len(),
        secs(t0.elapsed()),
        show_calls(&fig.deploy_calls)
    );

    // 2. Memory once converged.
    tokio::time::sleep(Duration::from_secs(10)).await;
    fig.converged = memories(&sys);

    // 3. No-op reconciles, one service at a time.
    for service in SERVICES {
        let n = no_op(&sys, service, &[]).await;
        println!(
            "  no-op, {service} alone (resync every {:?}): {}",
            resync_interval(service),
            n.show()
        );
        fig.no_ops.push((service.to_owned(), n));
    }

    // 4. Scale-out: +1 webserver in every region (the allow-list takes the new addresses).
    let t2 = Instant::now();
    for r in &regions {
        sys.scale(&d, r, per_region + 1).await;
        expected.webservers.insert(r.clone(), per_region + 1);
    }
    fig.webserver_out = follow(
        &sys,
        &expected,
        t2,
        Duration::from_millis(250),
        Duration::from_secs(600),
    )
    .await;
    println!(
        "  +1 webserver per region: all exist {}, allow-list right {}, everything {}",
        Followed::show(fig.webserver_out.exist),
        Followed::show(fig.webserver_out.allow_list),
        Followed::show(fig.webserver_out.all)
    );

    // 5. Scale-out: +1 reverse proxy in every region, by a redeploy (DNS takes the new addresses).
    let mut wider = d.clone();
    for r in &mut wider.regions {
        r.machines.reverse_proxy.count += 1;
    }
    expected.deployment = wider.clone();
    let t3 = Instant::now();
    sys.deploy(&wider).await;
    fig.proxy_out = follow(
        &sys,
        &expected,
        t3,
        Duration::from_millis(250),
        Duration::from_secs(600),
    )
    .await;
    println!(
        "  +1 reverse proxy per region: all exist {}, DNS right {}, everything {}",
        Followed::show(fig.proxy_out.exist),
        Followed::show(fig.proxy_out.dns),
        Followed::show(fig.proxy_out.all)
    );

    // 6. 10,000 files into one region's webroot, until every region's agent holds them.
    if files > 0 {
        for r in &regions {
            sys.start_agent(&d.name, r).await;
        }
        let source = regions
            .iter()
            .find(|r| r.starts_with("ch-dk"))
            .unwrap_or(&regions[1])
            .clone();
        let mut want = BTreeMap::new();
        let root = sys.webroot(&d.name, &source);
        let (calls, s3) = (api_calls(&sys), s3_requests(&sys));
        let t4 = Instant::now();
        for n in 0..files {
            let key = format!("bench/d{:03}/f{n:05}.html", n / 100);
            let mut body = format!("<p>page {n}</p>\n").into_bytes();
            body.resize(1024, b'.');
            let path = root.join(&key);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("a webroot directory");
            std::fs::write(&path, &body).expect("a webroot file");
            want.insert(key, body);
        }
        let written = t4.elapsed();
        let mut shown = Instant::now();
        let mut arrived: BTreeMap<String, Duration> = BTreeMap::new();
        let done = loop {
            let counts: Vec<usize> = regions
                .iter()
                .map(|r| count_files(&sys.webroot(&d.name, r)))
                .collect();
            for (r, c) in regions.iter().zip(&counts) {
                if *c >= files && !arrived.contains_key(r) {
                    arrived.insert(r.clone(), t4.elapsed());
                }
            }
            if counts.iter().all(|c| *c >= files) {
                break Some(t4.elapsed());
            }
            if t4.elapsed() > Duration::from_secs(1800) {
                println!("  sync not done after 30 min: {counts:?}");
                break None;
            }
            if shown.elapsed() > Duration::from_secs(30) {
                shown = Instant::now();
                println!("  … {} s: files per region {counts:?}", t4.elapsed().as_secs());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let s3 = s3_requests(&sys) - s3;
        let calls = delta(&calls, &api_calls(&sys));
        println!(
            "  {files} files written into {source} in {}; in every region's webroot after {} ({s3} S3 requests; API {})",
            secs(written),
            Followed::show(done),
            show_calls(&calls)
        );
        let mut order: Vec<(&String, &Duration)> = arrived.iter().collect();
        order.sort_by_key(|(_, t)| **t);
        println!(
            "  each region's webroot complete after: {}",
            order
                .iter()
                .map(|(r, t)| format!("{r} {}", secs(**t)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let agents_peak = regions
            .iter()
            .filter_map(|r| memory(sys.agent_pid(&d.name, r)?))
            .map(|m| m.hwm)
            .max()
            .unwrap_or(0);
        if let Some(done) = done {
            let times: Vec<Duration> = order.iter().map(|(_, t)| **t).collect();
            fig.sync = Some(Synced {
                first: times[0],
                median: times[times.len() / 2],
                last: done,
                s3,
                agent_peak: agents_peak,
            });
            // Every webroot identical, contents included.
            let differ: Vec<&String> = regions
                .iter()
                .filter(|r| {
                    let have = tree(&sys.webroot(&d.name, r));
                    have.iter()
                        .filter(|(k, _)| k.starts_with("bench/"))
                        .ne(want.iter())
                })
                .collect();
            if !differ.is_empty() {
                println!("  webroots that differ from what was written: {differ:?}");
            }
        }
        println!(
            "  agents' peak RSS (largest of {}): {}",
            regions.len(),
            mib(agents_peak)
        );

        // The replicator's no-op once the buckets hold the files (agents paused too).
        let agents: Vec<u32> = regions.iter().filter_map(|r| sys.agent_pid(&d.name, r)).collect();
        let n = no_op(&sys, "sync", &agents).await;
        println!(
            "  no-op, sync alone (agents paused) after the files: {}",
            n.show()
        );
        fig.no_ops.push(("sync, after the files".to_owned(), n));
    }

    fig.end = memories(&sys);
    let exited = sys.exited();
    if !exited.is_empty() {
        println!("  exited: {exited:?}");
    }
    for (subject, id, reason) in sys.dead_letters().await {
        println!("  dead letter: {subject} {id}: {reason}");
    }
    println!("  this size took {}", secs(started.elapsed()));
    if std::env::var_os("FLOTILLA_SCALE_KEEP").is_some() {
        let dir = sys.dir.path().to_path_buf();
        std::mem::forget(std::mem::replace(
            &mut sys.dir,
            tempfile::tempdir().expect("a temp dir"),
        ));
        println!("  logs and data kept in {}", dir.display());
    }
    sys.shutdown().await;
    Some(fig)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    flotilla_integration_tests::init_logging();
    let sizes: Vec<u32> = std::env::var("FLOTILLA_SCALE_SIZES")
        .unwrap_or_else(|_| "2,50".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("FLOTILLA_SCALE_SIZES: webservers per region, e.g. 2,50")
        })
        .collect();
    let files: usize = std::env::var("FLOTILLA_SCALE_FILES")
        .unwrap_or_else(|_| "10000".into())
        .parse()
        .expect("FLOTILLA_SCALE_FILES: a number of files");
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let regions = LAYOUT.iter().map(|(_, r, _)| r.len()).sum::<usize>();
    let mut all = Vec::new();
    for size in &sizes {
        println!("{regions} regions × {size} webservers");
        let files = if *size == largest { files } else { 0 };
        let Some(fig) = run(*size, files).await else {
            println!("SKIPPED: PostgreSQL is not installed");
            return;
        };
        all.push((*size, fig));
    }

    let date = chrono::Utc::now().format("%Y-%m-%d");
    println!();
    println!(
        "| date | regions × webservers (machines) | deploy: initial → all right | scale to size → all right | +1 webserver per region → allow-list right / all right | +1 reverse proxy per region → DNS right / all right | {files} files → every region |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (size, f) in &all {
        println!(
            "| {date} | {regions} × {size} ({}) | {} | {} | {} / {} | {} / {} | {} |",
            f.machines,
            Followed::show(f.deploy_initial),
            f.deploy_scaled.map_or_else(|| "—".into(), secs),
            Followed::show(f.webserver_out.allow_list),
            Followed::show(f.webserver_out.all),
            Followed::show(f.proxy_out.dns),
            Followed::show(f.proxy_out.all),
            f.sync.as_ref().map_or_else(
                || "—".into(),
                |s| format!(
                    "first region {}, median {}, last {} ({} S3 requests, agent peak {})",
                    secs(s.first),
                    secs(s.median),
                    secs(s.last),
                    s.s3,
                    mib(s.agent_peak)
                )
            ),
        );
    }
    println!();
    println!(
        "| date | machines | service | no-op run: API calls (per region) | by provider | S3 requests | runs seen, each |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (_, f) in &all {
        for (service, n) in &f.no_ops {
            let by_provider = n
                .calls
                .iter()
                .map(|(p, (r, _))| format!("{} {r:.1}", p.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "| {date} | {} | {service} | {:.1} ({:.2}) | {} | {:.1} | {}, {} |",
                f.machines,
                n.api(),
                n.api() / regions as f64,
                if by_provider.is_empty() {
                    "—".to_owned()
                } else {
                    by_provider
                },
                n.s3,
                n.runs,
                secs(n.took)
            );
        }
    }
    println!();
    println!("| date | machines | service | idle RSS | converged RSS | peak RSS (whole run) |");
    println!("|---|---|---|---|---|---|");
    for (_, f) in &all {
        for service in SERVICES {
            let get = |m: &BTreeMap<&str, Mem>| m.get(service).copied().unwrap_or_default();
            println!(
                "| {date} | {} | {service} | {} | {} | {} |",
                f.machines,
                mib(get(&f.idle).rss),
                mib(get(&f.converged).rss),
                mib(get(&f.end).hwm)
            );
        }
    }
    for (_, f) in &all {
        println!(
            "deploy API calls at {} machines: {}",
            f.machines,
            show_calls(&f.deploy_calls)
        );
    }
}
