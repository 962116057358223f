//! Every Exoscale operation the adapter uses, answered from the document's own response schemas (it
//! publishes no response examples): once with every optional field present ([`Fill::Everything`]), once
//! with every optional field absent ([`Fill::RequiredOnly`]). On top of the generated answer each test sets
//! only what the adapter needs to proceed (an operation's id and state, a create's `reference.id`, ids that
//! tie answers together) and the values it then reads back (names, states, addresses) — nothing else — so
//! an adapter that demanded an optional field, or misread one that is there, fails here. Every request the
//! adapter sends is judged against the same document.
//!
//! Without those few values the document's answers are mostly empty objects (Exoscale's schemas require
//! almost nothing, not even ids): what the adapter does with those is pinned in
//! `bare_required_only_answers_*` — the findings of this suite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::OnceLock;

use chrono::DateTime;
use common::{ZONE, adapter};
use flotilla_cloud::{
    CloudError, Compute, DatabaseRequest, Dns, DnsRecord, FirewallRule, MachineRequest, MachineState,
    ManagedDatabases, MarkFilter, Marks, Network, NewDnsRecord, Protocol, VpcRequest, Zone,
};
use flotilla_conformance::examples::DATE_TIME;
use flotilla_conformance::{Fill, Spec};
use flotilla_spec::Role;
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FILLS: [Fill; 2] = [Fill::Everything, Fill::RequiredOnly];

