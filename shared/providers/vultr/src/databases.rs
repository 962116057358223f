//! Managed databases: created, found by label, trusted IPs replaced, deleted.
//!
//! Vultr labels need not be unique, so [`ManagedDatabases::create_database`] looks the label up first and
//! answers [`CloudError::Conflict`] when it is taken. A create sends `database_engine` (`mysql` or `pg`) with
//! its `database_engine_version` (Vultr requires one), the plan, the allow-list as `trusted_ips` and the VPC;
//! the node count is the plan's (Vultr has no separate field).

use async_trait::async_trait;
use flotilla_cloud::{
    CloudError, DatabaseEngine, DatabaseRequest, ManagedDatabase, ManagedDatabases, Result, database_engine,
};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::json;

use crate::client::{PROVIDER, VultrCloud, gone_as_not_found, segment};
use crate::wire::{DatabaseEnvelope, DatabasePage};

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
        self.call(
            Method::PUT,
            &format!("databases/{id}"),
            &json!({"trusted_ips": trusted_ips(allow)}),
        )
        .await
        .map_err(|e| gone_as_not_found(e, &format!("database {id}")))?;
        Ok(())
    }

    /// `POST /databases`, once no database has the label.
    async fn create_database(&self, request: &DatabaseRequest) -> Result<ManagedDatabase> {
        let (engine, version) = engine_and_version(&request.engine)?;
        if self.find_database(&request.name).await?.is_some() {
            return Err(CloudError::Conflict {
                provider: PROVIDER,
                message: format!("a managed database labelled {:?} exists already", request.name),
            });
        }
        let mut body = json!({
            "database_engine": engine,
            "database_engine_version": version,
            "region": request.region,
            "plan": request.size,
            "label": request.name,
            "trusted_ips": trusted_ips(&request.allow_list),
        });
        if let Some(vpc) = &request.vpc_id {
            body["vpc_id"] = json!(vpc);
        }
        let created: DatabaseEnvelope = self.api.send(Method::POST, "databases", &body).await?;
        Ok(created.database.into())
    }

    /// `DELETE /databases/{id}`; a database already gone (404, or Vultr's "invalid … ID") is
    /// [`CloudError::NotFound`].
    async fn delete_database(&self, id: &str) -> Result<()> {
        let id = segment("database id", id)?;
        self.api
            .request(Method::DELETE, &format!("databases/{id}"), &[], None, &[])
            .await
            .map_err(|e| gone_as_not_found(e, &format!("database {id}")))?;
        Ok(())
    }
}

/// An allow-list as Vultr's `trusted_ips`: every entry a CIDR.
fn trusted_ips(allow: &[Ipv4Net]) -> Vec<String> {
    allow.iter().map(Ipv4Net::to_string).collect()
}

/// Vultr's engine and version of `<engine>/<version>`: `mysql/8` is `("mysql", "8")`, `postgresql/16` (or
/// Vultr's engine slug and the version of `<engine>/<version>`: `mysql/8` is `("mysql", "8")`,
/// `postgresql/16` (or `postgres`, `pg`) is `("pg", "16")`. Vultr requires the version.
fn engine_and_version(engine: &str) -> Result<(&'static str, &str)> {
    let (engine, version) = database_engine(PROVIDER, engine, true)?;
    let slug = match engine {
        DatabaseEngine::MySql => "mysql",
        DatabaseEngine::PostgreSql => "pg",
    };
    Ok((slug, version.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_map_to_vultr_names_and_need_a_version() {
        assert_eq!(engine_and_version("mysql/8").ok(), Some(("mysql", "8")));
        assert_eq!(engine_and_version("postgresql/16").ok(), Some(("pg", "16")));
        assert!(engine_and_version("mysql").is_err(), "no version");
        assert!(engine_and_version("valkey/7").is_err());
    }
}
