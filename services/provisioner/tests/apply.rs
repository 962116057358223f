//! Applying a region against the simulator: machines created once, healthy over real TCP, recorded; a
//! re-apply changes nothing; a crash between the cloud's create and our record never makes a duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flotilla_cloud::{MachineRequest, MarkFilter, Marks};
use flotilla_cloudsim::{RunningSim, SimConfig, Simulator, defaults};
use flotilla_integration_tests::{TestDb, free_port};
use flotilla_provisioner::apply::{Applier, ApplyOptions};
use flotilla_provisioner::clouds::{Endpoints, RegionCloud, connect};
use flotilla_provisioner::plan::{KnownState, Step, plan};
use flotilla_provisioner::store::{MachineRow, MachineStore};
use flotilla_spec::{Region, Role};
use uuid::Uuid;

fn region_import() -> flotilla_spec::Import {
    flotilla_integration_tests::templates::import(&[
        ("TOKEN", defaults::LINODE_TOKEN),
        ("NO_WEBSERVERS", "2"),
        ("INPARALLEL", "1"),
    ])
}

struct World {
    sim: RunningSim,
    cloud: RegionCloud,
    region: Region,
    deployment: String,
    options: ApplyOptions,
}

async fn world() -> World {
    let health_port = free_port();
    let sim = Simulator::start(SimConfig {
        boot_delay: Duration::from_millis(100),
        health_port,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let import = region_import();
    let region = import.deployment.regions[0].clone();
    let endpoints = Endpoints {
        linode: Some(sim.linode_url().to_owned()),
        ..Endpoints::default()
    };
    let cloud = connect(&region, import.secrets.region(&region.name).unwrap(), &endpoints).unwrap();
    let options = ApplyOptions {
        health_port,
        health_path: "/health".into(),
        boot_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(50),
        max_rounds: 5,
        image: "linode/debian12".into(),
    };
    World {
        sim,
        cloud,
        region,
        deployment: import.deployment.name,
        options,
    }
}

async fn cloud_machines(w: &World) -> Vec<flotilla_cloud::Machine> {
    w.cloud
        .compute
        .list_machines(&MarkFilter::region(&w.deployment, &w.region.name))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_region_is_built_once_and_a_reapply_changes_nothing() {
    for db in flotilla_integration_tests::databases().await {
        let w = world().await;
        let store = MachineStore::open(db.store.clone()).await.unwrap();
        let applier = Applier {
            cloud: &w.cloud,
            store: &store,
            deployment: &w.deployment,
            region: &w.region,
            options: &w.options,
            placement: Default::default(),
            observer: &flotilla_provisioner::apply::Silent,
        };
        let apply_id = Uuid::now_v7();
        let report = applier.apply(apply_id).await.unwrap();
        assert_eq!(
            report.created.len(),
            4,
            "2 webservers, the database machine, 1 reverse proxy: {report:?}"
        );
        let machines = cloud_machines(&w).await;
        assert_eq!(machines.len(), 4);
        let mut roles: Vec<Role> = machines
            .iter()
            .map(|m| m.marks.as_ref().unwrap().role.unwrap())
            .collect();
        roles.sort_by_key(|r| r.as_str());
        assert_eq!(
            roles,
            vec![
                Role::Database,
                Role::ReverseProxy,
                Role::Webserver,
                Role::Webserver
            ]
        );
        assert!(
            machines
                .iter()
                .all(|m| m.size == "g6-nanode-1" && m.region == "gb-lon")
        );
        let rows = store.region(&w.deployment, "gb-lon").await.unwrap();
        assert!(
            rows.iter()
                .all(|r| r.state == KnownState::Healthy && r.public_ipv4.is_some()),
            "{rows:?}"
        );

        // The same apply delivered again, and a new apply of the unchanged spec: nothing to do.
        let again = applier.apply(apply_id).await.unwrap();
        assert_eq!(again, Default::default());
        assert_eq!(applier.apply(Uuid::now_v7()).await.unwrap(), Default::default());
        assert_eq!(cloud_machines(&w).await.len(), 4);
        w.sim.shutdown().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_crash_between_the_create_and_the_record_never_makes_a_duplicate() {
    let db = TestDb::sqlite().await;
    let w = world().await;
    let store = MachineStore::open(db.store.clone()).await.unwrap();
    let apply_id = Uuid::now_v7();
    // What an earlier, crashed attempt did: recorded one machine as pending and got the cloud to create it,
    // then died before recording the answer.
    let first = plan(&w.region, &[], apply_id).into_iter().next().unwrap();
    let Step::Create {
        role,
        size,
        resource_id,
        name,
    } = first
    else {
        panic!("{first:?}")
    };
    store
        .record_pending(&MachineRow {
            resource_id: resource_id.clone(),
            deployment: w.deployment.clone(),
            region: w.region.name.clone(),
            role,
            size: size.clone(),
            name: name.clone(),
            provider: "linode".into(),
            provider_id: None,
            state: KnownState::CreatePending,
            public_ipv4: None,
            private_ipv4: None,
            attempts: 0,
            created_ms: 0,
        })
        .await
        .unwrap();
    w.cloud
        .compute
        .create_machine(&MachineRequest {
            name,
            region: "gb-lon".into(),
            size,
            image: "linode/debian12".into(),
            vpc_id: None,
            subnet_id: None,
            firewall_id: None,
            ssh_keys: Vec::new(),
            user_data: None,
            marks: Marks {
                deployment: w.deployment.clone(),
                region: w.region.name.clone(),
                role: Some(role),
                resource_id: resource_id.clone(),
            },
        })
        .await
        .unwrap();
    // The redelivered apply adopts it instead of creating a second one.
    let applier = Applier {
        cloud: &w.cloud,
        store: &store,
        deployment: &w.deployment,
        region: &w.region,
        options: &w.options,
        placement: Default::default(),
        observer: &flotilla_provisioner::apply::Silent,
    };
    let report = applier.apply(apply_id).await.unwrap();
    assert_eq!(report.adopted, vec![resource_id]);
    assert_eq!(report.created.len(), 3);
    assert_eq!(
        cloud_machines(&w).await.len(),
        4,
        "exactly the machines the spec asks for"
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_smaller_spec_removes_only_the_surplus() {
    let db = TestDb::sqlite().await;
    let mut w = world().await;
    let store = MachineStore::open(db.store.clone()).await.unwrap();
    Applier {
        cloud: &w.cloud,
        store: &store,
        deployment: &w.deployment,
        region: &w.region,
        options: &w.options,
        placement: Default::default(),
        observer: &flotilla_provisioner::apply::Silent,
    }
    .apply(Uuid::now_v7())
    .await
    .unwrap();
    w.region.machines.webserver.count = 1;
    let report = Applier {
        cloud: &w.cloud,
        store: &store,
        deployment: &w.deployment,
        region: &w.region,
        options: &w.options,
        placement: Default::default(),
        observer: &flotilla_provisioner::apply::Silent,
    }
    .apply(Uuid::now_v7())
    .await
    .unwrap();
    assert!(report.created.is_empty());
    assert_eq!(report.destroyed.len(), 1);
    let left = store.region(&w.deployment, "gb-lon").await.unwrap();
    assert_eq!(left.iter().filter(|r| r.role == Role::Webserver).count(), 1);
    flotilla_integration_tests::eventually(
        "surplus gone from the cloud",
        Duration::from_secs(10),
        || async { (cloud_machines(&w).await.len() == 3).then_some(()) },
    )
    .await;
    w.sim.shutdown().await;
}
