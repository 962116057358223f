//! The Exoscale API as a client sees it: signed requests, zonal endpoints, operations, instances,
//! security groups, private networks, DBaaS ip-filter, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HEALTH_PORT, config, exo, exo_wait, exoscale_auth, http, json, start, wait_answering};
use flotilla_cloudsim::defaults::{EXOSCALE_KEY, EXOSCALE_SECRET};
use flotilla_cloudsim::{Fault, FaultKind, Provider};
use reqwest::Method;
use serde_json::{Value, json};

async fn catalogue(zone: &str) -> (Value, Value) {
    let (_, types) = exo(Method::GET, &format!("{zone}/instance-type"), None).await;
    let tiny = types["instance-types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["family"] == "standard" && t["size"] == "tiny")
        .unwrap()["id"]
        .clone();
    let (_, templates) = exo(Method::GET, &format!("{zone}/template?visibility=public"), None).await;
    let debian = templates["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Linux Debian 12 (Bookworm) 64-bit")
        .unwrap()["id"]
        .clone();
    (tiny, debian)
}

fn instance(name: &str, tiny: &Value, template: &Value) -> Value {
    json!({"name": name, "instance-type": {"id": tiny}, "template": {"id": template}, "disk-size": 10,
        "labels": {"flotilla": "true", "fl-dep": "www"}})
}

#[tokio::test]
async fn instances_are_created_through_operations_and_boot() {
    let sim = start(config()).await;
    let zone = sim.exoscale_zone_url("ch-gva-2");
    let (tiny, debian) = catalogue(&zone).await;
    let (status, op) = exo(
        Method::POST,
        &format!("{zone}/instance"),
        Some(&instance("ws-1", &tiny, &debian)),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["state"], "pending");
    assert_eq!(op["reference"]["command"], "create-instance");
    let id = op["reference"]["id"].as_str().unwrap().to_owned();
    let (_, early) = exo(Method::GET, &format!("{zone}/instance/{id}"), None).await;
    assert_eq!(early["state"], "starting");
    let done = exo_wait(&zone, &op).await;
    assert_eq!(done["state"], "success");
    let (_, m) = exo(Method::GET, &format!("{zone}/instance/{id}"), None).await;
    assert_eq!(m["state"], "running");
    assert_eq!(m["instance-type"]["size"], "tiny");
    assert_eq!(m["labels"]["fl-dep"], "www");
    let ip = m["public-ip"].as_str().unwrap().to_owned();
    wait_answering(&format!("http://{ip}:{HEALTH_PORT}/health"), true).await;

    // Labels filter; other zones do not see it; the bare /v2 is the default zone (ch-gva-2).
    let (_, list) = exo(Method::GET, &format!("{zone}/instance?labels=fl-dep%3Dwww"), None).await;
    assert_eq!(list["instances"].as_array().unwrap().len(), 1);
    let (_, list) = exo(
        Method::GET,
        &format!("{zone}/instance?labels=fl-dep%3Dother"),
        None,
    )
    .await;
    assert_eq!(list["instances"].as_array().unwrap().len(), 0);
    let (_, other) = exo(
        Method::GET,
        &format!("{}/instance", sim.exoscale_zone_url("de-fra-1")),
        None,
    )
    .await;
    assert_eq!(other["instances"].as_array().unwrap().len(), 0);
    let (status, _) = exo(
        Method::GET,
        &format!("{}/instance/{id}", sim.exoscale_url()),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (status, op) = exo(Method::DELETE, &format!("{zone}/instance/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(exo_wait(&zone, &op).await["state"], "success");
    let (status, body) = exo(Method::GET, &format!("{zone}/instance/{id}"), None).await;
    assert_eq!(status, 404);
    assert!(body["message"].is_string());
    wait_answering(&format!("http://{ip}:{HEALTH_PORT}/health"), false).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn signatures_are_verified() {
    let sim = start(config()).await;
    let url = format!(
        "{}/instance?labels=fl-dep%3Dwww",
        sim.exoscale_zone_url("ch-gva-2")
    );
    let now = chrono::Utc::now().timestamp();
    let send = |auth: String| {
        let url = url.clone();
        async move {
            json(
                http()
                    .get(&url)
                    .header("Authorization", auth)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    assert_eq!(
        send(exoscale_auth(
            EXOSCALE_KEY,
            EXOSCALE_SECRET,
            "GET",
            &url,
            "",
            now + 600
        ))
        .await
        .0,
        200
    );
    let (status, body) = send(exoscale_auth(
        EXOSCALE_KEY,
        "wrong-secret",
        "GET",
        &url,
        "",
        now + 600,
    ))
    .await;
    assert_eq!(status, 403);
    assert_eq!(body, json!({"message": "Invalid request signature"}));
    let (status, body) = send(exoscale_auth(
        EXOSCALE_KEY,
        EXOSCALE_SECRET,
        "GET",
        &url,
        "",
        now - 5,
    ))
    .await;
    assert_eq!(status, 403, "expired: {body}");
    let (status, _) = send(exoscale_auth(
        "EXOunknown",
        EXOSCALE_SECRET,
        "GET",
        &url,
        "",
        now + 600,
    ))
    .await;
    assert_eq!(status, 403);
    // Signed for another query.
    let other = url.replace("www", "other");
    let (status, _) = send(exoscale_auth(
        EXOSCALE_KEY,
        EXOSCALE_SECRET,
        "GET",
        &other,
        "",
        now + 600,
    ))
    .await;
    assert_eq!(status, 403);
    let (status, _) = json(http().get(&url).bearer_auth("token").send().await.unwrap()).await;
    assert_eq!(status, 403);
    // A tampered body.
    let post = format!("{}/security-group", sim.exoscale_zone_url("ch-gva-2"));
    let auth = exoscale_auth(
        EXOSCALE_KEY,
        EXOSCALE_SECRET,
        "POST",
        &post,
        r#"{"name":"a"}"#,
        now + 600,
    );
    let r = http()
        .post(&post)
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .body(r#"{"name":"b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(sim.counters().provider(Provider::Exoscale).auth_failures, 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_types_templates_and_zones_are_refused() {
    let sim = start(config()).await;
    let zone = sim.exoscale_zone_url("ch-gva-2");
    let (tiny, debian) = catalogue(&zone).await;
    let bogus = json!("00000000-0000-0000-0000-000000000000");
    let (status, v) = exo(
        Method::POST,
        &format!("{zone}/instance"),
        Some(&instance("x", &bogus, &debian)),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("instance-type"));
    let (status, _) = exo(
        Method::POST,
        &format!("{zone}/instance"),
        Some(&instance("x", &tiny, &bogus)),
    )
    .await;
    assert_eq!(status, 400);
    let mut small_disk = instance("x", &tiny, &debian);
    small_disk["disk-size"] = json!(5);
    assert_eq!(
        exo(Method::POST, &format!("{zone}/instance"), Some(&small_disk))
            .await
            .0,
        400
    );
    let (status, _) = exo(
        Method::GET,
        &format!("{}/instance", sim.exoscale_zone_url("xx-nowhere-1")),
        None,
    )
    .await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_zone_down_answers_503_and_its_machines_go_dark() {
    let sim = start(config()).await;
    let gva = sim.exoscale_zone_url("ch-gva-2");
    let fra = sim.exoscale_zone_url("de-fra-1");
    let (tiny, debian) = catalogue(&gva).await;
    let (_, op) = exo(
        Method::POST,
        &format!("{gva}/instance"),
        Some(&instance("ws-1", &tiny, &debian)),
    )
    .await;
    let id = exo_wait(&gva, &op).await["reference"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, m) = exo(Method::GET, &format!("{gva}/instance/{id}"), None).await;
    let health = format!("http://{}:{HEALTH_PORT}/health", m["public-ip"].as_str().unwrap());
    wait_answering(&health, true).await;
    sim.add_fault(&Fault {
        provider: Provider::Exoscale,
        kind: FaultKind::RegionDown {
            region: "ch-gva-2".into(),
        },
    });
    let (status, body) = exo(Method::GET, &format!("{gva}/instance"), None).await;
    assert_eq!(status, 503);
    assert!(body["message"].is_string());
    assert_eq!(exo(Method::GET, &format!("{fra}/instance"), None).await.0, 200);
    wait_answering(&health, false).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn security_groups_private_networks_and_dbaas() {
    let sim = start(config()).await;
    let zone = sim.exoscale_zone_url("de-fra-1");
    let (tiny, debian) = catalogue(&zone).await;
    let (_, op) = exo(
        Method::POST,
        &format!("{zone}/instance"),
        Some(&instance("ws-1", &tiny, &debian)),
    )
    .await;
    let id = op["reference"]["id"].as_str().unwrap().to_owned();

    let (status, op) = exo(
        Method::POST,
        &format!("{zone}/security-group"),
        Some(&json!({"name": "fl-www-web"})),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let sg = exo_wait(&zone, &op).await["reference"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        exo(
            Method::POST,
            &format!("{zone}/security-group"),
            Some(&json!({"name": "fl-www-web"}))
        )
        .await
        .0,
        409
    );
    let rule = json!({"flow-direction": "ingress", "protocol": "tcp", "network": "0.0.0.0/0", "start-port": 80, "end-port": 80});
    let (status, _) = exo(
        Method::POST,
        &format!("{zone}/security-group/{sg}/rules"),
        Some(&rule),
    )
    .await;
    assert_eq!(status, 200);
    let (status, op) = exo(
        Method::PUT,
        &format!("{zone}/security-group/{sg}:attach"),
        Some(&json!({"instance": {"id": id}})),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let (_, group) = exo(Method::GET, &format!("{zone}/security-group/{sg}"), None).await;
    assert_eq!(group["rules"][0]["start-port"], 80);
    let (_, m) = exo(Method::GET, &format!("{zone}/instance/{id}"), None).await;
    assert_eq!(m["security-groups"][0]["id"], sg.as_str());

    let (status, op) = exo(
        Method::POST,
        &format!("{zone}/private-network"),
        Some(&json!({"name": "fl-www", "netmask": "255.255.255.0", "start-ip": "10.0.0.10", "end-ip": "10.0.0.200"})),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let pn = op["reference"]["id"].as_str().unwrap().to_owned();
    let (status, _) = exo(
        Method::PUT,
        &format!("{zone}/private-network/{pn}:attach"),
        Some(&json!({"instance": {"id": id}})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, net) = exo(Method::GET, &format!("{zone}/private-network/{pn}"), None).await;
    assert_eq!(net["leases"], json!([{"instance-id": id, "ip": "10.0.0.10"}]));
    let (_, m) = exo(Method::GET, &format!("{zone}/instance/{id}"), None).await;
    assert_eq!(m["private-networks"][0]["id"], pn.as_str());

    let (status, op) = exo(
        Method::POST,
        &format!("{zone}/dbaas-mysql/fl-db"),
        Some(&json!({"plan": "hobbyist-2", "ip-filter": ["10.0.0.0/24"]})),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let (status, op) = exo(
        Method::PUT,
        &format!("{zone}/dbaas-mysql/fl-db"),
        Some(&json!({"ip-filter": ["10.0.0.0/24", "203.0.113.4/32"]})),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let (_, db) = exo(Method::GET, &format!("{zone}/dbaas-mysql/fl-db"), None).await;
    assert_eq!(db["ip-filter"], json!(["10.0.0.0/24", "203.0.113.4/32"]));
    assert_eq!(
        exo(
            Method::PUT,
            &format!("{zone}/dbaas-mysql/fl-db"),
            Some(&json!({"ip-filter": ["x"]}))
        )
        .await
        .0,
        400
    );
    // A name is one service, whatever its type: the same name again is refused, and the service is deleted
    // through the type-independent path of the real API.
    assert_eq!(
        exo(
            Method::POST,
            &format!("{zone}/dbaas-postgres/fl-db"),
            Some(&json!({"plan": "hobbyist-2"}))
        )
        .await
        .0,
        409
    );
    let (status, op) = exo(Method::DELETE, &format!("{zone}/dbaas-service/fl-db"), None).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(exo_wait(&zone, &op).await["state"], "success");
    assert_eq!(
        exo(Method::GET, &format!("{zone}/dbaas-mysql/fl-db"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        exo(Method::DELETE, &format!("{zone}/dbaas-service/fl-db"), None)
            .await
            .0,
        404
    );
    // A group in use cannot be deleted.
    assert_eq!(
        exo(Method::DELETE, &format!("{zone}/security-group/{sg}"), None)
            .await
            .0,
        409
    );
    sim.shutdown().await;
}

/// Deleting a private network: refused with 409 while an instance is attached, an operation once it is
/// empty, 404 once it is gone.
#[tokio::test]
async fn private_networks_in_use_are_refused_and_gone_ones_are_not_found() {
    let sim = start(config()).await;
    let zone = sim.exoscale_zone_url("de-fra-1");
    let (tiny, debian) = catalogue(&zone).await;
    let (_, op) = exo(
        Method::POST,
        &format!("{zone}/instance"),
        Some(&instance("ws-del", &tiny, &debian)),
    )
    .await;
    let id = op["reference"]["id"].as_str().unwrap().to_owned();
    let (status, op) = exo(
        Method::POST,
        &format!("{zone}/private-network"),
        Some(&json!({"name": "fl-del", "netmask": "255.255.255.0", "start-ip": "10.0.9.10", "end-ip": "10.0.9.200"})),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let pn = exo_wait(&zone, &op).await["reference"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = exo(
        Method::PUT,
        &format!("{zone}/private-network/{pn}:attach"),
        Some(&json!({"instance": {"id": id}})),
    )
    .await;
    assert_eq!(status, 200);

    let (status, refused) = exo(Method::DELETE, &format!("{zone}/private-network/{pn}"), None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("attached"),
        "{refused}"
    );
    let (status, op) = exo(Method::DELETE, &format!("{zone}/instance/{id}"), None).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(exo_wait(&zone, &op).await["state"], "success");

    let (status, op) = exo(Method::DELETE, &format!("{zone}/private-network/{pn}"), None).await;
    assert_eq!(status, 200, "{op}");
    let done = exo_wait(&zone, &op).await;
    assert_eq!(done["state"], "success");
    assert_eq!(done["reference"]["id"], pn.as_str());
    assert_eq!(
        exo(Method::GET, &format!("{zone}/private-network/{pn}"), None)
            .await
            .0,
        404
    );
    let (status, body) = exo(Method::DELETE, &format!("{zone}/private-network/{pn}"), None).await;
    assert_eq!((status, body), (404, json!({"message": "Not Found"})));
    sim.shutdown().await;
}
