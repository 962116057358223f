//! Requests checked against the providers' published OpenAPI documents (`shared/provider-specs/`, outside
//! the repository): the operation exists for the method and path, its required path and query parameters
//! are there and well-formed, no deprecated parameter or operation is used, and the JSON body matches the
//! operation's request schema — `$ref`s resolved across files, validated by the `jsonschema` crate.
//!
//! Test support: the adapters' tests and the contract suite feed every request they make through
//! [`Spec::check`], and the simulator's own checks are held against it.
//!
//! OpenAPI 3.0 schemas are JSON Schema draft 4 with a few words of their own; before validation `nullable`
//! becomes a `null` type and `readOnly` properties stop being required (a request never sends them).
//!
//! Answers the other way: [`Spec::answer`] makes an operation's answer from its response schema, with every
//! optional field present or absent ([`Fill`]), for documents that publish no examples.

pub mod examples;

pub use examples::Fill;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Why a document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not YAML or JSON.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A `$ref` leads nowhere.
    #[error("{path}: $ref {reference} leads nowhere")]
    Dangling {
        /// The file holding it.
        path: PathBuf,
        /// The reference.
        reference: String,
    },
    /// A request schema the validator cannot compile.
    #[error("{operation}: request schema: {message}")]
    Schema {
        /// The operation.
        operation: String,
        /// Why.
        message: String,
    },
    /// No operation of the document has this method and path.
    #[error("no operation of the {api} API is {method} {path}")]
    NoOperation {
        /// The document (`exoscale`).
        api: String,
        /// The method asked for.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The operation documents no JSON answer with this status.
    #[error("{operation}: no JSON answer with status {status}")]
    NoAnswer {
        /// The operation.
        operation: String,
        /// The status asked for.
        status: String,
    },
    /// The operation's answer has nothing at this JSON pointer.
    #[error("{operation}: the {status} answer has nothing at {pointer}")]
    NoPart {
        /// The operation.
        operation: String,
        /// The status asked for.
        status: String,
        /// The JSON pointer asked for.
        pointer: String,
    },
}

/// One rule a request broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The operation (`POST /v2/firewalls (firewalls_create)`), or the request when none matches.
    pub operation: String,
    /// The field: `body/inbound_rules/0/ports`, `query tag`, `path`.
    pub field: String,
    /// The rule.
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.operation, self.field, self.rule)
    }
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Path,
    Query,
    Other,
}

#[derive(Debug, Clone)]
struct Param {
    name: String,
    location: In,
    required: bool,
    deprecated: bool,
    schema: Option<Value>,
}

/// One operation of a document, as found (its `$ref`s are followed when a request is judged).
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    path: String,
    id: String,
    deprecated: bool,
    /// The file the operation is written in (its `$ref`s are relative to it).
    file: PathBuf,
    /// The operation object.
    raw: Value,
    /// The path item's own parameters, and the file they are in.
    shared: Vec<(PathBuf, Value)>,
}

impl Operation {
    fn label(&self) -> String {
        format!("{} {} ({})", self.method, self.path, self.id)
    }

    /// The path parameters of `path` if it is this operation's (templates `{name}` match one segment).
    fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let want: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let got: Vec<&str> = path.trim_matches('/').split('/').collect();
        if want.len() != got.len() {
            return None;
        }
        let mut params = BTreeMap::new();
        for (w, g) in want.iter().zip(&got) {
            // Exoscale's `/security-group/{id}:attach`: a template then a literal in one segment.
            match (w.find('{'), w.find('}')) {
                (Some(open), Some(close)) if open < close => {
                    let (prefix, suffix) = (&w[..open], &w[close + 1..]);
                    let inner = g.strip_prefix(prefix)?.strip_suffix(suffix)?;
                    if inner.is_empty() {
                        return None;
                    }
                    params.insert(w[open + 1..close].to_owned(), inner.to_owned());
                }
                _ if w == g => {}
                _ => return None,
            }
        }
        Some(params)
    }
}

