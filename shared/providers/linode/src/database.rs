//! [`ManagedDatabases`] on Linode Managed Databases (MySQL and PostgreSQL).
//!
//! Linode keeps each engine under its own path (`/databases/mysql/instances`, `/databases/postgresql/
//! instances`) while the traits name a database by id alone, so the adapter remembers which engine an id
//! belongs to and otherwise looks under each. [`ManagedDatabase::engine`] is Linode's spelling (`mysql`,
//! `postgresql`).
//!
//! Linode accepts allow-list changes only while a database is `active`; [`ManagedDatabases::replace_allow_list`]
//! answers [`CloudError::Conflict`] before that, and sends nothing when the list already is the one asked for
//! (every change puts the database through an update).
//!
//! [`ManagedDatabases::create_database`] posts to the engine's path with `engine` as `<engine>/<version>`
//! (`mysql/8`; Linode requires the version), the node count as `cluster_size`, the allow-list, and with a VPC
//! the `private_network` to join (the request's subnet, else the VPC's first). Linode refuses a label already
//! in use as an invalid request; the adapter makes that a [`CloudError::Conflict`] once a lookup confirms the
//! label is taken.

use async_trait::async_trait;
use flotilla_cloud::{
    CloudError, DatabaseEngine, DatabaseRequest, ManagedDatabase, ManagedDatabases, ProviderKind, Result,
    database_engine,
};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{LinodeCloud, numeric_id};
use crate::network::parse_net;
use crate::wire::Database;

/// The engines' path segments, in the order they are searched.
const ENGINES: [&str; 2] = ["mysql", "postgresql"];

#[async_trait]
impl ManagedDatabases for LinodeCloud {
    async fn find_database(&self, name: &str) -> Result<Option<ManagedDatabase>> {
        for engine in ENGINES {
            let databases: Vec<Database> = self
                .list_all(&format!("databases/{engine}/instances"), None)
                .await?;
            if let Some(db) = databases.into_iter().find(|d| d.label == name) {
                self.remember_engine(db.id, engine);
                return Ok(Some(to_database(db)));
            }
        }
        Ok(None)
    }

    async fn replace_allow_list(&self, id: &str, allow: &[Ipv4Net]) -> Result<()> {
        let id = numeric_id("id", id)?;
        let (engine, db) = self.fetch(id).await?;
        if db.status != "active" {
            return Err(CloudError::Conflict {
                provider: ProviderKind::Linode,
                message: format!(
                    "database {id} is {}; its allow-list can change once it is active",
                    db.status
                ),
            });
        }
        let mut wanted = allow.to_vec();
        wanted.sort();
        wanted.dedup();
        let current: Option<Vec<Ipv4Net>> = db.allow_list.iter().map(|a| parse_net(a)).collect();
        if let Some(mut current) = current {
            current.sort();
            current.dedup();
            if current == wanted {
                return Ok(());
            }
        }
        let body = json!({ "allow_list": wanted.iter().map(ToString::to_string).collect::<Vec<_>>() });
        self.call(Method::PUT, &format!("databases/{engine}/instances/{id}"), &body)
            .await
    }

