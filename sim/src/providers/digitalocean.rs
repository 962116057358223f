//! DigitalOcean API v2: droplets (202 with `links.actions`, networks empty until booted, delete by tag),
//! actions, VPCs (201), firewalls (202) with droplet assignment, databases with firewall rules, domains
//! and records, and the region and size catalogues. Paginated with `page`/`per_page`, `links.pages`
//! and `meta.total`; errors as `{"id","message","request_id"}`; validation failures are 422.

use std::net::Ipv4Addr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use ipnet::Ipv4Net;
use serde_json::{Value, json};

use super::common::{
    Kind, Params, body_json, int_id, is_private, mistyped, param, parse_cidr, record_mistyped, rfc3339,
    str_field, str_list,
};
use crate::catalog;
use crate::config::Provider;
use crate::error::{ApiError, ApiResult, no_content, reply};
use crate::gate::{Caller, Ctx};
use crate::paging::{self, Query as Q};
use crate::world::{
    Attachment, Database, Device, Firewall, Machine, Operation, Record, Vpc, World, Zone, uuid,
};

const P: Provider = Provider::DigitalOcean;

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/regions", get(regions))
        .route("/sizes", get(sizes))
        .route(
            "/droplets",
            get(list_droplets).post(create_droplet).delete(delete_by_tag),
        )
        .route("/droplets/{id}", get(get_droplet).delete(delete_droplet))
        .route("/actions/{id}", get(get_action))
        .route("/vpcs", get(list_vpcs).post(create_vpc))
        .route(
            "/vpcs/{id}",
            get(get_vpc).put(replace_vpc).patch(update_vpc).delete(delete_vpc),
        )
        .route("/vpcs/{id}/members", get(list_vpc_members))
        .route("/firewalls", get(list_firewalls).post(create_firewall))
        .route(
            "/firewalls/{id}",
            get(get_firewall).put(put_firewall).delete(delete_firewall),
        )
        .route(
            "/firewalls/{id}/droplets",
            post(add_droplets).delete(remove_droplets),
        )
        .route("/databases", get(list_databases).post(create_database))
        .route("/databases/{id}", get(get_database).delete(delete_database))
        .route(
            "/databases/{id}/firewall",
            get(get_db_firewall).put(put_db_firewall),
        )
        .route("/domains", get(list_domains).post(create_domain))
        .route("/domains/{name}", get(get_domain).delete(delete_domain))
        .route("/domains/{name}/records", get(list_records).post(create_record))
        .route(
            "/domains/{name}/records/{id}",
            get(get_record)
                .put(update_record)
                .patch(update_record)
                .delete(delete_record),
        )
}

type Pars = Path<Params>;

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(P, StatusCode::UNPROCESSABLE_ENTITY, message)
}

fn not_found() -> ApiError {
    ApiError::not_found(P)
}

fn with(status: StatusCode, v: Value) -> ApiResult {
    Ok(reply(status, v))
}

fn page(ctx: &Ctx, path: &str, key: &str, q: &Q, items: Vec<Value>) -> ApiResult {
    let url = format!("{}{path}", ctx.sim.url(P));
    with(StatusCode::OK, paging::digitalocean(items, key, q, &url)?)
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty() && t.len() <= 255 && t.chars().all(|c| c.is_ascii_alphanumeric() || ":-_".contains(c))
}

fn tags_of(b: &Value) -> ApiResult<Vec<String>> {
    let tags = str_list(b, "tags")
        .map_err(|_| unprocessable("tags must be an array of strings"))?
        .unwrap_or_default();
    if tags.iter().any(|t| !valid_tag(t)) {
        return Err(unprocessable(
            "Tag names can only contain letters, numbers, colons, dashes and underscores, and be at most 255 characters",
        ));
    }
    Ok(tags)
}

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

// ---------------------------------------------------------------- catalogues

fn region_json(slug: &str) -> Value {
    let r = catalog::region(P, slug);
    json!({
        "name": r.map(|r| r.label).unwrap_or(slug),
        "slug": slug,
        "features": ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
        "available": true,
        "sizes": catalog::sizes(P).iter().map(|s| s.id).collect::<Vec<_>>(),
    })
}

fn size_json(s: &catalog::Size) -> Value {
    json!({
        "slug": s.id, "memory": s.memory_mb, "vcpus": s.vcpus, "disk": s.disk_gb,
        "transfer": s.transfer_gb as f64 / 1000.0, "price_monthly": s.price_monthly,
        "price_hourly": s.price_monthly / 672.0, "available": true, "description": "Basic",
        "regions": catalog::regions(P).iter().map(|r| r.id).collect::<Vec<_>>(),
    })
}

async fn regions(State(ctx): State<Ctx>, Query(q): Query<Q>) -> ApiResult {
    let items = catalog::regions(P).iter().map(|r| region_json(r.id)).collect();
    page(&ctx, "/regions", "regions", &q, items)
}

async fn sizes(State(ctx): State<Ctx>, Query(q): Query<Q>) -> ApiResult {
    let items = catalog::sizes(P).iter().map(size_json).collect();
    page(&ctx, "/sizes", "sizes", &q, items)
}

// ---------------------------------------------------------------- droplets

fn image_json(slug: Option<&str>) -> Value {
    let Some(i) = slug.and_then(|s| catalog::image(P, s)) else {
        return Value::Null;
    };
    json!({
        "id": i.number, "name": i.label, "distribution": i.distribution, "slug": i.id, "public": true,
        "regions": catalog::regions(P).iter().map(|r| r.id).collect::<Vec<_>>(),
        "created_at": "2024-01-01T00:00:00Z", "type": "base", "min_disk_size": 7, "size_gigabytes": 2.36,
        "description": "", "tags": [], "status": "available", "error_message": "",
    })
}

