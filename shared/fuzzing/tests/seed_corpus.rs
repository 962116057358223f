//! Writes the fuzz seeds (run by hand, see `fuzz/README.md`):
//!
//! ```sh
//! cargo test -p flotilla-fuzzing --test seed_corpus -- --ignored
//! ```
//!
//! Into `fuzz/corpus/<target>/seed-*` (committed): inputs built from the repository itself — every command
//! of the README's "publishing by hand" section and one message per kind generated from its JSON Schema,
//! each in JSON and in MessagePack; the example templates (`examples/*.tmpl`) alone and together; the
//! spec and secrets file they import to; small answers of every provider reader and error bodies of each
//! provider's documented shapes.
//!
//! Into `fuzz/seeds/<target>/` (git-ignored, given to the fuzzer as a second, read-only corpus directory):
//! the answer bodies of `../shared/provider-specs` — recorded Linode traffic and the Cloudflare fixtures —
//! which stay outside the repository.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use flotilla_fuzzing::{
    ANSWER_MAINTENANCE, ANSWER_RATELIMIT_RESET, ANSWER_RETRY_AFTER, PROTO_NO_KIND, TEMPLATE_SEPARATOR,
    proto_kinds, provider_answer_names,
};
use serde_json::{Map, Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes `seed-<name>` into `fuzz/<area>/<target>/`.
fn write(area: &str, target: &str, name: &str, bytes: &[u8]) {
    let dir = repo().join("fuzz").join(area).join(target);
    fs::create_dir_all(&dir).unwrap();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn write_seeds() {
    proto_seeds();
    template_and_spec_seeds();
    provider_seeds();
    external_provider_seeds();
}

// ---- proto ------------------------------------------------------------------------------------------------

fn proto_input(kind: &str, flags: u8, payload: &[u8]) -> Vec<u8> {
    let index = proto_kinds().iter().position(|k| *k == kind).unwrap();
    let mut input = vec![u8::try_from(index).unwrap(), flags];
    input.extend_from_slice(payload);
    input
}

/// Both encodings of a message as proto inputs: JSON with its content type, MessagePack detected.
fn proto_message(label: &str, kind: &str, value: &Value) {
    let json = serde_json::to_vec(value).unwrap();
    write(
        "corpus",
        "proto",
        &format!("{label}-{kind}-json"),
        &proto_input(kind, 1, &json),
    );
    let packed = rmp_serde::to_vec_named(value).unwrap();
    write(
        "corpus",
        "proto",
        &format!("{label}-{kind}-msgpack"),
        &proto_input(kind, 0, &packed),
    );
}

fn meta() -> Value {
    json!({
        "id": "0193a5c4-2f1e-7c3a-9b8d-4e6f1a2b3c4d",
        "correlation_id": "0193a5c4-2f1e-7c3a-9b8d-4e6f1a2b3c4d",
        "issued_at": "2026-12-06T10:00:00Z",
        "issued_by": "ops:alice"
    })
}

/// Every `flotilla_cmd SUBJECT KIND '{…}'` of the README, and its `nats pub` example in full.
fn readme_commands() -> Vec<(String, Value)> {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let mut commands = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let kind = match words.as_slice() {
            ["flotilla_cmd", _subject, kind, "\\"] => (*kind).to_owned(),
            ["-H", header] if header.starts_with("Flotilla-Kind:") => {
                header.trim_start_matches("Flotilla-Kind:").to_owned()
            }
            _ => continue,
        };
        let Some(body) = lines[i + 1..]
            .iter()
            .take(4)
            .map(|l| l.trim())
            .find(|l| l.starts_with("'{") && l.ends_with("}'"))
        else {
            continue;
        };
        let mut value: Value = serde_json::from_str(body.trim_matches('\'')).unwrap();
        if let Some(fields) = value.as_object_mut() {
            fields.entry("meta").or_insert_with(meta);
        }
        commands.push((kind, value));
    }
    commands
}

/// A value of `schema` (resolving `$ref`s in `root`): every property present, the first variant of every
/// choice.
fn instance(schema: &Value, root: &Value, name: &str, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let def = reference.trim_start_matches("#/$defs/");
        return instance(&root["$defs"][def], root, name, depth + 1);
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for choice in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema.get(choice).and_then(Value::as_array) {
            let pick = options
                .iter()
                .find(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                .or(options.first());
            if let Some(option) = pick {
                return instance(option, root, name, depth + 1);
            }
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "null",
    };
    match kind {
        "object" => {
            let mut fields = Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, property) in properties {
                    fields.insert(key.clone(), instance(property, root, key, depth + 1));
                }
            }
            Value::Object(fields)
        }
        "array" => match schema.get("items") {
            Some(items) => json!([instance(items, root, name, depth + 1)]),
            None => json!([]),
        },
        "string" => match schema.get("format").and_then(Value::as_str) {
            Some("uuid") => json!("0193a5c4-2f1e-7c3a-9b8d-4e6f1a2b3c4d"),
            Some("date-time") => json!("2026-12-06T10:00:00Z"),
            _ => match name {
                "deployment" => json!("www-codetesters-uk"),
                "region" => json!("gb-lon"),
                _ => json!("x"),
            },
        },
        "integer" => json!(schema.get("minimum").and_then(Value::as_u64).unwrap_or(1)),
        "number" => json!(1.5),
        "boolean" => json!(true),
        _ => Value::Null,
    }
}