/// A provider's OpenAPI document, ready to judge requests.
pub struct Spec {
    name: String,
    /// Path prefixes of the servers (`/v2`), stripped from a request's path before matching.
    prefixes: Vec<String>,
    operations: Vec<Operation>,
    files: std::sync::Mutex<Files>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("operations", &self.operations.len())
            .finish()
    }
}

/// The supplement of Vultr's document (within this crate): the managed-database operations
/// (`/databases`) the stored `vultr/openapi.json` predates, written for Flotilla from Vultr's API reference.
pub const VULTR_DATABASES: &str = "supplements/vultr-databases.json";

/// The `shared/provider-specs` directory, walking up from `start`.
pub fn provider_specs(start: &Path) -> Option<PathBuf> {
    let mut dir = start.to_path_buf();
    loop {
        let candidate = dir.join("shared").join("provider-specs");
        if candidate.is_dir() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

impl Spec {
    /// DigitalOcean's document (`digitalocean/specification/DigitalOcean-public.v2.yaml`, one file per
    /// operation).
    pub fn digitalocean(specs: &Path) -> Result<Self, SpecError> {
        Self::load(
            "digitalocean",
            &specs
                .join("digitalocean")
                .join("specification")
                .join("DigitalOcean-public.v2.yaml"),
        )
    }

    /// Vultr's document (`vultr/openapi.json`), with the managed-database operations it lacks from this
    /// crate's supplement ([`VULTR_DATABASES`]: the stored document predates them). A copy of Vultr's
    /// document that has `/databases` is used as it is.
    pub fn vultr(specs: &Path) -> Result<Self, SpecError> {
        let mut spec = Self::load("vultr", &specs.join("vultr").join("openapi.json"))?;
        if !spec.operations.iter().any(|o| o.path.starts_with("/databases")) {
            spec.supplement(&Path::new(env!("CARGO_MANIFEST_DIR")).join(VULTR_DATABASES))?;
        }
        Ok(spec)
    }

    /// Adds the operations of another document (`paths` only; its `$ref`s resolved within it) to these.
    pub fn supplement(&mut self, root: &Path) -> Result<(), SpecError> {
        // Its operations name their file: this document's file cache reads it when they are judged.
        self.operations.extend(Self::load(&self.name, root)?.operations);
        Ok(())
    }

    /// Exoscale's document (`exoscale/openapi.yaml`).
    pub fn exoscale(specs: &Path) -> Result<Self, SpecError> {
        Self::load("exoscale", &specs.join("exoscale").join("openapi.yaml"))
    }

    /// Loads the document at `root` (YAML or JSON), following `$ref`s into other files.
    pub fn load(name: &str, root: &Path) -> Result<Self, SpecError> {
        let mut files = Files::default();
        let doc = files.get(root)?;
        let prefixes = doc["servers"]
            .as_array()
            .map(|servers| {
                servers
                    .iter()
                    .filter_map(|s| s["url"].as_str())
                    .filter_map(server_path)
                    .collect()
            })
            .unwrap_or_default();
        let mut operations = Vec::new();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        for (path, item) in paths {
            let (item_file, item) = files.deref(root, &item)?;
            let shared = item["parameters"]
                .as_array()
                .map(|ps| ps.iter().map(|p| (item_file.clone(), p.clone())).collect())
                .unwrap_or_default();
            for method in ["get", "put", "post", "delete", "patch"] {
                let Some(op) = item.get(method) else {
                    continue;
                };
                let (file, raw) = files.deref(&item_file, op)?;
                operations.push(Operation {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    id: raw["operationId"].as_str().unwrap_or("?").to_owned(),
                    deprecated: raw["deprecated"].as_bool().unwrap_or(false),
                    file,
                    raw,
                    shared: Vec::clone(&shared),
                });
            }
        }
        Ok(Self {
            name: name.to_owned(),
            prefixes,
            operations,
            files: std::sync::Mutex::new(files),
        })
    }

    /// An operation's parameters and request body schema, `$ref`s resolved.
    fn resolved(&self, op: &Operation) -> Result<(Vec<Param>, Option<Value>, bool), SpecError> {
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let own = op.raw["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| (op.file.clone(), p.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let mut params: Vec<Param> = Vec::new();
        for (file, p) in op.shared.iter().chain(&own) {
            let p = files.inline(file, p, 0)?;
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            let location = match p["in"].as_str() {
                Some("path") => In::Path,
                Some("query") => In::Query,
                _ => In::Other,
            };
            // An operation's own parameter replaces a path-level one of the same name.
            params.retain(|q| !(q.name == name && q.location == location));
            params.push(Param {
                name,
                location,
                required: p["required"].as_bool().unwrap_or(location == In::Path),
                deprecated: p["deprecated"].as_bool().unwrap_or(false),
                schema: p.get("schema").cloned(),
            });
        }
        let body = files.inline(&op.file, &op.raw["requestBody"], 0)?;
        let schema = &body["content"]["application/json"]["schema"];
        Ok((
            params,
            (!schema.is_null()).then(|| for_requests(schema.clone())),
            body["required"].as_bool().unwrap_or(false),
        ))
    }

    /// The operation `method path` is (`path` with or without the server's prefix, and with or without an
    /// endpoint segment before it; without the query), and its path parameters.
    fn operation(&self, method: &str, path: &str) -> Option<(&Operation, BTreeMap<String, String>)> {
        let method = method.to_ascii_uppercase();
        // An endpoint may put one segment before the server's path (Exoscale's zones: `/ch-gva-2/v2/…`).
        let endpoint_less = path
            .trim_start_matches('/')
            .split_once('/')
            .map(|(_, rest)| format!("/{rest}"));
        let candidates = std::iter::once(path.to_owned()).chain(
            std::iter::once(path.to_owned())
                .chain(endpoint_less)
                .flat_map(|p| {
                    self.prefixes
                        .iter()
                        .filter_map(move |prefix| p.strip_prefix(prefix.as_str()).map(str::to_owned))
                        .collect::<Vec<_>>()
                }),
        );
        candidates.into_iter().find_map(|p| {
            self.operations
                .iter()
                .filter(|o| o.method == method)
                // A literal segment wins over a template (`/instances/reboot` over `/instances/{id}`).
                .filter_map(|o| o.matches(&p).map(|params| (o, params)))
                .min_by_key(|(o, _)| o.path.matches('{').count())
        })
    }

    /// An answer of `method path` (found as [`Spec::check`] finds it: `/v2/instance/{id}` or
    /// `/v2/instance/abc`) with `status` (`"200"`), made from the operation's `application/json` response
    /// schema: every optional field present ([`Fill::Everything`]) or absent ([`Fill::RequiredOnly`]),
    /// `example`s and first `enum` values where the schema has them, fixed values of the type and format
    /// elsewhere (the rules are [`Fill`]'s).
    pub fn answer(&self, method: &str, path: &str, status: &str, fill: Fill) -> Result<Value, SpecError> {
        self.answer_at(method, path, status, "", fill)
    }

    /// The part of [`Spec::answer`]'s answer at `pointer` (a JSON pointer into the answer, `/instances/0`:
    /// a list's item), made from the schema there: e.g. one item of a list answer with only its required
    /// fields, which [`Fill::RequiredOnly`] leaves out of the whole answer (its arrays are empty).
    pub fn answer_at(
        &self,
        method: &str,
        path: &str,
        status: &str,
        pointer: &str,
        fill: Fill,
    ) -> Result<Value, SpecError> {
        let (op, _) = self
            .operation(method, path)
            .ok_or_else(|| SpecError::NoOperation {
                api: self.name.clone(),
                method: method.to_ascii_uppercase(),
                path: path.to_owned(),
            })?;
        let no_answer = || SpecError::NoAnswer {
            operation: op.label(),
            status: status.to_owned(),
        };
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let response = op.raw["responses"].get(status).ok_or_else(no_answer)?;
        let (file, response) = files.deref(&op.file, response)?;
        let content = &response["content"];
        let schema = content
            .get("application/json")
            .or_else(|| {
                content
                    .as_object()?
                    .iter()
                    .find(|(kind, _)| kind.ends_with("json"))
                    .map(|(_, c)| c)
            })
            .and_then(|c| c.get("schema"))
            .ok_or_else(no_answer)?;
        let mut generator = examples::Generator::new(&mut files, fill);
        let (file, schema) = generator
            .at(&file, schema, pointer)?
            .ok_or_else(|| SpecError::NoPart {
                operation: op.label(),
                status: status.to_owned(),
                pointer: pointer.to_owned(),
            })?;
        generator.generate(&file, &schema)
    }

    /// Every operation of the document: its method (`GET`) and path template (`/droplets/{droplet_id}`),
    /// in the document's order.
    pub fn operations(&self) -> Vec<(String, String)> {
        self.operations
            .iter()
            .map(|o| (o.method.clone(), o.path.clone()))
            .collect()
    }

    /// The path template of the operation `method path` is (found as [`Spec::check`] finds it), if any.
    pub fn template(&self, method: &str, path: &str) -> Option<String> {
        self.operation(method, path).map(|(o, _)| o.path.clone())
    }

    /// A request body for `method path`, made from the operation's `application/json` request schema by
    /// the rules [`Spec::answer`] follows; `None` when the operation takes no JSON body.
    pub fn request(&self, method: &str, path: &str, fill: Fill) -> Result<Option<Value>, SpecError> {
        let (op, _) = self
            .operation(method, path)
            .ok_or_else(|| SpecError::NoOperation {
                api: self.name.clone(),
                method: method.to_ascii_uppercase(),
                path: path.to_owned(),
            })?;
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (file, body) = files.deref(&op.file, &op.raw["requestBody"])?;
        let Some(schema) = body["content"]["application/json"].get("schema").cloned() else {
            return Ok(None);
        };
        examples::Generator::new(&mut files, fill)
            .generate(&file, &schema)
            .map(Some)
    }

    /// How many operations the document has.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether the document has no operation.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Judges one request as it went over the wire (its body as bytes): no line when it holds, else the
    /// request (`METHOD /path?query`) then each rule it breaks, indented — what a test prints when it fails.
    pub fn report(&self, method: &str, path: &str, query: &[(String, String)], body: &[u8]) -> Vec<String> {
        let shown = if query.is_empty() {
            format!("{method} {path}")
        } else {
            let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{method} {path}?{}", q.join("&"))
        };
        let body: Option<Value> = if body.is_empty() {
            None
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => Some(v),
                Err(e) => return vec![shown, format!("    body: not JSON: {e}")],
            }
        };
        match self.check(method, path, query, body.as_ref()) {
            Ok(()) => Vec::new(),
            Err(violations) => std::iter::once(shown)
                .chain(violations.iter().map(|v| format!("    {v}")))
                .collect(),
        }
    }

    /// Judges one request: `path` as sent (with or without the server's prefix, without the query),
    /// `query` its parameters, `body` its JSON body. Returns every rule it breaks.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<(), Vec<Violation>> {
        let method = method.to_ascii_uppercase();
        let Some((op, path_params)) = self.operation(&method, path) else {
            return Err(vec![Violation {
                operation: format!("{method} {path}"),
                field: "path".into(),
                rule: format!("no operation of the {} API has this method and path", self.name),
            }]);
        };
        let mut out = Vec::new();
        let v = |field: String, rule: String| Violation {
            operation: op.label(),
            field,
            rule,
        };
        let (params, body_schema, body_required) = match self.resolved(op) {
            Ok(r) => r,
            Err(e) => return Err(vec![v("document".into(), e.to_string())]),
        };
        if op.deprecated {
            out.push(v("operation".into(), "deprecated".into()));
        }
        for p in &params {
            let value = match p.location {
                In::Path => path_params.get(&p.name).cloned(),
                In::Query => query.iter().find(|(k, _)| k == &p.name).map(|(_, v)| v.clone()),
                In::Other => continue,
            };
            let field = format!(
                "{} {}",
                if p.location == In::Path { "path" } else { "query" },
                p.name
            );
            match value {
                None if p.required => out.push(v(field, "required, missing".into())),
                None => {}
                Some(value) => {
                    if p.deprecated {
                        out.push(v(field.clone(), "deprecated".into()));
                    }
                    if let Some(rule) = p.schema.as_ref().and_then(|s| parameter_problem(s, &value)) {
                        out.push(v(field, rule));
                    }
                }
            }
        }
        for (k, _) in query {
            if !params.iter().any(|p| p.location == In::Query && &p.name == k) {
                out.push(v(format!("query {k}"), "not a parameter of the operation".into()));
            }
        }
        match (&body_schema, body) {
            (Some(schema), Some(body)) => match jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .build(schema)
            {
                Ok(validator) => {
                    for e in validator.iter_errors(body) {
                        let at = e.instance_path().to_string();
                        out.push(v(format!("body{at}"), e.to_string()));
                    }
                }
                Err(e) => out.push(v("body".into(), format!("the schema does not compile: {e}"))),
            },
            (Some(_), None) if body_required => out.push(v("body".into(), "required, missing".into())),
            (None, Some(b)) if !b.is_null() && b != &Value::Object(Map::new()) => {
                out.push(v("body".into(), "the operation takes no JSON body".into()));
            }
            _ => {}
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }
}

/// The path of a server URL (`https://api-{zone}.exoscale.com/v2` → `/v2`).
fn server_path(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map(|i| &rest[i..])?;
    let path = path.trim_end_matches('/');
    (!path.is_empty()).then(|| path.to_owned())
}

/// What is wrong with a path or query parameter's value, by its schema's type, enum and pattern.
fn parameter_problem(schema: &Value, value: &str) -> Option<String> {
    let typed: Value = match schema["type"].as_str() {
        Some("integer") => match value.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => return Some(format!("{value:?} is not an integer")),
        },
        Some("number") => match value.parse::<f64>() {
            Ok(n) => Value::from(n),
            Err(_) => return Some(format!("{value:?} is not a number")),
        },
        Some("boolean") => match value {
            "true" | "false" => Value::from(value == "true"),
            _ => return Some(format!("{value:?} is not a boolean")),
        },
        _ => Value::from(value),
    };
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&for_requests(schema.clone()))
        .ok()?;
    validator.iter_errors(&typed).next().map(|e| e.to_string())
}

