//! Shared by the integration tests: the recorded Linode traffic, an adapter pointed at a wiremock server.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_cloud::http::{RateLimit, RetryPolicy};
use flotilla_cloud::{MachineRequest, Marks};
use flotilla_linode::{LinodeCloud, LinodeConfig};
use serde::Deserialize;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The token every test adapter uses.
pub const TOKEN: &str = "test-token-do-not-leak";

/// A go-vcr cassette.
#[derive(Debug, Deserialize)]
pub struct Cassette {
    pub interactions: Vec<Interaction>,
}

/// One recorded request and its answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Interaction {
    pub request: RecordedRequest,
    pub response: RecordedResponse,
}

/// The request side.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedRequest {
    #[serde(default)]
    pub body: String,
    pub url: String,
    pub method: String,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, Vec<String>>>,
}

/// The answer side.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedResponse {
    #[serde(default)]
    pub body: String,
    pub code: u16,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, Vec<String>>>,
}

impl Interaction {
    /// The URL path, e.g. `/v4beta/linode/instances/1`.
    pub fn path(&self) -> String {
        let url = url_path(&self.request.url);
        url.split('?').next().unwrap_or_default().to_owned()
    }

    /// The path below the API version, e.g. `linode/instances/1`.
    pub fn api_path(&self) -> String {
        let p = self.path();
        let p = p.trim_start_matches('/');
        p.split_once('/')
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default()
    }

    /// The response body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.response.body).expect("recorded body is JSON")
    }

    /// The recorded `X-Filter` header, if any.
    pub fn x_filter(&self) -> Option<String> {
        self.request
            .headers
            .as_ref()
            .and_then(|h| h.get("X-Filter"))
            .and_then(|v| v.first().cloned())
    }

    /// Mounts this answer at its method and path on `server`, for one call.
    pub async fn mount_once(&self, server: &MockServer) {
        self.mock().up_to_n_times(1).mount(server).await;
    }

    /// Mounts this answer at its method and path on `server`.
    pub async fn mount(&self, server: &MockServer) {
        self.mock().mount(server).await;
    }

    fn mock(&self) -> Mock {
        Mock::given(method(self.request.method.as_str()))
            .and(path(self.path()))
            .respond_with(
                ResponseTemplate::new(self.response.code)
                    .insert_header("content-type", "application/json")
                    .set_body_string(self.response.body.clone()),
            )
    }
}

fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// `…/shared/provider-specs/linode/recordings`, found by walking up from this crate.
pub fn recordings_dir() -> PathBuf {
    let mut dir: &Path = Path::new(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("shared").join("provider-specs");
        if candidate.is_dir() {
            return candidate.join("linode").join("recordings");
        }
        dir = dir
            .parent()
            .expect("no ancestor directory holds shared/provider-specs");
    }
}

/// Every cassette, by file name, sorted.
pub fn all_cassettes() -> Vec<(String, Cassette)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(recordings_dir())
        .expect("recordings directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no recordings found");
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let cassette: Cassette = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, cassette)
        })
        .collect()
}

