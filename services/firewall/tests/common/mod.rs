//! What the firewall service's tests share: a private NATS, the simulator, the firewall service in this
//! process, the managed database and the machines created for real at the simulated providers, and the
//! views the service follows written as their owners write them (the desired state as the provisioner
//! accepts it, the fleet view as the provisioner records machines, the health view as the autoscaler's
//! prober judges them).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_bus::Topology;
use flotilla_cloud::{DatabaseRequest, Firewall, MachineRequest, Marks};
use flotilla_clouds::Clouds;
use flotilla_cloudsim::RunningSim;
use flotilla_integration_tests::{TestNats, service_config, sim};
use flotilla_proto::{AnyEvent, DesiredDeployment, MachineHealth, MachineRecord};
use flotilla_spec::{CloudProvider, Dbaas, Deployment, Role};

/// How long a test waits for the provider to converge.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One test's world.
pub struct Harness {
    pub nats: TestNats,
    pub sim: RunningSim,
    pub dir: tempfile::TempDir,
    pub client: async_nats::Client,
    pub topology: Topology,
    pub clouds: Clouds,
    pub service: Option<flotilla_runtime::host::Running>,
    pub events: Arc<Mutex<Vec<AnyEvent>>>,
}

/// The service's timing in tests.
#[derive(Clone, Copy)]
pub struct Timing {
    pub resync: Duration,
    pub expiry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(60),
            expiry: Duration::from_secs(600),
        }
    }
}

impl Harness {
    /// NATS, the simulator and the firewall service.
    pub async fn start(timing: Timing) -> Self {
        let mut h = Self::without_service().await;
        h.start_service(timing).await;
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
        // The observer's credentials: the tests' polling draws on a rate budget of its own.
        let clouds = Clouds::new(sim::observer_settings(&sim), None);
        Self {
            nats,
            sim,
            dir,
            client,
            topology,
            clouds,
            service: None,
            events,
        }
    }