fn droplet_json(m: &Machine, now: chrono::DateTime<Utc>) -> Value {
    let size = catalog::size(P, &m.size);
    let booted = m.booted(now);
    let status = if !booted {
        "new"
    } else if m.stopped {
        "off"
    } else {
        "active"
    };
    let mut v4 = Vec::new();
    if booted {
        if let Some(private) = m.private_ip() {
            v4.push(json!({ "ip_address": private.to_string(), "netmask": "255.255.240.0", "gateway": "<nil>", "type": "private" }));
        }
        let o = m.public_ip.octets();
        v4.push(json!({
            "ip_address": m.public_ip.to_string(), "netmask": "255.255.255.0",
            "gateway": Ipv4Addr::new(o[0], o[1], o[2], 1).to_string(), "type": "public",
        }));
    }
    json!({
        "id": int_id(&m.id),
        "name": m.label,
        "memory": size.map(|s| s.memory_mb).unwrap_or(0),
        "vcpus": size.map(|s| s.vcpus).unwrap_or(0),
        "disk": size.map(|s| s.disk_gb).unwrap_or(0),
        "disk_info": [{ "type": "local", "size": { "amount": size.map(|s| s.disk_gb).unwrap_or(0), "unit": "gib" } }],
        "locked": false,
        "status": status,
        "kernel": null,
        "created_at": rfc3339(m.created),
        "features": ["private_networking"],
        "backup_ids": [],
        "next_backup_window": null,
        "snapshot_ids": [],
        "image": image_json(m.image.as_deref()),
        "volume_ids": [],
        "size": size.map(size_json).unwrap_or(Value::Null),
        "size_slug": m.size,
        "networks": { "v4": v4, "v6": [] },
        "region": region_json(&m.region),
        "tags": m.tags,
        "vpc_uuid": m.networks.first().map(|a| a.vpc_id.clone()),
    })
}

async fn list_droplets(State(ctx): State<Ctx>, Query(q): Query<Q>) -> ApiResult {
    let now = Utc::now();
    let items = ctx
        .sim
        .world()
        .machines
        .iter()
        .filter(|m| m.provider == P)
        .filter(|m| q.get("tag_name").is_none_or(|t| m.tags.contains(t)))
        .filter(|m| q.get("name").is_none_or(|n| m.label == *n))
        .map(|m| droplet_json(m, now))
        .collect();
    page(&ctx, "/droplets", "droplets", &q, items)
}

async fn get_droplet(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let m = world.machine(P, param(&pp, "id")).ok_or_else(not_found)?;
    ctx.sim.check_region(P, &m.region)?;
    with(StatusCode::OK, json!({ "droplet": droplet_json(m, Utc::now()) }))
}

/// The region's default VPC, created on first use (10.1xx.0.0/20, as DigitalOcean does).
fn default_vpc(world: &mut World, region: &str) -> (String, Ipv4Net) {
    if let Some(v) = world
        .vpcs
        .iter()
        .find(|v| v.provider == P && v.region == region && v.extra.get("default") == Some(&json!(true)))
        && let Some(cidr) = v.cidr
    {
        return (v.id.clone(), cidr);
    }
    let index = catalog::regions(P)
        .iter()
        .position(|r| r.id == region)
        .unwrap_or(0);
    let second = u8::try_from(100 + index % 150).unwrap_or(100);
    let preferred = Ipv4Net::new(Ipv4Addr::new(10, second, 0, 0), 20).ok();
    let cidr = world.free_range(P, 20, preferred).unwrap_or_default();
    let mut extra = serde_json::Map::new();
    extra.insert("default".into(), json!(true));
    let vpc = Vpc {
        provider: P,
        id: uuid(),
        label: format!("default-{region}"),
        region: region.to_owned(),
        description: String::new(),
        cidr: Some(cidr),
        subnets: Vec::new(),
        created: Utc::now(),
        extra,
    };
    let id = vpc.id.clone();
    world.vpcs.push(vpc);
    (id, cidr)
}

