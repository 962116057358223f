//! The firewall service's own database: what it last wrote to each target — a deployment's DBaaS
//! allow-list, each role's firewall rules — so that a target found otherwise on the next run is known to
//! have been changed behind our back (drift, put back with an event saying so), across restarts too.

use flotilla_store::{Store, StoreError};

/// Runs `$body` with `$p` bound to the pool of whichever backend `$store` is.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match $store {
            Store::Sqlite($p) => $body,
            Store::Postgres($p) => $body,
        }
    };
}

/// The service's migrations (SQLite, PostgreSQL), run by the service host at start-up.
pub fn migrations() -> (flotilla_store::Migrator, flotilla_store::Migrator) {
    (
        sqlx::migrate!("./migrations/sqlite"),
        sqlx::migrate!("./migrations/postgres"),
    )
}

fn query_error(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// The target of a deployment's allow-list.
pub const ALLOW_LIST: &str = "allow-list";

/// The target of one role's firewall in one region.
pub fn firewall_target(region: &str, role: &str) -> String {
    format!("firewall/{region}/{role}")
}

/// The firewall service's database.
#[derive(Debug, Clone)]
pub struct FirewallStore {
    store: Store,
}

impl FirewallStore {
    /// The store on `store`, already migrated (the service host runs [`migrations`] at start-up).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// What was last written to `target` of `deployment` (its entries, in the order written), if anything.
    pub async fn applied(&self, deployment: &str, target: &str) -> Result<Option<Vec<String>>, StoreError> {
        let q = "SELECT entries FROM firewall_applied WHERE deployment = $1 AND target = $2";
        let row: Option<(String,)> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(deployment)
            .bind(target)
            .fetch_optional(p)
            .await)
        .map_err(query_error("read what was applied"))?;
        // A row that does not decode is as good as none: the next write replaces it.
        Ok(row.and_then(|(entries,)| serde_json::from_str(&entries).ok()))
    }

    /// Records that `entries` were written to `target` of `deployment` (writing the same again changes
    /// nothing).
    pub async fn record(&self, deployment: &str, target: &str, entries: &[String]) -> Result<(), StoreError> {
        let q = "INSERT INTO firewall_applied (deployment, target, entries, applied_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (deployment, target) DO UPDATE SET entries = excluded.entries, \
                 applied_ms = excluded.applied_ms";
        let entries = serde_json::Value::from(entries.to_vec()).to_string();
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(deployment)
            .bind(target)
            .bind(entries)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("record what was applied"))
    }
}
