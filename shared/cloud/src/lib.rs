//! What Flotilla asks of a cloud, independent of which cloud.
//!
//! - Traits by concern, not by provider ([`Compute`], [`Network`], [`ManagedDatabases`], [`Dns`]); each
//!   provider adapter (`flotilla-linode`, `flotilla-digitalocean`, `flotilla-vultr`, `flotilla-exoscale`,
//!   `flotilla-cloudflare`) implements the ones it supports.
//! - One error set ([`CloudError`]) every provider's failures map onto: not found, invalid (with the field),
//!   auth, rate limited (with retry-after), retryable (busy, 5xx, maintenance), conflict.
//! - Ownership [`Marks`]: every resource Flotilla creates carries its deployment, region, role and our
//!   resource id, so it is found again after a crash and never confused with the operator's own.
//! - [`http::ApiClient`]: the one HTTP client of every adapter — base URL per account (the real API or the
//!   simulator), request signing, a rate limiter per account at the provider's published limit — shared by
//!   every client of that account in the process ([`http::Limiters`]) — and retries that honour
//!   `Retry-After`.
//!
//! Invariants: deleting something already gone succeeds; list operations return every page; nothing here
//! logs or formats a credential, and error texts built from a provider's answer are redacted
//! (`flotilla-redact`).

mod error;
pub mod http;
mod limiters;
mod marks;
mod model;
pub mod names;
pub mod settings;
mod traits;

pub use error::{CloudError, Result};
pub use marks::{MarkFilter, Marks, OWNER_TAG};
pub use model::*;
pub use traits::{Compute, Dns, ManagedDatabases, Network};