async fn create_droplet(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let sim = &ctx.sim;
    let b = body_json(P, &body)?;
    if let Some(m) = mistyped(
        &b,
        &[
            ("name", Kind::Str),
            ("region", Kind::Str),
            ("size", Kind::Str),
            ("ssh_keys", Kind::List),
            ("user_data", Kind::Str),
            ("vpc_uuid", Kind::Str),
            ("tags", Kind::List),
            ("backups", Kind::Bool),
            ("ipv6", Kind::Bool),
            ("monitoring", Kind::Bool),
        ],
    ) {
        return Err(unprocessable(m));
    }
    let names: Vec<String> = match (str_field(&b, "name"), str_list(&b, "names")) {
        (Some(n), _) => vec![n.to_owned()],
        (None, Ok(Some(ns))) if !ns.is_empty() && ns.len() <= 10 => ns,
        _ => return Err(unprocessable("Name is required")),
    };
    if names.iter().any(|n| !valid_hostname(n)) {
        return Err(unprocessable(
            "Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)",
        ));
    }
    let region = str_field(&b, "region").unwrap_or("nyc3");
    if catalog::region(P, region).is_none() {
        return Err(unprocessable(
            "You specified an invalid region for Droplet creation.",
        ));
    }
    let size = str_field(&b, "size").unwrap_or("");
    if catalog::size(P, size).is_none() {
        return Err(unprocessable(
            "You specified an invalid size for Droplet creation.",
        ));
    }
    let image = match b.get("image") {
        Some(Value::String(s)) => catalog::image(P, s).map(|i| i.id),
        Some(Value::Number(n)) => catalog::images(P)
            .iter()
            .find(|i| Some(i.number) == n.as_u64())
            .map(|i| i.id),
        _ => None,
    }
    .ok_or_else(|| unprocessable("You specified an invalid image for Droplet creation."))?;
    let tags = tags_of(&b)?;
    let vpc_uuid = str_field(&b, "vpc_uuid").map(str::to_owned);
    if let Some(v) = &vpc_uuid {
        let world = sim.world();
        match world.vpc(P, v) {
            Some(vpc) if vpc.region == region => {}
            Some(_) => {
                return Err(unprocessable(
                    "The VPC must be in the same region as the Droplet.",
                ));
            }
            None => {
                return Err(unprocessable(
                    "You specified an invalid VPC for Droplet creation.",
                ));
            }
        }
    }
    sim.check_region(P, region)?;
    sim.check_create(P, &caller.credential)?;
    let now = Utc::now();
    let (droplets, actions) = {
        let mut world = sim.world();
        let mut droplets = Vec::new();
        let mut actions = Vec::new();
        for name in &names {
            let id = world.next_id(P).to_string();
            let public_ip = sim
                .allocate_public_ip(&mut world, P, &id, name)
                .ok_or_else(|| ApiError::server(P, 500, "No IPv4 addresses are available"))?;
            let (vpc_id, cidr) = match &vpc_uuid {
                Some(v) => (
                    v.clone(),
                    world.vpc(P, v).and_then(|x| x.cidr).unwrap_or_default(),
                ),
                None => default_vpc(&mut world, region),
            };
            let networks = world
                .free_vpc_ip(P, &vpc_id, cidr)
                .map(|ip| {
                    vec![Attachment {
                        vpc_id: vpc_id.clone(),
                        subnet_id: None,
                        ip,
                        interface_id: None,
                    }]
                })
                .unwrap_or_default();
            let mut extra = serde_json::Map::new();
            if let Some(ud) = b.get("user_data").filter(|v| v.is_string()) {
                extra.insert("user_data".into(), ud.clone());
            }
            let machine = Machine {
                provider: P,
                id: id.clone(),
                label: name.clone(),
                region: region.to_owned(),
                size: size.to_owned(),
                image: Some(image.to_owned()),
                tags: tags.clone(),
                labels: Default::default(),
                public_ip,
                private_ipv4: None,
                networks,
                firewalls: Vec::new(),
                created: now,
                ready_at: sim.boots_at(P, now),
                stopped: false,
                extra,
            };
            let action_id = world.next_id(P).to_string();
            world.push_operation(Operation {
                provider: P,
                id: action_id.clone(),
                zone: region.to_owned(),
                reference_id: id,
                command: "create".into(),
                reference_kind: "droplet".into(),
                created: now,
                ready_at: machine.ready_at,
            });
            droplets.push(droplet_json(&machine, now));
            actions.push(json!({
                "id": int_id(&action_id), "rel": "create",
                "href": format!("{}/actions/{action_id}", sim.url(P)),
            }));
            world.machines.push(machine);
        }
        (droplets, actions)
    };
    sim.changed();
    let body = if names.len() == 1 && str_field(&b, "name").is_some() {
        json!({ "droplet": droplets.into_iter().next(), "links": { "actions": actions } })
    } else {
        json!({ "droplets": droplets, "links": { "actions": actions } })
    };
    with(StatusCode::ACCEPTED, body)
}

async fn delete_droplet(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let id = param(&pp, "id");
        let m = world.machine(P, id).ok_or_else(not_found)?;
        ctx.sim.check_region(P, &m.region)?;
        world.remove_machine(P, id);
    }
    ctx.sim.changed();
    Ok(no_content())
}

async fn delete_by_tag(State(ctx): State<Ctx>, Query(q): Query<Q>) -> ApiResult {
    let tag = q
        .get("tag_name")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(P, StatusCode::BAD_REQUEST, "tag_name is required"))?;
    {
        let mut world = ctx.sim.world();
        let ids: Vec<String> = world
            .machines
            .iter()
            .filter(|m| m.provider == P && m.tags.contains(tag))
            .map(|m| m.id.clone())
            .collect();
        for id in ids {
            world.remove_machine(P, &id);
        }
    }
    ctx.sim.changed();
    Ok(no_content())
}

async fn get_action(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let a = world
        .operations
        .iter()
        .find(|o| o.provider == P && o.id == param(&pp, "id"))
        .ok_or_else(not_found)?;
    let done = Utc::now() >= a.ready_at;
    with(
        StatusCode::OK,
        json!({ "action": {
            "id": int_id(&a.id),
            "status": if done { "completed" } else { "in-progress" },
            "type": a.command,
            "started_at": rfc3339(a.created),
            "completed_at": if done { json!(rfc3339(a.ready_at)) } else { Value::Null },
            "resource_id": int_id(&a.reference_id),
            "resource_type": a.reference_kind,
            "region": region_json(&a.zone),
            "region_slug": a.zone,
        }}),
    )
}

// ---------------------------------------------------------------- VPCs

fn vpc_json(v: &Vpc) -> Value {
    json!({
        "id": v.id,
        "urn": format!("do:vpc:{}", v.id),
        "name": v.label,
        "description": v.description,
        "region": v.region,
        "ip_range": v.cidr.map(|c| c.to_string()),
        "default": v.extra.get("default").cloned().unwrap_or(json!(false)),
        "created_at": rfc3339(v.created),
    })
}

fn valid_vpc_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

async fn list_vpcs(State(ctx): State<Ctx>, Query(q): Query<Q>) -> ApiResult {
    let items = ctx
        .sim
        .world()
        .vpcs
        .iter()
        .filter(|v| v.provider == P)
        .map(vpc_json)
        .collect();
    page(&ctx, "/vpcs", "vpcs", &q, items)
}

