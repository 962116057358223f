//! Instances.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flotilla_cloud::{Compute, Machine, MachineRequest, MarkFilter, ProviderKind, Result};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{PROVIDER, VultrCloud, gone_as_not_found, segment};
use crate::wire::{InstanceEnvelope, InstancePage};

#[async_trait]
impl Compute for VultrCloud {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    /// `POST /instances`. The image is an OS id when it is a number, a snapshot id when it is a UUID and
    /// an application image id otherwise; the label and hostname are the name; user data goes base64.
    async fn create_machine(&self, request: &MachineRequest) -> Result<Machine> {
        let mut body = Map::new();
        body.insert("region".into(), json!(request.region));
        body.insert("plan".into(), json!(request.size));
        let (image_field, image_value) = image(&request.image);
        body.insert(image_field.into(), image_value);
        body.insert("label".into(), json!(request.name));
        body.insert("hostname".into(), json!(request.name));
        body.insert("tags".into(), json!(request.marks.to_tags()));
        if !request.ssh_keys.is_empty() {
            body.insert("sshkey_id".into(), json!(request.ssh_keys));
        }
        if let Some(user_data) = &request.user_data {
            body.insert("user_data".into(), json!(BASE64.encode(user_data)));
        }
        if let Some(firewall) = &request.firewall_id {
            body.insert("firewall_group_id".into(), json!(firewall));
        }
        if let Some(vpc) = &request.vpc_id {
            body.insert("attach_vpc".into(), json!([vpc]));
        }
        let created: InstanceEnvelope = self
            .api
            .send(Method::POST, "instances", &Value::Object(body))
            .await?;
        Ok(created.instance.into_machine())
    }

    async fn get_machine(&self, id: &str) -> Result<Machine> {
        let id = segment("instance id", id)?;
        let found: InstanceEnvelope = self
            .api
            .get(&format!("instances/{id}"), &[])
            .await
            .map_err(|e| gone_as_not_found(e, &format!("instance {id}")))?;
        Ok(found.instance.into_machine())
    }

    /// `GET /instances`, every cursor, narrowed to the filter here: Vultr's spec marks the `tag` query
    /// parameter deprecated, and has no other tag filter.
    async fn list_machines(&self, filter: &MarkFilter) -> Result<Vec<Machine>> {
        let instances = self.get_all::<InstancePage>("instances", &[]).await?;
        Ok(instances
            .into_iter()
            .filter(|i| filter.matches(i.tags.as_deref().unwrap_or_default()))
            .map(|i| i.into_machine())
            .collect())
    }

    async fn delete_machine(&self, id: &str) -> Result<()> {
        let id = segment("instance id", id)?;
        self.delete(&format!("instances/{id}")).await
    }
}

/// Which create field the image goes in, and its value.
fn image(image: &str) -> (&'static str, Value) {
    if let Ok(os) = image.parse::<u64>() {
        ("os_id", json!(os))
    } else if is_uuid(image) {
        ("snapshot_id", json!(image))
    } else {
        ("image_id", json!(image))
    }
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_go_in_the_right_field() {
        assert_eq!(image("215"), ("os_id", json!(215)));
        assert_eq!(
            image("cb676a46-66fd-4dfb-b839-443f2e6c0b60"),
            ("snapshot_id", json!("cb676a46-66fd-4dfb-b839-443f2e6c0b60"))
        );
        assert_eq!(image("docker"), ("image_id", json!("docker")));
    }
}
