//! A region's leader: probes the region's machines and acts on [`plan::decide`], one action at a time.
//!
//! It wakes at once on a change of the fleet, of the region's scaling state (a `scale` command) or of a
//! machine's health, and every `resync_interval` as a safety net. Actions are written to the scaling
//! state *before* their command is sent, with the command's id in them: a leader that crashes between the
//! two, or a new leader taking over, sends the same command again under the same id, and the provisioner
//! acts once. A replacement is also remembered per machine, so a machine is never replaced twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flotilla_bus::state::Change;
use flotilla_proto::{
    CommandId, CommandMeta, CreateMachines, DestroyMachine, EventMeta, MachineHealth, MachineMetric,
    MachineRecord, PendingAction, ReplaceMachine, ScalingActivity, ScalingState,
};
use flotilla_spec::Role;
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::health::{Judged, Tracker};
use crate::plan::{self, Decision, Input, Progress, Webserver};
use crate::service::{Autoscaler, region_key};

/// Who the autoscaler's commands and events say they come from.
const SOURCE: &str = "autoscaler";

/// What the region's tasks share.
struct Shared {
    /// The region's machines, by resource id (from the fleet view).
    machines: Mutex<BTreeMap<String, MachineRecord>>,
    /// Health so far.
    tracker: Mutex<Tracker>,
    /// Failures the provisioner reported for our commands, by command id or correlation id.
    failures: Mutex<HashMap<Uuid, String>>,
    /// The latest sample of each metric of each machine: (resource id, metric) → (value, when received).
    samples: Mutex<Samples>,
    /// Wakes the acting loop.
    wake: Notify,
    /// Wakes the prober (a machine appeared or changed: check it now, not at the next tick).
    probe_wake: Notify,
    /// Machines this leader reported draining for a scale-in: their checks are not published until the
    /// action ends.
    draining: Mutex<std::collections::BTreeSet<String>>,
    /// Machines whose check is running (one check at a time per machine, however slow).
    in_flight: Mutex<std::collections::BTreeSet<String>>,
}

/// The latest sample of each metric of each machine: (resource id, metric) → (value, when received).
type Samples = HashMap<(String, String), (f64, DateTime<Utc>)>;

/// How often a machine not judged yet is checked (so a new webserver counts as soon as it answers).
const UNJUDGED_INTERVAL: Duration = Duration::from_secs(1);

