//! Helpers the provider APIs share: request bodies, fields, ids, times and addresses.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use axum::body::Bytes;
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use ipnet::Ipv4Net;
use serde_json::{Map, Value, json};

use crate::config::Provider;
use crate::error::{ApiError, ApiResult};

/// Path parameters by name.
pub(crate) type Params = HashMap<String, String>;

/// The body as a JSON object (an empty body is `{}`); malformed JSON is a 400 in the provider's shape.
pub(crate) fn body_json(p: Provider, body: &Bytes) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(bad_json(p, "The request body must be a JSON object")),
        Err(e) => Err(bad_json(p, &format!("Malformed JSON: {e}"))),
    }
}

fn bad_json(p: Provider, message: &str) -> ApiError {
    let e = ApiError::new(p, StatusCode::BAD_REQUEST, message);
    if p == Provider::Cloudflare {
        e.code(6007)
    } else {
        e
    }
}

/// A path parameter (missing ones are empty).
pub(crate) fn param<'a>(params: &'a Params, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or("")
}

/// A non-empty string field.
pub(crate) fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A list of strings (`None` when absent or null; `Err` when not a list of strings).
pub(crate) fn str_list(v: &Value, name: &str) -> Result<Option<Vec<String>>, ()> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or(()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(()),
    }
}

/// An integer id as JSON (a number when it is one).
pub(crate) fn int_id(id: &str) -> Value {
    id.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(id))
}

/// An integer field given as a number or a numeric string.
pub(crate) fn id_field(v: &Value, name: &str) -> Option<String> {
    match v.get(name)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Linode's time format: `2018-01-02T03:04:05`.
pub(crate) fn linode_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// RFC 3339 with a `Z` (DigitalOcean, Exoscale).
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with microseconds (Cloudflare).
pub(crate) fn rfc3339_micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Vultr's time format: `2020-10-10T01:56:20+00:00`.
pub(crate) fn vultr_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// An IPv4 network from `a.b.c.d/n` or a bare address (as /32).
pub(crate) fn parse_cidr(text: &str) -> Option<Ipv4Net> {
    let text = text.trim();
    if let Ok(net) = text.parse::<Ipv4Net>() {
        return Some(net);
    }
    text.parse::<Ipv4Addr>()
        .ok()
        .and_then(|ip| Ipv4Net::new(ip, 32).ok())
}

/// Whether a network is private (RFC 1918).
pub(crate) fn is_private(net: &Ipv4Net) -> bool {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        .iter()
        .filter_map(|n| n.parse::<Ipv4Net>().ok())
        .any(|p| p.contains(net))
}

/// A deterministic fake MAC address for a machine id.
pub(crate) fn mac_address(seed: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes());
    let b: Vec<u8> = digest.iter().take(5).copied().collect();
    format!(
        "06:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b.first().copied().unwrap_or(0),
        b.get(1).copied().unwrap_or(0),
        b.get(2).copied().unwrap_or(0),
        b.get(3).copied().unwrap_or(0),
        b.get(4).copied().unwrap_or(0)
    )
}

/// A short hex fingerprint of a JSON value.
pub(crate) fn fingerprint(v: &Value) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(v.to_string().as_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// A random password.
pub(crate) fn password() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..16)
        .map(|_| {
            let chars = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            let i = rng.random_range(0..chars.len());
            char::from(chars.get(i).copied().unwrap_or(b'x'))
        })
        .collect()
}

/// The JSON type a request field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string.
    Str,
    /// An integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// An array.
    List,
    /// An object.
    Obj,
}

/// The first of `fields` that `b` holds (not null) with another JSON type than its own, as "`name` must
/// be …" — what a provider's validation refuses before it looks at anything else.
pub(crate) fn mistyped(b: &Value, fields: &[(&str, Kind)]) -> Option<String> {
    fields.iter().find_map(|(name, kind)| {
        let v = b.get(*name).filter(|v| !v.is_null())?;
        let (ok, wanted) = match kind {
            Kind::Str => (v.is_string(), "a string"),
            Kind::Int => (v.is_i64() || v.is_u64(), "an integer"),
            Kind::Bool => (v.is_boolean(), "a boolean"),
            Kind::List => (v.is_array(), "an array"),
            Kind::Obj => (v.is_object(), "an object"),
        };
        (!ok).then(|| format!("{name} must be {wanted}"))
    })
}

/// The first field of a DNS record body (create or update) with another JSON type than the provider's
/// document gives it, as [`mistyped`] says it; judged before the zone or record is looked up.
pub(crate) fn record_mistyped(p: Provider, b: &Value) -> Option<String> {
    let fields: &[(&str, Kind)] = match p {
        Provider::DigitalOcean => &[
            ("type", Kind::Str),
            ("name", Kind::Str),
            ("data", Kind::Str),
            ("ttl", Kind::Int),
            ("priority", Kind::Int),
            ("port", Kind::Int),
            ("weight", Kind::Int),
            ("flags", Kind::Int),
            ("tag", Kind::Str),
        ],
        Provider::Vultr => &[
            ("type", Kind::Str),
            ("name", Kind::Str),
            ("data", Kind::Str),
            ("ttl", Kind::Int),
            ("priority", Kind::Int),
        ],
        Provider::Exoscale => &[
            ("type", Kind::Str),
            ("name", Kind::Str),
            ("content", Kind::Str),
            ("ttl", Kind::Int),
            ("priority", Kind::Int),
        ],
        Provider::Linode | Provider::Cloudflare => &[],
    };
    mistyped(b, fields)
}
