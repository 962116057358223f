//! Answers generated from a response schema, for documents that publish no examples of their own
//! (Exoscale's): [`crate::Spec::answer`].

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::{Files, MAX_DEPTH, SpecError};

/// How much of a response schema [`crate::Spec::answer`] fills in.
///
/// A value is made from the schema alone: its `example` where a scalar has one, else the first of its
/// `enum`, else a fixed value of its type and format. Objects get every property ([`Fill::Everything`]) or
/// only the required ones ([`Fill::RequiredOnly`]); arrays one item, or as few as `minItems` allows. `allOf`
/// parts are merged (their properties and their `required` lists), `oneOf` and `anyOf` take their first
/// branch. `$ref`s are followed as they are met, across files; one that leads back into a schema being
/// generated is a cycle, cut there: an empty object in its place, or an empty array of it.
///
/// `writeOnly` properties are kept in [`Fill::Everything`]: documents mark as write-only what their API
/// does answer (Exoscale's security-group `rules`), and an adapter must read it either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Every property an object may have, and one item in every array.
    Everything,
    /// Only the properties an object must have, and arrays as short as their `minItems` allows.
    RequiredOnly,
}

/// A fixed, valid UUID (`format: uuid`).
pub const UUID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

/// A fixed RFC 3339 time (`format: date-time`).
pub const DATE_TIME: &str = "2024-01-02T03:04:05Z";

/// A fixed documentation address (`format: ipv4`, RFC 5737).
pub const IPV4: &str = "192.0.2.10";

/// The value a string without an example, enum or known format gets.
pub const STRING: &str = "string";

/// Walks one schema, following `$ref`s as it goes.
pub(crate) struct Generator<'a> {
    files: &'a mut Files,
    fill: Fill,
    /// The `$ref`s being expanded (file and pointer), outermost first: meeting one again is a cycle.
    stack: Vec<String>,
}

/// The properties, `required` names and `additionalProperties` of an object schema with its `allOf` parts
/// merged, each property with the file its `$ref`s are relative to.
#[derive(Default)]
struct Merged {
    object: bool,
    properties: Vec<(String, PathBuf, Value)>,
    required: Vec<String>,
    additional: Option<(PathBuf, Value)>,
}

impl<'a> Generator<'a> {
    pub(crate) fn new(files: &'a mut Files, fill: Fill) -> Self {
        Self {
            files,
            fill,
            stack: Vec::new(),
        }
    }

