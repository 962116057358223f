//! A region's spec and secrets become working adapters, pointed at the simulator as `flotilla dev` does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_cloud::MarkFilter;
use flotilla_cloudsim::{SimConfig, Simulator, defaults};
use flotilla_provisioner::clouds::{Endpoints, connect};

fn import(cloudhost: &str, region: &str, creds: &[(&str, &str)]) -> flotilla_spec::Import {
    let mut overrides = vec![("CLOUDHOST", cloudhost), ("REGION", region), ("TOKEN", "")];
    overrides.extend_from_slice(creds);
    flotilla_integration_tests::templates::import(&overrides)
}

#[tokio::test]
async fn every_provider_connects_through_its_secrets() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let endpoints = Endpoints {
        linode: Some(sim.linode_url().to_owned()),
        digitalocean: Some(sim.digitalocean_url().to_owned()),
        vultr: Some(sim.vultr_url().to_owned()),
        exoscale: Some(sim.exoscale_zone_url("{zone}")),
        cloudflare: None,
    };
    for (cloudhost, region, creds) in [
        ("linode", "gb-lon", vec![("TOKEN", defaults::LINODE_TOKEN)]),
        (
            "digitalocean",
            "ams3",
            vec![("TOKEN", defaults::DIGITALOCEAN_TOKEN)],
        ),
        ("vultr", "ams", vec![("TOKEN", defaults::VULTR_TOKEN)]),
        (
            "exoscale",
            "ch-gva-2",
            vec![
                ("ACCESS_KEY", defaults::EXOSCALE_KEY),
                ("SECRET_KEY", defaults::EXOSCALE_SECRET),
            ],
        ),
    ] {
        let import = import(cloudhost, region, &creds);
        let r = &import.deployment.regions[0];
        let cloud = connect(r, import.secrets.region(&r.name).unwrap(), &endpoints).unwrap();
        assert_eq!(cloud.provider.as_str(), cloudhost);
        let listed = cloud
            .compute
            .list_machines(&MarkFilter::deployment("www-codetesters-uk"))
            .await;
        assert!(listed.unwrap_or_else(|e| panic!("{cloudhost}: {e}")).is_empty());
    }
    sim.shutdown().await;
}

#[test]
fn missing_credentials_name_the_region_and_key_without_values() {
    let import = import("linode", "gb-lon", &[("TOKEN", "tok-1")]);
    let r = &import.deployment.regions[0];
    let mut secrets = import.secrets.region(&r.name).unwrap().clone();
    secrets.cloud.token = None;
    let err = connect(r, &secrets, &Endpoints::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("gb-lon") && err.contains("TOKEN"), "{err}");
}
