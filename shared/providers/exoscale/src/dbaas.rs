//! DBaaS services and their IP filters (the allow-list).

use async_trait::async_trait;
use flotilla_cloud::{CloudError, ManagedDatabase, ManagedDatabases, Result};
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
        Ok(Some(self.database(service)))
    }

    async fn replace_allow_list(&self, id: &str, allow: &[Ipv4Net]) -> Result<()> {
        let kind = self
            .service_type(id, false)
            .await?
            .ok_or_else(|| CloudError::NotFound {
                provider: P,
                what: format!("DBaaS service {id:?}"),
            })?;
        let filter: Vec<String> = allow.iter().map(|n| n.trunc().to_string()).collect();
        let result = self
            .mutate(
                Method::PUT,
                &format!("{}/{id}", engine_path(&kind)),
                Some(&json!({ "ip-filter": filter })),
            )
            .await;
        if matches!(&result, Err(e) if e.is_not_found()) {
            self.lookups().dbaas_types.remove(id);
        }
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

    fn database(&self, s: DbaasService) -> ManagedDatabase {
        let (host, port) = endpoint(&s);
        ManagedDatabase {
            id: s.name.clone(),
            engine: s.kind.clone(),
            region: s.zone.clone().unwrap_or_else(|| self.zone.clone()),
            status: s.state.clone().unwrap_or_default(),
            host,
            port,
            allow_list: s.ip_filter.iter().filter_map(|f| parse_filter(f)).collect(),
            name: s.name,
        }
    }
}

/// The engine-specific path of a service type: `pg` is `dbaas-postgres`, the others `dbaas-<type>`.
fn engine_path(kind: &str) -> String {
    match kind {
        "pg" => "dbaas-postgres".to_owned(),
        other => format!("dbaas-{other}"),
    }
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
