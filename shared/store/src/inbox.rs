//! The inbox: which commands this service has already handled.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// Records handled command ids, so that a redelivered command is recognised.
///
/// JetStream's de-duplication window drops a command published twice; the inbox covers what it cannot: a
/// command delivered again because its ack was lost after the handler finished. Record a command when its
/// effect is complete (ideally in the same transaction as the effect's own writes); a crash between the
/// effect and the record still redelivers it, so effects must be idempotent in themselves (find before
/// create, derived ids for what they publish) and the inbox only saves repeating finished work.
#[derive(Debug, Clone)]
pub struct Inbox {
    store: Store,
}

impl Inbox {
    /// The inbox of `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Records `command_id` as handled. Returns `true` if this call recorded it, `false` if it was already
    /// recorded (a duplicate): exactly one of any number of concurrent callers gets `true`.
    pub async fn record(&self, command_id: &str, kind: &str) -> Result<bool, StoreError> {
        let now = Utc::now();
        let inserted = match &self.store {
            Store::Sqlite(p) => sqlx::query(
                "INSERT INTO processed_commands (command_id, kind, processed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (command_id) DO NOTHING",
            )
            .bind(command_id)
            .bind(kind)
            .bind(now.timestamp_millis())
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
            Store::Postgres(p) => sqlx::query(
                "INSERT INTO processed_commands (command_id, kind, processed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (command_id) DO NOTHING",
            )
            .bind(command_id)
            .bind(kind)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        }
        .map_err(|source| StoreError::Query {
            what: "record processed command",
            source,
        })?;
        Ok(inserted == 1)
    }

    /// Whether `command_id` has been handled.
    pub async fn contains(&self, command_id: &str) -> Result<bool, StoreError> {
        let q = "SELECT COUNT(*) FROM processed_commands WHERE command_id = $1";
        let n: i64 = match &self.store {
            Store::Sqlite(p) => sqlx::query_scalar(q).bind(command_id).fetch_one(p).await,
            Store::Postgres(p) => sqlx::query_scalar(q).bind(command_id).fetch_one(p).await,
        }
        .map_err(|source| StoreError::Query {
            what: "look up processed command",
            source,
        })?;
        Ok(n > 0)
    }

    /// Forgets commands handled before `cutoff` (they are past any redelivery). Returns how many.
    pub async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let q = "DELETE FROM processed_commands WHERE processed_at < $1";
        match &self.store {
            Store::Sqlite(p) => sqlx::query(q)
                .bind(cutoff.timestamp_millis())
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Store::Postgres(p) => sqlx::query(q)
                .bind(cutoff)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        }
        .map_err(|source| StoreError::Query {
            what: "purge processed commands",
            source,
        })
    }

    /// Number of recorded commands.
    pub async fn len(&self) -> Result<u64, StoreError> {
        let q = "SELECT COUNT(*) FROM processed_commands";
        let n: i64 = match &self.store {
            Store::Sqlite(p) => sqlx::query_scalar(q).fetch_one(p).await,
            Store::Postgres(p) => sqlx::query_scalar(q).fetch_one(p).await,
        }
        .map_err(|source| StoreError::Query {
            what: "count processed commands",
            source,
        })?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Whether nothing is recorded.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len().await? == 0)
    }
}
