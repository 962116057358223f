//! A NATS cluster that is not ready yet: a service started against the only node up of a new three-node
//! cluster (no JetStream meta leader, so JetStream does not answer) waits for it instead of exiting, and
//! is serving once the other nodes are up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flotilla_integration_tests::{
    free_port, init_logging, nats_server_bin, service_config_for, start_server_with,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_waits_for_a_cluster_without_quorum_and_serves_once_it_has_one() {
    init_logging();
    let bin = nats_server_bin();
    let dir = tempfile::tempdir().unwrap();
    let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes = cluster_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let node = |i: usize| {
        let dir = dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let args = vec![
            "--server_name".to_owned(),
            format!("n{i}"),
            "--cluster_name".to_owned(),
            "flotilla".to_owned(),
            "--cluster".to_owned(),
            format!("nats://127.0.0.1:{}", cluster_ports[i]),
            "--routes".to_owned(),
            routes.clone(),
        ];
        (dir, args)
    };
    let (dir1, args1) = node(0);
    let (mut n1, url1) =
        start_server_with(&bin, &dir1, &args1.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let data = dir.path().join("dns");
    let cfg = service_config_for::<flotilla_dns::Settings>([url1.as_str()], None, &data);
    let starting = tokio::spawn(flotilla_runtime::host::start(
        flotilla_dns::DEF,
        cfg,
        flotilla_dns::routes,
    ));
    // One node of three: no quorum, so JetStream does not answer; the service keeps asking.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !starting.is_finished(),
        "the service gave up (or started) without a JetStream quorum"
    );

    // A new cluster elects its first meta leader once every node it was given is there.
    let (dir2, args2) = node(1);
    let (mut n2, _) =
        start_server_with(&bin, &dir2, &args2.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let (dir3, args3) = node(2);
    let (mut n3, _) =
        start_server_with(&bin, &dir3, &args3.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let running = tokio::time::timeout(Duration::from_secs(90), starting)
        .await
        .expect("started once the cluster had a quorum")
        .unwrap()
        .unwrap();
    flotilla_integration_tests::until_ready(&running, Duration::from_secs(30)).await;
    running.shutdown().await.unwrap();
    for n in [&mut n1, &mut n2, &mut n3] {
        let _ = n.kill();
        let _ = n.wait();
    }
}

/// The longest time a write to a three-replica KV bucket did not succeed, until stopped: one put every
/// 100 ms, each given one second (a write needs the bucket's stream leader and a quorum, as every command,
/// event and state write of the services does).
async fn stall_probe(
    client: async_nats::Client,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Duration>,
) {
    let js = async_nats::jetstream::new(client);
    let bucket = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "stall_probe".into(),
            num_replicas: 3,
            history: 1,
            ..Default::default()
        })
        .await
        .expect("the probe bucket");
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let probe = tokio::spawn(async move {
        let mut last_ok = std::time::Instant::now();
        let mut longest = Duration::ZERO;
        while !*stopped.borrow() {
            let written = tokio::time::timeout(Duration::from_secs(1), bucket.put("probe", "x".into()))
                .await
                .is_ok_and(|r| r.is_ok());
            if written {
                longest = longest.max(last_ok.elapsed());
                last_ok = std::time::Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.changed() => {}
            }
        }
        longest.max(last_ok.elapsed())
    });
    (stop, probe)
}

/// Three NATS nodes, streams and KV at three replicas, two replicas of every service: one node is killed
/// during a deploy and brought back, then another during a scale-out. The system converges to exactly
/// the machines wanted (none twice: no command handled twice with a double effect), nothing is
/// dead-lettered, no replica exits. Prints the longest JetStream stall and the time to converge
/// (BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_nats_node_during_a_deploy_and_a_scale_out_loses_nothing() {
    use flotilla_integration_tests::system::{Expected, Nats, Options, System};
    init_logging();
    let d = flotilla_integration_tests::templates::seed_import().deployment;
    let Some(mut sys) = System::start(Options {
        replicas: 2,
        boot: Duration::from_millis(300),
        database: Duration::from_secs(1),
        zones: vec![d.dns.zone.clone()],
        nats_nodes: 3,
        bin: env!("CARGO_BIN_EXE_flotilla-service").into(),
    })
    .await
    else {
        return;
    };
    sys.start_all().await;
    let mut expected = Expected {
        deployment: d.clone(),
        webservers: std::collections::BTreeMap::new(),
        agents: vec![],
        webroot: None,
        backup: None,
        gone: Vec::new(),
    };
    for (step, node) in [("deploy", 0), ("scale-out", 1)] {
        let (stop, probe) = stall_probe(sys.client.clone()).await;
        let started = std::time::Instant::now();
        if step == "deploy" {
            sys.deploy(&d).await;
        } else {
            let r = &d.regions[1];
            let wider = (r.scaling.initial + 1).min(r.scaling.max);
            sys.scale(&d, &r.name, wider).await;
            expected.webservers.insert(r.name.clone(), wider);
        }
        // The node dies 1.5 s after the command and is back 10 s later; the system is watched all along.
        let (kill_at, back_at) = (Duration::from_millis(1_500), Duration::from_millis(11_500));
        let (mut killed, mut back, mut converged) = (false, false, None);
        loop {
            let now = started.elapsed();
            let Nats::Cluster(cluster) = &mut sys.nats else {
                unreachable!("three nodes make a cluster")
            };
            if !killed && now >= kill_at {
                cluster.kill_node(node);
                killed = true;
                eprintln!("{step}: NATS node n{node} killed");
            }
            if killed && !back && now >= back_at {
                cluster.start_node(node).await;
                back = true;
                eprintln!("{step}: NATS node n{node} back");
            }
            let left = sys.violations(std::slice::from_ref(&expected)).await;
            if left.is_empty() {
                converged.get_or_insert(started.elapsed());
                if back {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "{step}: not converged after 300 s: {left:#?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let _ = stop.send(true);
        let stall = probe.await.unwrap();
        let converged = converged.unwrap_or_default();
        eprintln!(
            "{step} with NATS node n{node} lost from 1.5 s to 11.5 s: longest write stall {:.1} s, converged {:.1} s after the command",
            stall.as_secs_f64(),
            converged.as_secs_f64()
        );
        let js = async_nats::jetstream::new(sys.client.clone());
        let _ = js.delete_key_value("stall_probe").await;
    }
    assert!(sys.exited().is_empty(), "{:?}", sys.exited());
    let letters = sys.dead_letters().await;
    assert!(letters.is_empty(), "dead letters: {letters:#?}");
    sys.shutdown().await;
}
