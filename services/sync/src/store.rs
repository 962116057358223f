//! The sync service's own database: the base of each replicated bucket — each side's manifest at the end of
//! the last fully successful pass — so that a restart plans against the same base (and never takes a side
//! that lists nothing for deletions to propagate: without a base nothing is deleted).

use flotilla_store::{Store, StoreError};

use crate::plan::{Base, Manifest};

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

/// Which bucket between which two endpoints (their names, e.g. `nl-ams-1.linodeobjects.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairKey {
    /// Deployment.
    pub deployment: String,
    /// Bucket.
    pub bucket: String,
    /// Side `a`'s endpoint.
    pub side_a: String,
    /// Side `b`'s endpoint.
    pub side_b: String,
}

/// The sync service's database.
#[derive(Debug, Clone)]
pub struct SyncStore {
    store: Store,
}

impl SyncStore {
    /// The store on `store`, already migrated (the service host runs [`migrations`] at start-up).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The base of `pair`, if a pass ever fully succeeded. A row that does not decode is as good as none
    /// (the next pass is a first pass: it merges and deletes nothing).
    pub async fn base(&self, pair: &PairKey) -> Result<Option<Base>, StoreError> {
        let q = "SELECT manifest_a, manifest_b FROM sync_base \
                 WHERE deployment = $1 AND bucket = $2 AND side_a = $3 AND side_b = $4";
        let row: Option<(String, String)> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(&pair.deployment)
            .bind(&pair.bucket)
            .bind(&pair.side_a)
            .bind(&pair.side_b)
            .fetch_optional(p)
            .await)
        .map_err(query_error("read a base"))?;
        Ok(row.and_then(|(a, b)| {
            Some(Base {
                a: serde_json::from_str::<Manifest>(&a).ok()?,
                b: serde_json::from_str::<Manifest>(&b).ok()?,
            })
        }))
    }

    /// Records `base` as `pair`'s, after a pass that fully succeeded.
    pub async fn record(&self, pair: &PairKey, base: &Base) -> Result<(), StoreError> {
        let encode = |m: &Manifest| serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned());
        let q = "INSERT INTO sync_base (deployment, bucket, side_a, side_b, manifest_a, manifest_b, passed_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (deployment, bucket, side_a, side_b) DO UPDATE SET \
                 manifest_a = excluded.manifest_a, manifest_b = excluded.manifest_b, passed_ms = excluded.passed_ms";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(&pair.deployment)
            .bind(&pair.bucket)
            .bind(&pair.side_a)
            .bind(&pair.side_b)
            .bind(encode(&base.a))
            .bind(encode(&base.b))
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("record a base"))
    }
}
