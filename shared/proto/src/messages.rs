//! The message types, grouped by the service that consumes them.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{CommandMeta, Message};

/// `provisioner.apply.v1`: make one region of a deployment match its spec.
///
/// Carries the whole deployment (without secrets: the spec type holds none) because a region's plan can
/// depend on the others (a secondary waits for the primary's DBaaS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApplyRegion {
    /// Command metadata.
    pub meta: CommandMeta,
    /// The deployment the region belongs to.
    pub deployment: flotilla_spec::Deployment,
    /// Name of the region to apply (one of `deployment.regions`).
    pub region: String,
    /// The generation of the deployment's desired state this apply was issued for (from
    /// `flotilla.api.provisioner.accept`). An apply older than the stored desired state whose region spec
    /// differs from it is refused as stale; one newer than it is accepted as the new desired state. 0 (a
    /// command without one) is refused.
    #[serde(default)]
    pub generation: u64,
}

impl Message for ApplyRegion {
    const KIND: &'static str = "provisioner.apply.v1";
}

/// `provisioner.destroy.v1`: remove everything Flotilla created in one region of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DestroyRegion {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// The generation of the deployment's desired state that no longer holds the region (from
    /// `flotilla.api.provisioner.withdraw`). A destroy older than the stored desired state is refused as
    /// stale, so a late destroy can never wipe a region deployed again after it. 0 is refused.
    #[serde(default)]
    pub generation: u64,
}

impl Message for DestroyRegion {
    const KIND: &'static str = "provisioner.destroy.v1";
}

/// `provisioner.machine-changed.v1`: a machine the provisioner manages changed state. Published on
/// `flotilla.evt.machine.<deployment>.<region>.<state>`; the dns, firewall and autoscaler services build
/// their view of the fleet from these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MachineChanged {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Our resource id.
    pub resource_id: String,
    /// Role (`webserver`, `reverse-proxy` …).
    pub role: String,
    /// Its name at the provider.
    #[serde(default)]
    pub name: String,
    /// Its size (plan) as the spec gives it.
    #[serde(default)]
    pub size: String,
    /// Provider (`linode` …).
    pub provider: String,
    /// The provider's id, once known.
    pub provider_id: Option<String>,
    /// `created`, `running`, `healthy`, `failed` or `destroyed`.
    pub state: String,
    /// Public IPv4, once known.
    pub public_ipv4: Option<String>,
    /// Private IPv4, once known.
    pub private_ipv4: Option<String>,
}

impl Message for MachineChanged {
    const KIND: &'static str = "provisioner.machine-changed.v1";
}

/// `provisioner.region-applied.v1`: an apply of a region finished (`outcome` = `applied` or `failed`).
/// Published on `flotilla.evt.region.<deployment>.<region>.<outcome>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegionApplied {
    /// Event metadata (its correlation id is the apply command's).
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// `applied`, `blocked` (waiting, e.g. for the primary region's DBaaS — not an error), `failed` or
    /// `destroyed`.
    pub outcome: String,
    /// Why it failed, or what it waits for.
    pub error: Option<String>,
    /// Machines created (resource ids).
    pub created: Vec<String>,
    /// Machines found already created by an earlier attempt.
    pub adopted: Vec<String>,
    /// Machines destroyed.
    pub destroyed: Vec<String>,
    /// Machines that never became healthy and were replaced.
    pub failed: Vec<String>,
}

impl Message for RegionApplied {
    const KIND: &'static str = "provisioner.region-applied.v1";
}

/// `provisioner.create-machines.v1`: `count` more machines of `role` in a region (the autoscaler's scale-out).
/// The region's wanted number of that role grows by `count` (a webserver count never past the region's
/// scaling maximum); a redelivery of the same command adds nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreateMachines {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Role of the new machines.
    pub role: flotilla_spec::Role,
    /// How many more (at least 1).
    pub count: u32,
}

impl Message for CreateMachines {
    const KIND: &'static str = "provisioner.create-machines.v1";
}

/// `provisioner.destroy-machine.v1`: destroy one machine (the autoscaler's scale-in); its role's wanted
/// number shrinks by one (a webserver count never below the region's scaling minimum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DestroyMachine {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Our resource id of the machine.
    pub resource_id: String,
}

impl Message for DestroyMachine {
    const KIND: &'static str = "provisioner.destroy-machine.v1";
}

/// `provisioner.replace-machine.v1`: replace one machine (unhealthy, say) — a new one of the same role is
/// created and, once healthy, the old one destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReplaceMachine {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Our resource id of the machine.
    pub resource_id: String,
}

impl Message for ReplaceMachine {
    const KIND: &'static str = "provisioner.replace-machine.v1";
}

/// `provisioner.reconcile.v1`: compare one region with its cloud now rather than at the next periodic pass
/// (sent by a service that noticed a machine gone or unreachable, or by an operator); the drift found is
/// corrected as the periodic reconciliation would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReconcileRegion {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
}

impl Message for ReconcileRegion {
    const KIND: &'static str = "provisioner.reconcile.v1";
}

/// `provisioner.dbaas-ready.v1`: the primary region's managed database is up. Published on
/// `flotilla.evt.dbaas.<deployment>.<region>.ready`. Carries where it is, never a credential: the services
/// of every region read the password from their local secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DbaasReady {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name (the primary).
    pub region: String,
    /// Provider (`linode` …).
    pub provider: String,
    /// The provider's id of the cluster.
    pub id: String,
    /// Its name (label).
    pub name: String,
    /// Engine.
    pub engine: String,
    /// Public host name.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Whether Flotilla created it (`false`: adopted).
    pub created: bool,
}

impl Message for DbaasReady {
    const KIND: &'static str = "provisioner.dbaas-ready.v1";
}

/// `provisioner.list-machines.v1`: the request of `flotilla.api.provisioner.machines`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListMachines {
    /// Only this deployment (all when `None`).
    #[serde(default)]
    pub deployment: Option<String>,
    /// Only this region (all when `None`).
    #[serde(default)]
    pub region: Option<String>,
}

impl Message for ListMachines {
    const KIND: &'static str = "provisioner.list-machines.v1";
}

/// `provisioner.fleet.v1`: the answer to [`ListMachines`]: the regions the provisioner knows, with their
/// machines and DBaaS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Fleet {
    /// Regions, by deployment then region name.
    pub regions: Vec<RegionView>,
}

