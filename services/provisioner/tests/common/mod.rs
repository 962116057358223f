//! What the provisioner's end-to-end tests share: the simulator's view of our machines, a recorder of every
//! event the service publishes, and a provisioner hosted in-process against a simulator and a private NATS.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_cloudsim::{MachineInfo, Provider, RunningSim};
use flotilla_integration_tests::{TestDb, TestNats, eventually, service_config};
use flotilla_proto::{
    CommandRejected, DbaasReady, Fleet, KIND_HEADER, ListMachines, MachineChanged, Message, RegionApplied,
};
use flotilla_provisioner::Settings;
use flotilla_spec::{Region, Role};
use futures::StreamExt;

/// How long any one wait of these tests may take before it fails (CI has two busy cores).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A machine of ours as the simulator holds it, with the marks its tags (or Exoscale labels) carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMachine {
    /// Provider.
    pub provider: Provider,
    /// The provider's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Provider region (zone).
    pub region: String,
    /// Size as the simulator holds it (Exoscale: `standard.tiny`).
    pub size: String,
    /// `fl-reg`: our region name.
    pub fl_region: String,
    /// `fl-role`.
    pub role: Option<Role>,
    /// `fl-id`: our resource id.
    pub resource_id: String,
    /// `provisioning` or `running`.
    pub status: String,
    /// Private (VPC) address.
    pub private_ip: Option<std::net::Ipv4Addr>,
}

/// The value of the `key:value` tag `key` (Exoscale labels are shown as `key:value` too).
fn tag_value(tags: &[String], key: &str) -> Option<String> {
    let prefix = format!("{key}:");
    tags.iter()
        .find_map(|t| t.strip_prefix(&prefix).map(str::to_owned))
}

fn ours(info: &MachineInfo, deployment: &str) -> Option<SimMachine> {
    let owned = info.tags.iter().any(|t| t == "flotilla" || t == "flotilla:true");
    if !owned || tag_value(&info.tags, "fl-dep").as_deref() != Some(deployment) {
        return None;
    }
    Some(SimMachine {
        provider: info.provider,
        id: info.id.clone(),
        name: info.name.clone(),
        region: info.region.clone(),
        size: info.size.clone(),
        fl_region: tag_value(&info.tags, "fl-reg").unwrap_or_default(),
        role: tag_value(&info.tags, "fl-role").and_then(|r| r.parse().ok()),
        resource_id: tag_value(&info.tags, "fl-id").unwrap_or_default(),
        status: info.status.clone(),
        private_ip: info.private_ip,
    })
}

/// Every machine the simulator holds that carries `deployment`'s marks.
pub fn sim_machines(sim: &RunningSim, deployment: &str) -> Vec<SimMachine> {
    sim.machines()
        .iter()
        .filter_map(|m| ours(m, deployment))
        .collect()
}

/// Those of one region (by our region name).
pub fn sim_region(sim: &RunningSim, deployment: &str, region: &str) -> Vec<SimMachine> {
    sim_machines(sim, deployment)
        .into_iter()
        .filter(|m| m.fl_region == region)
        .collect()
}

/// Machines per role.
pub fn per_role(machines: &[SimMachine]) -> BTreeMap<Role, usize> {
    let mut out = BTreeMap::new();
    for m in machines {
        if let Some(role) = m.role {
            *out.entry(role).or_insert(0) += 1;
        }
    }
    out
}

/// What `region`'s spec asks for, per role (roles of count 0 left out).
pub fn wanted(region: &Region) -> BTreeMap<Role, usize> {
    region
        .machines
        .iter()
        .filter(|(_, spec)| spec.count > 0)
        .map(|(role, spec)| (role, spec.count as usize))
        .collect()
}

/// Asserts that the simulator holds exactly what `region`'s spec asks for: per role the count, every
/// resource id once, the right size and provider region.
pub fn assert_exactly_the_spec(sim: &RunningSim, deployment: &str, region: &Region) -> Vec<SimMachine> {
    let machines = sim_region(sim, deployment, &region.name);
    assert_eq!(
        per_role(&machines),
        wanted(region),
        "region {}: machines per role at the simulator: {machines:#?}",
        region.name
    );
    let mut ids: Vec<&str> = machines.iter().map(|m| m.resource_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        machines.len(),
        "a resource id twice at the simulator: {machines:#?}"
    );
    for m in &machines {
        let spec = region
            .machines
            .get(m.role.expect("every machine of ours has a role"));
        assert_eq!(m.size, sim_size(region, &spec.size), "{m:?}");
        assert_eq!(m.region, region.provider_region, "{m:?}");
    }
    machines
}

/// A spec size as the simulator spells it (Exoscale's sizes are `family.size`).
pub fn sim_size(region: &Region, size: &str) -> String {
    if region.provider == flotilla_spec::CloudProvider::Exoscale && !size.contains('.') {
        format!("standard.{size}")
    } else {
        size.to_owned()
    }
}