    async fn create_database(&self, request: &DatabaseRequest) -> Result<ManagedDatabase> {
        let (engine, version) = engine_and_version(&request.engine)?;
        let mut body = json!({
            "label": request.name,
            "region": request.region,
            "type": request.size,
            "engine": format!("{engine}/{version}"),
            "cluster_size": request.nodes,
            "allow_list": request.allow_list.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        if let Some(network) = self.private_network(request).await? {
            body["private_network"] = network;
        }
        let created = self
            .send::<Database>(Method::POST, &format!("databases/{engine}/instances"), &body)
            .await;
        match created {
            Ok(db) => {
                self.remember_engine(db.id, engine);
                Ok(to_database(db))
            }
            Err(e) => Err(self.label_taken(e, &request.name).await),
        }
    }

    async fn delete_database(&self, id: &str) -> Result<()> {
        let id = numeric_id("id", id)?;
        let engine = match self.known_engine(id) {
            Some(engine) => engine,
            None => self.fetch(id).await?.0,
        };
        // Not `api.delete`: a database already gone is an error here, as the trait says.
        let deleted = self
            .api
            .request(
                Method::DELETE,
                &format!("databases/{engine}/instances/{id}"),
                &[],
                None,
                &[],
            )
            .await;
        // Deleted, gone or still there: a later lookup learns the engine again.
        self.forget_engine(id);
        deleted.map(drop)
    }
}

impl LinodeCloud {
    /// A database by id and the engine it lives under: the remembered engine first, then the others.
    async fn fetch(&self, id: u64) -> Result<(&'static str, Database)> {
        let known = self.known_engine(id);
        let order = known
            .into_iter()
            .chain(ENGINES.into_iter().filter(|e| Some(*e) != known));
        for engine in order {
            match self
                .get::<Database>(&format!("databases/{engine}/instances/{id}"))
                .await
            {
                Ok(db) => {
                    self.remember_engine(id, engine);
                    return Ok((engine, db));
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CloudError::NotFound {
            provider: ProviderKind::Linode,
            what: format!("managed database {id}"),
        })
    }

    fn known_engine(&self, id: u64) -> Option<&'static str> {
        self.engines.lock().ok().and_then(|m| m.get(&id).copied())
    }

    fn remember_engine(&self, id: u64, engine: &'static str) {
        if let Ok(mut engines) = self.engines.lock() {
            engines.insert(id, engine);
        }
    }

    fn forget_engine(&self, id: u64) {
        if let Ok(mut engines) = self.engines.lock() {
            engines.remove(&id);
        }
    }

    /// `private_network` of a create: the request's VPC with its subnet (or the VPC's first), `None` without
    /// a VPC.
    async fn private_network(&self, request: &DatabaseRequest) -> Result<Option<Value>> {
        let Some(vpc) = &request.vpc_id else {
            if request.subnet_id.is_some() {
                return Err(CloudError::Invalid {
                    provider: ProviderKind::Linode,
                    field: Some("subnet_id".into()),
                    message: "a database joins a subnet only together with its vpc_id".into(),
                });
            }
            return Ok(None);
        };
        let vpc_id = numeric_id("vpc_id", vpc)?;
        let subnet_id = self.subnet_for(Some(vpc), request.subnet_id.as_deref()).await?;
        Ok(Some(json!({ "vpc_id": vpc_id, "subnet_id": subnet_id })))
    }

    /// `refused`, or a [`CloudError::Conflict`] when it refused a create because a database already has
    /// the label `name` (Linode answers that as an invalid request).
    async fn label_taken(&self, refused: CloudError, name: &str) -> CloudError {
        refused
            .conflict_if_found(self.find_database(name), |_| {
                format!("a managed database labelled {name:?} exists already")
            })
            .await
    }
}

/// The path segment of `<engine>/<version>`'s engine, and its version: `mysql/8` is `("mysql", "8")`,
/// `postgresql/16` (or `postgres/16`, `pg/16`) is `("postgresql", "16")`. Linode requires the version.
fn engine_and_version(engine: &str) -> Result<(&'static str, &str)> {
    let (engine, version) = database_engine(ProviderKind::Linode, engine, true)?;
    let path = match engine {
        DatabaseEngine::MySql => "mysql",
        DatabaseEngine::PostgreSql => "postgresql",
    };
    Ok((path, version.unwrap_or_default()))
}

pub(crate) fn to_database(db: Database) -> ManagedDatabase {
    ManagedDatabase {
        id: db.id.to_string(),
        name: db.label,
        engine: db.engine,
        region: db.region,
        status: db.status,
        host: db.hosts.and_then(|h| h.primary),
        port: db.port,
        allow_list: db.allow_list.iter().filter_map(|a| parse_net(a)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_map_to_linode_paths_and_need_a_version() {
        assert_eq!(engine_and_version("mysql/8").ok(), Some(("mysql", "8")));
        assert_eq!(
            engine_and_version("postgresql/16").ok(),
            Some(("postgresql", "16"))
        );
        assert_eq!(engine_and_version("pg/15").ok(), Some(("postgresql", "15")));
        assert!(engine_and_version("mysql").is_err(), "no version");
        assert!(engine_and_version("mongodb/7").is_err());
    }
}
