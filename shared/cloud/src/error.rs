//! The one error set every provider's failures map onto.

use std::time::Duration;

use crate::ProviderKind;

/// Result of a cloud operation.
pub type Result<T, E = CloudError> = std::result::Result<T, E>;

/// Why a cloud operation failed. Messages quote the provider; whatever is built from a provider's answer or
/// a URL passes through [`flotilla_redact::redact`] first (the HTTP client redacts every error its adapter's
/// mapper returns; [`CloudError::redacted`] does it for errors built elsewhere), so they hold no credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// The resource does not exist.
    #[error("{provider}: {what} not found")]
    NotFound {
        /// Provider.
        provider: ProviderKind,
        /// What was looked for.
        what: String,
    },
    /// The provider refused the request as invalid.
    #[error("{provider}: invalid request{}: {message}", field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Invalid {
        /// Provider.
        provider: ProviderKind,
        /// The offending field, when the provider names it.
        field: Option<String>,
        /// The provider's message.
        message: String,
    },
    /// Credentials missing, wrong or without permission.
    #[error("{provider}: authentication or permission failed: {message}")]
    Auth {
        /// Provider.
        provider: ProviderKind,
        /// The provider's message.
        message: String,
    },
    /// Too many requests.
    #[error("{provider}: rate limited{}", retry_after.map(|d| format!("; retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// Provider.
        provider: ProviderKind,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Busy, 5xx, maintenance: worth trying again.
    #[error("{provider}: temporarily unavailable: {message}")]
    Retryable {
        /// Provider.
        provider: ProviderKind,
        /// What happened.
        message: String,
    },
    /// The request conflicts with the resource's state (exists already, not ready yet …).
    #[error("{provider}: conflict: {message}")]
    Conflict {
        /// Provider.
        provider: ProviderKind,
        /// The provider's message.
        message: String,
    },
    /// An answer we could not understand.
    #[error("{provider}: unexpected response: {message}")]
    Protocol {
        /// Provider.
        provider: ProviderKind,
        /// What was wrong with it.
        message: String,
    },
    /// The API could not be reached.
    #[error("{provider}: cannot reach the API: {message}")]
    Transport {
        /// Provider.
        provider: ProviderKind,
        /// What happened.
        message: String,
    },
}

impl CloudError {
    /// A create refused as an invalid request because its name is taken, made a [`CloudError::Conflict`]
    /// (Linode and DigitalOcean answer a name in use that way): `found` looks the name up after the
    /// refusal, and when it finds the thing the conflict says `conflict(provider's message)`. Any other
    /// error, or a lookup that finds nothing or fails, is returned as it is.
    pub async fn conflict_if_found<T>(
        self,
        found: impl Future<Output = Result<Option<T>>>,
        conflict: impl FnOnce(&str) -> String,
    ) -> CloudError {
        match self {
            CloudError::Invalid {
                provider, message, ..
            } if matches!(found.await, Ok(Some(_))) => CloudError::Conflict {
                provider,
                message: conflict(&message),
            },
            other => other,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CloudError::RateLimited { .. } | CloudError::Retryable { .. } | CloudError::Transport { .. }
        )
    }

    /// Whether it says the resource does not exist.
    /// Whether the provider certainly refused the request (invalid, conflicting, about something that does
    /// not exist): nothing was changed, and sending it again would be refused again. Anything else (a rate
    /// limit, a 5xx, a transport failure) may hide a change that was made.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            CloudError::Invalid { .. } | CloudError::Conflict { .. } | CloudError::NotFound { .. }
        )
    }

    /// Whether the resource was not found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CloudError::NotFound { .. })
    }

    /// The delay the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CloudError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A [`CloudError::Protocol`] for an answer that does not parse; the message is redacted.
    pub fn protocol(provider: ProviderKind, message: impl std::fmt::Display) -> Self {
        CloudError::Protocol {
            provider,
            message: flotilla_redact::redact(&message.to_string()),
        }
    }

    /// The same error with every text it carries (message, what was not found, field) passed through
    /// [`flotilla_redact::redact`]. Redacting twice changes nothing.
    #[must_use]
    pub fn redacted(self) -> Self {
        use flotilla_redact::redact;
        match self {
            CloudError::NotFound { provider, what } => CloudError::NotFound {
                provider,
                what: redact(&what),
            },
            CloudError::Invalid {
                provider,
                field,
                message,
            } => CloudError::Invalid {
                provider,
                field: field.map(|f| redact(&f)),
                message: redact(&message),
            },
            CloudError::Auth { provider, message } => CloudError::Auth {
                provider,
                message: redact(&message),
            },
            CloudError::RateLimited { .. } => self,
            CloudError::Retryable { provider, message } => CloudError::Retryable {
                provider,
                message: redact(&message),
            },
            CloudError::Conflict { provider, message } => CloudError::Conflict {
                provider,
                message: redact(&message),
            },
            CloudError::Protocol { provider, message } => CloudError::Protocol {
                provider,
                message: redact(&message),
            },
            CloudError::Transport { provider, message } => CloudError::Transport {
                provider,
                message: redact(&message),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"error":"bad token","token":"sk-live-123"}"#;

    fn every_kind(message: &str) -> Vec<CloudError> {
        let provider = ProviderKind::Cloudflare;
        vec![
            CloudError::NotFound {
                provider,
                what: message.into(),
            },
            CloudError::Invalid {
                provider,
                field: Some(message.into()),
                message: message.into(),
            },
            CloudError::Auth {
                provider,
                message: message.into(),
            },
            CloudError::Retryable {
                provider,
                message: message.into(),
            },
            CloudError::Conflict {
                provider,
                message: message.into(),
            },
            CloudError::Protocol {
                provider,
                message: message.into(),
            },
            CloudError::Transport {
                provider,
                message: message.into(),
            },
        ]
    }

    #[test]
    fn redacted_errors_hold_no_secret_whatever_their_kind() {
        for text in [BODY, "X-Auth-Key: abc123", "X-Auth-Email: ops@example.com"] {
            for e in every_kind(text) {
                assert!(
                    e.to_string().contains(text) || text.is_empty(),
                    "the raw error quotes it"
                );
                let shown = e.redacted().to_string();
                for secret in ["sk-live-123", "abc123", "ops@example.com"] {
                    assert!(!shown.contains(secret), "{shown}");
                }
                assert!(shown.contains("<redacted>"), "{shown}");
            }
        }
        let e = every_kind(BODY).remove(2).redacted();
        assert!(
            e.to_string().contains("bad token"),
            "what is not secret stays: {e}"
        );
        assert_eq!(e.clone().redacted(), e, "idempotent");
    }

    #[test]
    fn protocol_errors_are_redacted_when_built() {
        let e = CloudError::protocol(ProviderKind::Vultr, format!("unexpected answer {BODY}"));
        assert!(!e.to_string().contains("sk-live-123"), "{e}");
    }
}
