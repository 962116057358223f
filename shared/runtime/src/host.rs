//! The life cycle of a service process.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::service::ServiceExt;
use chrono::{DateTime, Utc};
use clap::Parser;
use flotilla_bus::lease::Leases;
use flotilla_bus::state::{DesiredStates, FleetView};
use flotilla_bus::{
    BusError, CommandConsumer, Dispatcher, OutcomeCounters, Publisher, StartAt, Topology, api, subject,
};
use flotilla_proto::{ServiceStatus, ServiceStatusRequest};
use flotilla_store::{Inbox, Migrator, Store, StoreError};
use futures::StreamExt;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState, ConsumerCollector};
use crate::config::{ConfigError, ServiceConfig, ServiceSettings};

/// What a service is.
#[derive(Debug, Clone, Copy)]
pub struct ServiceDef {
    /// Short name, a subject token: `provisioner`, `dns`, …
    pub name: &'static str,
    /// Version (semver), usually `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    /// One line for `$SRV.INFO` and `--help`.
    pub description: &'static str,
    /// Default admin HTTP port on 127.0.0.1.
    pub admin_port: u16,
    /// The service's own migrations (SQLite, PostgreSQL), run at start-up before it reports ready; `None`
    /// when it has only the common tables.
    pub migrations: Option<fn() -> (Migrator, Migrator)>,
}

impl ServiceDef {
    /// The name registered on the NATS service API and used as the connection name: `flotilla-<name>`.
    pub fn registered_name(&self) -> String {
        format!("flotilla-{}", self.name)
    }
}

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// NATS.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Data directory or admin socket.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Registering on the NATS service API failed.
    #[error("cannot register on the NATS service API: {0}")]
    ServiceApi(String),
    /// A task of the service panicked.
    #[error("a task of the service failed: {0}")]
    Task(String),
}

/// Everything a service's code gets to work with.
pub struct Context<S> {
    /// What the service is.
    pub def: ServiceDef,
    /// Its configuration.
    pub config: Arc<ServiceConfig<S>>,
    /// The NATS connection.
    pub client: async_nats::Client,
    /// Streams and buckets.
    pub topology: Topology,
    /// Publisher for commands and events.
    pub publisher: Publisher,
    /// The service's own database.
    pub store: Store,
    /// Cancelled when the service is asked to stop.
    pub shutdown: CancellationToken,
    endpoints: std::sync::Mutex<Vec<ApiEndpoint>>,
    subscriptions: std::sync::Mutex<Vec<EventSubscription>>,
    gates: std::sync::Mutex<Vec<crate::admin::ReadyGate>>,
    registry: std::sync::Mutex<Registry>,
    tasks: tokio_util::task::TaskTracker,
}

/// An event subscription a service adds with [`Context::events`].
struct EventSubscription {
    purpose: String,
    filters: Vec<String>,
    start: StartAt,
    dispatcher: Dispatcher,
}

/// A request/reply endpoint a service adds under `flotilla.api.<service>.<name>`.
struct ApiEndpoint {
    name: String,
    serve: ApiServe,
}

type ApiServe =
    Arc<dyn Fn(async_nats::service::Request) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// The error an API handler answers with: a status code (400 for a bad request, 404 for an unknown
/// deployment, 500 for a failure of ours) and a message.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    /// Status code, HTTP-like.
    pub code: usize,
    /// What went wrong.
    pub message: String,
}

impl ApiFailure {
    /// A failure of the service (500).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self {
            code: 500,
            message: message.to_string(),
        }
    }

    /// A bad request (400).
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self {
            code: 400,
            message: message.to_string(),
        }
    }
}