/// Samples older than this are ignored by target tracking (the machine stopped reporting).
const SAMPLE_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// What each of a region leader's tasks gets.
#[derive(Clone)]
struct Lead {
    autoscaler: Arc<Autoscaler>,
    deployment: String,
    region: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// Leads one region until `stop`.
pub async fn lead(autoscaler: Arc<Autoscaler>, deployment: String, region: String, stop: CancellationToken) {
    let shared = Arc::new(Shared {
        machines: Mutex::new(BTreeMap::new()),
        tracker: Mutex::new(Tracker::default()),
        failures: Mutex::new(HashMap::new()),
        samples: Mutex::new(HashMap::new()),
        wake: Notify::new(),
        probe_wake: Notify::new(),
        draining: Mutex::new(std::collections::BTreeSet::new()),
        in_flight: Mutex::new(std::collections::BTreeSet::new()),
    });
    let lead = Lead {
        autoscaler: Arc::clone(&autoscaler),
        deployment: deployment.clone(),
        region: region.clone(),
        shared: Arc::clone(&shared),
        stop: stop.clone(),
    };
    let tasks = [
        tokio::spawn(follow_fleet(lead.clone())),
        tokio::spawn(follow_state(lead.clone())),
        tokio::spawn(watch_outcomes(lead.clone())),
        tokio::spawn(watch_metrics(lead.clone())),
        tokio::spawn(probe(lead)),
    ];
    let actor = Actor {
        autoscaler: Arc::clone(&autoscaler),
        deployment: deployment.clone(),
        region: region.clone(),
        shared: Arc::clone(&shared),
        note_written: Mutex::new(None),
    };
    loop {
        // A step stopped half-way is safe: an action is recorded before its command is sent, and the next
        // leader sends it again under the same id.
        tokio::select! {
            _ = stop.cancelled() => break,
            result = actor.step() => {
                if let Err(e) = result {
                    tracing::warn!(%deployment, %region, error = %e, "scaling step failed; trying again");
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(autoscaler.settings.resync_interval) => {}
        }
    }
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
}

/// Keeps the region's machines from the fleet view; wakes the actor on every change.
async fn follow_fleet(lead: Lead) {
    let Lead {
        autoscaler,
        deployment,
        region,
        shared,
        stop,
    } = lead;
    loop {
        let mut follower = match autoscaler.fleet.follow(Some(&deployment)).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(%deployment, error = %e, "cannot follow the fleet view; trying again");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let change = tokio::select! {
                _ = stop.cancelled() => return,
                c = follower.next() => c,
            };
            match change {
                None => break,
                Some(Err(e)) => tracing::warn!(error = %e, "a fleet record that does not decode"),
                Some(Ok(Change::Current)) => {
                    // A follower (re)started: what it holds now is the region, nothing kept from before.
                    let now: BTreeMap<String, MachineRecord> = follower
                        .values()
                        .values()
                        .filter(|m| m.region == region)
                        .map(|m| (m.resource_id.clone(), m.clone()))
                        .collect();
                    if let Ok(mut machines) = shared.machines.lock() {
                        *machines = now;
                    }
                }
                Some(Ok(Change::Put { value, .. })) => {
                    if value.region == region
                        && let Ok(mut machines) = shared.machines.lock()
                    {
                        machines.insert(value.resource_id.clone(), value);
                    }
                    shared.probe_wake.notify_one();
                }
                Some(Ok(Change::Removed { previous, .. })) => {
                    if let Some(gone) = previous.filter(|p| p.region == region) {
                        if let Ok(mut machines) = shared.machines.lock() {
                            machines.remove(&gone.resource_id);
                        }
                        if let Ok(mut tracker) = shared.tracker.lock() {
                            tracker.retain(|id| id != gone.resource_id);
                        }
                        // Its health record goes with it.
                        let _ = autoscaler
                            .health
                            .remove(&deployment, &region, &gone.resource_id)
                            .await;
                    }
                }
            }
            shared.wake.notify_one();
        }
    }
}

/// Wakes the actor when the region's scaling state changes (a command was taken).
async fn follow_state(lead: Lead) {
    let Lead {
        autoscaler,
        deployment,
        region,
        shared,
        stop,
    } = lead;
    let Ok(key) = region_key(&deployment, &region) else {
        return;
    };
    loop {
        let follower = match autoscaler.states().await {
            Ok(states) => states.follow(&key).await,
            Err(e) => Err(e),
        };
        let mut follower = match follower {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(%deployment, %region, error = %e, "cannot follow the scaling state; trying again");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let change = tokio::select! {
                _ = stop.cancelled() => return,
                c = follower.next() => c,
            };
            if change.is_none() {
                break;
            }
            shared.wake.notify_one();
        }
    }
}

/// Notes the provisioner's failures for the region (a rejected command, a failed apply), so an action
/// that failed ends at once rather than at its timeout.
async fn watch_outcomes(lead: Lead) {
    let Lead {
        autoscaler,
        deployment,
        region,
        shared,
        stop,
    } = lead;
    let subjects = [
        flotilla_bus::subject::event("command", &deployment, &region, "rejected"),
        flotilla_bus::subject::event("region", &deployment, &region, "failed"),
    ];
    let mut subscriptions = Vec::new();
    for subject in subjects.into_iter().flatten() {
        match autoscaler.client.subscribe(subject).await {
            Ok(s) => subscriptions.push(s),
            Err(e) => tracing::warn!(error = %e, "cannot watch the provisioner's outcomes"),
        }
    }
    let mut messages = futures::stream::select_all(subscriptions);
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = messages.next() => m,
        };
        let Some(message) = message else { return };
        let (id, why) = match flotilla_bus::decode_event(&message) {
            Some(flotilla_proto::AnyEvent::Rejected(r)) => {
                let Some(id) = r.command_id.as_deref().and_then(|i| Uuid::parse_str(i).ok()) else {
                    continue;
                };
                (id, r.error)
            }
            Some(flotilla_proto::AnyEvent::Region(r)) => (
                r.meta.correlation_id,
                r.error.unwrap_or_else(|| "the provisioner failed".into()),
            ),
            _ => continue,
        };
        if let Ok(mut failures) = shared.failures.lock() {
            // Bounded: entries are removed when their action ends; what nobody waits for is dropped.
            if failures.len() >= 1024 {
                failures.clear();
            }
            failures.insert(id, why);
        }
        shared.wake.notify_one();
    }
}