impl Message for Fleet {
    const KIND: &'static str = "provisioner.fleet.v1";
}

/// One region as the provisioner records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegionView {
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Provider.
    pub provider: String,
    /// Whether it is the primary region.
    pub primary: bool,
    /// `applying`, `blocked` (waiting for the primary), `retrying` (failed, will be tried again), `applied`,
    /// `failed` (for good, until applied again).
    pub status: String,
    /// Why it is blocked or failed.
    pub detail: Option<String>,
    /// The region's VPC, once created or found.
    pub vpc_id: Option<String>,
    /// Machines, oldest first.
    pub machines: Vec<MachineView>,
    /// The managed database, in the primary region.
    pub dbaas: Option<DbaasView>,
}

/// One machine as the provisioner records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MachineView {
    /// Our resource id.
    pub resource_id: String,
    /// Role.
    pub role: String,
    /// Name at the provider.
    pub name: String,
    /// Size.
    pub size: String,
    /// `create-pending`, `provisioning`, `running`, `healthy`, `failed`, `destroying`.
    pub state: String,
    /// The provider's id.
    pub provider_id: Option<String>,
    /// Public IPv4.
    pub public_ipv4: Option<String>,
    /// Private IPv4.
    pub private_ipv4: Option<String>,
}

/// A managed database as the provisioner records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DbaasView {
    /// The provider's id.
    pub id: String,
    /// Name (label).
    pub name: String,
    /// Engine.
    pub engine: String,
    /// `creating` or `ready`.
    pub status: String,
    /// Public host name.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Whether Flotilla created it (and so removes it with the region).
    pub created: bool,
}

/// `provisioner.show-plan.v1`: the request of `flotilla.api.provisioner.plan`: what an apply of this
/// region would change, without changing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShowPlan {
    /// The deployment.
    pub deployment: flotilla_spec::Deployment,
    /// The region.
    pub region: String,
}

impl Message for ShowPlan {
    const KIND: &'static str = "provisioner.show-plan.v1";
}

/// `provisioner.plan.v1`: the answer to [`ShowPlan`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanView {
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// `create`, `exists` or `none` (the region has no VPC).
    pub vpc: String,
    /// `create`, `adopt`, `exists` (recorded) or `none`.
    pub dbaas: String,
    /// Machine steps, in the order an apply takes them.
    pub steps: Vec<PlanStepView>,
}

impl Message for PlanView {
    const KIND: &'static str = "provisioner.plan.v1";
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanStepView {
    /// `create` or `destroy`.
    pub action: String,
    /// Role.
    pub role: String,
    /// Size.
    pub size: String,
    /// Our resource id.
    pub resource_id: String,
    /// Why (`missing`, `surplus`, `wrong-size`, `failed`).
    pub reason: String,
}

/// `bus.command-rejected.v1`: published on `flotilla.evt.command.<deployment>.<region>.rejected` when a
/// service gives up on a command (undecodable, invalid, or out of retries) and sends it to its DLQ, so
/// whoever issued it learns why without reading the DLQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandRejected {
    /// The service that rejected it.
    pub service: String,
    /// The subject the command was published on.
    pub subject: String,
    /// Its `Nats-Msg-Id`, when it had one.
    pub command_id: Option<String>,
    /// Its kind header, when it had one.
    pub kind: Option<String>,
    /// Why it was rejected.
    pub error: String,
    /// How many times it had been delivered.
    pub deliveries: u64,
    /// When.
    pub rejected_at: DateTime<Utc>,
}

impl Message for CommandRejected {
    const KIND: &'static str = "bus.command-rejected.v1";
}

/// `service.status-request.v1`: the request body of `flotilla.api.<service>.status` (empty; reserved for
/// filters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceStatusRequest {}

impl Message for ServiceStatusRequest {
    const KIND: &'static str = "service.status-request.v1";
}

/// `service.status.v1`: one service instance's view of its own health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceStatus {
    /// Service name (`provisioner`, `dns`, …).
    pub service: String,
    /// Version of the binary.
    pub version: String,
    /// Id of this instance (the NATS service API id).
    pub instance: String,
    /// When this instance started.
    pub started_at: DateTime<Utc>,
    /// Whether the instance can reach its database.
    pub database_ok: bool,
    /// Commands acknowledged since start.
    pub commands_acked: u64,
    /// Commands handed back for a retry since start.
    pub commands_retried: u64,
    /// Commands sent to the dead-letter queue since start.
    pub commands_dead_lettered: u64,
}

impl Message for ServiceStatus {
    const KIND: &'static str = "service.status.v1";
}

/// `desired.deployment.v1`: the desired state of one deployment, as kept in the `flotilla_desired` KV bucket
/// under the deployment's name. Every service reads and watches it; only the provisioner writes it (when
/// it accepts a deploy, and when regions are withdrawn for a destroy), by compare-and-set, with a
/// generation that only grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DesiredDeployment {
    /// Grows by one with every accepted change of the spec; never reused, never lowered.
    pub generation: u64,
    /// The spec (no secrets). After every region was withdrawn it holds no region.
    pub deployment: flotilla_spec::Deployment,
    /// When this generation was accepted.
    pub updated_at: DateTime<Utc>,
    /// Who asked for it (`cli:<user>@<host>` …).
    #[serde(default)]
    pub updated_by: String,
}

impl Message for DesiredDeployment {
    const KIND: &'static str = "desired.deployment.v1";
}

/// `provisioner.accept.v1`: the request of `flotilla.api.provisioner.accept`: make `deployment` the desired
/// state. The provisioner validates it (`Deployment::check`) and stores it with the next generation — or,
/// when it equals the stored spec, keeps the stored generation and changes nothing. The answer is
/// [`Accepted`]; the applies the caller then publishes carry its generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptDeployment {
    /// The whole deployment (no secrets).
    pub deployment: flotilla_spec::Deployment,
    /// Who asks, for the audit trail.
    #[serde(default)]
    pub issued_by: String,
}

impl Message for AcceptDeployment {
    const KIND: &'static str = "provisioner.accept.v1";
}

