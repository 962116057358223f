//! The bus against a real NATS server: provisioning, publishing, consuming, dead letters, leases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use flotilla_bus::lease::Acquire;
use flotilla_bus::topology::COMMAND_STREAM;
use flotilla_bus::{
    CommandConsumer, ConsumerConfig, Delivery, Dispatcher, Handler, HandlerError, PublishConfig, Publisher,
    Topology, TopologyConfig, subject,
};
use flotilla_integration_tests::{TestNats, eventually, init_logging, unique};
use flotilla_proto::{CommandMeta, DestroyRegion, Encoding, Message};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

fn fast_consumer() -> ConsumerConfig {
    ConsumerConfig {
        ack_wait: Duration::from_secs(2),
        max_deliver: 3,
        retry_delays: vec![Duration::from_millis(100)],
        max_in_flight: 4,
        pull_expiry: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(2),
    }
}

struct Bus {
    _nats: TestNats,
    client: async_nats::Client,
    topology: Topology,
    publisher: Publisher,
    service: String,
}

impl Bus {
    async fn new() -> Self {
        init_logging();
        let nats = TestNats::start().await;
        let client = flotilla_bus::connect(&flotilla_bus::BusConfig::for_urls([nats.url()]))
            .await
            .unwrap();
        let topology = Topology::ensure(&client, &TopologyConfig::default())
            .await
            .unwrap();
        let publisher = Publisher::new(client.clone(), PublishConfig::default());
        Self {
            _nats: nats,
            client,
            topology,
            publisher,
            service: unique("svc"),
        }
    }

    fn subject(&self, deployment: &str, verb: &str) -> String {
        subject::command(&self.service, deployment, "gb-lon", verb).unwrap()
    }

    async fn consumer(&self, config: ConsumerConfig) -> CommandConsumer {
        CommandConsumer::create(&self.topology, self.publisher.clone(), &self.service, config)
            .await
            .unwrap()
    }

    async fn send(&self, deployment: &str) -> DestroyRegion {
        let cmd = destroy(deployment);
        self.publisher
            .publish(
                &self.subject(deployment, "destroy"),
                &cmd.meta.id.to_string(),
                &cmd,
            )
            .await
            .unwrap();
        cmd
    }

