//! What the sync service's tests share: a private NATS, the simulator's S3 endpoints (one per region, on
//! three providers), the deployment's desired state written as the provisioner writes it, the replicator
//! and any number of agents running in this process, each with its own webroot directory and database.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_bus::Topology;
use flotilla_cloudsim::RunningSim;
use flotilla_integration_tests::{TestNats, service_config, sim};
use flotilla_proto::{AnyEvent, DesiredDeployment};
use flotilla_spec::{DatastoreEndpoint, DatastoreProvider, Deployment};
use flotilla_sync::settings::{AgentSettings, Role, Settings};

/// How long a test waits for the webroots to converge.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The regions' datastores: three providers.
pub const ENDPOINTS: [(DatastoreProvider, &str); 3] = [
    (DatastoreProvider::Linode, "gb-lon-1.linodeobjects.com"),
    (DatastoreProvider::DigitalOcean, "ams3.digitaloceanspaces.com"),
    (DatastoreProvider::Exoscale, "sos-ch-gva-2.exo.io"),
];

/// One test's world.
pub struct Harness {
    pub nats: TestNats,
    pub sim: RunningSim,
    pub dir: tempfile::TempDir,
    pub client: async_nats::Client,
    pub topology: Topology,
    pub deployment: Deployment,
    pub replicator: Option<flotilla_runtime::host::Running>,
    pub agents: BTreeMap<String, flotilla_runtime::host::Running>,
    pub events: Arc<Mutex<Vec<AnyEvent>>>,
    /// The backup prefix every service started from now on is given (one configuration for all, as an
    /// operator would write it).
    pub backup_prefix: Option<String>,
}

/// The seed's deployment, its three regions syncing webroots through datastores on three providers.
pub fn deployment() -> Deployment {
    let mut d = flotilla_integration_tests::templates::seed_import().deployment;
    for (i, r) in d.regions.iter_mut().enumerate() {
        let (provider, host) = ENDPOINTS[i % ENDPOINTS.len()];
        r.sync_webroots = true;
        r.primary = i == 0;
        r.datastores = vec![DatastoreEndpoint {
            provider,
            host_base: host.into(),
            location: host.split('.').next().unwrap_or_default().into(),
        }];
    }
    d
}

impl Harness {
    /// NATS, the simulator and the deployment's desired state; no service yet.
    pub async fn start() -> Self {
        Self::start_with(deployment()).await
    }

    /// [`Harness::start`] with another deployment.
    pub async fn start_with(deployment: Deployment) -> Self {
        flotilla_integration_tests::init_logging();
        let nats = TestNats::private().await;
        let sim = sim::simulator(Duration::from_millis(10), Duration::from_millis(10)).await;
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
        let h = Self {
            nats,
            sim,
            dir,
            client,
            topology,
            deployment,
            replicator: None,
            agents: BTreeMap::new(),
            events,
            backup_prefix: None,
        };
        h.deploy().await;
        h
    }

    /// Writes the desired state (a new generation).
    pub async fn deploy(&self) {
        let desired = self.topology.desired_states();
        let current = desired.get(&self.deployment.name).await.unwrap();
        let value = DesiredDeployment {
            generation: flotilla_integration_tests::next_generation(),
            deployment: self.deployment.clone(),
            updated_at: chrono::Utc::now(),
            updated_by: "test".into(),
        };
        desired.put(&value, current.as_ref()).await.unwrap().unwrap();
    }

    pub fn settings(&self, name: &str) -> flotilla_runtime::ServiceConfig<Settings> {
        let mut n = service_config::<Settings>(&self.nats, None, &self.dir.path().join("data").join(name));
        n.clouds = self.sim.cloud_settings();
        n.service.debounce = Duration::from_millis(50);
        n.service.lease_ttl = Duration::from_secs(3);
        n.service.resync_interval = Duration::from_secs(60);
        n.service.backup_prefix = self.backup_prefix.clone();
        // Scheduled backups would depend on the time of day the test runs; their slots are unit-tested.
        n.service.backups.scheduled = false;
        n.service.backups.retry_interval = Duration::from_millis(300);
        n
    }

    /// Starts (again) the replicator.
    pub async fn start_replicator(&mut self) {
        let n = self.settings("replicator");
        self.replicator = Some(
            flotilla_runtime::host::start(flotilla_sync::DEF, n, flotilla_sync::routes)
                .await
                .unwrap(),
        );
    }

    /// Starts (again) the replicator keeping `keep` backups of `period`.
    pub async fn start_replicator_keeping(&mut self, period: &str, keep: usize) {
        let mut n = self.settings("replicator");
        n.service.backups.keep.insert(period.to_owned(), keep);
        self.replicator = Some(
            flotilla_runtime::host::start(flotilla_sync::DEF, n, flotilla_sync::routes)
                .await
                .unwrap(),
        );
    }

