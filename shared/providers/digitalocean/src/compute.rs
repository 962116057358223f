//! Droplets.

use async_trait::async_trait;
use flotilla_cloud::{Compute, Machine, MachineRequest, MarkFilter, Network, ProviderKind, Result};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{DigitalOceanCloud, PER_PAGE, PROVIDER, numeric_id};
use crate::wire::{DropletEnvelope, DropletPage};

#[async_trait]
impl Compute for DigitalOceanCloud {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    /// `POST /droplets`. DigitalOcean takes no firewall at creation: when the request names one, the droplet
    /// is added to it right after; if that fails the error is returned (the droplet exists and is found again
    /// by its marks).
    async fn create_machine(&self, request: &MachineRequest) -> Result<Machine> {
        let mut body = json!({
            "name": request.name,
            "region": request.region,
            "size": request.size,
            "image": number_or_text(&request.image),
            "ssh_keys": request.ssh_keys.iter().map(|k| number_or_text(k)).collect::<Vec<_>>(),
            "tags": request.marks.to_tags(),
        });
        if let Some(obj) = body.as_object_mut() {
            if let Some(vpc) = &request.vpc_id {
                obj.insert("vpc_uuid".into(), Value::String(vpc.clone()));
            }
            if let Some(user_data) = &request.user_data {
                obj.insert("user_data".into(), Value::String(user_data.clone()));
            }
        }
        let created: DropletEnvelope = self.api.send(Method::POST, "droplets", &body).await?;
        let machine = created.droplet.into_machine();
        if let Some(firewall) = &request.firewall_id
            && let Err(e) = self.attach_firewall(firewall, &machine.id).await
        {
            tracing::warn!(
                provider = %PROVIDER, droplet = %machine.id, firewall = %firewall, error = %e,
                "droplet created but not added to its firewall"
            );
            return Err(e);
        }
        Ok(machine)
    }

    async fn get_machine(&self, id: &str) -> Result<Machine> {
        let id = numeric_id("droplet id", id)?;
        let found: DropletEnvelope = self.api.get(&format!("droplets/{id}"), &[]).await?;
        Ok(found.droplet.into_machine())
    }

    /// `GET /droplets?tag_name=<tag>`, every page, narrowed to the whole filter: the region's tag for a
    /// region's list (DigitalOcean filters on one tag), so it pages through that region's droplets only.
    async fn list_machines(&self, filter: &MarkFilter) -> Result<Vec<Machine>> {
        let query = [
            ("tag_name", filter.server_side_tag()),
            ("per_page", PER_PAGE.to_owned()),
        ];
        let droplets = self.get_all::<DropletPage>("droplets", &query).await?;
        Ok(droplets
            .into_iter()
            .filter(|d| filter.matches(&d.tags))
            .map(|d| d.into_machine())
            .collect())
    }

    async fn delete_machine(&self, id: &str) -> Result<()> {
        let id = numeric_id("droplet id", id)?;
        self.api.delete(&format!("droplets/{id}")).await
    }
}

/// DigitalOcean takes image and SSH key ids as numbers, slugs and fingerprints as text.
fn number_or_text(value: &str) -> Value {
    match value.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => Value::String(value.to_owned()),
    }
}
