//! Consuming commands and events: one durable pull consumer per service (and, for events, per purpose),
//! shared by all its replicas.
//!
//! Commands come from the work-queue stream (`flotilla.cmd.<service>.>`); events from the limits stream,
//! through the filter subjects a service chose (several at once: NATS 2.10 multi-filter consumers). Both
//! are handled the same way:
//!
//! Delivery is at least once. For every message the consumer:
//! 1. pulls only as many messages as it has free handler slots (so nothing waits in a local buffer where a
//!    crash would delay it by a whole ack-wait);
//! 2. runs the [`Handler`], telling JetStream the work is in progress every third of the ack-wait;
//! 3. acknowledges on success; on a retryable failure NAKs with a delay that grows with the delivery count;
//!    on a permanent failure — undecodable, over the size limit, unknown kind, invalid, a panic on the last
//!    attempt — or when the last allowed delivery fails, copies the message to `flotilla.dlq.<service>` with
//!    the (redacted, truncated) error in a header (and a body over the size limit cut to it), publishes a
//!    `CommandRejected` event (commands only), and only then terminates it. If the copy cannot be stored
//!    the message is NAKed instead, to be dead-lettered on its next delivery: never retried forever, never
//!    silently dropped.
//!
//! The delivery limit is ours, not the server's (the server's is unlimited): a message that comes back past
//! it — its handler crashed or overran the ack-wait every time — is dead-lettered without being handled
//! again. A NAK at shutdown also counts as a delivery.
//!
//! A failing pull (the consumer was deleted, JetStream is unavailable) is retried with a growing delay, the
//! durable consumer is re-created, and `/ready` reports the consumer unhealthy until a pull succeeds.
//!
//! On shutdown it stops pulling, lets in-flight handlers finish for a grace period, then NAKs whatever is
//! still running so another replica takes it at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use chrono::Utc;
use flotilla_proto::{CONTENT_TYPE_HEADER, CommandRejected, KIND_HEADER, Message};
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::topology::Topology;
use crate::{
    BusError, DLQ_DELIVERIES_HEADER, DLQ_ERROR_HEADER, DLQ_MSG_ID_HEADER, DLQ_SUBJECT_HEADER, Publisher,
    redact, subject,
};

/// Consumer settings; the `[consumer]` section of a service's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Time a delivered message may go without an ack or progress before JetStream redelivers it (how long
    /// a crashed replica holds a message).
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Deliveries allowed before a message that keeps failing goes to the dead-letter queue.
    pub max_deliver: u32,
    /// NAK delays by delivery count (the last one repeats).
    #[serde(deserialize_with = "crate::config_de::durations")]
    pub retry_delays: Vec<Duration>,
    /// Messages handled at once by one replica.
    pub max_in_flight: usize,
    /// How long a pull request waits for messages.
    #[serde(with = "humantime_serde")]
    pub pull_expiry: Duration,
    /// On shutdown, how long in-flight handlers may run on before they are NAKed.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            retry_delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(15),
                Duration::from_secs(30),
            ],
            max_in_flight: 16,
            pull_expiry: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl ConsumerConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), BusError> {
        let bad = |m: &str| Err(BusError::Options(format!("consumer: {m}")));
        if self.ack_wait < Duration::from_secs(1) {
            return bad("ack_wait must be at least 1s");
        }
        if self.max_deliver == 0 {
            return bad("max_deliver must be at least 1");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1");
        }
        if self.pull_expiry < Duration::from_millis(100) {
            return bad("pull_expiry must be at least 100ms");
        }
        Ok(())
    }

    fn retry_delay(&self, delivered: u64) -> Duration {
        let i = usize::try_from(delivered.saturating_sub(1)).unwrap_or(usize::MAX);
        self.retry_delays
            .get(i)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// One delivered command, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Subject it was published on.
    pub subject: String,
    /// Its kind header.
    pub kind: Option<String>,
    /// Its content type header.
    pub content_type: Option<String>,
    /// Its `Nats-Msg-Id` (the command id).
    pub msg_id: Option<String>,
    /// All headers.
    pub headers: HeaderMap,
    /// The payload.
    pub payload: bytes::Bytes,
    /// This delivery's number, from 1.
    pub delivered: u64,
    /// Deliveries allowed.
    pub max_deliver: u64,
}

