//! The autoscaler over a real NATS, beside the real provisioner, against the simulator:
//!
//! - scale 1 → 5 → 2: counts converge, activities tell the story, out-of-range values are refused with
//!   the bounds named, and a scale command delivered again changes nothing;
//! - a webserver whose health listener stops is reported unhealthy and replaced, once, even when the
//!   autoscaler restarts in the middle;
//! - a reverse proxy that stops answering is reported unhealthy within two intervals, and healthy again
//!   when it answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, PATIENCE, settings};
use flotilla_bus::subject;
use flotilla_cloudsim::{Fault, FaultKind, Provider};
use flotilla_integration_tests::eventually;

#[tokio::test]
async fn scale_one_to_five_to_two_converges_and_refuses_what_is_out_of_bounds() {
    let h = Harness::start("1", |_| {}).await;
    let five = h.scale(5).await;
    let r = h.converged(5).await;
    assert_eq!((r.min, r.max), (1, 5));
    assert_eq!(h.webservers_at_the_provider(), 5, "{:?}", h.sim.machines());
    let done = &r.activities[0];
    assert_eq!(done.status, "successful", "{r:?}");
    assert!(done.cause.contains("desired count 5"), "{done:?}");

    // Out of bounds: refused, with the bounds named; nothing changes.
    let too_many = h.scale(9).await;
    let rejection = eventually("the rejection of 9", PATIENCE, || async {
        let seen = h.seen.lock().unwrap();
        seen.rejected
            .iter()
            .find(|r| r.command_id.as_deref() == Some(&too_many.meta.id.to_string()))
            .cloned()
    })
    .await;
    assert!(
        rejection.error.contains("min 1") && rejection.error.contains("max 5"),
        "{rejection:?}"
    );

    h.scale(2).await;
    let r = h.converged(2).await;
    assert_eq!(h.webservers_at_the_provider(), 2);
    assert_eq!(r.activities[0].status, "successful");
    assert!(r.activities[0].message.contains("destroyed"), "{r:?}");
    // The machines scaled in were drained first: reported unhealthy ("draining") before they went.
    assert!(
        h.seen
            .lock()
            .unwrap()
            .health
            .iter()
            .filter(|e| e.reason.contains("draining"))
            .count()
            == 3
    );

    // The earlier scale to 5, delivered again (under another message id, past de-duplication): no change.
    h.publisher
        .publish(&subject::command_for(&five).unwrap(), "a-late-copy", &five)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = h.converged(2).await;
    assert_eq!(r.desired, 2, "a redelivered command changes nothing twice");
    // The story, in activities: out to 5, in to 2.
    let story: Vec<(String, String)> = r
        .activities
        .iter()
        .rev()
        .map(|a| (a.cause.clone(), a.status.clone()))
        .collect();
    assert_eq!(story.len(), 2, "{story:?}");
    h.stop().await;
}

