//! [`Dns`] on Linode DNS Manager: domains are zones, `/domains/{id}/records` their records.
//!
//! Linode names records relative to the domain (`www`, `""` at the apex) and keeps the TTL in `ttl_sec`
//! (Linode rounds it to the nearest value it supports; 0 is the domain's default). The traits use fully
//! qualified names; the adapter converts both ways. Linode records have no comment and no proxying, so
//! [`DnsRecord::comment`] and [`DnsRecord::proxied`] read as `None` and are not sent.

use async_trait::async_trait;
use flotilla_cloud::{Dns, DnsRecord, NewDnsRecord, ProviderKind, Result, Zone};
use reqwest::Method;
use serde_json::json;

use crate::client::{LinodeCloud, numeric_id};
use crate::wire::{Domain, Record};

#[async_trait]
impl Dns for LinodeCloud {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Linode
    }

    async fn find_zone(&self, name: &str) -> Result<Option<Zone>> {
        let wanted = bare(name);
        let domains: Vec<Domain> = self.list_all("domains", None).await?;
        Ok(domains
            .into_iter()
            .find(|d| bare(&d.domain).eq_ignore_ascii_case(wanted))
            .map(|d| Zone {
                id: d.id.to_string(),
                name: d.domain,
            }))
    }

    async fn list_records(
        &self,
        zone: &Zone,
        name: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<DnsRecord>> {
        let id = numeric_id("zone", &zone.id)?;
        let filter = name.map(|n| json!({ "name": relative(&zone.name, n) }));
        let records: Vec<Record> = self
            .list_all(&format!("domains/{id}/records"), filter.as_ref())
            .await?;
        Ok(records
            .into_iter()
            .map(|r| to_record(zone, r))
            .filter(|r| name.is_none_or(|n| bare(&r.name).eq_ignore_ascii_case(&qualified(&zone.name, n))))
            .filter(|r| kind.is_none_or(|k| r.kind.eq_ignore_ascii_case(k)))
            .collect())
    }

    async fn create_record(&self, zone: &Zone, record: &NewDnsRecord) -> Result<DnsRecord> {
        let id = numeric_id("zone", &zone.id)?;
        let body = json!({
            "type": record.kind,
            "name": relative(&zone.name, &record.name),
            "target": record.content,
            "ttl_sec": record.ttl,
        });
        let created: Record = self
            .send(Method::POST, &format!("domains/{id}/records"), &body)
            .await?;
        Ok(to_record(zone, created))
    }

    async fn update_record(&self, zone: &Zone, record: &DnsRecord) -> Result<DnsRecord> {
        let id = numeric_id("zone", &zone.id)?;
        let record_id = numeric_id("record", &record.id)?;
        let body = json!({
            "name": relative(&zone.name, &record.name),
            "target": record.content,
            "ttl_sec": record.ttl,
        });
        let updated: Record = self
            .send(Method::PUT, &format!("domains/{id}/records/{record_id}"), &body)
            .await?;
        Ok(to_record(zone, updated))
    }

    async fn delete_record(&self, zone: &Zone, id: &str) -> Result<()> {
        let zone_id = numeric_id("zone", &zone.id)?;
        let record_id = numeric_id("record", id)?;
        self.api
            .delete(&format!("domains/{zone_id}/records/{record_id}"))
            .await
    }
}

pub(crate) fn to_record(zone: &Zone, record: Record) -> DnsRecord {
    DnsRecord {
        id: record.id.to_string(),
        name: qualified(&zone.name, &record.name),
        kind: record.kind,
        content: record.target,
        ttl: record.ttl_sec,
        proxied: None,
        comment: None,
    }
}

/// Without a trailing dot.
fn bare(name: &str) -> &str {
    name.trim().trim_end_matches('.')
}

/// A name as Linode wants it: relative to the zone, `""` for the apex. A name outside the zone is taken as
/// already relative.
pub(crate) fn relative(zone: &str, name: &str) -> String {
    let zone = bare(zone);
    let name = bare(name);
    if name.eq_ignore_ascii_case(zone) {
        return String::new();
    }
    let cut = name.len().saturating_sub(zone.len() + 1);
    match (name.get(..cut), name.get(cut..)) {
        (Some(head), Some(tail))
            if tail.len() == zone.len() + 1
                && tail.starts_with('.')
                && tail.get(1..).is_some_and(|t| t.eq_ignore_ascii_case(zone)) =>
        {
            head.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// A name as the traits want it: fully qualified, without a trailing dot.
pub(crate) fn qualified(zone: &str, name: &str) -> String {
    let zone = bare(zone);
    let name = bare(name);
    let relative = relative(zone, name);
    if relative.is_empty() {
        zone.to_owned()
    } else {
        format!("{relative}.{zone}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_both_ways() {
        let zone = "codetesters.uk";
        assert_eq!(relative(zone, "www.codetesters.uk"), "www");
        assert_eq!(relative(zone, "WWW.Codetesters.UK."), "WWW");
        assert_eq!(relative(zone, "codetesters.uk"), "");
        assert_eq!(relative(zone, "a.b.codetesters.uk"), "a.b");
        assert_eq!(relative(zone, "www"), "www");
        assert_eq!(relative(zone, "xcodetesters.uk"), "xcodetesters.uk");
        assert_eq!(qualified(zone, "www"), "www.codetesters.uk");
        assert_eq!(qualified(zone, ""), "codetesters.uk");
        assert_eq!(qualified(zone, "www.codetesters.uk"), "www.codetesters.uk");
    }
}