impl Delivery {
    /// Decodes the payload as `M`; a failure is permanent (a redelivery would fail the same way).
    pub fn decode<M: Message>(&self) -> Result<M, HandlerError> {
        flotilla_proto::decode(self.kind.as_deref(), self.content_type.as_deref(), &self.payload)
            .map_err(|e| HandlerError::Reject(e.to_string()))
    }

    /// Whether a retryable failure now sends the message to the dead-letter queue.
    pub fn is_last_attempt(&self) -> bool {
        self.delivered >= self.max_deliver
    }
}

/// Why a handler did not finish a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth trying again (a provider was busy, a dependency was down). `after` overrides the delay.
    #[error("retryable: {reason}")]
    Retry {
        /// What went wrong.
        reason: String,
        /// Delay before the next delivery; the consumer's schedule when `None`.
        after: Option<Duration>,
    },
    /// Will never succeed (undecodable, unknown kind, invalid): straight to the dead-letter queue.
    #[error("rejected: {0}")]
    Reject(String),
    /// Overtaken by a newer command (a late apply of a region destroyed since, a redelivery after a newer
    /// deploy): not done, and no one's mistake — acknowledged with a `CommandRejected` event saying why,
    /// and kept out of the dead-letter queue.
    #[error("superseded: {0}")]
    Superseded(String),
}

impl HandlerError {
    /// A retryable failure with the default delay.
    pub fn retry(reason: impl std::fmt::Display) -> Self {
        HandlerError::Retry {
            reason: reason.to_string(),
            after: None,
        }
    }
}

/// What handles a service's commands.
pub trait Handler: Send + Sync + 'static {
    /// Handles one delivery. Must be idempotent: the same command can arrive more than once.
    fn handle(&self, delivery: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

type BoxedRoute =
    Box<dyn Fn(Delivery) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>> + Send + Sync>;

/// A [`Handler`] that routes by kind header to one typed function per message kind. A kind it does not
/// know is rejected with a message naming the kinds it does.
pub struct Dispatcher {
    service: String,
    routes: BTreeMap<&'static str, BoxedRoute>,
}

impl Dispatcher {
    /// An empty dispatcher for `service`.
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            routes: BTreeMap::new(),
        }
    }

    /// Routes commands of kind `C::KIND` to `f`, decoded. A command whose subject does not match its body
    /// — another service or verb than its kind's, another deployment or region than the body names — is
    /// rejected (dead-lettered, with the reason) before `f` sees it.
    pub fn on<C, F, Fut>(mut self, f: F) -> Self
    where
        C: flotilla_proto::Command + Send + 'static,
        F: Fn(C, Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let service = self.service.clone();
        self.routes.insert(
            C::KIND,
            Box::new(move |delivery: Delivery| {
                let f = Arc::clone(&f);
                let service = service.clone();
                Box::pin(async move {
                    let cmd = delivery.decode::<C>()?;
                    check_command_subject(&service, &delivery.subject, &cmd)?;
                    f(cmd, delivery).await
                })
            }),
        );
        self
    }

    /// Routes events of kind `E::KIND` to `f`, decoded. An event whose subject does not match its body is
    /// rejected (dead-lettered) before `f` sees it.
    pub fn on_event<E, F, Fut>(mut self, f: F) -> Self
    where
        E: flotilla_proto::Event + Send + 'static,
        F: Fn(E, Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.routes.insert(
            E::KIND,
            Box::new(move |delivery: Delivery| {
                let f = Arc::clone(&f);
                Box::pin(async move {
                    let event = delivery.decode::<E>()?;
                    check_event_subject(&delivery.subject, &event)?;
                    f(event, delivery).await
                })
            }),
        );
        self
    }

    /// The kinds routed.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.keys().copied()
    }
}

