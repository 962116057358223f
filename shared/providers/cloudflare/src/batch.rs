//! `POST /zones/{id}/dns_records/batch`: deletes → patches → posts in one transaction, 200 changes per call.
//! A chunk Cloudflare refuses is replayed change by change (as external-dns does), so one bad record does
//! not hold back the others; each refused change is reported with its error once every change was tried.

use flotilla_cloud::{BatchReport, Dns, DnsBatch, DnsChange, Result, Zone};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Cloudflare;
use crate::dns::{record_body, update_body};

/// Most changes in one batch call.
pub(crate) const BATCH_LIMIT: usize = 200;

impl Cloudflare {
    pub(crate) async fn batch(&self, zone: &Zone, batch: &DnsBatch) -> Result<BatchReport> {
        let changes: Vec<DnsChange> = batch.changes().collect();
        let path = format!("zones/{}/dns_records/batch", zone.id);
        let mut report = BatchReport::default();
        for chunk in changes.chunks(BATCH_LIMIT) {
            let body = chunk_body(chunk);
            report.calls += 1;
            match self.call::<Value>(Method::POST, &path, Some(&body)).await {
                Ok(_) => {}
                // Replay only what Cloudflare certainly refused. A timeout, a 5xx or a rate limit may hide
                // a batch that was applied (replaying its creates would duplicate records) or an API that
                // needs a rest: hand those back, so the caller lists again and plans afresh.
                Err(e) if !e.is_refusal() => return Err(e),
                Err(e) => {
                    tracing::warn!(zone = %zone.name, changes = chunk.len(), error = %e,
                        "DNS batch refused; applying its changes one by one");
                    self.replay(zone, chunk, &mut report).await?;
                }
            }
        }
        Ok(report)
    }

    /// Applies `changes` one at a time: each refused one goes into `report`; any other failure stops.
    async fn replay(&self, zone: &Zone, changes: &[DnsChange], report: &mut BatchReport) -> Result<()> {
        for change in changes {
            report.calls += 1;
            let result = match change {
                DnsChange::Delete(id) => self.delete_record(zone, id).await,
                DnsChange::Update(record) => self.update_record(zone, record).await.map(drop),
                DnsChange::Create(record) => self.create_record(zone, record).await.map(drop),
            };
            match result {
                Ok(()) => {}
                Err(e) if e.is_refusal() => report.refused.push((change.clone(), e)),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn chunk_body(chunk: &[DnsChange]) -> Value {
    let mut deletes = Vec::new();
    let mut patches = Vec::new();
    let mut posts = Vec::new();
    for change in chunk {
        match change {
            DnsChange::Delete(id) => deletes.push(json!({ "id": id })),
            DnsChange::Update(record) => {
                let mut patch = update_body(record);
                if let Some(fields) = patch.as_object_mut() {
                    fields.insert("id".into(), json!(record.id));
                }
                patches.push(patch);
            }
            DnsChange::Create(r) => posts.push(record_body(
                &r.kind,
                &r.name,
                &r.content,
                r.ttl,
                r.proxied,
                r.comment.as_deref(),
            )),
        }
    }
    json!({ "deletes": deletes, "patches": patches, "posts": posts })
}