impl<S> Context<S> {
    /// Adds a request/reply endpoint `flotilla.api.<service>.<name>`: requests decode as `Req` (a
    /// malformed one is answered 400 with the decode error), `handle`'s answer is encoded as the request
    /// was. Requests are served concurrently; the endpoint is subscribed before the service reports
    /// serving.
    pub fn api<Req, Resp, F, Fut>(&self, name: &str, handle: F)
    where
        Req: flotilla_proto::Message + Send + 'static,
        Resp: flotilla_proto::Message + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Resp, ApiFailure>> + Send + 'static,
    {
        let handle = Arc::new(handle);
        let serve: ApiServe = Arc::new(move |request| {
            let handle = Arc::clone(&handle);
            Box::pin(async move {
                let reply = match api::decode_request::<Req>(&request) {
                    Ok(req) => handle(req).await.map_err(|f| async_nats::service::error::Error {
                        status: flotilla_bus::redact::redact(&f.message),
                        code: f.code,
                    }),
                    Err(e) => Err(e),
                };
                if let Err(e) = api::respond(&request, reply).await {
                    tracing::warn!(error = %e, "could not answer an API request");
                }
            })
        });
        if let Ok(mut endpoints) = self.endpoints.lock() {
            endpoints.push(ApiEndpoint {
                name: name.to_owned(),
                serve,
            });
        }
    }

    /// Runs a background task of the service (a reconciler, say). It should end once
    /// [`Context::shutdown`] is cancelled; the service waits for it before closing its database.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Subscribes the service to events: a durable consumer `<service>-events-<purpose>` through `filters`
    /// (event subjects, see [`subject::events_filter`]), shared by the service's replicas, with the
    /// guarantees of the command consumer — explicit acks, NAK with back-off, progress for long handlers,
    /// the delivery limit, and the dead-letter queue for what cannot be decoded or handled. `dispatcher`
    /// routes by kind ([`Dispatcher::on_event`]). Handlers must be idempotent by their own state: an event
    /// can come again after the stream's de-duplication window (derive what they publish from the event with
    /// `EventMeta::derived_from_event` / `CommandMeta::derived_from_event`). Consumed from start-up until
    /// shutdown; `/ready` is red while a subscription cannot pull.
    pub fn events(&self, purpose: &str, filters: Vec<String>, start: StartAt, dispatcher: Dispatcher) {
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.push(EventSubscription {
                purpose: purpose.to_owned(),
                filters,
                start,
                dispatcher,
            });
        }
    }

    /// A readiness condition of the service, closed for `reason` until its code opens it: `/ready` stays
    /// red (and says why) while any gate is closed.
    pub fn gate(&self, reason: &str) -> crate::admin::ReadyGate {
        let gate = crate::admin::ReadyGate::closed(reason);
        if let Ok(mut gates) = self.gates.lock() {
            gates.push(gate.clone());
        }
        gate
    }

    /// Registers a service's own metrics, rendered by `/metrics` with the consumers' counters.
    pub fn register_metrics(&self, register: impl FnOnce(&mut Registry)) {
        match self.registry.lock() {
            Ok(mut registry) => register(&mut registry),
            Err(poisoned) => register(&mut poisoned.into_inner()),
        }
    }

    /// Every deployment's desired state (read and follow; only the provisioner writes it).
    pub fn desired(&self) -> DesiredStates {
        self.topology.desired_states()
    }

    /// The fleet view (read and follow; only the provisioner writes it).
    pub fn fleet(&self) -> FleetView {
        self.topology.fleet_view()
    }

    /// The service's inbox of handled command ids, for recognising a redelivered command.
    pub fn inbox(&self) -> Inbox {
        Inbox::new(self.store.clone())
    }

    /// Leases, for work only one replica may do at a time.
    pub fn leases(&self) -> Leases {
        self.topology.leases()
    }
}

/// A started service.
pub struct Running {
    /// Where the admin endpoints listen, when enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The instance id on the NATS service API.
    pub instance_id: String,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), HostError>>,
    gates: Vec<crate::admin::ReadyGate>,
}

impl Running {
    /// Why the service is not ready yet (its own gates, [`Context::gate`]); empty once it is.
    pub fn waiting_for(&self) -> Vec<String> {
        self.gates
            .iter()
            .filter_map(crate::admin::ReadyGate::reason)
            .collect()
    }

