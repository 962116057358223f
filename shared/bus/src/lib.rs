//! NATS JetStream plumbing for Flotilla.
//!
//! - [`subject`]: the subject scheme (`flotilla.cmd.…`, `flotilla.evt.…`, `flotilla.api.…`, `flotilla.dlq.…`).
//! - [`connect`]: connection options (URLs, user/password, token, NKey, creds, TLS) and the server check that
//!   refuses a server older than 2.10 or without JetStream.
//! - [`topology`]: streams and KV buckets, created idempotently at start-up.
//! - [`Publisher`]: commands and events, published with `Nats-Msg-Id` and retried with the same id until
//!   JetStream acknowledges them.
//! - [`consume`]: durable pull consumers (commands per service, events per service and purpose) with explicit acks, NAK-with-delay retries, progress
//!   for long work, bounded deliveries, and a dead-letter queue for what can never succeed.
//! - [`lease`]: leases in a KV bucket, by compare-and-set on revision (the revision is the fencing token).
//! - [`state`]: shared state in KV buckets — each deployment's desired state and the fleet view — read as a
//!   snapshot followed by every change.
//!
//! Architecture invariant: payloads are encoded and decoded only through `flotilla-proto`.

pub mod api;
mod config_de;
pub mod connect;
pub mod consume;
mod error;
pub mod lease;
mod publish;
pub mod redact;
pub mod state;
pub mod subject;
pub mod topology;

pub use connect::{BusConfig, TlsConfig, connect};
pub use consume::{
    CommandConsumer, ConsumerConfig, DLQ_HEADERS_DROPPED_HEADER, DLQ_TRUNCATED_HEADER, Delivery, Dispatcher,
    Handler, HandlerError, Outcome, OutcomeCounters, Source, StartAt,
};
pub use error::BusError;
pub use publish::{PublishConfig, Publisher};
pub use topology::{Topology, TopologyConfig};

use async_nats::HeaderMap;
use flotilla_proto::{CONTENT_TYPE_HEADER, Encoding, KIND_HEADER, Message};

/// The headers every Flotilla message carries: its kind and its content type.
pub fn message_headers<M: Message>(encoding: Encoding) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(KIND_HEADER, M::KIND);
    headers.insert(CONTENT_TYPE_HEADER, encoding.content_type());
    headers
}

/// The event a NATS message carries, by its kind header; `None` for a kind this version does not know or
/// a body that does not decode (logged: a newer publisher's event is skipped, not fatal).
pub fn decode_event(msg: &async_nats::Message) -> Option<flotilla_proto::AnyEvent> {
    let headers = msg.headers.as_ref();
    let kind = header(headers, flotilla_proto::KIND_HEADER);
    let content_type = header(headers, flotilla_proto::CONTENT_TYPE_HEADER);
    match flotilla_proto::AnyEvent::decode(kind.as_deref(), content_type.as_deref(), &msg.payload) {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(subject = %msg.subject, error = %e, "skipping an event that does not decode");
            None
        }
    }
}

/// The value of header `name`, if present.
pub fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned())
}

/// Header naming the error that sent a message to a dead-letter queue.
pub const DLQ_ERROR_HEADER: &str = "Flotilla-Error";
/// Header naming the subject a dead-lettered message was first published on.
pub const DLQ_SUBJECT_HEADER: &str = "Flotilla-Original-Subject";
/// Header with the `Nats-Msg-Id` (command id) a dead-lettered message was published with (its own
/// `Nats-Msg-Id` in the DLQ stream is derived from its position, for de-duplication there).
pub const DLQ_MSG_ID_HEADER: &str = "Flotilla-Original-Msg-Id";
/// Header with the number of deliveries a dead-lettered message had.
pub const DLQ_DELIVERIES_HEADER: &str = "Flotilla-Deliveries";
