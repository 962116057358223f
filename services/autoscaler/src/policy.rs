//! What moves a region's desired count besides a `scale` command — a schedule and target tracking — as pure
//! functions of the policy, the region and the time.

use chrono::{DateTime, Datelike, NaiveTime, Utc};
use flotilla_proto::{ScheduleEntry, TargetTracking};
use flotilla_spec::Scaling;

/// The longest cool-down or warm-up a policy may ask for.
pub const MAX_POLICY_SECS: u64 = 7 * 24 * 3600;

/// Why a target-tracking policy is not valid.
pub fn check_tracking(policy: &TargetTracking) -> Result<(), String> {
    if !(policy.target.is_finite() && policy.target > 0.0) {
        return Err(format!(
            "target tracking of {}: the target must be a number above 0 (got {})",
            policy.metric, policy.target
        ));
    }
    for (name, value) in [
        ("scale-out cool-down", policy.scale_out_cooldown_secs),
        ("scale-in cool-down", policy.scale_in_cooldown_secs),
        ("warm-up", policy.warmup_secs),
    ] {
        if value > MAX_POLICY_SECS {
            return Err(format!(
                "target tracking of {}: the {name} of {value}s is longer than a week",
                policy.metric
            ));
        }
    }
    Ok(())
}

/// Why a schedule entry is not valid.
pub fn check_entry(entry: &ScheduleEntry, scaling: &Scaling) -> Result<(), String> {
    parse_time(&entry.at)?;
    for day in &entry.days {
        weekday(day).ok_or_else(|| {
            format!(
                "schedule entry at {}: {day:?} is not a weekday (mon … sun)",
                entry.at
            )
        })?;
    }
    if entry.desired < scaling.min || entry.desired > scaling.max {
        return Err(format!(
            "schedule entry at {}: {} webservers is outside the bounds min {} and max {}",
            entry.at, entry.desired, scaling.min, scaling.max
        ));
    }
    Ok(())
}

fn parse_time(at: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(at, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(at, "%H:%M"))
        .map_err(|_| format!("schedule time {at:?} is not HH:MM or HH:MM:SS (UTC)"))
}

fn weekday(day: &str) -> Option<chrono::Weekday> {
    Some(match day.to_ascii_lowercase().as_str() {
        "mon" => chrono::Weekday::Mon,
        "tue" => chrono::Weekday::Tue,
        "wed" => chrono::Weekday::Wed,
        "thu" => chrono::Weekday::Thu,
        "fri" => chrono::Weekday::Fri,
        "sat" => chrono::Weekday::Sat,
        "sun" => chrono::Weekday::Sun,
        _ => return None,
    })
}

/// The entry due last in `(since, now]`, with the time it was due: its count is the desired count from
/// then on. Entries that do not parse never fire (they were refused when set).
pub fn due(
    entries: &[ScheduleEntry],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(&ScheduleEntry, DateTime<Utc>)> {
    let mut best: Option<(&ScheduleEntry, DateTime<Utc>)> = None;
    for entry in entries {
        let Ok(time) = parse_time(&entry.at) else {
            continue;
        };
        let days: Vec<chrono::Weekday> = entry.days.iter().filter_map(|d| weekday(d)).collect();
        // Every occurrence within the last eight days, newest last.
        for back in (0..=8).rev() {
            let Some(date) = now.date_naive().checked_sub_days(chrono::Days::new(back)) else {
                continue;
            };
            if !days.is_empty() && !days.contains(&date.weekday()) {
                continue;
            }
            let when = date.and_time(time).and_utc();
            if when > since && when <= now && best.is_none_or(|(_, b)| when >= b) {
                best = Some((entry, when));
            }
        }
    }
    best
}

/// A webserver's latest sample of the tracked metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The value.
    pub value: f64,
    /// When the webserver was created (its warm-up runs from there).
    pub created_at: DateTime<Utc>,
}

/// What target tracking says.
#[derive(Debug, Clone, PartialEq)]
pub enum Tracking {
    /// Set the desired count to `to`.
    Change {
        /// The new desired count.
        to: u32,
        /// Why (`cpu 80 per webserver over target 50`).
        cause: String,
    },
    /// Leave it: something holds it (a cool-down, no samples); why.
    Hold(String),
    /// Leave it: it is right for the metric.
    Steady,
}

