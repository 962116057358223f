//! The simulator's answers have the real APIs' field names: recorded Linode requests are replayed
//! and the answers compared with the recorded ones; DigitalOcean, Vultr, Exoscale and Cloudflare
//! answers are compared with the providers' specs and fixtures. The files are read at run time
//! from `shared/provider-specs` (found by walking up from this crate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{call, config, exo, start};
use flotilla_cloudsim::defaults::{CLOUDFLARE_TOKEN, DIGITALOCEAN_TOKEN, LINODE_TOKEN, VULTR_TOKEN};
use reqwest::Method;
use serde_json::{Value, json};

fn specs() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("shared/provider-specs");
        if candidate.is_dir() {
            return candidate;
        }
        assert!(
            dir.pop(),
            "no shared/provider-specs above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// Every key of `real` is in `ours`, except `allowed` omissions.
fn has_every_field(what: &str, ours: &Value, real: &Value, allowed: &[&str]) {
    let missing: Vec<String> = keys(real)
        .difference(&keys(ours))
        .filter(|k| !allowed.contains(&k.as_str()))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: fields the real API has and we lack: {missing:?}\nours: {ours}"
    );
}

/// The (method, path, request body, response) of each recorded Linode interaction.
fn linode_recording(name: &str) -> Vec<(String, String, Value, u16, Value)> {
    let text = std::fs::read_to_string(specs().join("linode/recordings").join(name)).unwrap();
    let cassette: Value = serde_norway::from_str(&text).unwrap();
    cassette["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let url = i["request"]["url"].as_str().unwrap();
            let path = url
                .split("/v4beta")
                .nth(1)
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_owned();
            let parse = |s: &Value| {
                s.as_str()
                    .filter(|b| !b.is_empty())
                    .map(|b| serde_json::from_str(b).unwrap())
                    .unwrap_or(Value::Null)
            };
            (
                i["request"]["method"].as_str().unwrap().to_owned(),
                path,
                parse(&i["request"]["body"]),
                u16::try_from(i["response"]["code"].as_u64().unwrap()).unwrap(),
                parse(&i["response"]["body"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn recorded_linode_requests_get_answers_shaped_like_the_recorded_ones() {
    let sim = start(config()).await;
    let base = sim.linode_url().to_owned();
    let cases = [
        ("TestVPC_CreateGet.yaml", "/vpcs"),
        ("TestVPC_Create_Invalid.yaml", "/vpcs"),
        ("TestFirewall_Get.yaml", "/networking/firewalls"),
        ("TestDomain_Create.yaml", "/domains"),
        ("TestDatabase_MySQL_Suite.yaml", "/databases/mysql/instances"),
    ];
    for (file, path) in cases {
        let (_, _, request, code, recorded) = linode_recording(file)
            .into_iter()
            .find(|(m, p, ..)| m == "POST" && p == path)
            .unwrap();
        let (status, ours) = call(
            Method::POST,
            &format!("{base}{path}"),
            LINODE_TOKEN,
            Some(&request),
        )
        .await;
        assert_eq!(status, code, "{file}: {ours}");
        if code == 200 {
            has_every_field(file, &ours, &recorded, &["oldest_restore_time"]);
        } else {
            assert_eq!(ours, recorded, "{file}: the same error body");
        }
    }
    // An instance (without the recording's firewall, which does not exist here).
    let (_, _, mut request, _, recorded) = linode_recording("TestInstance_Get.yaml")
        .into_iter()
        .find(|(m, p, ..)| m == "POST" && p == "/linode/instances")
        .unwrap();
    request.as_object_mut().unwrap().remove("firewall_id");
    let (status, ours) = call(
        Method::POST,
        &format!("{base}/linode/instances"),
        LINODE_TOKEN,
        Some(&request),
    )
    .await;
    assert_eq!(status, 200, "{ours}");
    has_every_field("instance", &ours, &recorded, &[]);
    let (_, _, _, _, recorded_ips) = linode_recording("TestIPAddresses_Instance_Get.yaml")
        .into_iter()
        .find(|(m, p, ..)| m == "GET" && p.ends_with("/ips"))
        .unwrap();
    let (_, ips) = call(
        Method::GET,
        &format!("{base}/linode/instances/{}/ips", ours["id"]),
        LINODE_TOKEN,
        None,
    )
    .await;
    has_every_field("ips", &ips, &recorded_ips, &[]);
    has_every_field("ips.ipv4", &ips["ipv4"], &recorded_ips["ipv4"], &[]);
    has_every_field(
        "ips.ipv4.public",
        &ips["ipv4"]["public"][0],
        &recorded_ips["ipv4"]["public"][0],
        &["assigned_entity"],
    );
    // A list page.
    let (_, _, _, _, recorded_list) = linode_recording("TestInstances_List.yaml")
        .into_iter()
        .find(|(m, p, ..)| m == "GET" && p == "/linode/instances")
        .unwrap();
    let (_, list) = call(
        Method::GET,
        &format!("{base}/linode/instances"),
        LINODE_TOKEN,
        None,
    )
    .await;
    assert_eq!(keys(&list), keys(&recorded_list));
    sim.shutdown().await;
}

#[tokio::test]
async fn digitalocean_droplets_have_the_specs_fields() {
    let path = specs().join("digitalocean/specification/resources/droplets/responses/examples.yml");
    let examples: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let sim = start(config()).await;
    let (status, created) = call(
        Method::POST,
        &format!("{}/droplets", sim.digitalocean_url()),
        DIGITALOCEAN_TOKEN,
        Some(&json!({"name": "example.com", "region": "nyc3", "size": "s-1vcpu-1gb", "image": "ubuntu-20-04-x64"})),
    )
    .await;
    assert_eq!(status, 202);
    let real = &examples["droplet_create_response"]["value"];
    assert_eq!(keys(&created), keys(real));
    has_every_field("droplet", &created["droplet"], &real["droplet"], &[]);
    has_every_field(
        "droplet.size",
        &created["droplet"]["size"],
        &real["droplet"]["size"],
        &[],
    );
    has_every_field(
        "droplet.region",
        &created["droplet"]["region"],
        &real["droplet"]["region"],
        &[],
    );
    has_every_field(
        "droplet.image",
        &created["droplet"]["image"],
        &real["droplet"]["image"],
        &[],
    );
    let (_, list) = call(
        Method::GET,
        &format!("{}/droplets", sim.digitalocean_url()),
        DIGITALOCEAN_TOKEN,
        None,
    )
    .await;
    assert_eq!(keys(&list), keys(&examples["droplets_all"]["value"]));
    sim.shutdown().await;
}

#[tokio::test]
async fn vultr_instances_have_the_specs_fields() {
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(specs().join("vultr/openapi.json")).unwrap()).unwrap();
    let real = &spec["paths"]["/instances"]["post"]["responses"]["202"]["content"]["application/json"]["examples"]
        ["instance"]["value"]["instance"];
    let sim = start(config()).await;
    let (status, created) = call(
        Method::POST,
        &format!("{}/instances", sim.vultr_url()),
        VULTR_TOKEN,
        Some(&json!({"region": "ewr", "plan": "vc2-1c-1gb", "os_id": 2136, "label": "x", "hostname": "my_hostname", "tags": ["a tag"]})),
    )
    .await;
    assert_eq!(status, 202);
    has_every_field("instance", &created["instance"], real, &[]);
    let list_real = &spec["paths"]["/instances"]["get"]["responses"]["200"]["content"]["application/json"]["examples"]
        ["instance"]["value"];
    let (_, list) = call(
        Method::GET,
        &format!("{}/instances", sim.vultr_url()),
        VULTR_TOKEN,
        None,
    )
    .await;
    assert_eq!(keys(&list), keys(list_real));
    assert_eq!(keys(&list["meta"]), keys(&list_real["meta"]));
    assert_eq!(keys(&list["meta"]["links"]), keys(&list_real["meta"]["links"]));
    sim.shutdown().await;
}

#[tokio::test]
async fn exoscale_answers_use_only_the_specs_field_names() {
    let spec: Value =
        serde_norway::from_str(&std::fs::read_to_string(specs().join("exoscale/openapi.yaml")).unwrap())
            .unwrap();
    let schema = |name: &str| keys(&spec["components"]["schemas"][name]["properties"]);
    let sim = start(config()).await;
    let zone = sim.exoscale_zone_url("ch-gva-2");
    let (_, types) = exo(Method::GET, &format!("{zone}/instance-type"), None).await;
    let t = &types["instance-types"][0];
    assert!(keys(t).is_subset(&schema("instance-type")), "{t}");
    let (_, templates) = exo(Method::GET, &format!("{zone}/template"), None).await;
    let tpl = &templates["templates"][0];
    assert!(keys(tpl).is_subset(&schema("template")), "{tpl}");
    let (_, op) = exo(
        Method::POST,
        &format!("{zone}/instance"),
        Some(&json!({"instance-type": {"id": t["id"]}, "template": {"id": tpl["id"]}, "disk-size": 10})),
    )
    .await;
    assert!(keys(&op).is_subset(&schema("operation")), "{op}");
    let (_, m) = exo(
        Method::GET,
        &format!("{zone}/instance/{}", op["reference"]["id"].as_str().unwrap()),
        None,
    )
    .await;
    let extra: Vec<String> = keys(&m).difference(&schema("instance")).cloned().collect();
    assert!(extra.is_empty(), "fields the spec does not have: {extra:?}");
    for needed in [
        "id",
        "name",
        "state",
        "public-ip",
        "labels",
        "created-at",
        "private-networks",
    ] {
        assert!(m.get(needed).is_some(), "{needed} missing: {m}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn cloudflare_records_and_zones_have_the_fixtures_fields() {
    let fixture = |name: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(specs().join("cloudflare/fixtures").join(name)).unwrap(),
        )
        .unwrap()
    };
    let records = fixture("cloudflare-dns_records-page-1.json");
    let zones = fixture("cloudflare-zones-page-1.json");
    let sim = start(config()).await;
    let base = sim.cloudflare_url().to_owned();
    let (_, z) = call(Method::GET, &format!("{base}/zones"), CLOUDFLARE_TOKEN, None).await;
    assert_eq!(keys(&z), keys(&zones));
    assert_eq!(keys(&z["result_info"]), keys(&zones["result_info"]));
    has_every_field("zone", &z["result"][0], &zones["result"][0], &[]);
    let zone = z["result"][0]["id"].as_str().unwrap();
    let (_, r) = call(
        Method::POST,
        &format!("{base}/zones/{zone}/dns_records"),
        CLOUDFLARE_TOKEN,
        Some(&json!({"type": "A", "name": "unit", "content": "1.2.3.4", "ttl": 300})),
    )
    .await;
    has_every_field("record", &r["result"], &records["result"][0], &[]);
    sim.shutdown().await;
}
