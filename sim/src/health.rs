//! Machines' own network presence: each machine's public IP (127.x.y.z) answers HTTP health checks on
//! the configured port while it runs and is healthy.
//!
//! The address is bound and listening from the machine's creation to its deletion, so two simulators
//! on one host never hand out the same address. While the machine boots, is `unhealthy`, is stopped or
//! its region is down, connections are accepted and closed at once without an answer (a health check
//! fails immediately); on delete the listener closes (connections are refused).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::config::Provider;

/// Who a health listener answers for.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub provider: Provider,
    pub id: String,
    pub label: String,
}

struct Endpoint {
    ip: Ipv4Addr,
    serving: Arc<AtomicBool>,
    stop: CancellationToken,
}

/// Every machine's health endpoint.
pub(crate) struct Health {
    port: u16,
    root: CancellationToken,
    endpoints: Mutex<HashMap<String, Endpoint>>,
}

/// The key of a machine in the endpoint table.
pub(crate) fn key(provider: Provider, id: &str) -> String {
    format!("{provider}/{id}")
}

fn listen(ip: Ipv4Addr, port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Lets a deleted machine's address be reused while old connections linger in TIME_WAIT; a
    // listening socket on the address still makes the bind fail.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((ip, port)))?;
    socket.listen(1024)
}

impl Health {
    pub fn new(port: u16, root: CancellationToken) -> Self {
        Self {
            port,
            root,
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Endpoint>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens `ip` for machine `key` (not answering yet); false when the address is in use (by another
    /// simulator, say).
    pub fn reserve(&self, key: &str, ip: Ipv4Addr, identity: &Identity) -> bool {
        let listener = match listen(ip, self.port) {
            Ok(l) => l,
            Err(_) => return false,
        };
        let serving = Arc::new(AtomicBool::new(false));
        let stop = self.root.child_token();
        tokio::spawn(accept_loop(
            listener,
            serving.clone(),
            stop.clone(),
            identity.clone(),
        ));
        if let Some(old) = self.lock().insert(key.to_owned(), Endpoint { ip, serving, stop }) {
            old.stop.cancel();
        }
        true
    }

    /// Makes machine `key` answer on `ip` (or stop answering), opening the address if it is not open.
    pub fn set(&self, key: &str, ip: Ipv4Addr, serve: bool, identity: &Identity) {
        let known = self.lock().get(key).map(|e| e.ip == ip).unwrap_or(false);
        if !known && !self.reserve(key, ip, identity) {
            tracing::debug!(machine = key, %ip, port = self.port, "the machine's address is in use; retrying later");
            return;
        }
        if let Some(e) = self.lock().get(key) {
            e.serving.store(serve, Ordering::SeqCst);
        }
    }

    /// Closes and forgets every endpoint whose key is not in `keep`.
    pub fn retain(&self, keep: &HashSet<String>) {
        self.lock().retain(|k, e| {
            let kept = keep.contains(k);
            if !kept {
                e.stop.cancel();
            }
            kept
        });
    }

    /// Whether machine `key` is answering.
    pub fn serving(&self, key: &str) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|e| e.serving.load(Ordering::SeqCst))
    }

    /// Closes everything.
    pub fn close_all(&self) {
        self.retain(&HashSet::new());
    }
}

async fn accept_loop(
    listener: TcpListener,
    serving: Arc<AtomicBool>,
    stop: CancellationToken,
    identity: Identity,
) {
    let app = Router::new()
        .route("/", get(answer))
        .route("/health", get(answer))
        .route("/healthz", get(answer))
        .with_state(identity);
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(_) => continue,
            },
        };
        if !serving.load(Ordering::SeqCst) {
            // Not answering: the connection closes without a word.
            drop(stream);
            continue;
        }
        let conn = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
            .into_owned();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

async fn answer(State(id): State<Identity>) -> impl IntoResponse {
    (
        [(header::CONNECTION, "close")],
        axum::Json(json!({
            "status": "ok",
            "provider": id.provider,
            "id": id.id,
            "label": id.label,
        })),
    )
}
