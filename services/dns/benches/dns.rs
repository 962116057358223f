//! DNS figures against the simulator over a real NATS, the dns service in-process:
//! - a reverse proxy judged healthy again (the health-view write the autoscaler makes) until its A record
//!   is at the provider, and judged unhealthy until it is gone: p50 and p99 at the default debounce
//!   (250 ms) and at 50 ms, on Cloudflare;
//! - a reverse proxy that stops answering until its A record is gone, beside the real provisioner and
//!   autoscaler at its default probe settings;
//! - the provider API calls of one no-op resync, per zone (Cloudflare and Linode DNS);
//! - the provider API calls and the wall time to apply 200 reverse proxies appearing at once, on
//!   Cloudflare (batch endpoint) and on Linode DNS (one call per record).
//!
//! `PATH=.ci/venv/bin:$PATH cargo bench -p flotilla-dns --bench dns`. Prints figures; asserts nothing
//! about speed. `BENCH_CYCLES=<n>` sets the unhealthy/healthy cycles of the first figure (100 by default).
//!
//! The records are read back through an observer credential of the simulator's own: its requests are
//! counted apart from the service's and draw on a rate budget of their own on both sides, so polling every
//! 5 ms neither slows the service nor shows in its call counts. The simulator enforces no rate limit; the
//! service's adapters keep the providers' published ones on the client side.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_autoscaler::settings::{Probe, Probes};
use flotilla_bus::{PublishConfig, Publisher, Topology, TopologyConfig};
use flotilla_cloud::http::RateLimit;
use flotilla_cloud::{Dns, Zone};
use flotilla_cloudsim::{
    Credentials, Fault, FaultKind, Provider, RunningSim, SimConfig, Simulator, Token, defaults,
};
use flotilla_integration_tests::figures::{latencies, ms};
use flotilla_integration_tests::{TestNats, free_port, next_generation, service_config, sim, templates};
use flotilla_proto::{AnyEvent, ApplyRegion, CommandMeta, DesiredDeployment, MachineHealth, MachineRecord};
use flotilla_spec::{CloudflareAuth, Deployment, DnsProvider, Secret};
use futures::StreamExt;

/// How long anything may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(60);
/// How often the provider is read back.
const POLL: Duration = Duration::from_millis(5);
/// The site name every deployment serves.
const SITE: &str = "www.example.com";
/// The name the observer's credentials are counted under at the simulator.
const OBSERVER: &str = "bench-observer";
const OBSERVER_CLOUDFLARE: &str = "bench-observer-cloudflare-token";
const OBSERVER_LINODE: &str = "bench-observer-linode-token";
/// One change started at most this often in the first figure: the service's two calls per change (list,
/// batch) stay under Cloudflare's published 1,200 per 5 minutes (3.6/s once the burst is spent).
const PACE: Duration = Duration::from_millis(600);
/// Fresh stacks for the dead-proxy figure.
const DEAD_RUNS: usize = 3;
/// No-op resyncs counted.
const RESYNCS: usize = 10;
/// Reverse proxies appearing at once.
const BULK: usize = 200;

const UNLIMITED: RateLimit = RateLimit {
    requests: 1_000_000,
    per: Duration::from_secs(1),
};

/// A private NATS, the simulator (zero boot delay, no server-side rate limits, an observer credential on
/// Cloudflare and Linode) and the services started in this process.
struct Stack {
    nats: TestNats,
    sim: RunningSim,
    dir: tempfile::TempDir,
    client: async_nats::Client,
    topology: Topology,
    /// Started in order; stopped in reverse.
    services: Vec<flotilla_runtime::host::Running>,
}

