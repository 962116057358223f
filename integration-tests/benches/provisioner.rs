//! Provisioner figures against the simulator over a real NATS (SQLite store):
//! - time from publishing the applies of the seed's three-region deployment to every region applied, with
//!   machines and the DBaaS ready at once in the simulator (zero boot delay);
//! - API calls of a no-op reconcile, per region;
//! - time to notice and replace a machine deleted out of band, with a 5 s reconcile interval.
//!
//! `PATH=.ci/venv/bin:$PATH cargo bench -p flotilla-integration-tests --bench provisioner`. Prints figures;
//! asserts nothing about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_cloudsim::{Provider, RunningSim};
use flotilla_integration_tests::sim::{provisioner_settings, simulator};
use flotilla_integration_tests::templates::seed_import;
use flotilla_integration_tests::{TestNats, service_config};
use flotilla_proto::{ApplyRegion, CommandMeta, KIND_HEADER, MachineChanged, Message, RegionApplied};
use flotilla_provisioner::Settings;
use flotilla_provisioner::handler::Provisioner;
use flotilla_spec::Deployment;
use futures::StreamExt;

const RUNS: usize = 5;

struct Stack {
    nats: TestNats,
    sim: RunningSim,
    service: flotilla_runtime::host::Running,
    db_url: String,
    settings: Settings,
    _dir: tempfile::TempDir,
}

async fn stack(reconcile: Duration) -> Stack {
    let sim = simulator(Duration::ZERO, Duration::ZERO).await;
    let nats = TestNats::private().await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("provisioner.db").display());
    let mut config = service_config::<Settings>(&nats, Some(db_url.clone()), dir.path());
    config.consumer.ack_wait = Duration::from_secs(5);
    config.clouds = sim.cloud_settings();
    config.service = Settings {
        reconcile_interval: reconcile,
        poll_interval: Duration::from_millis(20),
        ..provisioner_settings(&sim)
    };
    let settings = config.service.clone();
    let service =
        flotilla_runtime::host::start(flotilla_provisioner::DEF, config, flotilla_provisioner::routes)
            .await
            .unwrap();
    Stack {
        nats,
        sim,
        service,
        db_url,
        settings,
        _dir: dir,
    }
}

/// Publishes one apply per region and waits until each is applied; returns the time taken.
async fn deploy(client: &async_nats::Client, deployment: &Deployment) -> Duration {
    let mut events = client
        .subscribe(format!("flotilla.evt.region.{}.*.applied", deployment.name))
        .await
        .unwrap();
    let publisher = Publisher::new(client.clone(), PublishConfig::default());
    let started = Instant::now();
    for region in &deployment.regions {
        let cmd = ApplyRegion {
            meta: CommandMeta::new("bench"),
            deployment: deployment.clone(),
            region: region.name.clone(),
            generation: flotilla_integration_tests::next_generation(),
        };
        let subj = subject::command("provisioner", &deployment.name, &region.name, "apply").unwrap();
        publisher
            .publish(&subj, &cmd.meta.id.to_string(), &cmd)
            .await
            .unwrap();
    }
    let mut applied = 0;
    while applied < deployment.regions.len() {
        let msg = tokio::time::timeout(Duration::from_secs(120), events.next())
            .await
            .expect("every region applies within two minutes")
            .unwrap();
        let kind = flotilla_bus::header(msg.headers.as_ref(), KIND_HEADER);
        if kind.as_deref() == Some(RegionApplied::KIND) {
            applied += 1;
        }
    }
    started.elapsed()
}

fn requests(sim: &RunningSim) -> BTreeMap<Provider, u64> {
    let counters = sim.counters();
    [Provider::Linode, Provider::Exoscale]
        .into_iter()
        .map(|p| (p, counters.provider(p).requests()))
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let deployment = seed_import().deployment;
    let machines: u32 = deployment
        .regions
        .iter()
        .flat_map(|r| r.machines.iter().map(|(_, s)| s.count))
        .sum();
    println!(
        "seed deployment: {} regions, {machines} machines, DBaaS in the primary; simulator boot delay 0",
        deployment.regions.len()
    );

    // 1. Deploy to healthy.
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let s = stack(Duration::from_secs(3600)).await;
        let client = s.nats.client().await;
        times.push(deploy(&client, &deployment).await);
        s.service.shutdown().await.unwrap();
        s.sim.shutdown().await;
    }
    times.sort();
    println!(
        "deploy → every region applied and every machine healthy: median {:?}, min {:?}, max {:?} ({RUNS} runs)",
        times[RUNS / 2],
        times[0],
        times[RUNS - 1]
    );

    // 2. API calls of a no-op reconcile.
    let s = stack(Duration::from_secs(3600)).await;
    let client = s.nats.client().await;
    deploy(&client, &deployment).await;
    let store = flotilla_store::Store::open(&s.db_url).await.unwrap();
    let provisioner = Provisioner::new(
        s.settings.clone(),
        flotilla_provisioner::clouds::Clouds::new(s.sim.cloud_settings(), None),
        store,
        Publisher::new(client.clone(), PublishConfig::default()),
        None,
    );
    let before = requests(&s.sim);
    provisioner.reconcile_all().await.unwrap();
    let after = requests(&s.sim);
    for (provider, n) in &after {
        let regions = deployment
            .regions
            .iter()
            .filter(|r| r.provider.as_str() == provider.as_str())
            .count();
        println!(
            "no-op reconcile, {provider:?}: {} API call(s) for {regions} region(s)",
            n - before[provider]
        );
    }
    s.service.shutdown().await.unwrap();
    s.sim.shutdown().await;

    // 3. A machine deleted out of band: noticed and replaced.
    let interval = Duration::from_secs(5);
    let s = stack(interval).await;
    let client = s.nats.client().await;
    deploy(&client, &deployment).await;
    let victim = s
        .sim
        .machines()
        .into_iter()
        .find(|m| m.provider == Provider::Linode && m.name.starts_with("ws-gb-lon"))
        .expect("a gb-lon webserver");
    let mut changes = client
        .subscribe(format!("flotilla.evt.machine.{}.gb-lon.healthy", deployment.name))
        .await
        .unwrap();
    let linode = flotilla_linode::LinodeCloud::new(
        flotilla_linode::LinodeConfig::new(flotilla_cloudsim::defaults::LINODE_TOKEN)
            .with_base_url(s.sim.linode_url()),
    )
    .unwrap();
    let deleted = Instant::now();
    flotilla_cloud::Compute::delete_machine(&linode, &victim.id)
        .await
        .unwrap();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(120), changes.next())
            .await
            .expect("a replacement within two minutes")
            .unwrap();
        let kind = flotilla_bus::header(msg.headers.as_ref(), KIND_HEADER);
        if kind.as_deref() != Some(MachineChanged::KIND) {
            continue;
        }
        let ct = flotilla_bus::header(msg.headers.as_ref(), flotilla_proto::CONTENT_TYPE_HEADER);
        let e: MachineChanged = flotilla_proto::decode(kind.as_deref(), ct.as_deref(), &msg.payload).unwrap();
        if e.role == "webserver" {
            break;
        }
    }
    println!(
        "machine deleted out of band → replacement healthy: {:?} with a {interval:?} reconcile interval \
         (at most one interval of that is waiting for the next pass)",
        deleted.elapsed()
    );
    s.service.shutdown().await.unwrap();
    s.sim.shutdown().await;
}
