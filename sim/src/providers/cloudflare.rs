//! Cloudflare API v4 (DNS): zones, DNS records (CRUD, filters, batch) and token verification, in
//! Cloudflare's envelope (`{success, errors:[{code,message}], messages, result, result_info}`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};

use super::common::{Params, body_json, param, rfc3339_micros, str_field};
use crate::config::Provider;
use crate::error::{ApiError, ApiResult, reply};
use crate::gate::Ctx;
use crate::paging::{self, Query as Q, cloudflare_one};
use crate::world::{Record, World, Zone, hex_id};

const P: Provider = Provider::Cloudflare;

/// The account every zone belongs to.
const ACCOUNT_ID: &str = "5c1e7a0e0f0f4c5fb0f5c1e7a0e0f0f4";

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/user/tokens/verify", get(verify))
        .route("/zones", get(list_zones).post(create_zone))
        .route("/zones/{zone}", get(get_zone).delete(delete_zone))
        .route("/zones/{zone}/dns_records", get(list_records).post(create_record))
        .route("/zones/{zone}/dns_records/batch", post(batch))
        .route(
            "/zones/{zone}/dns_records/{id}",
            get(get_record)
                .patch(patch_record)
                .put(put_record)
                .delete(delete_record),
        )
}

/// Adds the configured zones that do not exist yet.
pub(crate) fn seed(world: &mut World, names: &[String]) {
    for name in names {
        let name = name.trim().trim_end_matches('.').to_lowercase();
        if !name.is_empty() && !world.zones.iter().any(|z| z.provider == P && z.name == name) {
            world.zones.push(new_zone(&name));
        }
    }
}

fn new_zone(name: &str) -> Zone {
    Zone {
        provider: P,
        id: hex_id(),
        name: name.to_owned(),
        records: Vec::new(),
        tags: Vec::new(),
        created: Utc::now(),
        extra: Default::default(),
    }
}

fn ok(result: Value) -> ApiResult {
    Ok(reply(StatusCode::OK, cloudflare_one(result)))
}

fn bad(code: u32, message: impl Into<String>) -> ApiError {
    ApiError::new(P, StatusCode::BAD_REQUEST, message).code(code)
}

fn zone_not_found() -> ApiError {
    ApiError::not_found(P)
}

fn record_not_found() -> ApiError {
    ApiError::new(P, StatusCode::NOT_FOUND, "Record does not exist.").code(81044)
}

async fn verify() -> ApiResult {
    Ok(reply(
        StatusCode::OK,
        json!({
            "success": true,
            "errors": [],
            "messages": [{ "code": 10000, "message": "This API Token is valid and active", "type": null }],
            "result": { "id": "f267e341f3dd4697bd3b9f71dd96247f", "status": "active" },
        }),
    ))
}

fn zone_json(z: &Zone) -> Value {
    let time = rfc3339_micros(z.created);
    json!({
        "id": z.id,
        "name": z.name,
        "status": "active",
        "paused": false,
        "type": "full",
        "development_mode": 0,
        "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
        "original_name_servers": [],
        "original_registrar": null,
        "original_dnshost": null,
        "modified_on": time,
        "created_on": time,
        "activated_on": time,
        "meta": { "step": 4, "custom_certificate_quota": 0, "page_rule_quota": 3, "phishing_detected": false },
        "owner": { "id": null, "type": "user", "email": null },
        "account": { "id": ACCOUNT_ID, "name": "Simulated account" },
        "permissions": ["#dns_records:edit", "#dns_records:read", "#zone:read"],
        "plan": { "id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website", "price": 0, "currency": "USD",
            "frequency": "", "is_subscribed": false, "can_subscribe": false, "legacy_id": "free",
            "legacy_discount": false, "externally_managed": false },
    })
}

async fn list_zones(State(ctx): State<Ctx>, Query(q): Query<Q>) -> ApiResult {
    let name = q.get("name").map(|n| n.trim_end_matches('.').to_lowercase());
    let items: Vec<Value> = ctx
        .sim
        .world()
        .zones
        .iter()
        .filter(|z| z.provider == P)
        .filter(|z| name.as_ref().is_none_or(|n| *n == z.name))
        .filter(|_| q.get("status").is_none_or(|s| s == "active"))
        .map(zone_json)
        .collect();
    Ok(reply(StatusCode::OK, paging::cloudflare(items, &q, 20, 50)?))
}

