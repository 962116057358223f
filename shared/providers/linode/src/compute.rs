//! [`Compute`] on Linode instances.
//!
//! Addresses: the public IPv4 comes from the instance's `ipv4` list (its first non-private address). The
//! private address is the VPC address when the instance has one, else its Linode private address; the VPC
//! address is only reported by `GET /linode/instances/{id}/ips`, which [`Compute::get_machine`] calls. So
//! that a list costs the same few calls whatever the fleet size, [`Compute::list_machines`] does not: its
//! machines carry a private address only when the instance's `ipv4` list holds a private one (a Linode
//! private IP, never a VPC address), and `None` otherwise.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use flotilla_cloud::{
    CloudError, Compute, Machine, MachineRequest, MachineState, MarkFilter, Marks, ProviderKind, Result,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{LinodeCloud, numeric_id};
use crate::password::root_password;
use crate::wire::{Instance, InstanceIps, Vpc};

const INSTANCES: &str = "linode/instances";

#[async_trait]
impl Compute for LinodeCloud {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Linode
    }

    async fn create_machine(&self, request: &MachineRequest) -> Result<Machine> {
        let body = self.create_body(request).await?;
        let instance: Instance = self.creates.send(Method::POST, INSTANCES, &body).await?;
        Ok(to_machine(instance, None))
    }

    async fn get_machine(&self, id: &str) -> Result<Machine> {
        let id = numeric_id("id", id)?;
        let instance: Instance = self.get(&format!("{INSTANCES}/{id}")).await?;
        // A machine on its way out has no addresses worth a second call.
        if status(&instance.status) == MachineState::Deleting {
            return Ok(to_machine(instance, None));
        }
        let ips: InstanceIps = self.get(&format!("{INSTANCES}/{id}/ips")).await?;
        Ok(to_machine(instance, Some(ips)))
    }

    async fn list_machines(&self, filter: &MarkFilter) -> Result<Vec<Machine>> {
        // Every tag of the filter, server-side: a region's list costs one call per 500 of its own machines.
        let tags: Vec<Value> = filter
            .server_side_tags()
            .into_iter()
            .map(|t| json!({ "tags": t }))
            .collect();
        let server_side = match <[Value; 1]>::try_from(tags) {
            Ok([one]) => one,
            Err(all) => json!({ "+and": all }),
        };
        let instances: Vec<Instance> = self.list_all(INSTANCES, Some(&server_side)).await?;
        Ok(instances
            .into_iter()
            .filter(|i| filter.matches(&i.tags))
            .map(|i| to_machine(i, None))
            .collect())
    }

    async fn delete_machine(&self, id: &str) -> Result<()> {
        let id = numeric_id("id", id)?;
        self.api.delete(&format!("{INSTANCES}/{id}")).await
    }
}

impl LinodeCloud {
    /// The body of `POST /linode/instances`. Holds the root password: never log or keep it.
    async fn create_body(&self, request: &MachineRequest) -> Result<Value> {
        let mut body = json!({
            "label": request.name,
            "region": request.region,
            "type": request.size,
            "image": request.image,
            "tags": request.marks.to_tags(),
            "root_pass": root_password(),
        });
        if !request.ssh_keys.is_empty() {
            body["authorized_keys"] = json!(request.ssh_keys);
        }
        if let Some(subnet) = self
            .subnet_for(request.vpc_id.as_deref(), request.subnet_id.as_deref())
            .await?
        {
            body["interfaces"] = json!([
                { "purpose": "public" },
                { "purpose": "vpc", "subnet_id": subnet, "ipv4": { "nat_1_1": "any" } },
            ]);
        }
        if let Some(firewall) = &request.firewall_id {
            body["firewall_id"] = json!(numeric_id("firewall_id", firewall)?);
        }
        if let Some(user_data) = &request.user_data {
            body["metadata"] = json!({
                "user_data": base64::engine::general_purpose::STANDARD.encode(user_data),
            });
        }
        Ok(body)
    }