/// Keeps the latest metric samples the region's machines publish (`machine.metric.v1`), for target
/// tracking. Samples are ephemeral: a new leader starts with none and waits for the next ones.
async fn watch_metrics(lead: Lead) {
    let Lead {
        autoscaler,
        deployment,
        region,
        shared,
        stop,
    } = lead;
    let subject = match flotilla_bus::subject::events_filter(Some("metric"), Some(&deployment)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the machines' metrics");
            return;
        }
    };
    let mut samples = match autoscaler.client.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the machines' metrics");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = samples.next() => m,
        };
        let Some(message) = message else { return };
        let content_type =
            flotilla_bus::header(message.headers.as_ref(), flotilla_proto::CONTENT_TYPE_HEADER);
        let Ok(sample) = flotilla_proto::decode::<MachineMetric>(
            Some(<MachineMetric as flotilla_proto::Message>::KIND),
            content_type.as_deref(),
            &message.payload,
        ) else {
            tracing::debug!("a metric sample that does not decode");
            continue;
        };
        if sample.deployment != deployment || sample.region != region {
            continue;
        }
        // Only the region's machines, so the map is bounded by the fleet.
        let known = shared
            .machines
            .lock()
            .is_ok_and(|m| m.contains_key(&sample.resource_id));
        if known && let Ok(mut samples) = shared.samples.lock() {
            let now = Utc::now();
            samples.retain(|_, (_, at)| now - *at <= SAMPLE_MAX_AGE);
            samples.insert((sample.resource_id, sample.metric), (sample.value, now));
        }
    }
}

/// Checks every machine of the region that serves something at its role's interval, a bounded number at
/// a time over the whole process; publishes each change of health.
async fn probe(lead: Lead) {
    let Lead {
        autoscaler,
        deployment,
        region: _,
        shared,
        stop,
    } = lead;
    let probes = &autoscaler.settings.probe;
    let tick = [&probes.webserver, &probes.reverse_proxy, &probes.authenticator]
        .iter()
        .map(|p| p.interval)
        .min()
        .unwrap_or(Duration::from_secs(5))
        .min(Duration::from_secs(1));
    let mut due: HashMap<String, tokio::time::Instant> = HashMap::new();
    let mut running = tokio::task::JoinSet::new();
    loop {
        let now = tokio::time::Instant::now();
        let machines: Vec<MachineRecord> = shared
            .machines
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        due.retain(|id, _| machines.iter().any(|m| &m.resource_id == id));
        for machine in machines {
            let Some(settings) = probes.of(&machine.role).cloned() else {
                continue;
            };
            let Some(address) = machine.public_ipv4.clone() else {
                continue;
            };
            if machine.state == "created" || machine.state == "failed" {
                continue;
            }
            let next = due.entry(machine.resource_id.clone()).or_insert(now);
            if *next > now {
                continue;
            }
            // The previous check of this machine still runs (it times out, or its verdict is being told): no
            // second one queued.
            if !shared
                .in_flight
                .lock()
                .is_ok_and(|mut f| f.insert(machine.resource_id.clone()))
            {
                continue;
            }
            let judged = shared
                .tracker
                .lock()
                .ok()
                .is_some_and(|t| t.get(&machine.resource_id).is_some_and(|j| j.healthy.is_some()));
            *next = now
                + if judged {
                    settings.interval
                } else {
                    settings.interval.min(UNJUDGED_INTERVAL)
                };
            let autoscaler = Arc::clone(&autoscaler);
            let shared = Arc::clone(&shared);
            let deployment = deployment.clone();
            running.spawn(async move {
                let seen = match autoscaler.probes.acquire().await {
                    Ok(_permit) => crate::health::check(&autoscaler.http, &address, &settings).await,
                    Err(_) => {
                        if let Ok(mut f) = shared.in_flight.lock() {
                            f.remove(&machine.resource_id);
                        }
                        return;
                    }
                };
                let draining = shared.draining.lock().is_ok_and(|d| d.contains(&machine.resource_id));
                tracing::trace!(machine = %machine.resource_id, %address, ok = seen.ok, reason = %seen.reason, "checked");
                let changed =
                    shared.tracker.lock().ok().and_then(|mut t| {
                        t.observe(&machine.resource_id, machine.created_at, &settings, seen)
                    });
                let replace_now = shared.tracker.lock().ok().is_some_and(|t| {
                    t.get(&machine.resource_id).is_some_and(|j| {
                        j.healthy == Some(false)
                            && settings.replace_after > 0
                            && j.failures == settings.replace_after
                    })
                });
                if draining {
                    // Reported draining until its scale-in ends; the tracker keeps judging it meanwhile.
                } else if let Some(judged) = changed {
                    publish_health(&autoscaler, &deployment, &machine, &judged).await;
                    shared.wake.notify_one();
                } else if replace_now {
                    // Its failure count reached the replacement threshold: record it and act.
                    if let Some(judged) = shared
                        .tracker
                        .lock()
                        .ok()
                        .and_then(|t| t.get(&machine.resource_id).cloned())
                    {
                        publish_health(&autoscaler, &deployment, &machine, &judged).await;
                    }
                    shared.wake.notify_one();
                }
                // Only now may the next check of this machine start: its verdict told before this one's is
                // written would be overwritten by it, and the health view would say the opposite of the
                // prober until the next change (chaos seed 45: a proxy flapping unhealthy → healthy in
                // 150 ms stayed out of DNS).
                if let Ok(mut f) = shared.in_flight.lock() {
                    f.remove(&machine.resource_id);
                }
            });
        }
        while running.try_join_next().is_some() {}
        tokio::select! {
            _ = stop.cancelled() => {
                running.abort_all();
                return;
            }
            _ = tokio::time::sleep(tick) => {}
            _ = shared.probe_wake.notified() => {}
        }
    }
}