/// An OpenAPI 3.0 schema as JSON Schema for a request: `nullable` as a `null` type; `readOnly` properties
/// not required; OpenAPI-only words left (the validator ignores them).
fn for_requests(mut schema: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.get("nullable").and_then(Value::as_bool) == Some(true)
                    && let Some(t) = map.get("type").and_then(Value::as_str).map(str::to_owned)
                {
                    map.insert("type".into(), Value::from(vec![t, "null".to_owned()]));
                }
                let read_only: Vec<String> = map
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|props| {
                        props
                            .iter()
                            .filter(|(_, p)| p["readOnly"].as_bool() == Some(true))
                            .map(|(k, _)| k.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(Value::Array(required)) = map.get_mut("required") {
                    required.retain(|r| r.as_str().is_none_or(|r| !read_only.iter().any(|k| k == r)));
                    if required.is_empty() {
                        map.remove("required");
                    }
                }
                for child in map.values_mut() {
                    walk(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

/// The documents read so far, by path.
#[derive(Default)]
struct Files {
    docs: BTreeMap<PathBuf, Value>,
}

/// How deep `$ref`s are followed before a cycle is cut (a recursive schema becomes `{}` there: anything).
const MAX_DEPTH: usize = 24;

impl Files {
    fn get(&mut self, path: &Path) -> Result<Value, SpecError> {
        self.doc(path).cloned()
    }

    /// The document at `path`, read and parsed the first time.
    fn doc(&mut self, path: &Path) -> Result<&Value, SpecError> {
        let slot = match self.docs.entry(path.to_owned()) {
            std::collections::btree_map::Entry::Occupied(doc) => return Ok(doc.into_mut()),
            std::collections::btree_map::Entry::Vacant(slot) => slot,
        };
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        let doc: Value = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| SpecError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        } else {
            serde_norway::from_str(&text).map_err(|e| SpecError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        };
        Ok(slot.insert(doc))
    }

    /// `value` (found in `file`) with a top-level `$ref` followed until there is none, and the file it is in.
    fn deref(&mut self, file: &Path, value: &Value) -> Result<(PathBuf, Value), SpecError> {
        let (mut file, mut value) = (file.to_owned(), value.clone());
        for _ in 0..MAX_DEPTH {
            let Some(reference) = value.get("$ref").and_then(Value::as_str).map(str::to_owned) else {
                break;
            };
            (file, value) = self.follow(&file, &reference)?;
        }
        Ok((file, value))
    }

    /// `value` (found in `file`) with every `$ref` replaced by what it points at, across files.
    fn inline(&mut self, file: &Path, value: &Value, depth: usize) -> Result<Value, SpecError> {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    if depth >= MAX_DEPTH {
                        return Ok(Value::Object(Map::new()));
                    }
                    let (target_file, target) = self.follow(file, reference)?;
                    return self.inline(&target_file, &target, depth + 1);
                }
                let mut out = Map::new();
                for (k, v) in map {
                    // Examples are data, not schemas: left as they are.
                    let v = if k == "example" || k == "examples" {
                        v.clone()
                    } else {
                        self.inline(file, v, depth)?
                    };
                    out.insert(k.clone(), v);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .iter()
                .map(|v| self.inline(file, v, depth))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    /// The file and value a `$ref` found in `file` points at.
    fn follow(&mut self, file: &Path, reference: &str) -> Result<(PathBuf, Value), SpecError> {
        let (path, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let target_file = if path.is_empty() {
            file.to_owned()
        } else {
            file.parent().unwrap_or(Path::new(".")).join(path)
        };
        let doc = self.doc(&target_file)?;
        let target = if pointer.is_empty() {
            Some(doc.clone())
        } else {
            doc.pointer(pointer).cloned()
        };
        let target = target.ok_or_else(|| SpecError::Dangling {
            path: file.to_owned(),
            reference: reference.to_owned(),
        })?;
        Ok((normalise(&target_file), target))
    }
}

/// `a/b/../c` → `a/c` (so one file is read once whatever the way to it).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn templates_match_one_segment_and_literals_win() {
        let op = |path: &str| Operation {
            method: "POST".into(),
            path: path.into(),
            id: "x".into(),
            deprecated: false,
            file: PathBuf::new(),
            raw: Value::Null,
            shared: Vec::new(),
        };
        let attach = op("/security-group/{id}:attach");
        assert_eq!(attach.matches("/security-group/abc:attach").unwrap()["id"], "abc");
        assert!(attach.matches("/security-group/abc").is_none());
        assert!(op("/instances/{id}").matches("/instances/a/b").is_none());
        assert_eq!(
            server_path("https://api-{zone}.exoscale.com/v2").as_deref(),
            Some("/v2")
        );
        assert_eq!(server_path("https://api.example.com"), None);
    }

    #[test]
    fn nullable_and_read_only_are_read_as_a_request_means_them() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["id", "name"],
            "properties": {
                "id": {"type": "string", "readOnly": true},
                "name": {"type": "string", "nullable": true}
            }
        });
        let s = for_requests(schema);
        assert_eq!(s["required"], serde_json::json!(["name"]));
        assert_eq!(
            s["properties"]["name"]["type"],
            serde_json::json!(["string", "null"])
        );
    }
}
