//! Shared by the integration tests: DigitalOcean's OpenAPI examples (loaded at run time from
//! `shared/provider-specs`, `$ref`s followed), an adapter pointed at a wiremock server, and the check that
//! every request the adapter sent conforms to DigitalOcean's OpenAPI document.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use flotilla_cloud::http::{RateLimit, RetryPolicy};
use flotilla_cloud::{MachineRequest, Marks};
use flotilla_digitalocean::{DigitalOceanCloud, DigitalOceanConfig};
use flotilla_spec::Role;
use serde_json::Value;
use wiremock::MockServer;

pub const TOKEN: &str = "dop_v1_test-token-do-not-log";
pub const DEPLOYMENT: &str = "www-codetesters-uk";

/// The adapter against `server`, with fast retries.
pub fn cloud(server: &MockServer) -> DigitalOceanCloud {
    DigitalOceanCloud::with_retry_policy(
        DigitalOceanConfig {
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

/// DigitalOcean's OpenAPI document as the conformance checker reads it, loaded once per test binary.
fn document() -> &'static flotilla_conformance::Spec {
    static DOCUMENT: OnceLock<flotilla_conformance::Spec> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let specs = flotilla_conformance::provider_specs(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("shared/provider-specs above the repository");
        flotilla_conformance::Spec::digitalocean(&specs).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Every request `server` received, judged against DigitalOcean's OpenAPI document (method and path, path
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
        "requests breaking DigitalOcean's OpenAPI document:\n{}",
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
        region: "nyc3".into(),
        size: "s-1vcpu-1gb".into(),
        image: "ubuntu-20-04-x64".into(),
        vpc_id: Some("760e09ef-dc84-11e8-981e-3cfdfeaae000".into()),
        subnet_id: None,
        firewall_id: None,
        ssh_keys: vec![
            "289794".into(),
            "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45".into(),
        ],
        user_data: Some("#cloud-config\nruncmd:\n  - touch /test.txt\n".into()),
        marks: marks("gb-lon", Role::Webserver, "01a20b6d-ec94"),
    }
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

/// DigitalOcean's OpenAPI specification, one YAML file per operation, joined by `$ref`s.
pub struct Spec {
    root: PathBuf,
}

impl Spec {
    pub fn load() -> Self {
        Self {
            root: provider_specs().join("digitalocean").join("specification"),
        }
    }

    fn yaml(&self, file: &Path) -> Value {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    }

    /// `value`, with a top-level `$ref` (relative to `file`) followed until there is none; returns the value
    /// and the file it came from.
    fn resolve(&self, file: &Path, value: &Value) -> (Value, PathBuf) {
        let (mut value, mut file) = (value.clone(), file.to_path_buf());
        while let Some(reference) = value.get("$ref").and_then(Value::as_str).map(str::to_owned) {
            let (path, pointer) = reference.split_once('#').unwrap_or((reference.as_str(), ""));
            if !path.is_empty() {
                file = file.parent().unwrap().join(path);
            }
            let doc = self.yaml(&file);
            value = if pointer.is_empty() {
                doc
            } else {
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("{}#{pointer} not found", file.display()))
                    .clone()
            };
        }
        (value, file)
    }

    /// The example answer of operation `operation` (a path under `resources/`) for `status`: the inline
    /// `example`, the `examples` entry called `name` (or the first), or one built from the schema's
    /// property examples when the spec gives none.
    pub fn response(&self, operation: &str, status: &str, name: Option<&str>) -> Value {
        let file = self.root.join("resources").join(operation);
        let op = self.yaml(&file);
        let (response, file) = self.resolve(&file, &op["responses"][status]);
        let media = &response["content"]["application/json"];
        if let Some(example) = media.get("example") {
            return self.resolve(&file, example).0;
        }
        if let Some(examples) = media.get("examples").and_then(Value::as_object) {
            let entry = match name {
                Some(n) => examples
                    .get(n)
                    .unwrap_or_else(|| panic!("{operation}: no example {n}")),
                None => examples.values().next().unwrap(),
            };
            let (example, _) = self.resolve(&file, entry);
            return example["value"].clone();
        }
        self.example_from_schema(&file, &media["schema"])
            .unwrap_or_else(|| panic!("{operation} {status}: no example"))
    }

    /// The example body of a shared error answer (`not_found`, `too_many_requests` …).
    pub fn error(&self, name: &str) -> Value {
        let file = self
            .root
            .join("shared")
            .join("responses")
            .join(format!("{name}.yml"));
        let doc = self.yaml(&file);
        doc["content"]["application/json"]["example"].clone()
    }

    /// An object built from the `example`s of a schema's properties, through `$ref`s and `allOf`s.
    fn example_from_schema(&self, file: &Path, schema: &Value) -> Option<Value> {
        let (schema, file) = self.resolve(file, schema);
        if let Some(example) = schema.get("example") {
            return Some(example.clone());
        }
        let mut out = serde_json::Map::new();
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(Value::Object(m)) = self.example_from_schema(&file, part) {
                out.extend(m);
            }
        }
        for (key, prop) in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(v) = self.example_from_schema(&file, prop) {
                out.insert(key.clone(), v);
            }
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }
}
