//! The loop a reacting service runs over its deployments: follow the desired state, the fleet view and the
//! health view; on a change (debounced), on a nudge (a command, an API call) and on a periodic resync,
//! reconcile each deployment touched — by the one replica holding the deployment's lease
//! (`<service>.<deployment>`). A reconcile that fails is tried again with a growing delay, so a 429 storm
//! slows convergence and never stops it; one may also ask to be run again at a given instant (an expiry, a
//! database that is not ready yet).
//!
//! Nothing is reconciled before the three views are replayed: a partial fleet would take away what the
//! machines not loaded yet still need.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flotilla_bus::BusError;
use flotilla_bus::lease::{Acquire, Leases};
use flotilla_bus::state::{Change, DesiredStates, FleetView, HealthView, PerMachine};
use flotilla_proto::{MachineHealth, MachineRecord};
use flotilla_spec::Deployment;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the loop has read of the three views.
#[derive(Debug, Default, Clone)]
pub struct Views {
    /// Every deployment's desired state, by name.
    pub deployments: BTreeMap<String, Deployment>,
    /// Every machine of the fleet view, by its key.
    pub fleet: BTreeMap<String, MachineRecord>,
    /// Every machine's health, by its key.
    pub health: BTreeMap<String, MachineHealth>,
}

impl Views {
    /// The machines of `deployment`.
    pub fn machines<'a>(&'a self, deployment: &'a str) -> impl Iterator<Item = &'a MachineRecord> + 'a {
        self.fleet.values().filter(move |m| m.deployment == deployment)
    }

    /// The health of `deployment`'s machines, by resource id.
    pub fn health_of(&self, deployment: &str) -> BTreeMap<&str, &MachineHealth> {
        self.health
            .values()
            .filter(|h| h.deployment == deployment)
            .map(|h| (h.resource_id.as_str(), h))
            .collect()
    }
}

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Done; run again on the next change or resync.
    Done,
    /// Done for now; run again at this instant too (an entry expires, a database becomes ready …).
    Again(Instant),
}

/// One service's reconcile of one deployment.
pub trait Reconciler: Send + Sync + 'static {
    /// The service's name: in logs, and in the lease key `<service>.<deployment>`.
    fn service(&self) -> &'static str;

    /// Makes `deployment` what `views` say, once; an error is tried again with a growing delay.
    fn reconcile(&self, views: &Views, deployment: &str) -> impl Future<Output = Result<Ran, String>> + Send;
}

/// The loop's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopSettings {
    /// Every deployment is reconciled at least this often.
    pub resync: Duration,
    /// Changes within this window are reconciled together.
    pub debounce: Duration,
    /// How long a replica's hold on a deployment lasts unless renewed.
    pub lease_ttl: Duration,
}

impl LoopSettings {
    /// Checks the timing against the bus (for a service's `ServiceSettings::validate`): a positive resync,
    /// and a lease of at least 3 s that the lease bucket keeps (at most `bus.lease_max_age`).
    pub fn validate(&self, bus: &flotilla_bus::TopologyConfig) -> Result<(), String> {
        if self.resync.is_zero() {
            return Err("resync_interval must be positive".into());
        }
        if self.lease_ttl < Duration::from_secs(3) || self.lease_ttl > bus.lease_max_age {
            return Err(format!(
                "lease_ttl {:?} must be at least 3s and at most bus.lease_max_age {:?}",
                self.lease_ttl, bus.lease_max_age
            ));
        }
        Ok(())
    }
}

/// The views and leases the loop reads.
pub struct Sources {
    /// The desired-state bucket.
    pub desired: DesiredStates,
    /// The fleet view.
    pub fleet: FleetView,
    /// The health view.
    pub health: HealthView,
    /// The leases (one replica per deployment).
    pub leases: Leases,
}

/// Asks the loop to reconcile a deployment soon (a command, an API call).
#[derive(Debug, Clone)]
pub struct Nudge(mpsc::UnboundedSender<String>);