    /// Starts another replica of the replicator (its own data directory, the same NATS), returned to the
    /// caller to stop.
    pub async fn start_replica(&self, name: &str) -> flotilla_runtime::host::Running {
        let n = self.settings(name);
        flotilla_runtime::host::start(flotilla_sync::DEF, n, flotilla_sync::routes)
            .await
            .unwrap()
    }

    /// Stops the replicator.
    pub async fn stop_replicator(&mut self) {
        if let Some(s) = self.replicator.take() {
            s.shutdown().await.unwrap();
        }
    }

    /// The webroot of agent `machine`.
    pub fn webroot(&self, machine: &str) -> PathBuf {
        self.dir.path().join("webroots").join(machine)
    }

    /// Starts (again) the agent `machine` in `region` (an index of the deployment's regions) and waits
    /// until it is ready (caught up).
    pub async fn start_agent(&mut self, region: usize, machine: &str) {
        let mut n = self.settings(machine);
        n.service.role = Role::Agent;
        n.service.agent = Some(AgentSettings {
            deployment: self.deployment.name.clone(),
            region: self.deployment.regions[region].name.clone(),
            machine: machine.into(),
            webroot: self.webroot(machine),
            excludes: vec!["wp-config.php".into(), "**/*.tmp".into()],
        });
        let running = flotilla_runtime::host::start(flotilla_sync::DEF, n, flotilla_sync::routes)
            .await
            .unwrap();
        let ready = format!("http://{}/ready", running.admin_addr.unwrap());
        self.agents.insert(machine.into(), running);
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                if reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "agent {machine} never became ready");
    }

    /// Stops agent `machine`.
    pub async fn stop_agent(&mut self, machine: &str) {
        if let Some(s) = self.agents.remove(machine) {
            s.shutdown().await.unwrap();
        }
    }

    /// Every webroot's files and contents.
    pub fn trees(&self) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
        self.agents
            .keys()
            .map(|m| (m.clone(), tree(&self.webroot(m))))
            .collect()
    }

    /// Waits until `check` holds of every agent's webroot; the trees otherwise.
    pub async fn until_all(&self, what: &str, check: impl Fn(&BTreeMap<String, Vec<u8>>) -> bool) {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                if self.trees().values().all(&check) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "{what}: never in every webroot; they hold {:#?}",
            summary(&self.trees())
        );
    }

    /// The events seen so far.
    pub fn events(&self) -> Vec<AnyEvent> {
        self.events.lock().unwrap().clone()
    }
}

/// The files below `root` (temporary files of the agent included: a test must never see one).
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let key = flotilla_sync::local::key_of(root, e.path())?;
            let body = std::fs::read(e.path()).ok()?;
            Some((key, body))
        })
        .collect()
}

/// The trees with sizes instead of contents (for failure messages).
pub fn summary(
    trees: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> BTreeMap<String, BTreeMap<String, usize>> {
    trees
        .iter()
        .map(|(m, t)| (m.clone(), t.iter().map(|(k, v)| (k.clone(), v.len())).collect()))
        .collect()
}

/// Writes `body` at `key` below `root` as an editor would (parents created).
pub fn write(root: &Path, key: &str, body: &[u8]) {
    let path = root.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// How many files are below `root`.
pub fn tree_len(root: &Path) -> usize {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .count()
}

impl Harness {
    /// Publishes a command, as the CLI does.
    pub async fn command<C: flotilla_proto::Command>(&self, cmd: &C) {
        let publisher =
            flotilla_bus::Publisher::new(self.client.clone(), flotilla_bus::PublishConfig::default());
        publisher.publish_command(cmd).await.unwrap();
    }

    /// The answer of `flotilla.api.sync.show` for the deployment (whichever replica gives it).
    pub async fn show(&self) -> flotilla_proto::SyncView {
        flotilla_bus::api::request(
            &self.client,
            &flotilla_bus::subject::api("sync", "show").unwrap(),
            &flotilla_proto::ShowSync {
                deployment: self.deployment.name.clone(),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap()
    }

    /// Waits for an event `pick` recognises.
    pub async fn event<T>(&self, what: &str, pick: impl Fn(&AnyEvent) -> Option<T>) -> T {
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(t) = self.events().iter().find_map(&pick) {
                    return t;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("{what}: never seen"))
    }

    /// A client of `region`'s endpoint 1 (an index of the deployment's regions), as the tests' observer.
    pub fn datastore(&self, region: usize) -> flotilla_datastore::Datastore {
        flotilla_clouds::Clouds::new(self.sim.cloud_settings(), None)
            .datastores(&self.deployment.name, &self.deployment.regions[region])
            .unwrap()
            .primary()
            .clone()
    }
}