#[allow(unused_imports)]
pub use flotilla_integration_tests::sim::{credentials as sim_credentials, endpoints, simulator};

/// Settings against `sim` with the simulator's credentials and test timings (no periodic reconciliation
/// unless a test asks for it).
pub fn settings(sim: &RunningSim) -> Settings {
    Settings {
        max_rounds: 5,
        ..flotilla_integration_tests::sim::provisioner_settings(sim)
    }
}

/// One event as published, in arrival order.
#[derive(Debug, Clone)]
pub enum Event {
    /// `flotilla.evt.machine.…`
    Machine(MachineChanged),
    /// `flotilla.evt.region.…`
    Region(RegionApplied),
    /// `flotilla.evt.dbaas.…`, with its payload as sent.
    Dbaas(DbaasReady, Vec<u8>),
    /// `flotilla.evt.command.…rejected`
    Rejected(CommandRejected),
    /// Anything else (its subject), or an event that did not decode (its subject and the error).
    Other(String),
}

/// Records every event under `flotilla.evt.>` from the moment it is started.
#[derive(Clone)]
pub struct EventLog {
    events: Arc<Mutex<Vec<Event>>>,
}

fn decode<M: Message>(kind: Option<&str>, payload: &[u8]) -> Result<M, String> {
    flotilla_proto::decode::<M>(kind, None, payload).map_err(|e| format!("undecodable {}: {e}", M::KIND))
}

impl EventLog {
    /// Subscribes (and flushes, so that nothing published after this returns is missed).
    pub async fn start(client: &async_nats::Client) -> Self {
        let mut sub = client.subscribe("flotilla.evt.>").await.unwrap();
        client.flush().await.unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let kind = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(KIND_HEADER))
                    .map(|v| v.to_string());
                let k = kind.as_deref();
                let event = match k {
                    Some(MachineChanged::KIND) => decode(k, &msg.payload).map(Event::Machine),
                    Some(RegionApplied::KIND) => decode(k, &msg.payload).map(Event::Region),
                    Some(DbaasReady::KIND) => {
                        decode(k, &msg.payload).map(|d| Event::Dbaas(d, msg.payload.to_vec()))
                    }
                    Some(CommandRejected::KIND) => decode(k, &msg.payload).map(Event::Rejected),
                    _ => Ok(Event::Other(msg.subject.to_string())),
                }
                // Kept, so that a test looking for the event fails saying why it is not there.
                .unwrap_or_else(|e| Event::Other(format!("{}: {e}", msg.subject)));
                sink.lock().unwrap().push(event);
            }
        });
        Self { events }
    }

    /// Everything so far.
    pub fn all(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The region events of `region`, in order.
    pub fn regions(&self, region: &str) -> Vec<RegionApplied> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                Event::Region(r) if r.region == region => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The machine events of `region`, in order.
    pub fn machines(&self, region: &str) -> Vec<MachineChanged> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                Event::Machine(m) if m.region == region => Some(m),
                _ => None,
            })
            .collect()
    }

    /// The machine events of one machine, in order.
    pub fn machine(&self, resource_id: &str) -> Vec<MachineChanged> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                Event::Machine(m) if m.resource_id == resource_id => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Waits until the command `command_id` is given up on, and returns why.
    pub async fn rejection(&self, command_id: &str) -> CommandRejected {
        self.wait(&format!("command {command_id} to be rejected"), |log| {
            log.iter().find_map(|e| match e {
                Event::Rejected(r) if r.command_id.as_deref() == Some(command_id) => Some(r.clone()),
                _ => None,
            })
        })
        .await
    }

    /// The rejected commands.
    pub fn rejected(&self) -> Vec<CommandRejected> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                Event::Rejected(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Waits for the region event of `region` caused by the command of `correlation` with `outcome`.
    pub async fn region_outcome(
        &self,
        region: &str,
        correlation: uuid::Uuid,
        outcome: &str,
    ) -> RegionApplied {
        eventually(
            &format!("a {outcome:?} region event for {region}"),
            PATIENCE,
            || {
                let found = self
                    .regions(region)
                    .into_iter()
                    .find(|r| r.meta.correlation_id == correlation && r.outcome == outcome);
                async move { found }
            },
        )
        .await
    }

    /// Waits for the first event that `pick` chooses.
    pub async fn wait<T>(&self, what: &str, pick: impl Fn(&[Event]) -> Option<T>) -> T {
        eventually(what, PATIENCE, || {
            let found = pick(&self.all());
            async move { found }
        })
        .await
    }
}

