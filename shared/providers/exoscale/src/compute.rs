//! Compute instances.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use flotilla_cloud::{
    CloudError, Compute, Machine, MachineRequest, MachineState, MarkFilter, Marks, OWNER_TAG, ProviderKind,
    Result,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::wire::{Instance, InstanceList, InstanceTypeList, Lease, PrivateNetwork, TemplateList};
use crate::{Exoscale, P, is_uuid};

#[async_trait]
impl Compute for Exoscale {
    fn provider(&self) -> ProviderKind {
        P
    }

    async fn create_machine(&self, request: &MachineRequest) -> Result<Machine> {
        self.check_zone(&request.region)?;
        let instance_type = self.instance_type_id(&request.size).await?;
        let template = self.template_id(&request.image).await?;
        let body = create_body(request, &instance_type, &template, self.disk_size_gib);
        let id = self.mutate_for_id(Method::POST, "instance", &body).await?;
        if let Some(network) = &request.vpc_id {
            let attached = self
                .mutate(
                    Method::PUT,
                    &format!("private-network/{network}:attach"),
                    Some(&json!({ "instance": { "id": id } })),
                )
                .await;
            // The PUT is retried after a timeout; if an earlier attempt got through, the retry is refused
            // as a conflict. Attached is attached.
            if let Err(e) = attached {
                let on_it = matches!(e, CloudError::Conflict { .. })
                    && self
                        .instance(&id)
                        .await?
                        .private_networks
                        .iter()
                        .any(|n| n.id.as_deref() == Some(network.as_str()));
                if !on_it {
                    return Err(e);
                }
            }
        }
        self.get_machine(&id).await
    }

    async fn get_machine(&self, id: &str) -> Result<Machine> {
        let instance = self.instance(id).await?;
        let private_ips = match instance.private_networks.first().and_then(|n| n.id.as_deref()) {
            Some(network) => self.leases(&[network]).await?,
            None => HashMap::new(),
        };
        Ok(machine(&self.zone, instance, &private_ips))
    }

    async fn list_machines(&self, filter: &MarkFilter) -> Result<Vec<Machine>> {
        let list: InstanceList = self.api.get("instance", &[]).await?;
        let ours: Vec<Instance> = list
            .instances
            .into_iter()
            .filter(|i| filter.matches_labels(&i.labels))
            .collect();
        let mut networks: Vec<&str> = ours
            .iter()
            .flat_map(|i| i.private_networks.iter().filter_map(|n| n.id.as_deref()))
            .collect();
        networks.sort_unstable();
        networks.dedup();
        let private_ips = self.leases(&networks).await?;
        Ok(ours
            .into_iter()
            .map(|i| machine(&self.zone, i, &private_ips))
            .collect())
    }

    async fn delete_machine(&self, id: &str) -> Result<()> {
        self.delete_gone_ok(&format!("instance/{id}")).await
    }
}

impl Exoscale {
    /// `GET /instance/{id}`.
    pub(crate) async fn instance(&self, id: &str) -> Result<Instance> {
        self.api.get(&format!("instance/{id}"), &[]).await
    }