/// `provisioner.withdraw.v1`: the request of `flotilla.api.provisioner.withdraw`: remove `regions` from the
/// deployment's desired state (before their destroy). Answered with [`Accepted`], whose generation the
/// destroys then carry. Regions already absent are ignored; a deployment that was never deployed is refused
/// (404).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WithdrawRegions {
    /// Deployment name.
    pub deployment: String,
    /// Regions to remove.
    pub regions: Vec<String>,
    /// Who asks, for the audit trail.
    #[serde(default)]
    pub issued_by: String,
}

impl Message for WithdrawRegions {
    const KIND: &'static str = "provisioner.withdraw.v1";
}

/// `provisioner.accepted.v1`: the answer to [`AcceptDeployment`] and [`WithdrawRegions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Accepted {
    /// Deployment name.
    pub deployment: String,
    /// The generation now stored.
    pub generation: u64,
    /// Whether this request changed the desired state (`false`: it was already so).
    pub changed: bool,
}

impl Message for Accepted {
    const KIND: &'static str = "provisioner.accepted.v1";
}

/// `fleet.machine.v1`: one machine as the fleet view holds it, in the `flotilla_fleet` KV bucket under
/// `<deployment>.<region>.<resource id>`. The provisioner writes it in the same step as each
/// [`MachineChanged`] event (and deletes it when the machine is destroyed), so a service that watches the
/// bucket gets every current machine and then every change, with nothing lost in between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MachineRecord {
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Our resource id.
    pub resource_id: String,
    /// Role (`webserver`, `reverse-proxy` …).
    pub role: String,
    /// Its name at the provider.
    pub name: String,
    /// Its size as the spec gives it.
    pub size: String,
    /// Provider (`linode` …).
    pub provider: String,
    /// The provider's id, once known.
    pub provider_id: Option<String>,
    /// `created`, `running`, `healthy` or `failed` (a destroyed machine is deleted from the view).
    pub state: String,
    /// Public IPv4, once known.
    pub public_ipv4: Option<String>,
    /// Private IPv4, once known.
    pub private_ipv4: Option<String>,
    /// When the provisioner first recorded it.
    pub created_at: DateTime<Utc>,
    /// When this record was written.
    pub updated_at: DateTime<Utc>,
    /// The id of the [`MachineChanged`] event written with it.
    pub event_id: uuid::Uuid,
}

impl Message for MachineRecord {
    const KIND: &'static str = "fleet.machine.v1";
}

// ---------------------------------------------------------------------------------------------------------
// The autoscaler.
// ---------------------------------------------------------------------------------------------------------

/// `autoscaler.scale.v1`: set the desired number of webservers of a region. Refused (with the bounds named)
/// when outside the region's `min..=max`. Setting the same number again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScaleRegion {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Desired webservers.
    pub desired: u32,
}

impl Message for ScaleRegion {
    const KIND: &'static str = "autoscaler.scale.v1";
}

/// `autoscaler.pause.v1`: stop scaling a region (the original toolkit's `SWITCH_OFF_SCALING`); unhealthy
/// machines are still reported, but nothing is created, destroyed or replaced until it is resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PauseScaling {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Why (shown in status).
    #[serde(default)]
    pub reason: String,
}

impl Message for PauseScaling {
    const KIND: &'static str = "autoscaler.pause.v1";
}

/// `autoscaler.resume.v1`: scale a paused region again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResumeScaling {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
}

impl Message for ResumeScaling {
    const KIND: &'static str = "autoscaler.resume.v1";
}

/// `autoscaler.protect.v1`: protect a machine from scale-in (or lift the protection). A protected machine
/// is never picked for scale-in; an unhealthy one is still replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProtectMachine {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Our resource id of the machine.
    pub resource_id: String,
    /// `true` to protect, `false` to lift the protection.
    pub protected: bool,
}

impl Message for ProtectMachine {
    const KIND: &'static str = "autoscaler.protect.v1";
}

/// `autoscaler.machine-health.v1`: a machine's health as the autoscaler — the one prober of the system —
/// sees it. Published on `flotilla.evt.health.<deployment>.<region>.<healthy|unhealthy>` when it changes,
/// and kept in the `flotilla_health` KV bucket under `<deployment>.<region>.<resource id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MachineHealth {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Our resource id.
    pub resource_id: String,
    /// Role (`webserver`, `reverse-proxy`, `authenticator`).
    pub role: String,
    /// The address probed.
    pub public_ipv4: Option<String>,
    /// Whether it answers its health check (after the configured thresholds).
    pub healthy: bool,
    /// Consecutive failed checks (0 when healthy).
    pub failures: u32,
    /// What the last check saw (`200 OK`, `connection refused`, `timed out after 2s` …).
    pub reason: String,
    /// When the last check ended.
    pub checked_at: DateTime<Utc>,
    /// Since when it has been in this state.
    pub since: DateTime<Utc>,
}

impl Message for MachineHealth {
    const KIND: &'static str = "autoscaler.machine-health.v1";
}

/// `autoscaler.activity.v1`: one scaling decision and how it went. Published on
/// `flotilla.evt.activity.<deployment>.<region>.<status>` whenever its status changes; the latest ones are
/// kept for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScalingActivity {
    /// Event metadata (its id is new for every status change; `id` stays).
    pub meta: crate::EventMeta,
    /// The activity's id.
    pub id: uuid::Uuid,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// What caused it (`scale command to 5`, `machine web-3 unhealthy`, `schedule 08:00 → 4` …).
    pub cause: String,
    /// `in-progress`, `waiting-for-warm-up`, `successful`, `failed` or `cancelled`.
    pub status: String,
    /// What it does or did.
    pub message: String,
    /// Percent done (0–100).
    pub progress: u8,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
}

impl Message for ScalingActivity {
    const KIND: &'static str = "autoscaler.activity.v1";
}

/// `autoscaler.explain.v1`: the request of `flotilla.api.autoscaler.explain` — the scaling state of the
/// regions of a deployment (one region when given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExplainScaling {
    /// Deployment name.
    pub deployment: String,
    /// One region, or every region when `None`.
    pub region: Option<String>,
}

impl Message for ExplainScaling {
    const KIND: &'static str = "autoscaler.explain.v1";
}

/// `autoscaler.scaling.v1`: the answer of `flotilla.api.autoscaler.explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScalingStatus {
    /// One entry per region.
    pub regions: Vec<RegionScaling>,
}

impl Message for ScalingStatus {
    const KIND: &'static str = "autoscaler.scaling.v1";
}

