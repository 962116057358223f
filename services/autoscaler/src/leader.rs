//! One leader per region. [`supervise`] follows the desired state; for every region deployed it keeps
//! trying to hold the region's lease (`autoscaler.region.<deployment>.<region>` in the lease bucket). The
//! replica that holds it runs the region's [`crate::region::lead`] and renews the lease every third of its
//! TTL by compare-and-set on the revision it last wrote — the fencing token: when a renewal finds another
//! revision, somebody else took the region over (this replica was paused past the TTL, say) and its work
//! stops at once, as it does when renewals keep failing for a whole TTL. A replica that dies stops
//! renewing; another takes the region over once the lease expires: within `lease_ttl` plus a third of it
//! (how often a waiting replica tries again).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla_bus::lease::Acquire;
use flotilla_bus::state::Change;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::service::Autoscaler;

/// How long releasing a lease at shutdown may take (it expires by itself anyway).
const RELEASE_TIMEOUT: Duration = Duration::from_millis(500);

/// The lease key of a region.
pub fn lease_key(deployment: &str, region: &str) -> Result<String, flotilla_bus::BusError> {
    Ok(format!(
        "autoscaler.region.{}",
        crate::service::region_key(deployment, region)?
    ))
}

/// Follows the desired state and keeps one leadership loop per deployed region until `shutdown`.
pub async fn supervise(autoscaler: Arc<Autoscaler>, shutdown: CancellationToken) {
    let mut slots: BTreeMap<(String, String), (CancellationToken, JoinHandle<()>)> = BTreeMap::new();
    'follow: loop {
        let mut follower = match autoscaler.desired.follow(None).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the desired state; trying again");
                tokio::select! {
                    _ = shutdown.cancelled() => break 'follow,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'follow,
                }
            }
        };
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => break 'follow,
                c = follower.next() => c,
            };
            match change {
                None => continue 'follow,
                Some(Err(e)) => tracing::warn!(error = %e, "a desired state that does not decode"),
                Some(Ok(Change::Current | Change::Put { .. } | Change::Removed { .. })) => {}
            }
            // The regions deployed now.
            let wanted: BTreeMap<(String, String), ()> = follower
                .values()
                .values()
                .flat_map(|d| {
                    d.deployment
                        .regions
                        .iter()
                        .map(|r| ((d.deployment.name.clone(), r.name.clone()), ()))
                })
                .collect();
            slots.retain(|key, (token, _)| {
                let keep = wanted.contains_key(key);
                if !keep {
                    tracing::info!(deployment = %key.0, region = %key.1, "region withdrawn: its leadership ends");
                    token.cancel();
                }
                keep
            });
            for key in wanted.keys() {
                if !slots.contains_key(key) {
                    let token = shutdown.child_token();
                    let task = tokio::spawn(lead_while_held(
                        Arc::clone(&autoscaler),
                        key.0.clone(),
                        key.1.clone(),
                        token.clone(),
                    ));
                    slots.insert(key.clone(), (token, task));
                }
            }
        }
    }
    for (_, (token, task)) in slots {
        token.cancel();
        let _ = task.await;
    }
}

/// Tries to hold the region's lease until `stop`; while held, leads the region.
async fn lead_while_held(
    autoscaler: Arc<Autoscaler>,
    deployment: String,
    region: String,
    stop: CancellationToken,
) {
    let Ok(key) = lease_key(&deployment, &region) else {
        return;
    };
    let ttl = autoscaler.settings.lease_ttl;
    let every = ttl / 3;
    while !stop.is_cancelled() {
        let acquired = tokio::select! {
            _ = stop.cancelled() => return,
            a = autoscaler.leases.acquire(&key, &autoscaler.instance, ttl) => a,
        };
        let revision = match acquired {
            Ok(Acquire::Acquired { revision }) => revision,
            Ok(Acquire::Held(_)) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => continue,
                }
            }
            Err(e) => {
                tracing::warn!(%deployment, %region, error = %e, "region lease");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => continue,
                }
            }
        };
        tracing::info!(%deployment, %region, instance = %autoscaler.instance, "leading the region");
        let work = stop.child_token();
        let mut lead = tokio::spawn(crate::region::lead(
            Arc::clone(&autoscaler),
            deployment.clone(),
            region.clone(),
            work.clone(),
        ));
        let mut revision = revision;
        let mut renewed = tokio::time::Instant::now();
        let ended = loop {
            tokio::select! {
                // A stop ends the region's work too: say "stopped", not "ended early".
                biased;
                _ = stop.cancelled() => break Ended::Stopped,
                _ = &mut lead => break Ended::Finished,
                _ = tokio::time::sleep(every) => {}
            }
            let renewal = tokio::select! {
                _ = stop.cancelled() => break Ended::Stopped,
                r = autoscaler.leases.renew(&key, &autoscaler.instance, revision, ttl) => r,
            };
            match renewal {
                Ok(Some(next)) => {
                    revision = next;
                    renewed = tokio::time::Instant::now();
                }
                Ok(None) => break Ended::Lost,
                // The bucket cannot be reached: keep leading until the lease has expired (another replica
                // may hold it from then on); the next renewal may work.
                Err(e) => {
                    tracing::warn!(%deployment, %region, error = %e, "renewing the region lease");
                    if renewed.elapsed() >= ttl {
                        break Ended::Lost;
                    }
                }
            }
        };
        work.cancel();
        // A finished task's handle must not be polled again (tokio panics: "JoinHandle polled after
        // completion").
        if !matches!(ended, Ended::Finished) {
            let _ = lead.await;
        }
        match ended {
            Ended::Lost => {
                tracing::warn!(%deployment, %region, "the region's lease was taken over: this replica stopped leading it");
            }
            Ended::Stopped => {
                // Best effort, and quick: a lease not released expires after its TTL.
                let _ = tokio::time::timeout(
                    RELEASE_TIMEOUT,
                    autoscaler.leases.release(&key, &autoscaler.instance, revision),
                )
                .await;
                return;
            }
            Ended::Finished => {
                tracing::warn!(%deployment, %region, "leading the region ended early; letting go and trying again");
                let _ = tokio::time::timeout(
                    RELEASE_TIMEOUT,
                    autoscaler.leases.release(&key, &autoscaler.instance, revision),
                )
                .await;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }
    }
}

/// Why a region's leadership ended.
enum Ended {
    /// Asked to stop (shutdown, region withdrawn).
    Stopped,
    /// Another replica took the lease over.
    Lost,
    /// The region's work ended by itself.
    Finished,
}
