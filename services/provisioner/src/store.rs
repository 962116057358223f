//! The provisioner's record of machines: what exists, what is being created, in which state.
//!
//! Create fencing (after Crossplane): [`MachineStore::record_pending`] writes the row with our resource id
//! before the cloud is called, and the machine is created carrying that id as a tag. After a crash, a row
//! still `create-pending` means "look the machine up by its tag before creating it again".

use chrono::Utc;
use flotilla_spec::{Region, Role};
use flotilla_store::{Store, StoreError};
use sqlx::Row;

use crate::plan::{Known, KnownState};

/// Runs `$body` with `$p` bound to the pool of whichever backend `$store` is.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match $store {
            Store::Sqlite($p) => $body,
            Store::Postgres($p) => $body,
        }
    };
}

/// Errors of the machine store.
#[derive(Debug, thiserror::Error)]
pub enum MachineStoreError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A row holds a value this version does not know (written by a newer version?).
    #[error("machine {resource_id}: unreadable {column} {value:?}")]
    Corrupt {
        /// The row.
        resource_id: String,
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
    },
}

fn query_error(what: &'static str) -> impl Fn(sqlx::Error) -> MachineStoreError {
    move |source| MachineStoreError::Store(StoreError::Query { what, source })
}

/// A machine as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRow {
    /// Our resource id.
    pub resource_id: String,
    /// Deployment.
    pub deployment: String,
    /// Region name.
    pub region: String,
    /// Role.
    pub role: Role,
    /// Size.
    pub size: String,
    /// Name at the provider.
    pub name: String,
    /// Provider (`linode` …).
    pub provider: String,
    /// The provider's id, once the create call answered.
    pub provider_id: Option<String>,
    /// State.
    pub state: KnownState,
    /// Public IPv4, once known.
    pub public_ipv4: Option<String>,
    /// Private IPv4, once known.
    pub private_ipv4: Option<String>,
    /// Create attempts so far.
    pub attempts: u32,
    /// When the row was written (Unix ms): the creation order.
    pub created_ms: i64,
}

impl MachineRow {
    /// The plan's view of this machine.
    pub fn known(&self) -> Known {
        Known {
            resource_id: self.resource_id.clone(),
            role: self.role,
            size: self.size.clone(),
            state: self.state,
            created_seq: u64::try_from(self.created_ms).unwrap_or(0),
        }
    }
}

/// The stored spelling of a state.
pub fn state_name(state: KnownState) -> &'static str {
    match state {
        KnownState::CreatePending => "create-pending",
        KnownState::Provisioning => "provisioning",
        KnownState::Running => "running",
        KnownState::Healthy => "healthy",
        KnownState::Failed => "failed",
        KnownState::Destroying => "destroying",
    }
}

fn parse_state(s: &str) -> Option<KnownState> {
    [
        KnownState::CreatePending,
        KnownState::Provisioning,
        KnownState::Running,
        KnownState::Healthy,
        KnownState::Failed,
        KnownState::Destroying,
    ]
    .into_iter()
    .find(|k| state_name(*k) == s)
}

/// The provisioner's own migrations (SQLite, PostgreSQL), run by the service host at start-up.
pub fn migrations() -> (flotilla_store::Migrator, flotilla_store::Migrator) {
    (
        sqlx::migrate!("./migrations/sqlite"),
        sqlx::migrate!("./migrations/postgres"),
    )
}

/// The provisioner's machines, in its own database.
#[derive(Debug, Clone)]
pub struct MachineStore {
    store: Store,
}

const COLUMNS: &str = "resource_id, deployment, region, role, size, name, provider, provider_id, state, \
                       public_ipv4, private_ipv4, attempts, created_ms";

impl MachineStore {
    /// The machine store on `store`, migrating it (the common migrations, then the provisioner's).
    pub async fn open(store: Store) -> Result<Self, MachineStoreError> {
        let (sqlite, postgres) = migrations();
        store.migrate_with(sqlite, postgres).await?;
        Ok(Self { store })
    }

