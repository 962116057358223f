//! Region locks: one piece of work per region at a time — an apply, a machine-level command, a destroy or
//! a reconcile pass — in this process (a mutex) and across replicas (a lease in the NATS KV bucket,
//! compare-and-set on its revision, renewed while the work runs). Create fencing alone only protects
//! attempts that follow each other; two at once could each create what the other does not yet see.
//!
//! The lease revision is the fencing token: a renewal is a compare-and-set on the revision this replica
//! last wrote. If it fails, somebody else took the lease over (this replica was paused past the TTL, say),
//! and [`RegionGuard::lost`] fires: the work guarded by it is stopped at its next await point and the
//! command retried, exactly as after a crash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_bus::lease::{Acquire, Leases};
use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a region lease lasts unless renewed; it is renewed every third of that while held, so a
/// replica that dies holds a region for at most this long.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// Why a region could not be held.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lease bucket could not be read or written.
    #[error("region lease {key}: {reason}")]
    Lease {
        /// The lease key.
        key: String,
        /// What failed.
        reason: String,
    },
}

/// The region locks of one provisioner instance.
pub struct RegionLocks {
    local: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    leases: Option<Leases>,
    holder: String,
    /// How often a lease held by another replica is tried again.
    poll: Duration,
    /// How long a lease lasts unless renewed.
    ttl: Duration,
}

/// A region held: released (lease included) when dropped.
pub struct RegionGuard {
    _local: OwnedMutexGuard<()>,
    lease: Option<HeldLease>,
    lost: CancellationToken,
}

impl RegionGuard {
    /// Resolves when the lease was taken over by another replica (never, without a lease bucket): the
    /// work it guards must stop.
    pub async fn lost(&self) {
        self.lost.cancelled().await
    }

    /// Whether the lease was taken over.
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }
}

struct HeldLease {
    leases: Leases,
    key: String,
    holder: String,
    revision: Arc<AtomicU64>,
    renew: JoinHandle<()>,
}

impl Drop for RegionGuard {
    fn drop(&mut self) {
        if let Some(held) = self.lease.take() {
            held.renew.abort();
            if self.lost.is_cancelled() {
                // Somebody else holds it now: nothing of ours to release.
                return;
            }
            let revision = held.revision.load(Ordering::SeqCst);
            // Best effort: a lease not released expires after its TTL.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = held.leases.release(&held.key, &held.holder, revision).await;
                });
            }
        }
    }
}

impl RegionLocks {
    /// Locks for an instance named `holder`; `leases` `None` for a single process (tests, benchmarks).
    pub fn new(leases: Option<Leases>, holder: String, poll: Duration) -> Self {
        Self {
            local: Mutex::new(HashMap::new()),
            leases,
            holder,
            poll,
            ttl: LEASE_TTL,
        }
    }

    /// The same, with leases lasting `ttl` (renewed every third of it).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn local(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut local = match self.local.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(local.entry(key.to_owned()).or_default())
    }

    /// Holds the region, waiting for whoever has it.
    pub async fn hold(&self, deployment: &str, region: &str) -> Result<RegionGuard, LockError> {
        let key = lease_key(deployment, region);
        let local = self.local(&key).lock_owned().await;
        let mut failures = 0;
        loop {
            match self.try_lease(&key, &local).await {
                Ok(Some((lease, lost))) => {
                    return Ok(RegionGuard {
                        _local: local,
                        lease,
                        lost,
                    });
                }
                Ok(None) => {}
                // A compare-and-set lost to a concurrent write (a release racing our acquire): try again, a
                // few times, before calling the bucket broken.
                Err(e) => {
                    failures += 1;
                    if failures >= 5 {
                        return Err(e);
                    }
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Holds the region if nobody does; `None` when it is busy (the periodic reconcile skips it).
    pub async fn try_hold(&self, deployment: &str, region: &str) -> Result<Option<RegionGuard>, LockError> {
        let key = lease_key(deployment, region);
        let Ok(local) = self.local(&key).try_lock_owned() else {
            return Ok(None);
        };
        Ok(self
            .try_lease(&key, &local)
            .await?
            .map(|(lease, lost)| RegionGuard {
                _local: local,
                lease,
                lost,
            }))
    }

    /// `Some(lease)` when acquired (`Some(None)` without a lease bucket), `None` when another replica
    /// holds it.
    async fn try_lease(
        &self,
        key: &str,
        _local: &OwnedMutexGuard<()>,
    ) -> Result<Option<(Option<HeldLease>, CancellationToken)>, LockError> {
        let lost = CancellationToken::new();
        let Some(leases) = &self.leases else {
            return Ok(Some((None, lost)));
        };
        let failed = |e: flotilla_bus::BusError| LockError::Lease {
            key: key.to_owned(),
            reason: e.to_string(),
        };
        match leases
            .acquire(key, &self.holder, self.ttl)
            .await
            .map_err(failed)?
        {
            Acquire::Held(_) => Ok(None),
            Acquire::Acquired { revision } => {
                let revision = Arc::new(AtomicU64::new(revision));
                let renew = tokio::spawn(renew(
                    leases.clone(),
                    key.to_owned(),
                    self.holder.clone(),
                    Arc::clone(&revision),
                    self.ttl,
                    lost.clone(),
                ));
                Ok(Some((
                    Some(HeldLease {
                        leases: leases.clone(),
                        key: key.to_owned(),
                        holder: self.holder.clone(),
                        revision,
                        renew,
                    }),
                    lost,
                )))
            }
        }
    }
}

/// Renews the lease every third of its TTL by compare-and-set on the revision last written; a lost
/// compare-and-set means another replica took it over: `lost` is cancelled and renewal stops.
async fn renew(
    leases: Leases,
    key: String,
    holder: String,
    revision: Arc<AtomicU64>,
    ttl: Duration,
    lost: CancellationToken,
) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match leases
            .renew(&key, &holder, revision.load(Ordering::SeqCst), ttl)
            .await
        {
            Ok(Some(r)) => revision.store(r, Ordering::SeqCst),
            Ok(None) => {
                let by = leases.holder(&key).await.ok().flatten().map(|r| r.holder);
                tracing::error!(%key, taken_by = ?by, "region lease taken over while held; stopping the work it guards");
                lost.cancel();
                return;
            }
            Err(e) => tracing::warn!(%key, error = %e, "renewing a region lease failed; retrying"),
        }
    }
}

/// The lease key of a region (deployment and region are subject tokens: valid KV key characters).
fn lease_key(deployment: &str, region: &str) -> String {
    format!("provisioner.region.{deployment}.{region}")
}
