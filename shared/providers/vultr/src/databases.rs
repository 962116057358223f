//! Managed databases' trusted IPs.

use async_trait::async_trait;
use flotilla_cloud::{ManagedDatabase, ManagedDatabases, Result};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::json;

use crate::client::{VultrCloud, gone_as_not_found, segment};
use crate::wire::DatabasePage;

#[async_trait]
impl ManagedDatabases for VultrCloud {
    /// `GET /databases?label=<name>`, every cursor; the name is the label.
    async fn find_database(&self, name: &str) -> Result<Option<ManagedDatabase>> {
        let databases = self
            .get_all::<DatabasePage>("databases", &[("label", name.to_owned())])
            .await?;
        Ok(databases
            .into_iter()
            .find(|d| d.label == name)
            .map(ManagedDatabase::from))
    }

    /// `PUT /databases/{id} {trusted_ips}`, every entry as a CIDR (`203.0.113.4/32`).
    async fn replace_allow_list(&self, id: &str, allow: &[Ipv4Net]) -> Result<()> {
        let id = segment("database id", id)?;
        let trusted: Vec<String> = allow.iter().map(Ipv4Net::to_string).collect();
        self.call(
            Method::PUT,
            &format!("databases/{id}"),
            &json!({"trusted_ips": trusted}),
        )
        .await
        .map_err(|e| gone_as_not_found(e, &format!("database {id}")))?;
        Ok(())
    }
}