async fn create_vpc(State(ctx): State<Ctx>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    if let Some(m) = mistyped(
        &b,
        &[
            ("name", Kind::Str),
            ("region", Kind::Str),
            ("ip_range", Kind::Str),
            ("description", Kind::Str),
        ],
    ) {
        return Err(unprocessable(m));
    }
    let name = str_field(&b, "name").ok_or_else(|| unprocessable("name is required"))?;
    if !valid_vpc_name(name) {
        return Err(unprocessable(
            "name may only contain alphanumeric characters, dashes, and periods",
        ));
    }
    let region = str_field(&b, "region").ok_or_else(|| unprocessable("region is required"))?;
    if catalog::region(P, region).is_none() {
        return Err(unprocessable(format!("{region} is not a valid region")));
    }
    let requested = match str_field(&b, "ip_range") {
        Some(r) => Some(
            r.parse::<Ipv4Net>()
                .ok()
                .filter(|n| is_private(n) && (16..=28).contains(&n.prefix_len()))
                .ok_or_else(|| unprocessable("ip_range must be an RFC1918 range between /16 and /28"))?
                .trunc(),
        ),
        None => None,
    };
    ctx.sim.check_region(P, region)?;
    let rendered = {
        let mut world = ctx.sim.world();
        if world
            .vpcs
            .iter()
            .any(|v| v.provider == P && v.region == region && v.label == name)
        {
            return Err(unprocessable(
                "A VPC with this name already exists in this region",
            ));
        }
        let cidr = match requested {
            Some(c) if world.range_free(P, c) => c,
            Some(_) => {
                return Err(unprocessable(
                    "This ip range overlaps with an existing VPC network",
                ));
            }
            None => world
                .free_range(P, 20, None)
                .ok_or_else(|| unprocessable("No free ip range left"))?,
        };
        let vpc = Vpc {
            provider: P,
            id: uuid(),
            label: name.to_owned(),
            region: region.to_owned(),
            description: str_field(&b, "description").unwrap_or("").to_owned(),
            cidr: Some(cidr),
            subnets: Vec::new(),
            created: Utc::now(),
            extra: Default::default(),
        };
        let rendered = vpc_json(&vpc);
        world.vpcs.push(vpc);
        rendered
    };
    ctx.sim.changed();
    with(StatusCode::CREATED, json!({ "vpc": rendered }))
}

async fn get_vpc(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let v = world.vpc(P, param(&pp, "id")).ok_or_else(not_found)?;
    with(StatusCode::OK, json!({ "vpc": vpc_json(v) }))
}

/// `PUT /vpcs/{id}`: the whole VPC, so `name` is required; then as a `PATCH`.
async fn replace_vpc(ctx: State<Ctx>, pp: Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    if let Some(m) = mistyped(&b, &[("name", Kind::Str)]) {
        return Err(unprocessable(m));
    }
    if str_field(&b, "name").is_none() {
        return Err(unprocessable("name is required"));
    }
    update_vpc(ctx, pp, body).await
}

/// `PATCH /vpcs/{id}`: the fields given.
async fn update_vpc(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let fields = [
        ("name", Kind::Str),
        ("description", Kind::Str),
        ("default", Kind::Bool),
    ];
    if let Some(m) = mistyped(&b, &fields) {
        return Err(unprocessable(m));
    }
    let rendered = {
        let mut world = ctx.sim.world();
        let v = world.vpc_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        if let Some(n) = str_field(&b, "name") {
            if !valid_vpc_name(n) {
                return Err(unprocessable(
                    "name may only contain alphanumeric characters, dashes, and periods",
                ));
            }
            v.label = n.to_owned();
        }
        if let Some(d) = b.get("description").and_then(Value::as_str) {
            v.description = d.to_owned();
        }
        vpc_json(v)
    };
    ctx.sim.changed();
    with(StatusCode::OK, json!({ "vpc": rendered }))
}

/// What is in VPC `id`, as `GET /vpcs/{id}/members` lists it: its droplets and the database clusters on its
/// private network, each by URN, name and creation time.
fn vpc_members(world: &World, id: &str) -> Vec<Value> {
    let droplets = world
        .machines
        .iter()
        .filter(|m| m.provider == P && m.networks.iter().any(|a| a.vpc_id == id))
        .map(|m| json!({ "urn": format!("do:droplet:{}", m.id), "name": m.label, "created_at": rfc3339(m.created) }));
    let databases = world
        .databases
        .iter()
        .filter(|d| d.provider == P && d.extra.get("private_network_uuid").and_then(Value::as_str) == Some(id))
        .map(|d| json!({ "urn": format!("do:dbaas:{}", d.id), "name": d.label, "created_at": rfc3339(d.created) }));
    droplets.chain(databases).collect()
}

async fn list_vpc_members(State(ctx): State<Ctx>, Path(pp): Pars, Query(q): Query<Q>) -> ApiResult {
    let id = param(&pp, "id");
    let items: Vec<Value> = {
        let world = ctx.sim.world();
        world.vpc(P, id).ok_or_else(not_found)?;
        let kind = q.get("resource_type").map(|t| format!("do:{t}:"));
        vpc_members(&world, id)
            .into_iter()
            .filter(|m| {
                kind.as_deref()
                    .is_none_or(|k| m["urn"].as_str().is_some_and(|u| u.starts_with(k)))
            })
            .collect()
    };
    page(&ctx, &format!("/vpcs/{id}/members"), "members", &q, items)
}

/// DigitalOcean refuses to delete a region's default VPC with 403 (its specification, and a 2020 answer
/// reported in doctl#930), and a VPC with members with 409 `{"id":"conflict","message":"Can not delete VPC
/// with members"}`: the specification says 403 for that too, but the answers users report today (e.g.
/// pulumi-digitalocean#753, 2024; terraform-provider-digitalocean retries on either code) are 409, and the
/// simulator gives what the API gives.
async fn delete_vpc(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let id = param(&pp, "id");
        let v = world.vpc(P, id).ok_or_else(not_found)?;
        if v.extra.get("default") == Some(&json!(true)) {
            return Err(ApiError::new(
                P,
                StatusCode::FORBIDDEN,
                "Cannot delete a default VPC network",
            ));
        }
        if !vpc_members(&world, id).is_empty() {
            return Err(ApiError::new(
                P,
                StatusCode::CONFLICT,
                "Can not delete VPC with members",
            ));
        }
        world.vpcs.retain(|v| !(v.provider == P && v.id == id));
    }
    ctx.sim.changed();
    Ok(no_content())
}

// ---------------------------------------------------------------- firewalls