async fn create_zone(State(ctx): State<Ctx>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let name = str_field(&b, "name")
        .map(|n| n.trim_end_matches('.').to_lowercase())
        .filter(|n| n.contains('.'))
        .ok_or_else(|| bad(1099, "Invalid or missing zone name"))?;
    let rendered = {
        let mut world = ctx.sim.world();
        if world.zones.iter().any(|z| z.provider == P && z.name == name) {
            return Err(bad(1061, format!("{name} already exists")));
        }
        let zone = new_zone(&name);
        let rendered = zone_json(&zone);
        world.zones.push(zone);
        rendered
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn get_zone(State(ctx): State<Ctx>, Path(pp): Path<Params>) -> ApiResult {
    let world = ctx.sim.world();
    ok(zone_json(
        world.zone(P, param(&pp, "zone")).ok_or_else(zone_not_found)?,
    ))
}

async fn delete_zone(State(ctx): State<Ctx>, Path(pp): Path<Params>) -> ApiResult {
    let id = param(&pp, "zone").to_owned();
    {
        let mut world = ctx.sim.world();
        world.zone(P, &id).ok_or_else(zone_not_found)?;
        world.zones.retain(|z| !(z.provider == P && z.id == id));
    }
    ctx.sim.changed();
    ok(json!({ "id": id }))
}

fn proxiable(kind: &str) -> bool {
    matches!(kind, "A" | "AAAA" | "CNAME")
}

fn record_json(z: &Zone, r: &Record) -> Value {
    json!({
        "id": r.id,
        "zone_id": z.id,
        "zone_name": z.name,
        "name": r.name,
        "type": r.kind,
        "content": r.content,
        "priority": r.priority,
        "proxiable": proxiable(&r.kind),
        "proxied": r.proxied.unwrap_or(false),
        "ttl": r.ttl,
        "locked": false,
        "settings": {},
        "meta": { "auto_added": false, "managed_by_apps": false, "managed_by_argo_tunnel": false },
        "comment": r.comment,
        "tags": r.tags,
        "created_on": rfc3339_micros(r.created),
        "modified_on": rfc3339_micros(r.modified),
    })
}

/// The FQDN Cloudflare stores for `name` in zone `zone` (`@` and relative names are completed).
fn fqdn(zone: &str, name: &str) -> String {
    let name = name.trim().trim_end_matches('.').to_lowercase();
    if name.is_empty() || name == "@" {
        zone.to_owned()
    } else if name == zone || name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    }
}

/// A record from a POST/PUT body, or a PATCH merged into `existing`.
fn record_from(zone: &Zone, b: &Value, existing: Option<&Record>) -> ApiResult<Record> {
    let kind = str_field(b, "type")
        .map(str::to_uppercase)
        .or_else(|| existing.map(|r| r.kind.clone()))
        .ok_or_else(|| bad(9004, "DNS record type is required"))?;
    if !matches!(
        kind.as_str(),
        "A" | "AAAA" | "CNAME" | "TXT" | "MX" | "NS" | "SRV" | "CAA" | "PTR" | "HTTPS" | "SVCB"
    ) {
        return Err(bad(9004, format!("DNS record type {kind} is invalid")));
    }
    let name = str_field(b, "name")
        .map(|n| fqdn(&zone.name, n))
        .or_else(|| existing.map(|r| r.name.clone()))
        .ok_or_else(|| bad(9007, "DNS record name is required"))?;
    let content = str_field(b, "content")
        .map(str::to_owned)
        .or_else(|| existing.map(|r| r.content.clone()))
        .ok_or_else(|| bad(9000, "DNS record content is required"))?;
    match kind.as_str() {
        "A" if content.parse::<Ipv4Addr>().is_err() => {
            return Err(bad(9005, "Content for A record must be a valid IPv4 address."));
        }
        "AAAA" if content.parse::<Ipv6Addr>().is_err() => {
            return Err(bad(9006, "Content for AAAA record must be a valid IPv6 address."));
        }
        _ => {}
    }
    let proxied = match b.get("proxied") {
        Some(Value::Bool(p)) => *p,
        Some(Value::Null) | None => existing.and_then(|r| r.proxied).unwrap_or(false),
        Some(_) => return Err(bad(9003, "proxied must be a boolean")),
    };
    if proxied && !proxiable(&kind) {
        return Err(bad(9004, format!("{kind} records cannot be proxied")));
    }
    let mut ttl = match b.get("ttl") {
        Some(Value::Null) | None => existing.map(|r| r.ttl).unwrap_or(1),
        Some(v) => v.as_u64().and_then(|t| u32::try_from(t).ok()).ok_or_else(|| {
            bad(
                9021,
                "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
            )
        })?,
    };
    if ttl != 1 && !(60..=86_400).contains(&ttl) {
        return Err(bad(
            9021,
            "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
        ));
    }
    if proxied {
        ttl = 1;
    }
    let comment = match b.get("comment") {
        Some(Value::String(c)) if c.is_empty() => None,
        Some(Value::String(c)) => Some(c.clone()),
        Some(Value::Null) => None,
        None => existing.and_then(|r| r.comment.clone()),
        Some(_) => return Err(bad(9003, "comment must be a string")),
    };
    if comment.as_ref().is_some_and(|c| c.chars().count() > 100) {
        return Err(bad(
            9100,
            "DNS record comment is too long (100 characters at most)",
        ));
    }
    let tags = match b.get("tags") {
        Some(Value::Array(t)) => t.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        Some(Value::Null) => Vec::new(),
        None => existing.map(|r| r.tags.clone()).unwrap_or_default(),
        Some(_) => return Err(bad(9003, "tags must be a list of strings")),
    };
    let priority = b
        .get("priority")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .or_else(|| existing.and_then(|r| r.priority));
    if kind == "MX" && priority.is_none() {
        return Err(bad(9000, "MX records need a priority"));
    }
    let now = Utc::now();
    Ok(Record {
        id: existing.map(|r| r.id.clone()).unwrap_or_else(hex_id),
        kind,
        name,
        content,
        ttl,
        proxied: Some(proxied),
        comment,
        tags,
        priority,
        created: existing.map(|r| r.created).unwrap_or(now),
        modified: now,
    })
}

/// Refuses a record that duplicates or conflicts with another record of the zone.
fn check_conflicts(records: &[Record], r: &Record) -> ApiResult<()> {
    let others = records.iter().filter(|o| o.id != r.id && o.name == r.name);
    for o in others {
        if o.kind == r.kind && o.content == r.content {
            return Err(bad(81058, "An identical record already exists."));
        }
        let address_like = |k: &str| matches!(k, "A" | "AAAA" | "CNAME");
        if (r.kind == "CNAME" && address_like(&o.kind)) || (o.kind == "CNAME" && address_like(&r.kind)) {
            return Err(bad(
                81053,
                "An A, AAAA, or CNAME record with that host already exists.",
            ));
        }
    }
    Ok(())
}

fn zone_of<'a>(world: &'a World, pp: &Params) -> ApiResult<&'a Zone> {
    world.zone(P, param(pp, "zone")).ok_or_else(zone_not_found)
}