    /// Asks the service to stop and waits until it has.
    pub async fn shutdown(self) -> Result<(), HostError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the service stops (after its shutdown token is cancelled, or on a fatal error).
    pub async fn wait(self) -> Result<(), HostError> {
        self.task.await.map_err(|e| HostError::Task(e.to_string()))?
    }

    /// The token that stops the service.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Starts a service: connects to NATS (refusing an old server), opens and migrates the database, provisions
/// streams and the service's durable consumer, registers on the NATS service API, binds the admin endpoints,
/// and starts consuming. `build` gives the command routes. Returns once the service is serving.
pub async fn start<S, F>(def: ServiceDef, config: ServiceConfig<S>, build: F) -> Result<Running, HostError>
where
    S: ServiceSettings,
    F: FnOnce(&Context<S>) -> Dispatcher,
{
    let started_at = Utc::now();
    let config = Arc::new(config);
    let mut nats = config.nats.clone();
    nats.name.get_or_insert_with(|| def.registered_name());
    let client = patiently(def, "connect to NATS", BusError::is_transient, || {
        flotilla_bus::connect(&nats)
    })
    .await?;
    tracing::info!(service = def.name, server = %client.server_info().version, "connected to NATS");

    let db_url = config.database_url_to_connect(def.name)?;
    if config.database_url.is_none() {
        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .map_err(|source| HostError::Io {
                what: format!("creating data directory {}", config.data_dir.display()),
                source,
            })?;
    }
    // A database restarting (or started after the service) is waited for, as JetStream is.
    let store = patiently(def, "open the database", StoreError::is_transient, || async {
        let store = Store::open(&db_url).await?;
        if let Some(migrations) = def.migrations {
            let (sqlite, postgres) = migrations();
            store.migrate_with(sqlite, postgres).await?;
        }
        Ok(store)
    })
    .await?;
    tracing::info!(service = def.name, backend = ?store.backend(), "database ready");

    let topology = patiently(
        def,
        "provision the streams and buckets",
        BusError::is_transient,
        || Topology::ensure(&client, &config.bus),
    )
    .await?;
    let publisher = Publisher::new(client.clone(), config.publish.clone());
    let shutdown = CancellationToken::new();

    let ctx = Context {
        def,
        config: Arc::clone(&config),
        client: client.clone(),
        topology,
        publisher,
        store: store.clone(),
        shutdown: shutdown.clone(),
        endpoints: std::sync::Mutex::new(Vec::new()),
        subscriptions: std::sync::Mutex::new(Vec::new()),
        gates: std::sync::Mutex::new(Vec::new()),
        registry: std::sync::Mutex::new(Registry::default()),
        tasks: tokio_util::task::TaskTracker::new(),
    };
    let dispatcher = Arc::new(build(&ctx));
    // A process with no command routes (the sync service's agents) takes no commands from the service's
    // durable consumer: they are left to its replicas that handle them.
    let consumer = if dispatcher.kinds().next().is_some() {
        Some(
            CommandConsumer::create(
                &ctx.topology,
                ctx.publisher.clone(),
                def.name,
                config.consumer.clone(),
            )
            .await?,
        )
    } else {
        tracing::info!(
            service = def.name,
            "no command routes: this process takes no commands"
        );
        None
    };
    let counters = consumer
        .as_ref()
        .map(CommandConsumer::counters)
        .unwrap_or_default();
    let extra_endpoints = ctx
        .endpoints
        .lock()
        .map(|mut e| std::mem::take(&mut *e))
        .unwrap_or_default();
    let subscriptions = ctx
        .subscriptions
        .lock()
        .map(|mut e| std::mem::take(&mut *e))
        .unwrap_or_default();
    let mut event_consumers = Vec::new();
    for sub in subscriptions {
        let consumer = CommandConsumer::events(
            &ctx.topology,
            ctx.publisher.clone(),
            def.name,
            &sub.purpose,
            sub.filters,
            sub.start,
            config.consumer.clone(),
        )
        .await?;
        tracing::info!(service = def.name, purpose = %sub.purpose, kinds = ?sub.dispatcher.kinds().collect::<Vec<_>>(), "event routes");
        event_consumers.push((sub.purpose, consumer, Arc::new(sub.dispatcher)));
    }
    let gates = ctx.gates.lock().map(|g| g.clone()).unwrap_or_default();
    let gates_for_running = gates.clone();
    let mut registry = match ctx.registry.into_inner() {
        Ok(r) => r,
        Err(poisoned) => poisoned.into_inner(),
    };
    let tasks = ctx.tasks.clone();
    tasks.close();
    tracing::info!(service = def.name, kinds = ?dispatcher.kinds().collect::<Vec<_>>(), "command routes");

    let service = client
        .service_builder()
        .description(def.description)
        .start(def.registered_name(), def.version)
        .await
        .map_err(|e| HostError::ServiceApi(e.to_string()))?;
    let instance_id = service.info().await.id;
    let group = service.group(subject::api_group(def.name)?);
    let status_endpoint = group
        .endpoint("status")
        .await
        .map_err(|e| HostError::ServiceApi(e.to_string()))?;
    let mut api_tasks = Vec::new();
    for ApiEndpoint { name, serve } in extra_endpoints {
        let endpoint = group
            .endpoint(name.as_str())
            .await
            .map_err(|e| HostError::ServiceApi(format!("endpoint {name}: {e}")))?;
        api_tasks.push(tokio::spawn(serve_api(endpoint, serve, shutdown.clone())));
    }

    let mut consumer_counters = vec![("commands".to_owned(), Arc::clone(&counters))];
    registry.register_collector(Box::new(ConsumerCollector::new(
        def.name,
        "commands",
        Arc::clone(&counters),
    )));
    for (purpose, consumer, _) in &event_consumers {
        let c = consumer.counters();
        registry.register_collector(Box::new(ConsumerCollector::new(
            def.name,
            purpose,
            Arc::clone(&c),
        )));
        consumer_counters.push((format!("events {purpose}"), c));
    }
    let (admin_addr, admin_serve) = if config.admin.disabled {
        (None, None)
    } else {
        let addr = config
            .admin
            .listen
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, def.admin_port)));
        let state = AdminState {
            service: def.name.to_owned(),
            client: client.clone(),
            store: store.clone(),
            counters: consumer_counters,
            registry: Arc::new(registry),
            gates,
        };
        let (bound, serve) = admin::bind(addr, state, shutdown.clone())
            .await
            .map_err(|source| HostError::Io {
                what: format!("binding admin endpoints on {addr}"),
                source,
            })?;
        tracing::info!(service = def.name, %bound, "admin endpoints: /live /ready /metrics");
        (Some(bound), Some(serve))
    };

    let consume = match consumer {
        Some(consumer) => tokio::spawn(consumer.run(dispatcher, shutdown.clone())),
        None => {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                Ok(())
            })
        }
    };
    let event_tasks: Vec<_> = event_consumers
        .into_iter()
        .map(|(_, consumer, dispatcher)| tokio::spawn(consumer.run(dispatcher, shutdown.clone())))
        .collect();
    let api_task = tokio::spawn(serve_status(
        status_endpoint,
        StatusSource {
            def,
            instance: instance_id.clone(),
            started_at,
            store: store.clone(),
            counters,
        },
        shutdown.clone(),
    ));
    let admin_task = admin_serve.map(tokio::spawn);
    // Ask ourselves for our status over the same connection: once that is answered, the server has our
    // subscriptions, and nobody told "serving" can get "no responders".
    api::request::<ServiceStatusRequest, ServiceStatus>(
        &client,
        &subject::api(def.name, "status")?,
        &ServiceStatusRequest {},
        config.nats.request_timeout,
    )
    .await
    .map_err(|e| HostError::ServiceApi(format!("the service does not answer itself: {e}")))?;
    let purge_task = tokio::spawn(purge_inbox(
        Inbox::new(store.clone()),
        config.bus.command_max_age,
        shutdown.clone(),
    ));

    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let mut consume = consume;
        // Until asked to stop (or the consumer ends by itself)…
        let early = tokio::select! {
            r = &mut consume => Some(r),
            _ = stop.cancelled() => None,
        };
        stop.cancel();
        // …then leave the service API at once, so callers see "no responders" rather than time out while
        // in-flight commands drain.
        let _ = api_task.await;
        for task in api_tasks {
            let _ = task.await;
        }
        if let Err(e) = service.stop().await {
            tracing::warn!(error = %e, "stopping the NATS service API registration failed");
        }
        let consumed = match early {
            Some(r) => r,
            None => consume.await,
        };
        for task in event_tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "an event consumer ended with an error"),
                Err(e) => tracing::warn!(error = %e, "an event consumer failed"),
            }
        }
        let _ = purge_task.await;
        tasks.wait().await;
        if let Some(admin) = admin_task {
            let _ = admin.await;
        }
        store.close().await;
        if let Err(e) = client.drain().await {
            tracing::warn!(error = %e, "draining the NATS connection failed");
        }
        tracing::info!(service = def.name, "stopped");
        consumed
            .map_err(|e| HostError::Task(e.to_string()))?
            .map_err(HostError::from)
    });
    tracing::info!(service = def.name, instance = %instance_id, "serving");
    Ok(Running {
        admin_addr,
        instance_id,
        shutdown,
        task,
        gates: gates_for_running,
    })
}