fn firewall_json(f: &Firewall, status: &str) -> Value {
    json!({
        "id": f.id,
        "name": f.label,
        "status": status,
        "created_at": rfc3339(f.created),
        "inbound_rules": f.rules.get("inbound_rules").cloned().unwrap_or(json!([])),
        "outbound_rules": f.rules.get("outbound_rules").cloned().unwrap_or(json!([])),
        "droplet_ids": f.devices.iter().map(|d| int_id(&d.machine_id)).collect::<Vec<_>>(),
        "tags": f.tags,
        "pending_changes": [],
    })
}

fn valid_ports(ports: &str) -> bool {
    if ports == "all" || ports == "0" {
        return true;
    }
    let port = |s: &str| s.parse::<u16>().is_ok_and(|p| p >= 1);
    match ports.split_once('-') {
        Some((a, b)) => port(a) && port(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok(),
        None => port(ports),
    }
}

fn validate_rules(b: &Value, key: &str, endpoint: &str) -> ApiResult<Value> {
    let rules = match b.get(key) {
        None | Some(Value::Null) => return Ok(json!([])),
        Some(Value::Array(r)) => r,
        Some(_) => return Err(unprocessable(format!("{key} must be an array"))),
    };
    for rule in rules {
        let protocol = rule.get("protocol").and_then(Value::as_str);
        if !matches!(protocol, Some("tcp" | "udp" | "icmp")) {
            return Err(unprocessable("protocol must be one of tcp, udp, icmp"));
        }
        // `firewall_rule_base` requires `ports` on every rule, ICMP too (which carries "0").
        match rule.get("ports").and_then(Value::as_str) {
            Some(p) if !valid_ports(p) => return Err(unprocessable(format!("invalid ports: {p}"))),
            None => return Err(unprocessable("ports is required")),
            Some(_) => {}
        }
        let target = rule
            .get(endpoint)
            .and_then(Value::as_object)
            .ok_or_else(|| unprocessable(format!("{endpoint} is required")))?;
        if let Some(addresses) = target.get("addresses") {
            let ok = addresses.as_array().is_some_and(|a| {
                a.iter().all(|x| {
                    x.as_str()
                        .is_some_and(|s| s.contains(':') || parse_cidr(s).is_some())
                })
            });
            if !ok {
                return Err(unprocessable("addresses must be IP addresses or CIDR ranges"));
            }
        }
        if target.values().all(|v| v.as_array().is_none_or(Vec::is_empty)) {
            return Err(unprocessable(format!(
                "{endpoint} must name at least one address, droplet, tag or load balancer"
            )));
        }
    }
    Ok(Value::Array(rules.clone()))
}

fn droplet_ids(b: &Value) -> ApiResult<Vec<String>> {
    match b.get("droplet_ids") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| {
                v.as_u64()
                    .map(|n| n.to_string())
                    .ok_or_else(|| unprocessable("droplet_ids must be integers"))
            })
            .collect(),
        Some(_) => Err(unprocessable("droplet_ids must be an array")),
    }
}

fn firewall_from(b: &Value, world: &World) -> ApiResult<(String, Value, Vec<String>, Vec<String>)> {
    let name = str_field(b, "name").ok_or_else(|| unprocessable("name is required"))?;
    if !valid_hostname(name) {
        return Err(unprocessable(
            "name may only contain letters, numbers, periods and dashes",
        ));
    }
    let rules = json!({
        "inbound_rules": validate_rules(b, "inbound_rules", "sources")?,
        "outbound_rules": validate_rules(b, "outbound_rules", "destinations")?,
    });
    let ids = droplet_ids(b)?;
    if let Some(missing) = ids.iter().find(|id| world.machine(P, id).is_none()) {
        return Err(unprocessable(format!("Droplet {missing} not found")));
    }
    Ok((name.to_owned(), rules, ids, tags_of(b)?))
}

async fn list_firewalls(State(ctx): State<Ctx>, Query(q): Query<Q>) -> ApiResult {
    let items = ctx
        .sim
        .world()
        .firewalls
        .iter()
        .filter(|f| f.provider == P)
        .map(|f| firewall_json(f, "succeeded"))
        .collect();
    page(&ctx, "/firewalls", "firewalls", &q, items)
}

fn devices(ids: &[String]) -> Vec<Device> {
    let now = Utc::now();
    ids.iter()
        .map(|id| Device {
            id: id.clone(),
            machine_id: id.clone(),
            created: now,
        })
        .collect()
}

/// A firewall body's shape — its fields' JSON types, and its `name` — judged before anything is looked
/// up (a create and a whole-firewall `PUT` alike).
fn firewall_shape(b: &Value) -> ApiResult<()> {
    if let Some(m) = mistyped(
        b,
        &[
            ("name", Kind::Str),
            ("inbound_rules", Kind::List),
            ("outbound_rules", Kind::List),
            ("droplet_ids", Kind::List),
            ("tags", Kind::List),
        ],
    ) {
        return Err(unprocessable(m));
    }
    str_field(b, "name")
        .map(|_| ())
        .ok_or_else(|| unprocessable("name is required"))
}

async fn create_firewall(State(ctx): State<Ctx>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    firewall_shape(&b)?;
    let rendered = {
        let mut world = ctx.sim.world();
        let (name, rules, ids, tags) = firewall_from(&b, &world)?;
        let now = Utc::now();
        let fw = Firewall {
            provider: P,
            id: uuid(),
            label: name,
            tags,
            rules,
            devices: devices(&ids),
            created: now,
            updated: now,
            version: 1,
            extra: Default::default(),
        };
        let rendered = firewall_json(&fw, "waiting");
        world.firewalls.push(fw);
        rendered
    };
    ctx.sim.changed();
    with(StatusCode::ACCEPTED, json!({ "firewall": rendered }))
}

async fn get_firewall(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let f = world.firewall(P, param(&pp, "id")).ok_or_else(not_found)?;
    with(
        StatusCode::OK,
        json!({ "firewall": firewall_json(f, "succeeded") }),
    )
}