/// Why a region has the webservers it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegionScaling {
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// The spec's lower bound.
    pub min: u32,
    /// The spec's upper bound.
    pub max: u32,
    /// The desired count.
    pub desired: u32,
    /// Webservers in the fleet now (not failed).
    pub current: u32,
    /// Of those, healthy.
    pub healthy: u32,
    /// Whether scaling is paused, and why.
    pub paused: Option<String>,
    /// Machines protected from scale-in.
    pub protected: Vec<String>,
    /// The instance acting for this region (holding its lease), if any.
    pub leader: Option<String>,
    /// Why the region is not at `desired` now, or why nothing is being done (`cool-down until …`,
    /// `paused`, `backing off until …`, `waiting for warm-up` …); `None` when it is at `desired` and idle.
    pub blocked: Option<String>,
    /// The latest activities, newest first.
    pub activities: Vec<ScalingActivity>,
    /// The region's schedule.
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    /// The region's target tracking.
    #[serde(default)]
    pub tracking: Option<TargetTracking>,
}

/// `autoscaler.scaling-state.v1`: what the autoscaler keeps per region, shared by its replicas in its KV
/// bucket under `<deployment>.<region>`: what operators asked (desired count, pause, protections) and what
/// the region's leader is doing (the pending action, back-off, recent activities).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ScalingState {
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// The desired webserver count; `None` until set (the spec's initial count holds).
    pub desired: Option<u32>,
    /// Paused, with the reason.
    pub paused: Option<String>,
    /// Machines protected from scale-in.
    pub protected: Vec<String>,
    /// Ids of the latest commands applied (a redelivered command changes nothing twice).
    pub applied: Vec<String>,
    /// The action under way, if any.
    pub pending: Option<PendingAction>,
    /// Machines a replacement was ordered for (never twice).
    pub replaced: Vec<String>,
    /// Failed actions in a row (the back-off grows with them).
    pub failures: u32,
    /// No new action before this.
    pub backoff_until: Option<DateTime<Utc>>,
    /// The latest activities, newest first.
    pub activities: Vec<ScalingActivity>,
    /// What set the desired count last (`scale command by …`, `schedule 08:00`, `target tracking: …`).
    #[serde(default)]
    pub desired_cause: Option<String>,
    /// Scheduled changes of the desired count.
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    /// Schedule entries due after this fire (set when the schedule is set, moved on as entries fire).
    #[serde(default)]
    pub schedule_checked_at: Option<DateTime<Utc>>,
    /// The target-tracking policy, if any.
    #[serde(default)]
    pub tracking: Option<TargetTracking>,
    /// What target tracking last said when it did not change the count (cool-down, no metric …).
    #[serde(default)]
    pub tracking_note: Option<String>,
    /// When target tracking last raised the desired count (its scale-out cool-down runs from there).
    #[serde(default)]
    pub last_scale_out: Option<DateTime<Utc>>,
    /// When target tracking last lowered the desired count (its scale-in cool-down runs from there).
    #[serde(default)]
    pub last_scale_in: Option<DateTime<Utc>>,
}

/// One scheduled change of a region's desired webserver count, as the original toolkit's cron examples
/// did: at a time of day (UTC), on some weekdays or every day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleEntry {
    /// `HH:MM` or `HH:MM:SS`, UTC.
    pub at: String,
    /// `mon` … `sun`; every day when empty.
    #[serde(default)]
    pub days: Vec<String>,
    /// The desired count from then on (within the region's bounds).
    pub desired: u32,
}

/// Target tracking: keep a metric the webservers publish (`machine.metric.v1`) near `target` per webserver,
/// by changing the desired count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetTracking {
    /// The metric's name (`cpu` in percent, `rps` in requests per second …).
    pub metric: String,
    /// The value aimed at, per webserver (average over the warmed-up ones).
    pub target: f64,
    /// No new scale-out by target tracking within this many seconds of the last one.
    pub scale_out_cooldown_secs: u64,
    /// No new scale-in by target tracking within this many seconds of the last one.
    pub scale_in_cooldown_secs: u64,
    /// A new webserver's samples count only this many seconds after it was created.
    pub warmup_secs: u64,
}

/// `autoscaler.schedule.v1`: replace a region's schedule (empty: no schedule). Entries due before the
/// command was issued never fire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SetSchedule {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// The entries.
    pub entries: Vec<ScheduleEntry>,
}

impl Message for SetSchedule {
    const KIND: &'static str = "autoscaler.schedule.v1";
}

/// `autoscaler.track.v1`: set (or, with `None`, remove) a region's target-tracking policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetTargetTracking {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// The policy.
    pub policy: Option<TargetTracking>,
}

impl Message for SetTargetTracking {
    const KIND: &'static str = "autoscaler.track.v1";
}

/// `machine.metric.v1`: a sample a machine (its agent) publishes on
/// `flotilla.evt.metric.<deployment>.<region>.<metric>`; target tracking averages the webservers' latest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MachineMetric {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Our resource id of the machine.
    pub resource_id: String,
    /// The metric's name (`cpu`, `rps` …).
    pub metric: String,
    /// Its value.
    pub value: f64,
}

impl Message for MachineMetric {
    const KIND: &'static str = "machine.metric.v1";
}

impl Message for ScalingState {
    const KIND: &'static str = "autoscaler.scaling-state.v1";
}

/// One action of the autoscaler on a region, kept until it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PendingAction {
    /// The activity that tells of it.
    pub activity: ScalingActivity,
    /// `scale-out`, `scale-in` or `replace`.
    pub kind: String,
    /// Machines to create (scale-out).
    pub count: u32,
    /// Machines concerned (scale-in: to destroy; replace: the one replaced).
    pub machines: Vec<String>,
    /// The webserver count it aims at.
    pub target: u32,
    /// Id of the command it sends (the same one again after a restart: the provisioner acts once).
    pub command_id: uuid::Uuid,
    /// Scale-in: machines are destroyed after this (they drain until then).
    pub drain_until: Option<DateTime<Utc>>,
    /// When the command was sent (`None`: not yet).
    pub sent_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------------------------
// The dns service.
// ---------------------------------------------------------------------------------------------------------

/// `dns.show-records.v1`: the request of `flotilla.api.dns.records` — what the service would do to a
/// deployment's records now (nothing is changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShowRecords {
    /// Deployment name.
    pub deployment: String,
}

