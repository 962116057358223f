//! VPCs and Cloud Firewalls.

use async_trait::async_trait;
use flotilla_cloud::{CloudError, Firewall, FirewallRule, Marks, Network, Result, Vpc, VpcRequest};
use reqwest::Method;
use serde_json::json;

use crate::client::{DigitalOceanCloud, PER_PAGE, numeric_id, segment};
use crate::rules::{inbound_json, inbound_rules, outbound_allow_all};
use crate::wire::{DoFirewall, FirewallEnvelope, FirewallPage, VpcEnvelope, VpcMembers, VpcPage};

impl DigitalOceanCloud {
    /// Why the VPC `id` cannot be deleted — it is the region's default, or has members — or `None` when
    /// neither holds or the lookup fails (the caller then keeps the refusal it had).
    async fn vpc_in_use(&self, id: &str) -> Option<String> {
        let vpc: VpcEnvelope = self.api.get(&format!("vpcs/{id}"), &[]).await.ok()?;
        if vpc.vpc.default {
            return Some(format!(
                "{} is the default VPC of {}",
                vpc.vpc.name, vpc.vpc.region
            ));
        }
        let members: VpcMembers = self
            .api
            .get(&format!("vpcs/{id}/members"), &[("per_page", "1".to_owned())])
            .await
            .ok()?;
        members
            .members
            .first()
            .map(|m| format!("{} has members, {} among them", vpc.vpc.name, m.urn))
    }

    async fn get_firewall(&self, id: &str) -> Result<DoFirewall> {
        let id = segment("firewall id", id)?;
        let found: FirewallEnvelope = self.api.get(&format!("firewalls/{id}"), &[]).await?;
        Ok(found.firewall)
    }
}

pub(crate) fn to_firewall(f: DoFirewall) -> Firewall {
    Firewall {
        rules: inbound_rules(f.inbound_rules.as_deref().unwrap_or_default()),
        machine_ids: f
            .droplet_ids
            .unwrap_or_default()
            .iter()
            .map(u64::to_string)
            .collect(),
        id: f.id,
        name: f.name,
    }
}

#[async_trait]
impl Network for DigitalOceanCloud {
    async fn find_vpc(&self, region: &str, name: &str) -> Result<Option<Vpc>> {
        let vpcs = self
            .get_all::<VpcPage>("vpcs", &[("per_page", PER_PAGE.to_owned())])
            .await?;
        Ok(vpcs
            .into_iter()
            .find(|v| v.name == name && v.region == region)
            .map(Vpc::from))
    }

    async fn create_vpc(&self, request: &VpcRequest) -> Result<Vpc> {
        let body = json!({
            "name": request.name,
            "region": request.region,
            "ip_range": request.cidr.to_string(),
        });
        match self.api.send::<VpcEnvelope>(Method::POST, "vpcs", &body).await {
            Ok(created) => Ok(created.vpc.into()),
            // DigitalOcean refuses a name in use in the region as unprocessable: a conflict when that VPC is
            // there (created meanwhile).
            Err(e) => Err(e
                .conflict_if_found(self.find_vpc(&request.region, &request.name), |message| {
                    format!(
                        "a VPC named {:?} exists already in {}: {message}",
                        request.name, request.region
                    )
                })
                .await),
        }
    }

    /// `DELETE /vpcs/{id}` → 204. DigitalOcean refuses a VPC that still has members (droplets, database
    /// clusters …) and a region's default VPC. Its answers today are 409 `Can not delete VPC with members`, a
    /// [`CloudError::Conflict`] as it stands; its specification documents 403 for both refusals, which would
    /// read as an authorisation failure, so a 403 is checked against the VPC — a default one, or one with
    /// members, makes it a conflict with DigitalOcean's message — and stays [`CloudError::Auth`] otherwise
    /// (a token without `vpc:delete`).
    async fn delete_vpc(&self, id: &str) -> Result<()> {
        let id = segment("vpc id", id)?;
        // Not `api.delete`: a VPC already gone is an error here, as the trait says.
        match self
            .api
            .request(Method::DELETE, &format!("vpcs/{id}"), &[], None, &[])
            .await
        {
            Ok(_) => Ok(()),
            Err(CloudError::Auth { provider, message }) => match self.vpc_in_use(id).await {
                Some(why) => Err(CloudError::Conflict {
                    provider,
                    message: format!("{message} ({why})"),
                }),
                None => Err(CloudError::Auth { provider, message }),
            },
            Err(e) => Err(e),
        }
    }

