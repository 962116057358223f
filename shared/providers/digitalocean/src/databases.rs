//! Database clusters and their trusted sources.
//!
//! A cluster is created with `POST /databases` (`engine` `mysql` or `pg`, the version when the request
//! names one, `num_nodes`, and the VPC as `private_network_uuid`); a non-empty allow-list then goes through
//! the cluster's firewall like [`ManagedDatabases::replace_allow_list`]. DigitalOcean refuses a name already
//! in use as unprocessable; the adapter makes that a [`CloudError::Conflict`] once a lookup confirms the
//! name is taken.

use async_trait::async_trait;
use flotilla_cloud::{
    CloudError, DatabaseEngine, DatabaseRequest, ManagedDatabase, ManagedDatabases, Result, database_engine,
};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{DigitalOceanCloud, MAX_DATABASE_RULES, PROVIDER, segment};
use crate::rules::parse_source;
use crate::wire::{DatabaseEnvelope, DatabasePage, DatabaseRule, DatabaseRules, DoDatabase};

const IP_ADDR: &str = "ip_addr";

impl DigitalOceanCloud {
    async fn database_rules(&self, id: &str) -> Result<Vec<DatabaseRule>> {
        let id = segment("database id", id)?;
        let rules: DatabaseRules = self.api.get(&format!("databases/{id}/firewall"), &[]).await?;
        Ok(rules.rules)
    }

    /// The cluster named `name`, from `GET /databases` (every page).
    async fn cluster_named(&self, name: &str) -> Result<Option<DoDatabase>> {
        let databases = self.get_all::<DatabasePage>("databases", &[]).await?;
        Ok(databases.into_iter().find(|d| d.name == name))
    }

    /// `refused`, or a [`CloudError::Conflict`] when it refused a create because a cluster already has the
    /// name `name` (DigitalOcean answers that as unprocessable).
    async fn name_taken(&self, refused: CloudError, name: &str) -> CloudError {
        if matches!(refused, CloudError::Invalid { .. })
            && matches!(self.cluster_named(name).await, Ok(Some(_)))
        {
            return CloudError::Conflict {
                provider: PROVIDER,
                message: format!("a database cluster named {name:?} exists already"),
            };
        }
        refused
    }
}

/// The allow-list in a cluster's trusted sources: its `ip_addr` rules.
pub(crate) fn allow_list(rules: &[DatabaseRule]) -> Vec<Ipv4Net> {
    rules
        .iter()
        .filter(|r| r.kind == IP_ADDR)
        .filter_map(|r| parse_source(&r.value))
        .collect()
}

fn too_many(count: usize) -> CloudError {
    CloudError::Invalid {
        provider: PROVIDER,
        field: Some("rules".into()),
        message: format!("{count} trusted sources; a database cluster takes at most {MAX_DATABASE_RULES}"),
    }
}

