//! VPCs and firewall groups.

use async_trait::async_trait;
use flotilla_cloud::{CloudError, Firewall, FirewallRule, Marks, Network, Result, Vpc, VpcRequest};
use reqwest::Method;
use serde_json::json;

use crate::client::{VultrCloud, gone_as_not_found, is_gone, segment};
use crate::rules::{RuleSpec, group, read, specs};
use crate::wire::{
    FirewallGroup, FirewallGroupEnvelope, FirewallGroupPage, InstanceEnvelope, InstancePage, RuleEnvelope,
    RulePage, VpcEnvelope, VpcPage, VultrRule,
};

impl VultrCloud {
    async fn group_rules(&self, id: &str) -> Result<Vec<VultrRule>> {
        self.get_all::<RulePage>(&format!("firewalls/{id}/rules"), &[])
            .await
            .map_err(|e| gone_as_not_found(e, &format!("firewall group {id}")))
    }

    async fn add_rule(&self, id: &str, spec: &RuleSpec) -> Result<VultrRule> {
        let created: RuleEnvelope = self
            .api
            .send(Method::POST, &format!("firewalls/{id}/rules"), &spec.to_json())
            .await?;
        Ok(created.firewall_rule)
    }

    /// The ids of the instances a group applies to. Vultr cannot filter instances by group, so they are all
    /// listed, and only when the group says it has any.
    async fn group_instances(&self, group: &FirewallGroup) -> Result<Vec<String>> {
        if group.instance_count == Some(0) {
            return Ok(Vec::new());
        }
        let instances = self.get_all::<InstancePage>("instances", &[]).await?;
        Ok(instances
            .into_iter()
            .filter(|i| i.firewall_group_id.as_deref() == Some(group.id.as_str()))
            .map(|i| i.id)
            .collect())
    }
}

#[async_trait]
impl Network for VultrCloud {
    /// `GET /vpcs`, every cursor; the name is the description.
    async fn find_vpc(&self, region: &str, name: &str) -> Result<Option<Vpc>> {
        let vpcs = self.get_all::<VpcPage>("vpcs", &[]).await?;
        Ok(vpcs
            .into_iter()
            .find(|v| v.description == name && v.region == region)
            .map(Vpc::from))
    }

    async fn create_vpc(&self, request: &VpcRequest) -> Result<Vpc> {
        let body = json!({
            "region": request.region,
            "description": request.name,
            "v4_subnet": request.cidr.network().to_string(),
            "v4_subnet_mask": request.cidr.prefix_len(),
        });
        let created: VpcEnvelope = self.api.send(Method::POST, "vpcs", &body).await?;
        Ok(created.vpc.into())
    }

    /// `DELETE /vpcs/{id}` → 204, on the same `/vpcs` API [`Network::create_vpc`] and [`Network::find_vpc`]
    /// use (not VPC 2.0's `/vpc2`). A VPC already gone — 404, or Vultr's 400 "invalid … ID" — is
    /// [`CloudError::NotFound`]. Vultr refuses a VPC that instances are still attached to with another 400;
    /// the request has no body to be invalid, so that is a [`CloudError::Conflict`] with Vultr's message.
    async fn delete_vpc(&self, id: &str) -> Result<()> {
        let id = segment("vpc id", id)?;
        // Not `self.delete`: a VPC already gone is an error here, as the trait says.
        self.api
            .request(Method::DELETE, &format!("vpcs/{id}"), &[], None, &[])
            .await
            .map(drop)
            .map_err(|e| match gone_as_not_found(e, &format!("VPC {id}")) {
                CloudError::Invalid {
                    provider, message, ..
                } => CloudError::Conflict { provider, message },
                other => other,
            })
    }

    /// The group whose description is `name`, with its rules and the instances it applies to.
    async fn find_firewall(&self, name: &str) -> Result<Option<Firewall>> {
        let groups = self.get_all::<FirewallGroupPage>("firewalls", &[]).await?;
        let Some(found) = groups.into_iter().find(|g| g.description == name) else {
            return Ok(None);
        };
        let id = segment("firewall group id", &found.id)?;
        let rules = group(self.group_rules(id).await?.iter().filter_map(read));
        let machine_ids = self.group_instances(&found).await?;
        Ok(Some(Firewall {
            id: found.id.clone(),
            name: found.description,
            rules,
            machine_ids,
        }))
    }

