//! Linode API v4 (also under `/v4beta`): instances and their IPs, VPCs and subnets, Cloud Firewalls
//! with rules and devices, managed databases with allow-lists, domains and records, and the region,
//! type and image catalogues. Paginated with `page`/`page_size`, filtered with `X-Filter`, errors as
//! `{"errors":[{"reason","field"}]}`, everything 200 (DELETE answers `{}`), as the recordings show.

use std::net::Ipv4Addr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use chrono::Utc;
use ipnet::Ipv4Net;
use serde_json::{Value, json};

use super::common::{
    Params, body_json, fingerprint, id_field, int_id, is_private, linode_time, param, parse_cidr, str_field,
    str_list,
};
use crate::catalog;
use crate::config::Provider;
use crate::error::{ApiError, ApiResult, reply};
use crate::filter;
use crate::gate::{Caller, Ctx};
use crate::paging::{self, Query as Q};
use crate::world::{Attachment, Database, Device, Firewall, Machine, Record, Subnet, Vpc, World, Zone};

const P: Provider = Provider::Linode;

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/regions", get(regions))
        .route("/linode/types", get(types))
        .route("/images", get(images))
        .route("/linode/instances", get(list_instances).post(create_instance))
        .route(
            "/linode/instances/{id}",
            get(get_instance).put(update_instance).delete(delete_instance),
        )
        .route("/linode/instances/{id}/ips", get(instance_ips))
        .route("/linode/instances/{id}/firewalls", get(instance_firewalls))
        .route("/linode/instances/{id}/boot", post(boot))
        .route("/linode/instances/{id}/reboot", post(boot))
        .route("/linode/instances/{id}/shutdown", post(shutdown))
        .route("/vpcs", get(list_vpcs).post(create_vpc))
        .route("/vpcs/{id}", get(get_vpc).put(update_vpc).delete(delete_vpc))
        .route("/vpcs/{id}/subnets", get(list_subnets).post(create_subnet))
        .route("/vpcs/{id}/subnets/{sid}", get(get_subnet).delete(delete_subnet))
        .route("/networking/firewalls", get(list_firewalls).post(create_firewall))
        .route(
            "/networking/firewalls/{id}",
            get(get_firewall).put(update_firewall).delete(delete_firewall),
        )
        .route("/networking/firewalls/{id}/rules", get(get_rules).put(put_rules))
        .route(
            "/networking/firewalls/{id}/devices",
            get(list_devices).post(add_device),
        )
        .route(
            "/networking/firewalls/{id}/devices/{did}",
            get(get_device).delete(delete_device),
        )
        .route("/databases/instances", get(list_all_databases))
        .route(
            "/databases/{engine}/instances",
            get(list_databases).post(create_database),
        )
        .route(
            "/databases/{engine}/instances/{id}",
            get(get_database).put(update_database).delete(delete_database),
        )
        .route("/domains", get(list_domains).post(create_domain))
        .route(
            "/domains/{id}",
            get(get_domain).put(update_domain).delete(delete_domain),
        )
        .route("/domains/{id}/records", get(list_records).post(create_record))
        .route(
            "/domains/{id}/records/{rid}",
            get(get_record).put(update_record).delete(delete_record),
        )
}

type Pars = Path<Params>;

fn ok(v: Value) -> ApiResult {
    Ok(reply(StatusCode::OK, v))
}

fn deleted() -> ApiResult {
    ok(json!({}))
}

fn invalid(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::invalid(P, field, reason)
}

fn not_found() -> ApiError {
    ApiError::not_found(P)
}

/// Filters (`X-Filter`) and paginates.
fn page(headers: &HeaderMap, q: &Q, items: Vec<Value>) -> ApiResult {
    let header = headers.get("x-filter").and_then(|v| v.to_str().ok());
    let items = filter::apply(header, items)
        .map_err(|e| ApiError::new(P, StatusCode::BAD_REQUEST, format!("Invalid X-Filter: {e}")))?;
    ok(paging::linode(items, q)?)
}

fn valid_label(label: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&label.chars().count())
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && label.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn tags_of(body: &Value) -> ApiResult<Vec<String>> {
    let tags = str_list(body, "tags")
        .map_err(|_| invalid("tags", "Must be a list of strings"))?
        .unwrap_or_default();
    if let Some(bad) = tags.iter().find(|t| !(3..=50).contains(&t.chars().count())) {
        return Err(invalid(
            "tags",
            format!("Length must be 3-50 characters: {bad:?}"),
        ));
    }
    Ok(tags)
}

// ---------------------------------------------------------------- catalogues

async fn regions(headers: HeaderMap, Query(q): Query<Q>) -> ApiResult {
    let items = catalog::regions(P)
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "label": r.label, "country": r.country, "status": "ok", "site_type": "core",
                "capabilities": ["Linodes", "Backups", "NodeBalancers", "Block Storage", "Object Storage",
                    "Kubernetes", "Cloud Firewall", "Vlans", "VPCs", "Managed Databases", "Metadata"],
            })
        })
        .collect();
    page(&headers, &q, items)
}

async fn types(headers: HeaderMap, Query(q): Query<Q>) -> ApiResult {
    let items = catalog::sizes(P)
        .iter()
        .map(|s| {
            let class = if s.id.contains("nanode") {
                "nanode"
            } else if s.id.contains("dedicated") {
                "dedicated"
            } else {
                "standard"
            };
            json!({
                "id": s.id, "label": s.id, "class": class, "vcpus": s.vcpus, "memory": s.memory_mb,
                "disk": s.disk_gb * 1024, "transfer": s.transfer_gb, "gpus": 0,
                "price": { "monthly": s.price_monthly, "hourly": s.price_monthly / 730.0 },
            })
        })
        .collect();
    page(&headers, &q, items)
}

async fn images(headers: HeaderMap, Query(q): Query<Q>) -> ApiResult {
    let items = catalog::images(P)
        .iter()
        .map(|i| {
            json!({
                "id": i.id, "label": i.label, "vendor": i.distribution, "is_public": true,
                "type": "manual", "status": "available", "deprecated": false, "size": 2500,
            })
        })
        .collect();
    page(&headers, &q, items)
}

// ---------------------------------------------------------------- instances

fn instance_json(m: &Machine, now: chrono::DateTime<Utc>) -> Value {
    let status = if !m.booted(now) {
        "provisioning"
    } else if m.stopped {
        "offline"
    } else {
        "running"
    };
    let size = catalog::size(P, &m.size);
    let mut ipv4 = vec![m.public_ip.to_string()];
    if let Some(private) = m.private_ipv4 {
        ipv4.push(private.to_string());
    }
    json!({
        "id": int_id(&m.id),
        "label": m.label,
        "group": "",
        "status": status,
        "created": linode_time(m.created),
        "updated": linode_time(m.created),
        "type": m.size,
        "ipv4": ipv4,
        "ipv6": format!("2600:3c00::{:x}/128", m.id.parse::<u64>().unwrap_or(0) & 0xffff),
        "image": m.image,
        "region": m.region,
        "site_type": "core",
        "specs": {
            "disk": size.map(|s| s.disk_gb * 1024).unwrap_or(0),
            "memory": size.map(|s| s.memory_mb).unwrap_or(0),
            "vcpus": size.map(|s| s.vcpus).unwrap_or(0),
            "gpus": 0,
            "transfer": size.map(|s| s.transfer_gb).unwrap_or(0),
            "accelerated_devices": 0,
        },
        "alerts": { "cpu": 90, "network_in": 10, "network_out": 10, "transfer_quota": 80, "io": 10000 },
        "backups": {
            "enabled": false, "available": false,
            "schedule": { "day": null, "window": null }, "last_successful": null,
        },
        "hypervisor": "kvm",
        "watchdog_enabled": true,
        "tags": m.tags,
        "host_uuid": format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(m.region.as_bytes())),
        "has_user_data": m.extra.get("user_data").is_some(),
        "placement_group": null,
        "disk_encryption": "enabled",
        "lke_cluster_id": null,
        "capabilities": [],
        "interface_generation": m.extra_str("interface_generation").unwrap_or("legacy_config"),
        "maintenance_policy": "linode/migrate",
        "locks": [],
    })
}