    /// The machine store on `store`, already migrated (the service host runs [`migrations`] at start-up).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Records a machine about to be created, unless it is recorded already. Returns whether this call
    /// recorded it (`false`: an earlier attempt did — look the machine up by its tag first).
    pub async fn record_pending(&self, row: &MachineRow) -> Result<bool, MachineStoreError> {
        let now = Utc::now().timestamp_millis();
        let q = "INSERT INTO machines (resource_id, deployment, region, role, size, name, provider, state, \
                 attempts, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9) \
                 ON CONFLICT (resource_id) DO NOTHING";
        let inserted = on_pool!(&self.store, |p| sqlx::query(q)
            .bind(&row.resource_id)
            .bind(&row.deployment)
            .bind(&row.region)
            .bind(row.role.as_str())
            .bind(&row.size)
            .bind(&row.name)
            .bind(&row.provider)
            .bind(state_name(KnownState::CreatePending))
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(query_error("record a pending machine"))?;
        Ok(inserted == 1)
    }

    /// Records what the cloud said about a machine: its provider id, state and addresses.
    pub async fn update(
        &self,
        resource_id: &str,
        provider_id: Option<&str>,
        state: KnownState,
        public_ipv4: Option<&str>,
        private_ipv4: Option<&str>,
    ) -> Result<(), MachineStoreError> {
        let q = "UPDATE machines SET provider_id = COALESCE($2, provider_id), state = $3, \
                 public_ipv4 = COALESCE($4, public_ipv4), private_ipv4 = COALESCE($5, private_ipv4), \
                 updated_ms = $6 WHERE resource_id = $1";
        let now = Utc::now().timestamp_millis();
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(resource_id)
            .bind(provider_id)
            .bind(state_name(state))
            .bind(public_ipv4)
            .bind(private_ipv4)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(query_error("update a machine"))
    }

    /// Counts one more create attempt; returns the new count.
    pub async fn add_attempt(&self, resource_id: &str) -> Result<u32, MachineStoreError> {
        let q = "UPDATE machines SET attempts = attempts + 1 WHERE resource_id = $1 RETURNING attempts";
        let n: i64 = match &self.store {
            Store::Sqlite(p) => {
                sqlx::query_scalar::<_, i64>(q)
                    .bind(resource_id)
                    .fetch_one(p)
                    .await
            }
            Store::Postgres(p) => sqlx::query_scalar::<_, i32>(q)
                .bind(resource_id)
                .fetch_one(p)
                .await
                .map(i64::from),
        }
        .map_err(query_error("count a create attempt"))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Forgets a machine (it is destroyed).
    pub async fn remove(&self, resource_id: &str) -> Result<(), MachineStoreError> {
        let q = "DELETE FROM machines WHERE resource_id = $1";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(resource_id)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(query_error("remove a machine"))
    }

    /// Remembers the spec last applied to a region (`region`'s webserver count is the live one) and the
    /// webserver count the accepted spec asked for (`initial_webservers`).
    pub async fn save_region(
        &self,
        deployment: &str,
        region: &Region,
        image: &str,
        initial_webservers: u32,
    ) -> Result<(), MachineStoreError> {
        let spec = serde_json::to_string(region).map_err(|e| MachineStoreError::Corrupt {
            resource_id: format!("{deployment}/{}", region.name),
            column: "spec",
            value: e.to_string(),
        })?;
        let q = "INSERT INTO regions (deployment, region, spec, updated_ms, image, initial_webservers) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (deployment, region) DO UPDATE SET spec = excluded.spec, \
                 updated_ms = excluded.updated_ms, image = excluded.image, \
                 initial_webservers = excluded.initial_webservers";
        let now = Utc::now().timestamp_millis();
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(deployment)
            .bind(&region.name)
            .bind(&spec)
            .bind(now)
            .bind(image)
            .bind(i64::from(initial_webservers))
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(query_error("save a region's spec"))
    }

    /// Forgets a region (it is destroyed).
    pub async fn forget_region(&self, deployment: &str, region: &str) -> Result<(), MachineStoreError> {
        let forget = "DELETE FROM regions WHERE deployment = $1 AND region = $2";
        let tombstone = "INSERT INTO region_tombstones (deployment, region, destroyed_ms) VALUES ($1, $2, $3) \
                         ON CONFLICT (deployment, region) DO UPDATE SET destroyed_ms = excluded.destroyed_ms";
        let now = Utc::now().timestamp_millis();
        on_pool!(&self.store, |p| async {
            let mut tx = p.begin().await?;
            sqlx::query(forget)
                .bind(deployment)
                .bind(region)
                .execute(&mut *tx)
                .await?;
            sqlx::query(tombstone)
                .bind(deployment)
                .bind(region)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await)
        .map_err(query_error("forget a region"))
    }

    /// When the region was last destroyed (Unix ms), if ever.
    pub async fn destroyed_at(
        &self,
        deployment: &str,
        region: &str,
    ) -> Result<Option<i64>, MachineStoreError> {
        let q = "SELECT destroyed_ms FROM region_tombstones WHERE deployment = $1 AND region = $2";
        on_pool!(&self.store, |p| sqlx::query_scalar::<_, i64>(q)
            .bind(deployment)
            .bind(region)
            .fetch_optional(p)
            .await)
        .map_err(query_error("read a region's tombstone"))
    }

    /// The machines of one region, oldest first.
    pub async fn region(&self, deployment: &str, region: &str) -> Result<Vec<MachineRow>, MachineStoreError> {
        self.machines(Some(deployment), Some(region)).await
    }
}

fn row_from<R: Row>(
    r: &R,
    attempts: impl Fn(&R) -> Result<i64, sqlx::Error>,
) -> Result<MachineRow, MachineStoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let get = |c: &'static str| r.try_get::<String, _>(c).map_err(query_error("read a machine"));
    let opt = |c: &'static str| {
        r.try_get::<Option<String>, _>(c)
            .map_err(query_error("read a machine"))
    };
    let resource_id = get("resource_id")?;
    let role_text = get("role")?;
    let state_text = get("state")?;
    let corrupt = |column, value: String| MachineStoreError::Corrupt {
        resource_id: resource_id.clone(),
        column,
        value,
    };
    let role = role_text
        .parse::<Role>()
        .map_err(|_| corrupt("role", role_text.clone()))?;
    let state = parse_state(&state_text).ok_or_else(|| corrupt("state", state_text.clone()))?;
    Ok(MachineRow {
        deployment: get("deployment")?,
        region: get("region")?,
        role,
        size: get("size")?,
        name: get("name")?,
        provider: get("provider")?,
        provider_id: opt("provider_id")?,
        state,
        public_ipv4: opt("public_ipv4")?,
        private_ipv4: opt("private_ipv4")?,
        attempts: u32::try_from(attempts(r).map_err(query_error("read a machine"))?).unwrap_or(u32::MAX),
        created_ms: r
            .try_get::<i64, _>("created_ms")
            .map_err(query_error("read a machine"))?,
        resource_id,
    })
}

/// A region as recorded: its last spec and where its apply stands.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionRecord {
    /// Deployment.
    pub deployment: String,
    /// The spec last applied (with machine-level changes since).
    pub spec: Region,
    /// `applying`, `blocked`, `retrying`, `applied` or `failed`.
    pub status: String,
    /// Why it is blocked or failed.
    pub detail: Option<String>,
    /// The region's VPC, once found or created.
    pub vpc_id: Option<String>,
    /// The VPC's subnet (Linode).
    pub subnet_id: Option<String>,
    /// Whether Flotilla created the VPC.
    pub vpc_created: bool,
    /// The image its machines are built from.
    pub image: String,
    /// The webserver count the accepted spec asked for (the live count is in `spec`).
    pub initial_webservers: Option<u32>,
}

