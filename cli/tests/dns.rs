//! `flotilla failover`, `flotilla dns show|hand-over|adopt` and the DNS part of `flotilla status` over a
//! real NATS, against a stand-in dns service (and provisioner) that gives each answer the commands must
//! handle: the records view, a 404 and a 409 refusal, a fail-over moved, refused, or already in place; and
//! the status of a fleet whose dns service does not answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_integration_tests::TestNats;
use flotilla_proto::{NameView, RecordsView};
use futures::StreamExt;

async fn flotilla(nats_url: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .env("NATS_URL", nats_url)
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

const ENCODING: flotilla_proto::Encoding = flotilla_proto::Encoding::MessagePack;

/// Answers `request` (a core NATS request) with `resp`.
async fn reply<M: flotilla_proto::Message>(
    client: &async_nats::Client,
    request: &async_nats::Message,
    resp: &M,
) {
    client
        .publish_with_headers(
            request.reply.clone().unwrap(),
            flotilla_bus::message_headers::<M>(ENCODING),
            flotilla_proto::encode(resp, ENCODING).unwrap().into(),
        )
        .await
        .unwrap();
}

/// Answers `request` with the service API's error headers.
async fn refuse(client: &async_nats::Client, request: &async_nats::Message, code: u16, message: &str) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Service-Error", message);
    headers.insert("Nats-Service-Error-Code", code.to_string().as_str());
    client
        .publish_with_headers(request.reply.clone().unwrap(), headers, "".into())
        .await
        .unwrap();
}

/// Publishes `event` on `subject` (core NATS, as the CLI subscribes).
async fn announce<M: flotilla_proto::Message>(client: &async_nats::Client, subject: String, event: &M) {
    client
        .publish_with_headers(
            subject,
            flotilla_bus::message_headers::<M>(ENCODING),
            flotilla_proto::encode(event, ENCODING).unwrap().into(),
        )
        .await
        .unwrap();
}

fn decode<M: flotilla_proto::Message>(msg: &async_nats::Message) -> M {
    let kind = flotilla_bus::header(msg.headers.as_ref(), flotilla_proto::KIND_HEADER);
    let ct = flotilla_bus::header(msg.headers.as_ref(), flotilla_proto::CONTENT_TYPE_HEADER);
    flotilla_proto::decode(kind.as_deref(), ct.as_deref(), &msg.payload).unwrap()
}

fn records_view(deployment: &str) -> RecordsView {
    RecordsView {
        deployment: deployment.into(),
        zone: "example.com".into(),
        provider: "cloudflare".into(),
        names: vec![
            NameView {
                name: "www.example.com".into(),
                desired: vec!["203.0.113.10".into(), "203.0.113.11".into()],
                current: vec!["203.0.113.10".into()],
                creates: vec!["203.0.113.11".into()],
                deletes: vec![],
                conflicts: vec!["198.51.100.7 (owned by deployment old-shop)".into()],
            },
            NameView {
                name: "auth.example.com".into(),
                desired: vec!["203.0.113.20".into()],
                current: vec!["203.0.113.20".into()],
                creates: vec![],
                deletes: vec![],
                conflicts: vec![],
            },
        ],
        excluded: vec![flotilla_proto::ExcludedMachine {
            resource_id: "shop-nl-ams-ws-1".into(),
            region: "nl-ams".into(),
            role: "webserver".into(),
            public_ipv4: Some("203.0.113.12".into()),
            why: "not healthy".into(),
        }],
        alarms: vec![],
        active_authenticator: Some("gb-lon".into()),
    }
}

/// A stand-in provisioner answering `machines` with one region of deployment `shop`.
async fn fake_provisioner(nats: &TestNats) -> tokio::task::JoinHandle<()> {
    let client = nats.client().await;
    let mut machines = client
        .subscribe("flotilla.api.provisioner.machines")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let fleet: flotilla_proto::Fleet = serde_json::from_value(serde_json::json!({
        "regions": [{
            "deployment": "shop",
            "region": "gb-lon",
            "provider": "linode",
            "primary": true,
            "status": "applied",
            "detail": null,
            "vpc_id": null,
            "machines": [],
            "dbaas": null,
        }]
    }))
    .unwrap();
    tokio::spawn(async move {
        while let Some(m) = machines.next().await {
            reply(&client, &m, &fleet).await;
        }
    })
}