impl Stack {
    async fn start() -> Self {
        let mut credentials = Credentials::default();
        credentials
            .cloudflare
            .push(Token::new(OBSERVER, OBSERVER_CLOUDFLARE));
        credentials.linode.push(Token::new(OBSERVER, OBSERVER_LINODE));
        let sim = Simulator::start(SimConfig {
            boot_delay: Duration::ZERO,
            database_delay: Duration::ZERO,
            health_port: free_port(),
            rate_limits: BTreeMap::new(),
            credentials,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let nats = TestNats::private().await;
        let client = nats.client().await;
        let topology = Topology::ensure(&client, &TopologyConfig::default())
            .await
            .unwrap();
        Self {
            nats,
            sim,
            dir: tempfile::tempdir().unwrap(),
            client,
            topology,
            services: Vec::new(),
        }
    }

    /// Starts the dns service with `settings`.
    async fn dns(&mut self, settings: flotilla_dns::Settings) {
        let mut n = service_config::<flotilla_dns::Settings>(&self.nats, None, &self.dir.path().join("dns"));
        n.clouds = self.sim.cloud_settings();
        n.service = settings;
        self.services.push(
            flotilla_runtime::host::start(flotilla_dns::DEF, n, flotilla_dns::routes)
                .await
                .unwrap(),
        );
    }

    /// Writes the desired state of `d` as the provisioner accepts it.
    async fn deploy(&self, d: &Deployment) {
        let desired = self.topology.desired_states();
        let current = desired.get(&d.name).await.unwrap();
        let value = DesiredDeployment {
            generation: next_generation(),
            deployment: d.clone(),
            updated_at: chrono::Utc::now(),
            updated_by: "bench".into(),
        };
        desired.put(&value, current.as_ref()).await.unwrap().unwrap();
    }

    /// Records a reverse proxy of `d`'s first region in the fleet view, up, at `ip`.
    async fn proxy(&self, d: &Deployment, id: &str, ip: &str) -> MachineRecord {
        let m = MachineRecord {
            deployment: d.name.clone(),
            region: d.regions[0].name.clone(),
            resource_id: id.into(),
            role: "reverse-proxy".into(),
            name: id.into(),
            size: "g6-nanode-1".into(),
            provider: "linode".into(),
            provider_id: Some(id.into()),
            state: "healthy".into(),
            public_ipv4: Some(ip.into()),
            private_ipv4: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            event_id: uuid::Uuid::now_v7(),
        };
        self.topology.fleet_view().put(&m).await.unwrap();
        m
    }

    /// Writes the prober's judgement of `m`, as the autoscaler does.
    async fn health(&self, m: &MachineRecord, healthy: bool) {
        let h = MachineHealth {
            meta: flotilla_proto::EventMeta::new(uuid::Uuid::now_v7(), "bench"),
            deployment: m.deployment.clone(),
            region: m.region.clone(),
            resource_id: m.resource_id.clone(),
            role: m.role.clone(),
            public_ipv4: m.public_ipv4.clone(),
            healthy,
            failures: if healthy { 0 } else { 2 },
            reason: if healthy { "200 OK" } else { "connection refused" }.into(),
            checked_at: chrono::Utc::now(),
            since: chrono::Utc::now(),
        };
        self.topology.health_view().put(&h).await.unwrap();
    }

    /// Requests the services made to `provider` (the simulator's default credential; the observer's are
    /// counted apart).
    fn calls(&self, provider: Provider) -> u64 {
        self.sim
            .counters()
            .provider(provider)
            .credentials
            .get(defaults::CREDENTIAL_NAME)
            .map_or(0, |c| c.requests)
    }

    /// 429s the simulator sent to the services on `provider`.
    fn limited(&self, provider: Provider) -> u64 {
        self.sim
            .counters()
            .provider(provider)
            .credentials
            .get(defaults::CREDENTIAL_NAME)
            .map_or(0, |c| c.rate_limited)
    }

    /// Reads `provider`'s zone example.com with the observer's credential.
    async fn observer(&self, provider: DnsProvider) -> Observer {
        let dns: Arc<dyn Dns> = match provider {
            DnsProvider::Cloudflare => {
                let mut cfg = flotilla_cloudflare::CloudflareConfig::new(CloudflareAuth::ApiToken {
                    account_id: String::new(),
                    token: Secret::new(OBSERVER_CLOUDFLARE),
                })
                .with_base_url(self.sim.cloudflare_url());
                cfg.rate = UNLIMITED;
                Arc::new(flotilla_cloudflare::Cloudflare::new(cfg).unwrap())
            }
            DnsProvider::Linode => {
                let mut cfg =
                    flotilla_linode::LinodeConfig::new(OBSERVER_LINODE).with_base_url(self.sim.linode_url());
                cfg.rate = Some(UNLIMITED);
                cfg.create_rate = Some(UNLIMITED);
                Arc::new(flotilla_linode::LinodeCloud::new(cfg).unwrap())
            }
            other => panic!("no observer for {other}"),
        };
        let zone = dns
            .find_zone("example.com")
            .await
            .unwrap()
            .expect("the simulator's zone");
        Observer { dns, zone }
    }

    /// Stops the services (last started first) and the simulator.
    async fn shutdown(mut self) {
        while let Some(s) = self.services.pop() {
            s.shutdown().await.unwrap();
        }
        self.sim.shutdown().await;
    }
}

/// Reads the records back from the provider.
struct Observer {
    dns: Arc<dyn Dns>,
    zone: Zone,
}

impl Observer {
    /// The addresses of the A records at `name`.
    async fn addresses(&self, name: &str) -> BTreeSet<String> {
        self.dns
            .list_records(&self.zone, None, Some("A"))
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.name.eq_ignore_ascii_case(name))
            .map(|r| r.content)
            .collect()
    }

    /// Polls every [`POLL`] until the addresses at `name` satisfy `done`; returns when they first did.
    async fn until(&self, name: &str, what: &str, done: impl Fn(&BTreeSet<String>) -> bool) -> Instant {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.addresses(name).await;
            if done(&now) {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "{what}: {name} still holds {now:?}");
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A one-region deployment (the test template's Linode gb-lon) serving [`SITE`] from DNS on `provider` in
/// zone example.com through `proxies` reverse proxies.
fn deployment(name: &str, provider: DnsProvider, proxies: u32) -> Deployment {
    let mut d = templates::import(&[("TOKEN", defaults::LINODE_TOKEN)]).deployment;
    d.name = name.into();
    d.website_url = SITE.into();
    d.dns.provider = provider;
    d.dns.zone = "example.com".into();
    for r in &mut d.regions {
        r.machines.reverse_proxy.count = proxies;
        r.machines.authenticator.count = 0;
    }
    d
}

fn set(ips: &[&str]) -> BTreeSet<String> {
    ips.iter().map(|s| (*s).to_owned()).collect()
}

/// Figure 1: one proxy of two judged unhealthy, then healthy again, `cycles` times, a change started every
/// [`PACE`]; each change timed from the health-view write to the record set at the provider showing it.
async fn health_to_record(debounce: Duration, cycles: usize) {
    let mut s = Stack::start().await;
    s.dns(flotilla_dns::Settings {
        debounce,
        ..flotilla_dns::Settings::default()
    })
    .await;
    let d = deployment("bench-health", DnsProvider::Cloudflare, 2);
    let observer = s.observer(DnsProvider::Cloudflare).await;
    s.deploy(&d).await;
    let (a, b) = ("198.51.100.10", "198.51.100.11");
    let rp0 = s.proxy(&d, "rp0", a).await;
    s.proxy(&d, "rp1", b).await;
    let both = set(&[a, b]);
    let one = set(&[b]);
    observer.until(SITE, "both proxies", |now| *now == both).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (calls_before, limited_before) = (s.calls(Provider::Cloudflare), s.limited(Provider::Cloudflare));
    let started = Instant::now();
    let (mut out, mut back) = (Vec::new(), Vec::new());
    for _ in 0..cycles {
        for healthy in [false, true] {
            let t = Instant::now();
            s.health(&rp0, healthy).await;
            let want = if healthy { &both } else { &one };
            let seen = observer.until(SITE, "the change", |now| now == want).await;
            if healthy {
                back.push(seen - t);
            } else {
                out.push(seen - t);
            }
            tokio::time::sleep_until((t + PACE).into()).await;
        }
    }
    let calls = s.calls(Provider::Cloudflare) - calls_before;
    let limited = s.limited(Provider::Cloudflare) - limited_before;
    println!(
        "health-view write → record set at Cloudflare, debounce {} (one change every {}):",
        ms(debounce),
        ms(PACE)
    );
    println!("{}", latencies("judged healthy → its A record there", &back));
    println!("{}", latencies("judged unhealthy → its A record gone", &out));
    println!(
        "  the service's Cloudflare calls: {calls} for {} changes in {:.0} s, {limited} answered 429",
        2 * cycles,
        started.elapsed().as_secs_f64()
    );
    s.shutdown().await;
}

fn autoscaler_settings(sim: &RunningSim) -> flotilla_autoscaler::Settings {
    flotilla_autoscaler::Settings {
        probe: Probes::all(Probe {
            port: sim.health_port(),
            path: "/health".into(),
            ..Probe::default()
        }),
        ..flotilla_autoscaler::Settings::default()
    }
}

/// Figure 2: a template region with two reverse proxies, the real provisioner, autoscaler (default probe
/// settings) and dns service (default settings); one proxy's health listener stops; timed until the
/// health view says so and until its A record is gone. One fresh stack per run.
async fn dead_proxy() -> Vec<(Duration, Duration)> {
    let mut runs = Vec::new();
    for _ in 0..DEAD_RUNS {
        let mut s = Stack::start().await;
        let mut p = service_config::<flotilla_provisioner::Settings>(&s.nats, None, &s.dir.path().join("p"));
        p.clouds = s.sim.cloud_settings();
        p.service = sim::provisioner_settings(&s.sim);
        s.services.push(
            flotilla_runtime::host::start(flotilla_provisioner::DEF, p, flotilla_provisioner::routes)
                .await
                .unwrap(),
        );
        let mut a = service_config::<flotilla_autoscaler::Settings>(&s.nats, None, &s.dir.path().join("a"));
        a.service = autoscaler_settings(&s.sim);
        s.services.push(
            flotilla_runtime::host::start(flotilla_autoscaler::DEF, a, flotilla_autoscaler::routes)
                .await
                .unwrap(),
        );
        s.dns(flotilla_dns::Settings::default()).await;
        let d = templates::import(&[
            ("TOKEN", defaults::LINODE_TOKEN),
            ("INPARALLEL", "1"),
            ("WEBSITE_URL", SITE),
            ("NO_REVERSE_PROXY", "2"),
        ])
        .deployment;
        assert_eq!(
            (d.dns.provider, d.dns.zone.as_str()),
            (DnsProvider::Cloudflare, "example.com")
        );
        let region = d.regions[0].name.clone();
        Publisher::new(s.client.clone(), PublishConfig::default())
            .publish_command(&ApplyRegion {
                meta: CommandMeta::new("bench"),
                deployment: d.clone(),
                region: region.clone(),
                generation: next_generation(),
            })
            .await
            .unwrap();

        // Both proxies up, judged healthy by the prober, and in the record set.
        let observer = s.observer(DnsProvider::Cloudflare).await;
        let deadline = Instant::now() + PATIENCE;
        let proxies = loop {
            let fleet = s.topology.fleet_view().snapshot(Some(&d.name)).await.unwrap();
            let health = s.topology.health_view().snapshot(Some(&d.name)).await.unwrap();
            let proxies: Vec<MachineRecord> = fleet
                .into_values()
                .filter(|m| m.role == "reverse-proxy" && m.public_ipv4.is_some())
                .collect();
            let judged = proxies
                .iter()
                .filter(|m| {
                    health
                        .values()
                        .any(|h| h.resource_id == m.resource_id && h.healthy)
                })
                .count();
            if proxies.len() == 2 && judged == 2 {
                break proxies;
            }
            assert!(
                Instant::now() < deadline,
                "the proxies never came up and were judged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let ips: BTreeSet<String> = proxies.iter().filter_map(|m| m.public_ipv4.clone()).collect();
        observer
            .until(SITE, "both proxies in the record set", |now| *now == ips)
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;

        let victim = &proxies[0];
        let ip = victim.public_ipv4.clone().unwrap();
        let started = Instant::now();
        s.sim.add_fault(&Fault {
            provider: Provider::Linode,
            kind: FaultKind::Unhealthy {
                machine_id: victim.provider_id.clone().unwrap(),
            },
        });
        let mut judged = None;
        loop {
            if judged.is_none()
                && let Some(h) = s
                    .topology
                    .health_view()
                    .get(&victim.deployment, &victim.region, &victim.resource_id)
                    .await
                    .unwrap()
                && !h.healthy
            {
                judged = Some(started.elapsed());
            }
            if !observer.addresses(SITE).await.contains(&ip) {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the dead proxy never left the record set"
            );
            tokio::time::sleep(POLL).await;
        }
        let gone = started.elapsed();
        let judged = judged.unwrap_or(gone);
        println!(
            "  run {}: judged unhealthy after {:.2} s, its A record gone after {:.2} s",
            runs.len() + 1,
            judged.as_secs_f64(),
            gone.as_secs_f64()
        );
        runs.push((judged, gone));
        s.shutdown().await;
    }
    runs
}

/// Figure 3: a converged deployment on Cloudflare and one on Linode DNS, the service resyncing every 1 s;
/// the services' requests to each provider sampled every 5 ms and grouped into runs.
async fn noop_resync() {
    let mut s = Stack::start().await;
    s.dns(flotilla_dns::Settings {
        resync_interval: Duration::from_secs(1),
        ..flotilla_dns::Settings::default()
    })
    .await;
    let cf = deployment("bench-cf", DnsProvider::Cloudflare, 2);
    let li = deployment("bench-li", DnsProvider::Linode, 2);
    let (cf_obs, li_obs) = (
        s.observer(DnsProvider::Cloudflare).await,
        s.observer(DnsProvider::Linode).await,
    );
    for (d, base) in [(&cf, 10), (&li, 20)] {
        s.deploy(d).await;
        s.proxy(d, "rp0", &format!("198.51.100.{base}")).await;
        s.proxy(d, "rp1", &format!("198.51.100.{}", base + 1)).await;
    }
    cf_obs
        .until(SITE, "Cloudflare converged", |now| {
            *now == set(&["198.51.100.10", "198.51.100.11"])
        })
        .await;
    li_obs
        .until(SITE, "Linode converged", |now| {
            *now == set(&["198.51.100.20", "198.51.100.21"])
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let records = |o: &Observer| {
        let dns = Arc::clone(&o.dns);
        let zone = o.zone.clone();
        async move { dns.list_records(&zone, None, Some("A")).await.unwrap() }
    };
    let (cf_before, li_before) = (records(&cf_obs).await, records(&li_obs).await);

    // Sample; a run is a burst of requests separated from the next by more than half the interval.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut last = (s.calls(Provider::Cloudflare), s.calls(Provider::Linode));
    let mut last_change: Option<Instant> = None;
    let started = Instant::now();
    while runs.len() < RESYNCS || last_change.is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
        let now = (s.calls(Provider::Cloudflare), s.calls(Provider::Linode));
        if now != last {
            let new_run = last_change.is_none_or(|t| t.elapsed() > Duration::from_millis(500));
            if new_run {
                runs.push((0, 0));
            }
            let run = runs.last_mut().unwrap();
            run.0 += now.0 - last.0;
            run.1 += now.1 - last.1;
            last = now;
            last_change = Some(Instant::now());
        }
        assert!(started.elapsed() < PATIENCE, "the resyncs never came");
        tokio::time::sleep(POLL).await;
    }
    runs.truncate(RESYNCS);
    let unchanged = records(&cf_obs).await == cf_before && records(&li_obs).await == li_before;
    let per = |pick: fn(&(u64, u64)) -> u64| {
        let calls: BTreeSet<u64> = runs.iter().map(pick).collect();
        let total: u64 = runs.iter().map(pick).sum();
        (calls, total)
    };
    let (cf_calls, cf_total) = per(|r| r.0);
    let (li_calls, li_total) = per(|r| r.1);
    println!(
        "no-op resync (every 1 s, one zone per provider, {} runs): Cloudflare {cf_total} calls ({cf_calls:?} per run), \
         Linode DNS {li_total} calls ({li_calls:?} per run); records untouched: {unchanged}",
        runs.len()
    );
    s.shutdown().await;
}

/// Figure 4: [`BULK`] reverse proxies written to the fleet view at once (64 writes in flight), one
/// deployment on `provider`'s DNS, default settings; the service's requests counted from its first run
/// (zone found, nothing to do) to all records at the provider.
async fn bulk(provider: DnsProvider, sim_provider: Provider) {
    let mut s = Stack::start().await;
    s.dns(flotilla_dns::Settings::default()).await;
    let d = deployment("bench-bulk", provider, u32::try_from(BULK).unwrap());
    let observer = s.observer(provider).await;
    s.deploy(&d).await;
    // The first run: the zone found and read, nothing to do.
    let deadline = Instant::now() + PATIENCE;
    while s.calls(sim_provider) < 2 {
        assert!(Instant::now() < deadline, "no first run");
        tokio::time::sleep(POLL).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut events = s.client.subscribe("flotilla.evt.>").await.unwrap();
    let before = s.calls(sim_provider);

    let ips: Vec<String> = (0..BULK)
        .map(|i| format!("198.51.{}.{}", 100 + i / 200, 10 + i % 200))
        .collect();
    let started = Instant::now();
    futures::stream::iter(ips.iter().enumerate())
        .map(|(i, ip)| {
            let (s, d) = (&s, &d);
            async move {
                s.proxy(d, &format!("rp{i:03}"), ip).await;
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let written = started.elapsed();
    let want: BTreeSet<String> = ips.iter().cloned().collect();
    let seen = observer.until(SITE, "all the proxies", |now| *now == want).await;
    let wall = seen - started;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = s.calls(sim_provider) - before;
    let mut applies = 0;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        if let Some(AnyEvent::Records(r)) = flotilla_bus::decode_event(&msg)
            && r.deployment == d.name
        {
            applies += 1;
        }
    }
    println!(
        "{BULK} reverse proxies at once on {provider} DNS: {calls} API calls, {applies} records-changed \
         event(s), all at the provider {:.2} s after the first fleet write (the writes took {})",
        wall.as_secs_f64(),
        ms(written)
    );
    s.shutdown().await;
}

fn main() {
    let cycles = std::env::var("BENCH_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for debounce in [Duration::from_millis(250), Duration::from_millis(50)] {
            health_to_record(debounce, cycles).await;
        }
        println!("reverse proxy stops answering → its A record gone (default probe and dns settings):");
        let runs = dead_proxy().await;
        let mut judged: Vec<Duration> = runs.iter().map(|r| r.0).collect();
        let mut gone: Vec<Duration> = runs.iter().map(|r| r.1).collect();
        judged.sort();
        gone.sort();
        println!(
            "  median: judged unhealthy after {:.2} s, A record gone after {:.2} s",
            judged[judged.len() / 2].as_secs_f64(),
            gone[gone.len() / 2].as_secs_f64()
        );
        noop_resync().await;
        bulk(DnsProvider::Cloudflare, Provider::Cloudflare).await;
        bulk(DnsProvider::Linode, Provider::Linode).await;
    });
}
