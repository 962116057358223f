//! Flotilla's Linode (Akamai) adapter: the Linode API v4 behind `flotilla-cloud`'s provider-neutral traits.
//!
//! [`LinodeCloud`] implements
//! - [`Compute`](flotilla_cloud::Compute): instances (`/linode/instances`), created with our ownership tags, a
//!   random root password that never leaves the request body, optional VPC interface, Cloud Firewall and
//!   cloud-init user data;
//! - [`Network`](flotilla_cloud::Network): VPCs with one subnet (`/vpcs`) and Cloud Firewalls
//!   (`/networking/firewalls`, inbound DROP by default, outbound ACCEPT);
//! - [`ManagedDatabases`](flotilla_cloud::ManagedDatabases): MySQL and PostgreSQL managed databases
//!   (`/databases/{engine}/instances`), created, found by label, deleted, allow-list replaced as a whole;
//! - [`Dns`](flotilla_cloud::Dns): Linode DNS Manager domains and records (`/domains/{id}/records`).
//!
//! Every request goes through [`flotilla_cloud::http::ApiClient`]: the base URL is configurable (the real API
//! or a simulator), the token is sent as a bearer token and never formatted, requests are rate limited at
//! Linode's published limits (about 1600 a minute, and 20 instance creates per 15 seconds), and failures map
//! onto [`CloudError`](flotilla_cloud::CloudError) (`400 "Linode busy."` and `503` with `X-Maintenance-Mode`
//! are retryable). Lists follow every page (`?page=&page_size=500`) and filter server-side with `X-Filter`
//! where Linode documents the field as filterable.

#[doc(hidden)]
pub mod answers;
mod client;
mod compute;
mod database;
mod dns;
mod error;
mod network;
mod password;
mod wire;

pub use client::{CREATE_RATE, DEFAULT_BASE_URL, GENERAL_RATE, LinodeCloud, LinodeConfig};
