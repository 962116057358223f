//! The crate's errors: configuration problems found while building clients, and failed S3 requests.
//!
//! No error carries an S3 key: failed requests are turned into plain strings (status, S3 error code,
//! the service's message, scrubbed of both keys of the endpoint) as soon as they come back from the SDK,
//! and the SDK's own error values, whose `Debug` output includes raw responses, are never kept.

use std::fmt;

use crate::endpoint::EndpointError;

/// Anything that can go wrong in this crate.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DatastoreError {
    /// The region lists no datastore endpoint (`S3_HOST_BASE` was empty).
    #[error("region {region} lists no datastore endpoints")]
    NoEndpoints {
        /// The region's name.
        region: String,
    },
    /// The secrets hold no (or empty) S3 keys for one of the region's endpoints.
    #[error(
        "region {region}: datastore endpoint {} ({host}) has no S3 access/secret key in the secrets",
        .index + 1
    )]
    MissingCredentials {
        /// The region's name.
        region: String,
        /// Position of the endpoint in the region's list (0 = endpoint 1).
        index: usize,
        /// The endpoint's host as written in the spec.
        host: String,
    },
    /// An endpoint's host base or override URL cannot be used.
    #[error("datastore endpoint {}: {source}", .index + 1)]
    InvalidEndpoint {
        /// Position of the endpoint in the region's list (0 = endpoint 1).
        index: usize,
        /// What is wrong with it.
        #[source]
        source: EndpointError,
    },
    /// An endpoint override was given for a position the region does not have.
    #[error("an endpoint override was given for datastore endpoint {} but the region has {endpoints}", .index + 1)]
    UnknownOverride {
        /// The position the override named (0 = endpoint 1).
        index: usize,
        /// How many endpoints the region has.
        endpoints: usize,
    },
    /// A local file could not be read or written (an agent's webroot, a backup's archive).
    #[error("local file {path}: {message}")]
    Local {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// An S3 request failed (after its retries, when the failure was retryable).
    #[error(transparent)]
    Request(Box<RequestFailure>),
}

impl DatastoreError {
    /// The failed request, when this is a request failure.
    pub fn request(&self) -> Option<&RequestFailure> {
        match self {
            Self::Request(failure) => Some(failure),
            _ => None,
        }
    }

    /// What kind of request failure this is; `None` for configuration errors.
    pub fn kind(&self) -> Option<FailureKind> {
        self.request().map(|f| f.kind)
    }

    /// Whether trying the same request again may succeed (timeouts, unreachable endpoints, 5xx,
    /// throttling, truncated responses). Configuration errors are never retryable.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_some_and(FailureKind::is_retryable)
    }

    /// Whether the bucket or object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == Some(FailureKind::NotFound)
    }

    /// Whether the endpoint refused the credentials (or the request was not allowed).
    pub fn is_auth(&self) -> bool {
        self.kind() == Some(FailureKind::Auth)
    }
}

impl From<RequestFailure> for DatastoreError {
    fn from(failure: RequestFailure) -> Self {
        Self::Request(Box::new(failure))
    }
}

/// A failed S3 request against one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFailure {
    /// Position of the endpoint in the region's list (0 = endpoint 1).
    pub index: usize,
    /// The endpoint URL the request went to.
    pub endpoint: String,
    /// The S3 operation and its target, e.g. `PutObject site-config/a.json`.
    pub operation: String,
    /// What kind of failure it is.
    pub kind: FailureKind,
    /// HTTP status of the response, when one was received.
    pub status: Option<u16>,
    /// S3 error code, e.g. `SignatureDoesNotMatch`, when the response carried one.
    pub code: Option<String>,
    /// The service's message or the transport error, with the endpoint's keys scrubbed out.
    pub message: String,
}

impl fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "datastore endpoint {} ({}): {}: {}",
            self.index + 1,
            self.endpoint,
            self.operation,
            self.kind
        )?;
        match (self.status, self.code.as_deref()) {
            (Some(status), Some(code)) => write!(f, " (HTTP {status} {code})")?,
            (Some(status), None) => write!(f, " (HTTP {status})")?,
            (None, Some(code)) => write!(f, " ({code})")?,
            (None, None) => {}
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for RequestFailure {}

/// The kinds of request failure, which decide whether a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The credentials were refused or the request was not allowed (401/403, `InvalidAccessKeyId`,
    /// `SignatureDoesNotMatch`, `AccessDenied`, a wrong region string). Not retried.
    Auth,
    /// The bucket or object does not exist (404, `NoSuchBucket`, `NoSuchKey`). Not retried.
    NotFound,
    /// The request conflicts with the bucket's state (409, `BucketAlreadyExists`, `BucketNotEmpty`).
    /// Not retried.
    Conflict,
    /// The endpoint asked us to slow down (429, `SlowDown`, throttling codes). Retried.
    Throttled,
    /// The endpoint failed (5xx, `InternalError`, `ServiceUnavailable`). Retried.
    ServerError,
    /// The request or the connection timed out (including S3's `RequestTimeout`). Retried.
    Timeout,
    /// No connection could be made or it broke before a response arrived. Retried.
    Unreachable,
    /// A response arrived but could not be read or parsed (e.g. cut short). Retried.
    Protocol,
    /// The endpoint rejected the request for another reason (other 4xx). Not retried.
    Rejected,
    /// The request could not be built or sent at all (e.g. an invalid bucket name). Not retried.
    Invalid,
}

