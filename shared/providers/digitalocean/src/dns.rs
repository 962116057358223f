//! Domains and records. DigitalOcean names records relative to the zone (`@` for the apex); Flotilla uses
//! fully qualified names.

use async_trait::async_trait;
use flotilla_cloud::names::{fqdn, in_zone};
use flotilla_cloud::{CloudError, Dns, DnsRecord, NewDnsRecord, ProviderKind, Result, Zone};
use reqwest::Method;
use serde_json::json;

use crate::client::{DigitalOceanCloud, PER_PAGE, PROVIDER, numeric_id, segment};
use crate::wire::{DomainEnvelope, RecordEnvelope, RecordPage};

/// The name DigitalOcean wants for the fully qualified `name` in `zone`: `@` for the apex, else the part
/// before the zone. A name outside the zone is invalid.
pub(crate) fn relative(name: &str, zone: &str) -> Result<String> {
    let trimmed = name.trim_end_matches('.');
    match in_zone(trimmed, zone.trim_end_matches('.')) {
        Some("") => Ok("@".to_owned()),
        Some(prefix) => Ok(prefix.to_owned()),
        None => Err(CloudError::Invalid {
            provider: PROVIDER,
            field: Some("name".into()),
            message: format!("{name:?} is not in the zone {zone:?}"),
        }),
    }
}

#[async_trait]
impl Dns for DigitalOceanCloud {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    /// `GET /domains/{name}`; the zone's id is its name.
    async fn find_zone(&self, name: &str) -> Result<Option<Zone>> {
        let name = segment("domain", name.trim_end_matches('.'))?;
        match self
            .api
            .get::<DomainEnvelope>(&format!("domains/{name}"), &[])
            .await
        {
            Ok(found) => Ok(Some(Zone {
                id: found.domain.name.clone(),
                name: found.domain.name,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /domains/{zone}/records?name=<fqdn>&type=<kind>`, every page.
    async fn list_records(
        &self,
        zone: &Zone,
        name: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<DnsRecord>> {
        let domain = segment("domain", &zone.id)?;
        let mut query = vec![("per_page", PER_PAGE.to_owned())];
        if let Some(name) = name {
            query.push(("name", fqdn(name, &zone.name)));
        }
        if let Some(kind) = kind {
            query.push(("type", kind.to_owned()));
        }
        let records = self
            .get_all::<RecordPage>(&format!("domains/{domain}/records"), &query)
            .await?;
        let wanted_name = name.map(|n| fqdn(n, &zone.name));
        Ok(records
            .into_iter()
            .map(|r| r.into_record(&zone.name))
            .filter(|r| {
                wanted_name
                    .as_ref()
                    .is_none_or(|n| r.name.eq_ignore_ascii_case(n))
            })
            .filter(|r| kind.is_none_or(|k| r.kind.eq_ignore_ascii_case(k)))
            .collect())
    }

    /// `POST /domains/{zone}/records`. DigitalOcean records have no comment or proxying; those are not sent.
    async fn create_record(&self, zone: &Zone, record: &NewDnsRecord) -> Result<DnsRecord> {
        let domain = segment("domain", &zone.id)?;
        let body = json!({
            "type": record.kind,
            "name": relative(&record.name, &zone.name)?,
            "data": record.content,
            "ttl": record.ttl,
        });
        let created: RecordEnvelope = self
            .api
            .send(Method::POST, &format!("domains/{domain}/records"), &body)
            .await?;
        Ok(created.domain_record.into_record(&zone.name))
    }

    /// `PUT /domains/{zone}/records/{id}`.
    async fn update_record(&self, zone: &Zone, record: &DnsRecord) -> Result<DnsRecord> {
        let domain = segment("domain", &zone.id)?;
        let id = numeric_id("record id", &record.id)?;
        let body = json!({
            "type": record.kind,
            "name": relative(&record.name, &zone.name)?,
            "data": record.content,
            "ttl": record.ttl,
        });
        let updated: RecordEnvelope = self
            .api
            .send(Method::PUT, &format!("domains/{domain}/records/{id}"), &body)
            .await?;
        Ok(updated.domain_record.into_record(&zone.name))
    }

    async fn delete_record(&self, zone: &Zone, id: &str) -> Result<()> {
        let domain = segment("domain", &zone.id)?;
        let id = numeric_id("record id", id)?;
        self.api.delete(&format!("domains/{domain}/records/{id}")).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_convert_both_ways() {
        assert_eq!(fqdn("@", "example.com"), "example.com");
        assert_eq!(fqdn("", "example.com"), "example.com");
        assert_eq!(fqdn("www", "example.com"), "www.example.com");
        assert_eq!(fqdn("www.example.com.", "example.com"), "www.example.com");
        assert_eq!(relative("example.com", "example.com").unwrap(), "@");
        assert_eq!(relative("Example.COM.", "example.com").unwrap(), "@");
        assert_eq!(relative("a.b.example.com", "example.com").unwrap(), "a.b");
        assert!(relative("www.example.org", "example.com").is_err());
        assert!(relative("wwwexample.com", "example.com").is_err());
    }
}