    /// One listing of the groups, the rules of each group found, and one listing of the instances (when a
    /// group found has any): not all three per name.
    async fn find_firewalls(&self, names: &[String]) -> Result<Vec<Option<Firewall>>> {
        let groups = self.get_all::<FirewallGroupPage>("firewalls", &[]).await?;
        let found: Vec<Option<&FirewallGroup>> = names
            .iter()
            .map(|name| groups.iter().find(|g| &g.description == name))
            .collect();
        let instances = if found.iter().flatten().any(|g| g.instance_count != Some(0)) {
            self.get_all::<InstancePage>("instances", &[]).await?
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(names.len());
        for entry in found {
            let Some(g) = entry else {
                out.push(None);
                continue;
            };
            let id = segment("firewall group id", &g.id)?;
            let rules = group(self.group_rules(id).await?.iter().filter_map(read));
            let machine_ids = instances
                .iter()
                .filter(|i| i.firewall_group_id.as_deref() == Some(g.id.as_str()))
                .map(|i| i.id.clone())
                .collect();
            out.push(Some(Firewall {
                id: g.id.clone(),
                name: g.description.clone(),
                rules,
                machine_ids,
            }));
        }
        Ok(out)
    }

    /// `POST /firewalls {description}`, then one rule per source. Groups have no tags: `marks` are not
    /// stored, the group is found again by name. If a rule fails the group is left for
    /// [`Network::replace_firewall_rules`] to complete.
    async fn create_firewall(&self, name: &str, rules: &[FirewallRule], _marks: &Marks) -> Result<Firewall> {
        let created: FirewallGroupEnvelope = self
            .api
            .send(Method::POST, "firewalls", &json!({"description": name}))
            .await?;
        let fw = created.firewall_group;
        let id = segment("firewall group id", &fw.id)?;
        let mut added = Vec::new();
        for spec in specs(rules) {
            added.push(self.add_rule(id, &spec).await?);
        }
        Ok(Firewall {
            id: fw.id.clone(),
            name: fw.description,
            rules: group(added.iter().filter_map(read)),
            machine_ids: Vec::new(),
        })
    }

    /// Makes the group's rules exactly `rules`: reads the current rules, adds the missing ones, then
    /// deletes those not wanted (and any Flotilla cannot express). Rules are compared as Vultr compares
    /// them — protocol, ports, source; not notes — and rules already right are left alone, so the traffic
    /// they admit is never interrupted.
    async fn replace_firewall_rules(&self, firewall_id: &str, rules: &[FirewallRule]) -> Result<()> {
        let id = segment("firewall group id", firewall_id)?;
        let wanted = specs(rules);
        let mut present: Vec<RuleSpec> = Vec::new();
        let mut stale = Vec::new();
        for rule in self.group_rules(id).await? {
            match read(&rule) {
                Some(spec)
                    if wanted.iter().any(|w| w.key() == spec.key())
                        && !present.iter().any(|p| p.key() == spec.key()) =>
                {
                    present.push(spec)
                }
                _ => stale.push(rule.id),
            }
        }
        for spec in wanted
            .iter()
            .filter(|s| !present.iter().any(|p| p.key() == s.key()))
        {
            self.add_rule(id, spec).await?;
        }
        for rule_id in stale {
            self.delete(&format!("firewalls/{id}/rules/{rule_id}")).await?;
        }
        Ok(())
    }

    /// `PATCH /instances/{id} {firewall_group_id}` (an instance is in at most one group).
    async fn attach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()> {
        let group = segment("firewall group id", firewall_id)?;
        let instance = segment("instance id", machine_id)?;
        self.call(
            Method::PATCH,
            &format!("instances/{instance}"),
            &json!({"firewall_group_id": group}),
        )
        .await
        .map_err(|e| gone_as_not_found(e, &format!("instance {instance}")))?;
        Ok(())
    }

    /// Clears the instance's group with `PATCH {firewall_group_id: ""}`, only when it is this group.
    async fn detach_firewall(&self, firewall_id: &str, machine_id: &str) -> Result<()> {
        let instance = segment("instance id", machine_id)?;
        let current: InstanceEnvelope = match self.api.get(&format!("instances/{instance}"), &[]).await {
            Ok(found) => found,
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        if current.instance.firewall_group_id.as_deref() != Some(firewall_id) {
            return Ok(());
        }
        match self
            .call(
                Method::PATCH,
                &format!("instances/{instance}"),
                &json!({"firewall_group_id": ""}),
            )
            .await
        {
            Err(e) if !is_gone(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// `DELETE /v2/firewalls/{firewall-group-id}`; a group already gone (404, or Vultr's 400 "invalid …
    /// ID") succeeds.
    async fn delete_firewall(&self, firewall_id: &str) -> Result<()> {
        let id = segment("firewall group id", firewall_id)?;
        self.delete(&format!("firewalls/{id}")).await
    }
}