    /// Instance id → private address, from the leases of `networks` (one call per network; a network that
    /// is gone meanwhile has no leases).
    async fn leases(&self, networks: &[&str]) -> Result<HashMap<String, Ipv4Addr>> {
        let mut ips = HashMap::new();
        for network in networks {
            let net: PrivateNetwork = match self.api.get(&format!("private-network/{network}"), &[]).await {
                Ok(n) => n,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            add_leases(&mut ips, net.leases);
        }
        Ok(ips)
    }

    /// The instance type id of `size`: an id as given, or a `family.size` / `size` name (family `standard`)
    /// looked up once in `GET /instance-type`.
    async fn instance_type_id(&self, size: &str) -> Result<String> {
        if is_uuid(size) {
            return Ok(size.to_owned());
        }
        let key = if size.contains('.') {
            size.to_ascii_lowercase()
        } else {
            format!("standard.{}", size.to_ascii_lowercase())
        };
        if let Some(id) = self.lookups().instance_types.get(&key) {
            return Ok(id.clone());
        }
        let list: InstanceTypeList = self.api.get("instance-type", &[]).await?;
        let mut lookups = self.lookups();
        for t in list.instance_types {
            if let (Some(id), Some(family), Some(size)) = (t.id, t.family, t.size) {
                lookups.instance_types.insert(format!("{family}.{size}"), id);
            }
        }
        lookups
            .instance_types
            .get(&key)
            .cloned()
            .ok_or_else(|| CloudError::Invalid {
                provider: P,
                field: Some("size".into()),
                message: format!("no instance type {key:?} in zone {}", self.zone),
            })
    }

    /// The template id of `image`: an id as given, or a template name looked up once among the public
    /// templates, then the account's own (the newest when a name repeats).
    async fn template_id(&self, image: &str) -> Result<String> {
        if is_uuid(image) {
            return Ok(image.to_owned());
        }
        if let Some(id) = self.lookups().templates.get(image) {
            return Ok(id.clone());
        }
        for visibility in ["public", "private"] {
            let list: TemplateList = self
                .api
                .get("template", &[("visibility", visibility.to_owned())])
                .await?;
            let newest = list
                .templates
                .into_iter()
                .filter(|t| t.name == image)
                .max_by(|a, b| a.created_at.cmp(&b.created_at));
            if let Some(t) = newest {
                self.lookups().templates.insert(image.to_owned(), t.id.clone());
                return Ok(t.id);
            }
        }
        Err(CloudError::Invalid {
            provider: P,
            field: Some("image".into()),
            message: format!("no template named {image:?} in zone {}", self.zone),
        })
    }
}

/// Instance id → private address, from a private network's leases (the first address of each instance).
pub(crate) fn add_leases(ips: &mut HashMap<String, Ipv4Addr>, leases: Vec<Lease>) {
    for lease in leases {
        if let (Some(instance), Some(ip)) = (lease.instance_id, lease.ip.and_then(|ip| ip.parse().ok())) {
            ips.entry(instance).or_insert(ip);
        }
    }
}

/// An instance of `zone` as a [`Machine`], its private address from `private_ips`.
pub(crate) fn machine(zone: &str, i: Instance, private_ips: &HashMap<String, Ipv4Addr>) -> Machine {
    let size = i
        .instance_type
        .as_ref()
        .and_then(|t| match (&t.family, &t.size) {
            (Some(family), Some(size)) => Some(format!("{family}.{size}")),
            _ => t.id.clone(),
        })
        .unwrap_or_default();
    Machine {
        private_ipv4: private_ips.get(&i.id).copied(),
        public_ipv4: i.public_ip.as_deref().and_then(|ip| ip.parse().ok()),
        state: machine_state(i.state.as_deref().unwrap_or("")),
        region: zone.to_owned(),
        size,
        marks: Marks::from_labels(&i.labels),
        tags: labels_as_tags(&i.labels),
        created_at: i
            .created_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        id: i.id,
        name: i.name,
    }
}

/// The body of `POST /instance`.
fn create_body(request: &MachineRequest, instance_type: &str, template: &str, disk_size_gib: u32) -> Value {
    let mut body = json!({
        "name": request.name,
        "instance-type": { "id": instance_type },
        "template": { "id": template },
        "disk-size": disk_size_gib,
        "labels": request.marks.to_labels(),
        "public-ip-assignment": "inet4",
    });
    let Some(fields) = body.as_object_mut() else {
        return body;
    };
    if let Some(firewall) = &request.firewall_id {
        fields.insert("security-groups".into(), json!([{ "id": firewall }]));
    }
    // One key goes in `ssh-key` (what every API version takes); several need the newer `ssh-keys`.
    match request.ssh_keys.as_slice() {
        [] => {}
        [key] => {
            fields.insert("ssh-key".into(), json!({ "name": key }));
        }
        keys => {
            let names: Vec<Value> = keys.iter().map(|k| json!({ "name": k })).collect();
            fields.insert("ssh-keys".into(), Value::Array(names));
        }
    }
    if let Some(user_data) = &request.user_data {
        fields.insert("user-data".into(), json!(STANDARD.encode(user_data)));
    }
    body
}

/// Exoscale instance states in Flotilla's terms.
fn machine_state(state: &str) -> MachineState {
    match state {
        "starting" => MachineState::Provisioning,
        "running" => MachineState::Running,
        "stopping" | "stopped" => MachineState::Stopped,
        "destroying" | "destroyed" | "expunging" => MachineState::Deleting,
        other => MachineState::Other(other.to_owned()),
    }
}

/// Labels as tags: `key:value`, and the owner label as the bare owner tag (so [`MarkFilter::matches`] and
/// [`Marks::from_tags`] read them).
fn labels_as_tags(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels
        .iter()
        .map(|(k, v)| {
            if k == OWNER_TAG {
                k.clone()
            } else {
                format!("{k}:{v}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use flotilla_spec::Role;

    use super::*;

    fn request() -> MachineRequest {
        MachineRequest {
            name: "ws-1".into(),
            region: "ch-gva-2".into(),
            size: "tiny".into(),
            image: "Linux Ubuntu 24.04 LTS 64-bit".into(),
            vpc_id: None,
            subnet_id: None,
            firewall_id: Some("fw".into()),
            ssh_keys: vec!["build".into()],
            user_data: Some("#cloud-config\n".into()),
            marks: Marks {
                deployment: "d".into(),
                region: "ch-gva-2".into(),
                role: Some(Role::Webserver),
                resource_id: "r1".into(),
            },
        }
    }

    #[test]
    fn create_body_has_every_field_in_kebab_case() {
        let body = create_body(&request(), "it", "tpl", 50);
        assert_eq!(body["instance-type"]["id"], "it");
        assert_eq!(body["template"]["id"], "tpl");
        assert_eq!(body["disk-size"], 50);
        assert_eq!(body["labels"]["flotilla"], "true");
        assert_eq!(body["labels"]["fl-role"], "webserver");
        assert_eq!(body["security-groups"][0]["id"], "fw");
        assert_eq!(body["ssh-key"]["name"], "build");
        assert_eq!(body["user-data"], "I2Nsb3VkLWNvbmZpZwo=");
        assert_eq!(body["public-ip-assignment"], "inet4");
        let mut two = request();
        two.ssh_keys.push("ops".into());
        let body = create_body(&two, "it", "tpl", 50);
        assert_eq!(body["ssh-keys"][1]["name"], "ops");
        assert!(body.get("ssh-key").is_none());
    }

    #[test]
    fn states() {
        assert_eq!(machine_state("starting"), MachineState::Provisioning);
        assert_eq!(machine_state("running"), MachineState::Running);
        assert_eq!(machine_state("stopping"), MachineState::Stopped);
        assert_eq!(machine_state("destroying"), MachineState::Deleting);
        assert_eq!(
            machine_state("migrating"),
            MachineState::Other("migrating".into())
        );
    }
}