async fn put_firewall(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    firewall_shape(&b)?;
    let rendered = {
        let mut world = ctx.sim.world();
        world.firewall(P, param(&pp, "id")).ok_or_else(not_found)?;
        let (name, rules, ids, tags) = firewall_from(&b, &world)?;
        let f = world.firewall_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        f.label = name;
        f.rules = rules;
        f.devices = devices(&ids);
        f.tags = tags;
        f.updated = Utc::now();
        f.version += 1;
        firewall_json(f, "waiting")
    };
    ctx.sim.changed();
    with(StatusCode::OK, json!({ "firewall": rendered }))
}

async fn delete_firewall(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let id = param(&pp, "id");
        world.firewall(P, id).ok_or_else(not_found)?;
        world.firewalls.retain(|f| !(f.provider == P && f.id == id));
    }
    ctx.sim.changed();
    Ok(no_content())
}

async fn change_droplets(ctx: &Ctx, pp: &Params, body: &Bytes, add: bool) -> ApiResult {
    let b = body_json(P, body)?;
    let ids = droplet_ids(&b)?;
    if ids.is_empty() {
        return Err(unprocessable("droplet_ids is required"));
    }
    {
        let mut world = ctx.sim.world();
        world.firewall(P, param(pp, "id")).ok_or_else(not_found)?;
        if add && let Some(missing) = ids.iter().find(|id| world.machine(P, id).is_none()) {
            return Err(unprocessable(format!("Droplet {missing} not found")));
        }
        let f = world.firewall_mut(P, param(pp, "id")).ok_or_else(not_found)?;
        if add {
            for d in devices(&ids) {
                if !f.devices.iter().any(|x| x.machine_id == d.machine_id) {
                    f.devices.push(d);
                }
            }
        } else {
            f.devices.retain(|d| !ids.contains(&d.machine_id));
        }
    }
    ctx.sim.changed();
    Ok(no_content())
}

async fn add_droplets(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    change_droplets(&ctx, &pp, &body, true).await
}

async fn remove_droplets(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    change_droplets(&ctx, &pp, &body, false).await
}

// ---------------------------------------------------------------- databases

fn db_rules(d: &Database) -> Value {
    d.extra.get("rules").cloned().unwrap_or(json!([]))
}

fn database_json(d: &Database, now: chrono::DateTime<Utc>) -> Value {
    let host = format!("{}-do-user-1-0.db.ondigitalocean.com", d.label);
    let port = 25060;
    json!({
        "id": d.id,
        "name": d.label,
        "engine": d.engine,
        "version": d.version,
        "connection": {
            "uri": format!("{}://doadmin:secret@{host}:{port}/defaultdb?sslmode=require", d.engine),
            "database": "defaultdb", "host": host, "port": port, "user": "doadmin", "ssl": true,
        },
        "private_connection": {
            "host": format!("private-{host}"), "port": port, "user": "doadmin", "ssl": true,
        },
        "users": [{ "name": "doadmin", "role": "primary" }],
        "db_names": ["defaultdb"],
        "num_nodes": d.extra.get("num_nodes").cloned().unwrap_or(json!(1)),
        "region": d.region,
        "status": if d.ready(now) { "online" } else { "creating" },
        "created_at": rfc3339(d.created),
        "maintenance_window": { "day": "tuesday", "hour": "08:00:00", "pending": false },
        "size": d.size,
        "tags": d.tags,
        "private_network_uuid": d.extra.get("private_network_uuid").cloned().unwrap_or(Value::Null),
    })
}

async fn list_databases(State(ctx): State<Ctx>, Query(q): Query<Q>) -> ApiResult {
    let now = Utc::now();
    let items: Vec<Value> = ctx
        .sim
        .world()
        .databases
        .iter()
        .filter(|d| d.provider == P)
        .filter(|d| q.get("tag_name").is_none_or(|t| d.tags.contains(t)))
        .map(|d| database_json(d, now))
        .collect();
    with(StatusCode::OK, json!({ "databases": items }))
}

async fn create_database(State(ctx): State<Ctx>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let fields = [
        ("name", Kind::Str),
        ("engine", Kind::Str),
        ("region", Kind::Str),
        ("size", Kind::Str),
        ("version", Kind::Str),
        ("num_nodes", Kind::Int),
        ("private_network_uuid", Kind::Str),
        ("tags", Kind::List),
    ];
    if let Some(m) = mistyped(&b, &fields) {
        return Err(unprocessable(m));
    }
    let name = str_field(&b, "name").ok_or_else(|| unprocessable("name is required"))?;
    let engine = str_field(&b, "engine").ok_or_else(|| unprocessable("engine is required"))?;
    if b.get("num_nodes").is_none_or(Value::is_null) {
        return Err(unprocessable("num_nodes is required"));
    }
    if !matches!(
        engine,
        "mysql" | "pg" | "valkey" | "redis" | "mongodb" | "kafka" | "opensearch"
    ) {
        return Err(unprocessable(format!("invalid engine {engine}")));
    }
    let region = str_field(&b, "region").ok_or_else(|| unprocessable("region is required"))?;
    if catalog::region(P, region).is_none() {
        return Err(unprocessable(format!("invalid region {region}")));
    }
    let size = str_field(&b, "size")
        .filter(|s| s.starts_with("db-"))
        .ok_or_else(|| unprocessable("invalid size"))?;
    let tags = tags_of(&b)?;
    ctx.sim.check_region(P, region)?;
    let now = Utc::now();
    let rendered = {
        let mut world = ctx.sim.world();
        if world.databases.iter().any(|d| d.provider == P && d.label == name) {
            return Err(unprocessable("a database cluster with this name already exists"));
        }
        let mut extra = serde_json::Map::new();
        extra.insert(
            "num_nodes".into(),
            b.get("num_nodes").cloned().unwrap_or(json!(1)),
        );
        if let Some(v) = b.get("private_network_uuid").filter(|v| v.is_string()) {
            extra.insert("private_network_uuid".into(), v.clone());
        }
        let db = Database {
            provider: P,
            id: uuid(),
            label: name.to_owned(),
            engine: engine.to_owned(),
            version: str_field(&b, "version").unwrap_or("8").to_owned(),
            region: region.to_owned(),
            size: size.to_owned(),
            allow_list: Vec::new(),
            tags,
            created: now,
            ready_at: now + chrono::Duration::from_std(ctx.sim.config.database_delay).unwrap_or_default(),
            extra,
        };
        let rendered = database_json(&db, now);
        world.databases.push(db);
        rendered
    };
    ctx.sim.changed();
    with(StatusCode::CREATED, json!({ "database": rendered }))
}