async fn list_instances(State(ctx): State<Ctx>, headers: HeaderMap, Query(q): Query<Q>) -> ApiResult {
    let now = Utc::now();
    let items = ctx
        .sim
        .world()
        .machines
        .iter()
        .filter(|m| m.provider == P)
        .map(|m| instance_json(m, now))
        .collect();
    page(&headers, &q, items)
}

fn machine<'a>(world: &'a World, id: &str) -> ApiResult<&'a Machine> {
    world.machine(P, id).ok_or_else(not_found)
}

async fn get_instance(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let m = machine(&world, param(&pp, "id"))?;
    ctx.sim.check_region(P, &m.region)?;
    ok(instance_json(m, Utc::now()))
}

/// A VPC interface asked for at creation.
struct VpcInterface {
    subnet_id: String,
    ip: Option<Ipv4Addr>,
    nat_1_1: bool,
}

fn vpc_interfaces(body: &Value) -> ApiResult<Vec<VpcInterface>> {
    let Some(list) = body.get("interfaces").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, iface) in list.iter().enumerate() {
        // Legacy: {purpose:"vpc", subnet_id, ipv4:{vpc, nat_1_1}}; new: {vpc:{subnet_id, ipv4:{addresses}}}.
        let legacy = iface.get("purpose").and_then(Value::as_str) == Some("vpc");
        let modern = iface.get("vpc").filter(|v| v.is_object());
        if !legacy && modern.is_none() {
            continue;
        }
        let src = modern.unwrap_or(iface);
        let subnet_id = id_field(src, "subnet_id")
            .ok_or_else(|| invalid(&format!("interfaces[{i}].subnet_id"), "subnet_id is required"))?;
        let ipv4 = src.get("ipv4");
        let requested = ipv4
            .and_then(|v| v.get("vpc"))
            .and_then(Value::as_str)
            .filter(|s| *s != "auto");
        let ip = requested
            .map(|s| {
                s.parse::<Ipv4Addr>().map_err(|_| {
                    invalid(
                        &format!("interfaces[{i}].ipv4.vpc"),
                        "Must be a valid IPv4 address",
                    )
                })
            })
            .transpose()?;
        let nat_1_1 = ipv4.and_then(|v| v.get("nat_1_1")).and_then(Value::as_str) == Some("any")
            || ipv4
                .and_then(|v| v.get("addresses"))
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x.get("nat_1_1_address").is_some()));
        out.push(VpcInterface {
            subnet_id,
            ip,
            nat_1_1,
        });
    }
    Ok(out)
}

fn find_subnet<'a>(world: &'a World, subnet_id: &str) -> Option<(&'a Vpc, &'a Subnet)> {
    world
        .vpcs
        .iter()
        .filter(|v| v.provider == P)
        .find_map(|v| v.subnets.iter().find(|s| s.id == subnet_id).map(|s| (v, s)))
}

fn linode_private_ip(world: &World) -> Option<Ipv4Addr> {
    let range: Ipv4Net = "192.168.128.0/17".parse().ok()?;
    range.hosts().find(|ip| {
        !world
            .machines
            .iter()
            .any(|m| m.provider == P && m.private_ipv4 == Some(*ip))
    })
}

async fn create_instance(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let sim = &ctx.sim;
    let b = body_json(P, &body)?;
    let region = str_field(&b, "region").ok_or_else(|| invalid("region", "region is required"))?;
    let ty = str_field(&b, "type").ok_or_else(|| invalid("type", "type is required"))?;
    if catalog::region(P, region).is_none() {
        return Err(invalid("region", "region is not valid"));
    }
    if catalog::size(P, ty).is_none() {
        return Err(invalid("type", "A valid plan type by that ID was not found"));
    }
    let image = str_field(&b, "image");
    if let Some(image) = image {
        if catalog::image(P, image).is_none() {
            return Err(invalid("image", format!("No image with ID {image} exists")));
        }
        if str_field(&b, "root_pass").is_none() {
            return Err(invalid(
                "root_pass",
                "root_pass is required when deploying an image",
            ));
        }
    }
    let label = str_field(&b, "label").map(str::to_owned);
    if let Some(l) = &label
        && !valid_label(l, 3, 64)
    {
        return Err(invalid(
            "label",
            "Label must be 3-64 characters of letters, numbers, dashes, underscores and periods, starting with a letter or number",
        ));
    }
    let tags = tags_of(&b)?;
    let firewall_id = id_field(&b, "firewall_id");
    let interfaces = vpc_interfaces(&b)?;
    let private_ip = b.get("private_ip").and_then(Value::as_bool).unwrap_or(false);
    // `booted: false` leaves the Linode offline once provisioned (it never answers until booted).
    let booted = b.get("booted").and_then(Value::as_bool).unwrap_or(true);
    let user_data = b.pointer("/metadata/user_data").cloned();
    let interface_generation = str_field(&b, "interface_generation").map(str::to_owned);
    {
        let world = sim.world();
        if let Some(l) = &label
            && world.machines.iter().any(|m| m.provider == P && &m.label == l)
        {
            return Err(invalid("label", "Label must be unique among your linodes"));
        }
        if let Some(fw) = &firewall_id
            && world.firewall(P, fw).is_none()
        {
            return Err(invalid("firewall_id", "Firewall not found"));
        }
        for (i, iface) in interfaces.iter().enumerate() {
            let Some((vpc, subnet)) = find_subnet(&world, &iface.subnet_id) else {
                return Err(invalid(&format!("interfaces[{i}].subnet_id"), "Subnet not found"));
            };
            if vpc.region != region {
                return Err(invalid(
                    &format!("interfaces[{i}].subnet_id"),
                    "The VPC must be in the same region as the Linode",
                ));
            }
            if let Some(ip) = iface.ip
                && !subnet.cidr.contains(&ip)
            {
                return Err(invalid(
                    &format!("interfaces[{i}].ipv4.vpc"),
                    "Address is not in the subnet",
                ));
            }
        }
    }
    sim.check_region(P, region)?;
    sim.check_create(P, &caller.credential)?;

    let now = Utc::now();
    let rendered = {
        let mut world = sim.world();
        // Checked again under the lock that inserts: two concurrent creates with one label must not both win.
        if let Some(l) = &label
            && world.machines.iter().any(|m| m.provider == P && &m.label == l)
        {
            return Err(invalid("label", "Label must be unique among your linodes"));
        }
        let id = world.next_id(P).to_string();
        let label = label.unwrap_or_else(|| format!("linode{id}"));
        let public_ip = sim
            .allocate_public_ip(&mut world, P, &id, &label)
            .ok_or_else(|| ApiError::server(P, 500, "No IPv4 addresses are available"))?;
        let mut networks = Vec::new();
        for (i, iface) in interfaces.iter().enumerate() {
            let Some((vpc, subnet)) = find_subnet(&world, &iface.subnet_id) else {
                return Err(invalid(&format!("interfaces[{i}].subnet_id"), "Subnet not found"));
            };
            let (vpc_id, cidr) = (vpc.id.clone(), subnet.cidr);
            let ip = match iface.ip {
                Some(ip) => ip,
                None => world.free_vpc_ip(P, &vpc_id, cidr).ok_or_else(|| {
                    invalid(
                        &format!("interfaces[{i}].subnet_id"),
                        "No addresses left in the subnet",
                    )
                })?,
            };
            networks.push(Attachment {
                vpc_id,
                subnet_id: Some(iface.subnet_id.clone()),
                ip,
                interface_id: Some(world.next_id(P).to_string()),
            });
        }
        let private_ipv4 = if private_ip {
            linode_private_ip(&world)
        } else {
            None
        };
        let mut extra = serde_json::Map::new();
        if let Some(ud) = user_data {
            extra.insert("user_data".into(), ud);
        }
        if let Some(g) = interface_generation {
            extra.insert("interface_generation".into(), json!(g));
        }
        if interfaces.iter().any(|i| i.nat_1_1) {
            extra.insert("nat_1_1".into(), json!(true));
        }
        extra.insert("config_id".into(), json!(world.next_id(P)));
        let machine = Machine {
            provider: P,
            id: id.clone(),
            label,
            region: region.to_owned(),
            size: ty.to_owned(),
            image: image.map(str::to_owned),
            tags,
            labels: Default::default(),
            public_ip,
            private_ipv4,
            networks,
            firewalls: firewall_id.iter().cloned().collect(),
            created: now,
            ready_at: sim.boots_at(P, now),
            stopped: !booted,
            extra,
        };
        if let Some(fw_id) = &firewall_id {
            let device_id = world.next_id(P).to_string();
            if let Some(fw) = world.firewall_mut(P, fw_id) {
                fw.devices.push(Device {
                    id: device_id,
                    machine_id: id.clone(),
                    created: now,
                });
            }
        }
        let rendered = instance_json(&machine, now);
        world.machines.push(machine);
        rendered
    };
    sim.changed();
    tracing::info!(provider = %P, id = %rendered["id"], "machine created");
    ok(rendered)
}

