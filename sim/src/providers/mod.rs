//! The five provider APIs.

mod cloudflare;
mod common;
mod digitalocean;
mod exoscale;
mod linode;
mod vultr;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};

use crate::config::Provider;
use crate::error::ApiError;
use crate::gate::{Ctx, gate};
use crate::sim::Sim;

/// Adds what exists from the start (the configured Cloudflare zones, and the zones the DNS of every other
/// provider holds) to a new or restored world.
pub(crate) fn seed(world: &mut crate::world::World, config: &crate::config::SimConfig) {
    cloudflare::seed(world, &config.cloudflare_zones);
    for provider in [
        Provider::Linode,
        Provider::DigitalOcean,
        Provider::Vultr,
        Provider::Exoscale,
    ] {
        for name in &config.provider_zones {
            let name = name.trim().trim_end_matches('.').to_lowercase();
            if name.is_empty()
                || world
                    .zones
                    .iter()
                    .any(|z| z.provider == provider && z.name == name)
            {
                continue;
            }
            // Each provider's ids and fields, as its create call makes them.
            let mut extra = serde_json::Map::new();
            let id = match provider {
                Provider::Linode => {
                    extra.insert("type".into(), "master".into());
                    extra.insert("soa_email".into(), format!("admin@{name}").into());
                    world.next_id(provider).to_string()
                }
                Provider::Exoscale => crate::world::uuid(),
                _ => name.clone(),
            };
            world.zones.push(crate::world::Zone {
                provider,
                id,
                name,
                records: Vec::new(),
                tags: Vec::new(),
                created: chrono::Utc::now(),
                extra,
            });
        }
    }
}

/// The router of one provider's API: its routes under the provider's base path, behind the gate.
pub(crate) fn router(sim: Arc<Sim>, provider: Provider) -> Router {
    let ctx = Ctx { sim, provider };
    let app = match provider {
        Provider::Linode => {
            let api = linode::routes();
            Router::new().nest("/v4", api.clone()).nest("/v4beta", api)
        }
        Provider::DigitalOcean => Router::new().nest("/v2", digitalocean::routes()),
        Provider::Vultr => Router::new().nest("/v2", vultr::routes()),
        Provider::Exoscale => {
            let api = exoscale::routes();
            Router::new().nest("/v2", api.clone()).nest("/{zone}/v2", api)
        }
        Provider::Cloudflare => Router::new().nest("/client/v4", cloudflare::routes()),
    };
    app.fallback(not_found)
        .layer(from_fn_with_state(ctx.clone(), gate))
        .with_state(ctx)
}

/// A path the simulated API has no route for: [`ApiError::no_route`].
async fn not_found(State(ctx): State<Ctx>) -> Response {
    ApiError::no_route(ctx.provider).into_response()
}
