//! The test harness: one place that gives a test a NATS server with JetStream, a database and S3.
//!
//! - NATS: `NATS_URL` when set (tests then share that server and keep out of each other's way by unique
//!   service names); otherwise a private `nats-server -js` started on a free port in a temporary directory,
//!   from `NATS_SERVER_BIN` or the first `nats-server` on `PATH` that is 2.10 or newer.
//! - Database: SQLite in a temporary directory always; PostgreSQL from `DATABASE_URL` (an account allowed to
//!   create databases: each test gets a fresh one), or, built with the `docker` feature where Docker runs,
//!   from a PostgreSQL container.
//! - S3: `S3_ENDPOINT` (+ `S3_ACCESS_KEY`, `S3_SECRET_KEY`) when set; with the `docker` feature where Docker
//!   runs, a MinIO container; otherwise an in-process s3s-fs server.
//!
//! When `CI=true`, a missing dependency fails the test loudly; elsewhere a test that needs PostgreSQL says
//! on stderr that it skipped that part. NATS is always required.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

#[cfg(feature = "docker")]
pub mod docker;
pub mod figures;
pub mod inventory;
mod nats;
pub mod pgserver;
mod postgres;
pub mod process;
mod s3;
pub mod sim;
pub mod system;
pub mod templates;
pub mod tls;

pub use nats::{
    TestCluster, TestNats, find_old_nats_server, free_port, nats_server_bin, start_server, start_server_with,
};
pub use postgres::{TestDb, databases};
pub use s3::TestS3;

use std::time::Duration;

/// Whether we run in CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A short random suffix for names that must not collide between tests sharing a server.
pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    let n: u32 = rand::rng().random();
    format!("{prefix}-{n:08x}")
}

/// A desired-state generation for a command a test publishes by hand: larger than every one handed out
/// before in this process (and than any from an earlier run against the same server: it starts from the
/// clock), so each hand-published apply or destroy is the newest.
pub fn next_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1);
    let _ = NEXT.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// Installs a test log subscriber once (`RUST_LOG` controls it).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        // Plain text: a failing test's output is read in CI logs and files, not a terminal.
        .with_ansi(false)
        .try_init();
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the `/ready` of `service`'s admin endpoints is green, or panics after `timeout`.
pub async fn until_ready(service: &flotilla_runtime::host::Running, timeout: Duration) {
    let ready = format!(
        "http://{}/ready",
        service.admin_addr.expect("the admin endpoints are enabled")
    );
    eventually(&format!("{ready} green"), timeout, || async {
        reqwest::get(&ready)
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(drop)
    })
    .await;
}

/// A service configuration pointing at `nats` and `database_url`, with the admin endpoints on a free port
/// and short timings suited to tests.
pub fn service_config<S: Default>(
    nats: &TestNats,
    database_url: Option<String>,
    data_dir: &std::path::Path,
) -> flotilla_runtime::ServiceConfig<S> {
    service_config_for([nats.url()], database_url, data_dir)
}

/// [`service_config`] for NATS at `urls` (a cluster's nodes, say).
pub fn service_config_for<'a, S: Default>(
    urls: impl IntoIterator<Item = &'a str>,
    database_url: Option<String>,
    data_dir: &std::path::Path,
) -> flotilla_runtime::ServiceConfig<S> {
    let mut cfg = flotilla_runtime::ServiceConfig {
        nats: flotilla_bus::BusConfig::for_urls(urls.into_iter().map(str::to_owned)),
        data_dir: data_dir.to_owned(),
        database_url,
        ..Default::default()
    };
    cfg.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.consumer.ack_wait = Duration::from_secs(2);
    cfg.consumer.retry_delays = vec![Duration::from_millis(100)];
    cfg.consumer.pull_expiry = Duration::from_millis(500);
    cfg.consumer.shutdown_grace = Duration::from_secs(2);
    cfg
}
