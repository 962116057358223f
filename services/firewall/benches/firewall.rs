//! Firewall figures against the simulator over a real NATS, the firewall service in-process:
//! - a new webserver in a secondary region (its fleet-view write, as the provisioner makes it) until its
//!   address is in the primary's DBaaS allow-list at the provider, and a webserver destroyed until its
//!   address is gone: p50 and p99 at the default debounce (250 ms) and at 50 ms;
//! - the provider API calls and writes of one no-op reconcile (the periodic resync);
//! - the provider API calls, and the wall time, to follow a 1 → 50 scale-out of a secondary region.
//!
//! `PATH=.ci/venv/bin:$PATH cargo bench -p flotilla-firewall --bench firewall`. Prints figures; asserts
//! nothing about speed. `BENCH_CYCLES=<n>` sets the add/remove cycles of the first figure (50 by default).
//!
//! The seed's two Linode regions (gb-lon primary with the DBaaS, nl-ams secondary), `ACTIVE_FIREWALLS=3`.
//! The allow-list is read back through an observer credential of the simulator's own: its requests are
//! counted apart from the service's and draw on a rate budget of their own, so polling every 5 ms neither
//! slows the service nor shows in its call counts. The simulator enforces no rate limit; the service's
//! adapters keep Linode's published one on the client side.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla_bus::{Topology, TopologyConfig};
use flotilla_cloud::ManagedDatabases;
use flotilla_cloud::http::RateLimit;
use flotilla_cloudsim::{Credentials, Provider, RunningSim, SimConfig, Simulator, Token, defaults};
use flotilla_integration_tests::figures::{latencies, ms};
use flotilla_integration_tests::{TestNats, free_port, next_generation, service_config, templates};
use flotilla_proto::{DesiredDeployment, MachineRecord};
use flotilla_spec::{Dbaas, Deployment};

const PATIENCE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(5);
const OBSERVER: &str = "bench-observer";
const OBSERVER_LINODE: &str = "bench-observer-linode-token";
/// One change started at most this often in the first figure.
const PACE: Duration = Duration::from_millis(400);
/// No-op reconciles counted.
const RESYNCS: usize = 10;
/// The scale-out's target.
const SCALE_TO: u32 = 50;

struct Stack {
    nats: TestNats,
    sim: RunningSim,
    dir: tempfile::TempDir,
    topology: Topology,
    service: Option<flotilla_runtime::host::Running>,
    observer: flotilla_linode::LinodeCloud,
}

