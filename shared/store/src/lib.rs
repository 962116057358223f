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
/// A set of embedded migrations (`sqlx::migrate!`), for [`Store::migrate_with`].
pub use sqlx::migrate::Migrator;

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

impl StoreError {
    /// Whether trying again later may succeed: the server could not be reached, no connection could be had
    /// in time, or the server said it is starting or shutting down (a database restarting). A bad URL, a
    /// refused login, a failed migration or query is not.
    pub fn is_transient(&self) -> bool {
        fn passing(e: &sqlx::Error) -> bool {
            match e {
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
                // cannot_connect_now, admin_shutdown, crash_shutdown.
                sqlx::Error::Database(db) => {
                    matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03"))
                }
                _ => false,
            }
        }
        match self {
            Self::Connect { source, .. } => passing(source),
            Self::Migrate {
                source: sqlx::migrate::MigrateError::Execute(e),
                ..
            } => passing(e),
            _ => false,
        }
    }
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

impl Store {
    /// Opens the database at `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`), creating a SQLite
    /// file if missing, and runs the common embedded migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database without migrating.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        match backend_of(url)? {
            Backend::Sqlite => {
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
                let pool = if url.contains(":memory:") || url.contains("mode=memory") {
                    // An in-memory database lives as long as its one connection: keep exactly one, forever.
                    SqlitePoolOptions::new()
                        .min_connections(1)
                        .max_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    SqlitePoolOptions::new().max_connections(4)
                };
                let pool = pool
                    .connect_with(opts)
                    .await
                    .map_err(|source| StoreError::Connect {
                        backend: "sqlite",
                        source,
                    })?;
                Ok(Store::Sqlite(pool))
            }
            Backend::Postgres => {
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
            }
        }
    }

    /// Runs the common embedded migrations (the inbox).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.run(common_migrations(self.backend())).await
    }

    /// Runs the common migrations, then a service's own (`sqlite` or `postgres`, by backend; build them
    /// with `sqlx::migrate!`). Each set ignores the other's versions, so both can share the database's
    /// migration table; a service's versions must not collide with the common ones: start them at 100.
    pub async fn migrate_with(&self, sqlite: Migrator, postgres: Migrator) -> Result<(), StoreError> {
        self.migrate().await?;
        self.run(match self.backend() {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        })
        .await
    }

    async fn run(&self, mut migrator: Migrator) -> Result<(), StoreError> {
        migrator.set_ignore_missing(true);
        match self {
            Store::Sqlite(pool) => migrator.run(pool).await.map_err(|source| StoreError::Migrate {
                backend: "sqlite",
                source,
            }),
            Store::Postgres(pool) => migrator.run(pool).await.map_err(|source| StoreError::Migrate {
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

/// The migrations every service's database has.
fn common_migrations(backend: Backend) -> Migrator {
    match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    }
}

/// The backend a database URL names: `sqlite:` or `postgres:`/`postgresql:`. Anything else is refused
/// without echoing the URL (it may hold a password).
pub fn backend_of(url: &str) -> Result<Backend, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::UnsupportedUrl(format!("{scheme}:…")))
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