impl Message for ShowRecords {
    const KIND: &'static str = "dns.show-records.v1";
}

/// `dns.records.v1`: a deployment's records as the dns service sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecordsView {
    /// Deployment name.
    pub deployment: String,
    /// The zone.
    pub zone: String,
    /// The DNS provider.
    pub provider: String,
    /// Each managed name.
    pub names: Vec<NameView>,
    /// Machines that could serve a name but are not in it, and why.
    pub excluded: Vec<ExcludedMachine>,
    /// What an operator must hear about (every endpoint of a name gone …).
    pub alarms: Vec<String>,
    /// The region whose authenticator the authenticator name points at (the primary's unless failed
    /// over).
    #[serde(default)]
    pub active_authenticator: Option<String>,
}

impl Message for RecordsView {
    const KIND: &'static str = "dns.records.v1";
}

/// One managed name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NameView {
    /// Fully qualified name.
    pub name: String,
    /// The addresses it should hold.
    pub desired: Vec<String>,
    /// The addresses of the records it holds that are ours.
    pub current: Vec<String>,
    /// Addresses a run would add.
    pub creates: Vec<String>,
    /// Addresses a run would remove.
    pub deletes: Vec<String>,
    /// Records at the name that are not ours (left alone), with why.
    pub conflicts: Vec<String>,
}

/// A machine that could serve a name but is not in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExcludedMachine {
    /// Our resource id.
    pub resource_id: String,
    /// Region.
    pub region: String,
    /// Role.
    pub role: String,
    /// Its public address, if known.
    pub public_ipv4: Option<String>,
    /// Why it is not in the record.
    pub why: String,
}

/// The region token of the dns service's deployment-wide events (a deployment's records belong to no one
/// region): `flotilla.evt.<topic>.<deployment>._all.<name>`.
pub const ALL_REGIONS: &str = "_all";

/// `dns.failover.v1`: point the authenticator name of a deployment at the authenticator of `region`
/// (published on `flotilla.cmd.dns.<deployment>.<region>.failover`). Refused when the region is not
/// deployed or has no authenticator; sending it again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailoverAuthenticator {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// The region to make active.
    pub region: String,
}

impl Message for FailoverAuthenticator {
    const KIND: &'static str = "dns.failover.v1";
}

/// `dns.reconcile.v1`: reconcile a deployment's records now, instead of at the next change or resync
/// (published on `flotilla.cmd.dns.<deployment>.<region>.reconcile`, the region any of the deployment's).
/// Changes nothing that is already right; sending it again is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReconcileRecords {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// A region of the deployment.
    pub region: String,
}

impl Message for ReconcileRecords {
    const KIND: &'static str = "dns.reconcile.v1";
}

/// `dns.records-changed.v1`: the dns service changed the records of one name (published on
/// `flotilla.evt.records.<deployment>._all.<changed|partial>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecordsChanged {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// Always [`ALL_REGIONS`].
    pub region: String,
    /// The zone.
    pub zone: String,
    /// The DNS provider.
    pub provider: String,
    /// Fully qualified name.
    pub name: String,
    /// Addresses added.
    pub created: Vec<String>,
    /// Addresses removed.
    pub deleted: Vec<String>,
    /// Changes the provider refused, each with its reason (the others were applied).
    pub refused: Vec<String>,
    /// `changed`, or `partial` when some change was refused.
    pub outcome: String,
}

impl Message for RecordsChanged {
    const KIND: &'static str = "dns.records-changed.v1";
}

/// `dns.alarm.v1`: something about a deployment's records an operator must hear about, raised and cleared
/// (published on `flotilla.evt.dns-alarm.<deployment>._all.<raised|cleared>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DnsAlarm {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// Always [`ALL_REGIONS`].
    pub region: String,
    /// The name concerned.
    pub name: String,
    /// `no-healthy-endpoint`.
    pub alarm: String,
    /// Raised (true) or cleared (false).
    pub raised: bool,
    /// The addresses kept while it is raised.
    pub kept: Vec<String>,
    /// What happened, in words.
    pub message: String,
}

impl Message for DnsAlarm {
    const KIND: &'static str = "dns.alarm.v1";
}

/// `dns.authenticator-moved.v1`: the authenticator name now points at another region's authenticator
/// (published on `flotilla.evt.authenticator.<deployment>.<region>.<command|health>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthenticatorMoved {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// The region now active.
    pub region: String,
    /// The region active before (none: the primary by default).
    pub from: Option<String>,
    /// `command` or `health`.
    pub cause: String,
    /// Why, in words.
    pub reason: String,
}

impl Message for AuthenticatorMoved {
    const KIND: &'static str = "dns.authenticator-moved.v1";
}

/// `dns.hand-over.v1`: the request of `flotilla.api.dns.hand-over` — make the records of `names` (every
/// managed name of `deployment` when empty) that `from` owns belong to `deployment`, deleting nothing.
/// `from` is another deployment's name or an old install's ownership mark (`flotilla:<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HandOver {
    /// The deployment taking the records.
    pub deployment: String,
    /// The owner giving them.
    pub from: String,
    /// The names (fully qualified); every managed name of `deployment` when empty.
    #[serde(default)]
    pub names: Vec<String>,
    /// Say what would move without moving it.
    #[serde(default)]
    pub dry_run: bool,
}

impl Message for HandOver {
    const KIND: &'static str = "dns.hand-over.v1";
}

/// `dns.adopt.v1`: the request of `flotilla.api.dns.adopt` — make the unmarked A records at a deployment's
/// managed names (those the original toolkit wrote) the deployment's own, deleting nothing; the next run
/// then keeps the wanted ones and removes the stale ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Adopt {
    /// Deployment name.
    pub deployment: String,
    /// Say what would be adopted without adopting it.
    #[serde(default)]
    pub dry_run: bool,
}

impl Message for Adopt {
    const KIND: &'static str = "dns.adopt.v1";
}

/// `dns.ownership.v1`: the answer of `hand-over` and `adopt` — the records whose owner changed (or would).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OwnershipChanged {
    /// Deployment name.
    pub deployment: String,
    /// `name address` of each record.
    pub records: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl Message for OwnershipChanged {
    const KIND: &'static str = "dns.ownership.v1";
}