impl Stack {
    async fn start(settings: flotilla_firewall::Settings) -> Self {
        let mut credentials = Credentials::default();
        credentials.linode.push(Token::new(OBSERVER, OBSERVER_LINODE));
        let sim = Simulator::start(SimConfig {
            boot_delay: Duration::ZERO,
            database_delay: Duration::ZERO,
            health_port: free_port(),
            rate_limits: BTreeMap::new(),
            credentials,
            record_requests: true,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let nats = TestNats::private().await;
        let client = nats.client().await;
        let topology = Topology::ensure(&client, &TopologyConfig::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut n = service_config::<flotilla_firewall::Settings>(&nats, None, &dir.path().join("firewall"));
        n.clouds = sim.cloud_settings();
        n.service = settings;
        let service = flotilla_runtime::host::start(flotilla_firewall::DEF, n, flotilla_firewall::routes)
            .await
            .unwrap();
        let mut cfg = flotilla_linode::LinodeConfig::new(OBSERVER_LINODE).with_base_url(sim.linode_url());
        let unlimited = RateLimit {
            requests: 1_000_000,
            per: Duration::from_secs(1),
        };
        cfg.rate = Some(unlimited);
        cfg.create_rate = Some(unlimited);
        let observer = flotilla_linode::LinodeCloud::new(cfg).unwrap();
        Self {
            nats,
            sim,
            dir,
            topology,
            service: Some(service),
            observer,
        }
    }

    /// Writes `d`'s desired state and creates its managed database (ready at once here).
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
        let (home, label) = flotilla_firewall::plan::database_home(d).unwrap();
        let Some(Dbaas::Primary {
            version, size, nodes, ..
        }) = &home.dbaas
        else {
            unreachable!()
        };
        self.observer
            .create_database(&flotilla_cloud::DatabaseRequest {
                name: label.into(),
                engine: version.clone(),
                region: home.provider_region.clone(),
                size: size.clone(),
                nodes: *nodes,
                vpc_id: None,
                subnet_id: None,
                allow_list: vec![home.vpc.cidr],
            })
            .await
            .unwrap();
    }

    /// Records a webserver of the secondary region at `ip`, as the provisioner does once it has its
    /// address.
    async fn webserver(&self, d: &Deployment, id: &str, ip: &str) -> MachineRecord {
        let m = MachineRecord {
            deployment: d.name.clone(),
            region: "nl-ams".into(),
            resource_id: id.into(),
            role: "webserver".into(),
            name: id.into(),
            size: "g6-nanode-1".into(),
            provider: "linode".into(),
            provider_id: None,
            state: "created".into(),
            public_ipv4: Some(ip.into()),
            private_ipv4: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            event_id: uuid::Uuid::now_v7(),
        };
        self.topology.fleet_view().put(&m).await.unwrap();
        m
    }

    async fn destroy(&self, m: &MachineRecord) {
        self.topology
            .fleet_view()
            .remove(&m.deployment, &m.region, &m.resource_id)
            .await
            .unwrap();
    }

    /// The allow-list at the provider, read with the observer's credential.
    async fn list(&self) -> Vec<String> {
        let db = self
            .observer
            .find_database("test-cluster")
            .await
            .unwrap()
            .unwrap();
        db.allow_list.iter().map(ToString::to_string).collect()
    }

    /// Polls until the allow-list satisfies `done`; returns when it first did.
    async fn until(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Instant {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.list().await;
            if done(&now) {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "{what}: the list holds {now:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// The service's requests to Linode so far (its credential; the observer's are counted apart).
    fn calls(&self) -> u64 {
        self.sim
            .counters()
            .provider(Provider::Linode)
            .credentials
            .get(defaults::CREDENTIAL_NAME)
            .map_or(0, |c| c.requests)
    }

    /// Writes (anything but GET) received by Linode since the last call — all the service's: the observer
    /// only reads.
    fn writes(&self) -> usize {
        self.sim
            .take_requests()
            .iter()
            .filter(|r| r.provider == Provider::Linode && r.method != "GET")
            .count()
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.service.take() {
            s.shutdown().await.unwrap();
        }
        self.sim.shutdown().await;
        drop(self.nats);
        drop(self.dir);
    }
}

/// The seed's two Linode regions.
fn deployment(name: &str) -> Deployment {
    let mut d = templates::seed_import().deployment;
    d.name = name.into();
    d.regions.truncate(2);
    d
}

/// Figure 1: a webserver appearing in the secondary region, then destroyed, `cycles` times.
async fn machine_to_allow_list(debounce: Duration, cycles: usize) {
    let s = Stack::start(flotilla_firewall::Settings {
        debounce,
        ..flotilla_firewall::Settings::default()
    })
    .await;
    let d = deployment("bench-latency");
    s.deploy(&d).await;
    s.until("the VPC", |l| l == ["10.0.1.0/24"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for i in 0..cycles {
        let ip = format!("203.0.113.{}", 10 + i % 200);
        let host = format!("{ip}/32");
        let t = Instant::now();
        let m = s.webserver(&d, &format!("ws{i}"), &ip).await;
        let seen = s.until("the new address", |l| l.contains(&host)).await;
        added.push(seen - t);
        tokio::time::sleep_until((t + PACE).into()).await;
        let t = Instant::now();
        s.destroy(&m).await;
        let seen = s.until("the address gone", |l| !l.contains(&host)).await;
        removed.push(seen - t);
        tokio::time::sleep_until((t + PACE).into()).await;
    }
    println!(
        "fleet-view write → DBaaS allow-list at Linode, debounce {}:",
        ms(debounce)
    );
    println!("{}", latencies("new webserver → its address allowed", &added));
    println!(
        "{}",
        latencies("webserver destroyed → its address gone", &removed)
    );
    s.shutdown().await;
}

/// Figure 2: the calls and writes of [`RESYNCS`] no-op reconciles (resync every second), once converged.
async fn noop_reconcile() {
    let s = Stack::start(flotilla_firewall::Settings {
        resync_interval: Duration::from_secs(1),
        ..flotilla_firewall::Settings::default()
    })
    .await;
    let d = deployment("bench-noop");
    s.deploy(&d).await;
    s.webserver(&d, "ws0", "203.0.113.10").await;
    s.until("converged", |l| l.len() == 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = s.list().await;
    let (calls, _) = (s.calls(), s.writes());
    tokio::time::sleep(Duration::from_millis(RESYNCS as u64 * 1000 + 200)).await;
    let (calls, writes) = (s.calls() - calls, s.writes());
    println!(
        "no-op reconcile (every 1 s, {RESYNCS} runs, 2 regions × 4 roles of native firewalls + the allow-list): \
         {calls} Linode calls ({:.1} per run), {writes} writes; list untouched: {}",
        calls as f64 / RESYNCS as f64,
        s.list().await == before
    );
    s.shutdown().await;
}

/// Figure 3: the secondary region scaled 1 → [`SCALE_TO`] webservers at once (the fleet-view writes of the
/// provisioner), until every address is allowed.
async fn scale_out() {
    let s = Stack::start(flotilla_firewall::Settings::default()).await;
    let d = deployment("bench-scale");
    s.deploy(&d).await;
    s.webserver(&d, "ws0", "203.0.113.10").await;
    s.until("one webserver", |l| l.len() == 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (calls, _) = (s.calls(), s.writes());
    let t = Instant::now();
    for i in 1..SCALE_TO {
        s.webserver(&d, &format!("ws{i}"), &format!("203.0.113.{}", 10 + i))
            .await;
    }
    let seen = s
        .until("the scale-out", |l| l.len() == SCALE_TO as usize + 1)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "1 → {SCALE_TO} webservers: every address allowed after {}, {} Linode calls, {} writes",
        ms(seen - t),
        s.calls() - calls,
        s.writes()
    );
    s.shutdown().await;
}

fn main() {
    let cycles = std::env::var("BENCH_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for debounce in [Duration::from_millis(250), Duration::from_millis(50)] {
            machine_to_allow_list(debounce, cycles).await;
        }
        noop_reconcile().await;
        scale_out().await;
    });
}
