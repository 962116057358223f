//! Every service, started as its binary's `main` starts it, against a real NATS server and database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flotilla_bus::{api, subject};
use flotilla_integration_tests::{TestDb, TestNats, eventually, init_logging, service_config};
use flotilla_proto::{ServiceStatus, ServiceStatusRequest};
use flotilla_runtime::host::{self, Running};
use flotilla_runtime::{Context, ServiceDef};
use futures::StreamExt;

async fn start<S: flotilla_runtime::ServiceSettings>(
    nats: &TestNats,
    def: ServiceDef,
    routes: fn(&Context<S>) -> flotilla_bus::Dispatcher,
    database_url: Option<String>,
    dir: &std::path::Path,
) -> Running {
    host::start(def, service_config(nats, database_url, dir), routes)
        .await
        .unwrap()
}

/// Every response to `$SRV.<verb>.<name>` within a short window.
async fn srv(client: &async_nats::Client, verb: &str, name: &str) -> Vec<serde_json::Value> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(format!("$SRV.{verb}.{name}"), inbox, "".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut out = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        // An empty message is the server's "no responders" status.
        if !msg.payload.is_empty() {
            out.push(serde_json::from_slice(&msg.payload).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn every_service_answers_the_service_api_and_its_admin_endpoints_then_stops_cleanly() {
    init_logging();
    let nats = TestNats::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().unwrap();
    let provisioner = start(
        &nats,
        flotilla_provisioner::DEF,
        flotilla_provisioner::routes,
        None,
        dir.path(),
    )
    .await;
    let autoscaler = start(
        &nats,
        flotilla_autoscaler::DEF,
        flotilla_autoscaler::routes,
        None,
        dir.path(),
    )
    .await;
    let dns = start(&nats, flotilla_dns::DEF, flotilla_dns::routes, None, dir.path()).await;
    let firewall = start(
        &nats,
        flotilla_firewall::DEF,
        flotilla_firewall::routes,
        None,
        dir.path(),
    )
    .await;
    let sync = start(&nats, flotilla_sync::DEF, flotilla_sync::routes, None, dir.path()).await;
    let running = vec![
        (flotilla_provisioner::DEF, provisioner),
        (flotilla_autoscaler::DEF, autoscaler),
        (flotilla_dns::DEF, dns),
        (flotilla_firewall::DEF, firewall),
        (flotilla_sync::DEF, sync),
    ];
    let http = reqwest::Client::new();
    for (def, svc) in &running {
        let name = def.registered_name();
        eventually(
            &format!("{name} to answer $SRV.PING"),
            Duration::from_secs(5),
            || async {
                let pings = srv(&client, "PING", &name).await;
                pings
                    .iter()
                    .any(|p| p["id"] == svc.instance_id.as_str() && p["name"] == name.as_str())
                    .then_some(())
            },
        )
        .await;
        let infos = srv(&client, "INFO", &name).await;
        let info = infos
            .iter()
            .find(|i| i["id"] == svc.instance_id.as_str())
            .expect("INFO answer");
        assert_eq!(info["version"], def.version);
        assert_eq!(info["description"], def.description);
        let endpoints = info["endpoints"].as_array().unwrap();
        assert!(
            endpoints
                .iter()
                .any(|e| e["subject"] == subject::api(def.name, "status").unwrap().as_str()),
            "{info}"
        );
        let stats = srv(&client, "STATS", &name).await;
        assert!(
            stats.iter().any(|s| s["id"] == svc.instance_id.as_str()),
            "{stats:?}"
        );

        let status: ServiceStatus = api::request(
            &client,
            &subject::api(def.name, "status").unwrap(),
            &ServiceStatusRequest {},
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(status.service, def.name);
        assert!(status.database_ok);

        let base = format!("http://{}", svc.admin_addr.unwrap());
        let live = http.get(format!("{base}/live")).send().await.unwrap();
        assert_eq!(live.status(), 200);
        let ready = http.get(format!("{base}/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(&format!(
                "flotilla_commands_acked_total{{service=\"{}\"}} 0",
                def.name
            )),
            "{metrics}"
        );
    }
    for (def, svc) in running {
        let name = def.registered_name();
        let id = svc.instance_id.clone();
        tokio::time::timeout(Duration::from_secs(10), svc.shutdown())
            .await
            .expect("stops in time")
            .unwrap();
        let pings = srv(&client, "PING", &name).await;
        assert!(
            !pings.iter().any(|p| p["id"] == id.as_str()),
            "{name} still answers after shutdown"
        );
    }
}

#[tokio::test]
async fn a_status_request_by_hand_in_json_is_answered_in_json() {
    init_logging();
    let nats = TestNats::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = start(&nats, flotilla_dns::DEF, flotilla_dns::routes, None, dir.path()).await;
    // `nats req flotilla.api.dns.status ''`
    let reply = client
        .request(subject::api("dns", "status").unwrap(), "".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["service"], "dns");
    // `nats req flotilla.api.dns.status '{}'`: JSON without a content type.
    let reply = client
        .request(subject::api("dns", "status").unwrap(), "{}".into())
        .await
        .unwrap();
    assert!(
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Service-Error"))
            .is_none(),
        "{reply:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["service"], "dns");
    // A malformed request gets a 400 with the reason, and the service carries on.
    let mut h = async_nats::HeaderMap::new();
    h.insert("Content-Type", "application/json");
    let bad = client
        .send_request(
            subject::api("dns", "status").unwrap(),
            async_nats::Request::new().headers(h).payload("[1,2".into()),
        )
        .await
        .unwrap();
    let headers = bad.headers.unwrap();
    assert_eq!(headers.get("Nats-Service-Error-Code").unwrap().as_str(), "400");
    assert!(
        headers
            .get("Nats-Service-Error")
            .unwrap()
            .as_str()
            .contains("service.status-request.v1")
    );
    svc.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_undecodable_command_goes_to_the_dlq_and_the_service_keeps_running() {
    init_logging();
    let nats = TestNats::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = start(
        &nats,
        flotilla_provisioner::DEF,
        flotilla_provisioner::routes,
        None,
        dir.path(),
    )
    .await;
    let js = async_nats::jetstream::new(client.clone());
    let id = flotilla_integration_tests::unique("garbage");
    let subj = subject::command("provisioner", "www-example-com", "gb-lon", "apply").unwrap();
    js.send_publish(
        subj.clone(),
        async_nats::jetstream::message::PublishMessage::build()
            .payload("\u{1}not a command".into())
            .message_id(&id),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let dlq = js.get_stream(flotilla_bus::topology::DLQ_STREAM).await.unwrap();
    let found = eventually("the dead letter", Duration::from_secs(10), || {
        let dlq = dlq.clone();
        let id = id.clone();
        async move {
            let m = dlq
                .get_last_raw_message_by_subject("flotilla.dlq.provisioner")
                .await
                .ok()?;
            let h = &m.headers;
            let original = h.get(flotilla_bus::DLQ_MSG_ID_HEADER)?.as_str();
            (original == id).then(|| {
                h.get(flotilla_bus::DLQ_ERROR_HEADER)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            })
        }
    })
    .await;
    assert!(found.contains("no Flotilla-Kind header"), "{found}");
    // Still serving, and counting it (the count follows the dead letter: it is written after the copy to
    // the queue, so the test waits for it rather than racing it).
    eventually("the dead letter counted", Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            let status: ServiceStatus = api::request(
                &client,
                &subject::api("provisioner", "status").unwrap(),
                &ServiceStatusRequest {},
                Duration::from_secs(5),
            )
            .await
            .ok()?;
            (status.commands_dead_lettered >= 1).then_some(())
        }
    })
    .await;
    svc.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_service_runs_on_postgresql_too() {
    init_logging();
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let nats = TestNats::start().await;
    let client = nats.client().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = start(
        &nats,
        flotilla_firewall::DEF,
        flotilla_firewall::routes,
        Some(db.url.clone()),
        dir.path(),
    )
    .await;
    let status: ServiceStatus = api::request(
        &client,
        &subject::api("firewall", "status").unwrap(),
        &ServiceStatusRequest {},
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(status.database_ok);
    let ready = reqwest::get(format!("http://{}/ready", svc.admin_addr.unwrap()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        !dir.path().join("firewall.db").exists(),
        "no SQLite file when PostgreSQL is configured"
    );
    svc.shutdown().await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn ready_turns_unavailable_when_nats_goes_away() {
    init_logging();
    let nats = TestNats::private().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = start(&nats, flotilla_sync::DEF, flotilla_sync::routes, None, dir.path()).await;
    let url = format!("http://{}/ready", svc.admin_addr.unwrap());
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    drop(nats); // kills the server
    let body = eventually("/ready to report NATS down", Duration::from_secs(15), || async {
        let r = reqwest::get(&url).await.ok()?;
        (r.status() == 503).then_some(r)
    })
    .await
    .text()
    .await
    .unwrap();
    assert!(body.contains("NATS"), "{body}");
    assert_eq!(
        reqwest::get(format!("http://{}/live", svc.admin_addr.unwrap()))
            .await
            .unwrap()
            .status(),
        200
    );
    let token = svc.shutdown_token();
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), svc.wait())
        .await
        .expect("stops even without NATS");
}

/// A service started while its PostgreSQL is down (a database host restarting, `docker compose up`
/// starting everything at once) waits for it, as it waits for JetStream, and serves once it is back:
/// it does not exit. (A chaos run restarted both dns replicas while PostgreSQL was stopped, and the
/// replicas gave up after the pool's 10 s.)
#[tokio::test]
async fn a_service_started_while_its_database_is_down_waits_for_it() {
    init_logging();
    let Some(pg) = flotilla_integration_tests::pgserver::PgServer::start() else {
        return;
    };
    pg.create_database("flotilla_dns").await;
    let nats = TestNats::start().await;
    let dir = tempfile::tempdir().unwrap();
    pg.kill();
    let config = service_config::<flotilla_dns::Settings>(&nats, Some(pg.url("flotilla_dns")), dir.path());
    let starting = tokio::spawn(host::start(flotilla_dns::DEF, config, flotilla_dns::routes));
    // Longer than the pool's own wait for a connection (10 s): the service keeps asking.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(
        !starting.is_finished(),
        "the service gave up (or started) without its database"
    );
    pg.start_again();
    let running = tokio::time::timeout(Duration::from_secs(60), starting)
        .await
        .expect("started once the database was back")
        .unwrap()
        .unwrap();
    flotilla_integration_tests::until_ready(&running, Duration::from_secs(30)).await;
    running.shutdown().await.unwrap();
}