async fn get_database(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let d = world.database(P, param(&pp, "id")).ok_or_else(not_found)?;
    ctx.sim.check_region(P, &d.region)?;
    with(
        StatusCode::OK,
        json!({ "database": database_json(d, Utc::now()) }),
    )
}

async fn delete_database(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let id = param(&pp, "id");
        world.database(P, id).ok_or_else(not_found)?;
        world.databases.retain(|d| !(d.provider == P && d.id == id));
    }
    ctx.sim.changed();
    Ok(no_content())
}

async fn get_db_firewall(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let d = world.database(P, param(&pp, "id")).ok_or_else(not_found)?;
    with(StatusCode::OK, json!({ "rules": db_rules(d) }))
}

async fn put_db_firewall(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let rules = b
        .get("rules")
        .and_then(Value::as_array)
        .ok_or_else(|| unprocessable("rules is required"))?;
    if rules.len() > 100 {
        return Err(unprocessable(
            "a database cluster can have at most 100 firewall rules",
        ));
    }
    let mut parsed = Vec::new();
    for r in rules {
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        let value = r
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| unprocessable("rule value is required"))?;
        match kind {
            "ip_addr" if parse_cidr(value).is_none() => {
                return Err(unprocessable(format!(
                    "{value} is not a valid IP address or CIDR range"
                )));
            }
            "ip_addr" | "droplet" | "k8s" | "tag" | "app" => {}
            _ => {
                return Err(unprocessable(
                    "rule type must be one of ip_addr, droplet, k8s, tag, app",
                ));
            }
        }
        parsed.push((kind.to_owned(), value.to_owned()));
    }
    {
        let mut world = ctx.sim.world();
        let d = world.database_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        ctx.sim.check_region(P, &d.region)?;
        let now = rfc3339(Utc::now());
        let cluster = d.id.clone();
        d.allow_list = parsed.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let stored: Vec<Value> = parsed
            .into_iter()
            .map(|(k, v)| json!({ "uuid": uuid(), "cluster_uuid": cluster, "type": k, "value": v, "created_at": now }))
            .collect();
        d.extra.insert("rules".into(), Value::Array(stored));
    }
    ctx.sim.changed();
    Ok(no_content())
}

// ---------------------------------------------------------------- domains

fn domain_json(z: &Zone) -> Value {
    json!({ "name": z.name, "ttl": 1800, "zone_file": "" })
}

fn record_json(r: &Record) -> Value {
    json!({
        "id": int_id(&r.id),
        "type": r.kind,
        "name": r.name,
        "data": r.content,
        "priority": r.priority,
        "port": null,
        "ttl": r.ttl,
        "weight": null,
        "flags": null,
        "tag": null,
    })
}

fn zone_by_name<'a>(world: &'a World, name: &str) -> ApiResult<&'a Zone> {
    world
        .zones
        .iter()
        .find(|z| z.provider == P && z.name == name.to_lowercase())
        .ok_or_else(not_found)
}

fn zone_by_name_mut<'a>(world: &'a mut World, name: &str) -> ApiResult<&'a mut Zone> {
    world
        .zones
        .iter_mut()
        .find(|z| z.provider == P && z.name == name.to_lowercase())
        .ok_or_else(not_found)
}

async fn list_domains(State(ctx): State<Ctx>, Query(q): Query<Q>) -> ApiResult {
    let items = ctx
        .sim
        .world()
        .zones
        .iter()
        .filter(|z| z.provider == P)
        .map(domain_json)
        .collect();
    page(&ctx, "/domains", "domains", &q, items)
}

async fn create_domain(State(ctx): State<Ctx>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let name = str_field(&b, "name")
        .map(str::to_lowercase)
        .filter(|n| n.contains('.'))
        .ok_or_else(|| unprocessable("Name is invalid"))?;
    let ip = match str_field(&b, "ip_address") {
        Some(ip) => Some(
            ip.parse::<Ipv4Addr>()
                .map_err(|_| unprocessable("ip_address is invalid"))?,
        ),
        None => None,
    };
    let rendered = {
        let mut world = ctx.sim.world();
        if world.zones.iter().any(|z| z.provider == P && z.name == name) {
            return Err(unprocessable("Name already exists"));
        }
        let now = Utc::now();
        let mut records = Vec::new();
        for ns in [
            "ns1.digitalocean.com",
            "ns2.digitalocean.com",
            "ns3.digitalocean.com",
        ] {
            records.push(Record {
                id: world.next_id(P).to_string(),
                kind: "NS".into(),
                name: "@".into(),
                content: ns.into(),
                ttl: 1800,
                proxied: None,
                comment: None,
                tags: Vec::new(),
                priority: None,
                created: now,
                modified: now,
            });
        }
        if let Some(ip) = ip {
            records.push(Record {
                id: world.next_id(P).to_string(),
                kind: "A".into(),
                name: "@".into(),
                content: ip.to_string(),
                ttl: 1800,
                proxied: None,
                comment: None,
                tags: Vec::new(),
                priority: None,
                created: now,
                modified: now,
            });
        }
        let zone = Zone {
            provider: P,
            id: name.clone(),
            name,
            records,
            tags: Vec::new(),
            created: now,
            extra: Default::default(),
        };
        let rendered = domain_json(&zone);
        world.zones.push(zone);
        rendered
    };
    ctx.sim.changed();
    with(StatusCode::CREATED, json!({ "domain": rendered }))
}

