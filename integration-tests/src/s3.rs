use std::net::SocketAddr;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio_util::sync::CancellationToken;

/// An S3 endpoint for one test.
pub struct TestS3 {
    /// Endpoint URL (`http://127.0.0.1:port`).
    pub endpoint: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    stop: Option<CancellationToken>,
    _dir: Option<tempfile::TempDir>,
}

impl TestS3 {
    /// `S3_ENDPOINT`/`S3_ACCESS_KEY`/`S3_SECRET_KEY` when set, else a MinIO container (feature `docker`,
    /// where Docker runs), else an in-process s3s-fs server.
    pub async fn start() -> Self {
        if let (Ok(endpoint), Ok(access_key), Ok(secret_key)) = (
            std::env::var("S3_ENDPOINT"),
            std::env::var("S3_ACCESS_KEY"),
            std::env::var("S3_SECRET_KEY"),
        ) {
            return Self::external(&endpoint, &access_key, &secret_key);
        }
        #[cfg(feature = "docker")]
        if crate::docker::available() {
            let endpoint = crate::docker::minio_endpoint().await;
            return Self::external(
                &endpoint,
                crate::docker::MINIO_USER,
                crate::docker::MINIO_PASSWORD,
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let access_key = crate::unique("AKTEST").to_uppercase();
        let secret_key = crate::unique("secret");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs root");
        let service = {
            // As the simulator's endpoints: listings carry entity tags, as real providers' do.
            let fs = flotilla_cloudsim::Tagged::new(fs, dir.path().to_path_buf());
            let mut b = s3s::service::S3ServiceBuilder::new(fs);
            b.set_auth(s3s::auth::SimpleAuth::from_single(
                access_key.clone(),
                secret_key.clone(),
            ));
            b.build()
        };
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind s3");
        let addr = listener.local_addr().expect("s3 addr");
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let (socket, _) = tokio::select! {
                    _ = token.cancelled() => break,
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Self {
            endpoint: format!("http://{addr}"),
            access_key,
            secret_key,
            stop: Some(stop),
            _dir: Some(dir),
        }
    }

    /// An endpoint that is already running elsewhere.
    pub fn external(endpoint: &str, access_key: &str, secret_key: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            stop: None,
            _dir: None,
        }
    }

    /// An S3 client for this endpoint (path-style, static credentials, ring-based TLS stack).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                &self.access_key,
                &self.secret_key,
                None,
                None,
                "flotilla-test",
            ))
            .http_client(http)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            stop.cancel();
        }
    }
}
