//! What every Flotilla service shares at run time.
//!
//! - [`config`]: layered configuration — built-in defaults, then a TOML file, then environment variables
//!   `FLOTILLA__SECTION__KEY` — and `--check-config` for systemd's `ExecStartPre`.
//! - [`logging`]: tracing, human-readable by default, JSON by option.
//! - [`admin`]: the admin HTTP endpoints `/live`, `/ready` (NATS connected and database reachable) and
//!   `/metrics` (Prometheus text).
//! - [`host`]: the service life cycle — connect, provision streams and the service's consumer, register on
//!   the NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`), serve, and on SIGTERM/SIGINT stop fetching,
//!   finish or hand back in-flight messages, and close; systemd readiness through sd-notify.
//!
//! - [`deployments`]: the per-deployment reconcile loop of a reacting service — the desired state, fleet
//!   and health views followed, one replica per deployment by lease, debounce, resync and back-off.
//!
//! A service's `main.rs` is one call: [`host::main`].

pub mod admin;
pub mod config;
pub mod deployments;
pub mod host;
pub mod logging;

pub use config::{ConfigError, NoSettings, ServiceConfig, ServiceSettings};
pub use host::{ApiFailure, Context, ServiceDef};
/// The metrics crate whose registry [`Context::register_metrics`] hands out (one version for every service).
pub use prometheus_client;
