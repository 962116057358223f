//! Fault injection, rate limits and counters, through the admin API as an operator or a test uses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{HEALTH_PORT, call, config, http, json, start, wait_answering};
use flotilla_cloudsim::defaults::{DIGITALOCEAN_TOKEN, LINODE_TOKEN, VULTR_TOKEN};
use flotilla_cloudsim::{Fault, FaultKind, Provider, RateRule, Token};
use reqwest::Method;
use serde_json::{Value, json};

fn linode_body(label: &str, region: &str) -> Value {
    json!({"region": region, "type": "g6-nanode-1", "label": label})
}

async fn admin(method: Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = http().request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    json(req.send().await.unwrap()).await
}

#[tokio::test]
async fn the_next_n_creates_fail_then_creates_work_again() {
    let sim = start(config()).await;
    let base = sim.linode_url().to_owned();
    let (status, _) = admin(
        Method::POST,
        format!("{}/faults", sim.admin_url()),
        Some(json!({"provider": "linode", "kind": "fail_creates", "count": 2})),
    )
    .await;
    assert_eq!(status, 200);
    for i in 0..2 {
        let (status, v) = call(
            Method::POST,
            &format!("{base}/linode/instances"),
            LINODE_TOKEN,
            Some(&linode_body(&format!("a{i}x"), "gb-lon")),
        )
        .await;
        assert_eq!(status, 500, "{v}");
        assert!(v["errors"][0]["reason"].is_string(), "Linode's error shape: {v}");
    }
    let (status, _) = call(
        Method::POST,
        &format!("{base}/linode/instances"),
        LINODE_TOKEN,
        Some(&linode_body("a2x", "gb-lon")),
    )
    .await;
    assert_eq!(status, 200);
    let (_, listed) = call(
        Method::GET,
        &format!("{base}/linode/instances"),
        LINODE_TOKEN,
        None,
    )
    .await;
    assert_eq!(listed["results"], 1, "failed creates created nothing");
    let (_, counters) = admin(Method::GET, format!("{}/counters", sim.admin_url()), None).await;
    assert_eq!(
        counters["providers"]["linode"]["credentials"]["default"]["failed_creates"],
        2
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rate_limit_storm_answers_429_with_retry_after_and_is_counted() {
    let sim = start(config()).await;
    let url = format!("{}/droplets", sim.digitalocean_url());
    sim.add_fault(&Fault {
        provider: Provider::DigitalOcean,
        kind: FaultKind::RateLimitStorm {
            retry_after_secs: 7,
            duration_secs: None,
            count: Some(3),
        },
    });
    for _ in 0..3 {
        let r = http()
            .get(&url)
            .bearer_auth(DIGITALOCEAN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        let (_, body) = json(r).await;
        assert_eq!(body["id"], "too_many_requests");
    }
    let (status, _) = call(Method::GET, &url, DIGITALOCEAN_TOKEN, None).await;
    assert_eq!(status, 200, "the storm ends after its count");
    let counters = sim.counters().provider(Provider::DigitalOcean);
    assert_eq!(counters.rate_limited(), 3);
    assert_eq!(counters.requests(), 4);
    // Other providers are untouched.
    assert_eq!(
        call(
            Method::GET,
            &format!("{}/instances", sim.vultr_url()),
            VULTR_TOKEN,
            None
        )
        .await
        .0,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limits_are_enforced_per_token() {
    let mut cfg = config();
    cfg.rate_limits.get_mut(&Provider::Vultr).unwrap().general = vec![RateRule::per_secs(3, 60)];
    cfg.credentials
        .vultr
        .push(Token::new("second", "second-vultr-token"));
    let sim = start(cfg).await;
    let url = format!("{}/instances", sim.vultr_url());
    for _ in 0..3 {
        assert_eq!(call(Method::GET, &url, VULTR_TOKEN, None).await.0, 200);
    }
    let r = http().get(&url).bearer_auth(VULTR_TOKEN).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let (_, body) = json(r).await;
    assert_eq!(body["status"], 429, "Vultr's error shape: {body}");
    assert_eq!(
        call(Method::GET, &url, "second-vultr-token", None).await.0,
        200,
        "another token has its own budget"
    );
    let (_, counters) = admin(Method::GET, format!("{}/counters", sim.admin_url()), None).await;
    let vultr = &counters["providers"]["vultr"]["credentials"];
    assert_eq!(vultr["default"]["requests"], 4);
    assert_eq!(vultr["default"]["rate_limited"], 1);
    assert_eq!(vultr["second"]["requests"], 1);
    assert!(
        !counters.to_string().contains("second-vultr-token"),
        "tokens never show"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn linode_and_digitalocean_send_rate_limit_headers() {
    let sim = start(config()).await;
    let r = http()
        .get(format!("{}/linode/instances", sim.linode_url()))
        .bearer_auth(LINODE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-ratelimit-limit"], "1600");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "1599");
    let r = http()
        .get(format!("{}/droplets", sim.digitalocean_url()))
        .bearer_auth(DIGITALOCEAN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["ratelimit-limit"], "250");
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_and_server_error_bursts() {
    let sim = start(config()).await;
    let url = format!("{}/linode/instances", sim.linode_url());
    admin(
        Method::POST,
        format!("{}/faults", sim.admin_url()),
        Some(json!([
            {"provider": "linode", "kind": "latency", "millis": 300},
            {"provider": "linode", "kind": "server_errors", "count": 2, "status": 502},
        ])),
    )
    .await;
    let started = Instant::now();
    let (status, body) = call(Method::GET, &url, LINODE_TOKEN, None).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 502);
    assert!(body["errors"][0]["reason"].is_string());
    assert_eq!(call(Method::GET, &url, LINODE_TOKEN, None).await.0, 502);
    assert_eq!(call(Method::GET, &url, LINODE_TOKEN, None).await.0, 200);
    let (status, _) = admin(
        Method::DELETE,
        format!("{}/faults?provider=linode", sim.admin_url()),
        None,
    )
    .await;
    assert_eq!(status, 204);
    // Cleared: answered again (no wall-clock bound here, which a loaded machine could break).
    assert_eq!(call(Method::GET, &url, LINODE_TOKEN, None).await.0, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unhealthy_machine_stops_answering_and_recovers() {
    let sim = start(config()).await;
    let (status, m) = call(
        Method::POST,
        &format!("{}/linode/instances", sim.linode_url()),
        LINODE_TOKEN,
        Some(&linode_body("sick-1", "nl-ams")),
    )
    .await;
    assert_eq!(status, 200, "{m}");
    let id = m["id"].to_string();
    let health = format!("http://{}:{HEALTH_PORT}/health", m["ipv4"][0].as_str().unwrap());
    wait_answering(&health, true).await;
    admin(
        Method::POST,
        format!("{}/faults", sim.admin_url()),
        Some(json!({"provider": "linode", "kind": "unhealthy", "machine_id": id})),
    )
    .await;
    wait_answering(&health, false).await;
    let (_, machines) = admin(Method::GET, format!("{}/machines", sim.admin_url()), None).await;
    assert_eq!(machines[0]["answering"], false);
    assert_eq!(machines[0]["status"], "running", "the API still says running");
    admin(Method::DELETE, format!("{}/faults", sim.admin_url()), None).await;
    wait_answering(&health, true).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_region_down_answers_503_and_its_machines_go_dark() {
    let sim = start(config()).await;
    let base = sim.linode_url().to_owned();
    let (_, lon) = call(
        Method::POST,
        &format!("{base}/linode/instances"),
        LINODE_TOKEN,
        Some(&linode_body("lon-1", "gb-lon")),
    )
    .await;
    let (_, ams) = call(
        Method::POST,
        &format!("{base}/linode/instances"),
        LINODE_TOKEN,
        Some(&linode_body("ams-1", "nl-ams")),
    )
    .await;
    let lon_health = format!("http://{}:{HEALTH_PORT}/health", lon["ipv4"][0].as_str().unwrap());
    let ams_health = format!("http://{}:{HEALTH_PORT}/health", ams["ipv4"][0].as_str().unwrap());
    wait_answering(&lon_health, true).await;
    wait_answering(&ams_health, true).await;
    sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::RegionDown {
            region: "gb-lon".into(),
        },
    });
    wait_answering(&lon_health, false).await;
    assert!(common::answers(&ams_health).await, "other regions keep answering");
    let (status, body) = call(
        Method::POST,
        &format!("{base}/linode/instances"),
        LINODE_TOKEN,
        Some(&linode_body("lon-2", "gb-lon")),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = call(
        Method::GET,
        &format!("{base}/linode/instances/{}", lon["id"]),
        LINODE_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(
        call(
            Method::GET,
            &format!("{base}/linode/instances/{}", ams["id"]),
            LINODE_TOKEN,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(sim.counters().provider(Provider::Linode).region_down, 2);
    sim.clear_faults(None);
    wait_answering(&lon_health, true).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn start_up_faults_come_from_the_config() {
    let mut cfg = config();
    cfg.faults.push(Fault {
        provider: Provider::Vultr,
        kind: FaultKind::FailCreates { count: 1 },
    });
    let sim = start(cfg).await;
    let (status, body) = call(
        Method::POST,
        &format!("{}/instances", sim.vultr_url()),
        VULTR_TOKEN,
        Some(&json!({"region": "ams", "plan": "vc2-1c-1gb", "os_id": 2136})),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(body["status"], 500);
    let (_, faults) = admin(Method::GET, format!("{}/faults", sim.admin_url()), None).await;
    assert_eq!(faults["vultr"]["fail_creates"], 0);
    let (status, v) = admin(
        Method::POST,
        format!("{}/faults", sim.admin_url()),
        Some(json!({"provider": "nowhere"})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_machine_that_never_boots_stays_provisioning_and_silent() {
    let sim = start(config()).await;
    let (status, _) = admin(
        Method::POST,
        format!("{}/faults", sim.admin_url()),
        Some(json!({"provider": "linode", "kind": "never_boots", "count": 1})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, faults) = admin(Method::GET, format!("{}/faults", sim.admin_url()), None).await;
    assert_eq!(faults["linode"]["never_boots"], 1, "{faults}");
    let mut health = Vec::new();
    for label in ["stuck-1", "fine-1"] {
        let (status, m) = call(
            Method::POST,
            &format!("{}/linode/instances", sim.linode_url()),
            LINODE_TOKEN,
            Some(&linode_body(label, "gb-lon")),
        )
        .await;
        assert_eq!(status, 200, "{m}");
        health.push((
            m["id"].to_string(),
            format!("http://{}:{HEALTH_PORT}/health", m["ipv4"][0].as_str().unwrap()),
        ));
    }
    // The second one boots (well past the 300 ms boot delay); the first never does.
    wait_answering(&health[1].1, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!common::answers(&health[0].1).await, "the stuck machine answers");
    let (_, stuck) = call(
        Method::GET,
        &format!("{}/linode/instances/{}", sim.linode_url(), health[0].0),
        LINODE_TOKEN,
        None,
    )
    .await;
    assert_eq!(stuck["status"], "provisioning", "{stuck}");
    let (_, fine) = call(
        Method::GET,
        &format!("{}/linode/instances/{}", sim.linode_url(), health[1].0),
        LINODE_TOKEN,
        None,
    )
    .await;
    assert_eq!(fine["status"], "running", "{fine}");
    let (_, faults) = admin(Method::GET, format!("{}/faults", sim.admin_url()), None).await;
    assert_eq!(faults["linode"]["never_boots"], 0, "{faults}");
    // Deleting it works as for any machine.
    let (status, _) = call(
        Method::DELETE,
        &format!("{}/linode/instances/{}", sim.linode_url(), health[0].0),
        LINODE_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200);
    sim.shutdown().await;
}
