//! What every API request goes through before its handler, in this order: injected latency, a region
//! that is down (Exoscale: the whole zone endpoint), authentication, a rate-limit storm, the
//! provider's rate limits per credential, injected server errors. Rate-limit headers are added to
//! the answer the way the provider sends them.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::auth::{self, SignedParts};
use crate::catalog;
use crate::config::Provider;
use crate::error::ApiError;
use crate::limits::Standing;
use crate::sim::Sim;

/// Largest request body accepted.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A provider API's state: the shared simulator and which provider this is.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub sim: Arc<Sim>,
    pub provider: Provider,
}

/// Who made a request, and (Exoscale) for which zone.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Name of the credential used.
    pub credential: String,
    /// Exoscale zone; empty for the other providers.
    pub zone: String,
}

/// The middleware.
pub(crate) async fn gate(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let p = ctx.provider;
    let sim = &ctx.sim;
    let latency = sim.faults().latency(p);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let req = if sim.config.record_requests {
        match recorded(sim, p, req).await {
            Ok(req) => req,
            Err(response) => return response,
        }
    } else {
        req
    };
    let zone = if p == Provider::Exoscale {
        match exoscale_zone(sim, &req) {
            Some(z) => z,
            None => return ApiError::not_found(p).into_response(),
        }
    } else {
        String::new()
    };
    if p == Provider::Exoscale
        && let Err(e) = sim.check_region(p, &zone)
    {
        return e.into_response();
    }
    let (mut req, credential) = match p {
        Provider::Exoscale => {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
                return ApiError::new(
                    p,
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "Request body too large",
                )
                .into_response();
            };
            let signed = SignedParts {
                method: &parts.method,
                path: parts.uri.path(),
                query: parts.uri.query(),
                body: &bytes,
            };
            let result = auth::exoscale(&sim.config, &signed, &parts.headers, Utc::now().timestamp());
            (Request::from_parts(parts, Body::from(bytes)), result)
        }
        Provider::Cloudflare => {
            let result = auth::cloudflare(&sim.config, req.headers());
            (req, result)
        }
        _ => {
            let result = auth::bearer(&sim.config, p, req.headers());
            (req, result)
        }
    };
    let credential = match credential {
        Ok(c) => c,
        Err(e) => {
            sim.counters().of(p).auth_failures += 1;
            return e.into_response();
        }
    };
    sim.counters().credential(p, &credential).requests += 1;
    let now = Instant::now();
    let storm = sim.faults().storm_hit(p, now);
    if let Some(retry_after) = storm {
        sim.counters().credential(p, &credential).rate_limited += 1;
        return ApiError::rate_limited(p, retry_after).into_response();
    }
    let limits = sim.config.rate_limits_of(p);
    let creates = is_machine_create(p, req.method(), req.uri().path());
    let checked = {
        let mut limiter = sim.limiter();
        limiter
            .check(p, &credential, false, &limits.general, now)
            .and_then(|general| {
                if creates {
                    limiter
                        .check(p, &credential, true, &limits.creates, now)
                        .map(|c| c.or(general))
                } else {
                    Ok(general)
                }
            })
    };
    let standing = match checked {
        Ok(s) => s,
        Err(retry_after) => {
            sim.counters().credential(p, &credential).rate_limited += 1;
            return ApiError::rate_limited(p, retry_after).into_response();
        }
    };
    let injected = sim.faults().take_server_error(p);
    if let Some(status) = injected {
        sim.counters().credential(p, &credential).server_errors += 1;
        return ApiError::server(p, status, "Internal server error (simulated)").into_response();
    }
    req.extensions_mut().insert(Caller { credential, zone });
    let mut response = next.run(req).await;
    if let Some(s) = standing {
        add_rate_headers(p, &mut response, s);
    }
    response
}

/// Keeps a copy of `req` in the simulator's record, and gives it back whole.
async fn recorded(sim: &Sim, p: Provider, req: Request) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return Err(ApiError::new(
            p,
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large",
        )
        .into_response());
    };
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let body = (!bytes.is_empty()).then(|| {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    });
    sim.record(crate::RecordedRequest {
        provider: p,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        body,
    });
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The Exoscale zone a request is for: the path prefix (`/ch-gva-2/v2/…`), else the host
/// (`api-ch-gva-2.…`), else the default zone. `None` for an unknown zone prefix.
fn exoscale_zone(sim: &Sim, req: &Request) -> Option<String> {
    let path = req.uri().path();
    if path == "/v2" || path.starts_with("/v2/") {
        let from_host = req
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("api-"))
            .and_then(|h| h.split(['.', ':']).next())
            .filter(|z| catalog::region(Provider::Exoscale, z).is_some());
        return Some(
            from_host
                .map(str::to_owned)
                .unwrap_or_else(|| sim.config.exoscale_default_zone.clone()),
        );
    }
    let first = path.trim_start_matches('/').split('/').next()?;
    catalog::region(Provider::Exoscale, first).map(|r| r.id.to_owned())
}

/// Whether a request creates a machine (the `creates` rate limits apply).
fn is_machine_create(p: Provider, method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    let path = path.trim_end_matches('/');
    match p {
        Provider::Linode => path.ends_with("/linode/instances"),
        Provider::DigitalOcean => path.ends_with("/droplets"),
        Provider::Vultr => path.ends_with("/instances"),
        Provider::Exoscale => path.ends_with("/instance"),
        Provider::Cloudflare => false,
    }
}

fn add_rate_headers(p: Provider, response: &mut Response, s: Standing) {
    let names: [&'static str; 3] = match p {
        Provider::Linode => ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"],
        Provider::DigitalOcean => ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"],
        _ => return,
    };
    let reset = Utc::now()
        .timestamp()
        .saturating_add(i64::try_from(s.reset_secs).unwrap_or(0));
    let values = [s.limit.to_string(), s.remaining.to_string(), reset.to_string()];
    for (name, value) in names.into_iter().zip(values) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
}