    /// The schema (and the file its `$ref`s are relative to) of what sits at `pointer` (a JSON pointer) in
    /// a value of `schema`: a property by name (through `allOf` parts and `additionalProperties`), an
    /// array's `items` by index, through `$ref`s and the first `oneOf`/`anyOf` branch; `None` where
    /// nothing can be.
    pub(crate) fn at(
        &mut self,
        file: &Path,
        schema: &Value,
        pointer: &str,
    ) -> Result<Option<(PathBuf, Value)>, SpecError> {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Ok(None);
        }
        let (mut file, mut schema) = (file.to_owned(), schema.clone());
        for segment in pointer.split('/').skip(1) {
            let segment = segment.replace("~1", "/").replace("~0", "~");
            for _ in 0..MAX_DEPTH {
                (file, schema) = self.files.deref(&file, &schema)?;
                let first = schema
                    .get("oneOf")
                    .or_else(|| schema.get("anyOf"))
                    .and_then(Value::as_array)
                    .and_then(|branches| branches.first())
                    .cloned();
                match first {
                    Some(first) => schema = first,
                    None => break,
                }
            }
            if kind(&schema) == "array" {
                match schema.get("items") {
                    Some(items) if segment.parse::<usize>().is_ok() => schema = items.clone(),
                    _ => return Ok(None),
                }
                continue;
            }
            let mut merged = Merged::default();
            self.merge(&file, &schema, &mut merged, 0)?;
            let found = match merged
                .properties
                .into_iter()
                .find(|(name, _, _)| *name == segment)
            {
                Some((_, f, s)) => (f, s),
                None => match merged.additional {
                    Some(additional) => additional,
                    None => return Ok(None),
                },
            };
            (file, schema) = found;
        }
        Ok(Some((file, schema)))
    }

    /// A value of `schema` (found in `file`); an empty object where the schema is a cycle.
    pub(crate) fn generate(&mut self, file: &Path, schema: &Value) -> Result<Value, SpecError> {
        Ok(self
            .value(file, schema, 0)?
            .unwrap_or_else(|| Value::Object(Map::new())))
    }

    /// A value of `schema`, or `None` where a cycle (or [`MAX_DEPTH`]) cuts it.
    fn value(&mut self, file: &Path, schema: &Value, depth: usize) -> Result<Option<Value>, SpecError> {
        if depth >= MAX_DEPTH {
            return Ok(None);
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            return self.through(file, reference, depth, |g, target_file, target, depth| {
                g.value(target_file, target, depth)
            });
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let mut merged = Merged::default();
            self.merge(file, schema, &mut merged, depth)?;
            if merged.object || !merged.properties.is_empty() || merged.additional.is_some() {
                return self.object(merged, depth).map(Some);
            }
            // `allOf: [{$ref: a-scalar}]`, the usual way to give a reference a description.
            if let Some(first) = parts.first() {
                return self.value(file, first, depth + 1);
            }
        }
        if let Some(first) = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array)
            .and_then(|branches| branches.first())
        {
            return self.value(file, first, depth + 1);
        }
        let kind = kind(schema);
        match kind {
            "object" => {
                let mut merged = Merged::default();
                self.merge(file, schema, &mut merged, depth)?;
                return self.object(merged, depth).map(Some);
            }
            "array" => return self.array(file, schema, depth).map(Some),
            _ => {}
        }
        if let Some(example) = schema.get("example") {
            return Ok(Some(example.clone()));
        }
        if let Some(value) = schema.get("const") {
            return Ok(Some(value.clone()));
        }
        if let Some(first) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|values| values.first())
        {
            return Ok(Some(first.clone()));
        }
        Ok(Some(match kind {
            "integer" => Value::from(integer(schema)),
            "number" => Value::from(number(schema)),
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            "string" => Value::from(string(schema)),
            // `{}`: anything.
            _ => Value::Object(Map::new()),
        }))
    }

    /// `f` on what `reference` (found in `file`) points at, unless that is a schema being generated
    /// already (a cycle: `None`).
    fn through<T>(
        &mut self,
        file: &Path,
        reference: &str,
        depth: usize,
        f: impl FnOnce(&mut Self, &Path, &Value, usize) -> Result<Option<T>, SpecError>,
    ) -> Result<Option<T>, SpecError> {
        let (target_file, target) = self.files.follow(file, reference)?;
        let pointer = reference.split_once('#').map_or("", |(_, p)| p);
        let key = format!("{}#{pointer}", target_file.display());
        if self.stack.contains(&key) {
            return Ok(None);
        }
        self.stack.push(key);
        let out = f(self, &target_file, &target, depth + 1);
        self.stack.pop();
        out
    }

    /// Adds `schema`'s properties, `required` names and `additionalProperties`, and those of its `allOf`
    /// parts (followed through `$ref`s), to `into`. Later parts win for a property named twice.
    fn merge(
        &mut self,
        file: &Path,
        schema: &Value,
        into: &mut Merged,
        depth: usize,
    ) -> Result<(), SpecError> {
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            self.through(file, reference, depth, |g, target_file, target, depth| {
                g.merge(target_file, target, into, depth).map(Some)
            })?;
            return Ok(());
        }
        into.object |= kind(schema) == "object";
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                let entry = (name.clone(), file.to_owned(), property.clone());
                match into.properties.iter_mut().find(|(n, _, _)| n == name) {
                    Some(slot) => *slot = entry,
                    None => into.properties.push(entry),
                }
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !into.required.iter().any(|r| r == name) {
                    into.required.push(name.to_owned());
                }
            }
        }
        if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            into.additional = Some((file.to_owned(), additional.clone()));
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            for part in parts {
                self.merge(file, part, into, depth + 1)?;
            }
        }
        Ok(())
    }

    fn object(&mut self, merged: Merged, depth: usize) -> Result<Value, SpecError> {
        let mut out = Map::new();
        for (name, file, property) in &merged.properties {
            if self.fill == Fill::RequiredOnly && !merged.required.contains(name) {
                continue;
            }
            let value = self
                .value(file, property, depth + 1)?
                .unwrap_or_else(|| Value::Object(Map::new()));
            out.insert(name.clone(), value);
        }
        // A map (`labels`): one entry when every property is wanted.
        if merged.properties.is_empty()
            && self.fill == Fill::Everything
            && let Some((file, additional)) = &merged.additional
            && let Some(value) = self.value(file, additional, depth + 1)?
        {
            out.insert("key".into(), value);
        }
        Ok(Value::Object(out))
    }

    fn array(&mut self, file: &Path, schema: &Value, depth: usize) -> Result<Value, SpecError> {
        let min = schema
            .get("minItems")
            .and_then(Value::as_u64)
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let count = match self.fill {
            Fill::Everything => min.max(1),
            Fill::RequiredOnly => min,
        };
        if count == 0 {
            return Ok(Value::Array(Vec::new()));
        }
        let items = schema.get("items").cloned().unwrap_or(Value::Null);
        let item = match &items {
            Value::Object(_) => self.value(file, &items, depth + 1)?,
            // No `items`: anything.
            _ => Some(Value::from(STRING)),
        };
        Ok(Value::Array(match item {
            Some(item) => std::iter::repeat_n(item, count.min(16)).collect(),
            None => Vec::new(),
        }))
    }
}

