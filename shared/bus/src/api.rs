//! Request/reply over `flotilla.api.<service>.<verb>` (served through the NATS service API).
//!
//! A request carries the kind header and content type like any message; the reply comes back in the same
//! encoding. A failed request is answered with the service API's error headers (`Nats-Service-Error`,
//! `Nats-Service-Error-Code`), which [`request`] turns into [`ApiError::Service`].

use std::time::Duration;

use async_nats::service::Request;
use flotilla_proto::{CONTENT_TYPE_HEADER, DecodeError, Encoding, KIND_HEADER, Message};

/// Errors of a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nobody answers on the subject.
    #[error("no service answers on {subject}: is it running?")]
    NoResponders {
        /// The subject.
        subject: String,
    },
    /// No answer in time.
    #[error("no answer on {subject} within {timeout:?}")]
    TimedOut {
        /// The subject.
        subject: String,
        /// The time waited.
        timeout: Duration,
    },
    /// The service answered with an error.
    #[error("{subject} answered {code}: {message}")]
    Service {
        /// The subject.
        subject: String,
        /// Error code (HTTP-like).
        code: u16,
        /// Error text.
        message: String,
    },
    /// The request could not be sent.
    #[error("request on {subject} failed: {reason}")]
    Transport {
        /// The subject.
        subject: String,
        /// What happened.
        reason: String,
    },
    /// The request could not be encoded.
    #[error(transparent)]
    Encode(#[from] flotilla_proto::EncodeError),
    /// The reply could not be decoded.
    #[error("reply on {subject} could not be decoded: {source}")]
    Decode {
        /// The subject.
        subject: String,
        /// The error.
        source: DecodeError,
    },
}

/// Sends `req` on `subject` and decodes the reply as `Resp`.
pub async fn request<Req: Message, Resp: Message>(
    client: &async_nats::Client,
    subject: &str,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, ApiError> {
    let payload = flotilla_proto::encode(req, Encoding::MessagePack)?;
    let request = async_nats::Request::new()
        .headers(crate::message_headers::<Req>(Encoding::MessagePack))
        .payload(payload.into())
        .timeout(Some(timeout));
    let reply = client
        .send_request(subject.to_owned(), request)
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => ApiError::NoResponders {
                subject: subject.to_owned(),
            },
            async_nats::RequestErrorKind::TimedOut => ApiError::TimedOut {
                subject: subject.to_owned(),
                timeout,
            },
            _ => ApiError::Transport {
                subject: subject.to_owned(),
                reason: e.to_string(),
            },
        })?;
    let header = |name: &str| crate::header(reply.headers.as_ref(), name);
    if let Some(message) = header("Nats-Service-Error") {
        let code = header("Nats-Service-Error-Code")
            .and_then(|c| c.parse().ok())
            .unwrap_or(500);
        return Err(ApiError::Service {
            subject: subject.to_owned(),
            code,
            message,
        });
    }
    flotilla_proto::decode(
        header(KIND_HEADER).as_deref(),
        header(CONTENT_TYPE_HEADER).as_deref(),
        &reply.payload,
    )
    .map_err(|source| ApiError::Decode {
        subject: subject.to_owned(),
        source,
    })
}

/// Decodes a service API request as `Req`; `Err` holds the reply to send (400 with the decode error).
pub fn decode_request<Req: Message>(request: &Request) -> Result<Req, async_nats::service::error::Error> {
    // A hand-written request (`nats req flotilla.api.x.status '{}'`) may omit the kind: the subject fixes it.
    let kind =
        crate::header(request.message.headers.as_ref(), KIND_HEADER).unwrap_or_else(|| Req::KIND.to_owned());
    // An empty body is an empty request.
    let payload: &[u8] = if request.message.payload.is_empty() {
        b"{}"
    } else {
        &request.message.payload
    };
    let content_type = request_encoding(request).content_type();
    flotilla_proto::decode(Some(&kind), Some(content_type), payload).map_err(|e| {
        async_nats::service::error::Error {
            status: e.to_string(),
            code: 400,
        }
    })
}

/// The encoding of a request, and so of its reply: what its content type says, or else what its body looks
/// like; an empty body (`nats req subject ''`) is answered in JSON.
fn request_encoding(request: &Request) -> Encoding {
    if request.message.payload.is_empty() {
        return Encoding::Json;
    }
    let content_type = crate::header(request.message.headers.as_ref(), CONTENT_TYPE_HEADER);
    Encoding::detect(content_type.as_deref(), &request.message.payload)
}

/// Answers `request` with `result`, in the encoding the request used.
pub async fn respond<Resp: Message>(
    request: &Request,
    result: Result<Resp, async_nats::service::error::Error>,
) -> Result<(), async_nats::service::error::Error> {
    let encoding = request_encoding(request);
    let encoded = result.and_then(|resp| {
        flotilla_proto::encode(&resp, encoding).map_err(|e| async_nats::service::error::Error {
            status: e.to_string(),
            code: 500,
        })
    });
    let sent = match encoded {
        Ok(body) => {
            request
                .respond_with_headers(Ok(body.into()), crate::message_headers::<Resp>(encoding))
                .await
        }
        Err(e) => request.respond(Err(e)).await,
    };
    sent.map_err(|e| async_nats::service::error::Error {
        status: e.to_string(),
        code: 500,
    })
}
