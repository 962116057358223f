//! `POST /zones/{id}/dns_records/batch`: deletes → patches → posts in one transaction, 200 changes per call.
//! A chunk Cloudflare refuses is replayed change by change (as external-dns does), so one bad record does
//! not hold back the others; the first error is returned once every change was tried.

use flotilla_cloud::{CloudError, Dns, DnsBatch, DnsRecord, NewDnsRecord, Result, Zone};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Cloudflare;
use crate::dns::{record_body, update_body};

/// Most changes in one batch call.
pub(crate) const BATCH_LIMIT: usize = 200;

/// One change, in the order Cloudflare applies them.
#[derive(Debug, Clone, Copy)]
enum Change<'a> {
    Delete(&'a str),
    Update(&'a DnsRecord),
    Create(&'a NewDnsRecord),
}

impl Cloudflare {
    pub(crate) async fn batch(&self, zone: &Zone, batch: &DnsBatch) -> Result<()> {
        let changes: Vec<Change<'_>> = batch
            .deletes
            .iter()
            .map(|id| Change::Delete(id))
            .chain(batch.updates.iter().map(Change::Update))
            .chain(batch.creates.iter().map(Change::Create))
            .collect();
        let path = format!("zones/{}/dns_records/batch", zone.id);
        let mut first_error: Option<CloudError> = None;
        for chunk in changes.chunks(BATCH_LIMIT) {
            let body = chunk_body(chunk);
            match self.call::<Value>(Method::POST, &path, Some(&body)).await {
                Ok(_) => {}
                // Replay only what Cloudflare certainly refused. A timeout, a 5xx or a rate limit may hide
                // a batch that was applied (replaying its creates would duplicate records) or an API that
                // needs a rest: hand those back, so the caller lists again and plans afresh.
                Err(e)
                    if !matches!(
                        e,
                        CloudError::Invalid { .. }
                            | CloudError::Conflict { .. }
                            | CloudError::NotFound { .. }
                    ) =>
                {
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(zone = %zone.name, changes = chunk.len(), error = %e,
                        "DNS batch refused; applying its changes one by one");
                    if let Some(replay_error) = self.replay(zone, chunk).await {
                        first_error.get_or_insert(replay_error);
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Applies `changes` one at a time, all of them, and returns the first error.
    async fn replay(&self, zone: &Zone, changes: &[Change<'_>]) -> Option<CloudError> {
        let mut first = None;
        for change in changes {
            let result = match change {
                Change::Delete(id) => self.delete_record(zone, id).await,
                Change::Update(record) => self.update_record(zone, record).await.map(drop),
                Change::Create(record) => self.create_record(zone, record).await.map(drop),
            };
            if let Err(e) = result {
                first.get_or_insert(e);
            }
        }
        first
    }
}

fn chunk_body(chunk: &[Change<'_>]) -> Value {
    let mut deletes = Vec::new();
    let mut patches = Vec::new();
    let mut posts = Vec::new();
    for change in chunk {
        match change {
            Change::Delete(id) => deletes.push(json!({ "id": id })),
            Change::Update(record) => {
                let mut patch = update_body(record);
                if let Some(fields) = patch.as_object_mut() {
                    fields.insert("id".into(), json!(record.id));
                }
                patches.push(patch);
            }
            Change::Create(r) => posts.push(record_body(
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
