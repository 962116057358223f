//! Shared by the integration tests: Vultr's OpenAPI examples (loaded at run time from
//! `shared/provider-specs/vultr/openapi.json`), an adapter pointed at a wiremock server, and the check that
//! every request the adapter sent conforms to Vultr's OpenAPI document.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use flotilla_cloud::http::{RateLimit, RetryPolicy};
use flotilla_cloud::{MachineRequest, Marks};
use flotilla_spec::Role;
use flotilla_vultr::{VultrCloud, VultrConfig};
use serde_json::{Value, json};
use wiremock::MockServer;

pub const TOKEN: &str = "VULTR-test-key-do-not-log";
pub const DEPLOYMENT: &str = "www-codetesters-uk";

/// The adapter against `server`, with fast retries.
pub fn cloud(server: &MockServer) -> VultrCloud {
    VultrCloud::with_retry_policy(
        VultrConfig {
            base_url: Some(format!("{}/v2", server.uri())),
            token: TOKEN.into(),
            rate: Some(RateLimit::per_second(1000)),
        },
        RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(20),
        },
    )
    .unwrap()
}

/// Vultr's OpenAPI document as the conformance checker reads it, loaded once per test binary.
fn document() -> &'static flotilla_conformance::Spec {
    static DOCUMENT: OnceLock<flotilla_conformance::Spec> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let specs = flotilla_conformance::provider_specs(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("shared/provider-specs above the repository");
        flotilla_conformance::Spec::vultr(&specs).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Every request `server` received, judged against Vultr's OpenAPI document (method and path, path
/// and query parameters, JSON body): panics listing each rule broken, with the request that broke it.
pub async fn assert_conforms(server: &MockServer) {
    let requests = server.received_requests().await.expect("request recording is on");
    let problems: Vec<String> = requests
        .iter()
        .flat_map(|r| {
            let query: Vec<(String, String)> = r.url.query_pairs().into_owned().collect();
            document().report(r.method.as_str(), r.url.path(), &query, &r.body)
        })
        .collect();
    assert!(
        problems.is_empty(),
        "requests breaking Vultr's OpenAPI document:\n{}",
        problems.join("\n")
    );
}

pub fn marks(region: &str, role: Role, id: &str) -> Marks {
    Marks {
        deployment: DEPLOYMENT.into(),
        region: region.into(),
        role: Some(role),
        resource_id: id.into(),
    }
}

pub fn machine_request(name: &str) -> MachineRequest {
    MachineRequest {
        name: name.into(),
        region: "ewr".into(),
        size: "vc2-1c-1gb".into(),
        image: "215".into(),
        vpc_id: Some("cb676a46-66fd-4dfb-b839-443f2e6c0b60".into()),
        subnet_id: None,
        firewall_id: Some("1b2c3d4e-0000-4000-8000-000000000001".into()),
        ssh_keys: vec!["3b8066a7-b438-455a-9688-44afc9a3597f".into()],
        user_data: Some("Base64 Example Data".into()),
        marks: marks("gb-lon", Role::Webserver, "01a20b6d-ec94"),
    }
}

/// Vultr's error body.
pub fn error(status: u16, message: &str) -> Value {
    json!({"error": message, "status": status})
}

/// The directory holding `shared/provider-specs`, walking up from this crate.
pub fn provider_specs() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let candidate = dir.join("shared").join("provider-specs");
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

/// Vultr's OpenAPI document.
pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load() -> Self {
        let file = provider_specs().join("vultr").join("openapi.json");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        Self {
            doc: serde_json::from_str(&text).unwrap(),
        }
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "no {method} {path} in the spec");
        op
    }

    /// The (first) example answer of `method path` for `status`.
    pub fn response(&self, path: &str, method: &str, status: &str) -> Value {
        let media = &self.operation(path, method)["responses"][status]["content"]["application/json"];
        first_example(media).unwrap_or_else(|| panic!("no example answer for {method} {path} {status}"))
    }

    /// The (first) example request body of `method path`.
    pub fn request(&self, path: &str, method: &str) -> Value {
        let media = &self.operation(path, method)["requestBody"]["content"]["application/json"];
        first_example(media).unwrap_or_else(|| panic!("no example request for {method} {path}"))
    }
}

fn first_example(media: &Value) -> Option<Value> {
    if let Some(example) = media.get("example") {
        return Some(example.clone());
    }
    let examples = media.get("examples")?.as_object()?;
    Some(examples.values().next()?.get("value")?.clone())
}
