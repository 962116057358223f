//! What a message says about where it travels: commands name their target deployment and region, events
//! their topic, deployment, region and name. `flotilla-bus` builds subjects from these (and checks a
//! delivered message's subject against them), so a body can never travel under a subject that names
//! another deployment, region or verb.

use uuid::Uuid;

use crate::{
    AllowListChanged, ApplyRegion, AuthenticatorMoved, BackupWritten, CommandMeta, CommandRejected,
    CreateMachines, DbaasReady, DecodeError, DestroyMachine, DestroyRegion, DnsAlarm, EventMeta,
    FailoverAuthenticator, FirewallChanged, MachineChanged, MachineHealth, MachineMetric, Message,
    PauseScaling, ProtectMachine, ReconcileFirewalls, ReconcileRecords, ReconcileRegion, ReconcileSync,
    RecordsChanged, RegionApplied, ReplaceMachine, RestoreBackup, ResumeScaling, RuleSet, ScaleRegion,
    ScalingActivity, SetSchedule, SetTargetTracking, SyncApplied, TakeBackup,
};

/// The service and verb of a command kind: `provisioner.apply.v1` → (`provisioner`, `apply`).
pub fn command_parts(kind: &str) -> Option<(&str, &str)> {
    let mut parts = kind.split('.');
    let (service, verb, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with('v') {
        return None;
    }
    Some((service, verb))
}

/// A command: a message for one service about one region of one deployment. It travels on
/// `flotilla.cmd.<service>.<deployment>.<region>.<verb>`, service and verb taken from its kind.
pub trait Command: Message {
    /// Its metadata (id, correlation).
    fn meta(&self) -> &CommandMeta;
    /// The deployment it is about.
    fn deployment(&self) -> &str;
    /// The region it is about.
    fn region(&self) -> &str;
}

/// An event: something that happened to one region of one deployment. It travels on
/// `flotilla.evt.<topic>.<deployment>.<region>.<name>`.
pub trait Event: Message {
    /// The topic (`machine`, `region`, `dbaas` …).
    const TOPIC: &'static str;
    /// Its metadata (id, correlation).
    fn meta(&self) -> &EventMeta;
    /// The deployment it is about.
    fn deployment(&self) -> &str;
    /// The region it is about.
    fn region(&self) -> &str;
    /// Its name within the topic (a machine's new state, a region's outcome …).
    fn name(&self) -> &str;
    /// Its id, also its `Nats-Msg-Id`.
    fn id(&self) -> Uuid {
        self.meta().id
    }
}

macro_rules! command {
    ($($t:ty),+) => {$(
        impl Command for $t {
            fn meta(&self) -> &CommandMeta { &self.meta }
            fn deployment(&self) -> &str { &self.deployment }
            fn region(&self) -> &str { &self.region }
        }
    )+};
}

command!(
    DestroyRegion,
    CreateMachines,
    DestroyMachine,
    ReplaceMachine,
    ReconcileRegion,
    ScaleRegion,
    PauseScaling,
    ResumeScaling,
    ProtectMachine,
    SetSchedule,
    SetTargetTracking,
    FailoverAuthenticator,
    ReconcileRecords,
    ReconcileFirewalls,
    ReconcileSync,
    TakeBackup,
    RestoreBackup
);

impl Command for ApplyRegion {
    fn meta(&self) -> &CommandMeta {
        &self.meta
    }
    fn deployment(&self) -> &str {
        &self.deployment.name
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// `impl Event` for an event type with `meta`, `deployment` and `region` fields: its topic, and how its name
/// is read (`|e| …`).
macro_rules! event {
    ($($t:ty => $topic:literal, |$e:ident| $name:expr);+ $(;)?) => {$(
        impl Event for $t {
            const TOPIC: &'static str = $topic;
            fn meta(&self) -> &EventMeta { &self.meta }
            fn deployment(&self) -> &str { &self.deployment }
            fn region(&self) -> &str { &self.region }
            fn name(&self) -> &str {
                let $e = self;
                $name
            }
        }
    )+};
}

event!(
    // The event's name is the machine's new state, not the machine's name.
    MachineChanged => "machine", |e| &e.state;
    RegionApplied => "region", |e| &e.outcome;
    DbaasReady => "dbaas", |_e| "ready";
    MachineHealth => "health", |e| if e.healthy { "healthy" } else { "unhealthy" };
    ScalingActivity => "activity", |e| &e.status;
    MachineMetric => "metric", |e| &e.metric;
    RecordsChanged => "records", |e| &e.outcome;
    DnsAlarm => "dns-alarm", |e| if e.raised { "raised" } else { "cleared" };
    AuthenticatorMoved => "authenticator", |e| &e.cause;
    AllowListChanged => "allow-list", |e| &e.outcome;
    FirewallChanged => "firewall", |e| &e.outcome;
    RuleSet => "rules", |e| &e.role;
    SyncApplied => "sync", |e| &e.outcome;
    BackupWritten => "backup", |e| &e.outcome;
);

/// Any event a Flotilla service publishes, decoded by its kind header: the one typed decoder the services
/// and the CLI share.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvent {
    /// `provisioner.machine-changed.v1`.
    Machine(MachineChanged),
    /// `provisioner.region-applied.v1`.
    Region(RegionApplied),
    /// `provisioner.dbaas-ready.v1`.
    Dbaas(DbaasReady),
    /// `bus.command-rejected.v1`.
    Rejected(CommandRejected),
    /// `autoscaler.machine-health.v1`.
    Health(MachineHealth),
    /// `autoscaler.activity.v1`.
    Activity(ScalingActivity),
    /// `dns.records-changed.v1`.
    Records(RecordsChanged),
    /// `dns.alarm.v1`.
    DnsAlarm(DnsAlarm),
    /// `dns.authenticator-moved.v1`.
    Authenticator(AuthenticatorMoved),
    /// `firewall.allow-list-changed.v1`.
    AllowList(AllowListChanged),
    /// `firewall.changed.v1`.
    Firewall(FirewallChanged),
    /// `firewall.rule-set.v1`.
    Rules(RuleSet),
    /// `sync.applied.v1`.
    Sync(SyncApplied),
    /// `sync.backup-written.v1`.
    Backup(BackupWritten),
}

impl AnyEvent {
    /// Decodes an event by its kind header; `Ok(None)` for a kind this version does not know (a newer
    /// writer's), an error for a known kind that does not decode.
    pub fn decode(
        kind: Option<&str>,
        content_type: Option<&str>,
        payload: &[u8],
    ) -> Result<Option<Self>, DecodeError> {
        fn typed<M: Message>(content_type: Option<&str>, payload: &[u8]) -> Result<M, DecodeError> {
            crate::decode(Some(M::KIND), content_type, payload)
        }
        Ok(Some(match kind {
            Some(MachineChanged::KIND) => AnyEvent::Machine(typed(content_type, payload)?),
            Some(RegionApplied::KIND) => AnyEvent::Region(typed(content_type, payload)?),
            Some(DbaasReady::KIND) => AnyEvent::Dbaas(typed(content_type, payload)?),
            Some(CommandRejected::KIND) => AnyEvent::Rejected(typed(content_type, payload)?),
            Some(MachineHealth::KIND) => AnyEvent::Health(typed(content_type, payload)?),
            Some(ScalingActivity::KIND) => AnyEvent::Activity(typed(content_type, payload)?),
            Some(RecordsChanged::KIND) => AnyEvent::Records(typed(content_type, payload)?),
            Some(DnsAlarm::KIND) => AnyEvent::DnsAlarm(typed(content_type, payload)?),
            Some(AuthenticatorMoved::KIND) => AnyEvent::Authenticator(typed(content_type, payload)?),
            Some(AllowListChanged::KIND) => AnyEvent::AllowList(typed(content_type, payload)?),
            Some(FirewallChanged::KIND) => AnyEvent::Firewall(typed(content_type, payload)?),
            Some(RuleSet::KIND) => AnyEvent::Rules(typed(content_type, payload)?),
            Some(SyncApplied::KIND) => AnyEvent::Sync(typed(content_type, payload)?),
            Some(BackupWritten::KIND) => AnyEvent::Backup(typed(content_type, payload)?),
            _ => return Ok(None),
        }))
    }

    /// The correlation id of the command that caused it (a rejection carries none).
    pub fn correlation_id(&self) -> Option<Uuid> {
        match self {
            AnyEvent::Machine(e) => Some(e.meta.correlation_id),
            AnyEvent::Region(e) => Some(e.meta.correlation_id),
            AnyEvent::Dbaas(e) => Some(e.meta.correlation_id),
            AnyEvent::Health(e) => Some(e.meta.correlation_id),
            AnyEvent::Activity(e) => Some(e.meta.correlation_id),
            AnyEvent::Records(e) => Some(e.meta.correlation_id),
            AnyEvent::DnsAlarm(e) => Some(e.meta.correlation_id),
            AnyEvent::Authenticator(e) => Some(e.meta.correlation_id),
            AnyEvent::AllowList(e) => Some(e.meta.correlation_id),
            AnyEvent::Firewall(e) => Some(e.meta.correlation_id),
            AnyEvent::Rules(e) => Some(e.meta.correlation_id),
            AnyEvent::Sync(e) => Some(e.meta.correlation_id),
            AnyEvent::Backup(e) => Some(e.meta.correlation_id),
            AnyEvent::Rejected(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_kinds_split_into_service_and_verb() {
        assert_eq!(command_parts(ApplyRegion::KIND), Some(("provisioner", "apply")));
        assert_eq!(
            command_parts(CreateMachines::KIND),
            Some(("provisioner", "create-machines"))
        );
        assert_eq!(command_parts("a.b"), None);
        assert_eq!(command_parts("a.b.c.d"), None);
        assert_eq!(command_parts("a.b.c"), None);
    }
}
