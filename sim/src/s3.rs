//! S3-compatible endpoints, one per provider region: in-process s3s-fs servers, each with its own
//! credentials (SigV4) and data directory.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Provider, S3EndpointConfig};
use crate::error::SimError;

/// A running S3 endpoint.
#[derive(Clone)]
pub struct S3Endpoint {
    /// Provider.
    pub provider: Provider,
    /// Region / cluster id.
    pub region: String,
    /// Endpoint URL (`http://127.0.0.1:PORT`; use path-style addressing).
    pub url: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Where its buckets live on disk.
    pub data_dir: PathBuf,
    /// Requests served so far (for benchmarks comparing clients).
    served: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl S3Endpoint {
    /// The host base it stands in for (`nl-ams-1.linodeobjects.com`, `ams3.digitaloceanspaces.com`,
    /// `ams1.vultrobjects.com`, `sos-ch-gva-2.exo.io`): what a region's `S3_HOST_BASE` names.
    pub fn host_base(&self) -> Option<String> {
        Some(match self.provider {
            Provider::Linode => format!("{}.linodeobjects.com", self.region),
            Provider::DigitalOcean => format!("{}.digitaloceanspaces.com", self.region),
            Provider::Vultr => format!("{}.vultrobjects.com", self.region),
            Provider::Exoscale => format!("sos-{}.exo.io", self.region),
            Provider::Cloudflare => return None,
        })
    }

    /// How many HTTP requests it has served.
    pub fn requests(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The S3 service, counting the requests it serves.
#[derive(Clone)]
struct Counted {
    inner: s3s::service::S3Service,
    served: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Counted {
    type Response =
        <s3s::service::S3Service as hyper::service::Service<hyper::Request<hyper::body::Incoming>>>::Response;
    type Error =
        <s3s::service::S3Service as hyper::service::Service<hyper::Request<hyper::body::Incoming>>>::Error;
    type Future =
        <s3s::service::S3Service as hyper::service::Service<hyper::Request<hyper::body::Incoming>>>::Future;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        hyper::service::Service::call(&self.inner, req)
    }
}

impl std::fmt::Debug for S3Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Endpoint")
            .field("provider", &self.provider)
            .field("region", &self.region)
            .field("url", &self.url)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// Whether the endpoint is down (the `datastore_down` fault): asked for each new connection and, every
/// 50 ms, by each open one.
pub(crate) type Down = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// Starts one endpoint with its data under `root/<provider>-<region>`.
pub(crate) async fn start(
    cfg: &S3EndpointConfig,
    bind: IpAddr,
    url_host: IpAddr,
    root: &Path,
    stop: CancellationToken,
    down: Down,
) -> Result<(S3Endpoint, JoinHandle<()>), SimError> {
    let fail = |message: String| SimError::S3 {
        provider: cfg.provider,
        region: cfg.region.clone(),
        message,
    };
    let dir = root.join(format!("{}-{}", cfg.provider, cfg.region));
    std::fs::create_dir_all(&dir).map_err(|e| fail(format!("data directory {}: {e}", dir.display())))?;
    let fs = s3s_fs::FileSystem::new(&dir).map_err(|e| fail(format!("{e:?}")))?;
    let service = {
        let mut b = s3s::service::S3ServiceBuilder::new(crate::s3_etags::Tagged::new(fs, dir.clone()));
        b.set_auth(s3s::auth::SimpleAuth::from_single(
            cfg.access_key.clone(),
            cfg.secret_key.clone(),
        ));
        Counted {
            inner: b.build(),
            served: std::sync::Arc::default(),
        }
    };
    let served = std::sync::Arc::clone(&service.served);
    let addr = SocketAddr::new(bind, cfg.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| SimError::Bind {
            what: format!("S3 {}/{}", cfg.provider, cfg.region),
            addr: addr.to_string(),
            source: e,
        })?;
    let port = listener.local_addr().map_err(|e| fail(e.to_string()))?.port();
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let (socket, _) = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(_) => continue,
                },
            };
            if down() {
                drop(socket);
                continue;
            }
            // As real endpoints (nginx, haproxy) do: a response is never held back for an ACK.
            let _ = socket.set_nodelay(true);
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            let stop = stop.clone();
            let down = std::sync::Arc::clone(&down);
            tokio::spawn(async move {
                let went_down = async {
                    while !down() {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = conn => {}
                    () = went_down => {}
                }
            });
        }
    });
    Ok((
        S3Endpoint {
            provider: cfg.provider,
            region: cfg.region.clone(),
            url: format!("http://{}", SocketAddr::new(url_host, port)),
            access_key: cfg.access_key.clone(),
            secret_key: cfg.secret_key.clone(),
            data_dir: dir,
            served,
        },
        task,
    ))
}
