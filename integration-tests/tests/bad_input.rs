//! Bad input published by hand, for every command kind, to the five services running together: a wrong
//! type and a missing field (as a mistyped `nats pub` makes them), a kind no service has, and a body that
//! is not JSON. Each ends in its service's dead-letter queue with a reason that names what is wrong, is
//! announced as a rejection, and every service is still serving afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_bus::{PublishConfig, Publisher, Topology, TopologyConfig, subject};
use flotilla_integration_tests::{TestNats, eventually, init_logging, service_config};
use flotilla_proto::{CommandMeta, Message};
use flotilla_runtime::host::{self, Running};
use futures::StreamExt;

/// Every command kind, by its `Flotilla-Kind`.
const KINDS: [&str; 18] = [
    flotilla_proto::ApplyRegion::KIND,
    flotilla_proto::DestroyRegion::KIND,
    flotilla_proto::CreateMachines::KIND,
    flotilla_proto::DestroyMachine::KIND,
    flotilla_proto::ReplaceMachine::KIND,
    flotilla_proto::ReconcileRegion::KIND,
    flotilla_proto::ScaleRegion::KIND,
    flotilla_proto::PauseScaling::KIND,
    flotilla_proto::ResumeScaling::KIND,
    flotilla_proto::ProtectMachine::KIND,
    flotilla_proto::SetSchedule::KIND,
    flotilla_proto::SetTargetTracking::KIND,
    flotilla_proto::FailoverAuthenticator::KIND,
    flotilla_proto::ReconcileRecords::KIND,
    flotilla_proto::ReconcileFirewalls::KIND,
    flotilla_proto::ReconcileSync::KIND,
    flotilla_proto::TakeBackup::KIND,
    flotilla_proto::RestoreBackup::KIND,
];

async fn start_all(nats: &TestNats, dir: &std::path::Path) -> Vec<Running> {
    macro_rules! start {
        ($krate:ident) => {
            host::start(
                $krate::DEF,
                service_config(nats, None, &dir.join($krate::DEF.name)),
                $krate::routes,
            )
            .await
            .unwrap()
        };
    }
    vec![
        start!(flotilla_provisioner),
        start!(flotilla_dns),
        start!(flotilla_firewall),
        start!(flotilla_sync),
        start!(flotilla_autoscaler),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_of_every_kind_are_dead_lettered_with_their_reason_and_nothing_stops() {
    init_logging();
    let nats = TestNats::private().await;
    let dir = tempfile::tempdir().unwrap();
    let services = start_all(&nats, dir.path()).await;
    let client = nats.client().await;
    Topology::ensure(&client, &TopologyConfig::default())
        .await
        .unwrap();
    let publisher = Publisher::new(client.clone(), PublishConfig::default());
    let mut rejections = client.subscribe("flotilla.evt.command.>").await.unwrap();
    client.flush().await.unwrap();

    // What each published message must come back with, by its message id.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let meta = serde_json::to_value(CommandMeta::new("ops:typo")).unwrap();
    let json = |body: &serde_json::Value| bytes::Bytes::from(serde_json::to_vec(body).unwrap());
    for kind in KINDS {
        let (service, verb) = flotilla_proto::command_parts(kind).unwrap();
        let subj = subject::command(service, "www-example-com", "gb-lon", verb).unwrap();
        let headers = |content_type: &str| {
            let mut h = async_nats::HeaderMap::new();
            h.insert(flotilla_proto::KIND_HEADER, kind);
            h.insert(flotilla_proto::CONTENT_TYPE_HEADER, content_type);
            h
        };
        // The deployment as a number: the first field read is the wrong one.
        let id = format!("wrong-type-{kind}");
        let body = serde_json::json!({"deployment": 5, "region": "gb-lon", "meta": meta});
        publisher
            .publish_raw(&subj, &id, headers("application/json"), json(&body))
            .await
            .unwrap();
        expected.insert(id, format!("invalid {kind} (json) at `deployment`"));
        // Nothing but the metadata: no deployment, no region, nothing the kind needs besides.
        let id = format!("missing-{kind}");
        let body = serde_json::json!({"meta": meta});
        publisher
            .publish_raw(&subj, &id, headers("application/json"), json(&body))
            .await
            .unwrap();
        expected.insert(id, "missing field".into());
        // Not JSON at all, though it says so.
        let id = format!("not-json-{kind}");
        publisher
            .publish_raw(&subj, &id, headers("application/json"), "{deployment: www".into())
            .await
            .unwrap();
        expected.insert(id, format!("invalid {kind} (json)"));
    }
    // A kind nobody has, on each service's subjects.
    for service in ["provisioner", "dns", "firewall", "sync", "autoscaler"] {
        let subj = subject::command(service, "www-example-com", "gb-lon", "launch").unwrap();
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            flotilla_proto::KIND_HEADER,
            format!("{service}.launch.v1").as_str(),
        );
        let id = format!("unknown-kind-{service}");
        publisher.publish_raw(&subj, &id, h, "{}".into()).await.unwrap();
        expected.insert(id, format!("{service}.launch.v1"));
    }

    // Every one dead-lettered, with its reason.
    let js = async_nats::jetstream::new(client.clone());
    let dlq = js.get_stream(flotilla_bus::topology::DLQ_STREAM).await.unwrap();
    let letters = eventually("every bad command dead-lettered", Duration::from_secs(60), || {
        let dlq = dlq.clone();
        let want = expected.len();
        async move {
            let mut found = BTreeMap::new();
            let mut at = 1;
            while let Ok(m) = dlq
                .raw_message_builder()
                .sequence(at)
                .next_by_subject(subject::DLQ_WILDCARD.to_owned())
                .send()
                .await
            {
                at = m.sequence + 1;
                let id = flotilla_bus::header(Some(&m.headers), flotilla_bus::DLQ_MSG_ID_HEADER);
                let error = flotilla_bus::header(Some(&m.headers), flotilla_bus::DLQ_ERROR_HEADER);
                if let (Some(id), Some(error)) = (id, error) {
                    found.insert(id, error);
                }
            }
            (found.len() >= want).then_some(found)
        }
    })
    .await;
    let mut wrong = Vec::new();
    for (id, says) in &expected {
        match letters.get(id) {
            Some(error) if error.contains(says.as_str()) => {}
            other => wrong.push(format!("{id}: wanted {says:?}, got {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "dead letters without their reason:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        letters.len(),
        expected.len(),
        "a dead letter nobody sent: {letters:?}"
    );

    // Each announced as a rejection (a client waiting for its command hears why).
    let mut announced = std::collections::BTreeSet::new();
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while announced.len() < expected.len() {
            let Some(msg) = rejections.next().await else { break };
            if let Some(flotilla_proto::AnyEvent::Rejected(r)) = flotilla_bus::decode_event(&msg)
                && let Some(id) = r.command_id
            {
                announced.insert(id);
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "not announced: {:?}",
        expected
            .keys()
            .filter(|k| !announced.contains(*k))
            .collect::<Vec<_>>()
    );

    // And every service still serving.
    for s in &services {
        let ready = format!("http://{}/ready", s.admin_addr.unwrap());
        let r = reqwest::get(&ready).await.unwrap();
        assert!(r.status().is_success(), "{ready}: {}", r.status());
    }
    for s in services {
        s.shutdown().await.unwrap();
    }
}
