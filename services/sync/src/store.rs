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
        Ok(self.stamped_base(pair).await?.map(|(base, _)| base))
    }

    /// The base of `pair` with, per side, the id of the stamp at which it is exactly what that side holds
    /// (see [`crate::stamps`]).
    pub async fn stamped_base(&self, pair: &PairKey) -> Result<Option<(Base, Exact)>, StoreError> {
        let q = "SELECT manifest_a, manifest_b, stamp_a, stamp_b FROM sync_base \
                 WHERE deployment = $1 AND bucket = $2 AND side_a = $3 AND side_b = $4";
        type Row = (String, String, Option<String>, Option<String>);
        let row: Option<Row> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(&pair.deployment)
            .bind(&pair.bucket)
            .bind(&pair.side_a)
            .bind(&pair.side_b)
            .fetch_optional(p)
            .await)
        .map_err(query_error("read a base"))?;
        Ok(row.and_then(|(a, b, stamp_a, stamp_b)| {
            let base = Base {
                a: serde_json::from_str::<Manifest>(&a).ok()?,
                b: serde_json::from_str::<Manifest>(&b).ok()?,
            };
            Some((
                base,
                Exact {
                    a: stamp_a,
                    b: stamp_b,
                },
            ))
        }))
    }

    /// Records `base` as `pair`'s, after a pass whose listings succeeded (exact on neither side).
    pub async fn record(&self, pair: &PairKey, base: &Base) -> Result<(), StoreError> {
        self.record_stamped(pair, base, &Exact::default()).await
    }

    /// Records `base` as `pair`'s, exact on each side at the stamp `exact` names.
    pub async fn record_stamped(&self, pair: &PairKey, base: &Base, exact: &Exact) -> Result<(), StoreError> {
        let encode = |m: &Manifest| serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned());
        let q = "INSERT INTO sync_base (deployment, bucket, side_a, side_b, manifest_a, manifest_b, passed_ms, \
                 stamp_a, stamp_b) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (deployment, bucket, side_a, side_b) DO UPDATE SET \
                 manifest_a = excluded.manifest_a, manifest_b = excluded.manifest_b, passed_ms = excluded.passed_ms, \
                 stamp_a = excluded.stamp_a, stamp_b = excluded.stamp_b";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(&pair.deployment)
            .bind(&pair.bucket)
            .bind(&pair.side_a)
            .bind(&pair.side_b)
            .bind(encode(&base.a))
            .bind(encode(&base.b))
            .bind(chrono::Utc::now().timestamp_millis())
            .bind(&exact.a)
            .bind(&exact.b)
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("record a base"))
    }
}

/// Per side of a pair, the id of the bucket's stamp at which the recorded base is exactly what the side
/// holds (`None`: it is not, or no stamp was known).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exact {
    /// Side `a`'s.
    pub a: Option<String>,
    /// Side `b`'s.
    pub b: Option<String>,
}

/// One webroot backup as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRow {
    /// Deployment.
    pub deployment: String,
    /// Its id (the command's that asked for it, or the schedule slot's).
    pub id: String,
    /// Its period.
    pub period: String,
    /// The region whose webroot it holds.
    pub region: String,
    /// Its bucket on every endpoint.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// When it was taken.
    pub taken_at: chrono::DateTime<chrono::Utc>,
    /// SHA-256, hex.
    pub checksum: String,
    /// Size in bytes.
    pub size: u64,
}

/// One copy of a backup on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRow {
    /// The backup's id.
    pub id: String,
    /// The endpoint (`<provider>:<host>`).
    pub endpoint: String,
    /// Whether it is there.
    pub written: bool,
    /// Why the last try failed.
    pub error: Option<String>,
}

type BackupTuple = (String, String, String, String, String, String, i64, String, i64);

fn backup_row(t: BackupTuple) -> BackupRow {
    let (deployment, id, period, region, bucket, key, taken_ms, checksum, size) = t;
    BackupRow {
        deployment,
        id,
        period,
        region,
        bucket,
        key,
        taken_at: chrono::DateTime::from_timestamp_millis(taken_ms).unwrap_or_default(),
        checksum,
        size: u64::try_from(size).unwrap_or(0),
    }
}

impl SyncStore {
    /// Records a backup and its copies to be written (none written yet); a backup already recorded is
    /// left as it is (a redelivered command).
    pub async fn record_backup(&self, b: &BackupRow, endpoints: &[String]) -> Result<(), StoreError> {
        let q = "INSERT INTO sync_backup (deployment, id, period, region, bucket, key, taken_ms, checksum, size) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (deployment, id) DO NOTHING";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(&b.deployment)
            .bind(&b.id)
            .bind(&b.period)
            .bind(&b.region)
            .bind(&b.bucket)
            .bind(&b.key)
            .bind(b.taken_at.timestamp_millis())
            .bind(&b.checksum)
            .bind(i64::try_from(b.size).unwrap_or(i64::MAX))
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("record a backup"))?;
        for e in endpoints {
            let q = "INSERT INTO sync_backup_copy (deployment, id, endpoint, written, error) \
                     VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (deployment, id, endpoint) DO NOTHING";
            on_pool!(&self.store, |p| sqlx::query(q)
                .bind(&b.deployment)
                .bind(&b.id)
                .bind(e)
                .bind(false)
                .execute(p)
                .await
                .map(drop))
            .map_err(query_error("record a backup copy"))?;
        }
        Ok(())
    }

    /// Records the outcome of writing a copy.
    pub async fn copy_done(
        &self,
        deployment: &str,
        id: &str,
        endpoint: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let q = "UPDATE sync_backup_copy SET written = $4, error = $5 \
                 WHERE deployment = $1 AND id = $2 AND endpoint = $3";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(deployment)
            .bind(id)
            .bind(endpoint)
            .bind(error.is_none())
            .bind(error)
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("record a backup copy's outcome"))
    }

    /// The backups of `deployment`, newest first.
    pub async fn backups(&self, deployment: &str) -> Result<Vec<BackupRow>, StoreError> {
        let q = "SELECT deployment, id, period, region, bucket, key, taken_ms, checksum, size FROM sync_backup \
                 WHERE deployment = $1 ORDER BY taken_ms DESC, id DESC";
        let rows: Vec<BackupTuple> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(deployment)
            .fetch_all(p)
            .await)
        .map_err(query_error("read backups"))?;
        Ok(rows.into_iter().map(backup_row).collect())
    }

    /// The copies of `deployment`'s backups.
    pub async fn copies(&self, deployment: &str) -> Result<Vec<CopyRow>, StoreError> {
        let q = "SELECT id, endpoint, written, error FROM sync_backup_copy WHERE deployment = $1 \
                 ORDER BY id, endpoint";
        let rows: Vec<(String, String, bool, Option<String>)> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(deployment)
            .fetch_all(p)
            .await)
        .map_err(query_error("read backup copies"))?;
        Ok(rows
            .into_iter()
            .map(|(id, endpoint, written, error)| CopyRow {
                id,
                endpoint,
                written,
                error,
            })
            .collect())
    }

    /// Forgets a backup and its copies (retention).
    pub async fn forget_backup(&self, deployment: &str, id: &str) -> Result<(), StoreError> {
        for q in [
            "DELETE FROM sync_backup_copy WHERE deployment = $1 AND id = $2",
            "DELETE FROM sync_backup WHERE deployment = $1 AND id = $2",
        ] {
            on_pool!(&self.store, |p| sqlx::query(q)
                .bind(deployment)
                .bind(id)
                .execute(p)
                .await
                .map(drop))
            .map_err(query_error("forget a backup"))?;
        }
        Ok(())
    }
}