/// A provisioner hosted in this process against a simulator and a private NATS.
pub struct Fixture {
    /// The simulator.
    pub sim: RunningSim,
    /// NATS (private: the provisioner's durable consumer is this test's alone).
    pub nats: TestNats,
    /// A plain client.
    pub client: async_nats::Client,
    /// Publishes commands.
    pub publisher: Publisher,
    /// Every event.
    pub events: EventLog,
    /// The database.
    pub db: TestDb,
    svc: flotilla_runtime::host::Running,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts a provisioner on `db` with `settings` (see [`settings`]); `tweak` may change the rest of its
    /// configuration.
    pub async fn start(
        sim: RunningSim,
        db: TestDb,
        settings: Settings,
        tweak: impl FnOnce(&mut flotilla_runtime::ServiceConfig<Settings>),
    ) -> Self {
        flotilla_integration_tests::init_logging();
        let nats = TestNats::private().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = service_config::<Settings>(&nats, Some(db.url.clone()), dir.path());
        config.service = settings;
        config.clouds = sim.cloud_settings();
        config.consumer.ack_wait = Duration::from_secs(5);
        tweak(&mut config);
        let client = nats.client().await;
        let events = EventLog::start(&client).await;
        let svc =
            flotilla_runtime::host::start(flotilla_provisioner::DEF, config, flotilla_provisioner::routes)
                .await
                .expect("provisioner starts");
        let publisher = Publisher::new(client.clone(), PublishConfig::default());
        Self {
            sim,
            nats,
            client,
            publisher,
            events,
            db,
            svc,
            _dir: dir,
        }
    }

    /// Publishes `msg` as the command `verb` of `region`, with `msg_id` as its `Nats-Msg-Id`; returns whether
    /// the stream took it as a duplicate.
    pub async fn send<M: Message>(
        &self,
        deployment: &str,
        region: &str,
        verb: &str,
        msg_id: &str,
        msg: &M,
    ) -> bool {
        let subj = subject::command("provisioner", deployment, region, verb).unwrap();
        self.publisher
            .publish(&subj, msg_id, msg)
            .await
            .unwrap()
            .duplicate
    }

    /// `flotilla.api.provisioner.machines` for a deployment.
    pub async fn fleet(&self, deployment: &str) -> Fleet {
        fleet(&self.client, deployment).await
    }

    /// Stops the provisioner and the simulator and drops a PostgreSQL database.
    pub async fn stop(self) {
        self.svc.shutdown().await.unwrap();
        self.sim.shutdown().await;
        self.db.cleanup().await;
    }
}

/// `flotilla.api.provisioner.machines` for a deployment.
pub async fn fleet(client: &async_nats::Client, deployment: &str) -> Fleet {
    let subj = subject::api("provisioner", "machines").unwrap();
    flotilla_bus::api::request(
        client,
        &subj,
        &ListMachines {
            deployment: Some(deployment.to_owned()),
            region: None,
        },
        Duration::from_secs(10),
    )
    .await
    .expect("the machines API answers")
}

/// Asserts that our API lists exactly the machines the simulator holds for `region`, all healthy.
pub fn assert_api_matches(fleet: &Fleet, region: &str, at_sim: &[SimMachine]) {
    let view = fleet
        .regions
        .iter()
        .find(|r| r.region == region)
        .unwrap_or_else(|| panic!("region {region} is not listed: {fleet:?}"));
    let mut listed: Vec<(String, String)> = view
        .machines
        .iter()
        .map(|m| (m.resource_id.clone(), m.provider_id.clone().unwrap_or_default()))
        .collect();
    listed.sort();
    let mut held: Vec<(String, String)> = at_sim
        .iter()
        .map(|m| (m.resource_id.clone(), m.id.clone()))
        .collect();
    held.sort();
    assert_eq!(listed, held, "our record and the simulator differ in {region}");
    assert!(
        view.machines.iter().all(|m| m.state == "healthy"),
        "{:?}",
        view.machines
    );
}

/// A tiny deterministic generator (SplitMix64), so that a failing seed can be replayed.
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// Waits until the provisioner's consumer has nothing left to do: every command delivered and acknowledged
/// (or dead-lettered), none waiting for a redelivery.
pub async fn settled(client: &async_nats::Client) {
    let js = async_nats::jetstream::new(client.clone());
    eventually("every command to be handled", PATIENCE, || {
        let js = js.clone();
        async move {
            let stream = js.get_stream("FLOTILLA_COMMANDS").await.ok()?;
            let info = stream.consumer_info("provisioner-commands").await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        }
    })
    .await;
}

/// An `ApplyRegion` of `region` with a new command id.
pub fn apply(deployment: &flotilla_spec::Deployment, region: &str) -> flotilla_proto::ApplyRegion {
    flotilla_proto::ApplyRegion {
        meta: flotilla_proto::CommandMeta::new("test"),
        deployment: deployment.clone(),
        region: region.to_owned(),
        generation: flotilla_integration_tests::next_generation(),
    }
}
