//! Regions are independent, and each has one leader:
//!
//! - a provider region that is down fails its region's action and backs that region off (visible in
//!   `explain`), while another region scaled at the same time converges;
//! - two autoscaler processes: only one acts for the region; SIGKILL the leader in the middle of a
//!   scale-out and the other takes over within the lease time and finishes it, with one create command.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, PATIENCE, settings};
use flotilla_cloudsim::{Fault, FaultKind, Provider, defaults};
use flotilla_integration_tests::{eventually, templates};

#[tokio::test]
async fn a_region_whose_provider_is_down_backs_off_while_another_converges() {
    let deployment = templates::seed_import().deployment;
    let mut h = Harness::new(deployment, |c| {
        c.consumer.max_deliver = 2;
        c.consumer.retry_delays = vec![Duration::from_millis(200)];
    })
    .await;
    let s = settings(&h.sim);
    h.start_autoscaler(s).await;
    for region in ["gb-lon", "nl-ams", "ch-gva-2"] {
        h.apply(region).await;
    }
    for region in ["gb-lon", "nl-ams", "ch-gva-2"] {
        h.converged_in(region, 1).await;
    }
    h.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::RegionDown {
            region: h.deployment.region("nl-ams").unwrap().provider_region.clone(),
        },
    });
    h.scale_region("nl-ams", 2).await;
    h.scale_region("ch-gva-2", 2).await;
    // The other provider's region converges while nl-ams is down.
    h.converged_in("ch-gva-2", 2).await;
    let down = eventually("nl-ams backing off", PATIENCE, || async {
        let r = h.try_explain_region("nl-ams").await.ok()?;
        r.blocked
            .as_deref()
            .is_some_and(|b| b.contains("backing off"))
            .then_some(r)
    })
    .await;
    let failed = down
        .activities
        .iter()
        .find(|a| a.status == "failed")
        .expect("the failed action is among the activities");
    assert!(!failed.message.is_empty(), "{failed:?}");
    // gb-lon, same provider, other region: untouched and still answering.
    let gb = h.try_explain_region("gb-lon").await.unwrap();
    assert_eq!((gb.current, gb.healthy), (1, 1), "{gb:?}");
    h.stop().await;
}

/// An autoscaler process with the test's settings, its config in `dir`.
fn autoscaler_process(h: &Harness, name: &str) -> Child {
    let port = h.sim.health_port();
    let probe = format!(
        "port = {port}\npath = \"/health\"\ninterval = \"250ms\"\ntimeout = \"200ms\"\nhealthy_threshold = 1\ngrace = \"5s\"\n"
    );
    let config = format!(
        "data_dir = \"{data}\"\n[nats]\nurls = [\"{url}\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[service]\nlease_ttl = \"3s\"\n\
         resync_interval = \"1s\"\ndrain_delay = \"500ms\"\n[service.probe.webserver]\n{probe}\
         [service.probe.reverse_proxy]\n{probe}[service.probe.authenticator]\n{probe}",
        data = h.dir.path().join(name).display(),
        url = h.nats.url(),
    );
    let path = h.dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_flotilla-autoscaler"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_killed_leader_is_taken_over_within_the_lease_time_without_double_scaling() {
    let import = templates::import(&[
        ("TOKEN", defaults::LINODE_TOKEN),
        ("INPARALLEL", "1"),
        ("NO_WEBSERVERS", "1"),
        ("MAX_WEBSERVERS", "5"),
    ]);
    let h = Harness::new(import.deployment, |_| {}).await;
    let mut first = autoscaler_process(&h, "first");
    h.apply(&h.region.clone()).await;
    let leading = h.converged(1).await;
    let first_id = leading.leader.clone().expect("a leader");
    let mut second = autoscaler_process(&h, "second");
    // Both answer; one leads.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.explain().await.leader.as_deref(), Some(first_id.as_str()));

    h.scale(3).await;
    eventually("the scale-out under way", PATIENCE, || async {
        let r = h.try_explain().await.ok()?;
        (r.desired == 3).then_some(())
    })
    .await;
    first.kill().unwrap();
    let killed = Instant::now();
    let _ = first.wait();
    let took_over = eventually("the other replica leading", PATIENCE, || async {
        let r = h.try_explain().await.ok()?;
        r.leader.filter(|l| l != &first_id)
    })
    .await;
    let after = killed.elapsed();
    println!("taken over by {took_over} {after:?} after the kill (lease 3s)");
    assert!(
        after < Duration::from_secs(3 * 3),
        "within the lease time, give or take a renewal: {after:?}"
    );
    h.converged(3).await;
    assert_eq!(h.webservers_at_the_provider(), 3);
    let creates = h.seen.lock().unwrap().create_commands.clone();
    assert_eq!(
        creates.len(),
        1,
        "one create command, whoever sent it: {creates:?}"
    );
    second.kill().unwrap();
    let _ = second.wait();
    h.stop().await;
}
