//! What to do with a region — a pure function of its bounds, its scaling state, its webservers and their
//! health — and how far an action under way has got. Every answer says why, so `explain` can tell an
//! operator why a region is at N and not M.
//!
//! Scale-in policy: unhealthy machines first, then the newest first (initial machines like any other);
//! never a protected machine.

use chrono::{DateTime, Utc};
use flotilla_proto::{MachineRecord, PendingAction, ScalingState};
use flotilla_spec::Scaling;

use crate::settings::Probes;

/// A webserver of the region, as the fleet view and the prober see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webserver {
    /// Our resource id.
    pub resource_id: String,
    /// When the provisioner recorded it.
    pub created_at: DateTime<Utc>,
    /// The provisioner's state (`created`, `running`, `healthy`, `failed`).
    pub state: String,
    /// The prober's verdict (`None`: not judged yet).
    pub healthy: Option<bool>,
}

/// What the prober says of a machine, as far as scaling goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Healthy, unhealthy, or not judged yet.
    pub healthy: Option<bool>,
    /// Failed checks in a row.
    pub failures: u32,
    /// Since when in this state.
    pub since: DateTime<Utc>,
}

/// A region's webservers and the machines to replace (oldest failure first), from its machines and the
/// prober's verdicts — the leader's own, or the health view when another replica explains.
pub fn region_view<'a>(
    machines: impl IntoIterator<Item = &'a MachineRecord>,
    verdict: impl Fn(&str) -> Option<Verdict>,
    probes: &Probes,
) -> (Vec<Webserver>, Vec<String>) {
    let mut webservers = Vec::new();
    let mut replaceable: Vec<(DateTime<Utc>, String)> = Vec::new();
    for m in machines {
        let v = verdict(&m.resource_id);
        if m.role == "webserver" {
            webservers.push(Webserver {
                resource_id: m.resource_id.clone(),
                created_at: m.created_at,
                state: m.state.clone(),
                healthy: v.and_then(|v| v.healthy),
            });
        }
        if let (Some(v), Some(probe)) = (v, probes.of(&m.role))
            && m.state != "failed"
            && v.healthy == Some(false)
            && probe.replace_after > 0
            && v.failures >= probe.replace_after
        {
            replaceable.push((v.since, m.resource_id.clone()));
        }
    }
    replaceable.sort();
    (webservers, replaceable.into_iter().map(|(_, id)| id).collect())
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// Now.
    pub now: DateTime<Utc>,
    /// The spec's bounds.
    pub scaling: Scaling,
    /// The region's scaling state.
    pub state: &'a ScalingState,
    /// The region's webservers.
    pub webservers: &'a [Webserver],
    /// Machines (any role) that failed their checks enough times to be replaced, oldest failure first.
    pub replaceable: &'a [String],
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing; `reason` says why when the region is not simply at its desired count.
    Idle {
        /// Why nothing is done (paused, backing off, an action under way, protected machines …).
        reason: Option<String>,
    },
    /// Create `count` webservers, to reach `target`.
    ScaleOut {
        /// How many.
        count: u32,
        /// The count aimed at.
        target: u32,
    },
    /// Drain then destroy `victims`, to reach `target`.
    ScaleIn {
        /// The machines picked (by the policy above).
        victims: Vec<String>,
        /// The count aimed at.
        target: u32,
    },
    /// Replace an unhealthy machine.
    Replace {
        /// The machine.
        resource_id: String,
    },
}

/// The desired count of a region: the state's, or the spec's initial count, always within the bounds (a
/// spec whose bounds changed since the count was set clamps it).
pub fn desired(scaling: &Scaling, state: &ScalingState) -> u32 {
    state
        .desired
        .unwrap_or(scaling.initial)
        .clamp(scaling.min, scaling.max.max(scaling.min))
}

/// Webservers that count: not failed.
pub fn counted(webservers: &[Webserver]) -> impl Iterator<Item = &Webserver> {
    webservers.iter().filter(|w| w.state != "failed")
}

