//! The autoscaler's test harness: a private NATS, the simulator, the real provisioner and the autoscaler
//! (in this process, or as binaries), and what went over the bus.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_autoscaler::settings::{Probe, Probes};
use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_cloudsim::{RunningSim, defaults};
use flotilla_integration_tests::{TestNats, eventually, next_generation, service_config, sim, templates};
use flotilla_proto::{
    AnyEvent, ApplyRegion, CommandMeta, ExplainScaling, MachineHealth, RegionScaling, ScaleRegion,
    ScalingActivity, ScalingStatus,
};
use flotilla_runtime::host::Running;
use flotilla_spec::Deployment;
use futures::StreamExt;

pub const PATIENCE: Duration = Duration::from_secs(60);

/// What the test saw on the bus.
#[derive(Default)]
pub struct Seen {
    pub health: Vec<MachineHealth>,
    pub activities: Vec<ScalingActivity>,
    pub rejected: Vec<flotilla_proto::CommandRejected>,
    pub replace_commands: BTreeSet<String>,
    pub create_commands: BTreeSet<String>,
}

pub struct Harness {
    pub nats: TestNats,
    pub sim: RunningSim,
    pub dir: tempfile::TempDir,
    pub provisioner: Option<Running>,
    pub autoscaler: Option<Running>,
    pub client: async_nats::Client,
    pub publisher: Publisher,
    pub seen: Arc<Mutex<Seen>>,
    pub deployment: Deployment,
    /// The region the single-region helpers are about.
    pub region: String,
}

pub fn settings(sim: &RunningSim) -> flotilla_autoscaler::Settings {
    let probe = Probe {
        port: sim.health_port(),
        path: "/health".into(),
        interval: Duration::from_millis(250),
        timeout: Duration::from_millis(200),
        healthy_threshold: 1,
        unhealthy_threshold: 2,
        grace: Duration::from_secs(5),
        replace_after: 3,
    };
    flotilla_autoscaler::Settings {
        probe: Probes::all(probe),
        lease_ttl: Duration::from_secs(3),
        resync_interval: Duration::from_secs(1),
        drain_delay: Duration::from_millis(500),
        action_timeout: Duration::from_secs(60),
        backoff_base: Duration::from_secs(1),
        ..flotilla_autoscaler::Settings::default()
    }
}

impl Harness {
    /// One Linode region with `webservers` webservers (also its minimum), at most 5, a reverse proxy and the
    /// database machine, deployed by the provisioner; the autoscaler running beside it.
    pub async fn start(webservers: &str, tune: impl FnOnce(&mut flotilla_autoscaler::Settings)) -> Self {
        let import = templates::import(&[
            ("TOKEN", defaults::LINODE_TOKEN),
            ("INPARALLEL", "1"),
            ("NO_WEBSERVERS", webservers),
            ("MAX_WEBSERVERS", "5"),
        ]);
        let mut h = Self::new(import.deployment, |_| {}).await;
        let mut s = settings(&h.sim);
        tune(&mut s);
        h.start_autoscaler(s).await;
        h.apply(&h.region.clone()).await;
        h.converged(webservers.parse().unwrap()).await;
        h
    }