/// One cassette by file name.
pub fn cassette(name: &str) -> Cassette {
    let text = std::fs::read_to_string(recordings_dir().join(name)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The first interaction of `name` with `method` whose path (below the version) is `api_path`.
pub fn interaction(name: &str, method: &str, api_path: &str) -> Interaction {
    cassette(name)
        .interactions
        .into_iter()
        .find(|i| i.request.method == method && i.api_path() == api_path)
        .unwrap_or_else(|| panic!("{name}: no {method} {api_path}"))
}

/// An adapter at `server`, `/v4beta` like the recordings, with quick retries.
pub fn cloud(server: &MockServer) -> LinodeCloud {
    cloud_with_attempts(server, 3)
}

/// An adapter at `server` that tries each call `attempts` times.
pub fn cloud_with_attempts(server: &MockServer, attempts: u32) -> LinodeCloud {
    LinodeCloud::new(LinodeConfig {
        base_url: Some(format!("{}/v4beta", server.uri())),
        token: TOKEN.into(),
        rate: Some(RateLimit::per_second(1000)),
        create_rate: Some(RateLimit::per_second(1000)),
        retry: Some(RetryPolicy {
            max_attempts: attempts,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_millis(50),
        }),
    })
    .unwrap()
}

/// Our marks for a webserver of deployment `d`.
pub fn marks(deployment: &str) -> Marks {
    Marks {
        deployment: deployment.into(),
        region: "gb-lon".into(),
        role: Some(flotilla_spec::Role::Webserver),
        resource_id: "01a20b6d-ec94".into(),
    }
}

/// A machine request with nothing optional set.
pub fn machine_request() -> MachineRequest {
    MachineRequest {
        name: "ws-gb-lon-1".into(),
        region: "gb-lon".into(),
        size: "g6-nanode-1".into(),
        image: "linode/debian12".into(),
        vpc_id: None,
        subnet_id: None,
        firewall_id: None,
        ssh_keys: Vec::new(),
        user_data: None,
        marks: marks("www-codetesters-uk"),
    }
}

/// Every body recorded for `method` at a path of the shape of `api_path` (below the version; a numeric
/// segment matches any number), parsed: the requests', and the successful answers' (the resource as Linode
/// holds it: a field it answers with is one it takes, e.g. `ttl_sec` of a record, `tags` of an instance).
pub fn recorded_bodies(method: &str, api_path: &str) -> Vec<serde_json::Value> {
    fn shape(path: &str) -> Vec<String> {
        path.split('/')
            .map(|s| {
                if s.parse::<u64>().is_ok() {
                    "#".to_owned()
                } else {
                    s.to_owned()
                }
            })
            .collect()
    }
    let want = shape(api_path);
    all_cassettes()
        .into_iter()
        .flat_map(|(_, c)| c.interactions)
        .filter(|i| i.request.method == method && shape(&i.api_path()) == want)
        .flat_map(|i| {
            let answer = (i.response.code == 200).then(|| serde_json::from_str(&i.response.body).ok());
            [serde_json::from_str(&i.request.body).ok(), answer.flatten()]
        })
        .flatten()
        .collect()
}

/// The items of every successful recorded list answer of `GET api_path` (`data[]`): the resources as
/// Linode holds them, evidence of the fields they take.
pub fn recorded_items(api_path: &str) -> Vec<serde_json::Value> {
    all_cassettes()
        .into_iter()
        .flat_map(|(_, c)| c.interactions)
        .filter(|i| i.request.method == "GET" && i.api_path() == api_path && i.response.code == 200)
        .filter_map(|i| serde_json::from_str::<serde_json::Value>(&i.response.body).ok())
        .flat_map(|v| v["data"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Compares a body the adapter sent with the recorded ones, field by field: every field it sends appears in
/// some recorded request (or answer) of the same operation, with the same JSON type (a field recorded only as `null`
/// says nothing of its type). Panics naming each field that does not.
pub fn assert_fields_recorded(sent: &serde_json::Value, recorded: &[serde_json::Value], what: &str) {
    use serde_json::Value;
    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
    fn walk(sent: &Value, recorded: &[&Value], at: &str, problems: &mut Vec<String>) {
        let known: Vec<&Value> = recorded.iter().copied().filter(|v| !v.is_null()).collect();
        if known.is_empty() || sent.is_null() {
            return;
        }
        if !known.iter().any(|v| kind(v) == kind(sent)) {
            problems.push(format!(
                "{at}: sent as {}, recorded as {}",
                kind(sent),
                kind(known[0])
            ));
            return;
        }
        match sent {
            Value::Object(fields) => {
                for (k, v) in fields {
                    let children: Vec<&Value> = known.iter().filter_map(|r| r.get(k)).collect();
                    if children.is_empty() {
                        problems.push(format!("{at}/{k}: not in any recorded request"));
                    } else {
                        walk(v, &children, &format!("{at}/{k}"), problems);
                    }
                }
            }
            Value::Array(items) => {
                let children: Vec<&Value> = known.iter().filter_map(|r| r.as_array()).flatten().collect();
                if !children.is_empty() {
                    for (n, item) in items.iter().enumerate() {
                        walk(item, &children, &format!("{at}/{n}"), problems);
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        !recorded.is_empty(),
        "{what}: no recorded request to compare with"
    );
    let mut problems = Vec::new();
    walk(sent, &recorded.iter().collect::<Vec<_>>(), "", &mut problems);
    assert!(
        problems.is_empty(),
        "{what}: the body differs from every recorded one:\n{}\nsent: {sent}",
        problems.join("\n")
    );
}