const INSTANCE: &str = "9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d";
const OTHER: &str = "22222222-2222-4222-8222-222222222222";
const NETWORK: &str = "4a3b7d2e-1c5f-4e8a-9b6d-2f0e8c7a1b3d";
const NEW_NETWORK: &str = "5b4c8e3f-2d6a-4f9b-8c7e-3a1f9d8b2c4e";
const TYPE_TINY: &str = "b6cd1ff5-3a2f-4e9d-a4d1-8988c1191735";
const TEMPLATE: &str = "c19542b7-d269-4bd4-bf5a-b3e0c4ab5b6f";
const GROUP: &str = "0b6e0d3f-7f1e-4c6a-9d77-3d6c2f1a8e21";
const RULE: &str = "6c7d8e9f-0a1b-4c2d-8e3f-4a5b6c7d8e9f";
const DOMAIN: &str = "7d1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const RECORD: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
const OP: &str = "e2047130-b86e-11ed-afa1-0242ac120002";

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let dir = flotilla_conformance::provider_specs(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("shared/provider-specs above the repository");
        Spec::exoscale(&dir).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// The 200 answer of `m p` (`p` as the document writes it), generated with `fill`, then `set` (JSON
/// pointer → value). Each pointer must be somewhere the schema has, so a renamed field fails here.
fn answer(fill: Fill, m: &str, p: &str, set: &[(&str, Value)]) -> Value {
    let mut value = spec().answer(m, p, "200", fill).unwrap_or_else(|e| panic!("{e}"));
    apply(&mut value, m, p, "", set);
    value
}

/// One item of the array at `list` (`/instances`) in the answer of `m p`, generated with `fill`, then
/// `set` as in [`answer`].
fn item(fill: Fill, m: &str, p: &str, list: &str, set: &[(&str, Value)]) -> Value {
    let at = format!("{list}/0");
    let mut value = spec()
        .answer_at(m, p, "200", &at, fill)
        .unwrap_or_else(|e| panic!("{e}"));
    apply(&mut value, m, p, &at, set);
    value
}

/// The answer of `GET p` with `items` as its array `list`.
fn list(fill: Fill, p: &str, list: &str, items: Vec<Value>) -> Value {
    answer(fill, "GET", p, &[(list, Value::Array(items))])
}

fn apply(value: &mut Value, m: &str, p: &str, at: &str, set: &[(&str, Value)]) {
    for (pointer, v) in set {
        if let Err(e) = spec().answer_at(m, p, "200", &format!("{at}{pointer}"), Fill::Everything) {
            panic!("{e}");
        }
        put(value, pointer, v.clone());
    }
}

/// `value` with `pointer` set, the objects on the way made where the answer left them out.
fn put(value: &mut Value, pointer: &str, v: Value) {
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    let (last, parents) = segments.split_last().expect("a pointer below the root");
    let mut at = value;
    for segment in parents {
        at = match at {
            Value::Object(map) => map.entry(*segment).or_insert_with(|| json!({})),
            Value::Array(items) => items.get_mut(segment.parse::<usize>().unwrap()).unwrap(),
            other => panic!("{pointer}: {other} has no {segment}"),
        };
    }
    match at {
        Value::Object(map) => {
            map.insert((*last).to_owned(), v);
        }
        other => panic!("{pointer}: cannot set {last} in {other}"),
    }
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// Mounts `GET concrete` answering `body`.
async fn get(server: &MockServer, concrete: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path(format!("/v2{concrete}")))
        .respond_with(ok(body))
        .mount(server)
        .await;
}

/// Mounts mutation `m concrete` (`template` as the document writes it), expected `times`: its answer an
/// operation still pending, and `GET /operation/{op}` answering that it succeeded. `reference` is the id
/// the operation names (a create's new resource); left out when the adapter has no use for it.
#[allow(clippy::too_many_arguments)]
async fn mutation(
    server: &MockServer,
    fill: Fill,
    m: &str,
    template: &str,
    concrete: &str,
    op: &str,
    reference: Option<&str>,
    times: u64,
) {
    let mut set = vec![("/id", json!(op)), ("/state", json!("pending"))];
    if let Some(reference) = reference {
        set.push(("/reference/id", json!(reference)));
    }
    Mock::given(method(m))
        .and(path(format!("/v2{concrete}")))
        .respond_with(ok(answer(fill, m, template, &set)))
        .expect(times)
        .mount(server)
        .await;
    set[1] = ("/state", json!("success"));
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{op}")))
        .respond_with(ok(answer(fill, "GET", "/operation/{id}", &set)))
        .mount(server)
        .await;
}

/// Every request `server` received, held against the document.
async fn conforms(server: &MockServer, fill: Fill) {
    let mut problems = Vec::new();
    for r in server.received_requests().await.unwrap() {
        let query: Vec<(String, String)> = r.url.query_pairs().into_owned().collect();
        let body: Option<Value> = (!r.body.is_empty()).then(|| serde_json::from_slice(&r.body).unwrap());
        if let Err(violations) = spec().check(r.method.as_str(), r.url.path(), &query, body.as_ref()) {
            problems.extend(violations.iter().map(ToString::to_string));
        }
    }
    assert!(problems.is_empty(), "{fill:?}: {problems:#?}");
}

fn op(n: u8) -> String {
    format!("{}{n:02}", &OP[..OP.len() - 2])
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn marks(deployment: &str) -> Marks {
    Marks {
        deployment: deployment.into(),
        region: "ch-gva".into(),
        role: Some(Role::Webserver),
        resource_id: "01a20b6d-ec94".into(),
    }
}

/// An instance as `GET /instance/{id}` answers it (`list`: as an item of `GET /instance`).
fn instance(fill: Fill, list: bool, id: &str, labels: &Marks, network: Option<&str>) -> Value {
    let (p, at) = if list {
        ("/instance", "/instances/0")
    } else {
        ("/instance/{id}", "")
    };
    let networks: Vec<Value> = network
        .map(|n| {
            let mut reference = spec()
                .answer_at("GET", p, "200", &format!("{at}/private-networks/0"), fill)
                .unwrap();
            put(&mut reference, "/id", json!(n));
            reference
        })
        .into_iter()
        .collect();
    let set = [
        ("/id", json!(id)),
        ("/name", json!("ws-1-gva")),
        ("/state", json!("running")),
        ("/public-ip", json!("185.19.28.170")),
        ("/labels", json!(labels.to_labels())),
        ("/private-networks", json!(networks)),
    ];
    if list {
        item(fill, "GET", p, "/instances", &set)
    } else {
        answer(fill, "GET", p, &set)
    }
}

#[tokio::test]
async fn instances_are_created_read_listed_and_deleted() {
    for fill in FILLS {
        let server = MockServer::start().await;
        let ours = marks("www-codetesters-uk");
        let types = vec![item(
            fill,
            "GET",
            "/instance-type",
            "/instance-types",
            &[
                ("/id", json!(TYPE_TINY)),
                ("/family", json!("standard")),
                ("/size", json!("tiny")),
            ],
        )];
        get(
            &server,
            "/instance-type",
            list(fill, "/instance-type", "/instance-types", types),
        )
        .await;
        let templates = vec![item(
            fill,
            "GET",
            "/template",
            "/templates",
            &[
                ("/id", json!(TEMPLATE)),
                ("/name", json!("Linux Ubuntu 24.04 LTS 64-bit")),
            ],
        )];
        Mock::given(method("GET"))
            .and(path("/v2/template"))
            .and(query_param("visibility", "public"))
            .respond_with(ok(list(fill, "/template", "/templates", templates)))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v2/instance"))
            .and(body_partial_json(
                json!({"instance-type": {"id": TYPE_TINY}, "template": {"id": TEMPLATE}}),
            ))
            .respond_with(ok(answer(
                fill,
                "POST",
                "/instance",
                &[
                    ("/id", json!(op(1))),
                    ("/state", json!("pending")),
                    ("/reference/id", json!(INSTANCE)),
                ],
            )))
            .expect(1)
            .mount(&server)
            .await;
        get(
            &server,
            &format!("/operation/{}", op(1)),
            answer(
                fill,
                "GET",
                "/operation/{id}",
                &[
                    ("/id", json!(op(1))),
                    ("/state", json!("success")),
                    ("/reference/id", json!(INSTANCE)),
                ],
            ),
        )
        .await;
        mutation(
            &server,
            fill,
            "PUT",
            "/private-network/{id}:attach",
            &format!("/private-network/{NETWORK}:attach"),
            &op(2),
            None,
            1,
        )
        .await;
        mutation(
            &server,
            fill,
            "DELETE",
            "/instance/{id}",
            &format!("/instance/{INSTANCE}"),
            &op(3),
            None,
            1,
        )
        .await;
        get(
            &server,
            &format!("/instance/{INSTANCE}"),
            instance(fill, false, INSTANCE, &ours, Some(NETWORK)),
        )
        .await;
        let lease = item(
            fill,
            "GET",
            "/private-network/{id}",
            "/leases",
            &[("/ip", json!("10.0.0.9")), ("/instance-id", json!(INSTANCE))],
        );
        get(
            &server,
            &format!("/private-network/{NETWORK}"),
            answer(
                fill,
                "GET",
                "/private-network/{id}",
                &[("/id", json!(NETWORK)), ("/leases", json!([lease]))],
            ),
        )
        .await;
        let instances = vec![
            instance(fill, true, INSTANCE, &ours, Some(NETWORK)),
            instance(fill, true, OTHER, &marks("www-other-uk"), None),
        ];
        get(
            &server,
            "/instance",
            list(fill, "/instance", "/instances", instances),
        )
        .await;

        let exo = adapter(&server);
        let request = MachineRequest {
            name: "ws-1-gva".into(),
            region: ZONE.into(),
            size: "tiny".into(),
            image: "Linux Ubuntu 24.04 LTS 64-bit".into(),
            vpc_id: Some(NETWORK.into()),
            subnet_id: None,
            firewall_id: Some(GROUP.into()),
            ssh_keys: vec!["flotilla-build".into()],
            user_data: Some("#cloud-config\n".into()),
            marks: ours.clone(),
        };
        let machine = exo
            .create_machine(&request)
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        assert_eq!(machine.id, INSTANCE, "{fill:?}");
        assert_eq!(machine.name, "ws-1-gva", "{fill:?}");
        assert_eq!(machine.region, ZONE, "{fill:?}");
        assert_eq!(machine.state, MachineState::Running, "{fill:?}");
        assert_eq!(
            machine.public_ipv4,
            Some("185.19.28.170".parse().unwrap()),
            "{fill:?}"
        );
        assert_eq!(
            machine.private_ipv4,
            Some("10.0.0.9".parse().unwrap()),
            "{fill:?}"
        );
        assert_eq!(machine.marks, Some(ours.clone()), "{fill:?}");
        match fill {
            // What the schema generated is read as it is.
            Fill::Everything => {
                assert!(!machine.size.is_empty(), "{fill:?}");
                assert_eq!(
                    machine.created_at,
                    Some(DateTime::parse_from_rfc3339(DATE_TIME).unwrap().to_utc()),
                    "{fill:?}"
                );
            }
            // Absent, and nothing made up for it.
            Fill::RequiredOnly => {
                assert_eq!(machine.size, "", "{fill:?}");
                assert_eq!(machine.created_at, None, "{fill:?}");
            }
        }

        let listed = exo
            .list_machines(&MarkFilter::deployment("www-codetesters-uk"))
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        let summary: Vec<(&str, Option<String>)> = listed
            .iter()
            .map(|m| (m.id.as_str(), m.private_ipv4.map(|ip| ip.to_string())))
            .collect();
        assert_eq!(summary, [(INSTANCE, Some("10.0.0.9".to_owned()))], "{fill:?}");

        exo.delete_machine(INSTANCE)
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        conforms(&server, fill).await;
    }
}

fn rule_item(fill: Fill, id: &str, network: &str, description: &str) -> Value {
    let mut set = vec![
        ("/id", json!(id)),
        ("/flow-direction", json!("ingress")),
        ("/protocol", json!("tcp")),
        ("/network", json!(network)),
        ("/start-port", json!(443)),
        ("/end-port", json!(443)),
    ];
    if fill == Fill::Everything {
        set.push(("/description", json!(description)));
    }
    item(fill, "GET", "/security-group/{id}", "/rules", &set)
}

#[tokio::test]
async fn private_networks_and_security_groups() {
    for fill in FILLS {
        let server = MockServer::start().await;
        // Private networks: found with their range, created, deleted.
        let networks = vec![item(
            fill,
            "GET",
            "/private-network",
            "/private-networks",
            &[
                ("/id", json!(NETWORK)),
                ("/name", json!("vpc-gva")),
                ("/start-ip", json!("10.0.0.1")),
                ("/netmask", json!("255.255.255.0")),
            ],
        )];
        get(
            &server,
            "/private-network",
            list(fill, "/private-network", "/private-networks", networks),
        )
        .await;
        mutation(
            &server,
            fill,
            "POST",
            "/private-network",
            "/private-network",
            &op(1),
            Some(NEW_NETWORK),
            1,
        )
        .await;
        mutation(
            &server,
            fill,
            "DELETE",
            "/private-network/{id}",
            &format!("/private-network/{NETWORK}"),
            &op(2),
            None,
            1,
        )
        .await;

        // Security groups: found with their rules and machines, created with rules, rules replaced,
        // attached and detached.
        let groups = vec![item(
            fill,
            "GET",
            "/security-group",
            "/security-groups",
            &[("/id", json!(GROUP)), ("/name", json!("fl-web"))],
        )];
        get(
            &server,
            "/security-group",
            list(fill, "/security-group", "/security-groups", groups),
        )
        .await;
        get(
            &server,
            &format!("/security-group/{GROUP}"),
            answer(
                fill,
                "GET",
                "/security-group/{id}",
                &[
                    ("/id", json!(GROUP)),
                    ("/name", json!("fl-web")),
                    (
                        "/rules",
                        json!([rule_item(fill, RULE, "203.0.113.0/24", "https")]),
                    ),
                ],
            ),
        )
        .await;
        let member = |id: &str, in_group: bool| {
            let groups: Vec<Value> = in_group
                .then(|| {
                    let mut reference = spec()
                        .answer_at("GET", "/instance", "200", "/instances/0/security-groups/0", fill)
                        .unwrap();
                    put(&mut reference, "/id", json!(GROUP));
                    reference
                })
                .into_iter()
                .collect();
            let set = [("/id", json!(id)), ("/security-groups", json!(groups))];
            (
                item(fill, "GET", "/instance", "/instances", &set),
                answer(fill, "GET", "/instance/{id}", &set),
            )
        };
        let (in_list, in_group) = member(INSTANCE, true);
        let (out_list, out_of_group) = member(OTHER, false);
        get(
            &server,
            "/instance",
            list(fill, "/instance", "/instances", vec![in_list, out_list]),
        )
        .await;
        get(&server, &format!("/instance/{INSTANCE}"), in_group).await;
        get(&server, &format!("/instance/{OTHER}"), out_of_group).await;
        mutation(
            &server,
            fill,
            "POST",
            "/security-group",
            "/security-group",
            &op(3),
            Some(GROUP),
            1,
        )
        .await;
        // Two rules for the new group, one added by the replacement.
        mutation(
            &server,
            fill,
            "POST",
            "/security-group/{id}/rules",
            &format!("/security-group/{GROUP}/rules"),
            &op(4),
            None,
            3,
        )
        .await;
        mutation(
            &server,
            fill,
            "DELETE",
            "/security-group/{id}/rules/{rule-id}",
            &format!("/security-group/{GROUP}/rules/{RULE}"),
            &op(5),
            None,
            1,
        )
        .await;
        mutation(
            &server,
            fill,
            "PUT",
            "/security-group/{id}:attach",
            &format!("/security-group/{GROUP}:attach"),
            &op(6),
            None,
            1,
        )
        .await;
        mutation(
            &server,
            fill,
            "PUT",
            "/security-group/{id}:detach",
            &format!("/security-group/{GROUP}:detach"),
            &op(7),
            None,
            1,
        )
        .await;

        let exo = adapter(&server);
        let vpc = exo
            .find_vpc(ZONE, "vpc-gva")
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"))
            .expect("found");
        assert_eq!(
            (vpc.id.as_str(), vpc.cidr),
            (NETWORK, Some(net("10.0.0.0/24"))),
            "{fill:?}"
        );
        let created = exo
            .create_vpc(&VpcRequest {
                name: "vpc-new".into(),
                region: ZONE.into(),
                cidr: net("10.1.0.0/24"),
            })
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        assert_eq!(created.id, NEW_NETWORK, "{fill:?}");
        exo.delete_vpc(NETWORK)
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));

        let firewall = exo
            .find_firewall("fl-web")
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"))
            .expect("found");
        let https = FirewallRule {
            protocol: Protocol::Tcp,
            ports: Some((443, 443)),
            sources: vec![net("203.0.113.0/24")],
            description: if fill == Fill::Everything {
                "https".into()
            } else {
                String::new()
            },
        };
        assert_eq!(firewall.id, GROUP, "{fill:?}");
        assert_eq!(firewall.name, "fl-web", "{fill:?}");
        assert_eq!(firewall.rules, [https], "{fill:?}");
        assert_eq!(firewall.machine_ids, [INSTANCE], "{fill:?}");

        let rules = vec![FirewallRule {
            protocol: Protocol::Tcp,
            ports: Some((443, 443)),
            sources: vec![net("198.51.100.0/24"), net("192.0.2.0/24")],
            description: "https".into(),
        }];
        let made = exo
            .create_firewall("fl-web", &rules, &marks("www-codetesters-uk"))
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        assert_eq!(made.id, GROUP, "{fill:?}");
        // The rule from 203.0.113.0/24 goes, one from 198.51.100.0/24 comes.
        exo.replace_firewall_rules(
            GROUP,
            &rules[..1]
                .iter()
                .map(|r| FirewallRule {
                    sources: vec![net("198.51.100.0/24")],
                    ..r.clone()
                })
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        exo.attach_firewall(GROUP, OTHER)
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        exo.detach_firewall(GROUP, INSTANCE)
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        conforms(&server, fill).await;
    }
}

fn service(
    fill: Fill,
    engine_path: &str,
    name: &str,
    kind: &str,
    state: &str,
    host: &str,
    port: u16,
) -> Value {
    let p = format!("/{engine_path}/{{name}}");
    let component = item(
        fill,
        "GET",
        &p,
        "/components",
        &[
            ("/component", json!(kind)),
            ("/host", json!(host)),
            ("/port", json!(port)),
            ("/route", json!("dynamic")),
            ("/usage", json!("primary")),
        ],
    );
    answer(
        fill,
        "GET",
        &p,
        &[
            ("/name", json!(name)),
            ("/type", json!(kind)),
            ("/state", json!(state)),
            ("/zone", json!(ZONE)),
            ("/ip-filter", json!(["10.0.0.0/24", "203.0.113.9"])),
            ("/components", json!([component])),
        ],
    )
}

#[tokio::test]
async fn dbaas_services_and_their_allow_lists() {
    for fill in FILLS {
        let server = MockServer::start().await;
        let listed = |name: &str, kind: &str| {
            item(
                fill,
                "GET",
                "/dbaas-service",
                "/dbaas-services",
                &[("/name", json!(name)), ("/type", json!(kind))],
            )
        };
        get(
            &server,
            "/dbaas-service",
            list(
                fill,
                "/dbaas-service",
                "/dbaas-services",
                vec![listed("www-db", "mysql"), listed("pg-db", "pg")],
            ),
        )
        .await;
        for (engine_path, name, kind, state, port) in [
            ("dbaas-mysql", "www-db", "mysql", "running", 21699),
            ("dbaas-postgres", "pg-db", "pg", "running", 21700),
            ("dbaas-mysql", "my-new-db", "mysql", "rebuilding", 21701),
            ("dbaas-postgres", "pg-new-db", "pg", "rebuilding", 21702),
        ] {
            let host = format!("{name}.a.aivencloud.com");
            get(
                &server,
                &format!("/{engine_path}/{name}"),
                service(fill, engine_path, name, kind, state, &host, port),
            )
            .await;
        }
        for (n, m, engine_path, name) in [
            (1, "PUT", "dbaas-mysql", "www-db"),
            (2, "PUT", "dbaas-postgres", "pg-db"),
            (3, "POST", "dbaas-mysql", "my-new-db"),
            (4, "POST", "dbaas-postgres", "pg-new-db"),
        ] {
            mutation(
                &server,
                fill,
                m,
                &format!("/{engine_path}/{{name}}"),
                &format!("/{engine_path}/{name}"),
                &op(n),
                None,
                1,
            )
            .await;
        }
        mutation(
            &server,
            fill,
            "DELETE",
            "/dbaas-service/{name}",
            "/dbaas-service/www-db",
            &op(5),
            None,
            1,
        )
        .await;

        let exo = adapter(&server);
        let found = exo
            .find_database("www-db")
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"))
            .expect("found");
        assert_eq!(
            (found.id.as_str(), found.name.as_str(), found.engine.as_str()),
            ("www-db", "www-db", "mysql"),
            "{fill:?}"
        );
        assert_eq!(
            (found.region.as_str(), found.status.as_str()),
            (ZONE, "running"),
            "{fill:?}"
        );
        assert_eq!(
            (found.host.as_deref(), found.port),
            (Some("www-db.a.aivencloud.com"), Some(21699)),
            "{fill:?}"
        );
        assert_eq!(
            found.allow_list,
            [net("10.0.0.0/24"), net("203.0.113.9/32")],
            "{fill:?}"
        );
        let pg = exo
            .find_database("pg-db")
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"))
            .expect("found");
        assert_eq!((pg.engine.as_str(), pg.port), ("pg", Some(21700)), "{fill:?}");
        let allow = [net("10.0.0.0/24")];
        for name in ["www-db", "pg-db"] {
            exo.replace_allow_list(name, &allow)
                .await
                .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        }
        for (name, engine, port) in [
            ("my-new-db", "mysql", 21701),
            ("pg-new-db", "postgresql/16", 21702),
        ] {
            let made = exo
                .create_database(&DatabaseRequest {
                    name: name.into(),
                    engine: engine.into(),
                    region: ZONE.into(),
                    size: "hobbyist-2".into(),
                    nodes: 1,
                    vpc_id: None,
                    subnet_id: None,
                    allow_list: allow.to_vec(),
                })
                .await
                .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
            assert_eq!(
                (made.id.as_str(), made.status.as_str(), made.port),
                (name, "rebuilding", Some(port)),
                "{fill:?}"
            );
        }
        exo.delete_database("www-db")
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        conforms(&server, fill).await;
    }
}

#[tokio::test]
async fn dns_domains_and_records() {
    for fill in FILLS {
        let server = MockServer::start().await;
        let domains = vec![item(
            fill,
            "GET",
            "/dns-domain",
            "/dns-domains",
            &[("/id", json!(DOMAIN)), ("/unicode-name", json!("codetesters.uk"))],
        )];
        get(
            &server,
            "/dns-domain",
            list(fill, "/dns-domain", "/dns-domains", domains),
        )
        .await;
        let record = |id: &str, name: &str, kind: &str, content: &str| {
            item(
                fill,
                "GET",
                "/dns-domain/{domain-id}/record",
                "/dns-domain-records",
                &[
                    ("/id", json!(id)),
                    ("/name", json!(name)),
                    ("/type", json!(kind)),
                    ("/content", json!(content)),
                    ("/ttl", json!(60)),
                ],
            )
        };
        get(
            &server,
            &format!("/dns-domain/{DOMAIN}/record"),
            list(
                fill,
                "/dns-domain/{domain-id}/record",
                "/dns-domain-records",
                vec![
                    record(RECORD, "www", "A", "185.19.28.170"),
                    record(OTHER, "", "TXT", "hello"),
                ],
            ),
        )
        .await;
        mutation(
            &server,
            fill,
            "POST",
            "/dns-domain/{domain-id}/record",
            &format!("/dns-domain/{DOMAIN}/record"),
            &op(1),
            Some(RECORD),
            1,
        )
        .await;
        for (n, m) in [(2, "PUT"), (3, "DELETE")] {
            mutation(
                &server,
                fill,
                m,
                "/dns-domain/{domain-id}/record/{record-id}",
                &format!("/dns-domain/{DOMAIN}/record/{RECORD}"),
                &op(n),
                None,
                1,
            )
            .await;
        }

        let exo = adapter(&server);
        let zone = exo
            .find_zone("codetesters.uk")
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"))
            .expect("found");
        assert_eq!(
            zone,
            Zone {
                id: DOMAIN.into(),
                name: "codetesters.uk".into()
            },
            "{fill:?}"
        );
        let records = exo
            .list_records(&zone, None, None)
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        let got: Vec<(&str, &str, &str, &str, u32)> = records
            .iter()
            .map(|r| {
                (
                    r.id.as_str(),
                    r.name.as_str(),
                    r.kind.as_str(),
                    r.content.as_str(),
                    r.ttl,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (RECORD, "www.codetesters.uk", "A", "185.19.28.170", 60),
                (OTHER, "codetesters.uk", "TXT", "hello", 60),
            ],
            "{fill:?}"
        );
        let new = NewDnsRecord {
            kind: "A".into(),
            name: "www.codetesters.uk".into(),
            content: "203.0.113.5".into(),
            ttl: 60,
            proxied: None,
            comment: None,
        };
        let created = exo
            .create_record(&zone, &new)
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        assert_eq!(created.id, RECORD, "{fill:?}");
        let updated = exo
            .update_record(
                &zone,
                &DnsRecord {
                    content: "203.0.113.6".into(),
                    ..created
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        assert_eq!(updated.content, "203.0.113.6", "{fill:?}");
        exo.delete_record(&zone, RECORD)
            .await
            .unwrap_or_else(|e| panic!("{fill:?}: {e}"));
        conforms(&server, fill).await;
    }
}

/// The error `result` is, which must be a [`CloudError::Protocol`] saying `what`.
fn protocol_error<T: std::fmt::Debug>(result: Result<T, CloudError>, what: &str) -> String {
    match result {
        Err(e @ CloudError::Protocol { .. }) => {
            let shown = e.to_string();
            assert!(shown.contains(what), "{shown:?} does not say {what:?}");
            shown
        }
        other => panic!("not a protocol error: {other:?}"),
    }
}

/// FINDING: Exoscale's schemas mark every field of an instance, template, private network, security
/// group, DNS domain, DNS record and operation optional — ids, a record's `type` and an operation's
/// `state` included — and the adapter (`src/wire.rs`) demands `id` of each of them, `type` of a record and
/// `id` and `state` of an operation: an answer with only what the document requires is refused whole as a
/// protocol error (a clear error, no panic), a list with one such item included, and a private network
/// read only for its leases too. A create whose operation names no `reference.id` (optional as well) is
/// refused the same way. Pinned here as the current behaviour; the tests above set these fields.
#[tokio::test]
async fn bare_required_only_answers_are_refused_where_the_adapter_demands_an_optional_id() {
    let fill = Fill::RequiredOnly;
    let bare = |m: &str, p: &str| answer(fill, m, p, &[]);
    let bare_item = |p: &str, list: &str| item(fill, "GET", p, list, &[]);
    let mut seen = Vec::new();

    // GET /instance/{id}: `{}`.
    let server = MockServer::start().await;
    get(
        &server,
        &format!("/instance/{INSTANCE}"),
        bare("GET", "/instance/{id}"),
    )
    .await;
    let e = protocol_error(
        adapter(&server).get_machine(INSTANCE).await,
        "at `.`: missing field `id`",
    );
    seen.push(("GET /instance/{id}", e));

    // GET /private-network/{id}, read for its leases only: `{}`.
    let server = MockServer::start().await;
    get(
        &server,
        &format!("/instance/{INSTANCE}"),
        instance(fill, false, INSTANCE, &marks("d"), Some(NETWORK)),
    )
    .await;
    get(
        &server,
        &format!("/private-network/{NETWORK}"),
        bare("GET", "/private-network/{id}"),
    )
    .await;
    let e = protocol_error(
        adapter(&server).get_machine(INSTANCE).await,
        "at `.`: missing field `id`",
    );
    seen.push(("GET /private-network/{id}", e));

    // GET /instance: one `{}` instance.
    let server = MockServer::start().await;
    get(
        &server,
        "/instance",
        list(
            fill,
            "/instance",
            "/instances",
            vec![bare_item("/instance", "/instances")],
        ),
    )
    .await;
    let e = protocol_error(
        adapter(&server).list_machines(&MarkFilter::deployment("d")).await,
        "at `instances[0]`: missing field `id`",
    );
    seen.push(("GET /instance", e));

    // GET /template: one `{}` template (an instance type given by id, so no type lookup).
    let server = MockServer::start().await;
    get(
        &server,
        "/template",
        list(
            fill,
            "/template",
            "/templates",
            vec![bare_item("/template", "/templates")],
        ),
    )
    .await;
    let request = MachineRequest {
        name: "ws-1".into(),
        region: ZONE.into(),
        size: TYPE_TINY.into(),
        image: "Linux Ubuntu 24.04 LTS 64-bit".into(),
        vpc_id: None,
        subnet_id: None,
        firewall_id: None,
        ssh_keys: Vec::new(),
        user_data: None,
        marks: marks("d"),
    };
    let e = protocol_error(
        adapter(&server).create_machine(&request).await,
        "at `templates[0]`: missing field `id`",
    );
    seen.push(("GET /template", e));

    // GET /private-network: one `{}` network.
    let server = MockServer::start().await;
    get(
        &server,
        "/private-network",
        list(
            fill,
            "/private-network",
            "/private-networks",
            vec![bare_item("/private-network", "/private-networks")],
        ),
    )
    .await;
    let e = protocol_error(
        adapter(&server).find_vpc(ZONE, "vpc").await,
        "at `private-networks[0]`: missing field `id`",
    );
    seen.push(("GET /private-network", e));

    // GET /security-group: one `{}` group.
    let server = MockServer::start().await;
    get(
        &server,
        "/security-group",
        list(
            fill,
            "/security-group",
            "/security-groups",
            vec![bare_item("/security-group", "/security-groups")],
        ),
    )
    .await;
    let e = protocol_error(
        adapter(&server).find_firewall("fl-web").await,
        "at `security-groups[0]`: missing field `id`",
    );
    seen.push(("GET /security-group", e));

    // GET /dns-domain: one `{}` domain.
    let server = MockServer::start().await;
    get(
        &server,
        "/dns-domain",
        list(
            fill,
            "/dns-domain",
            "/dns-domains",
            vec![bare_item("/dns-domain", "/dns-domains")],
        ),
    )
    .await;
    let e = protocol_error(
        adapter(&server).find_zone("codetesters.uk").await,
        "at `dns-domains[0]`: missing field `id`",
    );
    seen.push(("GET /dns-domain", e));

    // GET /dns-domain/{id}/record: one `{}` record.
    let server = MockServer::start().await;
    get(
        &server,
        &format!("/dns-domain/{DOMAIN}/record"),
        list(
            fill,
            "/dns-domain/{domain-id}/record",
            "/dns-domain-records",
            vec![bare_item("/dns-domain/{domain-id}/record", "/dns-domain-records")],
        ),
    )
    .await;
    let zone = Zone {
        id: DOMAIN.into(),
        name: "codetesters.uk".into(),
    };
    let e = protocol_error(
        adapter(&server).list_records(&zone, None, None).await,
        "at `dns-domain-records[0]`: missing field `id`",
    );
    seen.push(("GET /dns-domain/{domain-id}/record", e));
    let server = MockServer::start().await;
    get(
        &server,
        &format!("/dns-domain/{DOMAIN}/record"),
        list(
            fill,
            "/dns-domain/{domain-id}/record",
            "/dns-domain-records",
            vec![item(
                fill,
                "GET",
                "/dns-domain/{domain-id}/record",
                "/dns-domain-records",
                &[("/id", json!(RECORD))],
            )],
        ),
    )
    .await;
    let e = protocol_error(
        adapter(&server).list_records(&zone, None, None).await,
        "at `dns-domain-records[0]`: missing field `type`",
    );
    seen.push(("GET /dns-domain/{domain-id}/record (with ids)", e));

    // A mutation answered `{}`: no operation id to poll, no state.
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(ok(bare("DELETE", "/instance/{id}")))
        .mount(&server)
        .await;
    let e = protocol_error(
        adapter(&server).delete_machine(INSTANCE).await,
        "at `.`: missing field `id`",
    );
    seen.push(("DELETE /instance/{id}", e));
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(ok(answer(
            fill,
            "DELETE",
            "/instance/{id}",
            &[("/id", json!(OP))],
        )))
        .mount(&server)
        .await;
    let e = protocol_error(
        adapter(&server).delete_machine(INSTANCE).await,
        "at `.`: missing field `state`",
    );
    seen.push(("DELETE /instance/{id} (with the operation's id)", e));

    // A create whose operation succeeded without naming what it made (`reference` is optional too).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/private-network"))
        .respond_with(ok(answer(
            fill,
            "POST",
            "/private-network",
            &[("/id", json!(OP)), ("/state", json!("success"))],
        )))
        .mount(&server)
        .await;
    let e = protocol_error(
        adapter(&server)
            .create_vpc(&VpcRequest {
                name: "vpc".into(),
                region: ZONE.into(),
                cidr: net("10.0.0.0/24"),
            })
            .await,
        "names no resource",
    );
    seen.push(("POST /private-network", e));

    for (operation, error) in &seen {
        println!("{operation}: {error}");
    }
}

/// DBaaS answers with only what the document requires parse: it requires the service's `name` and
/// `type`, all the adapter demands. Such a service has no state, endpoint or filter, and is read so.
#[tokio::test]
async fn bare_required_only_dbaas_answers_are_read() {
    let fill = Fill::RequiredOnly;
    let server = MockServer::start().await;
    let listed = item(
        fill,
        "GET",
        "/dbaas-service",
        "/dbaas-services",
        &[("/name", json!("www-db")), ("/type", json!("mysql"))],
    );
    get(
        &server,
        "/dbaas-service",
        list(fill, "/dbaas-service", "/dbaas-services", vec![listed]),
    )
    .await;
    get(
        &server,
        "/dbaas-mysql/www-db",
        answer(
            fill,
            "GET",
            "/dbaas-mysql/{name}",
            &[("/name", json!("www-db")), ("/type", json!("mysql"))],
        ),
    )
    .await;
    let found = adapter(&server)
        .find_database("www-db")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        (
            found.region.as_str(),
            found.status.as_str(),
            found.host,
            found.port
        ),
        (ZONE, "", None, None)
    );
    assert!(found.allow_list.is_empty());
}

/// The reads parse the answers with every optional field present as generated, nothing set on top (the
/// values are the generator's: fixed UUIDs, `"string"`, the first of each enum).
#[tokio::test]
async fn bare_everything_answers_are_read() {
    let fill = Fill::Everything;
    let server = MockServer::start().await;
    let bare = |p: &str| answer(fill, "GET", p, &[]);
    let uuid = flotilla_conformance::examples::UUID;
    get(&server, &format!("/instance/{uuid}"), bare("/instance/{id}")).await;
    get(
        &server,
        &format!("/private-network/{uuid}"),
        bare("/private-network/{id}"),
    )
    .await;
    get(&server, "/instance", bare("/instance")).await;
    get(&server, "/private-network", bare("/private-network")).await;
    get(&server, "/security-group", bare("/security-group")).await;
    get(
        &server,
        &format!("/security-group/{uuid}"),
        bare("/security-group/{id}"),
    )
    .await;
    get(&server, "/dns-domain", bare("/dns-domain")).await;
    get(
        &server,
        &format!("/dns-domain/{uuid}/record"),
        bare("/dns-domain/{domain-id}/record"),
    )
    .await;
    let exo = adapter(&server);

    let machine = exo.get_machine(uuid).await.unwrap();
    assert_eq!(machine.id, uuid);
    assert_eq!(
        machine.public_ipv4,
        Some(flotilla_conformance::examples::IPV4.parse().unwrap())
    );
    // The lease the generator made is for the instance it made, at the same fixed address.
    assert_eq!(machine.private_ipv4, machine.public_ipv4);
    assert!(
        exo.list_machines(&MarkFilter::deployment("d"))
            .await
            .unwrap()
            .is_empty(),
        "the generated labels are no marks"
    );
    let vpc = exo.find_vpc(ZONE, "string").await.unwrap().expect("found");
    assert_eq!(
        (vpc.id.as_str(), vpc.cidr),
        (uuid, None),
        "a netmask of 192.0.2.10 is none"
    );
    let firewall = exo.find_firewall("string").await.unwrap().expect("found");
    assert_eq!(firewall.id, uuid);
    // `network: "string"` is no range: the rule is not one Flotilla can represent, and is left out.
    assert!(firewall.rules.is_empty());
    assert_eq!(firewall.machine_ids, [uuid]);
    let zone = exo.find_zone("string").await.unwrap().expect("found");
    let records = exo.list_records(&zone, None, None).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "string.string");
}
