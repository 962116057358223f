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

use async_trait::async_trait;
use flotilla_cloud::{CloudError, ManagedDatabase, ManagedDatabases, ProviderKind, Result};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::json;

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
}

impl LinodeCloud {
    /// A database by id and the engine it lives under: the remembered engine first, then the others.
    async fn fetch(&self, id: u64) -> Result<(&'static str, Database)> {
        let known = self.engines.lock().ok().and_then(|m| m.get(&id).copied());
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

    fn remember_engine(&self, id: u64, engine: &'static str) {
        if let Ok(mut engines) = self.engines.lock() {
            engines.insert(id, engine);
        }
    }
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