// ---------------------------------------------------------------------------------------------------------
// The firewall service.
// ---------------------------------------------------------------------------------------------------------

/// `firewall.reconcile.v1`: reconcile a deployment's firewalls and its DBaaS allow-list now, instead of at
/// the next change or resync (published on `flotilla.cmd.firewall.<deployment>.<region>.reconcile`, the
/// region any of the deployment's). Changes nothing that is already right; sending it again is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReconcileFirewalls {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// A region of the deployment.
    pub region: String,
}

impl Message for ReconcileFirewalls {
    const KIND: &'static str = "firewall.reconcile.v1";
}

/// `firewall.show.v1`: the request of `flotilla.api.firewall.show` — a deployment's firewalls and
/// allow-list, desired and at the provider (nothing is changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShowFirewalls {
    /// Deployment name.
    pub deployment: String,
}

impl Message for ShowFirewalls {
    const KIND: &'static str = "firewall.show.v1";
}

/// `firewall.view.v1`: a deployment's firewalls and DBaaS allow-list as the firewall service sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FirewallsView {
    /// Deployment name.
    pub deployment: String,
    /// The managed database's allow-list; `None` when the deployment has no DBaaS.
    pub allow_list: Option<AllowListView>,
    /// One entry per region and role.
    pub firewalls: Vec<FirewallView>,
}

impl Message for FirewallsView {
    const KIND: &'static str = "firewall.view.v1";
}

/// A DBaaS allow-list, desired and current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllowListView {
    /// The provider hosting the database.
    pub provider: String,
    /// The region of the deployment hosting it.
    pub region: String,
    /// The database's label.
    pub database: String,
    /// What it should hold, each entry with why.
    pub desired: Vec<AllowedEntry>,
    /// What the provider holds (`None`: the database was not found, or could not be read).
    pub current: Option<Vec<String>>,
    /// Entries a run would add.
    pub adds: Vec<String>,
    /// Entries a run would remove.
    pub removes: Vec<String>,
    /// Machines that could need the database but are not allowed, and why.
    pub excluded: Vec<ExcludedMachine>,
    /// Why a run would not write now (the database is not ready, a provider limit …), if it would not.
    pub blocked: Option<String>,
}

/// One allow-list entry and why it is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllowedEntry {
    /// The range (`203.0.113.4/32`, `10.0.1.0/24`).
    pub cidr: String,
    /// Why, in words.
    pub why: String,
    /// The machine it is for, if it is for one.
    pub resource_id: Option<String>,
}

/// The firewall of one role in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FirewallView {
    /// Region name.
    pub region: String,
    /// Role.
    pub role: String,
    /// Its name at the provider.
    pub name: String,
    /// The provider.
    pub provider: String,
    /// Whether the provider's own firewall is managed (`ACTIVE_FIREWALLS` 2 or 3).
    pub native: bool,
    /// Whether the machines apply the rules themselves (`ACTIVE_FIREWALLS` 1 or 3).
    pub on_machine: bool,
    /// The inbound rules it should have.
    pub desired: Vec<RuleView>,
    /// The rules it has at the provider (`None`: not managed, or not created yet).
    pub current: Option<Vec<RuleView>>,
    /// Our machines attached to it (resource ids).
    pub attached: Vec<String>,
    /// Our machines of the role a run would attach.
    pub to_attach: Vec<String>,
}

/// One inbound allow rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct RuleView {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// `all`, one port (`443`) or a range (`8000-8100`).
    pub ports: String,
    /// Source ranges.
    pub sources: Vec<String>,
    /// What it is for.
    pub description: String,
}

/// `firewall.why.v1`: the request of `flotilla.api.firewall.why` — is `ip` allowed to reach the
/// deployment's managed database, and why (not)?
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WhyAllowed {
    /// Deployment name.
    pub deployment: String,
    /// The address asked about.
    pub ip: String,
}

impl Message for WhyAllowed {
    const KIND: &'static str = "firewall.why.v1";
}

/// `firewall.verdict.v1`: the answer of `flotilla.api.firewall.why`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllowVerdict {
    /// Deployment name.
    pub deployment: String,
    /// The address asked about.
    pub ip: String,
    /// Whether the service wants it allowed.
    pub desired: bool,
    /// Whether the provider's list allows it now (`None`: not read).
    pub at_provider: Option<bool>,
    /// Why, in words.
    pub why: String,
}

impl Message for AllowVerdict {
    const KIND: &'static str = "firewall.verdict.v1";
}

/// `firewall.machine-rules.v1`: the request of `flotilla.api.firewall.machine-rules` — the rules one
/// machine applies itself (`ACTIVE_FIREWALLS` 1 or 3: ufw/iptables on the machine).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShowMachineRules {
    /// Deployment name.
    pub deployment: String,
    /// The machine's resource id.
    pub resource_id: String,
}

impl Message for ShowMachineRules {
    const KIND: &'static str = "firewall.machine-rules.v1";
}

/// `firewall.rule-set.v1`: the rules of one role in one region — the answer of
/// `flotilla.api.firewall.machine-rules`, and the event on-machine firewalls follow (published on
/// `flotilla.evt.rules.<deployment>.<region>.<role>` when the set changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleSet {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Role.
    pub role: String,
    /// Whether the machines apply them themselves.
    pub on_machine: bool,
    /// Inbound allow rules; everything else inbound is dropped.
    pub rules: Vec<RuleView>,
}

impl Message for RuleSet {
    const KIND: &'static str = "firewall.rule-set.v1";
}

/// `firewall.allow-list-changed.v1`: the DBaaS allow-list was written (published on
/// `flotilla.evt.allow-list.<deployment>.<region>.<changed|restored>`, the region the database's; `restored`
/// when it had been changed behind our back). A machine waiting for the database can wait for its address
/// in `added`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllowListChanged {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// The region hosting the database.
    pub region: String,
    /// The provider hosting it.
    pub provider: String,
    /// The database's label.
    pub database: String,
    /// Entries added.
    pub added: Vec<String>,
    /// Entries removed.
    pub removed: Vec<String>,
    /// The machines newly allowed (resource ids).
    pub machines: Vec<String>,
    /// `changed`, or `restored` when the provider's list was not what we last wrote.
    pub outcome: String,
    /// What happened, in words.
    pub message: String,
}

