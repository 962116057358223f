//! Publishing commands and events with `Nats-Msg-Id`, waiting for JetStream's acknowledgement.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, publish::PublishAck};
use backon::{ExponentialBuilder, Retryable};
use flotilla_proto::{Encoding, Message};
use serde::Deserialize;

use crate::BusError;

/// Retry policy of a [`Publisher`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// Time to wait for JetStream's acknowledgement of one attempt.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Attempts before giving up (the first included).
    pub max_attempts: u32,
    /// First delay between attempts; doubles up to `max_delay`.
    #[serde(with = "humantime_serde")]
    pub min_delay: Duration,
    /// Longest delay between attempts.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl PublishConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.max_attempts == 0 {
            return Err(BusError::Options(
                "publish.max_attempts must be at least 1".into(),
            ));
        }
        if self.ack_timeout.is_zero() {
            return Err(BusError::Options("publish.ack_timeout must be positive".into()));
        }
        if self.min_delay > self.max_delay {
            return Err(BusError::Options(
                "publish.min_delay must not exceed publish.max_delay".into(),
            ));
        }
        Ok(())
    }

    /// The longest a publication can keep retrying; it must stay inside the stream's de-duplication window,
    /// or a late retry could store a second copy.
    pub fn worst_case_span(&self) -> Duration {
        let attempts = self.max_attempts;
        self.ack_timeout * attempts + self.max_delay * attempts.saturating_sub(1)
    }
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(5),
            max_attempts: 6,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(3),
        }
    }
}

/// Publishes to JetStream. Every publication carries a `Nats-Msg-Id`; an attempt whose acknowledgement is
/// lost is retried with the same id, so the stream's de-duplication window turns the retry into a no-op
/// instead of a second copy.
///
/// A message whose encoding is over [`flotilla_proto::MAX_MESSAGE_BYTES`] is refused before anything is sent
/// ([`BusError::Encode`] naming its kind, size and the limit): no service would read it.
/// [`Publisher::publish_raw`] sends what it is given, as a hand-written `nats pub` would.
///
/// An error does not prove the message was not stored: an attempt buffered while the connection was down
/// may still reach the server after a reconnect. A caller that tries again must use the same id, never a
/// new one.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    config: PublishConfig,
}

impl Publisher {
    /// A publisher on `client`.
    pub fn new(client: async_nats::Client, config: PublishConfig) -> Self {
        let js = jetstream::ContextBuilder::new()
            .timeout(config.ack_timeout)
            .build(client);
        Self { js, config }
    }

    /// Publishes `msg` (MessagePack) on `subject` with `Nats-Msg-Id: msg_id` and the kind header.
    pub async fn publish<M: Message>(
        &self,
        subject: &str,
        msg_id: &str,
        msg: &M,
    ) -> Result<PublishAck, BusError> {
        self.publish_encoded(subject, msg_id, msg, Encoding::MessagePack)
            .await
    }

    /// Publishes a command on its own subject (built from its kind, deployment and region), with its id as
    /// `Nats-Msg-Id`.
    pub async fn publish_command<C: flotilla_proto::Command>(&self, cmd: &C) -> Result<PublishAck, BusError> {
        let subject = crate::subject::command_for(cmd)?;
        self.publish(&subject, &cmd.meta().id.to_string(), cmd).await
    }

    /// Publishes an event on its own subject (built from its topic, deployment, region and name), with its
    /// id as `Nats-Msg-Id`.
    pub async fn publish_event<E: flotilla_proto::Event>(&self, event: &E) -> Result<PublishAck, BusError> {
        let subject = crate::subject::event_for(event)?;
        self.publish(&subject, &event.id().to_string(), event).await
    }

    /// As [`Publisher::publish`], in the given encoding.
    pub async fn publish_encoded<M: Message>(
        &self,
        subject: &str,
        msg_id: &str,
        msg: &M,
        encoding: Encoding,
    ) -> Result<PublishAck, BusError> {
        let payload = flotilla_proto::encode(msg, encoding)?;
        self.publish_raw(
            subject,
            msg_id,
            crate::message_headers::<M>(encoding),
            payload.into(),
        )
        .await
    }

    /// Publishes a payload as it is, with `Nats-Msg-Id: msg_id` added to `headers`.
    pub async fn publish_raw(
        &self,
        subject: &str,
        msg_id: &str,
        headers: HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<PublishAck, BusError> {
        let started = Instant::now();
        let attempts = AtomicU32::new(0);
        let attempt = || {
            attempts.fetch_add(1, Ordering::Relaxed);
            let message = PublishMessage::build()
                .headers(headers.clone())
                .payload(payload.clone())
                .message_id(msg_id);
            async move {
                let ack = self.js.send_publish(subject.to_owned(), message).await?;
                ack.await
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.min_delay)
            .with_max_delay(self.config.max_delay)
            .with_max_times(self.config.max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        attempt
            .retry(backoff)
            .when(|e: &jetstream::context::PublishError| {
                !matches!(
                    e.kind(),
                    PublishErrorKind::MaxPayloadExceeded
                        | PublishErrorKind::WrongLastMessageId
                        | PublishErrorKind::WrongLastSequence
                )
            })
            .notify(|e, delay| tracing::warn!(subject, error = %e, ?delay, "publish not acknowledged; retrying with the same id"))
            .await
            .map_err(|e| BusError::Publish {
                subject: subject.to_owned(),
                attempts: attempts.load(Ordering::Relaxed),
                elapsed: started.elapsed(),
                reason: e.to_string(),
            })
    }

    /// The JetStream context used.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }
}