/// What to do with the region now.
pub fn decide(input: &Input<'_>) -> Decision {
    let state = input.state;
    let idle = |reason: String| Decision::Idle { reason: Some(reason) };
    if let Some(why) = &state.paused {
        return idle(format!(
            "scaling is paused{}",
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        ));
    }
    if let Some(pending) = &state.pending {
        return idle(format!(
            "{} under way ({}: {})",
            pending.kind, pending.activity.status, pending.activity.message
        ));
    }
    if let Some(until) = state.backoff_until
        && until > input.now
    {
        return idle(format!(
            "backing off until {} after {} failed action{} in a row",
            until.format("%H:%M:%S UTC"),
            state.failures,
            if state.failures == 1 { "" } else { "s" }
        ));
    }
    if let Some(machine) = input.replaceable.iter().find(|m| !state.replaced.contains(m)) {
        return Decision::Replace {
            resource_id: machine.clone(),
        };
    }
    let target = desired(&input.scaling, state);
    let current = u32::try_from(counted(input.webservers).count()).unwrap_or(u32::MAX);
    if current < target {
        return Decision::ScaleOut {
            count: target - current,
            target,
        };
    }
    if current > target {
        let surplus = usize::try_from(current - target).unwrap_or(usize::MAX);
        let mut candidates: Vec<&Webserver> = counted(input.webservers)
            .filter(|w| !state.protected.contains(&w.resource_id))
            .collect();
        // Unhealthy first, then the newest first; the resource id breaks ties, so the pick is stable.
        candidates.sort_by(|a, b| {
            let sick = |w: &Webserver| w.healthy == Some(false);
            sick(b)
                .cmp(&sick(a))
                .then(b.created_at.cmp(&a.created_at))
                .then(b.resource_id.cmp(&a.resource_id))
        });
        let victims: Vec<String> = candidates
            .into_iter()
            .take(surplus)
            .map(|w| w.resource_id.clone())
            .collect();
        if victims.is_empty() {
            return idle(format!(
                "{current} webservers, {target} desired, but every surplus machine is protected ({})",
                state.protected.join(", ")
            ));
        }
        let short = surplus - victims.len();
        let target = target + u32::try_from(short).unwrap_or(0);
        return Decision::ScaleIn { victims, target };
    }
    Decision::Idle { reason: None }
}

/// How far an action under way has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not done yet; the message says what it waits for, `percent` how far it is.
    Waiting {
        /// `in-progress` or `waiting-for-warm-up`.
        status: &'static str,
        /// What it waits for.
        message: String,
        /// 0–100.
        percent: u8,
    },
    /// Scale-in: the drain is over; destroy the machines now.
    Drained,
    /// Done.
    Succeeded(String),
    /// Gave up.
    Failed(String),
}

/// The progress of `pending` given the region's webservers now.
pub fn progress(
    pending: &PendingAction,
    webservers: &[Webserver],
    now: DateTime<Utc>,
    timeout: chrono::Duration,
) -> Progress {
    let started = pending.activity.started_at;
    let present = |id: &String| webservers.iter().any(|w| &w.resource_id == id);
    let done = match pending.kind.as_str() {
        "scale-out" => {
            let counted = counted(webservers).count();
            let healthy = counted_healthy(webservers);
            let target = pending.target as usize;
            let unjudged = counted_unjudged(webservers);
            if healthy >= target {
                Some(format!("{healthy} webservers healthy"))
            } else if counted >= target && unjudged == 0 {
                // Every machine is there and judged; the unhealthy ones are the prober's to replace.
                Some(format!("{counted} webservers, {healthy} healthy"))
            } else if now - started > timeout {
                return Progress::Failed(format!(
                    "{healthy} of {target} webservers healthy after {}s",
                    timeout.num_seconds()
                ));
            } else if counted >= target {
                return Progress::Waiting {
                    status: "waiting-for-warm-up",
                    message: format!(
                        "{counted} webservers created, {healthy} healthy; waiting for the new ones"
                    ),
                    percent: percent(healthy, target),
                };
            } else {
                return Progress::Waiting {
                    status: "in-progress",
                    message: format!("{counted} of {target} webservers created"),
                    percent: percent(counted, target),
                };
            }
        }
        "scale-in" => {
            if pending.drain_until.is_some_and(|t| now < t) {
                return Progress::Waiting {
                    status: "in-progress",
                    message: format!("draining {}", pending.machines.join(", ")),
                    percent: 10,
                };
            }
            if pending.sent_at.is_none() {
                return Progress::Drained;
            }
            let left = pending.machines.iter().filter(|m| present(m)).count();
            if left == 0 {
                Some(format!("destroyed {}", pending.machines.join(", ")))
            } else if now - started > timeout {
                return Progress::Failed(format!("{left} machines still there"));
            } else {
                return Progress::Waiting {
                    status: "in-progress",
                    message: format!("destroying {}", pending.machines.join(", ")),
                    percent: percent(pending.machines.len() - left, pending.machines.len()),
                };
            }
        }
        _ => {
            // Replace: done once the old machine is gone (the provisioner destroys it when its
            // replacement is healthy).
            if pending.machines.iter().all(|m| !present(m)) {
                Some(format!("replaced {}", pending.machines.join(", ")))
            } else if now - started > timeout {
                return Progress::Failed(format!("{} is still there", pending.machines.join(", ")));
            } else {
                return Progress::Waiting {
                    status: "in-progress",
                    message: format!("replacing {}", pending.machines.join(", ")),
                    percent: 50,
                };
            }
        }
    };
    match done {
        Some(message) => Progress::Succeeded(message),
        None => Progress::Failed("unknown action".into()),
    }
}

