//! Helpers every simulator test shares.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flotilla_cloudsim::{RunningSim, SimConfig, Simulator};
use serde_json::Value;

/// The health port the tests' machines answer on.
pub const HEALTH_PORT: u16 = 18_080;

/// A config for tests: quick boots, a fixed health port.
pub fn config() -> SimConfig {
    SimConfig {
        boot_delay: Duration::from_millis(300),
        database_delay: Duration::from_millis(300),
        health_port: HEALTH_PORT,
        ..SimConfig::default()
    }
}

/// Starts a simulator and prints how long that took.
pub async fn start(config: SimConfig) -> RunningSim {
    let sim = Simulator::start(config).await.expect("simulator starts");
    println!("simulator started in {:?}", sim.startup_time());
    sim
}

/// An HTTP client that never reuses connections (so closed health listeners show at once).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A JSON answer: status and body.
pub async fn json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, body)
}

/// Whether `url` answers 200 right now.
pub async fn answers(url: &str) -> bool {
    match http().get(url).timeout(Duration::from_secs(2)).send().await {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

/// Waits (up to 5 s) until `url` answers 200 (`true`) or stops answering (`false`).
pub async fn wait_answering(url: &str, want: bool) {
    for _ in 0..100 {
        if answers(url).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{url} never {}",
        if want { "answered" } else { "stopped answering" }
    );
}

/// The same config without rate limits (for tests that create many things quickly).
pub fn unlimited() -> SimConfig {
    let mut c = config();
    for limits in c.rate_limits.values_mut() {
        *limits = flotilla_cloudsim::RateLimits::default();
    }
    c
}

/// An `EXO2-HMAC-SHA256` Authorization header, computed the way Exoscale's clients do: message =
/// "<METHOD> <path>", body, the values of single-valued query parameters sorted by name, "", expires.
pub fn exoscale_auth(key: &str, secret: &str, method: &str, url: &str, body: &str, expires: i64) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let url = reqwest::Url::parse(url).unwrap();
    let mut params: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (k, v) in url.query_pairs() {
        params.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let single: Vec<(&String, &String)> = params
        .iter()
        .filter(|(_, v)| v.len() == 1)
        .map(|(k, v)| (k, &v[0]))
        .collect();
    let names: Vec<&str> = single.iter().map(|(k, _)| k.as_str()).collect();
    let values: String = single.iter().map(|(_, v)| v.as_str()).collect();
    let message = format!("{method} {}\n{body}\n{values}\n\n{expires}", url.path());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut header = format!("EXO2-HMAC-SHA256 credential={key}");
    if !names.is_empty() {
        header.push_str(&format!(",signed-query-args={}", names.join(";")));
    }
    header.push_str(&format!(",expires={expires},signature={signature}"));
    header
}

/// Sends a signed Exoscale request with the default key.
pub async fn exo(method: reqwest::Method, url: &str, body: Option<&Value>) -> (u16, Value) {
    use flotilla_cloudsim::defaults::{EXOSCALE_KEY, EXOSCALE_SECRET};
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let expires = chrono::Utc::now().timestamp() + 600;
    let auth = exoscale_auth(
        EXOSCALE_KEY,
        EXOSCALE_SECRET,
        method.as_str(),
        url,
        &text,
        expires,
    );
    let mut req = http().request(method, url).header("Authorization", auth);
    if body.is_some() {
        req = req.header("Content-Type", "application/json").body(text);
    }
    json(req.send().await.unwrap()).await
}

/// Polls an Exoscale operation until it is no longer pending; its final JSON.
pub async fn exo_wait(zone_url: &str, op: &Value) -> Value {
    let id = op["id"].as_str().unwrap();
    for _ in 0..100 {
        let (status, v) = exo(reqwest::Method::GET, &format!("{zone_url}/operation/{id}"), None).await;
        assert_eq!(status, 200, "{v}");
        if v["state"] != "pending" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("operation {id} stayed pending");
}

/// A bearer-token request.
pub async fn call(method: reqwest::Method, url: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = http().request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    json(req.send().await.unwrap()).await
}