impl Nudge {
    /// Reconcile `deployment` at the next debounce.
    pub fn deployment(&self, deployment: &str) {
        let _ = self.0.send(deployment.to_owned());
    }
}

/// The longest wait between two tries of a failing deployment (the resync interval when shorter).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the loop keeps between runs.
#[derive(Default)]
struct State {
    views: Views,
    /// Consecutive failed runs per deployment.
    failures: BTreeMap<String, u32>,
    /// When a deployment may run again after a failure (with back-off) or when another replica's lease on it
    /// runs out: until then it waits, whatever changes.
    retry_at: BTreeMap<String, Instant>,
    /// When a deployment's reconcile asked to run again ([`Ran::Again`]: an address expires …): a wake-up,
    /// not a wait — a change before it runs the deployment at once.
    wake_at: BTreeMap<String, Instant>,
    /// The leases this replica holds (key → revision), released when it stops so that another replica (or
    /// this one restarted) takes over at once.
    held: BTreeMap<String, u64>,
}

/// How one deployment's turn ended.
enum Turn {
    Ran(Ran),
    HeldElsewhere(Instant),
}

/// The loop of one process over every deployment, for one [`Reconciler`].
pub struct DeploymentLoop<R> {
    reconciler: Arc<R>,
    settings: LoopSettings,
    sources: Sources,
    instance: String,
    nudge: mpsc::UnboundedSender<String>,
    nudged: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl<R: Reconciler> DeploymentLoop<R> {
    /// A loop running `reconciler` over `sources`.
    pub fn new(reconciler: Arc<R>, settings: LoopSettings, sources: Sources) -> Self {
        let (nudge, nudged) = mpsc::unbounded_channel();
        Self {
            reconciler,
            settings,
            sources,
            instance: uuid::Uuid::now_v7().to_string(),
            nudge,
            nudged: tokio::sync::Mutex::new(nudged),
        }
    }

    /// A handle that asks for a deployment's reconcile.
    pub fn nudge(&self) -> Nudge {
        Nudge(self.nudge.clone())
    }

    /// This replica's id as lease holder.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Runs until `stop`; a view follower that fails is started again.
    pub async fn run(&self, stop: CancellationToken) {
        let service = self.reconciler.service();
        loop {
            match self.follow(&stop).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(service, error = %e, "following the views failed; starting again");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn follow(&self, stop: &CancellationToken) -> Result<(), BusError> {
        let service = self.reconciler.service();
        // Set-up waits on JetStream: a stop must not wait for it.
        let set_up = async {
            let nudged = self.nudged.lock().await;
            let desired = self.sources.desired.follow(None).await?;
            let fleet = self.sources.fleet.follow(None).await?;
            let health = self.sources.health.follow(None).await?;
            Ok::<_, BusError>((nudged, desired, fleet, health))
        };
        let (mut nudged, mut desired, mut fleet, mut health) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = set_up => r?,
        };
        let mut caught_up = [false; 3];
        let mut state = State::default();
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut renew = tokio::time::interval(self.settings.lease_ttl / 3);
        let mut resync = tokio::time::interval(self.settings.resync);
        let debounce = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(debounce);
        let mut armed = false;
        let retry = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(retry);
        loop {
            let next_retry = state
                .retry_at
                .values()
                .chain(state.wake_at.values())
                .min()
                .copied();
            if let Some(at) = next_retry {
                retry.as_mut().reset(at);
            }
            tokio::select! {
                _ = stop.cancelled() => {
                    self.let_go(&state).await;
                    return Ok(());
                }
                c = desired.next() => match c {
                    None => return Err(BusError::Options("the desired-state follower ended".into())),
                    Some(Ok(Change::Put { value, .. })) => {
                        dirty.insert(value.deployment.name.clone());
                        state.views.deployments.insert(value.deployment.name.clone(), value.deployment);
                    }
                    Some(Ok(Change::Removed { key, .. })) => {
                        state.views.deployments.remove(&key);
                    }
                    Some(Ok(Change::Current)) => caught_up[0] = true,
                    Some(Err(e)) => tracing::warn!(service, error = %e, "a desired state that does not decode"),
                },
                c = fleet.next() => caught_up[1] |= machine_change(service, "fleet", c, &mut state.views.fleet, &mut dirty)?,
                c = health.next() => caught_up[2] |= machine_change(service, "health", c, &mut state.views.health, &mut dirty)?,
                Some(name) = nudged.recv() => {
                    // Asked for: run it even if it is waiting for a timer.
                    state.retry_at.remove(&name);
                    dirty.insert(name);
                }
                _ = resync.tick() => {
                    dirty.extend(state.views.deployments.keys().cloned());
                }
                _ = renew.tick(), if !state.held.is_empty() => {
                    self.renew(&mut state).await;
                }
                _ = &mut retry, if next_retry.is_some() => {
                    let now = Instant::now();
                    let due: Vec<String> = state.retry_at.iter().chain(state.wake_at.iter()).filter(|(_, at)| **at <= now).map(|(n, _)| n.clone()).collect();
                    for name in due {
                        state.retry_at.remove(&name);
                        state.wake_at.remove(&name);
                        dirty.insert(name);
                    }
                }
                _ = &mut debounce, if armed => {
                    armed = false;
                    let now = Instant::now();
                    for name in std::mem::take(&mut dirty) {
                        // A deployment backing off (or waiting for another replica's lease) waits for its
                        // timer, whatever else changes meanwhile.
                        if state.retry_at.get(&name).is_some_and(|at| *at > now) {
                            continue;
                        }
                        let result = tokio::select! {
                            _ = stop.cancelled() => {
                                self.let_go(&state).await;
                                return Ok(());
                            }
                            r = self.turn(&mut state, &name) => r,
                        };
                        match result {
                            Ok(Turn::Ran(ran)) => {
                                state.failures.remove(&name);
                                state.retry_at.remove(&name);
                                match ran {
                                    Ran::Done => state.wake_at.remove(&name),
                                    Ran::Again(at) => state.wake_at.insert(name, at),
                                };
                            }
                            Ok(Turn::HeldElsewhere(until)) => {
                                state.retry_at.insert(name, until);
                            }
                            Err(e) => {
                                let n = state.failures.get(&name).map_or(1, |n| n + 1);
                                let wait = backoff(n, self.settings.resync);
                                tracing::warn!(service, deployment = %name, error = %e, attempt = n, retry_in = ?wait,
                                    "reconcile failed; trying again");
                                state.failures.insert(name.clone(), n);
                                state.retry_at.insert(name, Instant::now() + wait);
                            }
                        }
                    }
                    continue;
                }
            }
            if !dirty.is_empty() && !armed && caught_up.iter().all(|c| *c) {
                debounce.as_mut().reset(Instant::now() + self.settings.debounce);
                armed = true;
            }
        }
    }

    /// One deployment's turn: its lease, then its reconcile.
    async fn turn(&self, state: &mut State, name: &str) -> Result<Turn, String> {
        if !state.views.deployments.contains_key(name) {
            return Ok(Turn::Ran(Ran::Done));
        }
        let key = format!("{}.{name}", self.reconciler.service());
        match self
            .sources
            .leases
            .acquire(&key, &self.instance, self.settings.lease_ttl)
            .await
            .map_err(|e| e.to_string())?
        {
            Acquire::Acquired { revision } => {
                state.held.insert(key, revision);
            }
            Acquire::Held(by) => {
                state.held.remove(&key);
                tracing::debug!(service = self.reconciler.service(), deployment = %name, holder = %by.holder,
                    "another replica keeps this deployment");
                // Look again when its lease runs out (it renews it while it lives).
                let left = (by.expires_at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .min(self.settings.lease_ttl);
                return Ok(Turn::HeldElsewhere(
                    Instant::now() + left + Duration::from_millis(100),
                ));
            }
        }
        self.reconciler.reconcile(&state.views, name).await.map(Turn::Ran)
    }

    /// Renews the leases this replica holds (every third of their time), so that it keeps a deployment
    /// between runs and another replica never takes it over while it lives; a lease lost is forgotten.
    async fn renew(&self, state: &mut State) {
        let service = self.reconciler.service();
        for key in state.held.keys().cloned().collect::<Vec<_>>() {
            match self
                .sources
                .leases
                .acquire(&key, &self.instance, self.settings.lease_ttl)
                .await
            {
                Ok(Acquire::Acquired { revision }) => {
                    state.held.insert(key, revision);
                }
                Ok(Acquire::Held(by)) => {
                    tracing::warn!(service, lease = %key, holder = %by.holder, "a lease was lost to another replica");
                    state.held.remove(&key);
                }
                Err(e) => tracing::warn!(service, lease = %key, error = %e, "a lease was not renewed"),
            }
        }
    }

    /// Releases the leases this replica holds (bounded: a stopping service must stop within 2 s).
    async fn let_go(&self, state: &State) {
        let release = async {
            for (key, revision) in &state.held {
                if let Err(e) = self.sources.leases.release(key, &self.instance, *revision).await {
                    tracing::debug!(lease = %key, error = %e, "a lease was not released; it runs out");
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), release).await;
    }
}

/// Follows one change of a machine view (fleet or health) into `map`, marking its deployment dirty.
/// `Ok(true)` once the view is replayed; an error when the follower ended.
fn machine_change<T: PerMachine>(
    service: &str,
    view: &str,
    change: Option<Result<Change<T>, BusError>>,
    map: &mut BTreeMap<String, T>,
    dirty: &mut BTreeSet<String>,
) -> Result<bool, BusError> {
    match change {
        None => return Err(BusError::Options(format!("the {view} follower ended"))),
        Some(Ok(Change::Put { key, value, .. })) => {
            dirty.insert(value.machine().0.to_owned());
            map.insert(key, value);
        }
        Some(Ok(Change::Removed { key, previous })) => {
            if let Some(p) = previous {
                dirty.insert(p.machine().0.to_owned());
            }
            map.remove(&key);
        }
        Some(Ok(Change::Current)) => return Ok(true),
        Some(Err(e)) => tracing::warn!(service, error = %e, "a {view} record that does not decode"),
    }
    Ok(false)
}

/// The delay before the `n`th try of a failing deployment: half a second, doubling, at most 30 s (or the
/// resync interval).
pub fn backoff(n: u32, resync: Duration) -> Duration {
    let wait = Duration::from_millis(500).saturating_mul(1u32 << n.saturating_sub(1).min(10));
    wait.min(MAX_BACKOFF).min(resync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_timing_is_checked_against_the_bus() {
        let bus = flotilla_bus::TopologyConfig::default();
        let ok = LoopSettings {
            resync: Duration::from_secs(60),
            debounce: Duration::from_millis(250),
            lease_ttl: Duration::from_secs(30),
        };
        assert_eq!(ok.validate(&bus), Ok(()));
        let no_resync = LoopSettings {
            resync: Duration::ZERO,
            ..ok
        };
        assert_eq!(
            no_resync.validate(&bus),
            Err("resync_interval must be positive".into())
        );
        for lease_ttl in [Duration::from_secs(2), bus.lease_max_age + Duration::from_secs(1)] {
            let e = LoopSettings { lease_ttl, ..ok }.validate(&bus).unwrap_err();
            assert!(e.starts_with("lease_ttl"), "{e}");
        }
    }

    #[test]
    fn back_off_doubles_from_half_a_second_to_a_ceiling() {
        let resync = Duration::from_secs(60);
        assert_eq!(backoff(1, resync), Duration::from_millis(500));
        assert_eq!(backoff(2, resync), Duration::from_secs(1));
        assert_eq!(backoff(4, resync), Duration::from_secs(4));
        assert_eq!(backoff(30, resync), MAX_BACKOFF);
        assert_eq!(backoff(30, Duration::from_secs(5)), Duration::from_secs(5));
    }
}
