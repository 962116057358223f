//! Database clusters' trusted sources.

use async_trait::async_trait;
use flotilla_cloud::{CloudError, ManagedDatabase, ManagedDatabases, Result};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{DigitalOceanCloud, MAX_DATABASE_RULES, PROVIDER, segment};
use crate::rules::parse_source;
use crate::wire::{DatabasePage, DatabaseRule, DatabaseRules};

const IP_ADDR: &str = "ip_addr";

impl DigitalOceanCloud {
    async fn database_rules(&self, id: &str) -> Result<Vec<DatabaseRule>> {
        let id = segment("database id", id)?;
        let rules: DatabaseRules = self.api.get(&format!("databases/{id}/firewall"), &[]).await?;
        Ok(rules.rules)
    }
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
        let databases = self.get_all::<DatabasePage>("databases", &[]).await?;
        let Some(db) = databases.into_iter().find(|d| d.name == name) else {
            return Ok(None);
        };
        let allow: Vec<Ipv4Net> = self
            .database_rules(&db.id)
            .await?
            .iter()
            .filter(|r| r.kind == IP_ADDR)
            .filter_map(|r| parse_source(&r.value))
            .collect();
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
}
