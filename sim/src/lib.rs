//! A faithful local cloud for tests and development: one process serving the HTTP APIs of Linode,
//! DigitalOcean, Vultr, Exoscale and Cloudflare (the subset Flotilla uses), each on its own port, with
//! the providers' paths, status codes, field names, pagination, error bodies and authentication, plus
//! S3 endpoints per provider region.
//!
//! - **Machines are real enough to test against**: each gets its own loopback public IP (127.10.x.y),
//!   a private IP from its VPC, boots after a configurable delay, and then answers HTTP health checks
//!   on its public IP (`GET /health`, `/healthz` and `/` → 200 on [`SimConfig::health_port`]).
//! - **Auth like the providers'**: bearer tokens (Linode, DigitalOcean, Vultr, Cloudflare; Cloudflare
//!   also e-mail + key) and verified Exoscale `EXO2-HMAC-SHA256` signatures; others are refused with
//!   the provider's own error body.
//! - **The providers' real ids**: regions, sizes and images such as Linode `gb-lon`/`g6-nanode-1`,
//!   DigitalOcean `ams3`/`s-1vcpu-1gb`, Vultr `ams`/`vc2-1c-1gb`, Exoscale `ch-gva-2`/`standard.tiny`;
//!   unknown ones are refused in the provider's error shape.
//! - **Faults** ([`Fault`]) through the admin API or at start-up: failing creates, rate-limit storms,
//!   latency, 5xx bursts, unhealthy machines, whole regions down.
//! - **Rate limits** at each provider's published rate, per credential, with counters ([`Counters`]).
//! - **Persistence** (optional): a restarted simulator keeps its resources and re-opens its machines'
//!   addresses.
//!
//! The admin API ([`RunningSim::admin_url`], no authentication): `GET /health`; `GET /faults`;
//! `POST /faults` with one [`Fault`] or a list, e.g. `{"provider":"linode","kind":"fail_creates","count":2}`;
//! `DELETE /faults[?provider=linode]`; `GET /counters` ([`Counters`]); `DELETE /counters`;
//! `GET /machines` ([`MachineInfo`] for every machine).
//!
//! Exoscale is zonal: `RunningSim::exoscale_zone_url("de-fra-1")` is `http://127.0.0.1:PORT/de-fra-1/v2`
//! (the stand-in for `https://api-de-fra-1.exoscale.com/v2`); the bare `…/v2` serves
//! [`SimConfig::exoscale_default_zone`], or the zone named by a `Host: api-<zone>.…` header.
//!
//! ```no_run
//! # async fn demo() -> Result<(), flotilla_cloudsim::SimError> {
//! use flotilla_cloudsim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! println!("Linode API at {}", sim.linode_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod catalog;
mod config;
mod error;
mod faults;
mod filter;
mod gate;
mod health;
mod limits;
mod paging;
mod persist;
mod providers;
mod s3;
mod s3_etags;
mod server;
mod sim;
mod world;

pub use config::{
    CloudflareKey, Credentials, ExoscaleKey, Ports, Provider, RateLimits, RateRule, S3EndpointConfig,
    SimConfig, Token, defaults,
};
pub use error::SimError;
pub use faults::{Fault, FaultKind, FaultsView};
pub use limits::{Counters, CredentialCounters, ProviderCounters};
pub use s3::S3Endpoint;
pub use s3_etags::Tagged;
pub use server::{RunningSim, Simulator};
pub use sim::{MachineInfo, RecordedRequest};
