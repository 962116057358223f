//! The sync service's own database: the base of each replicated bucket — each side's manifest at the end of
//! the last fully successful pass — so that a restart plans against the same base (and never takes a side
//! that lists nothing for deletions to propagate: without a base nothing is deleted).

use flotilla_store::{Store, StoreError};

use crate::plan::{Base, Entry, Manifest};

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

    /// `pair` as recorded (its id and the stamps its base is exact at), `None` before its first pass
    /// succeeded listing. A base recorded by an earlier version (one JSON manifest per side) is converted
    /// to rows on the way; one that does not decode is dropped (the next pass is a first pass: it merges
    /// and deletes nothing).
    pub async fn pair(&self, pair: &PairKey) -> Result<Option<PairState>, StoreError> {
        let q = "SELECT id, stamp_a, stamp_b, complete FROM sync_pair \
                 WHERE deployment = $1 AND bucket = $2 AND side_a = $3 AND side_b = $4";
        type Row = (i64, Option<String>, Option<String>, bool);
        let row: Option<Row> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(&pair.deployment)
            .bind(&pair.bucket)
            .bind(&pair.side_a)
            .bind(&pair.side_b)
            .fetch_optional(p)
            .await)
        .map_err(query_error("read a pair"))?;
        if let Some((id, a, b, complete)) = row {
            return Ok(Some(PairState {
                id,
                exact: Exact { a, b },
                complete,
            }));
        }
        let q = "SELECT manifest_a, manifest_b, stamp_a, stamp_b FROM sync_base \
                 WHERE deployment = $1 AND bucket = $2 AND side_a = $3 AND side_b = $4";
        type Legacy = (String, String, Option<String>, Option<String>);
        let legacy: Option<Legacy> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(&pair.deployment)
            .bind(&pair.bucket)
            .bind(&pair.side_a)
            .bind(&pair.side_b)
            .fetch_optional(p)
            .await)
        .map_err(query_error("read a base"))?;
        let Some((a, b, stamp_a, stamp_b)) = legacy else {
            return Ok(None);
        };
        let decoded =
            serde_json::from_str::<Manifest>(&a).and_then(|a| Ok((a, serde_json::from_str::<Manifest>(&b)?)));
        if let Ok((a, b)) = decoded {
            self.record_stamped(
                pair,
                &Base { a, b },
                &Exact {
                    a: stamp_a,
                    b: stamp_b,
                },
            )
            .await?;
        }
        let q = "DELETE FROM sync_base WHERE deployment = $1 AND bucket = $2 AND side_a = $3 AND side_b = $4";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(&pair.deployment)
            .bind(&pair.bucket)
            .bind(&pair.side_a)
            .bind(&pair.side_b)
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("convert a base"))?;
        Box::pin(self.pair(pair)).await
    }

    /// The id of `pair`, recorded now if it was not (with no base row: a first pass).
    pub async fn open_pair(&self, pair: &PairKey) -> Result<i64, StoreError> {
        let q = "INSERT INTO sync_pair (deployment, bucket, side_a, side_b, passed_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (deployment, bucket, side_a, side_b) DO NOTHING";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(&pair.deployment)
            .bind(&pair.bucket)
            .bind(&pair.side_a)
            .bind(&pair.side_b)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("record a pair"))?;
        let q =
            "SELECT id FROM sync_pair WHERE deployment = $1 AND bucket = $2 AND side_a = $3 AND side_b = $4";
        on_pool!(&self.store, |p| sqlx::query_scalar(q)
            .bind(&pair.deployment)
            .bind(&pair.bucket)
            .bind(&pair.side_a)
            .bind(&pair.side_b)
            .fetch_one(p)
            .await)
        .map_err(query_error("record a pair"))
    }

    /// Up to `limit` rows of `pair`'s base after key `after` (from the first when `None`), in key order
    /// (bytewise, as S3 lists).
    pub async fn base_page(
        &self,
        pair: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<BaseRow>, StoreError> {
        type Row = (
            String,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<String>,
        );
        let q = "SELECT key, a_size, a_modified_ns, a_checksum, b_size, b_modified_ns, b_checksum FROM sync_entry \
                 WHERE pair_id = $1 AND key > $2 ORDER BY key LIMIT $3";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<Row> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(pair)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(p)
            .await)
        .map_err(query_error("read a base"))?;
        Ok(rows
            .into_iter()
            .map(|(key, a_size, a_ns, a_sum, b_size, b_ns, b_sum)| {
                (
                    key,
                    decode_entry(a_size, a_ns, a_sum),
                    decode_entry(b_size, b_ns, b_sum),
                )
            })
            .collect())
    }

    /// Writes `rows` into `pair`'s base, in one transaction: each key's row replaced, or removed when
    /// neither side has an entry.
    pub async fn write_base(&self, pair: i64, rows: &[BaseRow]) -> Result<(), StoreError> {
        let (gone, kept): (Vec<&BaseRow>, Vec<&BaseRow>) =
            rows.iter().partition(|(_, a, b)| a.is_none() && b.is_none());
        on_pool!(&self.store, |p| async {
            let mut tx = p.begin().await?;
            for (key, _, _) in gone {
                sqlx::query("DELETE FROM sync_entry WHERE pair_id = $1 AND key = $2")
                    .bind(pair)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            for batch in kept.chunks(500) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO sync_entry (pair_id, key, a_size, a_modified_ns, a_checksum, b_size, \
                     b_modified_ns, b_checksum) ",
                );
                q.push_values(batch, |mut row, (key, a, b)| {
                    let (a_size, a_ns, a_sum) = encode_entry(a.as_ref());
                    let (b_size, b_ns, b_sum) = encode_entry(b.as_ref());
                    row.push_bind(pair)
                        .push_bind(key.clone())
                        .push_bind(a_size)
                        .push_bind(a_ns)
                        .push_bind(a_sum)
                        .push_bind(b_size)
                        .push_bind(b_ns)
                        .push_bind(b_sum);
                });
                q.push(
                    " ON CONFLICT (pair_id, key) DO UPDATE SET a_size = excluded.a_size, \
                     a_modified_ns = excluded.a_modified_ns, a_checksum = excluded.a_checksum, \
                     b_size = excluded.b_size, b_modified_ns = excluded.b_modified_ns, b_checksum = excluded.b_checksum",
                );
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(query_error("write a base"))
    }

    /// Records the stamps `pair`'s base is exact at, and whether a pass ever listed every key
    /// (`complete`: until then its base is no base).
    pub async fn finish_pass(&self, pair: i64, exact: &Exact, complete: bool) -> Result<(), StoreError> {
        let q =
            "UPDATE sync_pair SET stamp_a = $1, stamp_b = $2, passed_ms = $3, complete = $4 WHERE id = $5";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(&exact.a)
            .bind(&exact.b)
            .bind(chrono::Utc::now().timestamp_millis())
            .bind(complete)
            .bind(pair)
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("record a pass"))
    }

    /// The whole base of `pair` (tests and small tools: a pass reads it a page at a time).
    pub async fn base(&self, pair: &PairKey) -> Result<Option<Base>, StoreError> {
        Ok(self.stamped_base(pair).await?.map(|(base, _)| base))
    }

    /// The whole base of `pair` with the stamps it is exact at.
    pub async fn stamped_base(&self, pair: &PairKey) -> Result<Option<(Base, Exact)>, StoreError> {
        let Some(state) = self.pair(pair).await?.filter(|s| s.complete) else {
            return Ok(None);
        };
        let mut base = Base::default();
        let mut after: Option<String> = None;
        loop {
            let page = self.base_page(state.id, after.as_deref(), 1000).await?;
            let Some((last, _, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (key, a, b) in page {
                if let Some(a) = a {
                    base.a.insert(key.clone(), a);
                }
                if let Some(b) = b {
                    base.b.insert(key, b);
                }
            }
        }
        Ok(Some((base, state.exact)))
    }

    /// Replaces the whole base of `pair` (exact on neither side).
    pub async fn record(&self, pair: &PairKey, base: &Base) -> Result<(), StoreError> {
        self.record_stamped(pair, base, &Exact::default()).await
    }

    /// Replaces the whole base of `pair`, exact on each side at the stamp `exact` names.
    pub async fn record_stamped(&self, pair: &PairKey, base: &Base, exact: &Exact) -> Result<(), StoreError> {
        let id = self.open_pair(pair).await?;
        on_pool!(&self.store, |p| sqlx::query(
            "DELETE FROM sync_entry WHERE pair_id = $1"
        )
        .bind(id)
        .execute(p)
        .await
        .map(drop))
        .map_err(query_error("write a base"))?;
        let keys: std::collections::BTreeSet<&String> = base.a.keys().chain(base.b.keys()).collect();
        let rows: Vec<BaseRow> = keys
            .into_iter()
            .map(|k| (k.clone(), base.a.get(k).cloned(), base.b.get(k).cloned()))
            .collect();
        self.write_base(id, &rows).await?;
        self.finish_pass(id, exact, true).await
    }
}

/// One key of a base: each side's entry (`None` where the side had none).
pub type BaseRow = (String, Option<Entry>, Option<Entry>);

/// A replicated pair as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairState {
    /// Its id (the key of its base rows).
    pub id: i64,
    /// The stamps its base is exact at.
    pub exact: Exact,
    /// Whether a pass ever listed every key (until then its base is no base: a first pass merges).
    pub complete: bool,
}

fn encode_entry(e: Option<&Entry>) -> (Option<i64>, Option<i64>, Option<String>) {
    match e {
        Some(e) => (
            Some(i64::try_from(e.size).unwrap_or(i64::MAX)),
            Some(e.modified.timestamp_nanos_opt().unwrap_or(i64::MAX)),
            e.checksum.clone(),
        ),
        None => (None, None, None),
    }
}

fn decode_entry(size: Option<i64>, ns: Option<i64>, checksum: Option<String>) -> Option<Entry> {
    Some(Entry {
        size: u64::try_from(size?).unwrap_or(0),
        modified: chrono::DateTime::from_timestamp_nanos(ns?),
        checksum,
    })
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
        // A copy once written stays written: two deliveries of one backup may both write it, and the one
        // that found nothing to copy from yet must not undo the other's success.
        let q = "UPDATE sync_backup_copy SET written = (written OR $4), \
                 error = CASE WHEN written OR $4 THEN NULL ELSE $5 END \
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