#[tokio::test]
async fn an_unhealthy_webserver_is_replaced_once_across_a_restart() {
    let mut h = Harness::start("2", |_| {}).await;
    let fleet = h.explain().await;
    assert_eq!(fleet.current, 2);
    let victim = h
        .at_the_provider("webserver")
        .into_iter()
        .next()
        .expect("a webserver at the provider");
    h.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::Unhealthy {
            machine_id: victim.id.clone(),
        },
    });
    // Reported unhealthy, then a replacement is under way: restart the autoscaler now.
    eventually("the replacement under way", PATIENCE, || async {
        let r = h.explain().await;
        r.activities
            .first()
            .filter(|a| a.ended_at.is_none() && a.cause.contains("unhealthy"))
            .cloned()
    })
    .await;
    h.autoscaler.take().unwrap().shutdown().await.unwrap();
    let s = settings(&h.sim);
    h.start_autoscaler(s).await;
    let r = h.converged(2).await;
    assert!(
        h.sim.machines().iter().all(|m| m.id != victim.id),
        "the dead webserver is destroyed"
    );
    {
        let seen = h.seen.lock().unwrap();
        assert_eq!(
            seen.replace_commands.len(),
            1,
            "one replacement: {:?}",
            seen.replace_commands
        );
        assert!(seen.health.iter().any(|e| !e.healthy && e.role == "webserver"));
    }
    assert!(
        r.activities
            .iter()
            .any(|a| a.cause.contains("unhealthy") && a.status == "successful"),
        "{r:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_reverse_proxy_that_stops_answering_is_reported_and_recovers() {
    // Reverse proxies are watched, not replaced, here.
    let h = Harness::start("1", |s| s.probe.reverse_proxy.replace_after = 0).await;
    let proxy = eventually("a reverse proxy at the provider", PATIENCE, || async {
        h.at_the_provider("reverse-proxy").into_iter().next()
    })
    .await;
    eventually("the proxy healthy", PATIENCE, || async {
        h.seen
            .lock()
            .unwrap()
            .health
            .iter()
            .any(|e| e.role == "reverse-proxy" && e.healthy)
            .then_some(())
    })
    .await;
    let before = h.seen.lock().unwrap().health.len();
    let stopped = std::time::Instant::now();
    h.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::Unhealthy {
            machine_id: proxy.id.clone(),
        },
    });
    let unhealthy = eventually("the proxy reported unhealthy", PATIENCE, || async {
        h.seen.lock().unwrap().health[before..]
            .iter()
            .find(|e| e.role == "reverse-proxy" && !e.healthy)
            .cloned()
    })
    .await;
    // Two failed checks at the interval, plus one interval of slack for where in its cycle it stopped.
    println!("unhealthy after {:?}: {unhealthy:?}", stopped.elapsed());
    assert!(unhealthy.failures >= 2, "{unhealthy:?}");
    assert!(!unhealthy.reason.is_empty());
    h.sim.clear_faults(None);
    eventually("the proxy healthy again", PATIENCE, || async {
        h.seen.lock().unwrap().health[before..]
            .iter()
            .any(|e| e.role == "reverse-proxy" && e.healthy)
            .then_some(())
    })
    .await;
    // Nothing was replaced.
    assert!(h.seen.lock().unwrap().replace_commands.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn protecting_a_draining_machine_cancels_its_scale_in_and_another_goes() {
    let h = Harness::start("1", |s| s.drain_delay = Duration::from_secs(3)).await;
    h.scale(3).await;
    h.converged(3).await;
    h.scale(2).await;
    let draining = eventually("a machine draining", PATIENCE, || async {
        let r = h.try_explain().await.ok()?;
        let a = r.activities.first()?;
        (a.ended_at.is_none() && a.message.starts_with("draining "))
            .then(|| a.message.trim_start_matches("draining ").to_owned())
    })
    .await;
    let protect = flotilla_proto::ProtectMachine {
        meta: flotilla_proto::CommandMeta::new("test"),
        deployment: h.deployment.name.clone(),
        region: h.region.clone(),
        resource_id: draining.clone(),
        protected: true,
    };
    h.publisher.publish_command(&protect).await.unwrap();
    let r = h.converged(2).await;
    assert!(
        r.activities
            .iter()
            .any(|a| a.status == "cancelled" && a.message.contains(&format!("{draining} was protected"))),
        "{:?}",
        r.activities
    );
    let fleet = flotilla_bus::Topology::ensure(&h.client, &flotilla_bus::TopologyConfig::default())
        .await
        .unwrap()
        .fleet_view()
        .snapshot(Some(&h.deployment.name))
        .await
        .unwrap();
    assert!(
        fleet.values().any(|m| m.resource_id == draining),
        "the protected machine stays"
    );
    // Its real health was told again once its drain ended.
    let last = h
        .seen
        .lock()
        .unwrap()
        .health
        .iter()
        .rev()
        .find(|e| e.resource_id == draining)
        .cloned()
        .unwrap();
    assert!(last.healthy, "{last:?}");
    h.stop().await;
}