/// The managed database of a primary region, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbaasRow {
    /// Deployment.
    pub deployment: String,
    /// Region (the primary).
    pub region: String,
    /// Provider.
    pub provider: String,
    /// The provider's id, once the create call answered.
    pub id: Option<String>,
    /// Name (label).
    pub name: String,
    /// Engine as the spec gives it.
    pub engine: String,
    /// `create-pending`, `creating` or `ready`.
    pub state: String,
    /// Public host.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Whether Flotilla created it (and so removes it with the region).
    pub created: bool,
}

fn corrupt_spec(deployment: &str, region: &str, e: impl std::fmt::Display) -> MachineStoreError {
    MachineStoreError::Corrupt {
        resource_id: format!("{deployment}/{region}"),
        column: "spec",
        value: e.to_string(),
    }
}

impl MachineStore {
    /// Records where a region's apply stands.
    pub async fn set_region_status(
        &self,
        deployment: &str,
        region: &str,
        status: &str,
        detail: Option<&str>,
    ) -> Result<(), MachineStoreError> {
        let q = "UPDATE regions SET status = $3, detail = $4 WHERE deployment = $1 AND region = $2";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(deployment)
            .bind(region)
            .bind(status)
            .bind(detail)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(query_error("record a region's status"))
    }

    /// Records, before a VPC is created, that the region's VPC is Flotilla's: a VPC found by name after a
    /// crash between the create call and [`MachineStore::set_region_vpc`] is then known to be ours.
    pub async fn mark_vpc_pending(&self, deployment: &str, region: &str) -> Result<(), MachineStoreError> {
        let q = "UPDATE regions SET vpc_id = NULL, subnet_id = NULL, vpc_created = 1 \
                 WHERE deployment = $1 AND region = $2";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(deployment)
            .bind(region)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(query_error("record a VPC being created"))
    }

