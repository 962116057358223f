//! Zones and DNS records.

use async_trait::async_trait;
use flotilla_cloud::{
    BatchReport, CloudError, Dns, DnsBatch, DnsRecord, NewDnsRecord, ProviderKind, Result, Zone,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{Cloudflare, P};

/// Zones per page (Cloudflare's maximum for `/zones`).
pub(crate) const ZONES_PER_PAGE: u32 = 50;
/// Records per page.
pub(crate) const RECORDS_PER_PAGE: u32 = 1000;

#[derive(Debug, Deserialize)]
pub(crate) struct WireZone {
    id: String,
    name: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireRecord {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    /// Absent for records whose data is structured (SRV, CAA …).
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    proxied: Option<bool>,
    #[serde(default)]
    ttl: Option<u32>,
    #[serde(default)]
    comment: Option<String>,
}

impl From<WireRecord> for DnsRecord {
    fn from(r: WireRecord) -> Self {
        DnsRecord {
            id: r.id,
            kind: r.kind,
            name: r.name,
            content: r.content.unwrap_or_default(),
            ttl: r.ttl.unwrap_or(1),
            proxied: r.proxied,
            comment: r.comment,
        }
    }
}

#[async_trait]
impl Dns for Cloudflare {
    fn provider(&self) -> ProviderKind {
        P
    }

    async fn find_zone(&self, name: &str) -> Result<Option<Zone>> {
        let wanted = normalise(name);
        let zones: Vec<WireZone> = self.get_all("zones", &[("name", wanted)], ZONES_PER_PAGE).await?;
        zone_named(zones, name)
    }

    async fn list_records(
        &self,
        zone: &Zone,
        name: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<DnsRecord>> {
        let mut query = Vec::new();
        if let Some(kind) = kind {
            query.push(("type", kind.to_ascii_uppercase()));
        }
        if let Some(name) = name {
            query.push(("name", normalise(name)));
        }
        let records: Vec<WireRecord> = self
            .get_all(
                &format!("zones/{}/dns_records", zone.id),
                &query,
                RECORDS_PER_PAGE,
            )
            .await?;
        // Filtered here too: the filters are the server's to honour, the answer is ours to trust.
        let name = name.map(normalise);
        Ok(records
            .into_iter()
            .map(DnsRecord::from)
            .filter(|r| name.as_ref().is_none_or(|n| normalise(&r.name) == *n))
            .filter(|r| kind.is_none_or(|k| r.kind.eq_ignore_ascii_case(k)))
            .collect())
    }

    async fn create_record(&self, zone: &Zone, record: &NewDnsRecord) -> Result<DnsRecord> {
        let body = record_body(
            &record.kind,
            &record.name,
            &record.content,
            record.ttl,
            record.proxied,
            record.comment.as_deref(),
        );
        let created: WireRecord = self
            .call_for(
                Method::POST,
                &format!("zones/{}/dns_records", zone.id),
                Some(&body),
            )
            .await?;
        Ok(created.into())
    }

    async fn update_record(&self, zone: &Zone, record: &DnsRecord) -> Result<DnsRecord> {
        let body = update_body(record);
        let updated: WireRecord = self
            .call_for(
                Method::PATCH,
                &format!("zones/{}/dns_records/{}", zone.id, record.id),
                Some(&body),
            )
            .await?;
        Ok(updated.into())
    }

    async fn delete_record(&self, zone: &Zone, id: &str) -> Result<()> {
        let deleted = self
            .call::<Value>(
                Method::DELETE,
                &format!("zones/{}/dns_records/{id}", zone.id),
                None,
            )
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn apply_batch(&self, zone: &Zone, batch: &DnsBatch) -> Result<BatchReport> {
        self.batch(zone, batch).await
    }
}

/// The zone named `name` among `zones`: `None` when there is none, an error when several are and none of
/// them is the only public one.
pub(crate) fn zone_named(zones: Vec<WireZone>, name: &str) -> Result<Option<Zone>> {
    let wanted = normalise(name);
    let mut matches: Vec<WireZone> = zones
        .into_iter()
        .filter(|z| normalise(&z.name) == wanted)
        .collect();
    // An internal zone may share its name with the public one; the public one is meant.
    if matches.len() > 1 && matches.iter().any(|z| z.kind.as_deref() != Some("internal")) {
        matches.retain(|z| z.kind.as_deref() != Some("internal"));
    }
    match matches.as_slice() {
        [] => Ok(None),
        [zone] => Ok(Some(Zone {
            id: zone.id.clone(),
            name: zone.name.clone(),
        })),
        several => Err(CloudError::Conflict {
            provider: P,
            message: format!(
                "{} zones are named {name:?} ({}); cannot tell which is meant",
                several.len(),
                several
                    .iter()
                    .map(|z| z.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Lower case without the trailing dot.
pub(crate) fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_lowercase()
}

/// A record as Cloudflare takes it in a create (and in a batch `posts` entry).
pub(crate) fn record_body(
    kind: &str,
    name: &str,
    content: &str,
    ttl: u32,
    proxied: Option<bool>,
    comment: Option<&str>,
) -> Value {
    let mut body = Map::new();
    body.insert("type".into(), json!(kind));
    body.insert("name".into(), json!(name.trim_end_matches('.')));
    body.insert("content".into(), json!(content));
    // 0 is not a TTL Cloudflare takes; 1 means automatic.
    body.insert("ttl".into(), json!(ttl.max(1)));
    if let Some(proxied) = proxied {
        body.insert("proxied".into(), json!(proxied));
    }
    if let Some(comment) = comment {
        body.insert("comment".into(), json!(comment));
    }
    Value::Object(body)
}

/// A record as Cloudflare takes it in a PATCH (and, with its id, in a batch `patches` entry).
pub(crate) fn update_body(record: &DnsRecord) -> Value {
    record_body(
        &record.kind,
        &record.name,
        &record.content,
        record.ttl,
        record.proxied,
        record.comment.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_leave_out_what_is_not_set() {
        let b = record_body("A", "www.example.com.", "203.0.113.5", 0, None, None);
        assert_eq!(
            b,
            json!({"type": "A", "name": "www.example.com", "content": "203.0.113.5", "ttl": 1})
        );
        let b = record_body("A", "x", "y", 60, Some(true), Some("flotilla"));
        assert_eq!(
            (b["proxied"].clone(), b["comment"].clone()),
            (json!(true), json!("flotilla"))
        );
    }
}
