//! The operator's bus commands against a real NATS server: `events` (listed, filtered, followed across a
//! NATS restart with nothing lost or shown twice), `dlq list|show|replay` with dead letters made by the
//! real dns service (a refused command, a malformed one published by hand), and the connection options
//! (user and password, token, TLS with a private CA).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use flotilla_bus::{PublishConfig, Publisher, Topology, TopologyConfig};
use flotilla_integration_tests::{TestNats, eventually, nats_server_bin, service_config, start_server_with};
use flotilla_proto::{CommandMeta, DesiredDeployment, DnsAlarm, EventMeta, ReconcileRecords};
use tokio::io::AsyncBufReadExt;

async fn flotilla(url: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .env("NATS_URL", url)
        .env_remove("NATS_PASSWORD")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn alarm(deployment: &str, message: &str) -> DnsAlarm {
    DnsAlarm {
        meta: EventMeta::new(uuid::Uuid::now_v7(), "test"),
        deployment: deployment.into(),
        region: flotilla_proto::ALL_REGIONS.into(),
        name: format!("www.{deployment}.example"),
        alarm: "no-healthy-endpoint".into(),
        raised: true,
        kept: vec![],
        message: message.into(),
    }
}

async fn publisher(url: &str) -> Publisher {
    let client = async_nats::connect(url).await.unwrap();
    Topology::ensure(&client, &TopologyConfig::default())
        .await
        .unwrap();
    Publisher::new(client, PublishConfig::default())
}

fn port_of(url: &str) -> String {
    url.rsplit(':').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_filtered_and_followed_across_a_nats_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bin = nats_server_bin();
    let (mut server, url) = start_server_with(&bin, dir.path(), &[]).await;
    let p = publisher(&url).await;
    for (d, m) in [("shop", "alarm-1"), ("shop", "alarm-2"), ("other", "alarm-3")] {
        p.publish_event(&alarm(d, m)).await.unwrap();
    }

    let out = flotilla(&url, &["events", "shop"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains("alarm-1") && listed.contains("alarm-2"),
        "{listed}"
    );
    assert!(!listed.contains("alarm-3"), "another deployment's: {listed}");
    assert!(
        listed.contains("shop/_all") && listed.contains("dns-alarm.raised"),
        "{listed}"
    );
    let all = json(&flotilla(&url, &["events", "-o", "json"]).await);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().all(|e| e["kind"] == "dns.alarm.v1"), "{all:?}");
    assert_eq!(all[2]["body"]["message"], "alarm-3");
    // A `--since` before any date there can be reads the whole stream.
    let out = flotilla(&url, &["events", "shop", "--since", "300000years"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("alarm-1"), "{}", text(&out));
    let none = json(&flotilla(&url, &["events", "--topic", "machine", "-o", "json"]).await);
    assert_eq!(none, serde_json::json!([]));

    // Followed: the two there, then a NATS restart, then one more — each exactly once.
    let mut follower = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .env("NATS_URL", &url)
        .args(["events", "shop", "--follow", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut next = async || -> String {
        let line = tokio::time::timeout(Duration::from_secs(45), lines.next_line())
            .await
            .expect("an event within 45 s")
            .unwrap()
            .expect("the follower's output");
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        e["body"]["message"].as_str().unwrap().to_owned()
    };
    seen.push(next().await);
    seen.push(next().await);
    assert_eq!(seen, ["alarm-1", "alarm-2"]);

    server.kill().unwrap();
    server.wait().unwrap();
    let port = port_of(&url);
    let (mut server, again) = start_server_with(&bin, dir.path(), &["-p", &port]).await;
    assert_eq!(again, url);
    let p = publisher(&url).await;
    p.publish_event(&alarm("shop", "alarm-4")).await.unwrap();
    p.publish_event(&alarm("other", "alarm-5")).await.unwrap();
    p.publish_event(&alarm("shop", "alarm-6")).await.unwrap();
    seen.push(next().await);
    seen.push(next().await);
    assert_eq!(seen, ["alarm-1", "alarm-2", "alarm-4", "alarm-6"]);
    // Nothing more (no event shown twice after the reconnect).
    assert!(
        tokio::time::timeout(Duration::from_secs(2), lines.next_line())
            .await
            .is_err(),
        "an extra line"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), follower.wait())
        .await
        .expect("stops on Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status:?}");
    server.kill().unwrap();
    server.wait().unwrap();
}

fn dead_letters(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_and_replayed() {
    let nats = TestNats::private().await;
    let url = nats.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let dns = flotilla_runtime::host::start(
        flotilla_dns::DEF,
        service_config::<flotilla_dns::Settings>(&nats, None, dir.path()),
        flotilla_dns::routes,
    )
    .await
    .unwrap();
    let p = publisher(&url).await;
    let d = flotilla_integration_tests::templates::seed_import().deployment;
    let region = d.regions[0].name.clone();

    // Refused: the deployment is not deployed yet.
    let refused = ReconcileRecords {
        meta: CommandMeta::new("test"),
        deployment: d.name.clone(),
        region: region.clone(),
    };
    p.publish_command(&refused).await.unwrap();
    // Malformed, as a hand-written `nats pub` might be: the deployment is a number.
    let subject = flotilla_bus::subject::command("dns", &d.name, &region, "reconcile").unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(flotilla_proto::KIND_HEADER, "dns.reconcile.v1");
    headers.insert(flotilla_proto::CONTENT_TYPE_HEADER, "application/json");
    let mut body = serde_json::to_value(ReconcileRecords {
        meta: CommandMeta::new("me"),
        deployment: d.name.clone(),
        region: region.clone(),
    })
    .unwrap();
    body["deployment"] = 5.into();
    p.publish_raw(
        &subject,
        "hand-made-1",
        headers,
        serde_json::to_vec(&body).unwrap().into(),
    )
    .await
    .unwrap();

    let letters = eventually("two dead letters", Duration::from_secs(30), || async {
        let v = json(&flotilla(&url, &["dlq", "list", "-o", "json"]).await);
        let l = dead_letters(&v);
        (l.len() == 2).then_some(l)
    })
    .await;
    assert!(
        letters
            .iter()
            .all(|l| l["service"] == "dns" && l["original_subject"] == subject)
    );
    let by_error = |needle: &str| {
        letters
            .iter()
            .find(|l| l["error"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no dead letter saying {needle}: {letters:?}"))["sequence"]
            .as_u64()
            .unwrap()
    };
    let not_deployed = by_error("is not deployed");
    let malformed = by_error("at `deployment`");
    assert_ne!(not_deployed, malformed);
    let out = flotilla(&url, &["dlq", "list"]).await;
    assert!(text(&out).contains(&subject), "{}", text(&out));
    let out = flotilla(&url, &["dlq", "list", "provisioner", "-o", "json"]).await;
    assert_eq!(json(&out), serde_json::json!([]));
    let out = flotilla(&url, &["dlq", "show", &malformed.to_string()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("\"deployment\": 5"),
        "the body: {}",
        text(&out)
    );
    let out = flotilla(&url, &["dlq", "show", "9999"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no dead letter 9999"), "{}", text(&out));

    // Deployed now: the refused command replayed is handled, and leaves the queue.
    let topology = Topology::ensure(&nats.client().await, &TopologyConfig::default())
        .await
        .unwrap();
    let desired = topology.desired_states();
    desired
        .put(
            &DesiredDeployment {
                generation: flotilla_integration_tests::next_generation(),
                deployment: d.clone(),
                updated_at: chrono::Utc::now(),
                updated_by: "test".into(),
            },
            None,
        )
        .await
        .unwrap()
        .unwrap();
    // Watched on the wire: the command stream is a work queue, so a handled command leaves no trace there.
    let watcher = nats.client().await;
    let mut wire = watcher.subscribe(subject.clone()).await.unwrap();
    watcher.flush().await.unwrap();
    let out = flotilla(&url, &["dlq", "replay", &not_deployed.to_string()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let sent = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut wire))
        .await
        .expect("the replay on the wire")
        .unwrap();
    assert_eq!(
        flotilla_bus::header(sent.headers.as_ref(), "Nats-Msg-Id").as_deref(),
        Some(format!("replay-{not_deployed}").as_str()),
        "published again under its replay id"
    );
    assert_eq!(
        flotilla_bus::header(sent.headers.as_ref(), flotilla_proto::KIND_HEADER).as_deref(),
        Some("dns.reconcile.v1"),
        "with its own headers"
    );
    // Replaying it again (a retry after a lost answer) finds it gone.
    let out = flotilla(&url, &["dlq", "replay", &not_deployed.to_string()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left = dead_letters(&json(&flotilla(&url, &["dlq", "list", "-o", "json"]).await));
    assert_eq!(
        left.iter()
            .map(|l| l["sequence"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [malformed],
        "the replayed command was handled: {left:?}"
    );

    // The malformed one fails again: back as a new dead letter, the old one gone.
    let out = flotilla(&url, &["dlq", "replay", "--all", "dns", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out).as_array().unwrap().len(), 1);
    let again = eventually("the malformed one back", Duration::from_secs(30), || async {
        let l = dead_letters(&json(&flotilla(&url, &["dlq", "list", "-o", "json"]).await));
        (l.len() == 1 && l[0]["sequence"].as_u64() != Some(malformed)).then_some(l)
    })
    .await;
    assert!(
        again[0]["error"].as_str().unwrap().contains("at `deployment`"),
        "{again:?}"
    );

    // A command over the message limit is kept cut to it, and not replayed: that would send a cut body.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(flotilla_proto::KIND_HEADER, "dns.reconcile.v1");
    headers.insert(flotilla_proto::CONTENT_TYPE_HEADER, "application/json");
    let huge = flotilla_proto::MAX_MESSAGE_BYTES + 10_000;
    p.publish_raw(&subject, "hand-made-huge", headers, vec![b' '; huge].into())
        .await
        .unwrap();
    let cut = eventually(
        "the oversize one dead-lettered",
        Duration::from_secs(30),
        || async {
            let l = dead_letters(&json(&flotilla(&url, &["dlq", "list", "-o", "json"]).await));
            l.into_iter().find(|l| l["original_msg_id"] == "hand-made-huge")
        },
    )
    .await;
    assert_eq!(cut["truncated_from"], huge, "{cut:?}");
    let cut = cut["sequence"].as_u64().unwrap().to_string();
    let out = flotilla(&url, &["dlq", "replay", &cut]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "keeps only the first {} of its {huge} bytes",
            flotilla_proto::MAX_MESSAGE_BYTES
        )),
        "{}",
        text(&out)
    );
    let out = flotilla(&url, &["dlq", "replay", "--all", "dns"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("left in the queue"), "{}", text(&out));
    let left = dead_letters(&json(&flotilla(&url, &["dlq", "list", "-o", "json"]).await));
    assert!(
        left.iter()
            .any(|l| l["sequence"].as_u64().unwrap().to_string() == cut),
        "the cut letter stays: {left:?}"
    );

    // The refusals are events too.
    let out = flotilla(&url, &["events", &d.name, "--topic", "command"]).await;
    assert!(text(&out).contains("is not deployed"), "{}", text(&out));
    dns.shutdown().await.unwrap();
}

async fn ping(url: &str, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"));
    cmd.env_remove("NATS_URL").env_remove("NATS_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["--nats-url", url])
        .args(extra)
        .args(["ping", "--timeout", "200ms"])
        .output()
        .await
        .unwrap()
}

/// Connected: `ping` got as far as asking (no service runs here, so it says none answered).
fn connected(out: &std::process::Output) -> bool {
    out.status.code() == Some(1) && text(out).contains("no Flotilla service answered")
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_connects_with_a_password_a_token_and_tls() {
    let bin = nats_server_bin();
    let dir = tempfile::tempdir().unwrap();

    let users = dir.path().join("users");
    std::fs::create_dir_all(&users).unwrap();
    let (mut server, url) = start_server_with(&bin, &users, &["--user", "ops", "--pass", "s3cret-pw"]).await;
    let good = write(dir.path(), "password", "s3cret-pw\n");
    let bad = write(dir.path(), "wrong", "nope\n");
    let out = ping(&url, &["--nats-user", "ops", "--nats-password-file", &good], &[]).await;
    assert!(connected(&out), "{}", text(&out));
    let out = ping(&url, &["--nats-user", "ops"], &[("NATS_PASSWORD", "s3cret-pw")]).await;
    assert!(connected(&out), "{}", text(&out));
    let out = ping(&url, &["--nats-user", "ops", "--nats-password-file", &bad], &[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("cannot reach NATS"), "{}", text(&out));
    assert!(
        !text(&out).contains("s3cret-pw") && !text(&out).contains("nope"),
        "{}",
        text(&out)
    );
    server.kill().unwrap();
    server.wait().unwrap();

    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let (mut server, url) = start_server_with(&bin, &tokens, &["--auth", "t0ken-value"]).await;
    let token = write(dir.path(), "token", "t0ken-value\n");
    let out = ping(&url, &["--nats-token-file", &token], &[]).await;
    assert!(connected(&out), "{}", text(&out));
    let out = ping(&url, &[], &[]).await;
    assert_eq!(out.status.code(), Some(3), "no token: {}", text(&out));
    server.kill().unwrap();
    server.wait().unwrap();

    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let files = flotilla_integration_tests::tls::private_ca(&tls);
    let (mut server, url) = start_server_with(
        &bin,
        &tls,
        &[
            "--tls",
            "--tlscert",
            &files.cert.display().to_string(),
            "--tlskey",
            &files.key.display().to_string(),
        ],
    )
    .await;
    let tls_url = url.replace("nats://", "tls://");
    let out = ping(&tls_url, &["--nats-tls-ca", &files.ca.display().to_string()], &[]).await;
    assert!(connected(&out), "{}", text(&out));
    let out = ping(&tls_url, &[], &[]).await;
    assert_eq!(out.status.code(), Some(3), "an untrusted server: {}", text(&out));
    server.kill().unwrap();
    server.wait().unwrap();
}
