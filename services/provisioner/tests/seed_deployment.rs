//! The seed deployment (the original toolkit's three real templates: the gb-lon Linode primary with the
//! DBaaS, the nl-ams Linode secondary, the ch-gva-2 Exoscale secondary) deployed over a real NATS against
//! the simulator, one `ApplyRegion` per region, the secondaries published first.
//!
//! It proves, on SQLite and on PostgreSQL, that:
//! - the secondaries wait for the primary's DBaaS: each says `blocked` (and has created nothing at the
//!   simulator) before the primary is even asked, and says `applied` only after the primary's `DbaasReady`;
//! - every machine exists exactly once at the simulator — the simulator's own view, not only our record —
//!   with the role, provider region and size its spec asks for, attached to its region's VPC;
//! - the machines API lists exactly what the simulator holds, and the DBaaS as ready;
//! - `DbaasReady` carries no secret of the deployment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Event, Fixture, assert_api_matches, assert_exactly_the_spec, endpoints, sim_credentials};
use flotilla_cloudsim::{RunningSim, defaults};
use flotilla_integration_tests::{databases, templates};
use flotilla_proto::{ApplyRegion, CommandMeta};
use flotilla_provisioner::clouds::connect;
use flotilla_spec::{CloudProvider, Region};

#[tokio::test]
async fn the_seed_deploys_primary_first_with_every_machine_once() {
    for db in databases().await {
        let backend = if db.url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        };
        let started = Instant::now();
        deploy_the_seed(db).await;
        eprintln!("seed deployment on {backend}: {:?}", started.elapsed());
    }
}

