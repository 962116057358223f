//! What moves the desired count besides `scale`: a schedule entry fires at its time; target tracking
//! follows the webservers' published metric, within the bounds, holding during its cool-down (and saying
//! so in `explain`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, PATIENCE};
use flotilla_integration_tests::eventually;
use flotilla_proto::{
    CommandMeta, EventMeta, MachineMetric, ScheduleEntry, SetSchedule, SetTargetTracking, TargetTracking,
};

#[tokio::test]
async fn a_schedule_entry_moves_the_count_at_its_time() {
    let h = Harness::start("1", |_| {}).await;
    // Refused: out of bounds, with the bounds named.
    let bad = SetSchedule {
        meta: CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: h.region.clone(),
        entries: vec![ScheduleEntry {
            at: "08:00".into(),
            days: vec![],
            desired: 9,
        }],
    };
    h.publisher.publish_command(&bad).await.unwrap();
    let id = bad.meta.id.to_string();
    eventually("the bad schedule refused", PATIENCE, || async {
        let seen = h.seen.lock().unwrap();
        seen.rejected
            .iter()
            .find(|r| r.command_id.as_deref() == Some(id.as_str()))
            .filter(|r| r.error.contains("max 5"))
            .cloned()
    })
    .await;
    // Three seconds from now: 3 webservers.
    let at = (chrono::Utc::now() + chrono::Duration::seconds(3))
        .format("%H:%M:%S")
        .to_string();
    let cmd = SetSchedule {
        meta: CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: h.region.clone(),
        entries: vec![ScheduleEntry {
            at: at.clone(),
            days: vec![],
            desired: 3,
        }],
    };
    h.publisher.publish_command(&cmd).await.unwrap();
    let r = h.converged(3).await;
    let activity = &r.activities[0];
    assert!(activity.cause.contains(&format!("schedule {at}")), "{activity:?}");
    h.stop().await;
}

async fn publish_cpu(h: &Harness, value: f64) {
    let fleet = flotilla_bus::Topology::ensure(&h.client, &flotilla_bus::TopologyConfig::default())
        .await
        .unwrap()
        .fleet_view()
        .snapshot(Some(&h.deployment.name))
        .await
        .unwrap();
    for m in fleet.values().filter(|m| m.role == "webserver") {
        let sample = MachineMetric {
            meta: EventMeta::new(uuid::Uuid::now_v7(), "agent"),
            deployment: m.deployment.clone(),
            region: m.region.clone(),
            resource_id: m.resource_id.clone(),
            metric: "cpu".into(),
            value,
        };
        h.publisher.publish_event(&sample).await.unwrap();
    }
}

#[tokio::test]
async fn target_tracking_follows_the_metric_within_bounds_and_cool_downs() {
    let h = Harness::start("1", |_| {}).await;
    let cmd = SetTargetTracking {
        meta: CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: h.region.clone(),
        policy: Some(TargetTracking {
            metric: "cpu".into(),
            target: 50.0,
            scale_out_cooldown_secs: 0,
            scale_in_cooldown_secs: 3600,
            warmup_secs: 0,
        }),
    };
    h.publisher.publish_command(&cmd).await.unwrap();
    // One webserver at 150% of the target's load: 3 webservers.
    eventually("scaled out by tracking", PATIENCE, || async {
        publish_cpu(&h, 150.0).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = h.try_explain().await.ok()?;
        (r.desired == 3).then_some(())
    })
    .await;
    let r = h.converged(3).await;
    assert!(
        r.activities[0].cause.contains("target tracking: cpu 150.0"),
        "{:?}",
        r.activities[0]
    );
    // Idle now, but the scale-in cool-down (an hour) holds the count, and explain says so.
    let held = eventually("the cool-down explained", PATIENCE, || async {
        publish_cpu(&h, 1.0).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = h.try_explain().await.ok()?;
        r.blocked.filter(|b| b.contains("scale-in cool-down"))
    })
    .await;
    assert!(held.contains("asks 1"), "{held}");
    assert_eq!(h.explain().await.desired, 3);
    // Without the cool-down, it scales in to the minimum.
    let cmd = SetTargetTracking {
        meta: CommandMeta::new("test"),
        policy: Some(TargetTracking {
            scale_in_cooldown_secs: 0,
            ..cmd.policy.clone().unwrap()
        }),
        ..cmd
    };
    h.publisher.publish_command(&cmd).await.unwrap();
    eventually("scaled in by tracking", PATIENCE, || async {
        publish_cpu(&h, 1.0).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = h.try_explain().await.ok()?;
        (r.desired == 1).then_some(())
    })
    .await;
    h.converged(1).await;
    h.stop().await;
}