    /// Records the region's VPC.
    pub async fn set_region_vpc(
        &self,
        deployment: &str,
        region: &str,
        vpc_id: &str,
        subnet_id: Option<&str>,
        created: bool,
    ) -> Result<(), MachineStoreError> {
        let q = "UPDATE regions SET vpc_id = $3, subnet_id = $4, \
                 vpc_created = CASE WHEN vpc_id = $3 THEN MAX_CREATED ELSE $5 END \
                 WHERE deployment = $1 AND region = $2";
        // Once created by us, a VPC stays ours even if a later apply merely finds it.
        let q = match &self.store {
            Store::Sqlite(_) => q.replace("MAX_CREATED", "MAX(vpc_created, $5)"),
            Store::Postgres(_) => q.replace("MAX_CREATED", "GREATEST(vpc_created, $5)"),
        };
        let created = i64::from(created);
        on_pool!(&self.store, |p| sqlx::query(&q)
            .bind(deployment)
            .bind(region)
            .bind(vpc_id)
            .bind(subnet_id)
            .bind(created)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(query_error("record a region's VPC"))
    }

    /// The recorded regions, of one deployment or all, of one region name or all; by deployment, region.
    pub async fn regions(
        &self,
        deployment: Option<&str>,
        region: Option<&str>,
    ) -> Result<Vec<RegionRecord>, MachineStoreError> {
        let q = "SELECT deployment, region, spec, status, detail, vpc_id, subnet_id, vpc_created, image, initial_webservers FROM regions \
                 WHERE ($1 IS NULL OR deployment = $1) AND ($2 IS NULL OR region = $2) \
                 ORDER BY deployment, region";
        type Raw = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            String,
            Option<i64>,
        );
        let rows: Vec<Raw> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(deployment)
            .bind(region)
            .fetch_all(p)
            .await)
        .map_err(query_error("list regions"))?;
        rows.into_iter()
            .map(
                |(dep, name, spec, status, detail, vpc_id, subnet_id, vpc_created, image, initial)| {
                    let spec: Region =
                        serde_json::from_str(&spec).map_err(|e| corrupt_spec(&dep, &name, e))?;
                    Ok(RegionRecord {
                        deployment: dep,
                        spec,
                        status,
                        detail,
                        vpc_id,
                        subnet_id,
                        vpc_created: vpc_created != 0,
                        image,
                        initial_webservers: initial.and_then(|n| u32::try_from(n).ok()),
                    })
                },
            )
            .collect()
    }

    /// Applies a machine-level change to a region's wanted counts, once per command: `change` edits the
    /// recorded spec; the edit and the command id are written in one transaction. Returns `None` when the
    /// region is unknown, `Some(false)` when this command was applied before — then `change` is not run: its
    /// checks passed the first time, and judged against the already changed spec a redelivery could be
    /// refused (webservers past the maximum, or below the minimum).
    pub async fn change_region(
        &self,
        command_id: &str,
        deployment: &str,
        region: &str,
        change: impl FnOnce(&mut Region) -> Result<(), String>,
    ) -> Result<Option<Result<bool, String>>, MachineStoreError> {
        /// Why the transaction stopped short.
        enum Outcome {
            Applied(bool),
            Unknown,
            Refused(String),
            Corrupt(String),
        }
        let now = Utc::now().timestamp_millis();
        // The command id is written first: it takes SQLite's write lock (no read-then-upgrade deadlock) and
        // makes a concurrent copy of the same command wait; the spec is then read, changed and written in
        // the same transaction (PostgreSQL: the row locked `FOR UPDATE`), so two changes never both start
        // from the same count.
        let insert = "INSERT INTO region_changes (command_id, deployment, region, applied_ms) \
                      VALUES ($1, $2, $3, $4) ON CONFLICT (command_id) DO NOTHING";
        let select = match &self.store {
            Store::Sqlite(_) => "SELECT spec FROM regions WHERE deployment = $1 AND region = $2",
            Store::Postgres(_) => "SELECT spec FROM regions WHERE deployment = $1 AND region = $2 FOR UPDATE",
        };
        let update = "UPDATE regions SET spec = $3, updated_ms = $4 WHERE deployment = $1 AND region = $2";
        let outcome = on_pool!(&self.store, |p| async {
            let mut tx = p.begin().await?;
            let inserted = sqlx::query(insert)
                .bind(command_id)
                .bind(deployment)
                .bind(region)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 0 {
                // Applied before: not checked again against the spec it changed.
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(Outcome::Applied(false));
            }
            let spec: Option<String> = sqlx::query_scalar(select)
                .bind(deployment)
                .bind(region)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(spec) = spec else {
                tx.rollback().await?;
                return Ok(Outcome::Unknown);
            };
            let mut spec: Region = match serde_json::from_str(&spec) {
                Ok(s) => s,
                Err(e) => {
                    tx.rollback().await?;
                    return Ok(Outcome::Corrupt(e.to_string()));
                }
            };
            if let Err(refused) = change(&mut spec) {
                tx.rollback().await?;
                return Ok(Outcome::Refused(refused));
            }
            let text = match serde_json::to_string(&spec) {
                Ok(t) => t,
                Err(e) => {
                    tx.rollback().await?;
                    return Ok(Outcome::Corrupt(e.to_string()));
                }
            };
            sqlx::query(update)
                .bind(deployment)
                .bind(region)
                .bind(&text)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Outcome::Applied(true))
        }
        .await)
        .map_err(query_error("change a region's wanted machines"))?;
        match outcome {
            Outcome::Applied(fresh) => Ok(Some(Ok(fresh))),
            Outcome::Unknown => Ok(None),
            Outcome::Refused(why) => Ok(Some(Err(why))),
            Outcome::Corrupt(e) => Err(corrupt_spec(deployment, region, e)),
        }
    }

    /// Whether a machine-level command was applied already.
    pub async fn change_applied(&self, command_id: &str) -> Result<bool, MachineStoreError> {
        let q = "SELECT COUNT(*) FROM region_changes WHERE command_id = $1";
        let n: i64 = on_pool!(&self.store, |p| sqlx::query_scalar(q)
            .bind(command_id)
            .fetch_one(p)
            .await)
        .map_err(query_error("read applied changes"))?;
        Ok(n > 0)
    }

    /// The machines of a deployment (or all), of a region (or all).
    pub async fn machines(
        &self,
        deployment: Option<&str>,
        region: Option<&str>,
    ) -> Result<Vec<MachineRow>, MachineStoreError> {
        let q = format!(
            "SELECT {COLUMNS} FROM machines WHERE ($1 IS NULL OR deployment = $1) AND ($2 IS NULL OR region = $2) \
             ORDER BY deployment, region, created_ms, resource_id"
        );
        macro_rules! rows {
            ($pool:expr, $int:ty) => {
                sqlx::query(&q)
                    .bind(deployment)
                    .bind(region)
                    .fetch_all($pool)
                    .await
                    .map_err(query_error("list machines"))?
                    .iter()
                    .map(|r| row_from(r, |r| r.try_get::<$int, _>("attempts").map(i64::from)))
                    .collect()
            };
        }
        match &self.store {
            Store::Sqlite(p) => rows!(p, i64),
            Store::Postgres(p) => rows!(p, i32),
        }
    }

    /// The managed database recorded for a region.
    pub async fn dbaas(&self, deployment: &str, region: &str) -> Result<Option<DbaasRow>, MachineStoreError> {
        let q = "SELECT deployment, region, provider, id, name, engine, state, host, port, created FROM dbaas \
                 WHERE deployment = $1 AND region = $2";
        type Raw = (
            String,
            String,
            String,
            Option<String>,
            String,
            String,
            String,
            Option<String>,
            Option<i64>,
            i64,
        );
        let row: Option<Raw> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(deployment)
            .bind(region)
            .fetch_optional(p)
            .await)
        .map_err(query_error("read a DBaaS"))?;
        Ok(row.map(
            |(deployment, region, provider, id, name, engine, state, host, port, created)| DbaasRow {
                deployment,
                region,
                provider,
                id,
                name,
                engine,
                state,
                host,
                port: port.and_then(|p| u16::try_from(p).ok()),
                created: created != 0,
            },
        ))
    }

    /// Records a managed database before its create call; `false` when a row was there already (an earlier
    /// attempt: find the cluster by name before creating).
    pub async fn record_dbaas_pending(&self, row: &DbaasRow) -> Result<bool, MachineStoreError> {
        let q = "INSERT INTO dbaas (deployment, region, provider, id, name, engine, state, host, port, created, \
                 updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (deployment, region) DO NOTHING";
        let now = Utc::now().timestamp_millis();
        let n = on_pool!(&self.store, |p| sqlx::query(q)
            .bind(&row.deployment)
            .bind(&row.region)
            .bind(&row.provider)
            .bind(&row.id)
            .bind(&row.name)
            .bind(&row.engine)
            .bind(&row.state)
            .bind(&row.host)
            .bind(row.port.map(i64::from))
            .bind(i64::from(row.created))
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(query_error("record a DBaaS"))?;
        Ok(n == 1)
    }

    /// Updates a recorded managed database.
    pub async fn save_dbaas(&self, row: &DbaasRow) -> Result<(), MachineStoreError> {
        let q = "UPDATE dbaas SET provider = $3, id = $4, name = $5, engine = $6, state = $7, host = $8, \
                 port = $9, created = $10, updated_ms = $11 WHERE deployment = $1 AND region = $2";
        let now = Utc::now().timestamp_millis();
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(&row.deployment)
            .bind(&row.region)
            .bind(&row.provider)
            .bind(&row.id)
            .bind(&row.name)
            .bind(&row.engine)
            .bind(&row.state)
            .bind(&row.host)
            .bind(row.port.map(i64::from))
            .bind(i64::from(row.created))
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(query_error("update a DBaaS"))
    }

    /// Forgets a region's managed database.
    pub async fn forget_dbaas(&self, deployment: &str, region: &str) -> Result<(), MachineStoreError> {
        let q = "DELETE FROM dbaas WHERE deployment = $1 AND region = $2";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(deployment)
            .bind(region)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(query_error("forget a DBaaS"))
    }
}
