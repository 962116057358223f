use flotilla_store::Store;

/// A database for one test: a SQLite file, or a fresh PostgreSQL database.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// The opened, migrated store.
    pub store: Store,
    pg_admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A migrated SQLite database in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = Store::open(&url).await.expect("open sqlite");
        Self {
            url,
            store,
            pg_admin: None,
            _dir: Some(dir),
        }
    }

    /// A fresh, migrated PostgreSQL database created through `DATABASE_URL` (or a container, with the
    /// `docker` feature); `None` (said on stderr) when there is no PostgreSQL outside CI. In CI its absence
    /// fails the test.
    pub async fn postgres() -> Option<Self> {
        let admin_url = match std::env::var("DATABASE_URL") {
            Ok(u) if u.starts_with("postgres") => u,
            #[cfg(feature = "docker")]
            _ if crate::docker::available() => crate::docker::postgres_url().await,
            _ if crate::in_ci() => {
                panic!("CI=true but DATABASE_URL is not a postgres:// URL: PostgreSQL tests cannot run")
            }
            _ => {
                eprintln!("SKIPPED the PostgreSQL half of this test: DATABASE_URL is not set");
                return None;
            }
        };
        let name = crate::unique("flotilla_test").replace('-', "_");
        let admin = Store::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("DATABASE_URL: {e}"));
        let Store::Postgres(pool) = &admin else {
            unreachable!("postgres URL gave another backend")
        };
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(pool)
            .await
            .expect("create test database");
        admin.close().await;
        let url = with_database(&admin_url, &name);
        let store = Store::open(&url).await.expect("open test database");
        Some(Self {
            url,
            store,
            pg_admin: Some((admin_url, name)),
            _dir: None,
        })
    }

    /// Closes the store and drops a PostgreSQL test database.
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some((admin_url, name)) = self.pg_admin
            && let Ok(Store::Postgres(pool)) = Store::connect(&admin_url).await
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&pool)
                .await;
            pool.close().await;
        }
    }
}

/// SQLite always, and PostgreSQL when available: run a repository test on each.
pub async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    dbs.extend(TestDb::postgres().await);
    dbs
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // postgres://user@host:port/db → replace the last path segment (or add one).
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        use super::with_database;
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
