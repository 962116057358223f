//! Every message that crosses the Flotilla bus, and the one place that knows how they are encoded.
//!
//! A message is a Rust type implementing [`Message`]: it has a stable *kind* string such as
//! `provisioner.apply.v1`, carried in the [`KIND_HEADER`] header of every NATS message, and a JSON Schema
//! (generated with `schemars`, checked in under `schemas/`).
//!
//! Encodings ([`Encoding`]): MessagePack with named fields by default (so a field can be added without
//! breaking old readers), JSON when the `Content-Type` header says `application/json` — an operator can
//! publish a command by hand with `nats pub`. Decoding failures are a typed [`DecodeError`] that says what was
//! wrong: unknown kind, missing field at a path, wrong type.
//!
//! Architecture invariant: only types from this crate cross the bus; no other crate serializes bus payloads.

mod codec;
pub mod messages;
mod meta;
pub mod routing;

pub use codec::{
    CONTENT_TYPE_HEADER, DecodeError, EncodeError, Encoding, KIND_HEADER, MAX_MESSAGE_BYTES, decode,
    decode_any_kind, decode_value, encode,
};
pub use messages::*;
pub use meta::{CommandId, CommandMeta, EventMeta};
pub use routing::{AnyEvent, Command, Event, command_parts};

/// A message type that can travel on the bus.
///
/// `KIND` is stable for the life of the type: a change that old readers cannot ignore gets a new type with
/// the next version suffix (`….v2`), never an edit of this one.
pub trait Message: serde::Serialize + serde::de::DeserializeOwned + schemars::JsonSchema {
    /// The stable kind string, `<service>.<name>.v<N>`.
    const KIND: &'static str;
}

/// Every message kind this crate defines, with its JSON Schema, for `schemas/` generation and checks.
pub fn all_schemas() -> Vec<(&'static str, schemars::Schema)> {
    fn entry<M: Message>() -> (&'static str, schemars::Schema) {
        (M::KIND, schemars::schema_for!(M))
    }
    vec![
        entry::<ApplyRegion>(),
        entry::<DestroyRegion>(),
        entry::<MachineChanged>(),
        entry::<RegionApplied>(),
        entry::<CreateMachines>(),
        entry::<DestroyMachine>(),
        entry::<ReplaceMachine>(),
        entry::<ReconcileRegion>(),
        entry::<DbaasReady>(),
        entry::<ListMachines>(),
        entry::<Fleet>(),
        entry::<ShowPlan>(),
        entry::<PlanView>(),
        entry::<CommandRejected>(),
        entry::<ServiceStatusRequest>(),
        entry::<ServiceStatus>(),
        entry::<DesiredDeployment>(),
        entry::<AcceptDeployment>(),
        entry::<WithdrawRegions>(),
        entry::<Accepted>(),
        entry::<MachineRecord>(),
        entry::<ScaleRegion>(),
        entry::<PauseScaling>(),
        entry::<ResumeScaling>(),
        entry::<ProtectMachine>(),
        entry::<MachineHealth>(),
        entry::<ScalingActivity>(),
        entry::<ExplainScaling>(),
        entry::<ScalingStatus>(),
        entry::<ScalingState>(),
        entry::<SetSchedule>(),
        entry::<SetTargetTracking>(),
        entry::<MachineMetric>(),
        entry::<ShowRecords>(),
        entry::<RecordsView>(),
        entry::<FailoverAuthenticator>(),
        entry::<ReconcileRecords>(),
        entry::<RecordsChanged>(),
        entry::<DnsAlarm>(),
        entry::<AuthenticatorMoved>(),
        entry::<HandOver>(),
        entry::<Adopt>(),
        entry::<OwnershipChanged>(),
        entry::<ReconcileFirewalls>(),
        entry::<ShowFirewalls>(),
        entry::<FirewallsView>(),
        entry::<WhyAllowed>(),
        entry::<AllowVerdict>(),
        entry::<ShowMachineRules>(),
        entry::<RuleSet>(),
        entry::<AllowListChanged>(),
        entry::<FirewallChanged>(),
        entry::<ReconcileSync>(),
        entry::<TakeBackup>(),
        entry::<RestoreBackup>(),
        entry::<SyncApplied>(),
        entry::<BackupWritten>(),
        entry::<BucketStamp>(),
        entry::<SyncPasses>(),
        entry::<ShowSync>(),
        entry::<SyncView>(),
        entry::<SyncDryRun>(),
        entry::<SyncDryRunView>(),
    ]
}