/// Target tracking: the count that brings the average of the warmed-up webservers' samples to the target
/// (`ceil(count × average ÷ target)`, within the bounds), unless a cool-down is running.
#[allow(clippy::too_many_arguments)]
pub fn track(
    policy: &TargetTracking,
    scaling: &Scaling,
    desired: u32,
    samples: &[Sample],
    last_scale_out: Option<DateTime<Utc>>,
    last_scale_in: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Tracking {
    // Never panics: values beyond what a date can hold saturate (they were refused when set anyway).
    let secs = |s: u64| {
        i64::try_from(s)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .unwrap_or(chrono::Duration::MAX)
    };
    let until = |last: DateTime<Utc>, s: u64| match last.checked_add_signed(secs(s)) {
        Some(t) => t.format("%H:%M:%S UTC").to_string(),
        None => "a time beyond any date".to_owned(),
    };
    let warm: Vec<f64> = samples
        .iter()
        .filter(|s| now - s.created_at >= secs(policy.warmup_secs))
        .map(|s| s.value)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .collect();
    if warm.is_empty() {
        return Tracking::Hold(format!(
            "target tracking: no {} sample from a warmed-up webserver",
            policy.metric
        ));
    }
    if !(policy.target.is_finite() && policy.target > 0.0) {
        return Tracking::Hold("target tracking: the target must be above 0".into());
    }
    #[allow(clippy::cast_precision_loss)]
    let average = warm.iter().sum::<f64>() / warm.len() as f64;
    // The webservers that reported carry the load; scale their number.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let wanted = ((warm.len() as f64) * average / policy.target)
        .ceil()
        .clamp(0.0, f64::from(u32::MAX)) as u32;
    let wanted = wanted.clamp(scaling.min, scaling.max.max(scaling.min));
    let what = format!(
        "{} {average:.1} per webserver against target {}",
        policy.metric, policy.target
    );
    if wanted > desired {
        if let Some(last) = last_scale_out
            && now - last < secs(policy.scale_out_cooldown_secs)
        {
            return Tracking::Hold(format!(
                "target tracking: {what} asks {wanted}, but the scale-out cool-down runs until {}",
                until(last, policy.scale_out_cooldown_secs)
            ));
        }
        return Tracking::Change {
            to: wanted,
            cause: format!("target tracking: {what}"),
        };
    }
    if wanted < desired {
        if let Some(last) = last_scale_in.max(last_scale_out)
            && now - last < secs(policy.scale_in_cooldown_secs)
        {
            return Tracking::Hold(format!(
                "target tracking: {what} asks {wanted}, but the scale-in cool-down runs until {}",
                until(last, policy.scale_in_cooldown_secs)
            ));
        }
        return Tracking::Change {
            to: wanted,
            cause: format!("target tracking: {what}"),
        };
    }
    Tracking::Steady
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn entry(at: &str, days: &[&str], desired: u32) -> ScheduleEntry {
        ScheduleEntry {
            at: at.into(),
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            desired,
        }
    }

    #[test]
    fn the_entry_due_last_since_the_last_look_fires() {
        // 2026-12-07 is a Monday.
        let entries = [
            entry("08:00", &[], 4),
            entry("20:00", &[], 1),
            entry("12:00", &["sat", "sun"], 6),
        ];
        let (e, when) = due(&entries, at("2026-12-07T07:00:00Z"), at("2026-12-07T08:00:30Z")).unwrap();
        assert_eq!((e.desired, when), (4, at("2026-12-07T08:00:00Z")));
        assert!(
            due(&entries, at("2026-12-07T08:00:00Z"), at("2026-12-07T09:00:00Z")).is_none(),
            "fired once"
        );
        // Asleep over a whole day: the last one due wins.
        let (e, _) = due(&entries, at("2026-12-07T07:00:00Z"), at("2026-12-08T07:00:00Z")).unwrap();
        assert_eq!(e.desired, 1);
        // Weekend only.
        let (e, _) = due(&entries, at("2026-12-12T11:00:00Z"), at("2026-12-12T12:00:00Z")).unwrap();
        assert_eq!(e.desired, 6, "Saturday noon");
        assert!(
            due(&entries, at("2026-12-08T11:00:00Z"), at("2026-12-08T12:00:00Z")).is_none(),
            "not on Tuesday"
        );
        // Seconds.
        let e = [entry("08:00:15", &[], 3)];
        assert!(due(&e, at("2026-12-07T08:00:00Z"), at("2026-12-07T08:00:14Z")).is_none());
        assert!(due(&e, at("2026-12-07T08:00:00Z"), at("2026-12-07T08:00:15Z")).is_some());
    }

    #[test]
    fn bad_entries_are_refused_with_what_is_wrong() {
        let bounds = Scaling {
            min: 1,
            initial: 1,
            max: 5,
        };
        assert!(
            check_entry(&entry("25:00", &[], 2), &bounds)
                .unwrap_err()
                .contains("HH:MM")
        );
        assert!(
            check_entry(&entry("08:00", &["funday"], 2), &bounds)
                .unwrap_err()
                .contains("funday")
        );
        assert!(
            check_entry(&entry("08:00", &[], 9), &bounds)
                .unwrap_err()
                .contains("max 5")
        );
        check_entry(&entry("08:00", &["Mon"], 5), &bounds).unwrap();
    }

    fn policy() -> TargetTracking {
        TargetTracking {
            metric: "cpu".into(),
            target: 50.0,
            scale_out_cooldown_secs: 60,
            scale_in_cooldown_secs: 300,
            warmup_secs: 120,
        }
    }

    fn sample(value: f64, created: &str) -> Sample {
        Sample {
            value,
            created_at: at(created),
        }
    }

    #[test]
    fn tracking_scales_to_the_target_within_bounds_and_cool_downs() {
        let bounds = Scaling {
            min: 1,
            initial: 2,
            max: 5,
        };
        let now = at("2026-12-07T12:00:00Z");
        let old = "2026-12-07T10:00:00Z";
        let two_hot = [sample(90.0, old), sample(110.0, old)];
        assert_eq!(
            track(&policy(), &bounds, 2, &two_hot, None, None, now),
            Tracking::Change {
                to: 4,
                cause: "target tracking: cpu 100.0 per webserver against target 50".into()
            }
        );
        // Bounded by max.
        let burning = [sample(400.0, old), sample(400.0, old)];
        assert!(matches!(
            track(&policy(), &bounds, 2, &burning, None, None, now),
            Tracking::Change { to: 5, .. }
        ));
        // Cool-down after a scale-out 30 s ago.
        let Tracking::Hold(why) = track(
            &policy(),
            &bounds,
            2,
            &two_hot,
            Some(at("2026-12-07T11:59:30Z")),
            None,
            now,
        ) else {
            panic!()
        };
        assert!(
            why.contains("scale-out cool-down runs until 12:00:30 UTC"),
            "{why}"
        );
        // Idle: scale in, bounded by min, after the scale-in cool-down.
        let cold = [sample(5.0, old), sample(5.0, old)];
        assert!(matches!(
            track(&policy(), &bounds, 2, &cold, None, None, now),
            Tracking::Change { to: 1, .. }
        ));
        let Tracking::Hold(why) = track(
            &policy(),
            &bounds,
            2,
            &cold,
            None,
            Some(at("2026-12-07T11:58:00Z")),
            now,
        ) else {
            panic!()
        };
        assert!(why.contains("scale-in cool-down"), "{why}");
    }

    #[test]
    fn absurd_durations_are_refused_and_never_panic() {
        let huge = TargetTracking {
            warmup_secs: u64::MAX,
            scale_out_cooldown_secs: u64::MAX,
            scale_in_cooldown_secs: u64::MAX,
            ..policy()
        };
        assert!(check_tracking(&huge).unwrap_err().contains("longer than a week"));
        check_tracking(&policy()).unwrap();
        let bounds = Scaling {
            min: 1,
            initial: 1,
            max: 5,
        };
        let now = at("2026-12-07T12:00:00Z");
        let samples = [sample(100.0, "2026-12-07T10:00:00Z")];
        // Whatever got stored, evaluating it does not panic.
        let _ = track(&huge, &bounds, 1, &samples, Some(now), Some(now), now);
        let hot = TargetTracking {
            warmup_secs: 0,
            ..huge
        };
        assert!(matches!(
            track(&hot, &bounds, 1, &samples, Some(now), None, now),
            Tracking::Hold(_)
        ));
    }

    #[test]
    fn webservers_in_warm_up_do_not_count() {
        let bounds = Scaling {
            min: 1,
            initial: 1,
            max: 5,
        };
        let now = at("2026-12-07T12:00:00Z");
        // A new webserver's low sample would pull the average down: it is ignored.
        let samples = [
            sample(100.0, "2026-12-07T10:00:00Z"),
            sample(0.0, "2026-12-07T11:59:00Z"),
        ];
        assert_eq!(
            track(&policy(), &bounds, 2, &samples, None, None, now),
            Tracking::Steady,
            "one warmed-up webserver at 100 against 50: 2 is right"
        );
        assert!(matches!(
            track(&policy(), &bounds, 1, &samples, None, None, now),
            Tracking::Change { to: 2, .. }
        ));
        let Tracking::Hold(why) = track(&policy(), &bounds, 1, &samples[1..], None, None, now) else {
            panic!()
        };
        assert!(why.contains("warmed-up"), "{why}");
    }
}