async fn update_instance(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let label = str_field(&b, "label").map(str::to_owned);
    let tags = if b.get("tags").is_some() {
        Some(tags_of(&b)?)
    } else {
        None
    };
    let rendered = {
        let mut world = ctx.sim.world();
        let id = param(&pp, "id");
        if let Some(l) = &label {
            if !valid_label(l, 3, 64) {
                return Err(invalid(
                    "label",
                    "Label must be 3-64 characters of letters, numbers, dashes, underscores and periods",
                ));
            }
            if world
                .machines
                .iter()
                .any(|m| m.provider == P && &m.label == l && m.id != id)
            {
                return Err(invalid("label", "Label must be unique among your linodes"));
            }
        }
        let m = world.machine_mut(P, id).ok_or_else(not_found)?;
        if let Some(l) = label {
            m.label = l;
        }
        if let Some(t) = tags {
            m.tags = t;
        }
        instance_json(m, Utc::now())
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn delete_instance(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let m = machine(&world, param(&pp, "id"))?;
        ctx.sim.check_region(P, &m.region)?;
        world.remove_machine(P, param(&pp, "id"));
    }
    ctx.sim.changed();
    deleted()
}

async fn set_stopped(ctx: &Ctx, pp: &Params, stopped: bool) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let m = world.machine_mut(P, param(pp, "id")).ok_or_else(not_found)?;
        m.stopped = stopped;
    }
    ctx.sim.changed();
    ok(json!({}))
}

async fn boot(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    set_stopped(&ctx, &pp, false).await
}

async fn shutdown(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    set_stopped(&ctx, &pp, true).await
}

async fn instance_ips(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let m = machine(&world, param(&pp, "id"))?;
    ctx.sim.check_region(P, &m.region)?;
    let linode_id = int_id(&m.id);
    let nat = m.extra.get("nat_1_1").and_then(Value::as_bool).unwrap_or(false);
    let first_vpc = m.networks.first();
    let gateway = |ip: Ipv4Addr| {
        let o = ip.octets();
        Ipv4Addr::new(o[0], o[1], o[2], 1).to_string()
    };
    let mut public = json!({
        "address": m.public_ip.to_string(),
        "gateway": gateway(m.public_ip),
        "subnet_mask": "255.255.255.0",
        "prefix": 24,
        "type": "ipv4",
        "public": true,
        "rdns": format!("{}.ip.linodeusercontent.com", m.public_ip.to_string().replace('.', "-")),
        "linode_id": linode_id,
        "interface_id": null,
        "region": m.region,
        "vpc_nat_1_1": null,
        "reserved": false,
    });
    if nat && let Some(a) = first_vpc {
        public["vpc_nat_1_1"] = json!({
            "vpc_id": int_id(&a.vpc_id),
            "subnet_id": a.subnet_id.as_deref().map(int_id),
            "address": a.ip.to_string(),
        });
    }
    let private: Vec<Value> = m
        .private_ipv4
        .iter()
        .map(|ip| {
            json!({
                "address": ip.to_string(), "gateway": null, "subnet_mask": "255.255.128.0", "prefix": 17,
                "type": "ipv4", "public": false, "rdns": null, "linode_id": linode_id, "interface_id": null,
                "region": m.region, "vpc_nat_1_1": null, "reserved": false,
            })
        })
        .collect();
    let vpc: Vec<Value> = m
        .networks
        .iter()
        .map(|a| {
            let subnet = a
                .subnet_id
                .as_deref()
                .and_then(|s| find_subnet(&world, s))
                .map(|(_, s)| s.cidr);
            json!({
                "address": a.ip.to_string(),
                "address_range": null,
                "vpc_id": int_id(&a.vpc_id),
                "subnet_id": a.subnet_id.as_deref().map(int_id),
                "region": m.region,
                "linode_id": linode_id,
                "config_id": m.extra.get("config_id").cloned().unwrap_or(Value::Null),
                "interface_id": a.interface_id.as_deref().map(int_id),
                "nodebalancer_id": null,
                "database_id": null,
                "active": m.booted(Utc::now()),
                "nat_1_1": if nat { json!(m.public_ip.to_string()) } else { Value::Null },
                "gateway": subnet.and_then(|s| s.hosts().next()).map(|g| g.to_string()),
                "prefix": subnet.map(|s| s.prefix_len()),
                "subnet_mask": subnet.map(|s| s.netmask().to_string()),
            })
        })
        .collect();
    ok(json!({
        "ipv4": { "public": [public], "private": private, "shared": [], "reserved": [], "vpc": vpc },
        "ipv6": {
            "slaac": { "address": "2600:3c00::1", "prefix": 64, "type": "ipv6", "public": true,
                "linode_id": linode_id, "region": m.region, "rdns": null, "gateway": "fe80::1",
                "subnet_mask": "ffff:ffff:ffff:ffff::" },
            "link_local": { "address": "fe80::1", "prefix": 64, "type": "ipv6", "public": false,
                "linode_id": linode_id, "region": m.region, "rdns": null, "gateway": "fe80::1",
                "subnet_mask": "ffff:ffff:ffff:ffff::" },
            "global": [],
            "vpc": [],
        },
    }))
}