    /// Starts (again) the firewall service.
    pub async fn start_service(&mut self, timing: Timing) {
        let mut n = service_config::<flotilla_firewall::Settings>(
            &self.nats,
            None,
            &self.dir.path().join("firewall"),
        );
        n.clouds = self.sim.cloud_settings();
        n.service.debounce = Duration::from_millis(50);
        n.service.resync_interval = timing.resync;
        n.service.expiry = timing.expiry;
        n.service.lease_ttl = Duration::from_secs(3);
        n.service.control_plane = vec!["198.51.100.7/32".parse().unwrap()];
        self.service = Some(
            flotilla_runtime::host::start(flotilla_firewall::DEF, n, flotilla_firewall::routes)
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

    /// Creates `d`'s managed database at its provider, as the provisioner does (its VPC only), ready.
    pub async fn database(&self, d: &Deployment) {
        let (home, label) = flotilla_firewall::plan::database_home(d).unwrap();
        let Some(Dbaas::Primary {
            version,
            provider_region,
            size,
            nodes,
            ..
        }) = &home.dbaas
        else {
            unreachable!()
        };
        let cloud = self.clouds.region(&d.name, home).unwrap();
        cloud
            .databases
            .create_database(&DatabaseRequest {
                name: label.into(),
                engine: version.clone(),
                region: provider_region.clone(),
                size: size.clone(),
                nodes: *nodes,
                vpc_id: None,
                subnet_id: None,
                allow_list: vec![home.vpc.cidr],
            })
            .await
            .unwrap();
        let ready = tokio::time::timeout(PATIENCE, async {
            loop {
                if cloud
                    .databases
                    .find_database(label)
                    .await
                    .unwrap()
                    .is_some_and(|db| db.is_ready())
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(ready.is_ok(), "the database never became ready");
    }

    /// Creates a machine of `role` in `region` at its provider and records it in the fleet view (state
    /// `created`, with its public address), as the provisioner does.
    pub async fn machine(&self, d: &Deployment, region: &str, role: Role, id: &str) -> MachineRecord {
        let r = d.region(region).unwrap();
        let cloud = self.clouds.region(&d.name, r).unwrap();
        let (size, image) = match r.provider {
            CloudProvider::Linode => ("g6-nanode-1", "linode/debian12"),
            CloudProvider::DigitalOcean => ("s-1vcpu-1gb", "debian-12-x64"),
            CloudProvider::Vultr => ("vc2-1c-1gb", "2136"),
            CloudProvider::Exoscale => ("standard.tiny", "Linux Debian 12 (Bookworm) 64-bit"),
        };
        let created = cloud
            .compute
            .create_machine(&MachineRequest {
                name: format!("{id}-{}", d.name),
                region: r.provider_region.clone(),
                size: size.into(),
                image: image.into(),
                vpc_id: None,
                subnet_id: None,
                firewall_id: None,
                ssh_keys: Vec::new(),
                user_data: None,
                marks: Marks {
                    deployment: d.name.clone(),
                    region: region.into(),
                    role: Some(role),
                    resource_id: id.into(),
                },
            })
            .await
            .unwrap();
        let mut ip = created.public_ipv4;
        while ip.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            ip = cloud.compute.get_machine(&created.id).await.unwrap().public_ipv4;
        }
        let m = MachineRecord {
            deployment: d.name.clone(),
            region: region.into(),
            resource_id: id.into(),
            role: role.as_str().into(),
            name: created.name.clone(),
            size: size.into(),
            provider: r.provider.to_string(),
            provider_id: Some(created.id.clone()),
            state: "created".into(),
            public_ipv4: ip.map(|i| i.to_string()),
            private_ipv4: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            event_id: uuid::Uuid::now_v7(),
        };
        self.topology.fleet_view().put(&m).await.unwrap();
        m
    }

    /// Destroys a machine: at its provider, and out of the fleet view.
    pub async fn destroy(&self, d: &Deployment, m: &MachineRecord) {
        let r = d.region(&m.region).unwrap();
        let cloud = self.clouds.region(&d.name, r).unwrap();
        cloud
            .compute
            .delete_machine(m.provider_id.as_deref().unwrap())
            .await
            .unwrap();
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

    /// The database's allow-list at its provider, normalised (sorted, `/32` for single addresses).
    pub async fn allow_list(&self, d: &Deployment) -> Vec<String> {
        let (home, label) = flotilla_firewall::plan::database_home(d).unwrap();
        let cloud = self.clouds.region(&d.name, home).unwrap();
        let db = cloud.databases.find_database(label).await.unwrap().unwrap();
        flotilla_firewall::plan::normalized(&db.allow_list)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Waits until the allow-list holds exactly `want` (normalised, any order).
    pub async fn wait_for_list(&self, d: &Deployment, want: &[String], what: &str) {
        let mut want: Vec<String> = want.to_vec();
        want.sort();
        let mut last = Vec::new();
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                let mut now = self.allow_list(d).await;
                now.sort();
                if now == want {
                    return;
                }
                last = now;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "{what}: the allow-list holds {last:?}, wanted {want:?}"
        );
    }

    /// The firewall of `role` in `region`, as its provider holds it.
    pub async fn firewall(&self, d: &Deployment, region: &str, role: Role) -> Option<Firewall> {
        let r = d.region(region).unwrap();
        let cloud = self.clouds.region(&d.name, r).unwrap();
        cloud
            .network
            .find_firewall(&flotilla_firewall::plan::firewall_name(r, role))
            .await
            .unwrap()
    }

    /// The events seen so far that `keep` picks.
    pub fn seen<T>(&self, keep: impl Fn(&AnyEvent) -> Option<T>) -> Vec<T> {
        self.events.lock().unwrap().iter().filter_map(keep).collect()
    }

    /// Asks `flotilla.api.firewall.<verb>`.
    pub async fn api<Q: flotilla_proto::Message, A: flotilla_proto::Message>(
        &self,
        verb: &str,
        req: &Q,
    ) -> Result<A, flotilla_bus::api::ApiError> {
        flotilla_bus::api::request::<Q, A>(
            &self.client,
            &flotilla_bus::subject::api("firewall", verb).unwrap(),
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

#[allow(unused_imports)] // not every test file of the firewall uses it
pub use flotilla_integration_tests::templates::four_providers;

/// `ip` as a /32 entry.
pub fn host(ip: &Option<String>) -> String {
    format!("{}/32", ip.as_deref().unwrap())
}

/// Waits until `check` holds, polling.
pub async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut check = check;
    flotilla_integration_tests::eventually(what, PATIENCE, || {
        let f = check();
        async move { f.await.then_some(()) }
    })
    .await;
}

/// Waits until `check` gives a value, polling; returns it.
pub async fn until_some<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    flotilla_integration_tests::eventually(what, PATIENCE, check).await
}