async fn get_domain(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    with(
        StatusCode::OK,
        json!({ "domain": domain_json(zone_by_name(&world, param(&pp, "name"))?) }),
    )
}

async fn delete_domain(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let name = zone_by_name(&world, param(&pp, "name"))?.name.clone();
        world.zones.retain(|z| !(z.provider == P && z.name == name));
    }
    ctx.sim.changed();
    Ok(no_content())
}

/// The record types DigitalOcean's DNS holds.
const RECORD_TYPES: [&str; 9] = ["A", "AAAA", "CAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT"];

fn record_from(b: &Value, existing: Option<&Record>) -> ApiResult<Record> {
    let kind = str_field(b, "type")
        .map(str::to_uppercase)
        .or_else(|| existing.map(|r| r.kind.clone()))
        .ok_or_else(|| unprocessable("type is required"))?;
    if !RECORD_TYPES.contains(&kind.as_str()) {
        return Err(unprocessable("type is invalid"));
    }
    let name = str_field(b, "name")
        .map(str::to_owned)
        .or_else(|| existing.map(|r| r.name.clone()))
        .ok_or_else(|| unprocessable("name is required"))?;
    let data = str_field(b, "data")
        .map(str::to_owned)
        .or_else(|| existing.map(|r| r.content.clone()))
        .ok_or_else(|| unprocessable("data is required"))?;
    if kind == "A" && data.parse::<Ipv4Addr>().is_err() {
        return Err(unprocessable("Data needs to be an IPv4 address."));
    }
    let ttl = match b.get("ttl").and_then(Value::as_u64) {
        Some(t) if t < 30 => return Err(unprocessable("TTL must be at least 30 seconds")),
        Some(t) => u32::try_from(t).unwrap_or(u32::MAX),
        None => existing.map(|r| r.ttl).unwrap_or(1800),
    };
    let now = Utc::now();
    Ok(Record {
        id: existing.map(|r| r.id.clone()).unwrap_or_default(),
        kind,
        name,
        content: data,
        ttl,
        proxied: None,
        comment: None,
        tags: Vec::new(),
        priority: b
            .get("priority")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .or_else(|| existing.and_then(|r| r.priority)),
        created: existing.map(|r| r.created).unwrap_or(now),
        modified: now,
    })
}

async fn list_records(State(ctx): State<Ctx>, Path(pp): Pars, Query(q): Query<Q>) -> ApiResult {
    // The `type` filter is one of the record types the API knows.
    if let Some(t) = q.get("type")
        && !RECORD_TYPES.contains(&t.to_uppercase().as_str())
    {
        return Err(unprocessable(format!("type {t} is invalid")));
    }
    let items = {
        let world = ctx.sim.world();
        let z = zone_by_name(&world, param(&pp, "name"))?;
        let relative = |fqdn: &str| -> String {
            let fqdn = fqdn.trim_end_matches('.').to_lowercase();
            if fqdn == z.name {
                "@".into()
            } else {
                fqdn.strip_suffix(&format!(".{}", z.name))
                    .unwrap_or(&fqdn)
                    .to_owned()
            }
        };
        let name = q.get("name").map(|n| relative(n));
        z.records
            .iter()
            .filter(|r| q.get("type").is_none_or(|t| r.kind.eq_ignore_ascii_case(t)))
            .filter(|r| name.as_ref().is_none_or(|n| r.name == *n))
            .map(record_json)
            .collect()
    };
    page(
        &ctx,
        &format!("/domains/{}/records", param(&pp, "name")),
        "domain_records",
        &q,
        items,
    )
}

async fn create_record(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    if let Some(m) = record_mistyped(P, &b) {
        return Err(unprocessable(m));
    }
    let mut record = record_from(&b, None)?;
    let rendered = {
        let mut world = ctx.sim.world();
        zone_by_name(&world, param(&pp, "name"))?;
        record.id = world.next_id(P).to_string();
        let rendered = record_json(&record);
        zone_by_name_mut(&mut world, param(&pp, "name"))?
            .records
            .push(record);
        rendered
    };
    ctx.sim.changed();
    with(StatusCode::CREATED, json!({ "domain_record": rendered }))
}

async fn get_record(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let z = zone_by_name(&world, param(&pp, "name"))?;
    let r = z
        .records
        .iter()
        .find(|r| r.id == param(&pp, "id"))
        .ok_or_else(not_found)?;
    with(StatusCode::OK, json!({ "domain_record": record_json(r) }))
}

async fn update_record(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    if let Some(m) = record_mistyped(P, &b) {
        return Err(unprocessable(m));
    }
    // The record's `type` is required on an update too (`PUT` and `PATCH`), judged before the lookup.
    if str_field(&b, "type").is_none() {
        return Err(unprocessable("type is required"));
    }
    let rendered = {
        let mut world = ctx.sim.world();
        let z = zone_by_name_mut(&mut world, param(&pp, "name"))?;
        let r = z
            .records
            .iter_mut()
            .find(|r| r.id == param(&pp, "id"))
            .ok_or_else(not_found)?;
        *r = record_from(&b, Some(r))?;
        record_json(r)
    };
    ctx.sim.changed();
    with(StatusCode::OK, json!({ "domain_record": rendered }))
}

async fn delete_record(State(ctx): State<Ctx>, Path(pp): Pars) -> Result<Response, ApiError> {
    {
        let mut world = ctx.sim.world();
        let z = zone_by_name_mut(&mut world, param(&pp, "name"))?;
        let before = z.records.len();
        z.records.retain(|r| r.id != param(&pp, "id"));
        if z.records.len() == before {
            return Err(not_found());
        }
    }
    ctx.sim.changed();
    Ok(no_content())
}
