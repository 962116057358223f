//! Admin HTTP: `/live`, `/ready`, `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use flotilla_bus::OutcomeCounters;
use flotilla_store::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// What the admin endpoints look at.
#[derive(Clone)]
pub struct AdminState {
    /// The service name.
    pub service: String,
    /// The NATS client (connected or not).
    pub client: async_nats::Client,
    /// The service's database.
    pub store: Store,
    /// Every consumer's counters, by name (`commands`, `events <purpose>`).
    pub counters: Vec<(String, Arc<OutcomeCounters>)>,
    /// Metrics registry, rendered by `/metrics`.
    pub registry: Arc<Registry>,
    /// The service's own readiness conditions ([`crate::Context::gate`]).
    pub gates: Vec<ReadyGate>,
}

/// One condition of a service's readiness, held by its code: `/ready` is red while it is closed, with its
/// reason (an agent that has not caught up yet, say). Cloning gives another handle on the same gate.
#[derive(Debug, Clone)]
pub struct ReadyGate(Arc<std::sync::Mutex<Option<String>>>);

impl ReadyGate {
    /// A gate closed for `reason`.
    pub fn closed(reason: impl Into<String>) -> Self {
        Self(Arc::new(std::sync::Mutex::new(Some(reason.into()))))
    }

    /// Opens it: the condition holds.
    pub fn open(&self) {
        if let Ok(mut g) = self.0.lock() {
            *g = None;
        }
    }

    /// Closes it for `reason`.
    pub fn close(&self, reason: impl Into<String>) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(reason.into());
        }
    }

    /// Why it is closed; `None` when open.
    pub fn reason(&self) -> Option<String> {
        self.0
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Reports one consumer's counters as Prometheus metrics at scrape time: `flotilla_commands_*` for the
/// command consumer, `flotilla_events_*{purpose=…}` for an event consumer.
#[derive(Debug)]
pub struct ConsumerCollector {
    service: String,
    /// `commands`, or an event subscription's purpose.
    consumer: String,
    counters: Arc<OutcomeCounters>,
}

impl ConsumerCollector {
    /// A collector over `counters` of `service`'s consumer `consumer` (`commands` or an event purpose).
    pub fn new(
        service: impl Into<String>,
        consumer: impl Into<String>,
        counters: Arc<OutcomeCounters>,
    ) -> Self {
        Self {
            service: service.into(),
            consumer: consumer.into(),
            counters,
        }
    }
}

impl Collector for ConsumerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let commands = self.consumer == "commands";
        let (prefix, what) = if commands {
            ("flotilla_commands", "Commands")
        } else {
            ("flotilla_events", "Events")
        };
        let mut labels = vec![("service", self.service.as_str())];
        if !commands {
            labels.push(("purpose", self.consumer.as_str()));
        }
        let c = &self.counters;
        for (name, help, value) in [
            ("acked", "handled and acknowledged", &c.acked),
            ("retried", "handed back for a retry", &c.retried),
            ("dead_lettered", "sent to the dead-letter queue", &c.dead_lettered),
            ("abandoned", "handed back at shutdown", &c.abandoned),
        ] {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let (name, help) = (format!("{prefix}_{name}"), format!("{what} {help}"));
            let mut metric = encoder.encode_descriptor(&name, &help, None, MetricType::Counter)?;
            counter.encode(metric.encode_family(&labels)?)?;
        }
        let gauge = ConstGauge::new(i64::try_from(c.in_flight.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        let (name, help) = (format!("{prefix}_in_flight"), format!("{what} being handled now"));
        let mut metric = encoder.encode_descriptor(&name, &help, None, MetricType::Gauge)?;
        gauge.encode(metric.encode_family(&labels)?)?;
        Ok(())
    }
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/live", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<AdminState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    if state.client.connection_state() != async_nats::connection::State::Connected {
        problems.push(format!("NATS is {}", state.client.connection_state()));
    }
    for (name, counters) in &state.counters {
        if counters.pull_failing.load(Ordering::Relaxed) {
            problems.push(format!("the {name} consumer cannot pull (see the log)"));
        }
    }
    problems.extend(state.gates.iter().filter_map(ReadyGate::reason));
    if let Err(e) = state.store.ping().await {
        problems.push(format!("database: {e}"));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "encoding failed\n".into(),
        ),
    }
}

/// Binds `addr` and returns the bound address (useful with port 0) and the serving future, which ends when
/// `shutdown` is cancelled.
pub async fn bind(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let serve = async move {
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    };
    Ok((local, serve))
}