/// The type a schema declares, or the one its other words imply (`properties` → object, `items` →
/// array, `format` → string); `""` for `{}`.
fn kind(schema: &Value) -> &str {
    match schema.get("type") {
        Some(Value::String(t)) => return t,
        // OpenAPI 3.1: `[string, "null"]`.
        Some(Value::Array(types)) => {
            if let Some(t) = types.iter().filter_map(Value::as_str).find(|t| *t != "null") {
                return t;
            }
        }
        _ => {}
    }
    let has = |word: &str| schema.get(word).is_some();
    if has("properties") || has("additionalProperties") || has("required") {
        "object"
    } else if has("items") {
        "array"
    } else if has("format") || has("pattern") || has("minLength") || has("maxLength") {
        "string"
    } else {
        ""
    }
}

/// 1, or the nearest value `minimum` and `maximum` allow.
fn integer(schema: &Value) -> i64 {
    // `step` is 1 for a lower bound, -1 for an upper one.
    let bound = |word: &str, exclusive: &str, step: i64| {
        let inward = |b: f64| (if step > 0 { b.ceil() } else { b.floor() }) as i64;
        let beyond = |b: f64| (if step > 0 { b.floor() } else { b.ceil() }) as i64 + step;
        match (schema.get(word).and_then(Value::as_f64), schema.get(exclusive)) {
            // OpenAPI 3.1: `exclusiveMinimum: 5`.
            (_, Some(Value::Number(n))) => n.as_f64().map(beyond),
            // OpenAPI 3.0 (draft 4): `minimum: 5, exclusiveMinimum: true`.
            (Some(b), Some(Value::Bool(true))) => Some(beyond(b)),
            (Some(b), _) => Some(inward(b)),
            (None, _) => None,
        }
    };
    let mut value = 1;
    if let Some(min) = bound("minimum", "exclusiveMinimum", 1) {
        value = value.max(min);
    }
    if let Some(max) = bound("maximum", "exclusiveMaximum", -1) {
        value = value.min(max);
    }
    value
}

/// 1.0, or the nearest value `minimum` and `maximum` allow.
fn number(schema: &Value) -> f64 {
    let mut value: f64 = 1.0;
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        value = value.max(if exclusive { min + 1.0 } else { min });
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        value = value.min(if exclusive { max - 1.0 } else { max });
    }
    value
}