/// Forgets handled command ids once their commands can no longer be redelivered (the command stream has
/// dropped them), hourly.
async fn purge_inbox(inbox: Inbox, keep: std::time::Duration, shutdown: CancellationToken) {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(7));
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match inbox.purge_before(Utc::now() - keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "forgot handled commands past redelivery"),
            Err(e) => tracing::warn!(error = %e, "purging the inbox failed"),
        }
    }
}

async fn serve_api(
    mut endpoint: async_nats::service::endpoint::Endpoint,
    serve: ApiServe,
    shutdown: CancellationToken,
) {
    let running = tokio_util::task::TaskTracker::new();
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = endpoint.next() => match r { Some(r) => r, None => break },
        };
        running.spawn(serve(request));
    }
    running.close();
    running.wait().await;
}

struct StatusSource {
    def: ServiceDef,
    instance: String,
    started_at: DateTime<Utc>,
    store: Store,
    counters: Arc<OutcomeCounters>,
}

async fn serve_status(
    mut endpoint: async_nats::service::endpoint::Endpoint,
    source: StatusSource,
    shutdown: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = endpoint.next() => match r { Some(r) => r, None => break },
        };
        let reply = match api::decode_request::<ServiceStatusRequest>(&request) {
            Ok(_) => Ok(ServiceStatus {
                service: source.def.name.to_owned(),
                version: source.def.version.to_owned(),
                instance: source.instance.clone(),
                started_at: source.started_at,
                database_ok: source.store.ping().await.is_ok(),
                commands_acked: source.counters.acked.load(Ordering::Relaxed),
                commands_retried: source.counters.retried.load(Ordering::Relaxed),
                commands_dead_lettered: source.counters.dead_lettered.load(Ordering::Relaxed),
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = api::respond(&request, reply).await {
            tracing::warn!(error = %e, "could not answer a status request");
        }
    }
}

/// Command-line flags every service binary takes (each also an environment variable).
#[derive(Debug, Parser)]
struct Args {
    /// Configuration file (TOML); defaults and `FLOTILLA__SECTION__KEY` variables apply without one.
    #[arg(long, env = "FLOTILLA_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit (for systemd `ExecStartPre`).
    #[arg(long, env = "FLOTILLA_CHECK_CONFIG")]
    check_config: bool,
}

/// The whole `main` of a service binary: flags, configuration, logging, the runtime, signals, readiness.
///
/// Exit codes: 0 after a clean stop (or a good `--check-config`), 1 on a runtime failure, 2 on a
/// configuration error.
pub fn main<S, F>(def: ServiceDef, build: F) -> ExitCode
where
    S: ServiceSettings,
    F: FnOnce(&Context<S>) -> Dispatcher,
{
    let args = Args::parse();
    let config = match ServiceConfig::<S>::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flotilla-{}: {e}", def.name);
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("flotilla-{}: configuration OK", def.name);
        return ExitCode::SUCCESS;
    }
    crate::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flotilla-{}: cannot start the async runtime: {e}", def.name);
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_until_signalled(def, config, build)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(service = def.name, error = %e, "stopped with an error");
            eprintln!("flotilla-{}: {e}", def.name);
            ExitCode::FAILURE
        }
    }
}

