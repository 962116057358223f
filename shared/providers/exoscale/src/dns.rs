//! DNS domains and records. Exoscale names records relative to the domain (`www`, or empty for the apex);
//! Flotilla uses fully qualified names.

use async_trait::async_trait;
use flotilla_cloud::{CloudError, Dns, DnsRecord, NewDnsRecord, ProviderKind, Result, Zone};
use reqwest::Method;
use serde_json::json;

use crate::wire::{DnsDomainList, DnsDomainRecord, DnsRecordList};
use crate::{Exoscale, P};

#[async_trait]
impl Dns for Exoscale {
    fn provider(&self) -> ProviderKind {
        P
    }

    async fn find_zone(&self, name: &str) -> Result<Option<Zone>> {
        let wanted = normalise(name);
        let list: DnsDomainList = self.api.get("dns-domain", &[]).await?;
        Ok(list
            .dns_domains
            .into_iter()
            .find(|d| normalise(&d.unicode_name) == wanted)
            .map(|d| Zone {
                id: d.id,
                name: d.unicode_name.trim_end_matches('.').to_owned(),
            }))
    }

    async fn list_records(
        &self,
        zone: &Zone,
        name: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<DnsRecord>> {
        let list: DnsRecordList = self
            .api
            .get(&format!("dns-domain/{}/record", zone.id), &[])
            .await?;
        let name = name.map(normalise);
        Ok(list
            .dns_domain_records
            .into_iter()
            .map(|r| record(zone, r))
            .filter(|r| name.as_ref().is_none_or(|n| normalise(&r.name) == *n))
            .filter(|r| kind.is_none_or(|k| r.kind.eq_ignore_ascii_case(k)))
            .collect())
    }

    async fn create_record(&self, zone: &Zone, new: &NewDnsRecord) -> Result<DnsRecord> {
        let body = json!({
            "name": relative_name(zone, &new.name)?,
            "type": new.kind,
            "content": new.content,
            "ttl": new.ttl,
        });
        let id = self
            .mutate_for_id(Method::POST, &format!("dns-domain/{}/record", zone.id), &body)
            .await?;
        Ok(DnsRecord {
            id,
            kind: new.kind.clone(),
            name: new.name.trim_end_matches('.').to_owned(),
            content: new.content.clone(),
            ttl: new.ttl,
            proxied: None,
            comment: None,
        })
    }

    async fn update_record(&self, zone: &Zone, r: &DnsRecord) -> Result<DnsRecord> {
        let body = json!({
            "name": relative_name(zone, &r.name)?,
            "content": r.content,
            "ttl": r.ttl,
        });
        self.mutate(
            Method::PUT,
            &format!("dns-domain/{}/record/{}", zone.id, r.id),
            Some(&body),
        )
        .await?;
        Ok(DnsRecord {
            name: r.name.trim_end_matches('.').to_owned(),
            proxied: None,
            comment: None,
            ..r.clone()
        })
    }

    async fn delete_record(&self, zone: &Zone, id: &str) -> Result<()> {
        self.delete_gone_ok(&format!("dns-domain/{}/record/{id}", zone.id))
            .await
    }
}

pub(crate) fn record(zone: &Zone, r: DnsDomainRecord) -> DnsRecord {
    let name = match r.name.as_str() {
        "" | "@" => zone.name.clone(),
        rel => format!("{rel}.{}", zone.name),
    };
    DnsRecord {
        id: r.id,
        kind: r.kind,
        name,
        content: r.content,
        ttl: r.ttl.unwrap_or(0),
        proxied: None,
        comment: None,
    }
}

/// Lower case without the trailing dot.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_lowercase()
}

/// `www.example.com` in zone `example.com` → `www`; the apex → empty.
fn relative_name(zone: &Zone, fqdn: &str) -> Result<String> {
    let name = fqdn.trim_end_matches('.');
    let zone_name = normalise(&zone.name);
    if name.to_lowercase() == zone_name {
        return Ok(String::new());
    }
    let suffix = format!(".{zone_name}");
    let lower = name.to_lowercase();
    match lower.strip_suffix(&suffix) {
        Some(rel) if !rel.is_empty() => Ok(name.get(..rel.len()).unwrap_or(rel).to_owned()),
        _ => Err(CloudError::Invalid {
            provider: P,
            field: Some("name".into()),
            message: format!("{fqdn:?} is not in zone {}", zone.name),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        Zone {
            id: "z".into(),
            name: "codetesters.uk".into(),
        }
    }

    #[test]
    fn relative_names() {
        assert_eq!(relative_name(&zone(), "www.codetesters.uk").unwrap(), "www");
        assert_eq!(relative_name(&zone(), "A.B.Codetesters.UK.").unwrap(), "A.B");
        assert_eq!(relative_name(&zone(), "codetesters.uk").unwrap(), "");
        assert!(relative_name(&zone(), "xcodetesters.uk").is_err());
        assert!(relative_name(&zone(), "example.com").is_err());
    }
}
