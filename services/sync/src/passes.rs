//! What the replicator's last passes of each deployment did, shared between replicas: the replica running a
//! deployment (holding its lease) writes its pass records to the `flotilla_sync_passes` KV bucket after each
//! run, and `flotilla.api.sync.show` — answered by whichever replica the request reaches — reads them there.

use flotilla_bus::state::Bucket;
use flotilla_proto::SyncPasses;

/// The KV bucket of pass records.
pub const PASSES_BUCKET: &str = "flotilla_sync_passes";

/// The pass records bucket, opened (created when needed) on first use and again after a failure.
pub struct PassRecords {
    topology: flotilla_bus::Topology,
    config: flotilla_bus::TopologyConfig,
    bucket: tokio::sync::OnceCell<Bucket<SyncPasses>>,
}

impl PassRecords {
    /// The records of `topology` (replicated as `config` says).
    pub fn new(topology: flotilla_bus::Topology, config: flotilla_bus::TopologyConfig) -> Self {
        Self {
            topology,
            config,
            bucket: tokio::sync::OnceCell::new(),
        }
    }

    async fn bucket(&self) -> Option<&Bucket<SyncPasses>> {
        let opened = self
            .bucket
            .get_or_try_init(|| {
                self.topology.service_bucket(
                    &self.config,
                    PASSES_BUCKET,
                    "Flotilla sync: what the replicator's last passes of each deployment did",
                )
            })
            .await;
        match opened {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(error = %e, "sync: the pass records bucket cannot be opened; `show` answers from this replica's memory");
                None
            }
        }
    }

    /// Leaves `passes` as its deployment's records (a failure is logged: the next run writes them again).
    pub async fn put(&self, passes: &SyncPasses) {
        if let Some(b) = self.bucket().await
            && let Err(e) = b.put(&passes.deployment, passes).await
        {
            tracing::warn!(deployment = %passes.deployment, error = %e, "sync: the pass records were not written");
        }
    }

    /// `deployment`'s records; `None` when there are none or the bucket cannot be read.
    pub async fn get(&self, deployment: &str) -> Option<SyncPasses> {
        match self.bucket().await?.get(deployment).await {
            Ok(found) => found.map(|v| v.value),
            Err(e) => {
                tracing::warn!(%deployment, error = %e, "sync: the pass records cannot be read");
                None
            }
        }
    }

    /// Forgets `deployment`'s records (it is no longer deployed).
    pub async fn remove(&self, deployment: &str) {
        if let Some(b) = self.bucket().await
            && let Err(e) = b.remove(deployment).await
        {
            tracing::warn!(%deployment, error = %e, "sync: the pass records were not removed");
        }
    }
}
