//! Cloud adapter figures against the simulator: API calls and time to list 1,000 machines per provider,
//! create/delete throughput, and whether the adapters' rate limiters ever exceed a provider's published
//! rate (the simulator enforces the published limits and counts every 429 it sends).
//!
//! `cargo bench -p flotilla-integration-tests --bench cloud`. Prints figures; asserts nothing about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla_cloud::http::{ApiClient, RateLimit};
use flotilla_cloud::{Compute, MachineRequest, MarkFilter, Marks};
use flotilla_cloudsim::{Provider, RunningSim, SimConfig, Simulator, defaults};
use flotilla_integration_tests::free_port;
use futures::StreamExt;

const MACHINES: usize = 1_000;
const CONCURRENCY: usize = 16;
/// Far above any provider's limit: for the throughput runs, where the simulator enforces none.
const UNLIMITED: RateLimit = RateLimit {
    requests: 1_000_000,
    per: Duration::from_secs(1),
};

struct Adapter {
    compute: Box<dyn Compute>,
    region: &'static str,
    size: &'static str,
    image: &'static str,
    calls: Box<dyn Fn() -> u64>,
}

fn adapter(sim: &RunningSim, provider: Provider, rate: Option<RateLimit>) -> Adapter {
    match provider {
        Provider::Linode => {
            let mut cfg =
                flotilla_linode::LinodeConfig::new(defaults::LINODE_TOKEN).with_base_url(sim.linode_url());
            if let Some(r) = rate {
                cfg.rate = Some(r);
                cfg.create_rate = Some(r);
            }
            let cloud = std::sync::Arc::new(flotilla_linode::LinodeCloud::new(cfg).unwrap());
            let counter = std::sync::Arc::clone(&cloud);
            Adapter {
                compute: Box::new(ArcCompute(cloud)),
                region: "gb-lon",
                size: "g6-nanode-1",
                image: "linode/debian12",
                calls: Box::new(move || counter.calls()),
            }
        }
        Provider::DigitalOcean => {
            let cloud = std::sync::Arc::new(
                flotilla_digitalocean::DigitalOceanCloud::new(flotilla_digitalocean::DigitalOceanConfig {
                    base_url: Some(sim.digitalocean_url().to_owned()),
                    token: defaults::DIGITALOCEAN_TOKEN.to_owned(),
                    rate,
                })
                .unwrap(),
            );
            let counter = std::sync::Arc::clone(&cloud);
            Adapter {
                compute: Box::new(ArcCompute(cloud)),
                region: "ams3",
                size: "s-1vcpu-1gb",
                image: "debian-12-x64",
                calls: Box::new(move || calls(counter.api())),
            }
        }
        Provider::Vultr => {
            let cloud = std::sync::Arc::new(
                flotilla_vultr::VultrCloud::new(flotilla_vultr::VultrConfig {
                    base_url: Some(sim.vultr_url().to_owned()),
                    token: defaults::VULTR_TOKEN.to_owned(),
                    rate,
                })
                .unwrap(),
            );
            let counter = std::sync::Arc::clone(&cloud);
            Adapter {
                compute: Box::new(ArcCompute(cloud)),
                region: "ams",
                size: "vc2-1c-1gb",
                image: "2136",
                calls: Box::new(move || calls(counter.api())),
            }
        }
        Provider::Exoscale => {
            let mut cfg = flotilla_exoscale::ExoscaleConfig::new(
                "ch-gva-2",
                defaults::EXOSCALE_KEY,
                defaults::EXOSCALE_SECRET,
            )
            .with_base_url(sim.exoscale_zone_url("ch-gva-2"));
            if let Some(r) = rate {
                cfg.rate = r;
            }
            let cloud = std::sync::Arc::new(flotilla_exoscale::Exoscale::new(cfg).unwrap());
            let counter = std::sync::Arc::clone(&cloud);
            Adapter {
                compute: Box::new(ArcCompute(cloud)),
                region: "ch-gva-2",
                size: "standard.tiny",
                image: "Linux Debian 12 (Bookworm) 64-bit",
                calls: Box::new(move || calls(counter.api())),
            }
        }
        Provider::Cloudflare => unreachable!("no machines on Cloudflare"),
    }
}

fn calls(api: &ApiClient) -> u64 {
    api.calls()
}

/// A shared adapter as a boxed `Compute`.
struct ArcCompute<C>(std::sync::Arc<C>);

