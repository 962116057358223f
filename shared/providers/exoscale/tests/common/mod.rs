//! Shared test support: the Exoscale OpenAPI spec, response examples synthesised from its schemas (the spec
//! carries no response examples of its own), an adapter pointed at a wiremock server, and the check that
//! every request the adapter sent conforms to Exoscale's OpenAPI document.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use flotilla_cloud::http::{RateLimit, RetryPolicy};
use flotilla_exoscale::{Exoscale, ExoscaleConfig, OperationPolling};
use serde_json::{Map, Value, json};
use wiremock::MockServer;

pub const ZONE: &str = "ch-gva-2";
pub const KEY: &str = "EXOtestkey";
pub const SECRET: &str = "test-secret";

/// `/work/shared/provider-specs`, found by walking up from this crate.
pub fn specs_dir() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
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

/// The Exoscale OpenAPI spec, parsed once.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = specs_dir().join("exoscale").join("openapi.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        serde_norway::from_str(&text).unwrap()
    })
}

/// Exoscale's OpenAPI document as the conformance checker reads it, loaded once per test binary.
fn document() -> &'static flotilla_conformance::Spec {
    static DOCUMENT: OnceLock<flotilla_conformance::Spec> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let specs = flotilla_conformance::provider_specs(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("shared/provider-specs above the repository");
        flotilla_conformance::Spec::exoscale(&specs).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Every request `server` received, judged against Exoscale's OpenAPI document (method and path, path
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
        "requests breaking Exoscale's OpenAPI document:\n{}",
        problems.join("\n")
    );
}

/// The 200 answer of `method path`, synthesised from its schema; then `overrides` (JSON pointers) set the
/// values a test asserts on. Every pointer must name a field the schema has, so a renamed field fails here.
pub fn example(path: &str, method: &str, overrides: &[(&str, Value)]) -> Value {
    let schema = &spec()["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "no 200 JSON answer for {method} {path} in the spec"
    );
    let mut value = synthesise(schema, "", 0);
    for (pointer, v) in overrides {
        let slot = value
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{method} {path}: the schema has no {pointer}"));
        *slot = v.clone();
    }
    value
}

/// A schema component by name, synthesised (for list items).
pub fn component(name: &str, overrides: &[(&str, Value)]) -> Value {
    let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
    let mut value = synthesise(&schema, name, 0);
    for (pointer, v) in overrides {
        let slot = value
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{name}: the schema has no {pointer}"));
        *slot = v.clone();
    }
    value
}

/// The properties the request body of `method path` may have.
pub fn request_properties(path: &str, method: &str) -> Vec<String> {
    let schema = &spec()["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &spec()["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A value of `schema`: every property present, enums at their first value, formats honoured.
fn synthesise(schema: &Value, at: &str, depth: usize) -> Value {
    if depth > 12 {
        return Value::Null;
    }
    let schema = resolve(schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in all {
            if let Value::Object(o) = synthesise(part, at, depth + 1) {
                merged.extend(o);
            }
        }
        return Value::Object(merged);
    }
    if let Some(first) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return synthesise(first, at, depth + 1);
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or_else(|| {
        if schema.get("properties").is_some() {
            "object"
        } else {
            "string"
        }
    });
    match kind {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    out.insert(k.clone(), synthesise(v, &format!("{at}/{k}"), depth + 1));
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                out.insert("key".into(), synthesise(extra, &format!("{at}/key"), depth + 1));
            }
            Value::Object(out)
        }
        "array" => json!([synthesise(&schema["items"], &format!("{at}/0"), depth + 1)]),
        "integer" => {
            let min = schema.get("minimum").and_then(Value::as_i64).unwrap_or(1);
            let exclusive = schema
                .get("exclusiveMinimum")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            json!(if exclusive { min + 1 } else { min.max(1) })
        }
        "number" => json!(1.5),
        "boolean" => json!(true),
        _ => match schema.get("format").and_then(Value::as_str) {
            Some("uuid") => json!(fake_uuid(at)),
            Some("ipv4") => json!("198.51.100.10"),
            Some("date-time") => json!("2024-05-01T12:00:00Z"),
            _ => json!(format!("example{}", at.replace('/', "-"))),
        },
    }
}

/// A UUID that depends only on where in the document it sits.
fn fake_uuid(at: &str) -> String {
    let h = at.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{:08x}-0000-4000-8000-{:012x}", h >> 32, h & 0xffff_ffff_ffff)
}

/// An adapter against `server`, with fast retries and polling.
pub fn adapter(server: &MockServer) -> Exoscale {
    adapter_with(server, |_| {})
}

/// [`adapter`], with `edit` applied to the configuration first.
pub fn adapter_with(server: &MockServer, edit: impl FnOnce(&mut ExoscaleConfig)) -> Exoscale {
    let mut config = ExoscaleConfig::new(ZONE, KEY, SECRET).with_base_url(format!("{}/v2", server.uri()));
    config.rate = RateLimit::per_second(1000);
    config.retry = RetryPolicy {
        max_attempts: 2,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(2),
    };
    config.polling = OperationPolling {
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
    };
    edit(&mut config);
    Exoscale::new(config).unwrap()
}

/// An operation in `state` acting on `reference`, built from the spec's `operation` schema.
pub fn operation(id: &str, state: &str, reference: &str) -> Value {
    example(
        "/operation/{id}",
        "get",
        &[
            ("/id", json!(id)),
            ("/state", json!(state)),
            ("/reference/id", json!(reference)),
        ],
    )
}
