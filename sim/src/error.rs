//! Errors: the provider-shaped error answers of the APIs, and why a simulator could not start.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::Provider;

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: String,
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The state directory could not be read or written.
    #[error("state in {path}: {message}")]
    State {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// An S3 endpoint could not be set up.
    #[error("S3 endpoint {provider}/{region}: {message}")]
    S3 {
        /// Provider.
        provider: Provider,
        /// Region.
        region: String,
        /// What went wrong.
        message: String,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// An error answer in the provider's own shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub provider: Provider,
    pub status: StatusCode,
    pub message: String,
    /// The offending field (Linode `field`).
    pub field: Option<String>,
    /// Cloudflare error code.
    pub code: Option<u32>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
    /// The simulator has no such operation (marked `x-flotilla-sim: no-route` on the answer).
    pub no_route: bool,
}

/// What handlers return.
pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

impl ApiError {
    pub fn new(provider: Provider, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            provider,
            status,
            message: message.into(),
            field: None,
            code: None,
            retry_after: None,
            no_route: false,
        }
    }

    /// Names the offending field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Sets the Cloudflare error code.
    pub fn code(mut self, code: u32) -> Self {
        self.code = Some(code);
        self
    }

    /// 400 naming a field.
    pub fn invalid(provider: Provider, field: &str, message: impl Into<String>) -> Self {
        Self::new(provider, StatusCode::BAD_REQUEST, message).field(field)
    }

    /// 404 in the provider's words.
    pub fn not_found(provider: Provider) -> Self {
        let message = match provider {
            Provider::Linode => "Not found",
            Provider::DigitalOcean => "The resource you requested could not be found.",
            Provider::Vultr => "Not found.",
            Provider::Exoscale => "Not Found",
            Provider::Cloudflare => {
                "Could not route to the requested object, perhaps your object identifier is invalid?"
            }
        };
        let e = Self::new(provider, StatusCode::NOT_FOUND, message);
        if provider == Provider::Cloudflare {
            e.code(7003)
        } else {
            e
        }
    }

    /// The provider's 404 for a path or action the simulator does not serve (the real API may): marked
    /// `x-flotilla-sim: no-route`, so that a test can tell "no such operation here" from "no such
    /// resource".
    pub fn no_route(provider: Provider) -> Self {
        Self {
            no_route: true,
            ..Self::not_found(provider)
        }
    }

    /// Bad or missing credentials, as each provider answers them.
    pub fn unauthorized(provider: Provider, detail: &str) -> Self {
        match provider {
            Provider::Linode => Self::new(provider, StatusCode::UNAUTHORIZED, "Invalid Token"),
            Provider::DigitalOcean => {
                Self::new(provider, StatusCode::UNAUTHORIZED, "Unable to authenticate you")
            }
            Provider::Vultr => Self::new(provider, StatusCode::UNAUTHORIZED, "Invalid API token."),
            Provider::Exoscale => Self::new(provider, StatusCode::FORBIDDEN, detail),
            Provider::Cloudflare => {
                Self::new(provider, StatusCode::UNAUTHORIZED, "Authentication error").code(10000)
            }
        }
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(provider: Provider, retry_after: u64) -> Self {
        let message = match provider {
            Provider::Linode => "Too many requests",
            Provider::DigitalOcean => "API rate limit exceeded.",
            Provider::Vultr => "Rate limit reached - please try your request again later.",
            Provider::Exoscale => "Too many requests",
            Provider::Cloudflare => "Please wait and consider throttling your request speed",
        };
        let mut e = Self::new(provider, StatusCode::TOO_MANY_REQUESTS, message);
        e.retry_after = Some(retry_after);
        if provider == Provider::Cloudflare {
            e.code(971)
        } else {
            e
        }
    }

    /// A 5xx answer.
    pub fn server(provider: Provider, status: u16, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let e = Self::new(provider, status, message);
        if provider == Provider::Cloudflare {
            e.code(10002)
        } else {
            e
        }
    }

    /// The answer of a region that is down.
    pub fn region_down(provider: Provider, region: &str) -> Self {
        Self::server(
            provider,
            503,
            format!("Service temporarily unavailable in region {region}"),
        )
    }

    /// The body in the provider's shape.
    pub fn body(&self) -> Value {
        match self.provider {
            Provider::Linode => {
                let mut e = json!({ "reason": self.message });
                if let Some(f) = &self.field {
                    e["field"] = json!(f);
                }
                json!({ "errors": [e] })
            }
            Provider::DigitalOcean => json!({
                "id": digitalocean_id(self.status),
                "message": self.message,
                "request_id": uuid::Uuid::new_v4().to_string(),
            }),
            Provider::Vultr => json!({ "error": self.message, "status": self.status.as_u16() }),
            Provider::Exoscale => json!({ "message": self.message }),
            Provider::Cloudflare => json!({
                "success": false,
                "errors": [{ "code": self.code.unwrap_or(1000), "message": self.message }],
                "messages": [],
                "result": null,
            }),
        }
    }
}

fn digitalocean_id(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        422 => "unprocessable_entity",
        429 => "too_many_requests",
        503 => "service_unavailable",
        _ => "server_error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.no_route {
            response
                .headers_mut()
                .insert("x-flotilla-sim", HeaderValue::from_static("no-route"));
        }
        response
    }
}

/// A JSON answer.
pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// An empty answer (204).
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_have_each_providers_shape() {
        let e = ApiError::invalid(Provider::Linode, "region", "region is not valid");
        assert_eq!(
            e.body(),
            json!({"errors": [{"reason": "region is not valid", "field": "region"}]})
        );
        let e = ApiError::not_found(Provider::DigitalOcean);
        assert_eq!(e.body()["id"], "not_found");
        let e = ApiError::unauthorized(Provider::Vultr, "");
        assert_eq!(e.body(), json!({"error": "Invalid API token.", "status": 401}));
        let e = ApiError::rate_limited(Provider::Cloudflare, 5);
        assert_eq!(e.body()["errors"][0]["code"], 971);
        assert_eq!(e.body()["success"], false);
        let e = ApiError::unauthorized(Provider::Exoscale, "Invalid request signature");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(e.body(), json!({"message": "Invalid request signature"}));
    }
}