impl FailureKind {
    /// Whether a request that failed this way is worth trying again.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::ServerError | Self::Timeout | Self::Unreachable | Self::Protocol
        )
    }

    /// Classifies a response by S3 error code first, then by HTTP status.
    pub(crate) fn for_response(status: Option<u16>, code: Option<&str>) -> Self {
        match code {
            Some(
                "SlowDown"
                | "Throttling"
                | "ThrottlingException"
                | "RequestThrottled"
                | "TooManyRequests"
                | "RequestLimitExceeded"
                | "TooManyRequestsException",
            ) => Self::Throttled,
            Some("RequestTimeout") => Self::Timeout,
            Some("InternalError" | "ServiceUnavailable") => Self::ServerError,
            Some(
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "InvalidToken"
                | "ExpiredToken"
                | "InvalidSecurity"
                | "AuthorizationHeaderMalformed"
                | "AllAccessDisabled"
                | "AccountProblem",
            ) => Self::Auth,
            Some("NoSuchKey" | "NoSuchBucket" | "NotFound") => Self::NotFound,
            Some("BucketAlreadyExists" | "BucketAlreadyOwnedByYou" | "BucketNotEmpty") => Self::Conflict,
            _ => match status {
                Some(401 | 403) => Self::Auth,
                Some(404) => Self::NotFound,
                Some(408) => Self::Timeout,
                Some(409) => Self::Conflict,
                Some(429) => Self::Throttled,
                Some(500..=599) => Self::ServerError,
                Some(_) => Self::Rejected,
                None => Self::Protocol,
            },
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auth => "authentication failed (check this endpoint's S3 access key and secret key)",
            Self::NotFound => "not found",
            Self::Conflict => "conflict",
            Self::Throttled => "throttled",
            Self::ServerError => "server error",
            Self::Timeout => "timed out",
            Self::Unreachable => "endpoint unreachable",
            Self::Protocol => "unreadable response",
            Self::Rejected => "request rejected",
            Self::Invalid => "invalid request",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let k = FailureKind::for_response;
        assert_eq!(k(Some(403), Some("SignatureDoesNotMatch")), FailureKind::Auth);
        assert_eq!(k(Some(403), None), FailureKind::Auth);
        assert_eq!(
            k(Some(400), Some("AuthorizationHeaderMalformed")),
            FailureKind::Auth
        );
        assert_eq!(k(Some(503), Some("SlowDown")), FailureKind::Throttled);
        assert_eq!(k(Some(429), None), FailureKind::Throttled);
        assert_eq!(k(Some(502), None), FailureKind::ServerError);
        assert_eq!(k(Some(400), Some("RequestTimeout")), FailureKind::Timeout);
        assert_eq!(k(Some(404), None), FailureKind::NotFound);
        assert_eq!(k(Some(404), Some("NoSuchBucket")), FailureKind::NotFound);
        assert_eq!(k(Some(409), Some("BucketAlreadyExists")), FailureKind::Conflict);
        assert_eq!(k(Some(400), Some("InvalidBucketName")), FailureKind::Rejected);
        for kind in [
            FailureKind::Throttled,
            FailureKind::ServerError,
            FailureKind::Timeout,
        ] {
            assert!(kind.is_retryable());
        }
        for kind in [FailureKind::Auth, FailureKind::NotFound, FailureKind::Rejected] {
            assert!(!kind.is_retryable());
        }
    }

    #[test]
    fn display_numbers_endpoints_from_one() {
        let failure = RequestFailure {
            index: 1,
            endpoint: "https://ams3.digitaloceanspaces.com".into(),
            operation: "PutObject b/k".into(),
            kind: FailureKind::ServerError,
            status: Some(503),
            code: Some("ServiceUnavailable".into()),
            message: "try later".into(),
        };
        assert_eq!(
            DatastoreError::from(failure).to_string(),
            "datastore endpoint 2 (https://ams3.digitaloceanspaces.com): PutObject b/k: server error \
             (HTTP 503 ServiceUnavailable): try later"
        );
    }
}
