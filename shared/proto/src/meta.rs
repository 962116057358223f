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

    /// Metadata for a new command caused by an earlier command or event of `correlation_id`.
    pub fn caused_by(correlation_id: Uuid, issued_by: impl Into<String>) -> Self {
        Self {
            correlation_id,
            ..Self::new(issued_by)
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
    /// Metadata for an event emitted by `source` as a consequence of `correlation_id`.
    pub fn new(correlation_id: Uuid, source: impl Into<String>) -> Self {
        Self {
            id: Uuid::now_v7(),
            correlation_id,
            occurred_at: Utc::now(),
            source: source.into(),
        }
    }
}