fn filter_records(z: &Zone, q: &HashMap<String, String>) -> Vec<Value> {
    let lower = |k: &str| q.get(k).map(|v| v.to_lowercase());
    let name = lower("name")
        .or_else(|| lower("name.exact"))
        .map(|n| fqdn(&z.name, &n));
    let name_contains = lower("name.contains");
    let kind = q.get("type").map(|t| t.to_uppercase());
    let content = q.get("content").or_else(|| q.get("content.exact"));
    let comment = q.get("comment").or_else(|| q.get("comment.exact"));
    let tag = q.get("tag").or_else(|| q.get("tag.exact"));
    let proxied = q.get("proxied").map(|p| p == "true");
    z.records
        .iter()
        .filter(|r| name.as_ref().is_none_or(|n| r.name == *n))
        .filter(|r| name_contains.as_ref().is_none_or(|n| r.name.contains(n.as_str())))
        .filter(|r| kind.as_ref().is_none_or(|k| r.kind == *k))
        .filter(|r| content.is_none_or(|c| r.content == *c))
        .filter(|r| comment.is_none_or(|c| r.comment.as_deref() == Some(c.as_str())))
        .filter(|r| tag.is_none_or(|t| r.tags.iter().any(|x| x == t)))
        .filter(|r| proxied.is_none_or(|p| r.proxied.unwrap_or(false) == p))
        .map(|r| record_json(z, r))
        .collect()
}

async fn list_records(State(ctx): State<Ctx>, Path(pp): Path<Params>, Query(q): Query<Q>) -> ApiResult {
    let world = ctx.sim.world();
    let z = zone_of(&world, &pp)?;
    let items = filter_records(z, &q);
    Ok(reply(StatusCode::OK, paging::cloudflare(items, &q, 100, 5_000)?))
}

