//! The autoscaler's shared parts, its commands and its `explain` API.

use std::sync::Arc;

use chrono::Utc;
use flotilla_bus::lease::Leases;
use flotilla_bus::state::{Bucket, DesiredStates, FleetView, HealthView, Versioned};
use flotilla_bus::{HandlerError, Publisher, Topology, TopologyConfig, subject};
use flotilla_proto::{
    Command, ExplainScaling, PauseScaling, ProtectMachine, RegionScaling, ResumeScaling, ScaleRegion,
    ScalingState, ScalingStatus, SetSchedule, SetTargetTracking,
};
use flotilla_runtime::ApiFailure;
use flotilla_spec::Region;
use tokio::sync::{OnceCell, Semaphore};

use crate::plan::{self, Decision, Input};
use crate::settings::Settings;

/// Why the autoscaler's shared state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The bus (KV bucket) failed.
    #[error(transparent)]
    Bus(#[from] flotilla_bus::BusError),
    /// Other writers kept changing the state under a compare-and-set.
    #[error("{0} kept changing under this write")]
    Contended(String),
}

/// The KV bucket holding each region's [`ScalingState`].
pub const STATE_BUCKET: &str = "flotilla_autoscaler";

/// Command ids remembered per region (a redelivery of one of them changes nothing).
const APPLIED_KEPT: usize = 64;

/// Attempts of a compare-and-set that keeps losing before the command is retried.
const CAS_ATTEMPTS: usize = 5;

/// The autoscaler of one process: what its commands, its API and its region leaders share.
pub struct Autoscaler {
    /// Settings.
    pub settings: Settings,
    /// This instance's name in leases.
    pub instance: String,
    bus: TopologyConfig,
    /// The NATS connection.
    pub client: async_nats::Client,
    topology: Topology,
    states: OnceCell<Bucket<ScalingState>>,
    /// Desired states (the spec's bounds).
    pub desired: DesiredStates,
    /// The fleet view.
    pub fleet: FleetView,
    /// The health view (written by region leaders).
    pub health: HealthView,
    /// Leases (region leadership).
    pub leases: Leases,
    /// Publisher of commands and events.
    pub publisher: Publisher,
    /// Bounds the checks in flight over every region this instance leads.
    pub probes: Arc<Semaphore>,
    /// The HTTP client of health checks.
    pub http: reqwest::Client,
}

/// The key of a region's scaling state, its lease and its log lines: `<deployment>.<region>`.
pub fn region_key(deployment: &str, region: &str) -> Result<String, flotilla_bus::BusError> {
    subject::check_token("deployment", deployment)?;
    subject::check_token("region", region)?;
    Ok(format!("{deployment}.{region}"))
}

