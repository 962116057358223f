//! The one error set every provider's failures map onto.

use std::time::Duration;

use crate::ProviderKind;

/// Result of a cloud operation.
pub type Result<T, E = CloudError> = std::result::Result<T, E>;

/// Why a cloud operation failed. Messages come from the provider and never hold credentials.
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
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CloudError::RateLimited { .. } | CloudError::Retryable { .. } | CloudError::Transport { .. }
        )
    }

    /// Whether it says the resource does not exist.
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

    /// A [`CloudError::Protocol`] for an answer that does not parse.
    pub fn protocol(provider: ProviderKind, message: impl std::fmt::Display) -> Self {
        CloudError::Protocol {
            provider,
            message: message.to_string(),
        }
    }
}