    /// The subnet to attach: `subnet_id`, else the first subnet of VPC `vpc_id`, else none.
    pub(crate) async fn subnet_for(
        &self,
        vpc_id: Option<&str>,
        subnet_id: Option<&str>,
    ) -> Result<Option<u64>> {
        if let Some(subnet) = subnet_id {
            return numeric_id("subnet_id", subnet).map(Some);
        }
        let Some(vpc) = vpc_id else {
            return Ok(None);
        };
        let vpc: Vpc = self.get(&format!("vpcs/{}", numeric_id("vpc_id", vpc)?)).await?;
        match vpc.subnets.first() {
            Some(subnet) => Ok(Some(subnet.id)),
            None => Err(CloudError::Invalid {
                provider: ProviderKind::Linode,
                field: Some("subnet_id".into()),
                message: format!("VPC {} has no subnet to attach to", vpc.id),
            }),
        }
    }
}

/// Linode's status in neutral terms.
pub(crate) fn status(status: &str) -> MachineState {
    match status {
        "provisioning" | "booting" => MachineState::Provisioning,
        "running" => MachineState::Running,
        "offline" | "shutting_down" | "stopped" => MachineState::Stopped,
        "deleting" => MachineState::Deleting,
        other => MachineState::Other(other.to_owned()),
    }
}

/// An instance (and, when fetched, its addresses) as a [`Machine`].
pub(crate) fn to_machine(instance: Instance, ips: Option<InstanceIps>) -> Machine {
    let listed: Vec<Ipv4Addr> = instance.ipv4.iter().filter_map(|a| a.parse().ok()).collect();
    let mut public_ipv4 = listed.iter().copied().find(|a| is_public(*a));
    let mut private_ipv4 = listed.iter().copied().find(|a| !is_public(*a));
    if let Some(ips) = ips {
        let parse = |list: &[crate::wire::IpAddress]| {
            list.iter()
                .filter_map(|a| a.address.as_deref())
                .find_map(|a| a.parse::<Ipv4Addr>().ok())
        };
        public_ipv4 = public_ipv4.or_else(|| parse(&ips.ipv4.public));
        private_ipv4 = parse(&ips.ipv4.vpc)
            .or_else(|| parse(&ips.ipv4.private))
            .or(private_ipv4);
    }
    Machine {
        id: instance.id.to_string(),
        name: instance.label,
        region: instance.region,
        size: instance.plan,
        state: status(&instance.status),
        public_ipv4,
        private_ipv4,
        marks: Marks::from_tags(&instance.tags),
        tags: instance.tags,
        created_at: instance.created.as_deref().and_then(parse_time),
    }
}

/// Not private, loopback, link-local, shared (CGNAT) or unspecified.
fn is_public(a: Ipv4Addr) -> bool {
    let [first, second, ..] = a.octets();
    let shared = first == 100 && (second & 0xc0) == 64;
    !(a.is_private() || a.is_loopback() || a.is_link_local() || a.is_unspecified() || shared)
}

/// Linode's `2018-01-02T03:04:05` (UTC, no zone), or RFC 3339.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .map(|t| t.and_utc())
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map() {
        assert_eq!(status("booting"), MachineState::Provisioning);
        assert_eq!(status("running"), MachineState::Running);
        assert_eq!(status("shutting_down"), MachineState::Stopped);
        assert_eq!(status("deleting"), MachineState::Deleting);
        assert_eq!(status("migrating"), MachineState::Other("migrating".into()));
    }

    #[test]
    fn public_means_routable() {
        assert!(is_public(Ipv4Addr::new(192, 0, 2, 0)));
        assert!(!is_public(Ipv4Addr::new(192, 168, 130, 4)));
        assert!(!is_public(Ipv4Addr::new(100, 64, 0, 1)));
        assert!(is_public(Ipv4Addr::new(100, 128, 0, 1)));
    }

    #[test]
    fn times_parse() {
        assert_eq!(
            parse_time("2018-01-02T03:04:05").map(|t| t.to_rfc3339()),
            Some("2018-01-02T03:04:05+00:00".into())
        );
        assert!(parse_time("2018-01-02T03:04:05Z").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
