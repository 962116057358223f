use std::time::Duration;

/// Errors of the bus layer.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The connection options are unusable (bad URL, unreadable creds file …).
    #[error("invalid NATS connection options: {0}")]
    Options(String),
    /// Could not connect to any server.
    #[error("cannot connect to NATS at {urls}: {source}")]
    Connect {
        /// The URLs tried.
        urls: String,
        /// The underlying error.
        source: async_nats::ConnectError,
    },
    /// The server is too old for Flotilla.
    #[error(
        "NATS server {found} is too old: Flotilla needs 2.10 or newer (key-value and multi-filter consumers)"
    )]
    ServerTooOld {
        /// The version the server reported.
        found: String,
    },
    /// The server has no JetStream.
    #[error("NATS server {version} does not have JetStream enabled (start it with -js): {reason}")]
    NoJetStream {
        /// The version the server reported.
        version: String,
        /// What the server answered.
        reason: String,
    },
    /// The server has JetStream, but it does not answer now.
    #[error(
        "NATS server {version} has JetStream but it does not answer now (a cluster without a quorum, or a \
         server still starting): {reason}"
    )]
    JetStreamUnavailable {
        /// The version the server reported.
        version: String,
        /// What the server answered.
        reason: String,
    },
    /// A subject token is not allowed.
    #[error("invalid subject token {token:?} for {what}: {reason}")]
    SubjectToken {
        /// The token.
        token: String,
        /// Which part of the subject it was meant to be.
        what: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Creating or updating a stream, consumer or bucket failed.
    #[error("cannot provision {what}: {reason}")]
    Provision {
        /// What was being provisioned.
        what: String,
        /// The server's answer.
        reason: String,
    },
    /// A message could not be encoded.
    #[error(transparent)]
    Encode(#[from] flotilla_proto::EncodeError),
    /// Publishing failed after every retry.
    #[error("publish to {subject} failed after {attempts} attempts over {elapsed:?}: {reason}")]
    Publish {
        /// Subject.
        subject: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last error.
        reason: String,
    },
    /// A JetStream or KV operation failed.
    #[error("{op} failed: {reason}")]
    JetStream {
        /// The operation.
        op: &'static str,
        /// The error.
        reason: String,
    },
}

impl BusError {
    /// Whether JetStream may answer if asked again soon: it did not answer now (a cluster electing its
    /// leader or without a quorum, a server still starting), as opposed to a refusal that will stay one.
    pub fn is_transient(&self) -> bool {
        match self {
            BusError::JetStreamUnavailable { .. } => true,
            BusError::Provision { reason, .. } | BusError::JetStream { reason, .. } => {
                let reason = reason.to_ascii_lowercase();
                [
                    "timed out",
                    "timeout",
                    "temporarily unavailable",
                    "no responders",
                    "insufficient resources",
                ]
                .iter()
                .any(|s| reason.contains(s))
            }
            _ => false,
        }
    }

    pub(crate) fn provision(what: String, err: impl std::fmt::Display) -> Self {
        BusError::Provision {
            what,
            reason: err.to_string(),
        }
    }

    pub(crate) fn js(op: &'static str, err: impl std::fmt::Display) -> Self {
        BusError::JetStream {
            op,
            reason: err.to_string(),
        }
    }
}
