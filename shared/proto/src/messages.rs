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
    /// Provider (`linode` …).
    pub provider: String,
    /// The provider's id, once known.
    pub provider_id: Option<String>,
    /// `created`, `healthy`, `failed` or `destroyed`.
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
    /// `applied` or `failed`.
    pub outcome: String,
    /// Why it failed.
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
