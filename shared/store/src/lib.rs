//! Per-service storage: SQLite by default, PostgreSQL when given a `postgres://` URL.
//!
//! Each service owns its own database (a file under its data directory, or its own PostgreSQL database);
//! no service reads or writes another's. [`Store`] is one type over both backends, chosen by URL scheme.
//! Migrations are embedded at build time, one set per backend (`migrations/sqlite`, `migrations/postgres`),
//! and queries are checked at run time, so building needs no database.
//!
//! Repositories are small types over a `Store` ([`Inbox`]); the same repository tests run on both backends.

mod inbox;

pub use inbox::Inbox;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend.
    #[error("unsupported database URL scheme in {0:?}: use sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot open {backend} database: {source}")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The error.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("migrating the {backend} database failed: {source}")]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The error.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("database query failed ({what}): {source}")]
    Query {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: sqlx::Error,
    },
}

/// The backend behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A connection pool to a service's own database.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite pool.
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// The common migrations every service's database has (the inbox).
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens the database at `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`), creating a SQLite
    /// file if missing, and runs the embedded migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database without migrating.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|source| StoreError::Connect {
                    backend: "sqlite",
                    source,
                })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // An in-memory database exists once per connection: keep exactly one.
            let max = if url.contains(":memory:") || url.contains("mode=memory") {
                1
            } else {
                4
            };
            let pool = SqlitePoolOptions::new()
                .max_connections(max)
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect {
                    backend: "sqlite",
                    source,
                })?;
            Ok(Store::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
                backend: "postgres",
                source,
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect {
                    backend: "postgres",
                    source,
                })?;
            Ok(Store::Postgres(pool))
        } else {
            // Never echo the URL: it may carry a password.
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::UnsupportedUrl(format!("{scheme}:…")))
        }
    }

    /// Runs the common embedded migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_with(&SQLITE_MIGRATIONS, &POSTGRES_MIGRATIONS).await
    }

    /// Runs a service's own migrations (one set per backend) after the common ones. A service's migration
    /// versions must not collide with the common ones: start them at 100.
    pub async fn migrate_with(
        &self,
        sqlite: &sqlx::migrate::Migrator,
        postgres: &sqlx::migrate::Migrator,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite.run(pool).await.map_err(|source| StoreError::Migrate {
                backend: "sqlite",
                source,
            }),
            Store::Postgres(pool) => postgres.run(pool).await.map_err(|source| StoreError::Migrate {
                backend: "postgres",
                source,
            }),
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// A trivial query, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let q = "SELECT 1";
        match self {
            Store::Sqlite(p) => sqlx::query(q).execute(p).await.map(|_| ()),
            Store::Postgres(p) => sqlx::query(q).execute(p).await.map(|_| ()),
        }
        .map_err(|source| StoreError::Query { what: "ping", source })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(p) => p.close().await,
            Store::Postgres(p) => p.close().await,
        }
    }
}

/// The default database URL for a service: a SQLite file in its data directory.
pub fn default_sqlite_url(data_dir: &std::path::Path, service: &str) -> String {
    format!("sqlite://{}", data_dir.join(format!("{service}.db")).display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_unknown_scheme_without_echoing_secrets() {
        let err = Store::open("mysql://root:hunter2@localhost/db")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql") && !err.contains("hunter2"), "{err}");
    }
}
