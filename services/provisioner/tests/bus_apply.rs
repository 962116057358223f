//! `provisioner.apply.v1` over the bus, against the simulator: the fleet is built, events report it, and the
//! same apply again changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_cloud::MarkFilter;
use flotilla_cloudsim::{SimConfig, Simulator, defaults};
use flotilla_integration_tests::{TestNats, free_port, init_logging, service_config};
use flotilla_proto::{ApplyRegion, CommandMeta, DestroyRegion, RegionApplied};
use flotilla_provisioner::Settings;
use flotilla_provisioner::clouds::{Endpoints, connect};
use flotilla_spec::Role;
use futures::StreamExt;

#[tokio::test]
async fn an_apply_over_the_bus_builds_the_region_once() {
    init_logging();
    let health_port = free_port();
    let sim = Simulator::start(SimConfig {
        boot_delay: Duration::from_millis(100),
        health_port,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let nats = TestNats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let import = flotilla_integration_tests::templates::import(&[("TOKEN", defaults::LINODE_TOKEN)]);
    let (_, secrets_file) = import.write_to_dir(dir.path()).unwrap();
    let mut config = service_config::<Settings>(&nats, None, dir.path());
    config.secrets_file = Some(secrets_file);
    config.clouds.endpoints = Endpoints {
        linode: Some(sim.linode_url().to_owned()),
        ..Endpoints::default()
    };
    config.service = Settings {
        health_port,
        health_path: "/health".into(),
        boot_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(50),
        max_rounds: 5,
        ..Settings::default()
    };
    config.consumer.ack_wait = Duration::from_secs(5);
    let svc = flotilla_runtime::host::start(flotilla_provisioner::DEF, config, flotilla_provisioner::routes)
        .await
        .unwrap();

    let client = nats.client().await;
    let deployment = import.deployment.clone();
    let mut events = client
        .subscribe(format!("flotilla.evt.region.{}.gb-lon.>", deployment.name))
        .await
        .unwrap();
    let publisher = Publisher::new(client.clone(), PublishConfig::default());
    let subj = subject::command("provisioner", &deployment.name, "gb-lon", "apply").unwrap();
    let cmd = ApplyRegion {
        meta: CommandMeta::new("test"),
        deployment: deployment.clone(),
        region: "gb-lon".into(),
        generation: flotilla_integration_tests::next_generation(),
    };
    publisher
        .publish(&subj, &cmd.meta.id.to_string(), &cmd)
        .await
        .unwrap();
    let applied = next_event(&mut events).await;
    assert_eq!(applied.outcome, "applied", "{applied:?}");
    assert_eq!(
        applied.created.len(),
        3,
        "a webserver, the database machine, a reverse proxy: {applied:?}"
    );
    assert_eq!(applied.meta.correlation_id, cmd.meta.correlation_id);

    // The same command again is dropped by the stream; a new apply of the same spec changes nothing.
    let dup = publisher
        .publish(&subj, &cmd.meta.id.to_string(), &cmd)
        .await
        .unwrap();
    assert!(dup.duplicate);
    let again = ApplyRegion {
        meta: CommandMeta::new("test"),
        ..cmd.clone()
    };
    publisher
        .publish(&subj, &again.meta.id.to_string(), &again)
        .await
        .unwrap();
    let second = next_event(&mut events).await;
    assert_eq!(second.outcome, "applied");
    assert!(
        second.created.is_empty() && second.destroyed.is_empty(),
        "{second:?}"
    );

    let region = &import.deployment.regions[0];
    let cloud = connect(
        region,
        import.secrets.region("gb-lon").unwrap(),
        &Endpoints {
            linode: Some(sim.linode_url().to_owned()),
            ..Endpoints::default()
        },
    )
    .unwrap();
    let ours = MarkFilter::region(&deployment.name, "gb-lon");
    assert_eq!(cloud.compute.list_machines(&ours).await.unwrap().len(), 3);
    let vpc_name = &region.vpc.name;
    assert!(
        cloud
            .network
            .find_vpc("gb-lon", vpc_name)
            .await
            .unwrap()
            .is_some(),
        "the apply created the region's VPC"
    );

    // The region's firewalls as the firewall service makes them (one applied to a machine), and one of the
    // operator's own in the same account: a destroy removes the first and leaves the other alone.
    let rule = flotilla_cloud::FirewallRule {
        protocol: flotilla_cloud::Protocol::Tcp,
        ports: Some((443, 443)),
        sources: vec!["0.0.0.0/0".parse().unwrap()],
        description: "https".into(),
    };
    let mut firewalls = Vec::new();
    for (name, role) in [
        (region.firewall_name(Role::Webserver), Some(Role::Webserver)),
        (region.firewall_name(Role::ReverseProxy), Some(Role::ReverseProxy)),
        ("operators-own".to_owned(), None),
    ] {
        let marks = flotilla_cloud::Marks {
            deployment: deployment.name.clone(),
            region: "gb-lon".into(),
            role,
            resource_id: name.clone(),
        };
        let made = cloud
            .network
            .create_firewall(&name, std::slice::from_ref(&rule), &marks)
            .await
            .unwrap();
        firewalls.push((name, made));
    }
    let webserver = cloud.compute.list_machines(&ours).await.unwrap()[0].id.clone();
    cloud
        .network
        .attach_firewall(&firewalls[0].1.id, &webserver)
        .await
        .unwrap();
    let names: Vec<String> = firewalls.iter().map(|(name, _)| name.clone()).collect();
    let before = cloud.network.find_firewalls(&names).await.unwrap();
    assert!(before.iter().all(Option::is_some), "{names:?} made: {before:?}");

    // The operator's own machine in the same account: a destroy must leave it alone.
    let http = reqwest::Client::new();
    let theirs: serde_json::Value = http
        .post(format!("{}/linode/instances", sim.linode_url()))
        .bearer_auth(defaults::LINODE_TOKEN)
        .json(&serde_json::json!({"region": "gb-lon", "type": "g6-nanode-1", "image": "linode/debian12", "root_pass": "Operator-Pass-1", "label": "operators-own"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A machine that is not the region's, behind one of the region's firewalls: that firewall must stay.
    let theirs_id = theirs["id"].to_string();
    cloud
        .network
        .attach_firewall(&firewalls[1].1.id, &theirs_id)
        .await
        .unwrap();
    let destroy = DestroyRegion {
        meta: CommandMeta::new("test"),
        deployment: deployment.name.clone(),
        region: "gb-lon".into(),
        generation: flotilla_integration_tests::next_generation(),
    };
    let destroy_subject = subject::command("provisioner", &deployment.name, "gb-lon", "destroy").unwrap();
    publisher
        .publish(&destroy_subject, &destroy.meta.id.to_string(), &destroy)
        .await
        .unwrap();
    let destroyed = next_event(&mut events).await;
    assert_eq!(destroyed.outcome, "failed", "a firewall is left: {destroyed:?}");
    assert_eq!(destroyed.destroyed.len(), 3, "{destroyed:?}");
    let why = destroyed.error.clone().unwrap_or_default();
    assert!(
        why.contains(&firewalls[1].0) && why.contains(&theirs_id),
        "the destroy names the firewall left and the machine it still protects: {why}"
    );
    flotilla_integration_tests::eventually("our machines gone", Duration::from_secs(10), || async {
        cloud
            .compute
            .list_machines(&ours)
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    let still = http
        .get(format!("{}/linode/instances/{}", sim.linode_url(), theirs["id"]))
        .bearer_auth(defaults::LINODE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200, "the operator's machine is untouched");
    let left = cloud.network.find_firewalls(&names).await.unwrap();
    assert!(
        left[0].is_none(),
        "the region's unused firewall is gone with it: {left:?}"
    );
    assert!(
        left[1].is_some() && left[2].is_some(),
        "the firewall still protecting the operator's machine, and the operator's own, are untouched: {left:?}"
    );
    let vpc_gone = || async {
        cloud
            .network
            .find_vpc("gb-lon", vpc_name)
            .await
            .unwrap()
            .is_none()
    };
    assert!(
        vpc_gone().await,
        "the VPC Flotilla created is gone with the region"
    );

    // Once the operator takes their machine from behind it, destroying again removes it; nothing else of
    // ours is found.
    cloud
        .network
        .detach_firewall(&firewalls[1].1.id, &theirs_id)
        .await
        .unwrap();
    let again = DestroyRegion {
        meta: CommandMeta::new("test"),
        ..destroy
    };
    publisher
        .publish(&destroy_subject, &again.meta.id.to_string(), &again)
        .await
        .unwrap();
    let second = next_event(&mut events).await;
    assert_eq!(
        (
            second.outcome.as_str(),
            second.destroyed.len(),
            second.error.as_deref()
        ),
        ("destroyed", 0, None)
    );
    let left = cloud.network.find_firewalls(&names).await.unwrap();
    assert!(
        left[0].is_none() && left[1].is_none() && left[2].is_some(),
        "the region's firewalls are gone, the operator's own stays: {left:?}"
    );
    svc.shutdown().await.unwrap();
    sim.shutdown().await;
}

async fn next_event(events: &mut async_nats::Subscriber) -> RegionApplied {
    let msg = tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .expect("a region event")
        .unwrap();
    let kind = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(flotilla_proto::KIND_HEADER))
        .map(|v| v.to_string());
    flotilla_proto::decode::<RegionApplied>(kind.as_deref(), None, &msg.payload).unwrap()
}
