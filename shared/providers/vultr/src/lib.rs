//! Flotilla's Vultr adapter.
//!
//! [`VultrCloud`] drives the Vultr API v2 (or the local simulator, through [`VultrConfig::base_url`]) and
//! implements the provider-neutral traits of `flotilla-cloud`:
//!
//! - [`Compute`](flotilla_cloud::Compute): instances (`/instances`), listed by our deployment tag
//!   server-side (`?tag=`) and narrowed by [`MarkFilter::matches`](flotilla_cloud::MarkFilter::matches).
//!   An instance's `main_ip` is `0.0.0.0` until assigned, read as no address.
//! - [`Network`](flotilla_cloud::Network): VPCs (`/vpcs`, named by their description) and firewall groups
//!   (`/firewalls`, named by their description). A group holds one rule per source range; replacing the
//!   rules deletes the ones no longer wanted and adds the missing ones. A group is applied to an instance
//!   by setting the instance's `firewall_group_id`.
//! - [`ManagedDatabases`](flotilla_cloud::ManagedDatabases): managed databases (`/databases`), created, found
//!   by label and deleted, and their `trusted_ips`.
//! - [`Dns`](flotilla_cloud::Dns): domains and records (`/domains/{domain}/records`); record names are
//!   relative to the zone on the wire (`""` for the apex) and fully qualified in Flotilla.
//!
//! Every request goes through [`flotilla_cloud::http::ApiClient`]: bearer token, 30 requests a second,
//! retries of rate-limited and temporary failures. Lists follow every cursor (`meta.links.next`); deleting
//! something already gone succeeds (Vultr has answered `400 "invalid instance ID"` for deleted resources as
//! well as 404). The API key never appears in logs, `Debug` output or errors.
//!
//! Ownership: instances carry [`Marks::to_tags`](flotilla_cloud::Marks::to_tags). Firewall groups and
//! VPCs have only a description, so they are found by name.

#[doc(hidden)]
pub mod answers;
mod client;
mod compute;
mod databases;
mod dns;
mod network;
mod rules;
mod wire;

pub use client::{DEFAULT_BASE_URL, DEFAULT_RATE, VultrCloud, VultrConfig};
