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
    let ready = format!("http://{}/ready", running.admin_addr.unwrap());
    flotilla_integration_tests::eventually("ready", Duration::from_secs(30), || async {
        reqwest::get(&ready)
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
    running.shutdown().await.unwrap();
    for n in [&mut n1, &mut n2, &mut n3] {
        let _ = n.kill();
        let _ = n.wait();
    }
}
