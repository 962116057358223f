//! DBaaS services and their IP filters (the allow-list).
//!
//! A service is created with `POST /dbaas-mysql/{name}` or `POST /dbaas-postgres/{name}` (`plan`, `ip-filter`
//! and the major `version` when the request names one; the plan fixes the node count, and DBaaS services
//! join no private network) and deleted with `DELETE /dbaas-service/{name}`, whatever its type; both answer
//! an operation the adapter waits for. The name is the id. A name already taken is refused as a conflict.

use async_trait::async_trait;
use flotilla_cloud::{
    CloudError, DatabaseEngine, DatabaseRequest, ManagedDatabase, ManagedDatabases, Result, database_engine,
};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::json;

use crate::wire::{DbaasService, DbaasServiceList};
use crate::{Exoscale, P};

#[async_trait]
impl ManagedDatabases for Exoscale {
    async fn find_database(&self, name: &str) -> Result<Option<ManagedDatabase>> {
        let Some(kind) = self.service_type(name, true).await? else {
            return Ok(None);
        };
        let path = format!("{}/{name}", engine_path(&kind));
        let service: DbaasService = match self.api.get(&path, &[]).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(database(&self.zone, service)))
    }

    async fn replace_allow_list(&self, id: &str, allow: &[Ipv4Net]) -> Result<()> {
        let kind = self
            .service_type(id, false)
            .await?
            .ok_or_else(|| CloudError::NotFound {
                provider: P,
                what: format!("DBaaS service {id:?}"),
            })?;
        let result = self
            .mutate(
                Method::PUT,
                &format!("{}/{id}", engine_path(&kind)),
                Some(&json!({ "ip-filter": ip_filter(allow) })),
            )
            .await;
        if matches!(&result, Err(e) if e.is_not_found()) {
            self.lookups().dbaas_types.remove(id);
        }
        result.map(drop)
    }

    async fn create_database(&self, request: &DatabaseRequest) -> Result<ManagedDatabase> {
        self.check_zone(&request.region)?;
        let name = service_name(&request.name)?;
        let (kind, version) = engine_and_version(&request.engine)?;
        let mut body = json!({ "plan": request.size, "ip-filter": ip_filter(&request.allow_list) });
        if let Some(version) = version {
            body["version"] = json!(version);
        }
        let path = format!("{}/{name}", engine_path(kind));
        if let Err(e) = self.mutate(Method::POST, &path, Some(&body)).await {
            return Err(self.name_taken(e, name).await);
        }
        self.lookups()
            .dbaas_types
            .insert(name.to_owned(), kind.to_owned());
        let service: DbaasService = self.api.get(&path, &[]).await?;
        Ok(database(&self.zone, service))
    }

    async fn delete_database(&self, id: &str) -> Result<()> {
        let name = service_name(id)?;
        // Not `delete_gone_ok`: a service already gone is an error here, as the trait says.
        let result = self
            .mutate(Method::DELETE, &format!("dbaas-service/{name}"), None)
            .await;
        self.lookups().dbaas_types.remove(name);
        result.map(drop)
    }
}

impl Exoscale {
    /// The type of the service named `name` (`mysql`, `pg` …), from `GET /dbaas-service` (which refreshes
    /// the cache), or from the cache unless `fresh`.
    async fn service_type(&self, name: &str, fresh: bool) -> Result<Option<String>> {
        if !fresh && let Some(kind) = self.lookups().dbaas_types.get(name) {
            return Ok(Some(kind.clone()));
        }
        let list: DbaasServiceList = self.api.get("dbaas-service", &[]).await?;
        let mut lookups = self.lookups();
        lookups.dbaas_types.clear();
        for service in list.dbaas_services {
            lookups.dbaas_types.insert(service.name, service.kind);
        }
        Ok(lookups.dbaas_types.get(name).cloned())
    }

    /// `refused`, or a [`CloudError::Conflict`] when it refused a create because a service is already
    /// named `name` (Exoscale may answer that as an invalid request rather than a conflict).
    async fn name_taken(&self, refused: CloudError, name: &str) -> CloudError {
        if matches!(refused, CloudError::Invalid { .. })
            && matches!(self.service_type(name, true).await, Ok(Some(_)))
        {
            return CloudError::Conflict {
                provider: P,
                message: format!("a DBaaS service named {name:?} exists already"),
            };
        }
        refused
    }
}

/// A DBaaS service of `zone` as a [`ManagedDatabase`].
pub(crate) fn database(zone: &str, s: DbaasService) -> ManagedDatabase {
    let (host, port) = endpoint(&s);
    ManagedDatabase {
        id: s.name.clone(),
        engine: s.kind.clone(),
        region: s.zone.clone().unwrap_or_else(|| zone.to_owned()),
        status: s.state.clone().unwrap_or_default(),
        host,
        port,
        allow_list: s.ip_filter.iter().filter_map(|f| parse_filter(f)).collect(),
        name: s.name,
    }
}