    /// Dead letters of this test's service.
    async fn dead_letters(&self) -> Vec<async_nats::jetstream::Message> {
        let consumer = self
            .topology
            .dlq
            .create_consumer(jetstream::consumer::pull::Config {
                filter_subject: subject::dlq(&self.service).unwrap(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut batch = consumer.fetch().max_messages(100).messages().await.unwrap();
        while let Some(Ok(m)) = batch.next().await {
            out.push(m);
        }
        out
    }
}

/// A consumer running in the background until [`Spawned::stop`].
struct Spawned {
    stop: CancellationToken,
    run: tokio::task::JoinHandle<Result<(), flotilla_bus::BusError>>,
}

impl Spawned {
    fn new<H: Handler>(consumer: CommandConsumer, handler: Arc<H>) -> Self {
        let stop = CancellationToken::new();
        let run = tokio::spawn(consumer.run(handler, stop.clone()));
        Self { stop, run }
    }

    /// Stops it as a shutdown would, and checks it ended cleanly.
    async fn stop(self) {
        self.stop.cancel();
        self.run.await.unwrap().unwrap();
    }
}

fn destroy(deployment: &str) -> DestroyRegion {
    DestroyRegion {
        meta: CommandMeta::new("test"),
        deployment: deployment.into(),
        region: "gb-lon".into(),
        generation: 1,
    }
}

/// Records every delivery; fails the first `fail_first` deliveries of each command.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, u64)>>,
    fail_first: u64,
}

impl Handler for Recorder {
    fn handle(&self, d: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let result = d.decode::<DestroyRegion>().map(|cmd| {
            self.seen
                .lock()
                .unwrap()
                .push((cmd.deployment.clone(), d.delivered));
            d.delivered
        });
        let fail_first = self.fail_first;
        async move {
            match result? {
                n if n <= fail_first => Err(HandlerError::retry(format!("induced failure on delivery {n}"))),
                _ => Ok(()),
            }
        }
    }
}

impl Recorder {
    fn deployments(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|(d, _)| d.clone()).collect()
    }
}

async fn stream_messages(bus: &Bus, name: &str) -> u64 {
    bus.topology
        .js
        .get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test]
async fn provisioning_is_idempotent() {
    let bus = Bus::new().await;
    // A second and third provisioning (another replica starting) neither fails nor changes anything.
    let before = bus.topology.commands.cached_info().config.clone();
    Topology::ensure(&bus.client, &TopologyConfig::default())
        .await
        .unwrap();
    let again = Topology::ensure(&bus.client, &TopologyConfig::default())
        .await
        .unwrap();
    let after = again.commands.cached_info().config.clone();
    assert_eq!(before.subjects, after.subjects);
    assert_eq!(after.retention, jetstream::stream::RetentionPolicy::WorkQueue);
    assert_eq!(after.duplicate_window, Duration::from_secs(120));
    assert_eq!(
        again.events.cached_info().config.retention,
        jetstream::stream::RetentionPolicy::Limits
    );
    // The same for consumers.
    bus.consumer(fast_consumer()).await;
    bus.consumer(fast_consumer()).await;
    let names: Vec<String> = bus
        .topology
        .commands
        .consumer_names()
        .map(|n| n.unwrap())
        .collect()
        .await;
    let ours = CommandConsumer::durable_name(&bus.service);
    assert_eq!(names.iter().filter(|n| **n == ours).count(), 1, "{names:?}");
    // Changing a setting updates in place.
    let longer = TopologyConfig {
        event_max_age: Duration::from_secs(3600),
        ..TopologyConfig::default()
    };
    let t = Topology::ensure(&bus.client, &longer).await.unwrap();
    assert_eq!(t.events.cached_info().config.max_age, Duration::from_secs(3600));
}

#[tokio::test]
async fn a_command_published_twice_with_one_id_is_handled_once() {
    let bus = Bus::new().await;
    let cmd = destroy("dep-a");
    let subj = bus.subject("dep-a", "destroy");
    let first = bus
        .publisher
        .publish(&subj, &cmd.meta.id.to_string(), &cmd)
        .await
        .unwrap();
    let second = bus
        .publisher
        .publish(&subj, &cmd.meta.id.to_string(), &cmd)
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(
        second.duplicate,
        "the server must recognise the second publication"
    );
    let recorder = Arc::new(Recorder::default());
    let run = Spawned::new(bus.consumer(fast_consumer()).await, Arc::clone(&recorder));
    bus.send("dep-b").await;
    eventually("dep-b handled", Duration::from_secs(10), || async {
        recorder.deployments().contains(&"dep-b".to_owned()).then_some(())
    })
    .await;
    run.stop().await;
    assert_eq!(recorder.deployments(), vec!["dep-a", "dep-b"]);
}

#[tokio::test]
async fn a_handler_failure_leads_to_redelivery_then_success() {
    let bus = Bus::new().await;
    let recorder = Arc::new(Recorder {
        fail_first: 2,
        ..Recorder::default()
    });
    let consumer = bus.consumer(fast_consumer()).await;
    let counters = consumer.counters();
    let run = Spawned::new(consumer, Arc::clone(&recorder));
    bus.send("flaky").await;
    eventually(
        "success on the third delivery",
        Duration::from_secs(10),
        || async { (counters.acked.load(std::sync::atomic::Ordering::Relaxed) == 1).then_some(()) },
    )
    .await;
    run.stop().await;
    let deliveries: Vec<u64> = recorder.seen.lock().unwrap().iter().map(|(_, n)| *n).collect();
    assert_eq!(deliveries, vec![1, 2, 3]);
    assert_eq!(counters.retried.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert!(bus.dead_letters().await.is_empty());
    assert_eq!(
        stream_messages(&bus, COMMAND_STREAM).await,
        0,
        "acked command left the work queue"
    );
}

#[tokio::test]
async fn a_command_that_keeps_failing_goes_to_the_dlq_after_max_deliveries() {
    let bus = Bus::new().await;
    let recorder = Arc::new(Recorder {
        fail_first: u64::MAX,
        ..Recorder::default()
    });
    let consumer = bus.consumer(fast_consumer()).await;
    let counters = consumer.counters();
    let run = Spawned::new(consumer, Arc::clone(&recorder));
    let cmd = bus.send("doomed").await;
    let dlq = eventually("dead letter", Duration::from_secs(15), || async {
        let d = bus.dead_letters().await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    run.stop().await;
    assert_eq!(
        recorder.seen.lock().unwrap().len(),
        3,
        "exactly max_deliver attempts"
    );
    assert_eq!(dlq.len(), 1);
    let headers = dlq[0].headers.as_ref().unwrap();
    let error = headers.get(flotilla_bus::DLQ_ERROR_HEADER).unwrap().as_str();
    assert!(
        error.contains("gave up after 3 deliveries") && error.contains("induced failure"),
        "{error}"
    );
    assert_eq!(
        headers.get(flotilla_bus::DLQ_MSG_ID_HEADER).unwrap().as_str(),
        cmd.meta.id.to_string()
    );
    // The payload is the original, decodable.
    let back: DestroyRegion = flotilla_proto::decode(
        Some(DestroyRegion::KIND),
        Some("application/msgpack"),
        &dlq[0].payload,
    )
    .unwrap();
    assert_eq!(back, cmd);
    assert_eq!(
        counters.dead_lettered.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    eventually("work queue empty", Duration::from_secs(5), || async {
        (stream_messages(&bus, COMMAND_STREAM).await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_undecodable_message_lands_in_the_dlq_and_the_consumer_keeps_going() {
    let bus = Bus::new().await;
    let recorder = Arc::new(Recorder::default());
    let run = Spawned::new(bus.consumer(fast_consumer()).await, Arc::clone(&recorder));
    // Garbage with the right kind, JSON missing a field, and no kind at all.
    let subj = bus.subject("bad", "destroy");
    let mut h = async_nats::HeaderMap::new();
    h.insert(flotilla_proto::KIND_HEADER, DestroyRegion::KIND);
    bus.publisher
        .publish_raw(
            &subj,
            "garbage-1",
            h.clone(),
            b"\xc1\xff not msgpack".as_slice().into(),
        )
        .await
        .unwrap();
    h.insert(flotilla_proto::CONTENT_TYPE_HEADER, "application/json");
    bus.publisher
        .publish_raw(&subj, "missing-field-1", h, br#"{"meta":{"id":"0190f5c2-7a1e-7000-8000-000000000001","correlation_id":"0190f5c2-7a1e-7000-8000-000000000001","issued_at":"2026-11-24T00:00:00Z"},"deployment":"bad"}"#.as_slice().into())
        .await
        .unwrap();
    bus.publisher
        .publish_raw(&subj, "no-kind-1", async_nats::HeaderMap::new(), "{}".into())
        .await
        .unwrap();
    // A good command after them is still handled.
    bus.send("good").await;
    eventually("good handled", Duration::from_secs(10), || async {
        recorder.deployments().contains(&"good".to_owned()).then_some(())
    })
    .await;
    let dlq = eventually("three dead letters", Duration::from_secs(10), || async {
        let d = bus.dead_letters().await;
        (d.len() == 3).then_some(d)
    })
    .await;
    run.stop().await;
    let errors: HashMap<String, String> = dlq
        .iter()
        .map(|m| {
            let h = m.headers.as_ref().unwrap();
            (
                h.get(flotilla_bus::DLQ_MSG_ID_HEADER).unwrap().to_string(),
                h.get(flotilla_bus::DLQ_ERROR_HEADER).unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        errors["garbage-1"].contains("invalid provisioner.destroy.v1 (msgpack)"),
        "{errors:?}"
    );
    assert!(
        errors["missing-field-1"].contains("missing field `region`"),
        "{errors:?}"
    );
    assert!(
        errors["no-kind-1"].contains("no Flotilla-Kind header"),
        "{errors:?}"
    );
    for m in &dlq {
        assert_eq!(
            m.headers
                .as_ref()
                .unwrap()
                .get(flotilla_bus::DLQ_SUBJECT_HEADER)
                .unwrap()
                .as_str(),
            subj
        );
    }
    // Each rejection is also announced as an event.
    let mut events = bus
        .topology
        .events
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: "flotilla.evt.command.bad.gb-lon.rejected".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let rejected = events.info().await.unwrap().num_pending;
    assert_eq!(rejected, 3);
}

#[tokio::test]
async fn a_consumer_killed_mid_message_gets_the_message_redelivered() {
    let bus = Bus::new().await;

    struct Hang(Arc<Mutex<u64>>);
    impl Handler for Hang {
        fn handle(&self, _d: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
            *self.0.lock().unwrap() += 1;
            std::future::pending()
        }
    }
    let started = Arc::new(Mutex::new(0));
    let first = tokio::spawn(
        bus.consumer(fast_consumer())
            .await
            .run(Arc::new(Hang(Arc::clone(&started))), CancellationToken::new()),
    );
    let cmd = bus.send("victim").await;
    eventually("handler started", Duration::from_secs(10), || async {
        (*started.lock().unwrap() == 1).then_some(())
    })
    .await;
    // Kill the consumer: the task (and its message) is dropped without ack or NAK.
    first.abort();
    let _ = first.await;

    let recorder = Arc::new(Recorder::default());
    let second = Spawned::new(bus.consumer(fast_consumer()).await, Arc::clone(&recorder));
    eventually(
        "redelivery to the new consumer",
        Duration::from_secs(15),
        || async { recorder.seen.lock().unwrap().first().cloned() },
    )
    .await;
    second.stop().await;
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(cmd.deployment.clone(), 2)],
        "delivered again, as the second delivery"
    );
}

#[tokio::test]
async fn two_replicas_split_a_stream_of_commands_with_none_lost_or_doubled() {
    let bus = Bus::new().await;
    let a = Arc::new(Recorder::default());
    let b = Arc::new(Recorder::default());
    let cfg = ConsumerConfig {
        max_in_flight: 2,
        ..fast_consumer()
    };
    let ra = Spawned::new(bus.consumer(cfg.clone()).await, Arc::clone(&a));
    let rb = Spawned::new(bus.consumer(cfg).await, Arc::clone(&b));
    const N: usize = 200;
    for i in 0..N {
        bus.send(&format!("d{i}")).await;
    }
    eventually("all handled", Duration::from_secs(30), || async {
        (a.deployments().len() + b.deployments().len() >= N).then_some(())
    })
    .await;
    // Give a doubled delivery a chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ra.stop().await;
    rb.stop().await;
    let mut all = a.deployments();
    all.extend(b.deployments());
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, N, "doubled deliveries");
    assert_eq!(all.len(), N, "lost commands");
    assert!(
        !a.deployments().is_empty() && !b.deployments().is_empty(),
        "both replicas got work: {} / {}",
        a.deployments().len(),
        b.deployments().len()
    );
}

#[tokio::test]
async fn json_and_messagepack_commands_are_both_accepted() {
    let bus = Bus::new().await;
    let recorder = Arc::new(Recorder::default());
    let run = Spawned::new(bus.consumer(fast_consumer()).await, Arc::clone(&recorder));
    let mp = destroy("msgpack");
    bus.publisher
        .publish_encoded(
            &bus.subject("msgpack", "destroy"),
            &mp.meta.id.to_string(),
            &mp,
            Encoding::MessagePack,
        )
        .await
        .unwrap();
    // JSON as an operator would type it with `nats pub -H …`.
    let mut h = async_nats::HeaderMap::new();
    h.insert(flotilla_proto::KIND_HEADER, DestroyRegion::KIND);
    h.insert(flotilla_proto::CONTENT_TYPE_HEADER, "application/json");
    let by_hand = r#"{"meta":{"id":"0190f5c2-7a1e-7000-8000-00000000000a","correlation_id":"0190f5c2-7a1e-7000-8000-00000000000a","issued_at":"2026-11-24T10:00:00Z"},"deployment":"json","region":"gb-lon","extra":"ignored"}"#;
    bus.publisher
        .publish_raw(&bus.subject("json", "destroy"), "by-hand-1", h, by_hand.into())
        .await
        .unwrap();
    eventually("both handled", Duration::from_secs(10), || async {
        (recorder.deployments().len() == 2).then_some(())
    })
    .await;
    run.stop().await;
    let mut got = recorder.deployments();
    got.sort();
    assert_eq!(got, vec!["json", "msgpack"]);
}

#[tokio::test]
async fn a_dispatcher_rejects_unknown_kinds_naming_the_ones_it_handles() {
    let bus = Bus::new().await;
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h2 = Arc::clone(&handled);
    let dispatcher = Dispatcher::new(bus.service.clone()).on(move |cmd: DestroyRegion, _d| {
        let h2 = Arc::clone(&h2);
        async move {
            h2.lock().unwrap().push(cmd.deployment);
            Ok(())
        }
    });
    let run = Spawned::new(bus.consumer(fast_consumer()).await, Arc::new(dispatcher));
    let mut h = async_nats::HeaderMap::new();
    h.insert(flotilla_proto::KIND_HEADER, "provisioner.teleport.v9");
    bus.publisher
        .publish_raw(&bus.subject("x", "teleport"), "unknown-kind-1", h, "{}".into())
        .await
        .unwrap();
    bus.send("routed").await;
    let dlq = eventually("dead letter", Duration::from_secs(10), || async {
        let d = bus.dead_letters().await;
        (d.len() == 1).then_some(d)
    })
    .await;
    eventually("routed handled", Duration::from_secs(10), || async {
        (!handled.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    run.stop().await;
    let error = dlq[0]
        .headers
        .as_ref()
        .unwrap()
        .get(flotilla_bus::DLQ_ERROR_HEADER)
        .unwrap()
        .to_string();
    assert!(
        error.contains("provisioner.teleport.v9") && error.contains("provisioner.destroy.v1"),
        "{error}"
    );
}

#[tokio::test]
async fn shutdown_finishes_in_flight_work_and_hands_back_what_overruns() {
    let bus = Bus::new().await;
    struct Slow(Arc<Mutex<Vec<String>>>);
    impl Handler for Slow {
        fn handle(&self, d: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
            let done = Arc::clone(&self.0);
            async move {
                let cmd = d.decode::<DestroyRegion>()?;
                let wait = if cmd.deployment == "quick" { 300 } else { 60_000 };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                done.lock().unwrap().push(cmd.deployment);
                Ok(())
            }
        }
    }
    let done = Arc::new(Mutex::new(Vec::new()));
    let consumer = bus
        .consumer(ConsumerConfig {
            shutdown_grace: Duration::from_secs(1),
            ..fast_consumer()
        })
        .await;
    let counters = consumer.counters();
    let run = Spawned::new(consumer, Arc::new(Slow(Arc::clone(&done))));
    bus.send("quick").await;
    bus.send("endless").await;
    eventually("both in flight", Duration::from_secs(10), || async {
        (counters.in_flight.load(std::sync::atomic::Ordering::Relaxed) == 2).then_some(())
    })
    .await;
    run.stop().await;
    assert_eq!(
        *done.lock().unwrap(),
        vec!["quick"],
        "the quick one finished during the grace period"
    );
    assert_eq!(counters.acked.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(counters.abandoned.load(std::sync::atomic::Ordering::Relaxed), 1);
    // The endless one was handed back at once, not after ack-wait: a new consumer gets it immediately.
    let recorder = Arc::new(Recorder::default());
    let run = Spawned::new(bus.consumer(fast_consumer()).await, Arc::clone(&recorder));
    eventually(
        "handed-back command redelivered",
        Duration::from_secs(10),
        || async { (recorder.deployments() == vec!["endless"]).then_some(()) },
    )
    .await;
    run.stop().await;
}

#[tokio::test]
async fn leases_admit_one_holder_at_a_time() {
    let bus = Bus::new().await;
    let leases = bus.topology.leases();
    let too_long = leases
        .acquire("k", "a", Duration::from_secs(2 * 3600))
        .await
        .expect_err("over the bucket's max age");
    assert!(too_long.to_string().contains("max age"), "{too_long}");
    let key = unique("reconcile");
    let ttl = Duration::from_secs(30);
    let Acquire::Acquired { revision } = leases.acquire(&key, "a", ttl).await.unwrap() else {
        panic!("a should win")
    };
    match leases.acquire(&key, "b", ttl).await.unwrap() {
        Acquire::Held(r) => assert_eq!(r.holder, "a"),
        other => panic!("b must not win: {other:?}"),
    }
    // Renewal by the holder works; release lets b in.
    let Acquire::Acquired { revision: renewed } = leases.acquire(&key, "a", ttl).await.unwrap() else {
        panic!()
    };
    assert!(renewed > revision);
    assert!(
        !leases.release(&key, "a", revision).await.unwrap(),
        "stale revision must not release"
    );
    assert!(leases.release(&key, "a", renewed).await.unwrap());
    assert!(matches!(
        leases.acquire(&key, "b", ttl).await.unwrap(),
        Acquire::Acquired { .. }
    ));
    // An expired lease can be taken over.
    let short = unique("short");
    leases
        .acquire(&short, "a", Duration::from_millis(200))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        leases.acquire(&short, "b", ttl).await.unwrap(),
        Acquire::Acquired { .. }
    ));
    // Many contenders at once: exactly one wins.
    let race = unique("race");
    let attempts = (0..8).map(|i| {
        let leases = leases.clone();
        let race = race.clone();
        tokio::spawn(async move { leases.acquire(&race, &format!("c{i}"), ttl).await.unwrap() })
    });
    let results = futures::future::join_all(attempts).await;
    let winners = results
        .iter()
        .filter(|r| matches!(r.as_ref().unwrap(), Acquire::Acquired { .. }))
        .count();
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn an_old_server_is_refused_with_its_version() {
    let Some(old) = flotilla_integration_tests::find_old_nats_server() else {
        eprintln!("SKIPPED: no nats-server older than 2.10 on this machine to test the refusal against");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = flotilla_integration_tests::start_server(&old, dir.path()).await;
    let err = flotilla_bus::connect(&flotilla_bus::BusConfig::for_urls([url]))
        .await
        .expect_err("must refuse");
    let _ = child.kill();
    let _ = child.wait();
    let msg = err.to_string();
    assert!(msg.contains("too old") && msg.contains("2.9"), "{msg}");
}

#[tokio::test]
async fn a_server_without_jetstream_is_refused() {
    let bin = flotilla_integration_tests::nats_server_bin();
    let port = flotilla_integration_tests::free_port();
    let mut child = std::process::Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("server up", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()
    })
    .await;
    let err = flotilla_bus::connect(&flotilla_bus::BusConfig::for_urls([format!(
        "nats://127.0.0.1:{port}"
    )]))
    .await
    .expect_err("must refuse");
    let _ = child.kill();
    let _ = child.wait();
    assert!(err.to_string().contains("JetStream"), "{err}");
}

#[tokio::test]
async fn no_server_is_a_clear_error() {
    let port = flotilla_integration_tests::free_port();
    let err = flotilla_bus::connect(&flotilla_bus::BusConfig::for_urls([format!(
        "nats://127.0.0.1:{port}"
    )]))
    .await
    .expect_err("nothing listens there");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn long_work_reports_progress_and_is_not_redelivered_meanwhile() {
    let bus = Bus::new().await;
    struct Slow(Arc<Mutex<Vec<u64>>>);
    impl Handler for Slow {
        fn handle(&self, d: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
            self.0.lock().unwrap().push(d.delivered);
            // Well past the 2 s ack-wait.
            async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            }
        }
    }
    let deliveries = Arc::new(Mutex::new(Vec::new()));
    // Two replicas: a redelivery would go to whichever is free.
    let consumer = bus.consumer(fast_consumer()).await;
    let counters = consumer.counters();
    let a = Spawned::new(consumer, Arc::new(Slow(Arc::clone(&deliveries))));
    let b = Spawned::new(
        bus.consumer(fast_consumer()).await,
        Arc::new(Slow(Arc::clone(&deliveries))),
    );
    bus.send("long").await;
    eventually("long work done", Duration::from_secs(15), || async {
        let acked = counters.acked.load(std::sync::atomic::Ordering::Relaxed);
        (acked == 1 || deliveries.lock().unwrap().len() > 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(
        *deliveries.lock().unwrap(),
        vec![1],
        "delivered once, kept alive by progress reports"
    );
}

#[tokio::test]
async fn user_password_and_token_authentication() {
    let bin = flotilla_integration_tests::nats_server_bin();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = flotilla_integration_tests::start_server_with(
        &bin,
        dir.path(),
        &["--user", "alice", "--pass", "s3cret-pw"],
    )
    .await;
    let mut cfg = flotilla_bus::BusConfig::for_urls([url.clone()]);
    let err = flotilla_bus::connect(&cfg)
        .await
        .expect_err("anonymous must be refused");
    assert!(err.to_string().to_lowercase().contains("author"), "{err}");
    cfg.user = Some("alice".into());
    cfg.password = Some("s3cret-pw".into());
    flotilla_bus::connect(&cfg).await.unwrap();
    cfg.password = Some("wrong".into());
    let err = flotilla_bus::connect(&cfg).await.expect_err("wrong password");
    assert!(
        !err.to_string().contains("wrong"),
        "the password must not be echoed: {err}"
    );
    let _ = child.kill();
    let _ = child.wait();

    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) =
        flotilla_integration_tests::start_server_with(&bin, dir.path(), &["--auth", "t0ken-xyz"]).await;
    let cfg = flotilla_bus::BusConfig {
        token: Some("t0ken-xyz".into()),
        ..flotilla_bus::BusConfig::for_urls([url])
    };
    flotilla_bus::connect(&cfg).await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_publish_is_retried_until_the_stream_acknowledges_it() {
    init_logging();
    // A server whose streams do not exist yet: JetStream answers "no stream" until they are created.
    let nats = TestNats::private().await;
    let client = flotilla_bus::connect(&flotilla_bus::BusConfig::for_urls([nats.url()]))
        .await
        .unwrap();
    let publisher = Publisher::new(client.clone(), PublishConfig::default());
    let creator = {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Topology::ensure(&client, &TopologyConfig::default())
                .await
                .unwrap()
        })
    };
    let cmd = destroy("late");
    let subj = subject::command("svc", "late", "gb-lon", "destroy").unwrap();
    let ack = publisher
        .publish(&subj, &cmd.meta.id.to_string(), &cmd)
        .await
        .unwrap();
    assert!(!ack.duplicate);
    let topology = creator.await.unwrap();
    assert_eq!(topology.commands.clone().info().await.unwrap().state.messages, 1);

    // With no server answering at all, the error says how long it tried.
    let impatient = Publisher::new(
        client.clone(),
        PublishConfig {
            max_attempts: 2,
            min_delay: Duration::from_millis(10),
            ..PublishConfig::default()
        },
    );
    let err = impatient
        .publish("flotilla.nowhere.x", "id-1", &cmd)
        .await
        .expect_err("no stream captures this subject");
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
}

#[tokio::test]
async fn a_panicking_handler_is_retried_and_counted_out_of_flight() {
    let bus = Bus::new().await;
    struct PanicOnce(Mutex<u32>);
    impl Handler for PanicOnce {
        fn handle(&self, _d: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
            let n = {
                let mut n = self.0.lock().unwrap();
                *n += 1;
                *n
            };
            async move {
                assert!(n > 1, "induced panic on the first attempt");
                Ok(())
            }
        }
    }
    let consumer = bus.consumer(fast_consumer()).await;
    let counters = consumer.counters();
    let run = Spawned::new(consumer, Arc::new(PanicOnce(Mutex::new(0))));
    bus.send("boom").await;
    eventually("success after the panic", Duration::from_secs(10), || async {
        (counters.acked.load(std::sync::atomic::Ordering::Relaxed) == 1).then_some(())
    })
    .await;
    run.stop().await;
    assert_eq!(counters.retried.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(counters.in_flight.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_message_whose_handler_keeps_crashing_is_dead_lettered_not_left_behind() {
    let bus = Bus::new().await;
    struct Hang(Arc<Mutex<u64>>);
    impl Handler for Hang {
        fn handle(&self, _d: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
            *self.0.lock().unwrap() += 1;
            std::future::pending()
        }
    }
    let cfg = ConsumerConfig {
        max_deliver: 2,
        ..fast_consumer()
    };
    let started = Arc::new(Mutex::new(0));
    bus.send("cursed").await;
    // Two "crashes": the consumer dies with the handler mid-message, twice.
    for n in 1..=2u64 {
        let run = tokio::spawn(
            bus.consumer(cfg.clone())
                .await
                .run(Arc::new(Hang(Arc::clone(&started))), CancellationToken::new()),
        );
        eventually("handler started", Duration::from_secs(15), || async {
            (*started.lock().unwrap() == n).then_some(())
        })
        .await;
        run.abort();
        let _ = run.await;
    }
    // The third delivery is past the limit: dead-lettered without running the handler again.
    let recorder = Arc::new(Recorder::default());
    let run = Spawned::new(bus.consumer(cfg).await, Arc::clone(&recorder));
    let dlq = eventually("dead letter", Duration::from_secs(15), || async {
        let d = bus.dead_letters().await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    run.stop().await;
    assert!(
        recorder.deployments().is_empty(),
        "the handler must not run past the limit"
    );
    let error = dlq[0]
        .headers
        .as_ref()
        .unwrap()
        .get(flotilla_bus::DLQ_ERROR_HEADER)
        .unwrap()
        .to_string();
    assert!(error.contains("over the limit of 2"), "{error}");
    assert_eq!(
        stream_messages(&bus, COMMAND_STREAM).await,
        0,
        "nothing left in the work queue"
    );
}

#[tokio::test]
async fn dead_letters_drop_server_directives_and_scrub_secrets() {
    let bus = Bus::new().await;
    struct LeakyFailure;
    impl Handler for LeakyFailure {
        fn handle(&self, _d: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
            let long = "x".repeat(5000);
            async move {
                Err(HandlerError::Reject(format!(
                    "POST https://api.linode.com/v4/x?token=SECRET123 failed; Authorization: Bearer SECRET456 {long}"
                )))
            }
        }
    }
    let run = Spawned::new(bus.consumer(fast_consumer()).await, Arc::new(LeakyFailure));
    let cmd = destroy("leaky");
    let mut h = flotilla_bus::message_headers::<DestroyRegion>(Encoding::MessagePack);
    // A directive that is right for the command stream and wrong for the DLQ stream.
    h.insert("Nats-Expected-Stream", COMMAND_STREAM);
    let payload = flotilla_proto::encode(&cmd, Encoding::MessagePack).unwrap();
    bus.publisher
        .publish_raw(
            &bus.subject("leaky", "destroy"),
            &cmd.meta.id.to_string(),
            h,
            payload.into(),
        )
        .await
        .unwrap();
    let dlq = eventually("dead letter", Duration::from_secs(10), || async {
        let d = bus.dead_letters().await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    run.stop().await;
    let headers = dlq[0].headers.as_ref().unwrap();
    assert!(headers.get("Nats-Expected-Stream").is_none());
    let error = headers.get(flotilla_bus::DLQ_ERROR_HEADER).unwrap().to_string();
    assert!(
        !error.contains("SECRET123") && !error.contains("SECRET456"),
        "{error}"
    );
    // Bounded (redaction may already have cut the rest of a credential-bearing line).
    assert!(error.len() < 1100, "{}", error.len());
}

#[tokio::test]
async fn a_deleted_consumer_is_recreated_and_work_resumes() {
    let bus = Bus::new().await;
    let recorder = Arc::new(Recorder::default());
    let consumer = bus.consumer(fast_consumer()).await;
    let counters = consumer.counters();
    let run = Spawned::new(consumer, Arc::clone(&recorder));
    bus.send("before").await;
    eventually("first handled", Duration::from_secs(10), || async {
        (recorder.deployments().len() == 1).then_some(())
    })
    .await;
    // An operator deletes the durable (`nats consumer rm`).
    bus.topology
        .commands
        .delete_consumer(&CommandConsumer::durable_name(&bus.service))
        .await
        .unwrap();
    bus.send("after").await;
    // At least once: "before" may come again if the deletion raced its ack.
    eventually(
        "work resumes on a re-created consumer",
        Duration::from_secs(20),
        || async { recorder.deployments().contains(&"after".to_owned()).then_some(()) },
    )
    .await;
    assert!(!counters.pull_failing.load(std::sync::atomic::Ordering::Relaxed));
    run.stop().await;
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    // A private CA and a server certificate for 127.0.0.1 signed by it.
    let flotilla_integration_tests::tls::TlsFiles { ca, cert, key } =
        flotilla_integration_tests::tls::private_ca(dir.path());

    let bin = flotilla_integration_tests::nats_server_bin();
    let (mut child, url) = flotilla_integration_tests::start_server_with(
        &bin,
        dir.path(),
        &[
            "--tls",
            "--tlscert",
            &cert.display().to_string(),
            "--tlskey",
            &key.display().to_string(),
        ],
    )
    .await;
    let tls_url = url.replace("nats://", "tls://");
    let mut cfg = flotilla_bus::BusConfig::for_urls([tls_url]);
    cfg.tls.required = true;
    // Without our CA the server is not trusted.
    let err = flotilla_bus::connect(&cfg)
        .await
        .expect_err("untrusted server certificate");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    cfg.tls.ca_file = Some(ca);
    let client = flotilla_bus::connect(&cfg).await.unwrap();
    Topology::ensure(&client, &TopologyConfig::default())
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
}

/// Answers every command as overtaken by a newer one.
struct Overtaken(Mutex<u32>);

impl Handler for Overtaken {
    fn handle(&self, _d: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
        *self.0.lock().unwrap() += 1;
        async {
            Err(HandlerError::Superseded(
                "stale apply: generation 2 no longer deploys the region".into(),
            ))
        }
    }
}

#[tokio::test]
async fn a_superseded_command_is_told_as_rejected_and_acked_not_dead_lettered() {
    let bus = Bus::new().await;
    let deployment = unique("late");
    let events = subject::event("command", &deployment, "gb-lon", "rejected").unwrap();
    let mut told = bus.client.subscribe(events).await.unwrap();
    let handler = Arc::new(Overtaken(Mutex::new(0)));
    let consumer = bus.consumer(fast_consumer()).await;
    let counters = consumer.counters();
    let run = Spawned::new(consumer, Arc::clone(&handler));
    let cmd = bus.send(&deployment).await;
    let msg = tokio::time::timeout(Duration::from_secs(10), told.next())
        .await
        .expect("a CommandRejected event")
        .unwrap();
    let event: flotilla_proto::CommandRejected = flotilla_proto::decode(
        Some(flotilla_proto::CommandRejected::KIND),
        msg.headers
            .as_ref()
            .and_then(|h| h.get(flotilla_proto::CONTENT_TYPE_HEADER))
            .map(|v| v.as_str()),
        &msg.payload,
    )
    .unwrap();
    assert_eq!(event.command_id, Some(cmd.meta.id.to_string()));
    assert!(event.error.contains("no longer deploys"), "{event:?}");
    eventually("work queue empty", Duration::from_secs(5), || async {
        (stream_messages(&bus, COMMAND_STREAM).await == 0).then_some(())
    })
    .await;
    // Past the ack-wait: handled once, acknowledged, nothing in the dead-letter queue.
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.stop().await;
    assert_eq!(*handler.0.lock().unwrap(), 1);
    assert!(bus.dead_letters().await.is_empty());
    assert_eq!(
        counters.dead_lettered.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(counters.acked.load(std::sync::atomic::Ordering::Relaxed), 1);
}
