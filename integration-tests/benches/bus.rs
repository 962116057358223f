//! Bus figures against a real, private nats-server: publish rate (each publish waits for its JetStream ack),
//! and end-to-end command throughput through the durable consumer with one and two replicas.
//!
//! `cargo bench -p flotilla-integration-tests --bench bus` (needs nats-server >= 2.10 on PATH).
//! Prints figures; asserts nothing about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flotilla_bus::{
    CommandConsumer, ConsumerConfig, Delivery, Handler, HandlerError, PublishConfig, Publisher, Topology,
    TopologyConfig, subject,
};
use flotilla_integration_tests::TestNats;
use flotilla_proto::{CommandMeta, DestroyRegion};
use tokio_util::sync::CancellationToken;

struct Count(AtomicU64);

impl Handler for Count {
    fn handle(&self, d: Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let r = d.decode::<DestroyRegion>().map(|_| {
            self.0.fetch_add(1, Ordering::Relaxed);
        });
        async move { r }
    }
}

async fn publish_n(publisher: &Publisher, service: &str, n: usize) -> Duration {
    let subj = subject::command(service, "bench", "gb-lon", "destroy").unwrap();
    let started = Instant::now();
    for i in 0..n {
        let cmd = DestroyRegion {
            meta: CommandMeta::new("bench"),
            deployment: format!("d{i}"),
            region: "gb-lon".into(),
            generation: flotilla_integration_tests::next_generation(),
        };
        publisher
            .publish(&subj, &cmd.meta.id.to_string(), &cmd)
            .await
            .unwrap();
    }
    started.elapsed()
}

async fn consume(
    topology: &Topology,
    publisher: &Publisher,
    service: &str,
    replicas: usize,
    n: u64,
) -> Duration {
    let counter = Arc::new(Count(AtomicU64::new(0)));
    let stop = CancellationToken::new();
    let started = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..replicas {
        let consumer =
            CommandConsumer::create(topology, publisher.clone(), service, ConsumerConfig::default())
                .await
                .unwrap();
        runs.push(tokio::spawn(consumer.run(Arc::clone(&counter), stop.clone())));
    }
    while counter.0.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    for r in runs {
        r.await.unwrap().unwrap();
    }
    elapsed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    const N: usize = 5_000;
    let nats = TestNats::private().await;
    let client = flotilla_bus::connect(&flotilla_bus::BusConfig::for_urls([nats.url()]))
        .await
        .unwrap();
    let topology = Topology::ensure(&client, &TopologyConfig::default())
        .await
        .unwrap();
    let publisher = Publisher::new(client, PublishConfig::default());
    println!("bus benchmark: {N} commands, MessagePack, file storage, private nats-server on loopback");
    for replicas in [1usize, 2] {
        let service = format!("bench{replicas}");
        let published = publish_n(&publisher, &service, N).await;
        let consumed = consume(&topology, &publisher, &service, replicas, N as u64).await;
        println!(
            "replicas={replicas}: publish (ack awaited each) {:>8.0} msg/s ({:.1} ms for {N}); consume+ack {:>8.0} msg/s ({:.1} ms)",
            N as f64 / published.as_secs_f64(),
            published.as_secs_f64() * 1e3,
            N as f64 / consumed.as_secs_f64(),
            consumed.as_secs_f64() * 1e3,
        );
    }
}