fn proto_seeds() {
    for (kind, value) in readme_commands() {
        proto_message("readme", &kind, &value);
    }
    for (kind, schema) in flotilla_proto::all_schemas() {
        let root = schema.as_value();
        let value = instance(root, root, "", 0);
        proto_message("schema", kind, &value);
    }
    // The header variants on one message: no kind header, JSON with parameters, JSON as MessagePack.
    let (kind, value) = readme_commands().into_iter().next().unwrap();
    let json = serde_json::to_vec(&value).unwrap();
    write(
        "corpus",
        "proto",
        "no-kind",
        &proto_input(&kind, PROTO_NO_KIND, &json),
    );
    write("corpus", "proto", "json-charset", &proto_input(&kind, 3, &json));
    write(
        "corpus",
        "proto",
        "json-said-msgpack",
        &proto_input(&kind, 2, &json),
    );
}

// ---- templates and specs ----------------------------------------------------------------------------------

fn template_and_spec_seeds() {
    let mut texts = Vec::new();
    for name in ["gb-lon", "nl-ams", "ch-gva-2"] {
        let text = fs::read_to_string(repo().join("examples").join(format!("{name}.tmpl"))).unwrap();
        write("corpus", "template", name, text.as_bytes());
        texts.push(text);
    }
    let all = texts.join(&TEMPLATE_SEPARATOR.to_string());
    write("corpus", "template", "three-regions", all.as_bytes());
    // The same without comments and blank lines: a third of the size, so the fuzzer's length limit keeps
    // every key of the three.
    let compact: Vec<String> = texts
        .iter()
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| l.starts_with("export"))
                .map(|l| l.split("  #").next().unwrap_or(l).trim_end())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    write(
        "corpus",
        "template",
        "three-regions-compact",
        compact.join(&TEMPLATE_SEPARATOR.to_string()).as_bytes(),
    );
    write("corpus", "template", "gb-lon-compact", compact[0].as_bytes());
    let sources: Vec<flotilla_spec::TemplateSource> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| flotilla_spec::TemplateSource::new(format!("{i}.tmpl"), t.clone()))
        .collect();
    let import = flotilla_spec::import_templates(&sources).unwrap_or_else(|d| panic!("{d}"));
    write(
        "corpus",
        "spec_toml",
        "deployment",
        import.deployment.to_toml().unwrap().as_bytes(),
    );
    write(
        "corpus",
        "spec_toml",
        "secrets-file",
        import.secrets_file().to_toml().unwrap().as_bytes(),
    );
    write(
        "corpus",
        "spec_toml",
        "secrets",
        import.secrets.to_toml().unwrap().as_bytes(),
    );
    for (i, text) in texts.iter().enumerate() {
        let one = [flotilla_spec::TemplateSource::new("t.tmpl", text.clone())];
        if let Ok(import) = flotilla_spec::import_templates(&one) {
            write(
                "corpus",
                "spec_toml",
                &format!("deployment-{i}"),
                import.deployment.to_toml().unwrap().as_bytes(),
            );
        }
    }
}

// ---- provider answers -------------------------------------------------------------------------------------

fn answer_input(provider: &str, answer: &str, body: &[u8]) -> Vec<u8> {
    let all = provider_answer_names();
    let p = all.iter().position(|(name, _)| *name == provider).unwrap();
    let a = all[p].1.iter().position(|name| *name == answer).unwrap();
    let mut input = vec![u8::try_from(p).unwrap(), u8::try_from(a).unwrap()];
    input.extend_from_slice(body);
    input
}