    async fn find_firewall(&self, name: &str) -> Result<Option<Firewall>> {
        let firewalls = self
            .get_all::<FirewallPage>("firewalls", &[("per_page", PER_PAGE.to_owned())])
            .await?;
        Ok(firewalls.into_iter().find(|f| f.name == name).map(to_firewall))
    }

    /// One listing for all (each firewall comes with its rules and droplets).
    async fn find_firewalls(&self, names: &[String]) -> Result<Vec<Option<Firewall>>> {
        let firewalls = self
            .get_all::<FirewallPage>("firewalls", &[("per_page", PER_PAGE.to_owned())])
            .await?;
        let all: Vec<Firewall> = firewalls.into_iter().map(to_firewall).collect();
        Ok(names
            .iter()
            .map(|name| all.iter().find(|f| &f.name == name).cloned())
            .collect())
    }

    /// `POST /firewalls` with the inbound rules and open outbound. Not tagged (see the crate documentation):
    /// `marks` are not stored, the firewall is found again by name.
    async fn create_firewall(&self, name: &str, rules: &[FirewallRule], _marks: &Marks) -> Result<Firewall> {
        let body = json!({
            "name": name,
            "inbound_rules": inbound_json(rules),
            "outbound_rules": outbound_allow_all(),
            "droplet_ids": [],
            "tags": [],
        });
        let created: FirewallEnvelope = self.api.send(Method::POST, "firewalls", &body).await?;
        Ok(to_firewall(created.firewall))
    }

    /// `PUT /firewalls/{id}` is a full replace: the firewall is read first and its name, outbound rules,
    /// droplets and tags are sent back with the new inbound rules.
    async fn replace_firewall_rules(&self, firewall_id: &str, rules: &[FirewallRule]) -> Result<()> {
        let id = segment("firewall id", firewall_id)?;
        let current = self.get_firewall(id).await?;
        let body = json!({
            "name": current.name,
            "inbound_rules": inbound_json(rules),
            "outbound_rules": current.outbound_rules.unwrap_or_default(),
            "droplet_ids": current.droplet_ids.unwrap_or_default(),
            "tags": current.tags.unwrap_or_default(),
        });
        self.call(Method::PUT, &format!("firewalls/{id}"), &body).await?;
        Ok(())
    }

    async fn attach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()> {
        let id = segment("firewall id", firewall_id)?;
        let droplet = numeric_id("droplet id", machine_id)?;
        let current = self.get_firewall(id).await?;
        if current.droplet_ids.unwrap_or_default().contains(&droplet) {
            return Ok(());
        }
        let body = json!({"droplet_ids": [droplet]});
        self.call(Method::POST, &format!("firewalls/{id}/droplets"), &body)
            .await?;
        Ok(())
    }

    async fn detach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()> {
        let id = segment("firewall id", firewall_id)?;
        let droplet = numeric_id("droplet id", machine_id)?;
        let current = match self.get_firewall(id).await {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        if !current.droplet_ids.unwrap_or_default().contains(&droplet) {
            return Ok(());
        }
        let body = json!({"droplet_ids": [droplet]});
        match self
            .call(Method::DELETE, &format!("firewalls/{id}/droplets"), &body)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /v2/firewalls/{id}`: DigitalOcean deletes a firewall whatever Droplets it applies to.
    async fn delete_firewall(&self, firewall_id: &str) -> Result<()> {
        let id = segment("firewall id", firewall_id)?;
        self.api.delete(&format!("firewalls/{id}")).await
    }
}
