//! What the dns service's tests share: a private NATS, the simulator, the dns service in this process, and
//! the views it follows written as their owners write them (the desired state as the provisioner accepts
//! it, the fleet view as the provisioner records machines, the health view as the autoscaler's prober
//! judges them) — so each test says exactly which machines exist and which answer, and reads the records
//! back from the simulated provider.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_bus::Topology;
use flotilla_cloud::{Dns, DnsRecord, NewDnsRecord, Zone};
use flotilla_cloudsim::RunningSim;
use flotilla_integration_tests::{TestNats, eventually, service_config, sim};
use flotilla_proto::{AnyEvent, DesiredDeployment, MachineHealth, MachineRecord};
use flotilla_spec::{Deployment, DnsProvider};

/// How long a test waits for the records to converge.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One test's world.
pub struct Harness {
    pub nats: TestNats,
    pub sim: RunningSim,
    pub dir: tempfile::TempDir,
    pub client: async_nats::Client,
    pub topology: Topology,
    pub service: Option<flotilla_runtime::host::Running>,
    pub events: Arc<Mutex<Vec<AnyEvent>>>,
}

impl Harness {
    /// NATS, the simulator and the dns service (debounce 50 ms, resync `resync`).
    pub async fn start(resync: Duration) -> Self {
        Self::start_with(resync, None).await
    }

    /// As [`Harness::start`], with the service's database at `database_url` (its SQLite file when `None`).
    pub async fn start_with(resync: Duration, database_url: Option<String>) -> Self {
        let mut h = Self::without_service().await;
        h.start_service(resync, database_url).await;
        h
    }