fn error_input(provider: &str, status: u16, flags: u8, header: &str, body: &str) -> Vec<u8> {
    let all = provider_answer_names();
    let p = all.iter().position(|(name, _)| *name == provider).unwrap();
    let errors = all[p].1.len();
    let mut input = vec![u8::try_from(p).unwrap(), u8::try_from(errors).unwrap()];
    input.extend_from_slice(&(status - 100).to_be_bytes());
    input.push(flags);
    if flags != 0 {
        input.extend_from_slice(header.as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(body.as_bytes());
    input
}

const TAGS: &str =
    r#"["flotilla","fl-dep:www-codetesters-uk","fl-reg:gb-lon","fl-role:webserver","fl-id:5c1e9a03b7d2"]"#;

/// Small answers of every reader, shaped as each provider documents them.
fn provider_seeds() {
    let answers: BTreeMap<(&str, &str), String> = [
        (("linode", "instance"), format!(r#"{{"id":123,"label":"web-1","status":"running","region":"gb-lon","type":"g6-nanode-1","ipv4":["192.0.2.10","192.168.1.5"],"tags":{TAGS},"created":"2026-01-02T03:04:05"}}"#)),
        (("linode", "instance-ips"), r#"{"ipv4":{"public":[{"address":"192.0.2.10"}],"private":[{"address":"192.168.1.5"}],"vpc":[{"address":"10.0.1.4","address_range":null}]}}"#.to_owned()),
        (("linode", "instances"), format!(r#"{{"data":[{{"id":1,"label":"a","status":"booting","ipv4":null,"tags":{TAGS}}}],"page":1,"pages":2,"results":2}}"#)),
        (("linode", "vpc"), r#"{"id":7,"label":"adt-vpc","region":"gb-lon","subnets":[{"id":8,"ipv4":"10.0.1.0/24"}]}"#.to_owned()),
        (("linode", "vpcs"), r#"{"data":[{"id":7,"label":"adt-vpc","region":"gb-lon","subnets":null}],"page":1,"pages":1}"#.to_owned()),
        (("linode", "firewall"), r#"{"id":9,"label":"fw","rules":{"inbound":[{"action":"ACCEPT","protocol":"TCP","ports":"22,80-443","addresses":{"ipv4":["192.0.2.1/32","198.51.100.7"]},"label":"l","description":"d"},{"action":"DROP","protocol":"ICMP"}]},"entities":[{"id":123,"type":"linode"},{"id":5,"type":"linode_interface","parent_entity":{"id":124,"type":"linode"}}]}"#.to_owned()),
        (("linode", "firewalls"), r#"{"data":[{"id":9,"label":"fw","rules":null,"entities":null}],"page":1,"pages":1}"#.to_owned()),
        (("linode", "firewall-devices"), r#"{"data":[{"id":3,"entity":{"id":123,"type":"linode"}}],"page":1,"pages":1}"#.to_owned()),
        (("linode", "database"), r#"{"id":11,"label":"db","engine":"mysql","region":"gb-lon","status":"active","hosts":{"primary":"a.example.com"},"port":3306,"allow_list":["192.0.2.0/24","198.51.100.7"]}"#.to_owned()),
        (("linode", "databases"), r#"{"data":[{"id":11,"label":"db","hosts":null,"allow_list":null}],"page":1,"pages":1}"#.to_owned()),
        (("linode", "domains"), r#"{"data":[{"id":5,"domain":"example.com"}],"page":1,"pages":1}"#.to_owned()),
        (("linode", "record"), r#"{"id":6,"type":"A","name":"www","target":"192.0.2.10","ttl_sec":300}"#.to_owned()),
        (("linode", "records"), r#"{"data":[{"id":6,"type":"A","name":"","target":"192.0.2.10","ttl_sec":0}],"page":1,"pages":1}"#.to_owned()),
        (("digitalocean", "droplet"), format!(r#"{{"droplet":{{"id":3164444,"name":"web-1","status":"active","region":{{"slug":"lon1"}},"size_slug":"s-1vcpu-1gb","networks":{{"v4":[{{"ip_address":"10.128.192.124","type":"private"}},{{"ip_address":"192.0.2.10","type":"public"}}]}},"tags":{TAGS},"created_at":"2026-01-02T03:04:05Z"}}}}"#)),
        (("digitalocean", "droplets"), format!(r#"{{"droplets":[{{"id":1,"name":"a","status":"new","size":{{"slug":"s-1vcpu-1gb"}},"tags":{TAGS}}}],"links":{{"pages":{{"next":"https://api.digitalocean.com/v2/droplets?page=2&per_page=1"}}}},"meta":{{"total":2}}}}"#)),
        (("digitalocean", "vpc"), r#"{"vpc":{"id":"5a4981aa-9653-4bd1-bef5-d6bff52042e4","name":"adt-vpc","region":"lon1","ip_range":"10.0.1.0/24","default":false}}"#.to_owned()),
        (("digitalocean", "vpcs"), r#"{"vpcs":[{"id":"v","name":"adt-vpc","region":"lon1","ip_range":"10.0.1.0/24"}],"links":{"pages":{"next":"/v2/vpcs?page=2"}}}"#.to_owned()),
        (("digitalocean", "vpc-members"), r#"{"members":[{"urn":"do:droplet:1","name":"a"}],"links":{},"meta":{"total":1}}"#.to_owned()),
        (("digitalocean", "firewall"), r#"{"firewall":{"id":"bb4b2611-3d72-467b-8602-280330ecd65c","name":"fw","inbound_rules":[{"protocol":"tcp","ports":"8000-9000","sources":{"addresses":["192.0.2.0/24","198.51.100.7"]}},{"protocol":"icmp","ports":"0","sources":{"addresses":["0.0.0.0/0"]}}],"outbound_rules":[],"droplet_ids":[1,2],"tags":[]}}"#.to_owned()),
        (("digitalocean", "firewalls"), r#"{"firewalls":[{"id":"f","name":"fw","inbound_rules":null,"droplet_ids":null}],"links":{}}"#.to_owned()),
        (("digitalocean", "database"), r#"{"database":{"id":"9cc10173-e9ea-4176-9dbc-a4cee4c4ff30","name":"db","engine":"mysql","region":"lon1","status":"online","connection":{"host":"db.example.com","port":25060,"password":"x"}}}"#.to_owned()),
        (("digitalocean", "databases"), r#"{"databases":[{"id":"d","name":"db","connection":null}]}"#.to_owned()),
        (("digitalocean", "database-firewall"), r#"{"rules":[{"type":"ip_addr","value":"192.0.2.10"},{"type":"ip_addr","value":"198.51.100.0/24"},{"type":"droplet","value":"163973392","description":"d"}]}"#.to_owned()),
        (("digitalocean", "domain"), r#"{"domain":{"name":"example.com","ttl":1800}}"#.to_owned()),
        (("digitalocean", "record"), r#"{"domain_record":{"id":28448429,"type":"A","name":"www","data":"192.0.2.10","ttl":1800}}"#.to_owned()),
        (("digitalocean", "records"), r#"{"domain_records":[{"id":1,"type":"A","name":"@","data":"192.0.2.10","ttl":null}],"links":{}}"#.to_owned()),
        (("vultr", "instance"), format!(r#"{{"instance":{{"id":"cb676a46-66fd-4dfb-b839-443f2e6c0b60","label":"web-1","region":"lhr","plan":"vc2-1c-1gb","status":"active","power_status":"running","main_ip":"192.0.2.10","internal_ip":"10.1.96.3","tags":{TAGS},"date_created":"2026-01-02T03:04:05+00:00","firewall_group_id":"f"}}}}"#)),
        (("vultr", "instances"), r#"{"instances":[{"id":"i","status":"pending","main_ip":"0.0.0.0","tags":null}],"meta":{"total":2,"links":{"next":"bmV4dF9fQU","prev":""}}}"#.to_owned()),
        (("vultr", "vpc"), r#"{"vpc":{"id":"v","region":"lhr","description":"adt-vpc","v4_subnet":"10.1.96.0","v4_subnet_mask":20}}"#.to_owned()),
        (("vultr", "vpcs"), r#"{"vpcs":[{"id":"v","region":"lhr","description":"adt-vpc","v4_subnet":"10.1.96.0","v4_subnet_mask":33}],"meta":{"links":{"next":""}}}"#.to_owned()),
        (("vultr", "firewall-group"), r#"{"firewall_group":{"id":"1234abcd","description":"fw","instance_count":0}}"#.to_owned()),
        (("vultr", "firewall-groups"), r#"{"firewall_groups":[{"id":"1234abcd","description":"fw","instance_count":2}],"meta":{}}"#.to_owned()),
        (("vultr", "firewall-rule"), r#"{"firewall_rule":{"id":1,"ip_type":"v4","protocol":"tcp","port":"8000:9000","subnet":"192.0.2.0","subnet_size":24,"source":"","notes":"n"}}"#.to_owned()),
        (("vultr", "firewall-rules"), r#"{"firewall_rules":[{"id":1,"type":"v4","protocol":"icmp","subnet":"0.0.0.0","subnet_size":0},{"id":2,"ip_type":"v6","protocol":"tcp","port":"22","subnet":"::","subnet_size":0}],"meta":{}}"#.to_owned()),
        (("vultr", "database"), r#"{"database":{"id":"d","label":"db","database_engine":"mysql","region":"lhr","status":"Running","host":"h","public_host":"public-h","port":"16751","trusted_ips":["192.0.2.10","198.51.100.0/24"]}}"#.to_owned()),
        (("vultr", "databases"), r#"{"databases":[{"id":"d","label":"db","port":16751,"trusted_ips":null}],"meta":{}}"#.to_owned()),
        (("vultr", "domain"), r#"{"domain":{"domain":"example.com","date_created":"2026-01-02T03:04:05+00:00"}}"#.to_owned()),
        (("vultr", "record"), r#"{"record":{"id":"r","type":"A","name":"www","data":"192.0.2.10","ttl":300}}"#.to_owned()),
        (("vultr", "records"), r#"{"records":[{"id":"r","type":"A","name":"","data":"192.0.2.10"}],"meta":{"links":{"next":"x"}}}"#.to_owned()),
        (("exoscale", "operation"), r#"{"id":"e2047130-b86e-11ed-afa1-0242ac120002","state":"success","reference":{"id":"4c1e9a03-b7d2-4b1a-9c2f-1b2a3c4d5e6f","link":"x","command":"create-instance"}}"#.to_owned()),
        (("exoscale", "instance"), r#"{"id":"4c1e9a03-b7d2-4b1a-9c2f-1b2a3c4d5e6f","name":"web-1","state":"running","instance-type":{"id":"t","family":"standard","size":"tiny"},"public-ip":"192.0.2.10","private-networks":[{"id":"n"}],"security-groups":[{"id":"g"}],"labels":{"flotilla":"true","fl-dep":"www-codetesters-uk","fl-reg":"ch-gva-2","fl-role":"webserver","fl-id":"5c1e9a03b7d2"},"created-at":"2026-01-02T03:04:05Z"}"#.to_owned()),
        (("exoscale", "instances"), r#"{"instances":[{"id":"i","name":"a","state":"starting","instance-type":{"id":"t"}}]}"#.to_owned()),
        (("exoscale", "instance-types"), r#"{"instance-types":[{"id":"t","family":"standard","size":"tiny"}]}"#.to_owned()),
        (("exoscale", "templates"), r#"{"templates":[{"id":"t","name":"Linux Debian 12 (Bookworm) 64-bit","created-at":"2026-01-02T03:04:05Z"}]}"#.to_owned()),
        (("exoscale", "private-network"), r#"{"id":"n","name":"adt-vpc","start-ip":"10.0.1.2","netmask":"255.255.255.0","leases":[{"ip":"10.0.1.4","instance-id":"i"}]}"#.to_owned()),
        (("exoscale", "private-networks"), r#"{"private-networks":[{"id":"n","name":"adt-vpc","start-ip":"10.0.1.2","netmask":"255.255.0.255"}]}"#.to_owned()),
        (("exoscale", "security-group"), r#"{"id":"g","name":"fw","rules":[{"id":"r","flow-direction":"ingress","protocol":"tcp","network":"192.0.2.0/24","start-port":80,"end-port":443,"description":"d"},{"flow-direction":"ingress","protocol":"icmp","network":"0.0.0.0/0"}]}"#.to_owned()),
        (("exoscale", "security-groups"), r#"{"security-groups":[{"id":"g","name":"fw"}]}"#.to_owned()),
        (("exoscale", "dbaas-service"), r#"{"name":"db","type":"mysql","state":"running","zone":"ch-gva-2","ip-filter":["192.0.2.10","198.51.100.0/24"],"components":[{"component":"mysql","host":"db.example.com","port":21699,"route":"dynamic","usage":"primary"}],"uri-params":{"host":"h","port":"21699"}}"#.to_owned()),
        (("exoscale", "dbaas-services"), r#"{"dbaas-services":[{"name":"db","type":"pg"}]}"#.to_owned()),
        (("exoscale", "dns-domains"), r#"{"dns-domains":[{"id":"z","unicode-name":"example.com"}]}"#.to_owned()),
        (("exoscale", "dns-records"), r#"{"dns-domain-records":[{"id":"r","name":"www","type":"A","content":"192.0.2.10","ttl":3600},{"id":"s","name":"","type":"NS","content":"ns1.exoscale.ch"}]}"#.to_owned()),
        (("cloudflare", "zones"), r#"{"success":true,"errors":[],"messages":[],"result":[{"id":"023e105f4ecef8ad9ca31a8372d0c353","name":"unit.tests","type":"full"},{"id":"0b","name":"unit.tests","type":"internal"}],"result_info":{"page":1,"per_page":50,"total_pages":1,"count":2,"total_count":2}}"#.to_owned()),
        (("cloudflare", "records"), r#"{"success":true,"errors":[],"result":[{"id":"r","type":"A","name":"www.unit.tests","content":"192.0.2.10","proxied":false,"ttl":1,"comment":"c"}],"result_info":{"total_pages":2}}"#.to_owned()),
        (("cloudflare", "record"), r#"{"success":true,"errors":[],"messages":[],"result":{"id":"r","type":"A","name":"www.unit.tests","content":"192.0.2.10","proxied":true,"ttl":300}}"#.to_owned()),
        (("cloudflare", "any"), r#"{"success":false,"errors":[{"code":81057,"message":"Record already exists.","source":{"pointer":"/posts/0/name"}}],"messages":[],"result":null}"#.to_owned()),
    ]
    .into_iter()
    .collect();
    for ((provider, answer), body) in &answers {
        write(
            "corpus",
            "provider_answers",
            &format!("{provider}-{answer}"),
            &answer_input(provider, answer, body.as_bytes()),
        );
    }
    let errors: &[(&str, u16, u8, &str, &str)] = &[
        ("linode", 400, 0, "", r#"{"errors":[{"reason":"Linode busy."}]}"#),
        (
            "linode",
            400,
            0,
            "",
            r#"{"errors":[{"reason":"Must only use ASCII letters","field":"label"}]}"#,
        ),
        ("linode", 503, ANSWER_MAINTENANCE, "1", "<html>maintenance</html>"),
        (
            "linode",
            429,
            ANSWER_RETRY_AFTER,
            "30",
            r#"{"errors":[{"reason":"Too many requests"}]}"#,
        ),
        (
            "digitalocean",
            404,
            0,
            "",
            r#"{"id":"not_found","message":"The resource you were accessing could not be found."}"#,
        ),
        (
            "digitalocean",
            429,
            ANSWER_RATELIMIT_RESET,
            "1790000000",
            r#"{"id":"too_many_requests","message":"API Rate limit exceeded."}"#,
        ),
        (
            "vultr",
            400,
            0,
            "",
            r#"{"error":"invalid instance ID","status":400}"#,
        ),
        (
            "vultr",
            429,
            ANSWER_RETRY_AFTER,
            "Sun, 06 Dec 2026 10:00:00 GMT",
            "",
        ),
        (
            "exoscale",
            429,
            0,
            "",
            r#"{"error":"rate limited","retry_after":1.5}"#,
        ),
        (
            "exoscale",
            412,
            0,
            "",
            r#"{"title":"Precondition Failed","detail":"the instance is not stopped"}"#,
        ),
        (
            "exoscale",
            500,
            0,
            "",
            r#"{"message":"internal error, token=abc123"}"#,
        ),
        (
            "cloudflare",
            400,
            0,
            "",
            r#"{"success":false,"errors":[{"code":1004,"message":"DNS Validation Error","source":{"pointer":"/name"}}]}"#,
        ),
        (
            "cloudflare",
            403,
            0,
            "",
            r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#,
        ),
        ("cloudflare", 429, ANSWER_RETRY_AFTER, "5", ""),
    ];
    for (i, (provider, status, flags, header, body)) in errors.iter().enumerate() {
        write(
            "corpus",
            "provider_answers",
            &format!("{provider}-error-{status}-{i}"),
            &error_input(provider, *status, *flags, header, body),
        );
    }
}

/// `../shared/provider-specs`, beside the repository.
fn provider_specs() -> Option<PathBuf> {
    let dir = repo().join("../shared/provider-specs");
    dir.is_dir().then_some(dir)
}

/// The Linode answer a recorded request got, by its method and path.
fn linode_answer(method: &str, path: &str) -> Option<&'static str> {
    let path = path.split('?').next()?.trim_end_matches('/');
    let parts: Vec<&str> = path
        .split('/')
        .skip_while(|p| !p.starts_with("v4"))
        .skip(1)
        .collect();
    let number = |s: &str| s.parse::<u64>().is_ok();
    Some(match (method, parts.as_slice()) {
        ("GET", ["linode", "instances"]) => "instances",
        (_, ["linode", "instances", id]) if number(id) => "instance",
        ("POST", ["linode", "instances"]) => "instance",
        ("GET", ["linode", "instances", _, "ips"]) => "instance-ips",
        ("GET", ["vpcs"]) => "vpcs",
        ("POST", ["vpcs"]) | (_, ["vpcs", _]) => "vpc",
        ("GET", ["networking", "firewalls"]) => "firewalls",
        ("POST", ["networking", "firewalls"]) | (_, ["networking", "firewalls", _]) => "firewall",
        ("GET", ["networking", "firewalls", _, "devices"]) => "firewall-devices",
        ("GET", ["databases", _, "instances"] | ["databases", "instances"]) => "databases",
        (_, ["databases", _, "instances", _]) => "database",
        ("GET", ["domains"]) => "domains",
        ("GET", ["domains", _, "records"]) => "records",
        ("POST", ["domains", _, "records"]) | (_, ["domains", _, "records", _]) => "record",
        _ => return None,
    })
}

/// The recorded Linode answers and the Cloudflare fixtures, into `fuzz/seeds/provider_answers/`.
fn external_provider_seeds() {
    let Some(specs) = provider_specs() else {
        eprintln!("no ../shared/provider-specs: no external seeds");
        return;
    };
    let mut written = 0;
    let recordings = specs.join("linode/recordings");
    for entry in fs::read_dir(&recordings).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let cassette: Value = serde_norway::from_str(&text).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        for (i, interaction) in cassette["interactions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let method = interaction["request"]["method"].as_str().unwrap_or("GET");
            let url = interaction["request"]["url"].as_str().unwrap_or("");
            let body = interaction["response"]["body"].as_str().unwrap_or("");
            let code = interaction["response"]["code"].as_u64().unwrap_or(200);
            let input = if code >= 400 {
                error_input("linode", u16::try_from(code).unwrap(), 0, "", body)
            } else if let Some(answer) = linode_answer(method, url) {
                answer_input("linode", answer, body.as_bytes())
            } else {
                continue;
            };
            write("seeds", "provider_answers", &format!("linode-{stem}-{i}"), &input);
            written += 1;
        }
    }
    for entry in fs::read_dir(specs.join("cloudflare/fixtures")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let body = fs::read(&path).unwrap();
        let answer = if name.contains("dns_records") {
            "records"
        } else if name.contains("zones") {
            "zones"
        } else {
            "any"
        };
        write(
            "seeds",
            "provider_answers",
            &format!("cloudflare-{name}"),
            &answer_input("cloudflare", answer, &body),
        );
        written += 1;
    }
    eprintln!("{written} external provider seeds");
}

#[test]
fn the_instance_generator_follows_refs_and_choices() {
    let root = json!({
        "type": "object",
        "properties": {
            "meta": { "$ref": "#/$defs/Meta" },
            "region": { "type": "string" },
            "policy": { "anyOf": [{ "type": "null" }, { "type": "integer", "minimum": 3 }] },
            "mode": { "enum": ["create", "adopt"] }
        },
        "$defs": { "Meta": { "type": "object", "properties": { "id": { "type": "string", "format": "uuid" } } } }
    });
    let value = instance(&root, &root, "", 0);
    assert_eq!(value["meta"]["id"], "0193a5c4-2f1e-7c3a-9b8d-4e6f1a2b3c4d");
    assert_eq!(value["region"], "gb-lon");
    assert_eq!(value["policy"], 3);
    assert_eq!(value["mode"], "create");
    let flags = ANSWER_RETRY_AFTER | ANSWER_MAINTENANCE;
    assert_eq!(error_input("linode", 503, flags, "1", "x")[2..4], [1, 147]);
}
