//! The dns service's own database: which records each deployment owns (its ownership registry, for
//! providers that keep no mark on a record, and beside the mark on Cloudflare), and which region's
//! authenticator each deployment's authenticator name points at after a fail-over.
//!
//! Create fencing, as the provisioner does for machines: a row is written before a record is created, its
//! provider id unknown; a record of that name and address is then the deployment's even if the process dies
//! between the provider's answer and our write, and the next run binds the row to the record's id. So a
//! restart never creates a second record for an address nor leaves one nobody owns.

use chrono::{DateTime, Utc};
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

/// One owned record (or one about to be created) as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    /// Fully qualified name (lower case).
    pub name: String,
    /// The address.
    pub content: String,
    /// The owning deployment.
    pub owner: String,
    /// The provider's id, once known.
    pub record_id: Option<String>,
}

/// Where a deployment's authenticator name points, when not at the primary region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveAuthenticator {
    /// The region.
    pub region: String,
    /// `command` or `health`.
    pub cause: String,
    /// Why, in words.
    pub reason: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// The dns service's database.
#[derive(Debug, Clone)]
pub struct DnsStore {
    store: Store,
}

impl DnsStore {
    /// The store on `store`, already migrated (the service host runs [`migrations`] at start-up).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Every registry row of a zone, whoever owns it.
    pub async fn owned(&self, provider: &str, zone: &str) -> Result<Vec<Owned>, StoreError> {
        let q = "SELECT name, content, owner, record_id FROM dns_owned WHERE provider = $1 AND zone = $2 \
                 ORDER BY name, content, owner";
        let rows: Vec<(String, String, String, Option<String>)> =
            on_pool!(&self.store, |p| sqlx::query_as(q)
                .bind(provider)
                .bind(zone.to_ascii_lowercase())
                .fetch_all(p)
                .await)
            .map_err(query_error("list owned records"))?;
        Ok(rows
            .into_iter()
            .map(|(name, content, owner, record_id)| Owned {
                name,
                content,
                owner,
                record_id,
            })
            .collect())
    }

    /// Records that `owner` owns the record of `name` and `content` — about to be created when `record_id`
    /// is `None`, an existing record otherwise. Writing the same again changes nothing.
    pub async fn claim(
        &self,
        provider: &str,
        zone: &str,
        name: &str,
        content: &str,
        owner: &str,
        record_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let q = "INSERT INTO dns_owned (provider, zone, name, content, owner, record_id, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (provider, zone, name, content, owner) \
                 DO UPDATE SET record_id = excluded.record_id, updated_ms = excluded.updated_ms";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(provider)
            .bind(zone.to_ascii_lowercase())
            .bind(name.to_ascii_lowercase())
            .bind(content)
            .bind(owner)
            .bind(record_id)
            .bind(Utc::now().timestamp_millis())
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("claim a record"))
    }

    /// Forgets that `owner` owns the record of `name` and `content` (it was deleted, or is gone).
    pub async fn release(
        &self,
        provider: &str,
        zone: &str,
        name: &str,
        content: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let q = "DELETE FROM dns_owned WHERE provider = $1 AND zone = $2 AND name = $3 AND content = $4 \
                 AND owner = $5";
        on_pool!(&self.store, |p| sqlx::query(q)
            .bind(provider)
            .bind(zone.to_ascii_lowercase())
            .bind(name.to_ascii_lowercase())
            .bind(content)
            .bind(owner)
            .execute(p)
            .await
            .map(drop))
        .map_err(query_error("release a record"))
    }

    /// Moves the record of `name` and `content` from `from` to `to` (both in one transaction: it is never
    /// owned by neither).
    #[allow(clippy::too_many_arguments)]
    pub async fn transfer(
        &self,
        provider: &str,
        zone: &str,
        name: &str,
        content: &str,
        record_id: Option<&str>,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        let claim = "INSERT INTO dns_owned (provider, zone, name, content, owner, record_id, updated_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (provider, zone, name, content, owner) \
                     DO UPDATE SET record_id = excluded.record_id, updated_ms = excluded.updated_ms";
        let release = "DELETE FROM dns_owned WHERE provider = $1 AND zone = $2 AND name = $3 AND content = $4 \
                       AND owner = $5";
        let (zone, name) = (zone.to_ascii_lowercase(), name.to_ascii_lowercase());
        let now = Utc::now().timestamp_millis();
        on_pool!(&self.store, |p| async {
            let mut tx = p.begin().await?;
            sqlx::query(claim)
                .bind(provider)
                .bind(&zone)
                .bind(&name)
                .bind(content)
                .bind(to)
                .bind(record_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(release)
                .bind(provider)
                .bind(&zone)
                .bind(&name)
                .bind(content)
                .bind(from)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await)
        .map_err(query_error("hand a record over"))
    }

    /// The region a deployment's authenticator name was failed over to, if it was.
    pub async fn active_authenticator(
        &self,
        deployment: &str,
    ) -> Result<Option<ActiveAuthenticator>, StoreError> {
        let q = "SELECT region, cause, reason, since_ms FROM dns_authenticator WHERE deployment = $1";
        let row: Option<(String, String, String, i64)> = on_pool!(&self.store, |p| sqlx::query_as(q)
            .bind(deployment)
            .fetch_optional(p)
            .await)
        .map_err(query_error("read the active authenticator"))?;
        Ok(row.map(|(region, cause, reason, since)| ActiveAuthenticator {
            region,
            cause,
            reason,
            since: DateTime::from_timestamp_millis(since).unwrap_or_default(),
        }))
    }

    /// Points a deployment's authenticator name at `region`. With `expected` (`Some(None)`: never failed
    /// over; `Some(Some(r))`: at `r`), only if that is still so — a concurrent move (a command while the loop
    /// decides) wins and this one changes nothing. Returns whether anything changed, and the region recorded
    /// before (`None`: never failed over, so the primary's).
    pub async fn set_active_authenticator(
        &self,
        deployment: &str,
        region: &str,
        cause: &str,
        reason: &str,
        expected: Option<Option<&str>>,
    ) -> Result<(bool, Option<String>), StoreError> {
        let before = self.active_authenticator(deployment).await?;
        if before.as_ref().is_some_and(|b| b.region == region) {
            return Ok((false, Some(region.to_owned())));
        }
        let now = Utc::now().timestamp_millis();
        let (q, prev) = match expected {
            None => (
                "INSERT INTO dns_authenticator (deployment, region, cause, reason, since_ms) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (deployment) DO UPDATE SET region = excluded.region, cause = excluded.cause, \
                 reason = excluded.reason, since_ms = excluded.since_ms",
                None,
            ),
            Some(None) => (
                "INSERT INTO dns_authenticator (deployment, region, cause, reason, since_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (deployment) DO NOTHING",
                None,
            ),
            Some(Some(prev)) => (
                "UPDATE dns_authenticator SET region = $2, cause = $3, reason = $4, since_ms = $5 \
                 WHERE deployment = $1 AND region = $6",
                Some(prev),
            ),
        };
        let changed = on_pool!(&self.store, |p| {
            let mut query = sqlx::query(q)
                .bind(deployment)
                .bind(region)
                .bind(cause)
                .bind(reason)
                .bind(now);
            if let Some(prev) = prev {
                query = query.bind(prev);
            }
            query.execute(p).await.map(|r| r.rows_affected() > 0)
        })
        .map_err(query_error("set the active authenticator"))?;
        Ok((changed, before.map(|b| b.region)))
    }
}