#[async_trait::async_trait]
impl<C: Compute> Compute for ArcCompute<C> {
    fn provider(&self) -> flotilla_cloud::ProviderKind {
        self.0.provider()
    }
    async fn create_machine(&self, r: &MachineRequest) -> flotilla_cloud::Result<flotilla_cloud::Machine> {
        self.0.create_machine(r).await
    }
    async fn get_machine(&self, id: &str) -> flotilla_cloud::Result<flotilla_cloud::Machine> {
        self.0.get_machine(id).await
    }
    async fn list_machines(&self, f: &MarkFilter) -> flotilla_cloud::Result<Vec<flotilla_cloud::Machine>> {
        self.0.list_machines(f).await
    }
    async fn delete_machine(&self, id: &str) -> flotilla_cloud::Result<()> {
        self.0.delete_machine(id).await
    }
}

async fn start(limits: bool) -> RunningSim {
    let mut config = SimConfig {
        boot_delay: Duration::ZERO,
        health_port: free_port(),
        ..SimConfig::default()
    };
    if !limits {
        config.rate_limits = BTreeMap::new();
    }
    Simulator::start(config).await.unwrap()
}

async fn throughput(provider: Provider) {
    let sim = start(false).await;
    let a = adapter(&sim, provider, Some(UNLIMITED));
    let deployment = format!("bench-{}", provider.as_str());
    let started = Instant::now();
    let ids: Vec<String> = futures::stream::iter(0..MACHINES)
        .map(|i| {
            let request = MachineRequest {
                name: format!("ws-{i}"),
                region: a.region.into(),
                size: a.size.into(),
                image: a.image.into(),
                vpc_id: None,
                subnet_id: None,
                firewall_id: None,
                ssh_keys: Vec::new(),
                user_data: None,
                marks: Marks {
                    deployment: deployment.clone(),
                    region: "r1".into(),
                    role: Some(flotilla_spec::Role::Webserver),
                    resource_id: format!("m{i}"),
                },
            };
            let c = &a.compute;
            async move { c.create_machine(&request).await.unwrap().id }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let created = started.elapsed();

    // Listing through an adapter at the provider's published rate, as the provisioner would.
    let lister = adapter(&sim, provider, None);
    let before = (lister.calls)();
    let started = Instant::now();
    let listed = lister
        .compute
        .list_machines(&MarkFilter::deployment(&deployment))
        .await
        .unwrap();
    let list_time = started.elapsed();
    let list_calls = (lister.calls)() - before;
    assert_eq!(listed.len(), MACHINES, "{provider:?}: list is complete");

    let started = Instant::now();
    futures::stream::iter(ids.iter())
        .map(|id| {
            let c = &a.compute;
            async move { c.delete_machine(id).await.unwrap() }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let deleted = started.elapsed();
    println!(
        "{:<13} list {MACHINES}: {list_calls:>3} API calls, {:>7.1} ms | create {:>6.0}/s | delete {:>6.0}/s",
        provider.as_str(),
        list_time.as_secs_f64() * 1e3,
        MACHINES as f64 / created.as_secs_f64(),
        MACHINES as f64 / deleted.as_secs_f64(),
    );
    sim.shutdown().await;
}

/// Sends `n` list calls through an adapter at its published rate to a simulator enforcing the same rate,
/// and reports how many 429s the simulator had to send (0 = the limiter kept us under the limit).
async fn limiter(provider: Provider, n: usize) {
    let sim = start(true).await;
    let a = adapter(&sim, provider, None);
    let filter = MarkFilter::deployment("nothing-here");
    let started = Instant::now();
    for _ in 0..n {
        a.compute.list_machines(&filter).await.unwrap();
    }
    let elapsed = started.elapsed();
    let counters = sim.counters().provider(provider);
    let rate_limited: u64 = counters.credentials.values().map(|c| c.rate_limited).sum();
    let requests: u64 = counters.credentials.values().map(|c| c.requests).sum();
    println!(
        "{:<13} limiter: {requests} requests in {:.1} s ({:.1}/s), 429s from the simulator: {rate_limited}",
        provider.as_str(),
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
    );
    sim.shutdown().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "cloud benchmark: {MACHINES} machines per provider, {CONCURRENCY} at once, simulator on loopback"
    );
    for p in [
        Provider::Linode,
        Provider::DigitalOcean,
        Provider::Vultr,
        Provider::Exoscale,
    ] {
        throughput(p).await;
    }
    // Past each limit's burst, so the steady rate is what is measured.
    limiter(Provider::Linode, 1_700).await;
    limiter(Provider::DigitalOcean, 300).await;
    limiter(Provider::Vultr, 120).await;
}