impl Handler for Dispatcher {
    fn handle(&self, delivery: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let route = match delivery.kind.as_deref() {
            None => Err(HandlerError::Reject(format!(
                "message has no {KIND_HEADER} header"
            ))),
            Some(kind) => self.routes.get(kind).ok_or_else(|| {
                let known: Vec<_> = self.routes.keys().copied().collect();
                HandlerError::Reject(format!(
                    "unknown message kind {kind:?} for service {}; it handles: {}",
                    self.service,
                    if known.is_empty() {
                        "nothing yet".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            }),
        };
        let fut = route.map(|r| r(delivery));
        async move { fut?.await }
    }
}

/// A command's subject must name the dispatcher's service, the verb of its kind, and the deployment and
/// region of its body; the refusal says where they disagree.
fn check_command_subject<C: flotilla_proto::Command>(
    service: &str,
    subject: &str,
    cmd: &C,
) -> Result<(), HandlerError> {
    let reject = |why: String| Err(HandlerError::Reject(format!("subject {subject:?} {why}")));
    let Some(parts) = subject::parse_command(subject) else {
        return reject("is not a command subject".into());
    };
    let Some((_, verb)) = flotilla_proto::command_parts(C::KIND) else {
        return reject(format!("carries {}, which is not a command kind", C::KIND));
    };
    // The kind's own service is not compared: the dispatcher routes only the kinds it was given.
    if parts.service != service {
        return reject(format!(
            "carries a {} command, but this is the {service} service",
            C::KIND
        ));
    }
    if parts.verb != verb {
        return reject(format!(
            "disagrees with its body: it says verb {:?}, the body is a {} command (verb {verb:?})",
            parts.verb,
            C::KIND
        ));
    }
    subject::check_token("deployment", cmd.deployment())
        .map_err(|e| HandlerError::Reject(format!("the body's deployment: {e}")))?;
    subject::check_token("region", cmd.region())
        .map_err(|e| HandlerError::Reject(format!("the body's region: {e}")))?;
    if parts.deployment != cmd.deployment() || parts.region != cmd.region() {
        return reject(format!(
            "disagrees with its body: it names deployment {:?} region {:?}, the body deployment {:?} region {:?}",
            parts.deployment,
            parts.region,
            cmd.deployment(),
            cmd.region()
        ));
    }
    Ok(())
}

/// An event's subject must name its topic, deployment, region and name.
fn check_event_subject<E: flotilla_proto::Event>(subject: &str, event: &E) -> Result<(), HandlerError> {
    let expected = subject::event_for(event)
        .map_err(|e| HandlerError::Reject(format!("{} event with an invalid body: {e}", E::KIND)))?;
    if expected != subject {
        return Err(HandlerError::Reject(format!(
            "{} event published on {subject:?}, but its body belongs on {expected:?}",
            E::KIND
        )));
    }
    Ok(())
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled and acknowledged.
    Acked,
    /// NAKed for a later retry.
    Retried,
    /// Copied to the dead-letter queue and terminated.
    DeadLettered,
    /// NAKed because the consumer was shutting down.
    Abandoned,
}

/// Running totals of outcomes, shared with whoever reports them (metrics, status replies, readiness).
#[derive(Debug, Default)]
pub struct OutcomeCounters {
    /// Messages acknowledged.
    pub acked: AtomicU64,
    /// Messages NAKed for retry.
    pub retried: AtomicU64,
    /// Messages dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Messages NAKed at shutdown.
    pub abandoned: AtomicU64,
    /// Messages being handled now.
    pub in_flight: AtomicU64,
    /// Set while pulls fail (the consumer is gone, JetStream is unavailable); cleared by a good pull.
    pub pull_failing: AtomicBool,
}

impl OutcomeCounters {
    fn record(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Acked => &self.acked,
            Outcome::Retried => &self.retried,
            Outcome::DeadLettered => &self.dead_lettered,
            Outcome::Abandoned => &self.abandoned,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts a message in flight for as long as it lives, whatever way the handling ends.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Longest error text put in a dead letter's header and its event.
const MAX_ERROR_LEN: usize = 1024;

/// Longest body a dead letter keeps: a message's worth ([`flotilla_proto::MAX_MESSAGE_BYTES`]). A longer
/// one — a message refused for its size, up to the server's `max_payload` — is cut to it, with
/// [`DLQ_TRUNCATED_HEADER`] saying so; kept whole, with the dead letter's own headers added, it could be
/// over `max_payload` itself, and a dead letter that cannot be stored is handed back and tried again forever.
pub const MAX_DEAD_LETTER_BODY: usize = flotilla_proto::MAX_MESSAGE_BYTES;
/// Most bytes of the original's headers a dead letter keeps (the rest are dropped and counted in
/// [`DLQ_HEADERS_DROPPED_HEADER`]). JetStream stores at most 64 KiB of headers with a message, and an
/// original can come with that much: kept whole beside the dead letter's own, they would never be stored.
const MAX_DEAD_LETTER_HEADERS: usize = 32 * 1024;
// The kept headers, the error (at most MAX_ERROR_LEN) and the dead letter's few other headers fit
// JetStream's 64 KiB of headers; with the kept body, NATS's default max_payload.
const _: () = assert!(MAX_DEAD_LETTER_HEADERS + MAX_ERROR_LEN + 8 * 1024 <= 64 * 1024);
const _: () =
    assert!(MAX_DEAD_LETTER_BODY + MAX_DEAD_LETTER_HEADERS + MAX_ERROR_LEN + 16 * 1024 <= 1024 * 1024);

/// Header of a dead letter whose original's headers were over [`MAX_DEAD_LETTER_HEADERS`]: how many
/// header values were dropped.
pub const DLQ_HEADERS_DROPPED_HEADER: &str = "Flotilla-Headers-Dropped";

/// Header of a dead letter whose body was cut to [`MAX_DEAD_LETTER_BODY`]: the size of the whole body, in
/// bytes. (Replaying such a letter sends the cut body, which is refused again.)
pub const DLQ_TRUNCATED_HEADER: &str = "Flotilla-Truncated";

/// The body a dead letter keeps of `payload`, and the whole size when it was cut.
fn dead_letter_body(payload: &bytes::Bytes) -> (bytes::Bytes, Option<usize>) {
    if payload.len() > MAX_DEAD_LETTER_BODY {
        (payload.slice(..MAX_DEAD_LETTER_BODY), Some(payload.len()))
    } else {
        (payload.clone(), None)
    }
}

/// Where a consumer's messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The service's commands, from the command stream.
    Commands,
    /// Events through `filters`, from the event stream; one durable per `purpose`.
    Events {
        /// What the subscription is for (a subject token: `fleet`, `health` …).
        purpose: String,
        /// Event subjects (wildcards allowed; see [`subject::events_filter`]).
        filters: Vec<String>,
    },
}

/// Where a new durable event consumer starts; a durable that exists already carries on where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// With the oldest event the stream keeps.
    #[default]
    Beginning,
    /// With the events published after it was created.
    New,
}

/// A service's consumer of commands ([`CommandConsumer::create`]) or of events
/// ([`CommandConsumer::events`]).
pub struct CommandConsumer {
    service: String,
    source: Source,
    stream: jetstream::stream::Stream,
    pull_config: pull::Config,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    publisher: Publisher,
    config: Arc<ConsumerConfig>,
    counters: Arc<OutcomeCounters>,
}

impl CommandConsumer {
    /// The name of the durable consumer of `service` on the command stream.
    pub fn durable_name(service: &str) -> String {
        format!("{service}-commands")
    }

    /// The name of the durable consumer of `service`'s events for `purpose`.
    pub fn events_durable_name(service: &str, purpose: &str) -> String {
        format!("{service}-events-{purpose}")
    }

    /// Creates (or updates) the durable event consumer of `service` for `purpose`, through `filters`
    /// (event subjects, wildcards allowed), shared by the service's replicas.
    pub async fn events(
        topology: &Topology,
        publisher: Publisher,
        service: &str,
        purpose: &str,
        filters: Vec<String>,
        start: StartAt,
        config: ConsumerConfig,
    ) -> Result<Self, BusError> {
        config.validate()?;
        subject::check_token("service", service)?;
        subject::check_token("event purpose", purpose)?;
        if filters.is_empty() {
            return Err(BusError::Options(format!(
                "event consumer {purpose} of {service}: no filter subject"
            )));
        }
        for f in &filters {
            if !f.starts_with(subject::EVENTS_WILDCARD.trim_end_matches('>')) {
                return Err(BusError::Options(format!(
                    "event consumer {purpose} of {service}: {f:?} is not an event subject"
                )));
            }
        }
        let pull_config = pull::Config {
            durable_name: Some(Self::events_durable_name(service, purpose)),
            description: Some(format!(
                "{purpose} events for the {service} service, shared by its replicas"
            )),
            filter_subjects: filters.clone(),
            deliver_policy: match start {
                StartAt::Beginning => jetstream::consumer::DeliverPolicy::All,
                StartAt::New => jetstream::consumer::DeliverPolicy::New,
            },
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            max_deliver: -1,
            max_ack_pending: 1000,
            ..Default::default()
        };
        let stream = topology.events.clone();
        let consumer = create_consumer(&stream, &pull_config).await?;
        Ok(Self {
            service: service.to_owned(),
            source: Source::Events {
                purpose: purpose.to_owned(),
                filters,
            },
            stream,
            pull_config,
            consumer,
            publisher,
            config: Arc::new(config),
            counters: Arc::default(),
        })
    }

    /// Creates (or updates) the durable consumer of `service`, filtered to `flotilla.cmd.<service>.>`.
    pub async fn create(
        topology: &Topology,
        publisher: Publisher,
        service: &str,
        config: ConsumerConfig,
    ) -> Result<Self, BusError> {
        config.validate()?;
        let pull_config = pull::Config {
            durable_name: Some(Self::durable_name(service)),
            description: Some(format!(
                "commands for the {service} service, shared by its replicas"
            )),
            filter_subject: subject::commands_for(service)?,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            // Unlimited: the limit is enforced here, so that the last delivery is dead-lettered rather than
            // left in the work queue when its handler crashes.
            max_deliver: -1,
            max_ack_pending: 1000,
            ..Default::default()
        };
        let stream = topology.commands.clone();
        let consumer = create_consumer(&stream, &pull_config).await?;
        Ok(Self {
            service: service.to_owned(),
            source: Source::Commands,
            stream,
            pull_config,
            consumer,
            publisher,
            config: Arc::new(config),
            counters: Arc::default(),
        })
    }

    /// Where this consumer's messages come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The outcome counters of this consumer.
    pub fn counters(&self) -> Arc<OutcomeCounters> {
        Arc::clone(&self.counters)
    }

    /// Pulls and handles commands until `shutdown` is cancelled, then drains as described in the module
    /// documentation.
    pub async fn run<H: Handler>(self, handler: Arc<H>, shutdown: CancellationToken) -> Result<(), BusError> {
        let slots = Arc::new(Semaphore::new(self.config.max_in_flight));
        // A JoinSet, not detached tasks: if this future is dropped (the process is dying), the handlers go
        // with it and their messages are redelivered after ack-wait, as after a crash.
        let mut tasks = tokio::task::JoinSet::new();
        let hard_stop = CancellationToken::new();
        let mut consumer = self.consumer.clone();
        let this = Arc::new(self);
        let mut pull_errors = 0u32;
        while !shutdown.is_cancelled() {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            while let Some(done) = tasks.try_join_next() {
                log_task_end(&this.service, done);
            }
            let pulled = this
                .pull_batch(
                    &consumer, first, &slots, &mut tasks, &handler, &hard_stop, &shutdown,
                )
                .await;
            match pulled {
                Ok(()) => {
                    if pull_errors > 0 {
                        tracing::info!(service = %this.service, "pulling messages again");
                    }
                    pull_errors = 0;
                }
                Err(reason) => {
                    pull_errors = pull_errors.saturating_add(1);
                    this.counters.pull_failing.store(true, Ordering::Relaxed);
                    let delay = Duration::from_millis(200 * u64::from(pull_errors.min(25)));
                    tracing::warn!(service = %this.service, %reason, ?delay, "pulling messages failed");
                    tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(delay) => {} }
                    // The durable may have been deleted: create it again (a no-op when it exists).
                    match create_consumer(&this.stream, &this.pull_config).await {
                        Ok(c) => consumer = c,
                        Err(e) => {
                            tracing::warn!(service = %this.service, error = %e, "re-creating the consumer failed")
                        }
                    }
                }
            }
        }
        let drain = async {
            while let Some(done) = tasks.join_next().await {
                log_task_end(&this.service, done);
            }
        };
        if tokio::time::timeout(this.config.shutdown_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(service = %this.service, "handlers still running after the grace period; handing their messages back");
            hard_stop.cancel();
            while let Some(done) = tasks.join_next().await {
                log_task_end(&this.service, done);
            }
        }
        Ok(())
    }

    /// One pull request for as many messages as there are free slots (`first` is one already taken);
    /// each message is handed to a task. `Err` when the pull itself failed.
    #[allow(clippy::too_many_arguments)]
    async fn pull_batch<H: Handler>(
        self: &Arc<Self>,
        consumer: &jetstream::consumer::Consumer<pull::Config>,
        first: tokio::sync::OwnedSemaphorePermit,
        slots: &Arc<Semaphore>,
        tasks: &mut tokio::task::JoinSet<()>,
        handler: &Arc<H>,
        hard_stop: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let want = slots.available_permits() + 1;
        let mut batch = consumer
            .batch()
            .max_messages(want)
            .expires(self.config.pull_expiry)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        self.counters.pull_failing.store(false, Ordering::Relaxed);
        let mut first = Some(first);
        loop {
            // A stop does not wait for the pull to expire: what the server sends after it is not taken
            // (unacknowledged, it is redelivered after its ack wait, to this or another replica).
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // What already arrived is handed straight back (redelivered at once, not after the
                    // ack wait).
                    while let Some(Some(Ok(msg))) = futures::FutureExt::now_or_never(batch.next()) {
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                        self.counters.record(Outcome::Abandoned);
                    }
                    break;
                }
                next = batch.next() => next,
            };
            let Some(next) = next else {
                break;
            };
            let msg = next.map_err(|e| e.to_string())?;
            if shutdown.is_cancelled() {
                // Pulled after the stop signal: hand it straight back.
                let _ = msg.ack_with(AckKind::Nak(None)).await;
                self.counters.record(Outcome::Abandoned);
                continue;
            }
            let permit = match first.take() {
                Some(p) => p,
                None => Arc::clone(slots)
                    .acquire_owned()
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let this = Arc::clone(self);
            let handler = Arc::clone(handler);
            let hard_stop = hard_stop.clone();
            tasks.spawn(async move {
                let _in_flight = InFlight::enter(&this.counters.in_flight);
                let outcome = this.process(msg, handler.as_ref(), &hard_stop).await;
                this.counters.record(outcome);
                drop(permit);
            });
        }
        Ok(())
    }

    async fn process<H: Handler>(
        &self,
        msg: jetstream::Message,
        handler: &H,
        hard_stop: &CancellationToken,
    ) -> Outcome {
        let info = msg.info().ok();
        let delivered = info
            .as_ref()
            .map(|i| u64::try_from(i.delivered).unwrap_or(1))
            .unwrap_or(1);
        let stream_sequence = info.as_ref().map(|i| i.stream_sequence);
        let headers = msg.headers.as_ref();
        let delivery = Delivery {
            subject: msg.subject.to_string(),
            kind: crate::header(headers, KIND_HEADER),
            content_type: crate::header(headers, CONTENT_TYPE_HEADER),
            msg_id: crate::header(headers, "Nats-Msg-Id"),
            headers: msg.headers.clone().unwrap_or_default(),
            payload: msg.payload.clone(),
            delivered,
            max_deliver: u64::from(self.config.max_deliver),
        };
        let span = tracing::info_span!(
            "message",
            service = %self.service,
            source = match &self.source { Source::Commands => "commands", Source::Events { purpose, .. } => purpose.as_str() },
            subject = %delivery.subject,
            kind = delivery.kind.as_deref().unwrap_or("-"),
            id = delivery.msg_id.as_deref().unwrap_or("-"),
            delivered,
        );
        async {
            if delivered > delivery.max_deliver {
                let reason = format!(
                    "delivered {delivered} times, over the limit of {}, without an outcome (the handler crashed or overran the ack-wait each time)",
                    delivery.max_deliver
                );
                return self.dead_letter(&msg, &delivery, stream_sequence, &reason).await;
            }
            let result = {
                // A panicking handler is a failed attempt, not a dead consumer.
                let work = std::panic::AssertUnwindSafe(handler.handle(delivery.clone())).catch_unwind();
                tokio::pin!(work);
                let mut progress = tokio::time::interval(self.config.ack_wait / 3);
                progress.tick().await;
                loop {
                    tokio::select! {
                        r = &mut work => break Some(r.unwrap_or_else(|panic| Err(HandlerError::retry(format!(
                            "handler panicked: {}",
                            panic_text(panic.as_ref())
                        ))))),
                        _ = progress.tick() => {
                            if let Err(e) = msg.ack_with(AckKind::Progress).await {
                                tracing::warn!(error = %e, "could not report progress");
                            }
                        }
                        _ = hard_stop.cancelled() => break None,
                    }
                }
            };
            match result {
                Some(Ok(())) => {
                    if let Err(e) = msg.double_ack().await {
                        // The handler's effect is done; the redelivery will find it done.
                        tracing::warn!(error = %e, "handled, but the ack was not confirmed; expect a redelivery");
                    }
                    tracing::debug!("handled");
                    Outcome::Acked
                }
                Some(Err(HandlerError::Retry { reason, after })) if !delivery.is_last_attempt() => {
                    let delay = after.unwrap_or_else(|| self.config.retry_delay(delivered));
                    tracing::warn!(reason = %redact::redact(&reason), ?delay, "handler failed; will retry");
                    if let Err(e) = msg.ack_with(AckKind::Nak(Some(delay))).await {
                        tracing::warn!(error = %e, "NAK failed; the message returns after ack-wait");
                    }
                    Outcome::Retried
                }
                Some(Err(HandlerError::Retry { reason, .. })) => {
                    let reason = format!("gave up after {delivered} deliveries: {reason}");
                    self.dead_letter(&msg, &delivery, stream_sequence, &reason).await
                }
                Some(Err(HandlerError::Reject(reason))) => {
                    self.dead_letter(&msg, &delivery, stream_sequence, &reason).await
                }
                Some(Err(HandlerError::Superseded(reason))) => {
                    self.superseded(&msg, &delivery, stream_sequence, &reason).await
                }
                None => {
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                    Outcome::Abandoned
                }
            }
        }
        .instrument(span)
        .await
    }

    /// `<what>-<service>-…` keyed by the message's position in the stream (else its id), so that handling
    /// the same message twice (after a lost ack or term) publishes one message, de-duplicated by the stream.
    fn message_key(&self, what: &str, delivery: &Delivery, stream_sequence: Option<u64>) -> String {
        match (stream_sequence, &delivery.msg_id) {
            (Some(seq), _) => format!("{what}-{}-{seq}", self.service),
            (None, Some(id)) => format!("{what}-{}-id-{id}", self.service),
            (None, None) => format!("{what}-{}-{}", self.service, uuid::Uuid::now_v7()),
        }
    }

    /// Publishes the `CommandRejected` event of a command not done (`id`: what makes its id unique).
    async fn tell_rejected(&self, delivery: &Delivery, error: &str, id: &str) -> Result<(), BusError> {
        let (deployment, region) = subject::parse_command(&delivery.subject)
            .map(|s| (s.deployment.to_owned(), s.region.to_owned()))
            .filter(|(d, r)| subject::check_token("d", d).is_ok() && subject::check_token("r", r).is_ok())
            .unwrap_or_else(|| ("_".into(), "_".into()));
        let event = CommandRejected {
            service: self.service.clone(),
            subject: delivery.subject.clone(),
            command_id: delivery.msg_id.clone(),
            kind: delivery.kind.clone(),
            error: error.to_owned(),
            deliveries: delivery.delivered,
            rejected_at: Utc::now(),
        };
        let evt_subject = subject::event("command", &deployment, &region, "rejected")?;
        self.publisher
            .publish(&evt_subject, &format!("rejected-{id}"), &event)
            .await
            .map(drop)
    }

    /// A command overtaken by a newer one: told as rejected, then acknowledged (no dead letter). When the
    /// event cannot be published the message is handed back, so that the refusal is told.
    async fn superseded(
        &self,
        msg: &jetstream::Message,
        delivery: &Delivery,
        stream_sequence: Option<u64>,
        reason: &str,
    ) -> Outcome {
        let error = redact::redact_and_truncate(reason, MAX_ERROR_LEN);
        tracing::info!(%error, "superseded by a newer command; not done");
        let id = self.message_key("superseded", delivery, stream_sequence);
        if self.source == Source::Commands
            && let Err(e) = self.tell_rejected(delivery, &error, &id).await
        {
            tracing::warn!(error = %e, "could not publish CommandRejected; handing the message back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(self.config.retry_delay(delivery.delivered))))
                .await;
            return Outcome::Retried;
        }
        if let Err(e) = msg.double_ack().await {
            tracing::warn!(error = %e, "superseded, but the ack was not confirmed; expect a redelivery");
        }
        Outcome::Acked
    }

    async fn dead_letter(
        &self,
        msg: &jetstream::Message,
        delivery: &Delivery,
        stream_sequence: Option<u64>,
        error: &str,
    ) -> Outcome {
        // Handler errors can quote provider URLs and responses: scrub and bound them before they are kept.
        let error = redact::redact_and_truncate(error, MAX_ERROR_LEN);
        tracing::error!(%error, "sending the message to the dead-letter queue");
        let stored = async {
            let dlq = subject::dlq(&self.service)?;
            // The original's own headers, minus the server's `Nats-*` directives (expected sequence, TTL,
            // rollup …), which would apply to the dead letter's publication, and up to
            // MAX_DEAD_LETTER_HEADERS bytes of them: the rest are dropped, and counted.
            let mut headers = async_nats::HeaderMap::new();
            let (mut kept, mut dropped) = (0usize, 0usize);
            for (name, values) in delivery.headers.iter() {
                let n: &str = name.as_ref();
                if n.to_ascii_lowercase().starts_with("nats-") {
                    continue;
                }
                for value in values {
                    // `Name: value\r\n`
                    let size = n.len() + value.as_str().len() + 4;
                    if kept + size > MAX_DEAD_LETTER_HEADERS {
                        dropped += 1;
                        continue;
                    }
                    kept += size;
                    headers.append(name.clone(), value.clone());
                }
            }
            if dropped > 0 {
                headers.insert(DLQ_HEADERS_DROPPED_HEADER, dropped.to_string().as_str());
            }
            // Header values cannot hold line breaks.
            let one_line: String = error
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            headers.insert(DLQ_ERROR_HEADER, one_line.as_str());
            headers.insert(DLQ_SUBJECT_HEADER, delivery.subject.as_str());
            headers.insert(DLQ_DELIVERIES_HEADER, delivery.delivered.to_string().as_str());
            if let Some(id) = &delivery.msg_id {
                headers.insert(DLQ_MSG_ID_HEADER, id.as_str());
            }
            let (body, cut_from) = dead_letter_body(&delivery.payload);
            if let Some(size) = cut_from {
                headers.insert(DLQ_TRUNCATED_HEADER, size.to_string().as_str());
            }
            // Keyed by the original's position in the stream, so dead-lettering the same message twice (after
            // a lost term) is de-duplicated by the DLQ stream.
            let dlq_id = self.message_key("dlq", delivery, stream_sequence);
            self.publisher.publish_raw(&dlq, &dlq_id, headers, body).await?;
            if self.source != Source::Commands {
                // An event that cannot be handled is kept in the dead-letter queue; nobody waits for a
                // rejection of it.
                return Ok::<_, BusError>(());
            }
            // The dead letter is stored; the event is a courtesy.
            if let Err(e) = self.tell_rejected(delivery, &error, &dlq_id).await {
                tracing::warn!(error = %e, "could not publish CommandRejected");
            }
            Ok::<_, BusError>(())
        }
        .await;
        match stored {
            Ok(()) => {
                if let Err(e) = msg.ack_with(AckKind::Term).await {
                    tracing::warn!(error = %e, "dead-lettered, but the term was not sent");
                }
                Outcome::DeadLettered
            }
            Err(e) => {
                tracing::error!(error = %e, "could not store the dead letter; handing the message back");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(self.config.retry_delay(delivery.delivered))))
                    .await;
                Outcome::Retried
            }
        }
    }
}