async fn instance_firewalls(
    State(ctx): State<Ctx>,
    Path(pp): Pars,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> ApiResult {
    let world = ctx.sim.world();
    let id = param(&pp, "id");
    machine(&world, id)?;
    let items = world
        .firewalls
        .iter()
        .filter(|f| f.provider == P && f.devices.iter().any(|d| d.machine_id == id))
        .map(|f| firewall_json(f, &world))
        .collect();
    page(&headers, &q, items)
}

// ---------------------------------------------------------------- VPCs

fn subnet_json(world: &World, vpc: &Vpc, s: &Subnet) -> Value {
    let linodes: Vec<Value> = world
        .machines
        .iter()
        .filter(|m| m.provider == P)
        .filter_map(|m| {
            let a = m
                .networks
                .iter()
                .find(|a| a.vpc_id == vpc.id && a.subnet_id.as_deref() == Some(&s.id))?;
            Some(json!({
                "id": int_id(&m.id),
                "interfaces": [{
                    "id": a.interface_id.as_deref().map(int_id),
                    "config_id": m.extra.get("config_id").cloned().unwrap_or(Value::Null),
                    "active": m.booted(Utc::now()),
                }],
            }))
        })
        .collect();
    let databases: Vec<Value> = world
        .databases
        .iter()
        .filter(|d| d.provider == P)
        .filter(|d| database_network(d).is_some_and(|(v, subnet)| v == vpc.id && subnet == s.id))
        .map(|d| json!({ "id": int_id(&d.id), "ipv4_range": null, "ipv6_ranges": [] }))
        .collect();
    json!({
        "id": int_id(&s.id),
        "label": s.label,
        "ipv4": s.cidr.to_string(),
        "ipv6": null,
        "linodes": linodes,
        "databases": databases,
        "nodebalancers": [],
        "created": linode_time(s.created),
        "updated": linode_time(s.created),
    })
}

fn vpc_json(world: &World, v: &Vpc) -> Value {
    json!({
        "id": int_id(&v.id),
        "label": v.label,
        "description": v.description,
        "region": v.region,
        "ipv4": [{ "range": "10.0.0.0/8" }, { "range": "172.16.0.0/12" }, { "range": "192.168.0.0/16" }],
        "ipv6": null,
        "subnets": v.subnets.iter().map(|s| subnet_json(world, v, s)).collect::<Vec<_>>(),
        "vpc_type": "regular",
        "created": linode_time(v.created),
        "updated": linode_time(v.created),
    })
}

fn valid_vpc_label(label: &str) -> bool {
    (1..=64).contains(&label.len())
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn parse_subnet(world: &mut World, vpc: &Vpc, s: &Value, field: &str) -> ApiResult<Subnet> {
    let label =
        str_field(s, "label").ok_or_else(|| invalid(&format!("{field}.label"), "Label is required"))?;
    if !valid_vpc_label(label) {
        return Err(invalid(
            &format!("{field}.label"),
            "Must only use ASCII letters, numbers, and underscores",
        ));
    }
    let cidr = str_field(s, "ipv4")
        .and_then(|t| t.parse::<Ipv4Net>().ok())
        .filter(is_private)
        .ok_or_else(|| {
            invalid(
                &format!("{field}.ipv4"),
                "Must be an RFC1918 IPv4 range in CIDR notation",
            )
        })?;
    if vpc.subnets.iter().any(|x| x.label == label) {
        return Err(invalid(
            &format!("{field}.label"),
            "Label must be unique among the VPC's subnets",
        ));
    }
    if vpc
        .subnets
        .iter()
        .any(|x| x.cidr.contains(&cidr.network()) || cidr.contains(&x.cidr.network()))
    {
        return Err(invalid(
            &format!("{field}.ipv4"),
            "Overlaps with an existing subnet",
        ));
    }
    Ok(Subnet {
        id: world.next_id(P).to_string(),
        label: label.to_owned(),
        cidr: cidr.trunc(),
        created: Utc::now(),
    })
}

async fn list_vpcs(State(ctx): State<Ctx>, headers: HeaderMap, Query(q): Query<Q>) -> ApiResult {
    let world = ctx.sim.world();
    let items = world
        .vpcs
        .iter()
        .filter(|v| v.provider == P)
        .map(|v| vpc_json(&world, v))
        .collect();
    page(&headers, &q, items)
}

async fn create_vpc(State(ctx): State<Ctx>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let label = str_field(&b, "label").ok_or_else(|| invalid("label", "Label is required"))?;
    if !valid_vpc_label(label) {
        return Err(invalid(
            "label",
            "Must only use ASCII letters, numbers, and underscores",
        ));
    }
    let region = str_field(&b, "region").ok_or_else(|| invalid("region", "region is required"))?;
    if catalog::region(P, region).is_none() {
        return Err(invalid("region", "region is not valid"));
    }
    ctx.sim.check_region(P, region)?;
    let rendered = {
        let mut world = ctx.sim.world();
        if world.vpcs.iter().any(|v| v.provider == P && v.label == label) {
            return Err(invalid("label", "Label must be unique among your VPCs"));
        }
        let mut vpc = Vpc {
            provider: P,
            id: world.next_id(P).to_string(),
            label: label.to_owned(),
            region: region.to_owned(),
            description: str_field(&b, "description").unwrap_or("").to_owned(),
            cidr: None,
            subnets: Vec::new(),
            created: Utc::now(),
            extra: Default::default(),
        };
        if let Some(subnets) = b.get("subnets").and_then(Value::as_array) {
            for (i, s) in subnets.iter().enumerate() {
                let subnet = parse_subnet(&mut world, &vpc, s, &format!("subnets[{i}]"))?;
                vpc.subnets.push(subnet);
            }
        }
        let rendered = vpc_json(&world, &vpc);
        world.vpcs.push(vpc);
        rendered
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn get_vpc(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let v = world.vpc(P, param(&pp, "id")).ok_or_else(not_found)?;
    ok(vpc_json(&world, v))
}

async fn update_vpc(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let rendered = {
        let mut world = ctx.sim.world();
        let v = world.vpc_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        if let Some(l) = str_field(&b, "label") {
            if !valid_vpc_label(l) {
                return Err(invalid(
                    "label",
                    "Must only use ASCII letters, numbers, and underscores",
                ));
            }
            v.label = l.to_owned();
        }
        if let Some(d) = b.get("description").and_then(Value::as_str) {
            v.description = d.to_owned();
        }
        let v = v.clone();
        vpc_json(&world, &v)
    };
    ctx.sim.changed();
    ok(rendered)
}

/// Refuses a VPC that Linodes or databases are still on the way Linode refuses it: a 400 with
/// `errors[].reason` and no `field` (the shape of every Linode refusal in the recordings; the recordings hold
/// no in-use refusal itself, so the reasons' wording is ours).
async fn delete_vpc(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let id = param(&pp, "id");
        world.vpc(P, id).ok_or_else(not_found)?;
        if world
            .machines
            .iter()
            .any(|m| m.provider == P && m.networks.iter().any(|a| a.vpc_id == id))
        {
            return Err(ApiError::new(
                P,
                StatusCode::BAD_REQUEST,
                "Cannot delete a VPC while Linodes are assigned to its subnets",
            ));
        }
        if world
            .databases
            .iter()
            .any(|d| d.provider == P && database_network(d).is_some_and(|(vpc, _)| vpc == id))
        {
            return Err(ApiError::new(
                P,
                StatusCode::BAD_REQUEST,
                "Cannot delete a VPC while Managed Databases are assigned to its subnets",
            ));
        }
        world.vpcs.retain(|v| !(v.provider == P && v.id == id));
    }
    ctx.sim.changed();
    deleted()
}

async fn list_subnets(
    State(ctx): State<Ctx>,
    Path(pp): Pars,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> ApiResult {
    let world = ctx.sim.world();
    let v = world.vpc(P, param(&pp, "id")).ok_or_else(not_found)?;
    let items = v.subnets.iter().map(|s| subnet_json(&world, v, s)).collect();
    page(&headers, &q, items)
}

async fn create_subnet(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let rendered = {
        let mut world = ctx.sim.world();
        let vpc = world.vpc(P, param(&pp, "id")).ok_or_else(not_found)?.clone();
        let subnet = parse_subnet(&mut world, &vpc, &b, "subnet").map_err(|mut e| {
            e.field = e.field.map(|f| f.trim_start_matches("subnet.").to_owned());
            e
        })?;
        let rendered = subnet_json(&world, &vpc, &subnet);
        if let Some(v) = world.vpc_mut(P, &vpc.id) {
            v.subnets.push(subnet);
        }
        rendered
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn get_subnet(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let v = world.vpc(P, param(&pp, "id")).ok_or_else(not_found)?;
    let s = v
        .subnets
        .iter()
        .find(|s| s.id == param(&pp, "sid"))
        .ok_or_else(not_found)?;
    ok(subnet_json(&world, v, s))
}

async fn delete_subnet(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let (id, sid) = (param(&pp, "id"), param(&pp, "sid"));
        let v = world.vpc(P, id).ok_or_else(not_found)?;
        if !v.subnets.iter().any(|s| s.id == sid) {
            return Err(not_found());
        }
        if world
            .machines
            .iter()
            .any(|m| m.provider == P && m.networks.iter().any(|a| a.subnet_id.as_deref() == Some(sid)))
        {
            return Err(ApiError::new(
                P,
                StatusCode::BAD_REQUEST,
                "Cannot delete a subnet with Linodes assigned",
            ));
        }
        if world
            .databases
            .iter()
            .any(|d| d.provider == P && database_network(d).is_some_and(|(_, subnet)| subnet == sid))
        {
            return Err(ApiError::new(
                P,
                StatusCode::BAD_REQUEST,
                "Cannot delete a subnet with Managed Databases assigned",
            ));
        }
        if let Some(v) = world.vpc_mut(P, id) {
            v.subnets.retain(|s| s.id != sid);
        }
    }
    ctx.sim.changed();
    deleted()
}

// ---------------------------------------------------------------- firewalls

fn entity_json(world: &World, machine_id: &str) -> Value {
    let label = world.machine(P, machine_id).map(|m| m.label.clone());
    json!({
        "id": int_id(machine_id),
        "type": "linode",
        "label": label,
        "url": format!("/v4/linode/instances/{machine_id}"),
        "parent_entity": null,
    })
}

fn rules_json(f: &Firewall) -> Value {
    let mut rules = f.rules.clone();
    if let Some(o) = rules.as_object_mut() {
        o.insert("version".into(), json!(f.version));
        o.insert("fingerprint".into(), json!(fingerprint(&f.rules)));
    }
    rules
}

fn firewall_json(f: &Firewall, world: &World) -> Value {
    json!({
        "id": int_id(&f.id),
        "label": f.label,
        "created": linode_time(f.created),
        "updated": linode_time(f.updated),
        "status": f.extra.get("status").cloned().unwrap_or_else(|| json!("enabled")),
        "rules": rules_json(f),
        "tags": f.tags,
        "entities": f.devices.iter().map(|d| entity_json(world, &d.machine_id)).collect::<Vec<_>>(),
    })
}

fn device_json(world: &World, d: &Device) -> Value {
    json!({
        "id": int_id(&d.id),
        "created": linode_time(d.created),
        "updated": linode_time(d.created),
        "entity": entity_json(world, &d.machine_id),
    })
}

fn valid_ports(ports: &str) -> bool {
    let port = |s: &str| s.trim().parse::<u16>().is_ok_and(|p| p >= 1);
    !ports.trim().is_empty()
        && ports.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => {
                port(a) && port(b) && a.trim().parse::<u16>().ok() <= b.trim().parse::<u16>().ok()
            }
            None => port(part),
        })
}

/// Validates Cloud Firewall rules; returns them as stored.
fn validate_rules(rules: &Value) -> ApiResult<Value> {
    let policy = |name: &str| -> ApiResult<Value> {
        match rules.get(name).and_then(Value::as_str) {
            Some(p @ ("ACCEPT" | "DROP")) => Ok(json!(p)),
            _ => Err(invalid(&format!("rules.{name}"), "Must be one of ACCEPT, DROP")),
        }
    };
    let inbound_policy = policy("inbound_policy")?;
    let outbound_policy = policy("outbound_policy")?;
    let mut out = serde_json::Map::new();
    for dir in ["inbound", "outbound"] {
        let list = match rules.get(dir) {
            None | Some(Value::Null) => {
                out.insert(dir.into(), Value::Null);
                continue;
            }
            Some(Value::Array(list)) => list,
            Some(_) => return Err(invalid(&format!("rules.{dir}"), "Must be a list of rules")),
        };
        for (i, rule) in list.iter().enumerate() {
            let field = |f: &str| format!("rules.{dir}[{i}].{f}");
            if !matches!(
                rule.get("action").and_then(Value::as_str),
                Some("ACCEPT" | "DROP")
            ) {
                return Err(invalid(&field("action"), "Must be one of ACCEPT, DROP"));
            }
            let protocol = rule.get("protocol").and_then(Value::as_str);
            if !matches!(protocol, Some("TCP" | "UDP" | "ICMP" | "IPENCAP")) {
                return Err(invalid(
                    &field("protocol"),
                    "Must be one of TCP, UDP, ICMP, IPENCAP",
                ));
            }
            if let Some(ports) = rule.get("ports").and_then(Value::as_str) {
                if matches!(protocol, Some("ICMP" | "IPENCAP")) {
                    return Err(invalid(
                        &field("ports"),
                        "Ports are not allowed for ICMP and IPENCAP rules",
                    ));
                }
                if !valid_ports(ports) {
                    return Err(invalid(
                        &field("ports"),
                        "Must be a port, a range or a comma-separated list of them",
                    ));
                }
            }
            if let Some(v4) = rule.pointer("/addresses/ipv4") {
                let ok = v4
                    .as_array()
                    .is_some_and(|a| a.iter().all(|x| x.as_str().and_then(parse_cidr).is_some()));
                if !ok {
                    return Err(invalid(
                        &field("addresses.ipv4"),
                        "Must be a list of IPv4 addresses or ranges",
                    ));
                }
            }
        }
        out.insert(dir.into(), Value::Array(list.clone()));
    }
    out.insert("inbound_policy".into(), inbound_policy);
    out.insert("outbound_policy".into(), outbound_policy);
    Ok(Value::Object(out))
}

async fn list_firewalls(State(ctx): State<Ctx>, headers: HeaderMap, Query(q): Query<Q>) -> ApiResult {
    let world = ctx.sim.world();
    let items = world
        .firewalls
        .iter()
        .filter(|f| f.provider == P)
        .map(|f| firewall_json(f, &world))
        .collect();
    page(&headers, &q, items)
}

async fn create_firewall(State(ctx): State<Ctx>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let label = str_field(&b, "label").ok_or_else(|| invalid("label", "Label is required"))?;
    if !valid_label(label, 3, 32) {
        return Err(invalid("label", "Length must be 3-32 characters"));
    }
    let rules = validate_rules(b.get("rules").unwrap_or(&Value::Null))?;
    let tags = tags_of(&b)?;
    let linodes: Vec<String> = b
        .pointer("/devices/linodes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64().map(|n| n.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let rendered = {
        let mut world = ctx.sim.world();
        if world
            .firewalls
            .iter()
            .any(|f| f.provider == P && f.label == label)
        {
            return Err(invalid(
                "label",
                "Label must be unique among your Cloud Firewalls",
            ));
        }
        if let Some(missing) = linodes.iter().find(|l| world.machine(P, l).is_none()) {
            return Err(invalid("devices.linodes", format!("Linode {missing} not found")));
        }
        let now = Utc::now();
        let mut devices = Vec::new();
        for l in &linodes {
            devices.push(Device {
                id: world.next_id(P).to_string(),
                machine_id: l.clone(),
                created: now,
            });
        }
        let fw = Firewall {
            provider: P,
            id: world.next_id(P).to_string(),
            label: label.to_owned(),
            tags,
            rules,
            devices,
            created: now,
            updated: now,
            version: 1,
            extra: Default::default(),
        };
        let rendered = firewall_json(&fw, &world);
        world.firewalls.push(fw);
        rendered
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn get_firewall(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let f = world.firewall(P, param(&pp, "id")).ok_or_else(not_found)?;
    ok(firewall_json(f, &world))
}

async fn update_firewall(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let tags = if b.get("tags").is_some() {
        Some(tags_of(&b)?)
    } else {
        None
    };
    let rendered = {
        let mut world = ctx.sim.world();
        let f = world.firewall_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        if let Some(l) = str_field(&b, "label") {
            if !valid_label(l, 3, 32) {
                return Err(invalid("label", "Length must be 3-32 characters"));
            }
            f.label = l.to_owned();
        }
        if let Some(s) = str_field(&b, "status") {
            if !matches!(s, "enabled" | "disabled") {
                return Err(invalid("status", "Must be one of enabled, disabled"));
            }
            f.extra.insert("status".into(), json!(s));
        }
        if let Some(t) = tags {
            f.tags = t;
        }
        f.updated = Utc::now();
        let f = f.clone();
        firewall_json(&f, &world)
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn delete_firewall(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let id = param(&pp, "id");
        world.firewall(P, id).ok_or_else(not_found)?;
        world.firewalls.retain(|f| !(f.provider == P && f.id == id));
        for m in world.machines.iter_mut().filter(|m| m.provider == P) {
            m.firewalls.retain(|f| f != id);
        }
    }
    ctx.sim.changed();
    deleted()
}

async fn get_rules(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let f = world.firewall(P, param(&pp, "id")).ok_or_else(not_found)?;
    ok(rules_json(f))
}

async fn put_rules(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let rules = validate_rules(&b)?;
    let rendered = {
        let mut world = ctx.sim.world();
        let f = world.firewall_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        f.rules = rules;
        f.version += 1;
        f.updated = Utc::now();
        rules_json(f)
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn list_devices(
    State(ctx): State<Ctx>,
    Path(pp): Pars,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> ApiResult {
    let world = ctx.sim.world();
    let f = world.firewall(P, param(&pp, "id")).ok_or_else(not_found)?;
    let items = f.devices.iter().map(|d| device_json(&world, d)).collect();
    page(&headers, &q, items)
}

async fn add_device(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let machine_id = id_field(&b, "id").ok_or_else(|| invalid("id", "id is required"))?;
    if str_field(&b, "type").unwrap_or("linode") != "linode" {
        return Err(invalid(
            "type",
            "Only linode devices are supported by the simulator",
        ));
    }
    let rendered = {
        let mut world = ctx.sim.world();
        let fw_id = param(&pp, "id");
        world.firewall(P, fw_id).ok_or_else(not_found)?;
        if world.machine(P, &machine_id).is_none() {
            return Err(invalid("id", format!("Linode {machine_id} not found")));
        }
        let device_id = world.next_id(P).to_string();
        let device = Device {
            id: device_id,
            machine_id: machine_id.clone(),
            created: Utc::now(),
        };
        let f = world.firewall_mut(P, fw_id).ok_or_else(not_found)?;
        if f.devices.iter().any(|d| d.machine_id == machine_id) {
            return Err(ApiError::new(
                P,
                StatusCode::BAD_REQUEST,
                format!("Linode {machine_id} is already assigned to this firewall"),
            ));
        }
        f.devices.push(device.clone());
        if let Some(m) = world.machine_mut(P, &machine_id) {
            m.firewalls.push(fw_id.to_owned());
        }
        device_json(&world, &device)
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn get_device(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let f = world.firewall(P, param(&pp, "id")).ok_or_else(not_found)?;
    let d = f
        .devices
        .iter()
        .find(|d| d.id == param(&pp, "did"))
        .ok_or_else(not_found)?;
    ok(device_json(&world, d))
}

async fn delete_device(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let fw_id = param(&pp, "id").to_owned();
        let f = world.firewall_mut(P, &fw_id).ok_or_else(not_found)?;
        let d = f
            .devices
            .iter()
            .position(|d| d.id == param(&pp, "did"))
            .ok_or_else(not_found)?;
        let device = f.devices.remove(d);
        if let Some(m) = world.machine_mut(P, &device.machine_id) {
            m.firewalls.retain(|x| *x != fw_id);
        }
    }
    ctx.sim.changed();
    deleted()
}

// ---------------------------------------------------------------- databases

fn database_json(d: &Database, now: chrono::DateTime<Utc>) -> Value {
    json!({
        "id": int_id(&d.id),
        "label": d.label,
        "region": d.region,
        "type": d.size,
        "engine": d.engine,
        "version": d.version,
        "status": if d.ready(now) { "active" } else { "provisioning" },
        "allow_list": d.allow_list,
        "cluster_size": d.extra.get("cluster_size").cloned().unwrap_or(json!(1)),
        "created": linode_time(d.created),
        "updated": linode_time(d.created),
        "encrypted": true,
        "hosts": {
            "primary": format!("a{}-akamai-prod-1-default.g2a.akamaidb.net", d.id),
            "standby": format!("replica-a{}-akamai-prod-1-default.g2a.akamaidb.net", d.id),
        },
        "port": if d.engine == "postgresql" { 5432 } else { 3306 },
        "ssl_connection": true,
        "private_network": d.extra.get("private_network").cloned().unwrap_or(Value::Null),
        "members": {},
        "platform": "rdbms-default",
        "total_disk_size_gb": 9,
        "used_disk_size_gb": null,
        "updates": { "day_of_week": 1, "duration": 3, "frequency": "weekly", "hour_of_day": 0, "pending": [] },
    })
}

/// Linode's allow-list normal form: CIDRs (bare addresses as /32), sorted, without duplicates.
fn normalise_allow_list(b: &Value) -> ApiResult<Option<Vec<String>>> {
    let Some(list) =
        str_list(b, "allow_list").map_err(|_| invalid("allow_list", "Must be a list of strings"))?
    else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for entry in &list {
        let net = parse_cidr(entry).ok_or_else(|| {
            invalid(
                "allow_list",
                format!("{entry} is not a valid IPv4 address or range"),
            )
        })?;
        out.push(net.to_string());
    }
    out.sort();
    out.dedup();
    Ok(Some(out))
}

fn engine_ok(engine: &str) -> ApiResult<()> {
    if matches!(engine, "mysql" | "postgresql") {
        Ok(())
    } else {
        Err(not_found())
    }
}

async fn list_all_databases(State(ctx): State<Ctx>, headers: HeaderMap, Query(q): Query<Q>) -> ApiResult {
    let now = Utc::now();
    let items = ctx
        .sim
        .world()
        .databases
        .iter()
        .filter(|d| d.provider == P)
        .map(|d| database_json(d, now))
        .collect();
    page(&headers, &q, items)
}

async fn list_databases(
    State(ctx): State<Ctx>,
    Path(pp): Pars,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> ApiResult {
    let engine = param(&pp, "engine");
    engine_ok(engine)?;
    let now = Utc::now();
    let items = ctx
        .sim
        .world()
        .databases
        .iter()
        .filter(|d| d.provider == P && d.engine == engine)
        .map(|d| database_json(d, now))
        .collect();
    page(&headers, &q, items)
}

async fn create_database(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let engine = param(&pp, "engine");
    engine_ok(engine)?;
    let b = body_json(P, &body)?;
    let label = str_field(&b, "label").ok_or_else(|| invalid("label", "Label is required"))?;
    if !valid_label(label, 3, 32) {
        return Err(invalid("label", "Label must be 3-32 characters"));
    }
    let region = str_field(&b, "region").ok_or_else(|| invalid("region", "region is required"))?;
    if catalog::region(P, region).is_none() {
        return Err(invalid("region", "region is not valid"));
    }
    let ty = str_field(&b, "type").ok_or_else(|| invalid("type", "type is required"))?;
    if catalog::size(P, ty).is_none() {
        return Err(invalid("type", "A valid plan type by that ID was not found"));
    }
    let engine_version = str_field(&b, "engine").ok_or_else(|| invalid("engine", "engine is required"))?;
    let version = engine_version
        .strip_prefix(&format!("{engine}/"))
        .ok_or_else(|| invalid("engine", format!("Must be {engine}/<version>")))?;
    let allow_list = normalise_allow_list(&b)?.unwrap_or_default();
    ctx.sim.check_region(P, region)?;
    let now = Utc::now();
    let rendered = {
        let mut world = ctx.sim.world();
        if world
            .databases
            .iter()
            .any(|d| d.provider == P && d.label == label)
        {
            return Err(invalid("label", "Label must be unique among your databases"));
        }
        let mut extra = serde_json::Map::new();
        extra.insert(
            "cluster_size".into(),
            b.get("cluster_size").cloned().unwrap_or(json!(1)),
        );
        if let Some(network) = b.get("private_network").filter(|v| !v.is_null()) {
            extra.insert(
                "private_network".into(),
                private_network(&world, region, network)?,
            );
        }
        let db = Database {
            provider: P,
            id: world.next_id(P).to_string(),
            label: label.to_owned(),
            engine: engine.to_owned(),
            version: version.to_owned(),
            region: region.to_owned(),
            size: ty.to_owned(),
            allow_list,
            tags: Vec::new(),
            created: now,
            ready_at: now + chrono::Duration::from_std(ctx.sim.config.database_delay).unwrap_or_default(),
            extra,
        };
        let rendered = database_json(&db, now);
        world.databases.push(db);
        rendered
    };
    ctx.sim.changed();
    ok(rendered)
}

/// A create's `private_network` (`{vpc_id, subnet_id, public_access}`), checked against the VPCs: the subnet
/// must be one of the VPC's, and the VPC in the database's region. As the database shows it.
fn private_network(world: &World, region: &str, network: &Value) -> ApiResult<Value> {
    let vpc_id =
        id_field(network, "vpc_id").ok_or_else(|| invalid("private_network.vpc_id", "vpc_id is required"))?;
    let subnet_id = id_field(network, "subnet_id")
        .ok_or_else(|| invalid("private_network.subnet_id", "subnet_id is required"))?;
    let vpc = world
        .vpc(P, &vpc_id)
        .ok_or_else(|| invalid("private_network.vpc_id", "VPC not found"))?;
    if !vpc.subnets.iter().any(|s| s.id == subnet_id) {
        return Err(invalid(
            "private_network.subnet_id",
            "Subnet not found in this VPC",
        ));
    }
    if vpc.region != region {
        return Err(invalid(
            "private_network.vpc_id",
            "The VPC must be in the same region as the database",
        ));
    }
    let public_access = network
        .get("public_access")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(json!({
        "vpc_id": int_id(&vpc_id),
        "subnet_id": int_id(&subnet_id),
        "public_access": public_access,
    }))
}

/// The VPC and subnet a database is on, when it was created with a `private_network`.
fn database_network(d: &Database) -> Option<(String, String)> {
    let network = d.extra.get("private_network")?;
    Some((id_field(network, "vpc_id")?, id_field(network, "subnet_id")?))
}

fn database<'a>(world: &'a World, engine: &str, id: &str) -> ApiResult<&'a Database> {
    world
        .database(P, id)
        .filter(|d| d.engine == engine)
        .ok_or_else(not_found)
}

async fn get_database(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let d = database(&world, param(&pp, "engine"), param(&pp, "id"))?;
    ctx.sim.check_region(P, &d.region)?;
    ok(database_json(d, Utc::now()))
}

async fn update_database(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let allow_list = normalise_allow_list(&b)?;
    let now = Utc::now();
    let rendered = {
        let mut world = ctx.sim.world();
        let d = database(&world, param(&pp, "engine"), param(&pp, "id"))?;
        ctx.sim.check_region(P, &d.region)?;
        if !d.ready(now) {
            return Err(ApiError::new(
                P,
                StatusCode::BAD_REQUEST,
                "The database must be active to be updated",
            ));
        }
        let id = d.id.clone();
        let d = world.database_mut(P, &id).ok_or_else(not_found)?;
        if let Some(l) = str_field(&b, "label") {
            d.label = l.to_owned();
        }
        if let Some(a) = allow_list {
            d.allow_list = a;
        }
        database_json(d, now)
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn delete_database(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let id = database(&world, param(&pp, "engine"), param(&pp, "id"))?
            .id
            .clone();
        world.databases.retain(|d| !(d.provider == P && d.id == id));
    }
    ctx.sim.changed();
    deleted()
}

// ---------------------------------------------------------------- domains

fn domain_json(z: &Zone) -> Value {
    let get = |k: &str, d: Value| z.extra.get(k).cloned().unwrap_or(d);
    json!({
        "id": int_id(&z.id),
        "type": get("type", json!("master")),
        "domain": z.name,
        "tags": z.tags,
        "group": "",
        "status": "active",
        "errors": "",
        "description": get("description", json!("")),
        "soa_email": get("soa_email", json!("")),
        "retry_sec": 0,
        "master_ips": get("master_ips", json!([])),
        "axfr_ips": [],
        "expire_sec": 0,
        "refresh_sec": 0,
        "ttl_sec": get("ttl_sec", json!(0)),
        "created": linode_time(z.created),
        "updated": linode_time(z.created),
    })
}

fn record_json(r: &Record) -> Value {
    json!({
        "id": int_id(&r.id),
        "type": r.kind,
        "name": r.name,
        "target": r.content,
        "priority": r.priority.unwrap_or(0),
        "weight": 0,
        "port": 0,
        "service": null,
        "protocol": null,
        "ttl_sec": r.ttl,
        "tag": null,
        "created": linode_time(r.created),
        "updated": linode_time(r.modified),
    })
}

fn valid_domain(name: &str) -> bool {
    name.contains('.')
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

async fn list_domains(State(ctx): State<Ctx>, headers: HeaderMap, Query(q): Query<Q>) -> ApiResult {
    let items = ctx
        .sim
        .world()
        .zones
        .iter()
        .filter(|z| z.provider == P)
        .map(domain_json)
        .collect();
    page(&headers, &q, items)
}

async fn create_domain(State(ctx): State<Ctx>, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let name = str_field(&b, "domain").ok_or_else(|| invalid("domain", "domain is required"))?;
    if !valid_domain(name) {
        return Err(invalid("domain", "Domain is not valid"));
    }
    let kind = str_field(&b, "type").ok_or_else(|| invalid("type", "type is required"))?;
    if !matches!(kind, "master" | "slave") {
        return Err(invalid("type", "Must be one of master, slave"));
    }
    if kind == "master" && str_field(&b, "soa_email").is_none() {
        return Err(invalid("soa_email", "soa_email is required for master domains"));
    }
    let tags = tags_of(&b)?;
    let rendered = {
        let mut world = ctx.sim.world();
        if world
            .zones
            .iter()
            .any(|z| z.provider == P && z.name.eq_ignore_ascii_case(name))
        {
            return Err(invalid("domain", "DNS zone already exists"));
        }
        let mut extra = serde_json::Map::new();
        for k in ["type", "soa_email", "description", "ttl_sec"] {
            if let Some(v) = b.get(k).filter(|v| !v.is_null()) {
                extra.insert(k.into(), v.clone());
            }
        }
        let zone = Zone {
            provider: P,
            id: world.next_id(P).to_string(),
            name: name.to_lowercase(),
            records: Vec::new(),
            tags,
            created: Utc::now(),
            extra,
        };
        let rendered = domain_json(&zone);
        world.zones.push(zone);
        rendered
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn get_domain(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    ok(domain_json(
        world.zone(P, param(&pp, "id")).ok_or_else(not_found)?,
    ))
}

async fn update_domain(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let tags = if b.get("tags").is_some() {
        Some(tags_of(&b)?)
    } else {
        None
    };
    let rendered = {
        let mut world = ctx.sim.world();
        let z = world.zone_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        for k in ["soa_email", "description", "ttl_sec"] {
            if let Some(v) = b.get(k).filter(|v| !v.is_null()) {
                z.extra.insert(k.into(), v.clone());
            }
        }
        if let Some(t) = tags {
            z.tags = t;
        }
        domain_json(z)
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn delete_domain(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let id = param(&pp, "id");
        world.zone(P, id).ok_or_else(not_found)?;
        world.zones.retain(|z| !(z.provider == P && z.id == id));
    }
    ctx.sim.changed();
    deleted()
}

fn record_from(b: &Value, existing: Option<&Record>) -> ApiResult<Record> {
    let kind = str_field(b, "type")
        .map(str::to_uppercase)
        .or_else(|| existing.map(|r| r.kind.clone()))
        .ok_or_else(|| invalid("type", "type is required"))?;
    if !matches!(
        kind.as_str(),
        "A" | "AAAA" | "NS" | "MX" | "CNAME" | "TXT" | "SRV" | "PTR" | "CAA"
    ) {
        return Err(invalid(
            "type",
            "Must be one of A, AAAA, NS, MX, CNAME, TXT, SRV, PTR, CAA",
        ));
    }
    let target = b
        .get("target")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| existing.map(|r| r.content.clone()))
        .ok_or_else(|| invalid("target", "target is required"))?;
    if kind == "A" && target.parse::<Ipv4Addr>().is_err() {
        return Err(invalid("target", "Must be a valid IPv4 address"));
    }
    if kind == "AAAA" && target.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(invalid("target", "Must be a valid IPv6 address"));
    }
    let ttl = match b.get("ttl_sec") {
        Some(v) if !v.is_null() => v
            .as_u64()
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| invalid("ttl_sec", "Must be a number"))?,
        _ => existing.map(|r| r.ttl).unwrap_or(0),
    };
    let now = Utc::now();
    Ok(Record {
        id: existing.map(|r| r.id.clone()).unwrap_or_default(),
        kind,
        name: b
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| existing.map(|r| r.name.clone()))
            .unwrap_or_default(),
        content: target,
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

async fn list_records(
    State(ctx): State<Ctx>,
    Path(pp): Pars,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> ApiResult {
    let world = ctx.sim.world();
    let z = world.zone(P, param(&pp, "id")).ok_or_else(not_found)?;
    let items = z.records.iter().map(record_json).collect();
    page(&headers, &q, items)
}

async fn create_record(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let mut record = record_from(&b, None)?;
    let rendered = {
        let mut world = ctx.sim.world();
        world.zone(P, param(&pp, "id")).ok_or_else(not_found)?;
        record.id = world.next_id(P).to_string();
        let rendered = record_json(&record);
        let z = world.zone_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        z.records.push(record);
        rendered
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn get_record(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    let world = ctx.sim.world();
    let z = world.zone(P, param(&pp, "id")).ok_or_else(not_found)?;
    let r = z
        .records
        .iter()
        .find(|r| r.id == param(&pp, "rid"))
        .ok_or_else(not_found)?;
    ok(record_json(r))
}

async fn update_record(State(ctx): State<Ctx>, Path(pp): Pars, body: Bytes) -> ApiResult {
    let b = body_json(P, &body)?;
    let rendered = {
        let mut world = ctx.sim.world();
        let z = world.zone_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        let r = z
            .records
            .iter_mut()
            .find(|r| r.id == param(&pp, "rid"))
            .ok_or_else(not_found)?;
        *r = record_from(&b, Some(r))?;
        record_json(r)
    };
    ctx.sim.changed();
    ok(rendered)
}

async fn delete_record(State(ctx): State<Ctx>, Path(pp): Pars) -> ApiResult {
    {
        let mut world = ctx.sim.world();
        let z = world.zone_mut(P, param(&pp, "id")).ok_or_else(not_found)?;
        let before = z.records.len();
        z.records.retain(|r| r.id != param(&pp, "rid"));
        if z.records.len() == before {
            return Err(not_found());
        }
    }
    ctx.sim.changed();
    deleted()
}
