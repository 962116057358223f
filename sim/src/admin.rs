//! The admin API (its own port, no authentication): faults, counters, machines.
//!
//! - `GET /health` → 200.
//! - `GET /faults` → the faults in force per provider.
//! - `POST /faults` with one fault or a list (see [`crate::Fault`]) → the faults in force.
//! - `DELETE /faults[?provider=linode]` → 204; every fault (of one provider) cleared.
//! - `GET /counters` → requests, 429s, injected errors and auth failures per provider and credential.
//! - `DELETE /counters` → 204; counters reset.
//! - `GET /machines` → every machine with its status, addresses, health URL and whether it answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::Provider;
use crate::faults::Fault;
use crate::limits::Counters;
use crate::sim::Sim;

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Fault),
    Many(Vec<Fault>),
}

/// The admin router.
pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/faults", get(faults).post(add_faults).delete(clear_faults))
        .route("/counters", get(counters).delete(reset_counters))
        .route("/machines", get(machines))
        .with_state(sim)
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

async fn faults(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.faults().view()).into_response()
}

async fn add_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let faults = match serde_json::from_slice::<OneOrMany>(&body) {
        Ok(OneOrMany::One(f)) => vec![f],
        Ok(OneOrMany::Many(fs)) => fs,
        Err(e) => return bad_request(format!("not a fault or a list of faults: {e}")),
    };
    let now = Instant::now();
    {
        let mut state = sim.faults();
        for f in &faults {
            tracing::info!(fault = ?f, "fault injected");
            state.add(f, now);
        }
    }
    sim.reconcile_health();
    Json(sim.faults().view()).into_response()
}

async fn clear_faults(State(sim): State<Arc<Sim>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let provider = match q.get("provider").map(|p| p.parse::<Provider>()).transpose() {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    sim.faults().clear(provider);
    sim.reconcile_health();
    StatusCode::NO_CONTENT.into_response()
}

async fn counters(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.counters().clone()).into_response()
}

async fn reset_counters(State(sim): State<Arc<Sim>>) -> Response {
    *sim.counters() = Counters::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn machines(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.machines()).into_response()
}