impl Message for AllowListChanged {
    const KIND: &'static str = "firewall.allow-list-changed.v1";
}

/// `firewall.changed.v1`: a firewall was created, its rules written, or machines attached (published on
/// `flotilla.evt.firewall.<deployment>.<region>.<created|updated|restored|attached>`; `restored` when its
/// rules had been changed behind our back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FirewallChanged {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Role.
    pub role: String,
    /// Its name at the provider.
    pub firewall: String,
    /// The provider.
    pub provider: String,
    /// `created`, `updated`, `restored` or `attached`.
    pub outcome: String,
    /// The rules it has now.
    pub rules: Vec<RuleView>,
    /// Machines attached by this change (resource ids).
    pub attached: Vec<String>,
    /// What happened, in words.
    pub message: String,
}

impl Message for FirewallChanged {
    const KIND: &'static str = "firewall.changed.v1";
}

// ---------------------------------------------------------------------------------------------------------
// Sync: webroots, assets and backups kept in step across regions
// ---------------------------------------------------------------------------------------------------------

/// `sync.reconcile.v1`: replicate a deployment's buckets between its regions now, instead of at the next
/// change or resync (published on `flotilla.cmd.sync.<deployment>.<region>.reconcile`, the region any of
/// the deployment's). Copies nothing that is already in step; sending it again is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReconcileSync {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// A region of the deployment.
    pub region: String,
}

impl Message for ReconcileSync {
    const KIND: &'static str = "sync.reconcile.v1";
}

/// `sync.backup.v1`: take a backup of the deployment's webroot now (published on
/// `flotilla.cmd.sync.<deployment>.<region>.backup`, the region whose webroot — any, they are in step).
/// The archive goes to every datastore of the deployment; an endpoint that fails is filled in later. The
/// command's id names the archive, so a redelivered command writes no second one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TakeBackup {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// The region whose webroot is archived.
    pub region: String,
    /// The period it is kept under (`manual` when taken by hand; `hourly`, `daily`, `weekly`, `monthly`,
    /// `bimonthly` as the schedule takes them).
    #[serde(default = "manual")]
    pub period: String,
}

fn manual() -> String {
    "manual".into()
}

impl Message for TakeBackup {
    const KIND: &'static str = "sync.backup.v1";
}

/// `sync.restore.v1`: put a backup back into the deployment's webroot (published on
/// `flotilla.cmd.sync.<deployment>.<region>.restore`): the newest archive (or the newest at or before `at`)
/// whose checksum verifies, from any provider (or only `from`); the agents then apply it like any change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RestoreBackup {
    /// Command metadata.
    pub meta: CommandMeta,
    /// Deployment name.
    pub deployment: String,
    /// The region whose webroot is restored (the others follow by replication).
    pub region: String,
    /// Only from this provider's datastores (`linode`, `digitalocean`, `vultr`, `exoscale`).
    #[serde(default)]
    pub from: Option<String>,
    /// The newest archive taken at or before this time (default: the newest).
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

impl Message for RestoreBackup {
    const KIND: &'static str = "sync.restore.v1";
}

/// `sync.applied.v1`: objects were copied or deleted to keep a bucket in step (published on
/// `flotilla.evt.sync.<deployment>.<region>.<outcome>`): `pushed` by an agent from its webroot to its
/// region's datastore, `pulled` by an agent from there into its webroot, `replicated` by the replicator
/// between two regions' datastores, `restored` by the replicator when a backup was put back into a
/// region's datastore, `held-back` when the max-delete guard stopped deletions, `failed` when some actions
/// failed (they are tried again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncApplied {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// The region whose webroot or datastore changed (for `replicated`, the region replicated with
    /// `peer`).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Who applied it: an agent's machine (resource id), or `replicator`.
    pub origin: String,
    /// For `replicated`: the other region of the pair.
    #[serde(default)]
    pub peer: Option<String>,
    /// For an agent's `pushed`: the datastore endpoint written to (`<provider>:<host>`), so that the agents
    /// of every region sharing that endpoint pull (no replication carries a change between them).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// For `replicated`: every datastore endpoint (`<provider>:<host>`) the pass changed. Regions sharing an
    /// endpoint are replicated once, under one of their names, so the agents of the others match on this.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// `pushed`, `pulled`, `replicated`, `restored`, `held-back` or `failed`.
    pub outcome: String,
    /// Keys copied (at most [`SYNC_EVENT_KEYS`]; `copied_count` has them all).
    pub copied: Vec<String>,
    /// How many were copied.
    pub copied_count: u64,
    /// Keys deleted (at most [`SYNC_EVENT_KEYS`]).
    pub deleted: Vec<String>,
    /// How many were deleted.
    pub deleted_count: u64,
    /// Keys changed on both sides since the last pass (the loser kept renamed, by default).
    pub conflicts: Vec<String>,
    /// What the max-delete guard held back, and why.
    pub held_back: Vec<String>,
    /// Actions that failed, with why.
    pub failed: Vec<String>,
    /// When the oldest change it carried was made (the lag is measured from it).
    #[serde(default)]
    pub changed_at: Option<DateTime<Utc>>,
    /// What happened, in words.
    pub message: String,
}

/// The most keys a [`SyncApplied`] event lists of each kind.
pub const SYNC_EVENT_KEYS: usize = 100;

impl Message for SyncApplied {
    const KIND: &'static str = "sync.applied.v1";
}

/// `sync.backup-written.v1`: a webroot backup was written, filled in or restored (published on
/// `flotilla.evt.backup.<deployment>.<region>.<outcome>`): `written` on every datastore, `incomplete` when
/// some endpoints failed (they are retried until they succeed), `filled` when a retry succeeded,
/// `restored` when an archive was put back into the webroot, `expired` when retention deleted it from
/// every datastore (`written` then names them), `failed` when a backup or restore could not be made at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BackupWritten {
    /// Event metadata.
    pub meta: crate::EventMeta,
    /// Deployment name.
    pub deployment: String,
    /// The region whose webroot was archived or restored.
    pub region: String,
    /// `written`, `incomplete`, `filled`, `restored` or `failed`.
    pub outcome: String,
    /// The archive's bucket and key.
    pub bucket: String,
    /// The archive's key.
    pub key: String,
    /// Its SHA-256, hex.
    pub checksum: String,
    /// Its size in bytes.
    pub size: u64,
    /// The endpoints holding it (`<provider>:<host>`).
    pub written: Vec<String>,
    /// The endpoints still missing it, with why.
    pub missing: Vec<String>,
    /// What happened, in words.
    pub message: String,
}

