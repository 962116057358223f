//! Metadata carried by every command and event.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity of one command. It is also the `Nats-Msg-Id` it is published with, so JetStream drops a
/// re-publication within its de-duplication window, and handlers use it to recognise a redelivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct CommandId(pub Uuid);

impl CommandId {
    /// A new, time-ordered id (UUIDv7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for CommandId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Header of every command: who asked, when, and the id that makes redelivery harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandMeta {
    /// Unique id of this command (also its `Nats-Msg-Id`).
    pub id: CommandId,
    /// Id shared by every command and event of one user action (a `flotilla deploy`), so the CLI can follow
    /// the events its command caused.
    pub correlation_id: Uuid,
    /// When the command was issued.
    pub issued_at: DateTime<Utc>,
    /// Who issued it (`cli:<user>@<host>`, `autoscaler`, …), for the audit trail.
    #[serde(default)]
    pub issued_by: String,
}

impl CommandMeta {
    /// Metadata for a new command that starts its own correlation.
    pub fn new(issued_by: impl Into<String>) -> Self {
        let id = CommandId::new();
        Self {
            id,
            correlation_id: id.0,
            issued_at: Utc::now(),
            issued_by: issued_by.into(),
        }
    }

    /// Metadata for a new command caused by an earlier command or event of `correlation_id`, with a fresh
    /// id. A handler that issues commands should use [`CommandMeta::derived`] instead, so that a redelivery
    /// issues the same ones.
    pub fn caused_by(correlation_id: Uuid, issued_by: impl Into<String>) -> Self {
        Self {
            correlation_id,
            ..Self::new(issued_by)
        }
    }

    /// Metadata for the command `step` that handling `cause` issues: its id is derived from the cause's id
    /// and `step`, so handling the same cause again (a redelivery) issues a command with the same id, which
    /// JetStream and the receiving inbox recognise as a duplicate.
    pub fn derived(cause: &CommandMeta, step: &str, issued_by: impl Into<String>) -> Self {
        Self {
            id: CommandId(derive_id(cause.id.0, step)),
            correlation_id: cause.correlation_id,
            issued_at: Utc::now(),
            issued_by: issued_by.into(),
        }
    }

    /// Metadata for the command `step` that handling the event `cause` issues: its id is derived from the
    /// event's id and `step`, so handling a redelivered event issues a command with the same id.
    pub fn derived_from_event(cause: &EventMeta, step: &str, issued_by: impl Into<String>) -> Self {
        Self {
            id: CommandId(derive_id(cause.id, &format!("cmd/{step}"))),
            correlation_id: cause.correlation_id,
            issued_at: Utc::now(),
            issued_by: issued_by.into(),
        }
    }
}

/// Header of every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventMeta {
    /// Unique id of this event (also its `Nats-Msg-Id`).
    pub id: Uuid,
    /// The correlation id of the command that caused it.
    pub correlation_id: Uuid,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The service that emitted it.
    pub source: String,
}

impl EventMeta {
    /// Metadata for an event emitted by `source` as a consequence of `correlation_id`, with a fresh id.
    pub fn new(correlation_id: Uuid, source: impl Into<String>) -> Self {
        Self {
            id: Uuid::now_v7(),
            correlation_id,
            occurred_at: Utc::now(),
            source: source.into(),
        }
    }

    /// Metadata for the event `name` that handling `cause` emits: its id is derived from the command's id
    /// and `name`, so a redelivered command re-emits an event the stream de-duplicates.
    pub fn derived(cause: &CommandMeta, name: &str, source: impl Into<String>) -> Self {
        Self {
            id: derive_id(cause.id.0, name),
            correlation_id: cause.correlation_id,
            occurred_at: Utc::now(),
            source: source.into(),
        }
    }

    /// Metadata for the event `name` that handling the event `cause` emits: its id is derived from the
    /// cause's id and `name`, so a redelivered event re-emits nothing new (and a consumer that keeps the ids
    /// it handled recognises it, however late it comes).
    pub fn derived_from_event(cause: &EventMeta, name: &str, source: impl Into<String>) -> Self {
        Self {
            id: derive_id(cause.id, &format!("evt/{name}")),
            correlation_id: cause.correlation_id,
            occurred_at: Utc::now(),
            source: source.into(),
        }
    }
}

/// Namespace of derived ids (a fixed random UUID).
const DERIVED: Uuid = Uuid::from_u128(0x6f1c_2b9e_8d4a_4c57_9e02_51b7_3a8f_d10c);

/// A name-based (v5) UUID from `parent` and `name`: the same inputs always give the same id.
fn derive_id(parent: Uuid, name: &str) -> Uuid {
    let mut input = parent.as_bytes().to_vec();
    input.extend_from_slice(name.as_bytes());
    Uuid::new_v5(&DERIVED, &input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let cause = CommandMeta::new("test");
        let a = CommandMeta::derived(&cause, "create-ws-1", "provisioner");
        let b = CommandMeta::derived(&cause, "create-ws-1", "provisioner");
        let c = CommandMeta::derived(&cause, "create-ws-2", "provisioner");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.correlation_id, cause.correlation_id);
        let e1 = EventMeta::derived(&cause, "machine.created", "provisioner");
        let e2 = EventMeta::derived(&cause, "machine.created", "provisioner");
        assert_eq!(e1.id, e2.id);
        let other = CommandMeta::new("test");
        assert_ne!(EventMeta::derived(&other, "machine.created", "p").id, e1.id);
        // From an event: stable, distinct per name, and never equal to the cause's own id.
        let f1 = EventMeta::derived_from_event(&e1, "health", "autoscaler");
        let f2 = EventMeta::derived_from_event(&e1, "health", "autoscaler");
        let f3 = EventMeta::derived_from_event(&e1, "other", "autoscaler");
        assert_eq!(f1.id, f2.id);
        assert_ne!(f1.id, f3.id);
        assert_ne!(f1.id, e1.id);
        assert_eq!(f1.correlation_id, e1.correlation_id);
        let c1 = CommandMeta::derived_from_event(&e1, "replace", "autoscaler");
        let c2 = CommandMeta::derived_from_event(&e1, "replace", "autoscaler");
        assert_eq!(c1.id, c2.id);
        assert_ne!(c1.id.0, EventMeta::derived_from_event(&e1, "replace", "a").id);
    }
}