fn counted_unjudged(webservers: &[Webserver]) -> usize {
    counted(webservers).filter(|w| w.healthy.is_none()).count()
}

fn counted_healthy(webservers: &[Webserver]) -> usize {
    counted(webservers).filter(|w| w.healthy == Some(true)).count()
}

fn percent(part: usize, whole: usize) -> u8 {
    if whole == 0 {
        return 100;
    }
    u8::try_from((part.min(whole) * 100) / whole).unwrap_or(100)
}

/// The back-off after `failures` failed actions in a row: `base` doubled each time, at most `max`.
pub fn backoff(failures: u32, base: std::time::Duration, max: std::time::Duration) -> std::time::Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1));
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use flotilla_proto::{EventMeta, ScalingActivity};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    fn web(id: &str, created: i64, healthy: Option<bool>) -> Webserver {
        Webserver {
            resource_id: id.into(),
            created_at: at(created),
            state: "healthy".into(),
            healthy,
        }
    }

    fn scaling(min: u32, initial: u32, max: u32) -> Scaling {
        Scaling { min, initial, max }
    }

    fn decide_with(state: &ScalingState, webservers: &[Webserver], replaceable: &[String]) -> Decision {
        decide(&Input {
            now: at(1000),
            scaling: scaling(1, 2, 5),
            state,
            webservers,
            replaceable,
        })
    }

    #[test]
    fn counts_converge_on_the_desired_count_within_the_bounds() {
        let two = [web("a", 1, Some(true)), web("b", 2, Some(true))];
        let mut state = ScalingState::default();
        assert_eq!(
            decide_with(&state, &two, &[]),
            Decision::Idle { reason: None },
            "initial is 2"
        );
        state.desired = Some(5);
        assert_eq!(
            decide_with(&state, &two, &[]),
            Decision::ScaleOut { count: 3, target: 5 }
        );
        state.desired = Some(9);
        assert_eq!(
            decide_with(&state, &two, &[]),
            Decision::ScaleOut { count: 3, target: 5 },
            "clamped to max"
        );
        state.desired = Some(1);
        assert_eq!(
            decide_with(&state, &two, &[]),
            Decision::ScaleIn {
                victims: vec!["b".into()],
                target: 1
            },
            "the newest goes"
        );
    }

    #[test]
    fn scale_in_takes_the_unhealthy_then_the_newest_and_never_a_protected_one() {
        let fleet = [
            web("a", 1, Some(true)),
            web("b", 2, Some(false)),
            web("c", 3, Some(true)),
            web("d", 4, Some(true)),
        ];
        let mut state = ScalingState {
            desired: Some(2),
            ..ScalingState::default()
        };
        assert_eq!(
            decide_with(&state, &fleet, &[]),
            Decision::ScaleIn {
                victims: vec!["b".into(), "d".into()],
                target: 2
            }
        );
        state.protected = vec!["d".into()];
        assert_eq!(
            decide_with(&state, &fleet, &[]),
            Decision::ScaleIn {
                victims: vec!["b".into(), "c".into()],
                target: 2
            }
        );
        state.protected = vec!["a".into(), "b".into(), "c".into(), "d".into()];
        let Decision::Idle { reason: Some(why) } = decide_with(&state, &fleet, &[]) else {
            panic!("protected machines block scale-in");
        };
        assert!(why.contains("protected"), "{why}");
    }

    #[test]
    fn paused_pending_and_backing_off_regions_say_why_they_wait() {
        let one = [web("a", 1, Some(true))];
        let reason = |state: &ScalingState| match decide_with(state, &one, &["a".into()]) {
            Decision::Idle { reason: Some(r) } => r,
            other => panic!("{other:?}"),
        };
        let paused = ScalingState {
            desired: Some(5),
            paused: Some("maintenance".into()),
            ..ScalingState::default()
        };
        assert!(reason(&paused).contains("paused: maintenance"));
        let backing_off = ScalingState {
            desired: Some(5),
            failures: 3,
            backoff_until: Some(at(1060)),
            ..ScalingState::default()
        };
        assert!(reason(&backing_off).contains("backing off until 00:17:40 UTC after 3 failed actions"));
        let pending = ScalingState {
            pending: Some(pending("scale-out", 5, at(900))),
            ..ScalingState::default()
        };
        assert!(reason(&pending).contains("scale-out under way"));
        // Back-off over: the replacement comes first, once.
        let over = ScalingState {
            backoff_until: Some(at(999)),
            ..ScalingState::default()
        };
        assert_eq!(
            decide_with(&over, &one, &["a".into()]),
            Decision::Replace {
                resource_id: "a".into()
            }
        );
        let replaced = ScalingState {
            replaced: vec!["a".into()],
            ..over
        };
        assert_eq!(
            decide_with(&replaced, &one, &["a".into()]),
            Decision::ScaleOut { count: 1, target: 2 },
            "never a second replacement for the same machine"
        );
    }

    fn pending(kind: &str, target: u32, started: DateTime<Utc>) -> PendingAction {
        PendingAction {
            activity: ScalingActivity {
                meta: EventMeta::new(uuid::Uuid::nil(), "test"),
                id: uuid::Uuid::nil(),
                deployment: "d".into(),
                region: "r".into(),
                cause: "test".into(),
                status: "in-progress".into(),
                message: "m".into(),
                progress: 0,
                started_at: started,
                ended_at: None,
            },
            kind: kind.into(),
            count: 0,
            machines: vec![],
            target,
            command_id: uuid::Uuid::nil(),
            drain_until: None,
            sent_at: Some(started),
        }
    }

    #[test]
    fn a_scale_out_waits_for_warm_up_and_times_out() {
        let timeout = chrono::Duration::seconds(100);
        let p = pending("scale-out", 3, at(0));
        let fleet = [web("a", 0, Some(true)), web("b", 1, None), web("c", 1, None)];
        assert!(matches!(
            progress(&p, &fleet[..2], at(10), timeout),
            Progress::Waiting {
                status: "in-progress",
                ..
            }
        ));
        assert!(matches!(
            progress(&p, &fleet, at(10), timeout),
            Progress::Waiting {
                status: "waiting-for-warm-up",
                ..
            }
        ));
        let healthy = [
            web("a", 0, Some(true)),
            web("b", 1, Some(true)),
            web("c", 1, Some(true)),
        ];
        assert!(matches!(
            progress(&p, &healthy, at(10), timeout),
            Progress::Succeeded(_)
        ));
        assert!(matches!(
            progress(&p, &fleet, at(200), timeout),
            Progress::Failed(_)
        ));
    }

    #[test]
    fn a_scale_in_drains_before_it_destroys() {
        let timeout = chrono::Duration::seconds(100);
        let mut p = pending("scale-in", 1, at(0));
        p.machines = vec!["b".into()];
        p.drain_until = Some(at(30));
        p.sent_at = None;
        let fleet = [web("a", 0, Some(true)), web("b", 1, Some(true))];
        assert!(matches!(
            progress(&p, &fleet, at(10), timeout),
            Progress::Waiting { .. }
        ));
        assert_eq!(progress(&p, &fleet, at(31), timeout), Progress::Drained);
        p.sent_at = Some(at(31));
        assert!(matches!(
            progress(&p, &fleet, at(32), timeout),
            Progress::Waiting { .. }
        ));
        assert!(matches!(
            progress(&p, &fleet[..1], at(33), timeout),
            Progress::Succeeded(_)
        ));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        use std::time::Duration;
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(60));
        let steps: Vec<u64> = (1..=5).map(|f| backoff(f, base, max).as_secs()).collect();
        assert_eq!(steps, vec![10, 20, 40, 60, 60]);
    }
}