async fn deploy_the_seed(db: flotilla_integration_tests::TestDb) {
    // The DBaaS takes longer than the machines, as at a real provider: the secondaries' wait is visible.
    let sim = common::simulator(Duration::from_millis(100), Duration::from_secs(2)).await;
    let settings = common::settings(&sim);
    let f = Fixture::start(sim, db, settings, |_| {}).await;
    let import = templates::seed_import();
    let deployment = import.deployment.clone();
    let name = deployment.name.clone();
    let [primary, secondaries @ ..] = &deployment.regions[..] else {
        panic!("three regions")
    };
    assert!(primary.primary && primary.name == "gb-lon");
    let apply = |region: &Region| ApplyRegion {
        meta: CommandMeta::new("test"),
        deployment: deployment.clone(),
        region: region.name.clone(),
        generation: flotilla_integration_tests::next_generation(),
    };

    // Secondaries first.
    let secondary_cmds: Vec<ApplyRegion> = secondaries.iter().map(apply).collect();
    for cmd in &secondary_cmds {
        f.send(&name, &cmd.region, "apply", &cmd.meta.id.to_string(), cmd)
            .await;
    }
    for cmd in &secondary_cmds {
        let blocked = f
            .events
            .region_outcome(&cmd.region, cmd.meta.correlation_id, "blocked")
            .await;
        let why = blocked.error.clone().unwrap_or_default();
        assert!(
            why.contains("gb-lon") && why.contains("DBaaS"),
            "a blocked region says what it waits for: {why:?}"
        );
    }
    let fleet = f.fleet(&name).await;
    for s in secondaries {
        let view = fleet.regions.iter().find(|r| r.region == s.name).unwrap();
        assert_eq!(view.status, "blocked", "{view:?}");
        assert!(
            common::sim_region(&f.sim, &name, &s.name).is_empty(),
            "{} built machines before the primary's DBaaS was ready",
            s.name
        );
    }

    let primary_cmd = apply(primary);
    f.send(
        &name,
        "gb-lon",
        "apply",
        &primary_cmd.meta.id.to_string(),
        &primary_cmd,
    )
    .await;
    let applied = f
        .events
        .region_outcome("gb-lon", primary_cmd.meta.correlation_id, "applied")
        .await;
    assert_eq!(applied.created.len(), 4, "{applied:?}");
    for cmd in &secondary_cmds {
        f.events
            .region_outcome(&cmd.region, cmd.meta.correlation_id, "applied")
            .await;
    }

    // The order the fleet heard it in: blocked, then the DBaaS, then applied.
    let log = f.events.all();
    let position = |pick: &dyn Fn(&Event) -> bool| log.iter().position(pick);
    let dbaas_at =
        position(&|e| matches!(e, Event::Dbaas(d, _) if d.region == "gb-lon")).expect("DbaasReady");
    for s in secondaries {
        let blocked_at =
            position(&|e| matches!(e, Event::Region(r) if r.region == s.name && r.outcome == "blocked"))
                .unwrap();
        let applied_at =
            position(&|e| matches!(e, Event::Region(r) if r.region == s.name && r.outcome == "applied"))
                .unwrap();
        assert!(
            blocked_at < dbaas_at && dbaas_at < applied_at,
            "{}: blocked at {blocked_at}, DbaasReady at {dbaas_at}, applied at {applied_at}",
            s.name
        );
    }

    // The DBaaS: ready, ours, and its event tells where it is but nothing secret.
    let Some(Event::Dbaas(ready, raw)) = log.get(dbaas_at).cloned() else {
        unreachable!()
    };
    assert_eq!(
        (
            ready.deployment.as_str(),
            ready.region.as_str(),
            ready.name.as_str(),
            ready.created
        ),
        (name.as_str(), "gb-lon", "test-cluster", true),
        "{ready:?}"
    );
    assert!(ready.host.is_some() && !ready.id.is_empty(), "{ready:?}");
    let payload = String::from_utf8_lossy(&raw).to_lowercase();
    let mut secrets =
        secret_strings(&toml::from_str::<serde_json::Value>(&import.secrets.to_toml().unwrap()).unwrap());
    secrets.extend(
        [
            defaults::LINODE_TOKEN,
            defaults::EXOSCALE_KEY,
            defaults::EXOSCALE_SECRET,
        ]
        .map(str::to_owned),
    );
    assert!(
        secrets.len() > 5,
        "the seed's secrets were read: {}",
        secrets.len()
    );
    for secret in &secrets {
        assert!(
            !payload.contains(&secret.to_lowercase()),
            "DbaasReady carries a secret"
        );
    }
    assert!(!payload.contains("password"), "DbaasReady names a password");

    // The simulator's view: every machine once, where and as big as its spec says, in its VPC.
    let fleet = f.fleet(&name).await;
    for region in &deployment.regions {
        let held = assert_exactly_the_spec(&f.sim, &name, region);
        assert_api_matches(&fleet, &region.name, &held);
        let view = fleet.regions.iter().find(|r| r.region == region.name).unwrap();
        assert_eq!(view.status, "applied", "{view:?}");
        let vpc = connect(
            region,
            &sim_credentials().for_provider(region.provider),
            &endpoints(&f.sim),
        )
        .unwrap()
        .network
        .find_vpc(&region.provider_region, &region.vpc.name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{}: VPC {} at the simulator", region.name, region.vpc.name));
        assert_eq!(view.vpc_id.as_deref(), Some(vpc.id.as_str()), "{view:?}");
        for m in &held {
            assert_eq!(
                vpcs_of(&f.sim, region, &m.id).await,
                vec![vpc.id.clone()],
                "{}: machine {} is in its region's VPC only",
                region.name,
                m.name
            );
            let ip = m.private_ip.unwrap_or_else(|| panic!("{m:?} has a VPC address"));
            assert!(region.vpc.cidr.contains(&ip), "{ip} in {}", region.vpc.cidr);
        }
    }
    assert_eq!(common::sim_machines(&f.sim, &name).len(), 12);
    let dbaas = fleet
        .regions
        .iter()
        .find(|r| r.region == "gb-lon")
        .and_then(|r| r.dbaas.clone())
        .expect("the primary's DBaaS is listed");
    assert_eq!(
        (dbaas.status.as_str(), dbaas.created),
        ("ready", true),
        "{dbaas:?}"
    );
    assert!(
        fleet
            .regions
            .iter()
            .filter(|r| r.region != "gb-lon")
            .all(|r| r.dbaas.is_none()),
        "only the primary has a DBaaS of its own"
    );

    // Destroying the deployment removes every machine, the DBaaS and the VPCs Flotilla created.
    for region in &deployment.regions {
        let cmd = flotilla_proto::DestroyRegion {
            meta: flotilla_proto::CommandMeta::new("test"),
            deployment: name.clone(),
            region: region.name.clone(),
            generation: flotilla_integration_tests::next_generation(),
        };
        f.send(&name, &region.name, "destroy", &cmd.meta.id.to_string(), &cmd)
            .await;
        let done = f
            .events
            .region_outcome(&region.name, cmd.meta.correlation_id, "destroyed")
            .await;
        assert_eq!(done.error, None, "nothing left in place: {done:?}");
        let cloud = connect(
            region,
            &sim_credentials().for_provider(region.provider),
            &endpoints(&f.sim),
        )
        .unwrap();
        assert!(
            cloud
                .network
                .find_vpc(&region.provider_region, &region.vpc.name)
                .await
                .unwrap()
                .is_none(),
            "{}: the VPC is gone",
            region.name
        );
        if let Some(flotilla_spec::Dbaas::Primary { label, .. }) = &region.dbaas {
            assert!(
                cloud.databases.find_database(label).await.unwrap().is_none(),
                "the DBaaS Flotilla created is gone"
            );
        }
    }
    assert!(common::sim_machines(&f.sim, &name).is_empty());
    assert!(f.fleet(&name).await.regions.is_empty());

    f.stop().await;
}

/// Every string of at least 8 characters in `value` (the seed's secrets, as their TOML/JSON form holds them).
fn secret_strings(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) if s.len() >= 8 => vec![s.clone()],
        serde_json::Value::Array(items) => items.iter().flat_map(secret_strings).collect(),
        serde_json::Value::Object(map) => map.values().flat_map(secret_strings).collect(),
        _ => Vec::new(),
    }
}

/// The VPCs (private networks) machine `id` is attached to, as the provider's own API reports them.
async fn vpcs_of(sim: &RunningSim, region: &Region, id: &str) -> Vec<String> {
    let (list, field) = match region.provider {
        CloudProvider::Linode => {
            let ips: serde_json::Value = reqwest::Client::new()
                .get(format!("{}/linode/instances/{id}/ips", sim.linode_url()))
                .bearer_auth(defaults::LINODE_TOKEN)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap();
            (ips["ipv4"]["vpc"].clone(), "vpc_id")
        }
        CloudProvider::Exoscale => {
            let exo = flotilla_exoscale::Exoscale::new(
                flotilla_exoscale::ExoscaleConfig::new(
                    region.provider_region.clone(),
                    defaults::EXOSCALE_KEY,
                    defaults::EXOSCALE_SECRET,
                )
                .with_base_url(sim.exoscale_zone_url(&region.provider_region)),
            )
            .unwrap();
            let instance: serde_json::Value = exo.api().get(&format!("instance/{id}"), &[]).await.unwrap();
            (instance["private-networks"].clone(), "id")
        }
        other => panic!("no VPC lookup for {other:?}"),
    };
    list.as_array()
        .unwrap_or_else(|| panic!("{id}: no VPC list in {list}"))
        .iter()
        .map(|a| match &a[field] {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        })
        .collect()
}
