//! Flotilla's DigitalOcean adapter.
//!
//! [`DigitalOceanCloud`] drives the DigitalOcean API v2 (or the local simulator, through
//! [`DigitalOceanConfig::base_url`]) and implements the provider-neutral traits of `flotilla-cloud`:
//!
//! - [`Compute`](flotilla_cloud::Compute): droplets (`/droplets`), listed by our deployment tag
//!   server-side (`?tag_name=`) and narrowed by [`MarkFilter::matches`](flotilla_cloud::MarkFilter::matches).
//!   A droplet has no addresses right after create; they appear on a later read.
//! - [`Network`](flotilla_cloud::Network): VPCs (`/vpcs`) and Cloud Firewalls (`/firewalls`). A firewall
//!   update is a full replace (`PUT`), so replacing the inbound rules re-sends the name, the outbound rules,
//!   the droplets and the tags the firewall already has.
//! - [`ManagedDatabases`](flotilla_cloud::ManagedDatabases): database clusters (`/databases`), created,
//!   found by name and deleted, and their trusted sources (`/databases/{uuid}/firewall`, at most 100 rules).
//! - [`Dns`](flotilla_cloud::Dns): domains and their records (`/domains/{name}/records`); record names are
//!   relative to the zone on the wire (`@`, `www`) and fully qualified in Flotilla.
//!
//! Every request goes through [`flotilla_cloud::http::ApiClient`]: bearer token, 250 requests a minute,
//! retries of rate-limited and temporary failures. Lists follow every page (`links.pages.next`); deleting
//! something already gone succeeds. The API token never appears in logs, `Debug` output or errors.
//!
//! Ownership: droplets carry [`Marks::to_tags`](flotilla_cloud::Marks::to_tags). Cloud Firewalls are not
//! tagged: a firewall's tags are the droplets it applies to, so our mark tags would put it on every droplet
//! of the deployment. Firewalls and VPCs are found by name.

#[doc(hidden)]
pub mod answers;
mod client;
mod compute;
mod databases;
mod dns;
mod network;
mod rules;
mod wire;

pub use client::{DEFAULT_BASE_URL, DEFAULT_RATE, DigitalOceanCloud, DigitalOceanConfig, MAX_DATABASE_RULES};