/// A bare address for a single host (as DigitalOcean shows it), a CIDR otherwise.
fn rule_value(net: &Ipv4Net) -> String {
    if net.prefix_len() == 32 {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[async_trait]
impl ManagedDatabases for DigitalOceanCloud {
    /// `GET /databases`, then the cluster's firewall for its allow-list (the `ip_addr` rules).
    async fn find_database(&self, name: &str) -> Result<Option<ManagedDatabase>> {
        let Some(db) = self.cluster_named(name).await? else {
            return Ok(None);
        };
        let allow = allow_list(&self.database_rules(&db.id).await?);
        Ok(Some(db.into_database(allow)))
    }

    /// `PUT /databases/{uuid}/firewall` with `allow` as `ip_addr` rules. The cluster's other trusted sources
    /// (droplets, tags, Kubernetes clusters, apps) are kept; more than 100 rules in all is refused before
    /// anything is sent.
    async fn replace_allow_list(&self, id: &str, allow: &[Ipv4Net]) -> Result<()> {
        let id = segment("database id", id)?;
        if allow.len() > MAX_DATABASE_RULES {
            return Err(too_many(allow.len()));
        }
        let kept: Vec<Value> = self
            .database_rules(id)
            .await?
            .into_iter()
            .filter(|r| r.kind != IP_ADDR)
            .map(|r| match r.description {
                Some(d) => json!({"type": r.kind, "value": r.value, "description": d}),
                None => json!({"type": r.kind, "value": r.value}),
            })
            .collect();
        if kept.len() + allow.len() > MAX_DATABASE_RULES {
            return Err(too_many(kept.len() + allow.len()));
        }
        let mut rules = kept;
        rules.extend(
            allow
                .iter()
                .map(|net| json!({"type": IP_ADDR, "value": rule_value(net)})),
        );
        self.call(
            Method::PUT,
            &format!("databases/{id}/firewall"),
            &json!({"rules": rules}),
        )
        .await?;
        Ok(())
    }
    /// `POST /databases`, then the allow-list through the cluster's firewall when there is one. More than 100
    /// entries are refused before anything is created; if the firewall update fails, the error is returned
    /// (the cluster exists and is found again by name).
    async fn create_database(&self, request: &DatabaseRequest) -> Result<ManagedDatabase> {
        let (engine, version) = engine_and_version(&request.engine)?;
        if request.allow_list.len() > MAX_DATABASE_RULES {
            return Err(too_many(request.allow_list.len()));
        }
        let mut body = json!({
            "name": request.name,
            "engine": engine,
            "region": request.region,
            "size": request.size,
            "num_nodes": request.nodes,
        });
        if let Some(version) = version {
            body["version"] = json!(version);
        }
        if let Some(vpc) = &request.vpc_id {
            body["private_network_uuid"] = json!(vpc);
        }
        let created: DatabaseEnvelope = match self.api.send(Method::POST, "databases", &body).await {
            Ok(created) => created,
            Err(e) => return Err(self.name_taken(e, &request.name).await),
        };
        let db = created.database;
        if request.allow_list.is_empty() {
            return Ok(db.into_database(Vec::new()));
        }
        if let Err(e) = self.replace_allow_list(&db.id, &request.allow_list).await {
            tracing::warn!(
                provider = %PROVIDER, database = %db.id, error = %e,
                "database cluster created but its allow-list not applied"
            );
            return Err(e);
        }
        Ok(db.into_database(request.allow_list.clone()))
    }

    /// `DELETE /databases/{uuid}`; a cluster already gone is [`CloudError::NotFound`].
    async fn delete_database(&self, id: &str) -> Result<()> {
        let id = segment("database id", id)?;
        self.api
            .request(Method::DELETE, &format!("databases/{id}"), &[], None, &[])
            .await
            .map(drop)
    }
}

/// DigitalOcean's engine slug and the version of `<engine>[/<version>]`: `mysql/8` is `("mysql", Some("8"))`,
/// `postgresql/16` (or `postgres`, `pg`) is `("pg", Some("16"))`; without a version DigitalOcean picks its
/// default.
fn engine_and_version(engine: &str) -> Result<(&'static str, Option<&str>)> {
    let (engine, version) = database_engine(PROVIDER, engine, false)?;
    let slug = match engine {
        DatabaseEngine::MySql => "mysql",
        DatabaseEngine::PostgreSql => "pg",
    };
    Ok((slug, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_map_to_digitalocean_slugs() {
        assert_eq!(engine_and_version("mysql/8").ok(), Some(("mysql", Some("8"))));
        assert_eq!(engine_and_version("postgresql/16").ok(), Some(("pg", Some("16"))));
        assert_eq!(engine_and_version("pg").ok(), Some(("pg", None)));
        assert_eq!(engine_and_version("mysql/").ok(), Some(("mysql", None)));
        assert!(engine_and_version("mongodb/7").is_err());
    }
}
