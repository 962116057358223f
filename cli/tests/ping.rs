//! `flotilla ping` against a real NATS server, with and without services.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use flotilla_integration_tests::{TestNats, free_port, init_logging, service_config};

fn flotilla(nats_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .env("NATS_URL", nats_url)
        .args(args)
        .output()
        .unwrap()
}

/// Runs the CLI without blocking the runtime the in-process services run on.
async fn flotilla_async(nats_url: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .env("NATS_URL", nats_url)
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn ping_lists_running_services_and_names_the_missing_ones() {
    init_logging();
    let nats = TestNats::private().await;
    let dir = tempfile::tempdir().unwrap();
    let none = flotilla_async(nats.url(), &["ping", "--timeout", "300ms"]).await;
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no Flotilla service answered"),
        "{none:?}"
    );

    let p = flotilla_runtime::host::start(
        flotilla_provisioner::DEF,
        service_config(&nats, None, dir.path()),
        flotilla_provisioner::routes,
    )
    .await
    .unwrap();
    let d = flotilla_runtime::host::start(
        flotilla_dns::DEF,
        service_config(&nats, None, dir.path()),
        flotilla_dns::routes,
    )
    .await
    .unwrap();
    let out = flotilla_async(nats.url(), &["ping", "--timeout", "500ms"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("flotilla-provisioner") && stdout.contains(&p.instance_id),
        "{stdout}"
    );
    assert!(
        stdout.contains("flotilla-dns") && stdout.contains(&d.instance_id),
        "{stdout}"
    );
    assert!(
        stdout.contains("not answering: firewall, sync, autoscaler"),
        "{stdout}"
    );

    let json = flotilla_async(nats.url(), &["ping", "--timeout", "500ms", "--output", "json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["services"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["missing"],
        serde_json::json!(["firewall", "sync", "autoscaler"])
    );
    p.shutdown().await.unwrap();
    d.shutdown().await.unwrap();
}

#[test]
fn ping_without_nats_says_where_it_looked() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let out = flotilla(&url, &["ping"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to NATS") && stderr.contains(&url[7..]),
        "{stderr}"
    );
}