/// Publishes a machine's health (event, then view).
async fn publish_health(autoscaler: &Autoscaler, deployment: &str, machine: &MachineRecord, judged: &Judged) {
    let Some(healthy) = judged.healthy else {
        return;
    };
    let last = judged.last.as_ref();
    let health = MachineHealth {
        meta: EventMeta::new(Uuid::now_v7(), SOURCE),
        deployment: deployment.to_owned(),
        region: machine.region.clone(),
        resource_id: machine.resource_id.clone(),
        role: machine.role.clone(),
        public_ipv4: machine.public_ipv4.clone(),
        healthy,
        failures: judged.failures,
        reason: last.map(|o| o.reason.clone()).unwrap_or_default(),
        checked_at: last.map_or_else(Utc::now, |o| o.at),
        since: judged.since,
    };
    tracing::info!(
        %deployment, region = %machine.region, machine = %machine.resource_id, healthy,
        failures = judged.failures, reason = %health.reason, "machine health"
    );
    if let Err(e) = autoscaler.publisher.publish_event(&health).await {
        tracing::warn!(error = %e, "publishing a machine's health");
    }
    if let Err(e) = autoscaler.health.put(&health).await {
        tracing::warn!(error = %e, "writing the health view");
    }
}

/// Acts on the region, one step at a time.
struct Actor {
    autoscaler: Arc<Autoscaler>,
    deployment: String,
    region: String,
    shared: Arc<Shared>,
    /// When target tracking's note was last written (it is written at most every resync interval).
    note_written: Mutex<Option<DateTime<Utc>>>,
}

/// Why a step could not be taken.
type StepError = String;

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Successful,
    Failed,
    Cancelled,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Successful => "successful",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The cause of a scaling activity: what set the desired count, and the counts.
fn cause(state: &ScalingState, target: u32, current: u32) -> String {
    match &state.desired_cause {
        Some(by) => format!("desired count {target} ({by}), {current} webservers"),
        None => format!("desired count {target}, {current} webservers"),
    }
}