    /// NATS and the simulator, the service not started.
    pub async fn without_service() -> Self {
        flotilla_integration_tests::init_logging();
        let nats = TestNats::private().await;
        let sim = sim::simulator(Duration::from_millis(50), Duration::from_millis(100)).await;
        let dir = tempfile::tempdir().unwrap();
        let client = nats.client().await;
        let topology = Topology::ensure(&client, &flotilla_bus::TopologyConfig::default())
            .await
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut sub = client.subscribe("flotilla.evt.>").await.unwrap();
        let seen = Arc::clone(&events);
        tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(msg) = sub.next().await {
                if let Some(e) = flotilla_bus::decode_event(&msg) {
                    seen.lock().unwrap().push(e);
                }
            }
        });
        Self {
            nats,
            sim,
            dir,
            client,
            topology,
            service: None,
            events,
        }
    }

    /// Starts (again) the dns service.
    pub async fn start_service(&mut self, resync: Duration, database_url: Option<String>) {
        let mut n =
            service_config::<flotilla_dns::Settings>(&self.nats, database_url, &self.dir.path().join("dns"));
        n.clouds = self.sim.cloud_settings();
        n.service.debounce = Duration::from_millis(50);
        n.service.resync_interval = resync;
        n.service.lease_ttl = Duration::from_secs(3);
        self.service = Some(
            flotilla_runtime::host::start(flotilla_dns::DEF, n, flotilla_dns::routes)
                .await
                .unwrap(),
        );
    }

    /// Stops the service.
    pub async fn stop_service(&mut self) {
        if let Some(s) = self.service.take() {
            s.shutdown().await.unwrap();
        }
    }

    /// Writes the desired state of `d` (a new generation).
    pub async fn deploy(&self, d: &Deployment) {
        let desired = self.topology.desired_states();
        let current = desired.get(&d.name).await.unwrap();
        let value = DesiredDeployment {
            generation: flotilla_integration_tests::next_generation(),
            deployment: d.clone(),
            updated_at: chrono::Utc::now(),
            updated_by: "test".into(),
        };
        desired.put(&value, current.as_ref()).await.unwrap().unwrap();
    }

    /// Records a machine in the fleet view, up (`healthy`), with `ip`.
    pub async fn machine(
        &self,
        d: &Deployment,
        region: &str,
        role: &str,
        id: &str,
        ip: &str,
    ) -> MachineRecord {
        let m = MachineRecord {
            deployment: d.name.clone(),
            region: region.into(),
            resource_id: id.into(),
            role: role.into(),
            name: id.into(),
            size: "s".into(),
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

    /// Removes a machine from the fleet view (destroyed).
    pub async fn destroy(&self, m: &MachineRecord) {
        self.topology
            .fleet_view()
            .remove(&m.deployment, &m.region, &m.resource_id)
            .await
            .unwrap();
    }

    /// Writes the prober's judgement of `m`.
    pub async fn health(&self, m: &MachineRecord, healthy: bool) {
        let h = MachineHealth {
            meta: flotilla_proto::EventMeta::new(uuid::Uuid::now_v7(), "test"),
            deployment: m.deployment.clone(),
            region: m.region.clone(),
            resource_id: m.resource_id.clone(),
            role: m.role.clone(),
            public_ipv4: m.public_ipv4.clone(),
            healthy,
            failures: u32::from(!healthy),
            reason: if healthy { "200 OK" } else { "connection refused" }.into(),
            checked_at: chrono::Utc::now(),
            since: chrono::Utc::now(),
        };
        self.topology.health_view().put(&h).await.unwrap();
    }

    /// The adapter and zone of `d`'s DNS, as the service uses them.
    pub async fn dns(&self, d: &Deployment) -> (Arc<dyn Dns>, Zone) {
        let clouds = flotilla_clouds::Clouds::new(
            flotilla_integration_tests::sim::observer_settings(&self.sim),
            None,
        );
        let primary = d.primary_region().unwrap();
        let dns = clouds.dns(&d.name, d.dns.provider, primary).unwrap();
        let zone = dns
            .find_zone(&d.dns.zone)
            .await
            .unwrap()
            .expect("the simulator's zone");
        (dns, zone)
    }

    /// The A records at `name`.
    pub async fn records(&self, d: &Deployment, name: &str) -> Vec<DnsRecord> {
        let (dns, zone) = self.dns(d).await;
        dns.list_records(&zone, None, Some("A"))
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.name.eq_ignore_ascii_case(name))
            .collect()
    }

    /// Waits until the A records at `name` hold exactly `want` (each address once).
    pub async fn wait_for(&self, d: &Deployment, name: &str, want: &[&str], what: &str) {
        let want: Vec<String> = {
            let mut w: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
            w.sort();
            w
        };
        let mut last = Vec::new();
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                let mut now: Vec<String> = self
                    .records(d, name)
                    .await
                    .into_iter()
                    .map(|r| r.content)
                    .collect();
                now.sort();
                if now == want {
                    return;
                }
                last = now;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(found.is_ok(), "{what}: {name} holds {last:?}, wanted {want:?}");
    }

    /// Creates a record by hand (a foreign one, or one the original toolkit wrote).
    pub async fn foreign(&self, d: &Deployment, name: &str, ip: &str) -> DnsRecord {
        let (dns, zone) = self.dns(d).await;
        dns.create_record(
            &zone,
            &NewDnsRecord {
                kind: "A".into(),
                name: name.into(),
                content: ip.into(),
                ttl: 300,
                proxied: (d.dns.provider == DnsProvider::Cloudflare).then_some(false),
                comment: None,
            },
        )
        .await
        .unwrap()
    }

    /// The events seen so far that `keep` picks.
    pub fn seen<T>(&self, keep: impl Fn(&AnyEvent) -> Option<T>) -> Vec<T> {
        self.events.lock().unwrap().iter().filter_map(keep).collect()
    }

    /// Asks `flotilla.api.dns.<verb>`.
    pub async fn api<Q: flotilla_proto::Message, A: flotilla_proto::Message>(
        &self,
        verb: &str,
        req: &Q,
    ) -> Result<A, flotilla_bus::api::ApiError> {
        flotilla_bus::api::request::<Q, A>(
            &self.client,
            &flotilla_bus::subject::api("dns", verb).unwrap(),
            req,
            Duration::from_secs(10),
        )
        .await
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        self.stop_service().await;
        self.sim.shutdown().await;
    }
}

/// A deployment of the seed's regions (the original toolkit's templates), named `name`, serving `site`
/// from DNS on `provider` in zone example.com; each region with `proxies` reverse proxies and
/// `authenticators` authenticators. `regions` limits it to the first so many.
pub fn deployment(
    name: &str,
    site: &str,
    provider: DnsProvider,
    regions: usize,
    proxies: u32,
    authenticators: u32,
) -> Deployment {
    let mut d = flotilla_integration_tests::templates::seed_import().deployment;
    d.name = name.into();
    d.website_url = site.into();
    d.dns.provider = provider;
    d.dns.zone = "example.com".into();
    d.regions.truncate(regions);
    for r in &mut d.regions {
        r.machines.reverse_proxy.count = proxies;
        r.machines.authenticator.count = authenticators;
    }
    d
}

/// The addresses of `records`.
pub fn addresses(records: &[DnsRecord]) -> BTreeSet<String> {
    records.iter().map(|r| r.content.clone()).collect()
}

/// Waits until `check` holds, polling.
pub async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut check = check;
    eventually(what, PATIENCE, || {
        let f = check();
        async move { f.await.then_some(()) }
    })
    .await;
}