async fn create_record(State(ctx): State<Ctx>, Path(pp): Path<Params>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let rendered = {
        let mut world = ctx.sim.world();
        let zone_id = zone_of(&world, &pp)?.id.clone();
        let z = world.zone_mut(P, &zone_id).ok_or_else(zone_not_found)?;
        let r = record_from(z, &b, None)?;
        check_conflicts(&z.records, &r)?;
        let rendered = record_json(z, &r);
        z.records.push(r);
        rendered
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn get_record(State(ctx): State<Ctx>, Path(pp): Path<Params>) -> ApiResult {
    let world = ctx.sim.world();
    let z = zone_of(&world, &pp)?;
    let r = z
        .records
        .iter()
        .find(|r| r.id == param(&pp, "id"))
        .ok_or_else(record_not_found)?;
    ok(record_json(z, r))
}

/// Updates record `id` of zone `z` from body `b` (PUT replaces; PATCH merges).
fn update(z: &mut Zone, id: &str, b: &Value, replace: bool) -> ApiResult<Value> {
    let pos = z
        .records
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(record_not_found)?;
    let existing = z.records.get(pos).cloned().ok_or_else(record_not_found)?;
    let updated = if replace {
        for f in ["type", "name", "content"] {
            if str_field(b, f).is_none() {
                return Err(bad(9000, format!("DNS record {f} is required")));
            }
        }
        let mut r = record_from(z, b, None)?;
        r.id = existing.id.clone();
        r.created = existing.created;
        r
    } else {
        record_from(z, b, Some(&existing))?
    };
    check_conflicts(&z.records, &updated)?;
    let rendered = record_json(z, &updated);
    if let Some(slot) = z.records.get_mut(pos) {
        *slot = updated;
    }
    Ok(rendered)
}

async fn change_record(ctx: &Ctx, pp: &Params, body: &Bytes, replace: bool) -> ApiResult {
    let b = body_json(P, body)?;
    let rendered = {
        let mut world = ctx.sim.world();
        let zone_id = zone_of(&world, pp)?.id.clone();
        let z = world.zone_mut(P, &zone_id).ok_or_else(zone_not_found)?;
        update(z, param(pp, "id"), &b, replace)?
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn patch_record(State(ctx): State<Ctx>, Path(pp): Path<Params>, body: Bytes) -> ApiResult {
    change_record(&ctx, &pp, &body, false).await
}

async fn put_record(State(ctx): State<Ctx>, Path(pp): Path<Params>, body: Bytes) -> ApiResult {
    change_record(&ctx, &pp, &body, true).await
}

async fn delete_record(State(ctx): State<Ctx>, Path(pp): Path<Params>) -> ApiResult {
    let id = param(&pp, "id").to_owned();
    {
        let mut world = ctx.sim.world();
        let zone_id = zone_of(&world, &pp)?.id.clone();
        let z = world.zone_mut(P, &zone_id).ok_or_else(zone_not_found)?;
        let before = z.records.len();
        z.records.retain(|r| r.id != id);
        if z.records.len() == before {
            return Err(record_not_found());
        }
    }
    ctx.sim.changed();
    ok(json!({ "id": id }))
}

fn list_of<'a>(b: &'a Value, key: &str) -> &'a [Value] {
    b.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `POST …/dns_records/batch`: deletes, patches, puts, posts — in that order, all or nothing.
async fn batch(State(ctx): State<Ctx>, Path(pp): Path<Params>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let result = {
        let mut world = ctx.sim.world();
        let zone_id = zone_of(&world, &pp)?.id.clone();
        let original = world.zone(P, &zone_id).cloned().ok_or_else(zone_not_found)?;
        let mut z = original;
        let mut deletes = Vec::new();
        for d in list_of(&b, "deletes") {
            let id = str_field(d, "id").ok_or_else(|| bad(1004, "deletes: id is required"))?;
            let pos = z
                .records
                .iter()
                .position(|r| r.id == id)
                .ok_or_else(record_not_found)?;
            let r = z.records.remove(pos);
            deletes.push(record_json(&z, &r));
        }
        let mut patches = Vec::new();
        for p in list_of(&b, "patches") {
            let id = str_field(p, "id").ok_or_else(|| bad(1004, "patches: id is required"))?;
            patches.push(update(&mut z, id, p, false)?);
        }
        let mut puts = Vec::new();
        for p in list_of(&b, "puts") {
            let id = str_field(p, "id").ok_or_else(|| bad(1004, "puts: id is required"))?;
            puts.push(update(&mut z, id, p, true)?);
        }
        let mut posts = Vec::new();
        for p in list_of(&b, "posts") {
            let r = record_from(&z, p, None)?;
            check_conflicts(&z.records, &r)?;
            posts.push(record_json(&z, &r));
            z.records.push(r);
        }
        if let Some(slot) = world.zone_mut(P, &zone_id) {
            *slot = z;
        }
        json!({ "deletes": deletes, "patches": patches, "puts": puts, "posts": posts })
    };
    ctx.sim.changed();
    ok(result)
}