    /// NATS, the simulator and the provisioner (tuned by `tune`) for `deployment`, nothing applied, no
    /// autoscaler yet.
    pub async fn new(
        deployment: Deployment,
        tune: impl FnOnce(&mut flotilla_runtime::ServiceConfig<flotilla_provisioner::Settings>),
    ) -> Self {
        flotilla_integration_tests::init_logging();
        let nats = TestNats::private().await;
        let sim = sim::simulator(Duration::from_millis(50), Duration::from_millis(100)).await;
        let dir = tempfile::tempdir().unwrap();
        let region = deployment.regions[0].name.clone();
        let mut config = service_config::<flotilla_provisioner::Settings>(&nats, None, &dir.path().join("p"));
        config.clouds = sim.cloud_settings();
        config.service = sim::provisioner_settings(&sim);
        tune(&mut config);
        let provisioner =
            flotilla_runtime::host::start(flotilla_provisioner::DEF, config, flotilla_provisioner::routes)
                .await
                .unwrap();
        let client = nats.client().await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut events = client.subscribe("flotilla.evt.>").await.unwrap();
        let mut commands = client.subscribe("flotilla.cmd.provisioner.*.*.*").await.unwrap();
        let s = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = events.next() => {
                        let Some(m) = m else { return };
                        let header = |name: &str| {
                            m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned())
                        };
                        let kind = header(flotilla_proto::KIND_HEADER);
                        let ct = header(flotilla_proto::CONTENT_TYPE_HEADER);
                        let mut seen = s.lock().unwrap();
                        match AnyEvent::decode(kind.as_deref(), ct.as_deref(), &m.payload) {
                            Ok(Some(AnyEvent::Health(h))) => seen.health.push(h),
                            Ok(Some(AnyEvent::Activity(a))) => seen.activities.push(a),
                            Ok(Some(AnyEvent::Rejected(r))) => seen.rejected.push(r),
                            _ => {}
                        }
                    }
                    m = commands.next() => {
                        let Some(m) = m else { return };
                        let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned()).unwrap_or_default();
                        let mut seen = s.lock().unwrap();
                        if m.subject.ends_with(".replace-machine") {
                            seen.replace_commands.insert(id);
                        } else if m.subject.ends_with(".create-machines") {
                            seen.create_commands.insert(id);
                        }
                    }
                }
            }
        });
        let publisher = Publisher::new(client.clone(), PublishConfig::default());
        Self {
            nats,
            sim,
            dir,
            provisioner: Some(provisioner),
            autoscaler: None,
            client,
            publisher,
            seen,
            deployment,
            region,
        }
    }

    /// Has the provisioner apply `region`.
    pub async fn apply(&self, region: &str) {
        let apply = ApplyRegion {
            meta: CommandMeta::new("test"),
            deployment: self.deployment.clone(),
            region: region.to_owned(),
            generation: next_generation(),
        };
        self.publisher.publish_command(&apply).await.unwrap();
    }

    pub async fn start_autoscaler(&mut self, settings: flotilla_autoscaler::Settings) {
        let mut config =
            service_config::<flotilla_autoscaler::Settings>(&self.nats, None, &self.dir.path().join("a"));
        config.service = settings;
        self.autoscaler = Some(
            flotilla_runtime::host::start(flotilla_autoscaler::DEF, config, flotilla_autoscaler::routes)
                .await
                .unwrap(),
        );
    }

    pub async fn explain(&self) -> RegionScaling {
        self.try_explain().await.unwrap()
    }

    pub async fn try_explain(&self) -> Result<RegionScaling, flotilla_bus::api::ApiError> {
        self.try_explain_region(&self.region).await
    }

    /// The autoscaler's `explain` answer for `region`.
    pub async fn try_explain_region(
        &self,
        region: &str,
    ) -> Result<RegionScaling, flotilla_bus::api::ApiError> {
        let status: ScalingStatus = flotilla_bus::api::request(
            &self.client,
            &subject::api("autoscaler", "explain").unwrap(),
            &ExplainScaling {
                deployment: self.deployment.name.clone(),
                region: Some(region.to_owned()),
            },
            Duration::from_secs(5),
        )
        .await?;
        Ok(status.regions.into_iter().next().unwrap())
    }

    /// `Some` when the provisioner has `region` applied (not applying, blocked or failed).
    pub async fn provisioner_applied(&self, region: &str) -> Option<()> {
        let fleet: flotilla_proto::Fleet = flotilla_bus::api::request(
            &self.client,
            &subject::api("provisioner", "machines").unwrap(),
            &flotilla_proto::ListMachines {
                deployment: Some(self.deployment.name.clone()),
                region: Some(region.to_owned()),
            },
            Duration::from_secs(5),
        )
        .await
        .ok()?;
        fleet
            .regions
            .iter()
            .any(|r| r.region == region && r.status == "applied")
            .then_some(())
    }

    /// Waits until the region has `n` webservers, all healthy, and nothing under way.
    pub async fn converged(&self, n: u32) -> RegionScaling {
        self.converged_in(&self.region.clone(), n).await
    }

    /// Waits until `region` has `n` webservers, all healthy, and nothing under way.
    pub async fn converged_in(&self, region: &str, n: u32) -> RegionScaling {
        eventually(
            &format!("{n} healthy webservers and nothing under way"),
            PATIENCE,
            || async {
                self.provisioner_applied(region).await?;
                let r = self.try_explain_region(region).await.ok()?;
                let pending = r.activities.first().is_some_and(|a| a.ended_at.is_none());
                (r.current == n && r.healthy == n && r.desired == n && !pending && r.blocked.is_none())
                    .then_some(r)
            },
        )
        .await
    }

    pub async fn scale(&self, desired: u32) -> ScaleRegion {
        self.scale_region(&self.region.clone(), desired).await
    }

    pub async fn scale_region(&self, region: &str, desired: u32) -> ScaleRegion {
        let cmd = ScaleRegion {
            meta: CommandMeta::new("test"),
            deployment: self.deployment.name.clone(),
            region: region.to_owned(),
            desired,
        };
        self.publisher.publish_command(&cmd).await.unwrap();
        cmd
    }

    pub fn webservers_at_the_provider(&self) -> usize {
        self.at_the_provider("webserver").len()
    }

    /// The simulator's machines of `role` (by our marks).
    pub fn at_the_provider(&self, role: &str) -> Vec<flotilla_cloudsim::MachineInfo> {
        self.sim
            .machines()
            .into_iter()
            .filter(|m| {
                m.tags
                    .iter()
                    .any(|t| t.starts_with("fl-role") && t.ends_with(role))
            })
            .collect()
    }

    pub async fn stop(mut self) {
        if let Some(a) = self.autoscaler.take() {
            a.shutdown().await.unwrap();
        }
        if let Some(p) = self.provisioner.take() {
            p.shutdown().await.unwrap();
        }
        self.sim.shutdown().await;
    }
}