impl Message for BackupWritten {
    const KIND: &'static str = "sync.backup-written.v1";
}

/// `sync.bucket-stamp.v1`: the mark a writer leaves in the sync service's KV bucket
/// (`flotilla_sync_stamps`, key `<deployment>.<bucket>.<endpoint>`) after it changed a bucket on an
/// endpoint. A pass that finds a side's stamp as it left it knows that side unchanged and does not list
/// it; a writer that leaves no stamp (a crash between its write and its stamp, a tool outside Flotilla) is
/// found by the periodic full comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BucketStamp {
    /// A new random id per stamp: two stamps never compare equal.
    pub id: String,
    /// Who wrote (`replicator`, a machine's agent, `restore`).
    pub writer: String,
    /// When.
    pub at: DateTime<Utc>,
}

impl Message for BucketStamp {
    const KIND: &'static str = "sync.bucket-stamp.v1";
}

/// `sync.passes.v1`: what the replicator's last passes of a deployment did, as the replica running its
/// deployment left it in the `flotilla_sync_passes` KV bucket (key: the deployment) after each run, so that
/// whichever replica answers `flotilla.api.sync.show` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncPasses {
    /// Deployment name.
    pub deployment: String,
    /// One per bucket and region passed with the hub.
    pub buckets: Vec<BucketSync>,
    /// When it was written.
    pub at: Option<DateTime<Utc>>,
}

impl Message for SyncPasses {
    const KIND: &'static str = "sync.passes.v1";
}

/// `sync.show.v1`: the request of `flotilla.api.sync.show` — a deployment's replication and backups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShowSync {
    /// Deployment name.
    pub deployment: String,
}

impl Message for ShowSync {
    const KIND: &'static str = "sync.show.v1";
}

/// `sync.view.v1`: a deployment's replication, agents and backups as the sync service sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncView {
    /// Deployment name.
    pub deployment: String,
    /// Each bucket between each region and the hub region.
    pub buckets: Vec<BucketSync>,
    /// Each agent heard from (its last push and pull).
    pub agents: Vec<AgentSync>,
    /// The backups, newest first.
    pub backups: Vec<BackupView>,
}

impl Message for SyncView {
    const KIND: &'static str = "sync.view.v1";
}

/// One bucket between one region's datastore and the hub region's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BucketSync {
    /// The bucket.
    pub bucket: String,
    /// The region.
    pub region: String,
    /// The region it is replicated with (the hub).
    pub peer: String,
    /// The last pass that fully succeeded.
    pub last_full_pass: Option<DateTime<Utc>>,
    /// The last pass that succeeded listing both sides (a full comparison; between them a side is listed
    /// only when its stamp says somebody wrote to it).
    #[serde(default)]
    pub last_full_comparison: Option<DateTime<Utc>>,
    /// The last pass, successful or not.
    pub last_pass: Option<DateTime<Utc>>,
    /// Objects the last pass copied or deleted.
    pub last_applied: u64,
    /// The lag of the last pass's oldest change carried: from its making (in whichever webroot) to its
    /// copy between this region's datastore and the hub's, milliseconds.
    pub lag_ms: Option<u64>,
    /// Actions the last pass planned and did not apply (failed, or deletions held back): they wait for the
    /// next pass. A change made since the last pass is not counted; its announcement starts the next pass.
    pub pending: u64,
    /// What failed in the last pass.
    pub failed: Vec<String>,
    /// What the max-delete guard held back.
    pub held_back: Vec<String>,
}

/// One agent (one webserver's webroot) as its events tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentSync {
    /// The region.
    pub region: String,
    /// The machine (resource id).
    pub machine: String,
    /// Its last push.
    pub last_push: Option<DateTime<Utc>>,
    /// Its last pull.
    pub last_pull: Option<DateTime<Utc>>,
    /// The lag of its last pull: from the change's making (in whichever webroot) to its arrival in this
    /// webroot, milliseconds.
    pub lag_ms: Option<u64>,
    /// Actions that failed in its last pass.
    pub failed: u64,
}

/// One webroot backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BackupView {
    /// The period it is kept under.
    pub period: String,
    /// The archive's key.
    pub key: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Its SHA-256, hex.
    pub checksum: String,
    /// Its size in bytes.
    pub size: u64,
    /// Endpoints holding it.
    pub written: Vec<String>,
    /// Endpoints still missing it (being retried).
    pub missing: Vec<String>,
}

/// `sync.dry-run.v1`: the request of `flotilla.api.sync.dry-run` — what a replication run of a deployment
/// would copy, delete, keep and hold back, file by file (nothing is changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncDryRun {
    /// Deployment name.
    pub deployment: String,
}

impl Message for SyncDryRun {
    const KIND: &'static str = "sync.dry-run.v1";
}

/// `sync.dry-run-view.v1`: the answer of `flotilla.api.sync.dry-run`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncDryRunView {
    /// Deployment name.
    pub deployment: String,
    /// One per bucket and region passed with the hub.
    pub passes: Vec<DryRunPass>,
}

impl Message for SyncDryRunView {
    const KIND: &'static str = "sync.dry-run-view.v1";
}

/// What one pass would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DryRunPass {
    /// The bucket.
    pub bucket: String,
    /// The region.
    pub region: String,
    /// The region it is passed with (the hub).
    pub peer: String,
    /// One line per object (`copy KEY hub → region`, `delete KEY on region` …), then what would be held
    /// back and why.
    pub lines: Vec<String>,
    /// Lines left out: the whole answer keeps to [`SYNC_DRY_RUN_BYTES`] of lines.
    #[serde(default)]
    pub omitted: u64,
    /// Why the pass could not be planned (a datastore that cannot be listed).
    pub error: Option<String>,
}

/// Most bytes of lines a `sync.dry-run-view.v1` answer holds, all passes together (the rest is counted in
/// [`DryRunPass::omitted`]): well inside [`crate::MAX_MESSAGE_BYTES`], whatever the number of objects.
pub const SYNC_DRY_RUN_BYTES: usize = crate::MAX_MESSAGE_BYTES / 2;