impl Actor {
    /// Lets the schedule and target tracking move the desired count. `true` when it moved.
    async fn apply_policies(
        &self,
        scaling: &flotilla_spec::Scaling,
        state: &ScalingState,
        webservers: &[Webserver],
        now: DateTime<Utc>,
    ) -> Result<bool, StepError> {
        let desired = plan::desired(scaling, state);
        let mut change: Option<(u32, String, Option<bool>)> = None;
        let mut fired_at = None;
        if !state.schedule.is_empty()
            && let Some((entry, when)) =
                crate::policy::due(&state.schedule, state.schedule_checked_at.unwrap_or(now), now)
        {
            fired_at = Some(when);
            let days = if entry.days.is_empty() {
                String::new()
            } else {
                format!(" on {}", entry.days.join(","))
            };
            change = Some((
                entry.desired,
                format!("schedule {}{days} → {}", entry.at, entry.desired),
                None,
            ));
        }
        let mut note = None;
        if change.is_none()
            && let Some(policy) = &state.tracking
        {
            let samples: Vec<crate::policy::Sample> = {
                let samples = self.shared.samples.lock().map(|s| s.clone()).unwrap_or_default();
                plan::counted(webservers)
                    .filter_map(|w| {
                        let (value, at) = samples.get(&(w.resource_id.clone(), policy.metric.clone()))?;
                        (now - *at <= SAMPLE_MAX_AGE).then_some(crate::policy::Sample {
                            value: *value,
                            created_at: w.created_at,
                        })
                    })
                    .collect()
            };
            match crate::policy::track(
                policy,
                scaling,
                desired,
                &samples,
                state.last_scale_out,
                state.last_scale_in,
                now,
            ) {
                crate::policy::Tracking::Change { to, cause } => {
                    change = Some((to, cause, Some(to > desired)))
                }
                crate::policy::Tracking::Hold(why) => note = Some(why),
                crate::policy::Tracking::Steady => {}
            }
        }
        if change.is_none() {
            // Only the note may have changed: written at most every resync interval.
            let due = self.note_written.lock().ok().is_some_and(|w| {
                w.is_none_or(|t| {
                    now - t
                        >= chrono::Duration::from_std(self.autoscaler.settings.resync_interval)
                            .unwrap_or_default()
                })
            });
            if note == state.tracking_note || !due {
                return Ok(false);
            }
            self.autoscaler
                .update(&self.deployment, &self.region, |s| {
                    let changed = s.tracking_note != note;
                    s.tracking_note = note.clone();
                    changed
                })
                .await
                .map_err(|e| e.to_string())?;
            if let Ok(mut w) = self.note_written.lock() {
                *w = Some(now);
            }
            return Ok(false);
        }
        let Some((to, why, up)) = change else {
            return Ok(false);
        };
        let to = to.clamp(scaling.min, scaling.max.max(scaling.min));
        tracing::info!(deployment = %self.deployment, region = %self.region, from = desired, to, cause = %why, "desired count");
        self.autoscaler
            .update(&self.deployment, &self.region, |s| {
                if let Some(when) = fired_at {
                    s.schedule_checked_at = Some(when);
                }
                match up {
                    Some(true) => s.last_scale_out = Some(now),
                    Some(false) => s.last_scale_in = Some(now),
                    None => {}
                }
                s.desired = Some(to);
                s.desired_cause = Some(why.clone());
                s.tracking_note = None;
                true
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(to != desired)
    }

    /// The region's webservers and the machines to replace, as the leader sees them now.
    fn view(&self) -> (Vec<Webserver>, Vec<String>) {
        let machines = self.shared.machines.lock().map(|m| m.clone()).unwrap_or_default();
        let tracker = self.shared.tracker.lock();
        plan::region_view(
            machines.values(),
            |id| {
                let j = tracker.as_ref().ok()?.get(id)?;
                Some(plan::Verdict {
                    healthy: j.healthy,
                    failures: j.failures,
                    since: j.since,
                })
            },
            &self.autoscaler.settings.probe,
        )
    }

    async fn step(&self) -> Result<(), StepError> {
        let Some(spec) = self
            .autoscaler
            .region_spec(&self.deployment, &self.region)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let (state, _) = self
            .autoscaler
            .state(&self.deployment, &self.region)
            .await
            .map_err(|e| e.to_string())?;
        let (webservers, replaceable) = self.view();
        let now = Utc::now();
        if let Some(pending) = &state.pending {
            return self.follow_up(&state, pending, &webservers).await;
        }
        if state.paused.is_none()
            && self
                .apply_policies(&spec.scaling, &state, &webservers, now)
                .await?
        {
            // The desired count moved: the next step acts on it.
            self.shared.wake.notify_one();
            return Ok(());
        }
        let decision = plan::decide(&Input {
            now,
            scaling: spec.scaling,
            state: &state,
            webservers: &webservers,
            replaceable: &replaceable,
        });
        if matches!(decision, Decision::Idle { .. }) {
            return Ok(());
        }
        if let Err(why) = self
            .autoscaler
            .provisioner_idle(&self.deployment, &self.region)
            .await
        {
            tracing::debug!(deployment = %self.deployment, region = %self.region, %why, "not acting yet");
            return Ok(());
        }
        let current = u32::try_from(plan::counted(&webservers).count()).unwrap_or(u32::MAX);
        let (kind, cause, message, count, machines, target) = match decision {
            Decision::Idle { .. } => return Ok(()),
            Decision::ScaleOut { count, target } => (
                "scale-out",
                cause(&state, target, current),
                format!("creating {count} webserver{}", if count == 1 { "" } else { "s" }),
                count,
                vec![],
                target,
            ),
            Decision::ScaleIn { victims, target } => (
                "scale-in",
                cause(&state, target, current),
                format!("draining {}", victims.join(", ")),
                0,
                victims,
                target,
            ),
            Decision::Replace { resource_id } => (
                "replace",
                format!("machine {resource_id} is unhealthy"),
                format!("replacing {resource_id}"),
                0,
                vec![resource_id],
                current,
            ),
        };
        let id = Uuid::now_v7();
        let activity = ScalingActivity {
            meta: EventMeta::new(id, SOURCE),
            id,
            deployment: self.deployment.clone(),
            region: self.region.clone(),
            cause,
            status: "in-progress".into(),
            message,
            progress: 0,
            started_at: now,
            ended_at: None,
        };
        let drain = chrono::Duration::from_std(self.autoscaler.settings.drain_delay).unwrap_or_default();
        let pending = PendingAction {
            activity: activity.clone(),
            kind: kind.into(),
            count,
            machines: machines.clone(),
            target,
            command_id: Uuid::now_v7(),
            drain_until: (kind == "scale-in").then(|| now + drain),
            sent_at: None,
        };
        // Recorded before anything is sent: a crash from here on sends the same command again.
        let written = self
            .autoscaler
            .update(&self.deployment, &self.region, |s| {
                // Re-checked on the state written: a pause or a protection that came meanwhile wins.
                if s.pending.is_some()
                    || s.paused.is_some()
                    || machines
                        .iter()
                        .any(|m| s.protected.contains(m) || (kind == "replace" && s.replaced.contains(m)))
                {
                    return false;
                }
                if kind == "replace" {
                    s.replaced.extend(machines.iter().cloned());
                    let keep = s.replaced.len().saturating_sub(256);
                    s.replaced.drain(..keep);
                }
                s.pending = Some(pending.clone());
                true
            })
            .await
            .map_err(|e| e.to_string())?;
        if written.pending.as_ref().map(|p| p.activity.id) != Some(id) {
            // Somebody else's action got there first (a leader that was taking over): follow that one.
            return Ok(());
        }
        tracing::info!(
            deployment = %self.deployment, region = %self.region, kind, activity = %id,
            message = %activity.message, "scaling activity"
        );
        self.publish_activity(&activity).await;
        self.follow_up(&written, &pending, &webservers).await
    }

    /// Reports the machines picked for scale-in unhealthy ("draining"), so dns and the reverse proxies let
    /// go of them before they are destroyed.
    async fn drain(&self, machines: &[String]) {
        let records: Vec<MachineRecord> = self
            .shared
            .machines
            .lock()
            .map(|m| machines.iter().filter_map(|id| m.get(id).cloned()).collect())
            .unwrap_or_default();
        if let Ok(mut draining) = self.shared.draining.lock() {
            draining.extend(machines.iter().cloned());
        }
        for machine in records {
            let now = Utc::now();
            let judged = Judged {
                healthy: Some(false),
                successes: 0,
                failures: 0,
                since: now,
                last: Some(crate::health::Observation {
                    ok: false,
                    reason: "draining for scale-in".into(),
                    at: now,
                }),
            };
            publish_health(&self.autoscaler, &self.deployment, &machine, &judged).await;
        }
    }

    /// Tells the real health of machines whose drain ended without their destruction.
    async fn undrain(&self, machines: &[String]) {
        let records: Vec<(MachineRecord, Option<Judged>)> = {
            let tracker = self.shared.tracker.lock();
            self.shared
                .machines
                .lock()
                .map(|m| {
                    machines
                        .iter()
                        .filter_map(|id| m.get(id).cloned())
                        .map(|r| {
                            let judged = tracker.as_ref().ok().and_then(|t| t.get(&r.resource_id).cloned());
                            (r, judged)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for (machine, judged) in records {
            if let Some(judged) = judged {
                publish_health(&self.autoscaler, &self.deployment, &machine, &judged).await;
            }
        }
    }

    /// Sends what the pending action still has to send, and ends it when it is done or failed.
    async fn follow_up(
        &self,
        state: &ScalingState,
        pending: &PendingAction,
        webservers: &[Webserver],
    ) -> Result<(), StepError> {
        let now = Utc::now();
        if pending.kind == "scale-in" && pending.sent_at.is_none() {
            // Nothing destroyed yet: an operator's pause or a protection given meanwhile wins.
            if let Some(why) = &state.paused {
                return self
                    .finish(pending, Outcome::Cancelled, format!("scaling was paused ({why})"))
                    .await;
            }
            if let Some(m) = pending.machines.iter().find(|m| state.protected.contains(m)) {
                return self
                    .finish(pending, Outcome::Cancelled, format!("{m} was protected"))
                    .await;
            }
            // Drained by this leader (a new leader drains again what an old one picked).
            let undrained: Vec<String> = self
                .shared
                .draining
                .lock()
                .map(|d| {
                    pending
                        .machines
                        .iter()
                        .filter(|m| !d.contains(*m))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if !undrained.is_empty() {
                self.drain(&undrained).await;
            }
        }
        let failed = self.shared.failures.lock().ok().and_then(|f| {
            self.command_ids(pending)
                .iter()
                .chain(std::iter::once(&pending.activity.id))
                .find_map(|id| f.get(id).cloned())
        });
        if let Some(why) = failed {
            return self
                .finish(pending, Outcome::Failed, format!("the provisioner failed: {why}"))
                .await;
        }
        if pending.sent_at.is_none() && pending.kind != "scale-in" {
            self.send(pending).await?;
            return self.mark_sent(pending).await;
        }
        let timeout = chrono::Duration::from_std(self.autoscaler.settings.action_timeout).unwrap_or_default();
        match plan::progress(pending, webservers, now, timeout) {
            Progress::Waiting {
                status,
                message,
                percent,
            } => {
                if pending.activity.status != status || pending.activity.message != message {
                    let mut activity = pending.activity.clone();
                    activity.meta = EventMeta::new(activity.id, SOURCE);
                    activity.status = status.into();
                    activity.message = message;
                    activity.progress = percent;
                    let id = pending.activity.id;
                    let written = activity.clone();
                    self.autoscaler
                        .update(&self.deployment, &self.region, |s| match &mut s.pending {
                            Some(p) if p.activity.id == id => {
                                p.activity = written.clone();
                                true
                            }
                            _ => false,
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    self.publish_activity(&activity).await;
                }
                Ok(())
            }
            Progress::Drained => {
                self.send(pending).await?;
                self.mark_sent(pending).await
            }
            Progress::Succeeded(message) => self.finish(pending, Outcome::Successful, message).await,
            Progress::Failed(message) => self.finish(pending, Outcome::Failed, message).await,
        }
    }

    /// The ids of the commands the action sends (derived from its own, so they are the same every time).
    fn command_ids(&self, pending: &PendingAction) -> Vec<Uuid> {
        match pending.kind.as_str() {
            "scale-in" => pending
                .machines
                .iter()
                .map(|m| self.meta(pending, Some(m)).id.0)
                .collect(),
            _ => vec![pending.command_id],
        }
    }

    fn meta(&self, pending: &PendingAction, machine: Option<&str>) -> CommandMeta {
        let base = CommandMeta {
            id: CommandId(pending.command_id),
            correlation_id: pending.activity.id,
            issued_at: Utc::now(),
            issued_by: SOURCE.into(),
        };
        match machine {
            Some(m) => CommandMeta::derived(&base, &format!("destroy/{m}"), SOURCE),
            None => base,
        }
    }

    /// Sends the action's command(s) to the provisioner.
    async fn send(&self, pending: &PendingAction) -> Result<(), StepError> {
        let publisher = &self.autoscaler.publisher;
        let result = match pending.kind.as_str() {
            "scale-out" => publisher
                .publish_command(&CreateMachines {
                    meta: self.meta(pending, None),
                    deployment: self.deployment.clone(),
                    region: self.region.clone(),
                    role: Role::Webserver,
                    count: pending.count,
                })
                .await
                .map(|_| ()),
            "scale-in" => {
                let mut result = Ok(());
                for machine in &pending.machines {
                    result = publisher
                        .publish_command(&DestroyMachine {
                            meta: self.meta(pending, Some(machine)),
                            deployment: self.deployment.clone(),
                            region: self.region.clone(),
                            resource_id: machine.clone(),
                        })
                        .await
                        .map(|_| ());
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
            _ => match pending.machines.first() {
                Some(machine) => publisher
                    .publish_command(&ReplaceMachine {
                        meta: self.meta(pending, None),
                        deployment: self.deployment.clone(),
                        region: self.region.clone(),
                        resource_id: machine.clone(),
                    })
                    .await
                    .map(|_| ()),
                None => Ok(()),
            },
        };
        result.map_err(|e| format!("sending the {} command: {e}", pending.kind))
    }

    async fn mark_sent(&self, pending: &PendingAction) -> Result<(), StepError> {
        let id = pending.activity.id;
        self.autoscaler
            .update(&self.deployment, &self.region, |s| match &mut s.pending {
                Some(p) if p.activity.id == id && p.sent_at.is_none() => {
                    p.sent_at = Some(Utc::now());
                    true
                }
                _ => false,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Ends the pending action: kept among the region's activities; a failure backs the region off.
    async fn finish(
        &self,
        pending: &PendingAction,
        outcome: Outcome,
        message: String,
    ) -> Result<(), StepError> {
        let ok = outcome == Outcome::Successful;
        let now = Utc::now();
        let mut activity = pending.activity.clone();
        activity.meta = EventMeta::new(activity.id, SOURCE);
        activity.status = outcome.as_str().into();
        activity.message = message;
        activity.progress = if ok { 100 } else { activity.progress };
        activity.ended_at = Some(now);
        let settings = &self.autoscaler.settings;
        let id = pending.activity.id;
        let kept = settings.activities_kept;
        let ended = activity.clone();
        let state: ScalingState = self
            .autoscaler
            .update(&self.deployment, &self.region, |s| {
                if s.pending.as_ref().map(|p| p.activity.id) != Some(id) {
                    return false;
                }
                s.pending = None;
                if ok {
                    s.failures = 0;
                    s.backoff_until = None;
                } else if outcome == Outcome::Cancelled {
                    // Cancelled by an operator's change (pause, protection): no back-off.
                } else {
                    s.failures = s.failures.saturating_add(1);
                    let wait = plan::backoff(s.failures, settings.backoff_base, settings.backoff_max);
                    s.backoff_until = Some(now + chrono::Duration::from_std(wait).unwrap_or_default());
                }
                s.activities.insert(0, ended.clone());
                s.activities.truncate(kept);
                true
            })
            .await
            .map_err(|e| e.to_string())?;
        // Machines drained for a scale-in that did not happen serve again: their real health is told.
        if !ok && pending.kind == "scale-in" {
            self.undrain(&pending.machines).await;
        }
        if let Ok(mut draining) = self.shared.draining.lock() {
            for m in &pending.machines {
                draining.remove(m);
            }
        }
        if let Ok(mut failures) = self.shared.failures.lock() {
            for id in self.command_ids(pending) {
                failures.remove(&id);
            }
            failures.remove(&pending.activity.id);
        }
        if outcome != Outcome::Failed {
            tracing::info!(deployment = %self.deployment, region = %self.region, activity = %id, status = outcome.as_str(), message = %activity.message, "scaling activity ended");
        } else {
            tracing::warn!(
                deployment = %self.deployment, region = %self.region, activity = %id, message = %activity.message,
                backoff_until = ?state.backoff_until, "scaling activity failed"
            );
        }
        self.publish_activity(&activity).await;
        self.shared.wake.notify_one();
        Ok(())
    }

    async fn publish_activity(&self, activity: &ScalingActivity) {
        if let Err(e) = self.autoscaler.publisher.publish_event(activity).await {
            tracing::warn!(error = %e, "publishing a scaling activity");
        }
    }
}
