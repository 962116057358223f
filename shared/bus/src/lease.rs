//! Leases: one holder at a time for a named piece of work, in a KV bucket, by compare-and-set on revision.
//!
//! A lease records its holder and expiry. Acquiring writes only if the revision read is still the latest, so
//! two contenders can never both win; an expired lease can be taken over the same way. Expiry compares wall
//! clocks, so hosts need roughly synchronised clocks (NTP); keep `ttl` well above the expected skew.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::BusError;

/// What a lease holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Who holds it.
    pub holder: String,
    /// Until when.
    pub expires_at: DateTime<Utc>,
}

/// The result of an attempt to acquire a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// We hold it (newly or renewed); keep the revision to renew or release.
    Acquired {
        /// Revision of our write.
        revision: u64,
    },
    /// Somebody else holds it.
    Held(LeaseRecord),
}

/// Leases in one KV bucket.
///
/// The revision returned by [`Leases::acquire`] is the fencing token: work done under a lease should be
/// guarded by it (release and renew are refused for a stale revision). `holder` must be unique per process
/// instance, not per service, or two replicas would both believe they hold the lease.
#[derive(Clone)]
pub struct Leases {
    store: kv::Store,
    max_ttl: Duration,
}

impl Leases {
    /// Leases kept in `store`, whose entries the bucket expires after `max_ttl` (a lease may not be longer,
    /// or the bucket would drop it while it is held).
    pub fn new(store: kv::Store, max_ttl: Duration) -> Self {
        Self { store, max_ttl }
    }

    /// Acquires (or renews) the lease `key` for `holder` for `ttl`.
    pub async fn acquire(&self, key: &str, holder: &str, ttl: Duration) -> Result<Acquire, BusError> {
        if ttl > self.max_ttl {
            return Err(BusError::Options(format!(
                "lease ttl {ttl:?} exceeds the lease bucket's max age {:?}",
                self.max_ttl
            )));
        }
        let record = LeaseRecord {
            holder: holder.to_owned(),
            expires_at: Utc::now()
                + chrono::Duration::from_std(ttl).map_err(|e| BusError::js("lease ttl", e))?,
        };
        let value: bytes::Bytes = serde_json::to_vec(&record)
            .map_err(|e| BusError::js("encode lease", e))?
            .into();
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|e| BusError::js("read lease", e))?;
        let result = match entry {
            None => self
                .store
                .create(key, value)
                .await
                .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.to_string())),
            Some(entry) => {
                if entry.operation == Operation::Put {
                    // An unreadable record is treated as expired: it can only have been written by a bug,
                    // and a lease nobody can renew must not block the work forever.
                    if let Ok(current) = serde_json::from_slice::<LeaseRecord>(&entry.value)
                        && current.holder != holder
                        && current.expires_at > Utc::now()
                    {
                        return Ok(Acquire::Held(current));
                    }
                }
                self.store
                    .update(key, value, entry.revision)
                    .await
                    .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.to_string()))
            }
        };
        match result {
            Ok(revision) => Ok(Acquire::Acquired { revision }),
            // Lost a race: report who won.
            Err((true, _)) => match self.holder(key).await? {
                Some(current) => Ok(Acquire::Held(current)),
                None => Err(BusError::js(
                    "acquire lease",
                    "lost a race to a holder that released at once",
                )),
            },
            Err((false, reason)) => Err(BusError::js(
                "acquire lease",
                format!("write to {key} failed: {reason}"),
            )),
        }
    }

    /// Renews the lease `holder` holds at `revision` — the fencing token: the write is made only if nobody
    /// wrote the lease since. `Ok(Some(new revision))` when renewed; `Ok(None)` when the lease was taken
    /// over (or released) meanwhile, so the holder has lost it and must stop the work it guards.
    pub async fn renew(
        &self,
        key: &str,
        holder: &str,
        revision: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, BusError> {
        if ttl > self.max_ttl {
            return Err(BusError::Options(format!(
                "lease ttl {ttl:?} exceeds the lease bucket's max age {:?}",
                self.max_ttl
            )));
        }
        let record = LeaseRecord {
            holder: holder.to_owned(),
            expires_at: Utc::now()
                + chrono::Duration::from_std(ttl).map_err(|e| BusError::js("lease ttl", e))?,
        };
        let value: bytes::Bytes = serde_json::to_vec(&record)
            .map_err(|e| BusError::js("encode lease", e))?
            .into();
        match self.store.update(key, value, revision).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(BusError::js("renew lease", e)),
        }
    }

    /// The longest lease this bucket allows.
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// Releases the lease if `holder` holds it at `revision`; a lease taken over since is left alone.
    pub async fn release(&self, key: &str, holder: &str, revision: u64) -> Result<bool, BusError> {
        let record = LeaseRecord {
            holder: holder.to_owned(),
            expires_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let value: bytes::Bytes = serde_json::to_vec(&record)
            .map_err(|e| BusError::js("encode lease", e))?
            .into();
        match self.store.update(key, value, revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(BusError::js("release lease", e)),
        }
    }

    /// The current holder of `key`, if the lease is held and not expired.
    pub async fn holder(&self, key: &str) -> Result<Option<LeaseRecord>, BusError> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|e| BusError::js("read lease", e))?;
        Ok(entry
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| serde_json::from_slice::<LeaseRecord>(&e.value).ok())
            .filter(|r| r.expires_at > Utc::now()))
    }
}
