//! Domains and records. Vultr names records relative to the domain (`""` for the apex); Flotilla uses
//! fully qualified names.

use async_trait::async_trait;
use flotilla_cloud::names::{fqdn, in_zone};
use flotilla_cloud::{CloudError, Dns, DnsRecord, NewDnsRecord, ProviderKind, Result, Zone};
use reqwest::Method;
use serde_json::json;

use crate::client::{PROVIDER, VultrCloud, gone_as_not_found, segment};
use crate::wire::{DomainEnvelope, RecordEnvelope, RecordPage};

/// The name Vultr wants for the fully qualified `name` in `zone`: `""` for the apex, else the part before
/// the zone. A name outside the zone is invalid.
pub(crate) fn relative(name: &str, zone: &str) -> Result<String> {
    in_zone(name.trim_end_matches('.'), zone.trim_end_matches('.'))
        .map(str::to_owned)
        .ok_or_else(|| CloudError::Invalid {
            provider: PROVIDER,
            field: Some("name".into()),
            message: format!("{name:?} is not in the zone {zone:?}"),
        })
}

#[async_trait]
impl Dns for VultrCloud {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    /// `GET /domains/{domain}`; the zone's id is the domain.
    async fn find_zone(&self, name: &str) -> Result<Option<Zone>> {
        let name = segment("domain", name.trim_end_matches('.'))?;
        match self
            .api
            .get::<DomainEnvelope>(&format!("domains/{name}"), &[])
            .await
        {
            Ok(found) => Ok(Some(Zone {
                id: found.domain.domain.clone(),
                name: found.domain.domain,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /domains/{domain}/records`, every cursor, filtered here (Vultr has no record filters).
    async fn list_records(
        &self,
        zone: &Zone,
        name: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<DnsRecord>> {
        let domain = segment("domain", &zone.id)?;
        let records = self
            .get_all::<RecordPage>(&format!("domains/{domain}/records"), &[])
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

    /// `POST /domains/{domain}/records`. Vultr records have no comment or proxying; those are not sent.
    async fn create_record(&self, zone: &Zone, record: &NewDnsRecord) -> Result<DnsRecord> {
        let domain = segment("domain", &zone.id)?;
        let body = json!({
            "name": relative(&record.name, &zone.name)?,
            "type": record.kind,
            "data": record.content,
            "ttl": record.ttl,
        });
        let created: RecordEnvelope = self
            .api
            .send(Method::POST, &format!("domains/{domain}/records"), &body)
            .await?;
        Ok(created.record.into_record(&zone.name))
    }

    /// `PATCH /domains/{domain}/records/{id}` (name, data, TTL; a record's type cannot change). Vultr
    /// answers 204 without the record, so the record sent is returned.
    async fn update_record(&self, zone: &Zone, record: &DnsRecord) -> Result<DnsRecord> {
        let domain = segment("domain", &zone.id)?;
        let id = segment("record id", &record.id)?;
        let body = json!({
            "name": relative(&record.name, &zone.name)?,
            "data": record.content,
            "ttl": record.ttl,
        });
        self.call(Method::PATCH, &format!("domains/{domain}/records/{id}"), &body)
            .await
            .map_err(|e| gone_as_not_found(e, &format!("record {id}")))?;
        Ok(DnsRecord {
            name: fqdn(&record.name, &zone.name),
            ..record.clone()
        })
    }

    async fn delete_record(&self, zone: &Zone, id: &str) -> Result<()> {
        let domain = segment("domain", &zone.id)?;
        let id = segment("record id", id)?;
        self.delete(&format!("domains/{domain}/records/{id}")).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_convert_both_ways() {
        assert_eq!(fqdn("", "example.com"), "example.com");
        assert_eq!(fqdn("www", "example.com"), "www.example.com");
        assert_eq!(fqdn("foo.example.com", "example.com"), "foo.example.com");
        assert_eq!(relative("example.com", "example.com").unwrap(), "");
        assert_eq!(relative("www.example.com.", "example.com").unwrap(), "www");
        assert!(relative("www.example.org", "example.com").is_err());
    }
}