/// A string of the schema's format, as long as `minLength` and `maxLength` allow.
fn string(schema: &Value) -> String {
    let mut s = match schema.get("format").and_then(Value::as_str) {
        Some("uuid") => UUID,
        Some("date-time") => DATE_TIME,
        Some("date") => "2024-01-02",
        Some("ipv4") => IPV4,
        Some("ipv6") => "2001:db8::10",
        Some("email") => "user@example.com",
        Some("uri" | "url") => "https://example.com/",
        Some("hostname") => "host.example.com",
        Some("byte") => "c3RyaW5n",
        _ => STRING,
    }
    .to_owned();
    let len = |word: &str| {
        schema
            .get(word)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    if let Some(min) = len("minLength")
        && s.chars().count() < min
    {
        let pad = min - s.chars().count();
        s.extend(std::iter::repeat_n('x', pad));
    }
    if let Some(max) = len("maxLength") {
        s = s.chars().take(max).collect();
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// `schema` generated as the answer in a one-file document whose `components.schemas` are
    /// `components`.
    fn generate(components: Value, schema: Value, fill: Fill) -> Value {
        let root = PathBuf::from("/nowhere/doc.json");
        let mut files = Files::default();
        files
            .docs
            .insert(root.clone(), json!({"components": {"schemas": components}}));
        Generator::new(&mut files, fill).generate(&root, &schema).unwrap()
    }

    #[test]
    fn every_property_or_the_required_only() {
        let schema = json!({
            "type": "object",
            "required": ["id", "state"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "state": {"type": "string", "enum": ["running", "stopped"]},
                "name": {"type": "string", "example": "ws-1"},
                "created-at": {"type": "string", "format": "date-time"},
                "public-ip": {"type": "string", "format": "ipv4"},
                "disk-size": {"type": "integer", "minimum": 10},
                "cpus": {"type": "integer", "minimum": 0, "exclusiveMinimum": true, "maximum": 4},
                "load": {"type": "number"},
                "ready": {"type": "boolean"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "tags": {"type": "array", "items": {"type": "string"}},
                "zones": {"type": "array", "minItems": 2, "items": {"type": "string", "enum": ["a"]}},
                "short": {"type": "string", "maxLength": 3},
                "long": {"type": "string", "minLength": 8}
            }
        });
        let all = generate(json!({}), schema.clone(), Fill::Everything);
        assert_eq!(
            all,
            json!({
                "id": UUID,
                "state": "running",
                "name": "ws-1",
                "created-at": DATE_TIME,
                "public-ip": IPV4,
                "disk-size": 10,
                "cpus": 1,
                "load": 1.0,
                "ready": true,
                "labels": {"key": "string"},
                "tags": ["string"],
                "zones": ["a", "a"],
                "short": "str",
                "long": "stringxx"
            })
        );
        let required = generate(json!({}), schema, Fill::RequiredOnly);
        assert_eq!(required, json!({"id": UUID, "state": "running"}));
    }

    #[test]
    fn arrays_are_empty_unless_min_items_when_only_the_required_is_wanted() {
        let schema = json!({
            "type": "object",
            "required": ["none", "two"],
            "properties": {
                "none": {"type": "array", "items": {"type": "integer"}},
                "two": {"type": "array", "minItems": 2, "items": {"type": "integer", "maximum": -3}}
            }
        });
        assert_eq!(
            generate(json!({}), schema, Fill::RequiredOnly),
            json!({"none": [], "two": [-3, -3]})
        );
    }

    #[test]
    fn references_all_of_and_the_first_branch() {
        let components = json!({
            "base": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string", "format": "uuid"}, "note": {"type": "string"}}
            },
            "state": {"type": "string", "enum": ["pending", "success"]},
            "kind": {"type": "integer", "minimum": 5}
        });
        let schema = json!({
            "allOf": [
                {"$ref": "#/components/schemas/base"},
                {
                    "type": "object",
                    "required": ["state"],
                    "properties": {
                        "state": {"allOf": [{"$ref": "#/components/schemas/state"}], "description": "d"},
                        "kind": {"oneOf": [{"$ref": "#/components/schemas/kind"}, {"type": "string"}]},
                        "either": {"anyOf": [{"type": "boolean"}, {"type": "string"}]}
                    }
                }
            ]
        });
        assert_eq!(
            generate(components.clone(), schema.clone(), Fill::Everything),
            json!({"id": UUID, "note": "string", "state": "pending", "kind": 5, "either": true})
        );
        // `required` of one part names a property of another.
        let with_cross_required = json!({
            "allOf": [{"$ref": "#/components/schemas/base"}, {"required": ["note"]}]
        });
        assert_eq!(
            generate(components.clone(), with_cross_required, Fill::RequiredOnly),
            json!({"id": UUID, "note": "string"})
        );
        assert_eq!(
            generate(components, schema, Fill::RequiredOnly),
            json!({"id": UUID, "state": "pending"})
        );
    }

    #[test]
    fn cycles_are_cut() {
        let components = json!({
            "node": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "parent": {"$ref": "#/components/schemas/node"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/node"}}
                }
            },
            "a": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/b"}}},
            "b": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/a"}}}
        });
        assert_eq!(
            generate(
                components.clone(),
                json!({"$ref": "#/components/schemas/node"}),
                Fill::Everything
            ),
            json!({"name": "string", "parent": {}, "children": []})
        );
        assert_eq!(
            generate(
                components.clone(),
                json!({"$ref": "#/components/schemas/a"}),
                Fill::Everything
            ),
            json!({"b": {"a": {}}})
        );
        // The same schema twice side by side is no cycle.
        let twice = json!({
            "type": "object",
            "properties": {
                "x": {"$ref": "#/components/schemas/b"},
                "y": {"$ref": "#/components/schemas/b"}
            }
        });
        assert_eq!(
            generate(components, twice, Fill::Everything),
            json!({"x": {"a": {"b": {}}}, "y": {"a": {"b": {}}}})
        );
    }

    #[test]
    fn answers_of_an_operation_by_method_path_and_status() {
        let dir = std::env::temp_dir().join(format!("flotilla-conformance-answer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("doc.json");
        let list = json!({
            "type": "object",
            "properties": {"things": {"type": "array", "items": {"$ref": "#/components/schemas/thing"}}}
        });
        let doc = json!({
            "servers": [{"url": "https://api.example.com/v2"}],
            "paths": {
                "/thing": {"get": {"responses": {"200": {"$ref": "#/components/responses/things"}}}},
                "/thing/{id}": {"get": {"responses": {
                    "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/thing"}}}},
                    "204": {"description": "no body"}
                }}}
            },
            "components": {
                "responses": {"things": {"content": {"application/json": {"schema": list}}}},
                "schemas": {"thing": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "labels": {"type": "object", "additionalProperties": {"type": "integer"}}
                    }
                }}
            }
        });
        std::fs::write(&root, doc.to_string()).unwrap();
        let spec = crate::Spec::load("example", &root).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let one = spec
            .answer("get", "/v2/thing/abc", "200", Fill::Everything)
            .unwrap();
        assert_eq!(one, json!({"id": UUID, "labels": {"key": 1}}));
        assert_eq!(
            spec.answer("GET", "/thing/{id}", "200", Fill::RequiredOnly)
                .unwrap(),
            json!({"id": UUID})
        );
        assert_eq!(
            spec.answer("GET", "/v2/thing", "200", Fill::RequiredOnly)
                .unwrap(),
            json!({})
        );
        assert_eq!(
            spec.answer("GET", "/v2/thing", "200", Fill::Everything).unwrap(),
            json!({"things": [{"id": UUID, "labels": {"key": 1}}]})
        );
        // A list's item with only what it must have, and a map's value.
        assert_eq!(
            spec.answer_at("GET", "/v2/thing", "200", "/things/0", Fill::RequiredOnly)
                .unwrap(),
            json!({"id": UUID})
        );
        assert_eq!(
            spec.answer_at(
                "GET",
                "/v2/thing",
                "200",
                "/things/0/labels/team",
                Fill::RequiredOnly
            )
            .unwrap(),
            json!(1)
        );
        assert!(matches!(
            spec.answer_at("GET", "/v2/thing", "200", "/things/x", Fill::Everything),
            Err(SpecError::NoPart { .. })
        ));
        assert!(matches!(
            spec.answer("GET", "/v2/thing/abc", "204", Fill::Everything),
            Err(SpecError::NoAnswer { .. })
        ));
        assert!(matches!(
            spec.answer("GET", "/v2/thing/abc", "404", Fill::Everything),
            Err(SpecError::NoAnswer { .. })
        ));
        let err = spec
            .answer("DELETE", "/v2/thing/abc", "200", Fill::Everything)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no operation of the example API is DELETE /v2/thing/abc"
        );
    }

    #[test]
    fn untyped_schemas_are_read_by_their_words() {
        assert_eq!(
            generate(json!({}), json!({"format": "uuid"}), Fill::Everything),
            json!(UUID)
        );
        assert_eq!(
            generate(json!({}), json!({"items": {"type": "boolean"}}), Fill::Everything),
            json!([true])
        );
        assert_eq!(
            generate(
                json!({}),
                json!({"properties": {"a": {"type": "integer"}}}),
                Fill::Everything
            ),
            json!({"a": 1})
        );
        assert_eq!(generate(json!({}), json!({}), Fill::Everything), json!({}));
        assert_eq!(
            generate(json!({}), json!({"type": ["string", "null"]}), Fill::Everything),
            json!("string")
        );
    }
}