/// How long a service starting keeps asking a JetStream or a database that does not answer yet (a cluster
/// electing its leader, a node or a database still starting) before it gives up.
const START_PATIENCE: Duration = Duration::from_secs(120);

/// `attempt`, again with a growing pause (½ s doubling to 5 s) while it fails for a reason that may pass
/// (`transient`: [`flotilla_bus::BusError::is_transient`], [`StoreError::is_transient`]),
/// for up to [`START_PATIENCE`]; each wait is logged and told to systemd. A signal stops the wait (see
/// `run_until_signalled`).
async fn patiently<T, E, Fut>(
    def: ServiceDef,
    what: &str,
    transient: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + START_PATIENCE;
    let mut pause = Duration::from_millis(500);
    loop {
        match attempt().await {
            Err(e) if transient(&e) && Instant::now() + pause < deadline => {
                tracing::warn!(service = def.name, error = %e, retry_in = ?pause, "cannot {what} yet; trying again");
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&format!(
                    "waiting: cannot {what} yet"
                ))]);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// How often a service still starting tells systemd why (and extends its start timeout).
const READY_STATUS_EVERY: Duration = Duration::from_secs(10);

async fn run_until_signalled<S, F>(
    def: ServiceDef,
    config: ServiceConfig<S>,
    build: F,
) -> Result<(), HostError>
where
    S: ServiceSettings,
    F: FnOnce(&Context<S>) -> Dispatcher,
{
    // A signal while starting (waiting for JetStream, say) stops the start at once.
    let running = tokio::select! {
        started = start(def, config, build) => started?,
        signal = wait_for_signal() => {
            tracing::info!(service = def.name, signal, "stopped while starting");
            return Ok(());
        }
    };
    let token = running.shutdown_token();
    let stop = token.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(
            service = def.name,
            signal,
            "stopping: no new work; finishing in-flight messages"
        );
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        stop.cancel();
    });
    // READY=1 once the service's own gates are open (an agent caught up); until then systemd is told
    // why, and given more time, every few seconds.
    let mut said: Option<Instant> = None;
    loop {
        let waiting = running.waiting_for();
        if waiting.is_empty() {
            break;
        }
        if said.is_none_or(|t| t.elapsed() >= READY_STATUS_EVERY) {
            let status = format!("starting: {}", waiting.join("; "));
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::Status(&status),
                sd_notify::NotifyState::ExtendTimeoutUsec(
                    u32::try_from(READY_STATUS_EVERY.as_micros() * 3).unwrap_or(u32::MAX),
                ),
            ]);
            said = Some(Instant::now());
        }
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    // systemd's watchdog (`WatchdogSec=`): pinged at half its interval for as long as the event loop runs,
    // so a hung process is restarted; the pings stop with the service.
    if let Some(every) = sd_notify::watchdog_enabled() {
        let stop = token.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                }
            }
        });
    }
    running.wait().await
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