async fn create_consumer(
    stream: &jetstream::stream::Stream,
    config: &pull::Config,
) -> Result<jetstream::consumer::Consumer<pull::Config>, BusError> {
    stream.create_consumer(config.clone()).await.map_err(|e| {
        BusError::provision(
            format!("consumer {}", config.durable_name.as_deref().unwrap_or("?")),
            e,
        )
    })
}

fn log_task_end(service: &str, result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result
        && !e.is_cancelled()
    {
        tracing::error!(service, error = %e, "a message task failed");
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_keeps_a_body_up_to_the_size_limit_whole_and_cuts_a_longer_one() {
        let fits = bytes::Bytes::from(vec![b'a'; MAX_DEAD_LETTER_BODY]);
        assert_eq!(dead_letter_body(&fits), (fits.clone(), None));
        // As big as NATS's default max_payload allows: the copy, with its headers, must still fit.
        let huge = bytes::Bytes::from(vec![b'b'; 1024 * 1024 - 1]);
        let (kept, cut_from) = dead_letter_body(&huge);
        assert_eq!(kept.len(), MAX_DEAD_LETTER_BODY);
        assert_eq!(kept, huge.slice(..MAX_DEAD_LETTER_BODY));
        assert_eq!(cut_from, Some(huge.len()));
    }
}