/// The engine-specific path of a service type: `pg` is `dbaas-postgres`, the others `dbaas-<type>`.
fn engine_path(kind: &str) -> String {
    match kind {
        "pg" => "dbaas-postgres".to_owned(),
        other => format!("dbaas-{other}"),
    }
}

/// Exoscale's service type and the version of `<engine>[/<version>]`: `mysql` is `("mysql", None)`,
/// `postgresql/16` (or `postgres`, `pg`) is `("pg", Some("16"))`; without a version Exoscale picks its
/// default.
fn engine_and_version(engine: &str) -> Result<(&'static str, Option<&str>)> {
    let (engine, version) = database_engine(P, engine, false)?;
    let kind = match engine {
        DatabaseEngine::MySql => "mysql",
        DatabaseEngine::PostgreSql => "pg",
    };
    Ok((kind, version))
}

/// `name` checked as a DBaaS service name: at most 63 characters, one path segment.
fn service_name(name: &str) -> Result<&str> {
    let ok = (1..=63).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(CloudError::Invalid {
            provider: P,
            field: Some("name".into()),
            message: format!("{name:?} is not a DBaaS service name"),
        })
    }
}

/// An allow-list as Exoscale's `ip-filter`: network addresses with their prefix.
fn ip_filter(allow: &[Ipv4Net]) -> Vec<String> {
    allow.iter().map(|n| n.trunc().to_string()).collect()
}

/// An IP filter entry: a CIDR, or a bare address as /32.
fn parse_filter(entry: &str) -> Option<Ipv4Net> {
    entry
        .parse::<Ipv4Net>()
        .ok()
        .or_else(|| entry.parse::<std::net::Ipv4Addr>().ok().map(Ipv4Net::from))
}

/// Where clients connect: the primary public (or dynamic) component of the engine, else the URI
/// parameters.
fn endpoint(s: &DbaasService) -> (Option<String>, Option<u16>) {
    let primary = |routes: &[&str]| {
        s.components.iter().find(|c| {
            c.usage.as_deref().unwrap_or("primary") == "primary"
                && c.route.as_deref().is_some_and(|r| routes.contains(&r))
                && c.component.as_deref() == Some(s.kind.as_str())
        })
    };
    if let Some(c) = primary(&["dynamic"]).or_else(|| primary(&["public"])) {
        return (c.host.clone(), c.port);
    }
    let params = s.uri_params.as_ref();
    let host = params
        .and_then(|p| p.get("host"))
        .and_then(|h| h.as_str())
        .map(str::to_owned);
    let port = params.and_then(|p| p.get("port")).and_then(|p| {
        p.as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
    });
    (host, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_filters() {
        assert_eq!(engine_path("mysql"), "dbaas-mysql");
        assert_eq!(engine_path("pg"), "dbaas-postgres");
        assert_eq!(parse_filter("10.0.0.0/24"), Some("10.0.0.0/24".parse().unwrap()));
        assert_eq!(
            parse_filter("203.0.113.4"),
            Some("203.0.113.4/32".parse().unwrap())
        );
        assert_eq!(parse_filter("::1/128"), None);
    }

    #[test]
    fn engines_and_names() {
        assert_eq!(engine_and_version("mysql").ok(), Some(("mysql", None)));
        assert_eq!(engine_and_version("postgresql/16").ok(), Some(("pg", Some("16"))));
        assert!(engine_and_version("valkey").is_err());
        assert!(service_name("www-db").is_ok());
        assert!(service_name("a/b").is_err());
        assert!(service_name("..").is_err());
        assert!(service_name(&"x".repeat(64)).is_err());
    }

    #[test]
    fn endpoint_prefers_the_primary_dynamic_component_then_uri_params() {
        let s: DbaasService = serde_json::from_value(json!({
            "name": "db", "type": "mysql",
            "components": [
                {"component": "mysql", "host": "replica", "port": 1, "route": "dynamic", "usage": "replica"},
                {"component": "mysql", "host": "db-x.a.exo.io", "port": 21699, "route": "dynamic", "usage": "primary"}
            ]
        }))
        .unwrap();
        assert_eq!(endpoint(&s), (Some("db-x.a.exo.io".into()), Some(21699)));
        let s: DbaasService = serde_json::from_value(json!({
            "name": "db", "type": "pg", "uri-params": {"host": "h", "port": "5432"}
        }))
        .unwrap();
        assert_eq!(endpoint(&s), (Some("h".into()), Some(5432)));
    }
}
