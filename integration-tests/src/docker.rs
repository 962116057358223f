//! PostgreSQL and MinIO in containers, for developers with Docker (feature `docker`). One container of each
//! per test binary, shared by its tests; the testcontainers reaper removes them when the binary exits.

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::OnceCell;

/// Whether a Docker daemon looks reachable.
pub fn available() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || std::path::Path::new("/var/run/docker.sock").exists()
}

static POSTGRES: OnceCell<(ContainerAsync<GenericImage>, String)> = OnceCell::const_new();
static MINIO: OnceCell<(ContainerAsync<GenericImage>, String)> = OnceCell::const_new();

/// Admin URL of a PostgreSQL container (user `postgres`, trust authentication).
pub async fn postgres_url() -> String {
    let (_, url) = POSTGRES
        .get_or_init(|| async {
            let container = GenericImage::new("postgres", "16-alpine")
                .with_exposed_port(5432.tcp())
                .with_wait_for(WaitFor::message_on_stderr(
                    "database system is ready to accept connections",
                ))
                .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
                .start()
                .await
                .expect("start a PostgreSQL container");
            let port = container.get_host_port_ipv4(5432).await.expect("PostgreSQL port");
            (
                container,
                format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            )
        })
        .await;
    url.clone()
}

/// Credentials shared by every MinIO container.
pub const MINIO_USER: &str = "flotilla-test";
/// Secret of [`MINIO_USER`].
pub const MINIO_PASSWORD: &str = "flotilla-test-secret";

/// Endpoint of a MinIO container.
pub async fn minio_endpoint() -> String {
    let (_, endpoint) = MINIO
        .get_or_init(|| async {
            let container = GenericImage::new("minio/minio", "latest")
                .with_exposed_port(9000.tcp())
                .with_wait_for(WaitFor::message_on_stdout("API:"))
                .with_env_var("MINIO_ROOT_USER", MINIO_USER)
                .with_env_var("MINIO_ROOT_PASSWORD", MINIO_PASSWORD)
                .with_cmd(["server", "/data"])
                .start()
                .await
                .expect("start a MinIO container");
            let port = container.get_host_port_ipv4(9000).await.expect("MinIO port");
            (container, format!("http://127.0.0.1:{port}"))
        })
        .await;
    endpoint.clone()
}