/// A stand-in dns service: `status`; `records` of `shop` (active authenticator gb-lon), 404 for any other deployment;
/// `hand-over` refused with 409 from `old-shop`; `adopt`; and `dns.failover` to gb-lon (already active:
/// nothing), to nl-ams (moved), to anything else (rejected).
async fn fake_dns(nats: &TestNats) -> tokio::task::JoinHandle<()> {
    let client = nats.client().await;
    flotilla_bus::Topology::ensure(&client, &flotilla_bus::TopologyConfig::default())
        .await
        .unwrap();
    let mut status = client.subscribe("flotilla.api.dns.status").await.unwrap();
    let mut records = client.subscribe("flotilla.api.dns.records").await.unwrap();
    let mut hand_overs = client.subscribe("flotilla.api.dns.hand-over").await.unwrap();
    let mut adopts = client.subscribe("flotilla.api.dns.adopt").await.unwrap();
    let mut failovers = client.subscribe("flotilla.cmd.dns.*.*.failover").await.unwrap();
    client.flush().await.unwrap();
    let service: flotilla_proto::ServiceStatus = serde_json::from_value(serde_json::json!({
        "service": "dns",
        "version": "0.0.0",
        "instance": "stand-in",
        "started_at": "2026-01-01T00:00:00Z",
        "database_ok": true,
        "commands_acked": 0,
        "commands_retried": 0,
        "commands_dead_lettered": 0,
    }))
    .unwrap();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(m) = status.next() => reply(&client, &m, &service).await,
                Some(m) = records.next() => {
                    let req: flotilla_proto::ShowRecords = decode(&m);
                    if req.deployment == "shop" {
                        reply(&client, &m, &records_view("shop")).await;
                    } else {
                        refuse(&client, &m, 404, &format!("deployment {} is not deployed", req.deployment)).await;
                    }
                }
                Some(m) = hand_overs.next() => {
                    let req: flotilla_proto::HandOver = decode(&m);
                    if req.from == "old-shop" {
                        refuse(&client, &m, 409, "deployment old-shop is still deployed and would create its \
                            records again; destroy it first").await;
                    } else {
                        let answer = flotilla_proto::OwnershipChanged {
                            deployment: req.deployment,
                            records: req.names.iter().map(|n| format!("{n} 203.0.113.10")).collect(),
                            dry_run: req.dry_run,
                        };
                        reply(&client, &m, &answer).await;
                    }
                }
                Some(m) = adopts.next() => {
                    let req: flotilla_proto::Adopt = decode(&m);
                    let answer = flotilla_proto::OwnershipChanged {
                        deployment: req.deployment,
                        records: vec!["www.example.com 203.0.113.9".into()],
                        dry_run: req.dry_run,
                    };
                    reply(&client, &m, &answer).await;
                }
                Some(m) = failovers.next() => {
                    let cmd: flotilla_proto::FailoverAuthenticator = decode(&m);
                    match cmd.region.as_str() {
                        "gb-lon" => {}
                        "nl-ams" => {
                            // An unrelated move first: the CLI waits for the one its command caused.
                            for meta in [
                                flotilla_proto::EventMeta::new(uuid::Uuid::now_v7(), "dns"),
                                flotilla_proto::EventMeta::derived(&cmd.meta, "authenticator-moved", "dns"),
                            ] {
                                let unrelated = meta.correlation_id != cmd.meta.correlation_id;
                                let event = flotilla_proto::AuthenticatorMoved {
                                    meta,
                                    deployment: cmd.deployment.clone(),
                                    region: cmd.region.clone(),
                                    from: Some("gb-lon".into()),
                                    cause: if unrelated { "health" } else { "command" }.into(),
                                    reason: if unrelated { "unrelated".into() } else {
                                        format!("fail-over by {}", cmd.meta.issued_by)
                                    },
                                };
                                let subject = flotilla_bus::subject::event_for(&event).unwrap();
                                announce(&client, subject, &event).await;
                            }
                        }
                        other => {
                            let rejected: flotilla_proto::CommandRejected =
                                serde_json::from_value(serde_json::json!({
                                    "service": "dns",
                                    "subject": m.subject.to_string(),
                                    "command_id": cmd.meta.id.to_string(),
                                    "kind": "dns.failover.v1",
                                    "error": format!("deployment shop has no region {other} deployed"),
                                    "deliveries": 1,
                                    "rejected_at": "2026-01-01T00:00:00Z",
                                }))
                                .unwrap();
                            let subject =
                                flotilla_bus::subject::event("command", &cmd.deployment, other, "rejected").unwrap();
                            announce(&client, subject, &rejected).await;
                        }
                    }
                }
                else => return,
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_commands_show_the_records_and_the_refusals_and_follow_a_failover() {
    let nats = TestNats::private().await;
    let url = nats.url().to_owned();
    let _provisioner = fake_provisioner(&nats).await;

    // No dns service: status still shows the fleet, with one line saying the records are unknown.
    let out = flotilla(&url, &["status", "shop"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("region gb-lon")
            && stdout.contains("  DNS records unknown (dns service not answering)"),
        "{}",
        text(&out)
    );
    let out = flotilla(&url, &["status", "shop", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["regions"][0]["region"], "gb-lon", "{json}");
    assert_eq!(
        json["dns"]["shop"]["unknown"], "dns service not answering",
        "{json}"
    );
    for args in [
        &["dns", "show", "shop"][..],
        &["failover", "shop", "--to", "nl-ams"],
    ] {
        let out = flotilla(&url, args).await;
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("the dns service is not running"),
            "{args:?}: {}",
            text(&out)
        );
    }

    let _dns = fake_dns(&nats).await;

    // The plan, as text and as JSON.
    let out = flotilla(&url, &["dns", "show", "shop"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    for line in [
        "deployment shop: zone example.com (cloudflare)",
        "  www.example.com\n    desired:   203.0.113.10, 203.0.113.11\n    current:   203.0.113.10\n    \
         creates:   203.0.113.11\n    deletes:   none\n",
        "      198.51.100.7 (owned by deployment old-shop)",
        "  active authenticator: region gb-lon",
        "    shop-nl-ams-ws-1 (nl-ams webserver, 203.0.113.12): not healthy",
        "  alarms: none",
    ] {
        assert!(shown.contains(line), "{line:?} not in {shown}");
    }
    let out = flotilla(&url, &["dns", "show", "shop", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let view: RecordsView = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view, records_view("shop"));

    // Refusals, with the code and the reason.
    let out = flotilla(&url, &["dns", "show", "gone"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the dns service refused (404): deployment gone is not deployed"),
        "{}",
        text(&out)
    );
    let out = flotilla(&url, &["dns", "hand-over", "shop", "--from", "old-shop"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the dns service refused (409): deployment old-shop is still deployed"),
        "{}",
        text(&out)
    );

    // Hand-over and adopt, dry and not.
    let out = flotilla(
        &url,
        &[
            "dns",
            "hand-over",
            "shop",
            "--from",
            "flotilla:shop-v1",
            "--name",
            "www.example.com",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(
            "deployment shop: 1 record(s) would be handed over from flotilla:shop-v1 (dry run: nothing \
             changed):\n  www.example.com 203.0.113.10\n"
        ),
        "{}",
        text(&out)
    );
    let out = flotilla(&url, &["dns", "adopt", "shop"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("deployment shop: 1 record(s) adopted:\n  www.example.com 203.0.113.9\n"),
        "{}",
        text(&out)
    );

    // Status with the records.
    let out = flotilla(&url, &["status", "shop"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("  DNS zone example.com (cloudflare), authenticator active in gb-lon\n")
            && shown.contains("    www.example.com   203.0.113.10  (to create: 203.0.113.11)\n")
            && shown.contains("    auth.example.com  203.0.113.20\n")
            && shown.contains("conflict: 198.51.100.7 (owned by deployment old-shop)"),
        "{shown}"
    );
    let out = flotilla(&url, &["status", "--output", "json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["regions"][0]["deployment"], "shop", "{json}");
    let records: RecordsView = serde_json::from_value(json["dns"]["shop"]["records"].clone()).unwrap();
    assert_eq!(records, records_view("shop"));

    // Fail-over: moved (the event of this command, not another), refused, already in place.
    let out = flotilla(&url, &["failover", "shop", "--to", "nl-ams"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("deployment shop: the authenticator name now points at region nl-ams, was gb-lon (fail-over by cli:"),
        "{shown}"
    );
    assert!(!shown.contains("unrelated"), "{shown}");
    let out = flotilla(&url, &["failover", "shop", "--to", "xx-nowhere"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "the dns service refused the fail-over: deployment shop has no region xx-nowhere deployed"
        ),
        "{}",
        text(&out)
    );
    let out = flotilla(&url, &["failover", "shop", "--to", "gb-lon", "--timeout", "1s"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out)
            .contains("deployment shop: region gb-lon is already the active authenticator; nothing changed"),
        "{}",
        text(&out)
    );
}