impl Autoscaler {
    /// An autoscaler over `topology`.
    pub fn new(
        settings: Settings,
        bus: TopologyConfig,
        client: async_nats::Client,
        topology: Topology,
        publisher: Publisher,
    ) -> Arc<Self> {
        let probes = Arc::new(Semaphore::new(settings.max_concurrent_probes));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            instance: uuid::Uuid::now_v7().to_string(),
            desired: topology.desired_states(),
            fleet: topology.fleet_view(),
            health: topology.health_view(),
            leases: topology.leases(),
            settings,
            bus,
            client,
            topology,
            states: OnceCell::new(),
            publisher,
            probes,
            http,
        })
    }

    /// The bucket of scaling states (created on first use).
    pub async fn states(&self) -> Result<&Bucket<ScalingState>, flotilla_bus::BusError> {
        self.states
            .get_or_try_init(|| async {
                self.topology
                    .service_bucket(
                        &self.bus,
                        STATE_BUCKET,
                        "Flotilla autoscaler: desired webserver count, pause, protections and actions per region",
                    )
                    .await
            })
            .await
    }

    /// A region's scaling state (a fresh one when none is stored).
    pub async fn state(
        &self,
        deployment: &str,
        region: &str,
    ) -> Result<(ScalingState, Option<u64>), flotilla_bus::BusError> {
        let key = region_key(deployment, region)?;
        Ok(match self.states().await?.get(&key).await? {
            Some(Versioned { value, revision }) => (value, Some(revision)),
            None => (
                ScalingState {
                    deployment: deployment.to_owned(),
                    region: region.to_owned(),
                    ..ScalingState::default()
                },
                None,
            ),
        })
    }

    /// Changes a region's scaling state by compare-and-set: `change` returns `false` when there is
    /// nothing to write. Retries a lost race a few times.
    pub async fn update(
        &self,
        deployment: &str,
        region: &str,
        mut change: impl FnMut(&mut ScalingState) -> bool,
    ) -> Result<ScalingState, StateError> {
        let key = region_key(deployment, region)?;
        for _ in 0..CAS_ATTEMPTS {
            let (mut state, revision) = self.state(deployment, region).await?;
            if !change(&mut state) {
                return Ok(state);
            }
            if self.states().await?.put_if(&key, &state, revision).await?.is_ok() {
                return Ok(state);
            }
        }
        Err(StateError::Contended(key))
    }

    /// The spec of `region` of `deployment`, from the desired state.
    pub async fn region_spec(&self, deployment: &str, region: &str) -> Result<Option<Region>, HandlerError> {
        let stored = self
            .desired
            .get(deployment)
            .await
            .map_err(|e| HandlerError::retry(format!("desired state: {e}")))?;
        Ok(stored.and_then(|s| s.value.deployment.region(region).cloned()))
    }

    /// Whether the provisioner has the region applied and idle — the only time the autoscaler starts an
    /// action (an apply in progress is still building the spec's count). `Err` says what it is doing
    /// instead, or that it cannot be asked.
    pub async fn provisioner_idle(&self, deployment: &str, region: &str) -> Result<(), String> {
        let subject = subject::api("provisioner", "machines").map_err(|e| e.to_string())?;
        let fleet: flotilla_proto::Fleet = flotilla_bus::api::request(
            &self.client,
            &subject,
            &flotilla_proto::ListMachines {
                deployment: Some(deployment.to_owned()),
                region: Some(region.to_owned()),
            },
            std::time::Duration::from_secs(5),
        )
        .await
        .map_err(|e| format!("the provisioner cannot be asked about the region: {e}"))?;
        match fleet.regions.iter().find(|r| r.region == region) {
            Some(r) if r.status == "applied" => Ok(()),
            Some(r) => Err(format!(
                "waiting for the provisioner: the region is {}{}",
                r.status,
                r.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
            )),
            None => Err("waiting for the provisioner: the region is not applied yet".into()),
        }
    }

    /// The region a command is about, or a rejection naming what is unknown.
    async fn known_region<C: Command>(&self, cmd: &C) -> Result<Region, HandlerError> {
        self.region_spec(cmd.deployment(), cmd.region())
            .await?
            .ok_or_else(|| {
                HandlerError::Reject(format!(
                    "region {} of deployment {} is not deployed (no desired state holds it)",
                    cmd.region(),
                    cmd.deployment()
                ))
            })
    }

    /// Applies `change` to the command's region once per command id.
    async fn once<C: Command>(
        &self,
        cmd: &C,
        mut change: impl FnMut(&mut ScalingState) -> bool,
    ) -> Result<(), HandlerError> {
        let id = cmd.meta().id.to_string();
        self.update(cmd.deployment(), cmd.region(), |state| {
            if state.applied.contains(&id) {
                return false;
            }
            change(state);
            state.applied.insert(0, id.clone());
            state.applied.truncate(APPLIED_KEPT);
            true
        })
        .await
        .map_err(|e| HandlerError::retry(format!("scaling state: {e}")))?;
        Ok(())
    }

    /// `autoscaler.scale`: sets the desired count, within the region's bounds.
    pub async fn scale(&self, cmd: ScaleRegion) -> Result<(), HandlerError> {
        let region = self.known_region(&cmd).await?;
        let bounds = region.scaling;
        if cmd.desired < bounds.min || cmd.desired > bounds.max {
            return Err(HandlerError::Reject(format!(
                "cannot scale region {} of deployment {} to {} webservers: its bounds are min {} and max {}",
                cmd.region, cmd.deployment, cmd.desired, bounds.min, bounds.max
            )));
        }
        tracing::info!(deployment = %cmd.deployment, region = %cmd.region, desired = cmd.desired, "scale");
        let cause = format!("scale command by {}", cmd.meta.issued_by);
        self.once(&cmd, |state| {
            state.desired = Some(cmd.desired);
            state.desired_cause = Some(cause.clone());
            true
        })
        .await
    }

    /// `autoscaler.schedule`: replaces the region's schedule; entries due before the command was issued
    /// never fire.
    pub async fn schedule(&self, cmd: SetSchedule) -> Result<(), HandlerError> {
        let region = self.known_region(&cmd).await?;
        for entry in &cmd.entries {
            crate::policy::check_entry(entry, &region.scaling).map_err(HandlerError::Reject)?;
        }
        self.once(&cmd, |state| {
            state.schedule = cmd.entries.clone();
            state.schedule_checked_at = Some(cmd.meta.issued_at);
            true
        })
        .await
    }

    /// `autoscaler.track`: sets or removes the region's target-tracking policy.
    pub async fn track(&self, cmd: SetTargetTracking) -> Result<(), HandlerError> {
        self.known_region(&cmd).await?;
        if let Some(p) = &cmd.policy {
            crate::policy::check_tracking(p).map_err(HandlerError::Reject)?;
            subject::check_token("metric", &p.metric).map_err(|e| HandlerError::Reject(e.to_string()))?;
        }
        self.once(&cmd, |state| {
            state.tracking = cmd.policy.clone();
            state.tracking_note = None;
            true
        })
        .await
    }

    /// `autoscaler.pause`.
    pub async fn pause(&self, cmd: PauseScaling) -> Result<(), HandlerError> {
        self.known_region(&cmd).await?;
        let reason = if cmd.reason.is_empty() {
            format!("paused by {}", cmd.meta.issued_by)
        } else {
            cmd.reason.clone()
        };
        self.once(&cmd, |state| {
            state.paused = Some(reason.clone());
            true
        })
        .await
    }

    /// `autoscaler.resume`.
    pub async fn resume(&self, cmd: ResumeScaling) -> Result<(), HandlerError> {
        self.known_region(&cmd).await?;
        self.once(&cmd, |state| {
            state.paused = None;
            true
        })
        .await
    }

    /// `autoscaler.protect`.
    pub async fn protect(&self, cmd: ProtectMachine) -> Result<(), HandlerError> {
        self.known_region(&cmd).await?;
        subject::check_token("resource id", &cmd.resource_id)
            .map_err(|e| HandlerError::Reject(e.to_string()))?;
        self.once(&cmd, |state| {
            state.protected.retain(|m| m != &cmd.resource_id);
            if cmd.protected {
                state.protected.push(cmd.resource_id.clone());
            }
            true
        })
        .await
    }

    /// `flotilla.api.autoscaler.explain`: each region's bounds, counts, leader and what blocks it.
    pub async fn explain(&self, req: ExplainScaling) -> Result<ScalingStatus, ApiFailure> {
        subject::check_token("deployment", &req.deployment).map_err(ApiFailure::bad_request)?;
        let stored = self
            .desired
            .get(&req.deployment)
            .await
            .map_err(ApiFailure::internal)?
            .ok_or_else(|| ApiFailure {
                code: 404,
                message: format!("deployment {} is not deployed", req.deployment),
            })?;
        let fleet = self
            .fleet
            .snapshot(Some(&req.deployment))
            .await
            .map_err(ApiFailure::internal)?;
        let health = self
            .health
            .snapshot(Some(&req.deployment))
            .await
            .map_err(ApiFailure::internal)?;
        let health_by_id: std::collections::BTreeMap<&str, &flotilla_proto::MachineHealth> =
            health.values().map(|h| (h.resource_id.as_str(), h)).collect();
        let mut regions = Vec::new();
        for region in &stored.value.deployment.regions {
            if req.region.as_ref().is_some_and(|r| r != &region.name) {
                continue;
            }
            let (state, _) = self
                .state(&req.deployment, &region.name)
                .await
                .map_err(ApiFailure::internal)?;
            let (webservers, replaceable) = plan::region_view(
                fleet.values().filter(|m| m.region == region.name),
                |id| {
                    let h = health_by_id.get(id)?;
                    Some(plan::Verdict {
                        healthy: Some(h.healthy),
                        failures: h.failures,
                        since: h.since,
                    })
                },
                &self.settings.probe,
            );
            let decision = plan::decide(&Input {
                now: Utc::now(),
                scaling: region.scaling,
                state: &state,
                webservers: &webservers,
                replaceable: &replaceable,
            });
            let desired = plan::desired(&region.scaling, &state);
            let current = u32::try_from(plan::counted(&webservers).count()).unwrap_or(u32::MAX);
            let idle = match &decision {
                Decision::Idle { .. } => Ok(()),
                _ => self.provisioner_idle(&req.deployment, &region.name).await,
            };
            let blocked = match decision {
                Decision::Idle { reason: None } => state.tracking_note.clone(),
                Decision::Idle { reason } => reason,
                _ if idle.is_err() => idle.err(),
                Decision::ScaleOut { count, target } => Some(format!(
                    "{current} webservers, {target} desired: {count} to create (the leader acts on it now)"
                )),
                Decision::ScaleIn { victims, target } => Some(format!(
                    "{current} webservers, {target} desired: {} to drain and destroy (the leader acts on it now)",
                    victims.join(", ")
                )),
                Decision::Replace { resource_id } => Some(format!(
                    "{resource_id} is unhealthy: to be replaced (the leader acts on it now)"
                )),
            };
            let leader = self
                .leases
                .holder(
                    &crate::leader::lease_key(&req.deployment, &region.name).map_err(ApiFailure::internal)?,
                )
                .await
                .map_err(ApiFailure::internal)?
                .map(|l| l.holder);
            let mut activities = state.activities.clone();
            if let Some(p) = &state.pending {
                activities.insert(0, p.activity.clone());
            }
            regions.push(RegionScaling {
                deployment: req.deployment.clone(),
                region: region.name.clone(),
                min: region.scaling.min,
                max: region.scaling.max,
                desired,
                current,
                healthy: u32::try_from(webservers.iter().filter(|w| w.healthy == Some(true)).count())
                    .unwrap_or(u32::MAX),
                paused: state.paused.clone(),
                protected: state.protected.clone(),
                leader,
                blocked,
                activities,
                schedule: state.schedule.clone(),
                tracking: state.tracking.clone(),
            });
        }
        if let Some(r) = &req.region
            && regions.is_empty()
        {
            return Err(ApiFailure {
                code: 404,
                message: format!("deployment {} has no region {r}", req.deployment),
            });
        }
        Ok(ScalingStatus { regions })
    }
}
