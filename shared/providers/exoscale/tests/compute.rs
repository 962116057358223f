//! Instances against answers built from the Exoscale OpenAPI spec, served by wiremock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ZONE, adapter, assert_conforms, component, example, operation, request_properties};
use flotilla_cloud::{Compute, MachineRequest, MachineState, MarkFilter, Marks};
use flotilla_spec::Role;
use serde_json::json;
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const INSTANCE: &str = "9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d";
const NETWORK: &str = "4a3b7d2e-1c5f-4e8a-9b6d-2f0e8c7a1b3d";
const TYPE_TINY: &str = "b6cd1ff5-3a2f-4e9d-a4d1-8988c1191735";
const TEMPLATE: &str = "c19542b7-d269-4bd4-bf5a-b3e0c4ab5b6f";
const FIREWALL: &str = "0b6e0d3f-7f1e-4c6a-9d77-3d6c2f1a8e21";
const OP: &str = "e2047130-b86e-11ed-afa1-0242ac120002";

fn marks(deployment: &str, region: &str) -> Marks {
    Marks {
        deployment: deployment.into(),
        region: region.into(),
        role: Some(Role::Webserver),
        resource_id: "01a20b6d-ec94".into(),
    }
}

fn instance(id: &str, labels: &Marks, state: &str, network: Option<&str>) -> serde_json::Value {
    example(
        "/instance/{id}",
        "get",
        &[
            ("/id", json!(id)),
            ("/name", json!("ws-1-gva")),
            ("/state", json!(state)),
            ("/public-ip", json!("185.19.28.170")),
            ("/labels", json!(labels.to_labels())),
            (
                "/private-networks",
                json!(
                    network
                        .map(|n| vec![json!({"id": n, "mac-address": "0a:00:00:00:00:01"})])
                        .unwrap_or_default()
                ),
            ),
            ("/instance-type/family", json!("standard")),
            ("/instance-type/size", json!("tiny")),
            ("/created-at", json!("2024-05-01T12:00:00Z")),
        ],
    )
}

fn network_with_lease(instance: &str, ip: &str) -> serde_json::Value {
    example(
        "/private-network/{id}",
        "get",
        &[
            ("/id", json!(NETWORK)),
            ("/name", json!("vpc-gva")),
            ("/leases", json!([{"ip": ip, "instance-id": instance}])),
        ],
    )
}

#[tokio::test]
async fn get_machine_reads_the_spec_shape() {
    let server = MockServer::start().await;
    let m = marks("www-codetesters-uk", "ch-gva");
    Mock::given(method("GET"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(instance(
            INSTANCE,
            &m,
            "running",
            Some(NETWORK),
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/private-network/{NETWORK}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(network_with_lease(INSTANCE, "10.0.0.5")))
        .expect(1)
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let machine = exo.get_machine(INSTANCE).await.unwrap();
    assert_eq!(machine.id, INSTANCE);
    assert_eq!(machine.name, "ws-1-gva");
    assert_eq!(machine.region, ZONE);
    assert_eq!(machine.size, "standard.tiny");
    assert_eq!(machine.state, MachineState::Running);
    assert_eq!(machine.public_ipv4, Some("185.19.28.170".parse().unwrap()));
    assert_eq!(machine.private_ipv4, Some("10.0.0.5".parse().unwrap()));
    assert_eq!(machine.marks, Some(m.clone()));
    assert!(machine.tags.contains(&"flotilla".to_owned()));
    assert!(machine.tags.contains(&"fl-dep:www-codetesters-uk".to_owned()));
    assert_eq!(
        machine.created_at.unwrap().to_rfc3339(),
        "2024-05-01T12:00:00+00:00"
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn states_map_to_flotilla_states() {
    let server = MockServer::start().await;
    let m = marks("d", "r");
    for (state, expected) in [
        ("starting", MachineState::Provisioning),
        ("stopping", MachineState::Stopped),
        ("stopped", MachineState::Stopped),
        ("destroying", MachineState::Deleting),
        ("error", MachineState::Other("error".into())),
    ] {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path(format!("/v2/instance/{INSTANCE}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(instance(INSTANCE, &m, state, None)))
            .mount(&server)
            .await;
        let machine = adapter(&server).get_machine(INSTANCE).await.unwrap();
        assert_eq!(machine.state, expected, "{state}");
        assert_eq!(machine.private_ipv4, None);
        // `reset` forgets the requests received so far: judged before it.
        assert_conforms(&server).await;
    }
}

#[tokio::test]
async fn list_machines_filters_by_labels_in_a_constant_number_of_calls() {
    let server = MockServer::start().await;
    let ours = marks("www-codetesters-uk", "ch-gva");
    let other_deployment = marks("www-other-uk", "ch-gva");
    let mut unmarked = instance("33333333-3333-4333-8333-333333333333", &ours, "running", None);
    unmarked["labels"] = json!({"team": "ops"});
    let list = example(
        "/instance",
        "get",
        &[(
            "/instances",
            json!([
                instance(INSTANCE, &ours, "running", Some(NETWORK)),
                instance(
                    "22222222-2222-4222-8222-222222222222",
                    &ours,
                    "starting",
                    Some(NETWORK)
                ),
                instance(
                    "11111111-1111-4111-8111-111111111111",
                    &other_deployment,
                    "running",
                    Some(NETWORK)
                ),
                unmarked,
            ]),
        )],
    );
    Mock::given(method("GET"))
        .and(path("/v2/instance"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list))
        .expect(2)
        .mount(&server)
        .await;
    let mut net = network_with_lease(INSTANCE, "10.0.0.5");
    net["leases"] = json!([
        {"ip": "10.0.0.5", "instance-id": INSTANCE},
        {"ip": "10.0.0.6", "instance-id": "22222222-2222-4222-8222-222222222222"},
    ]);
    Mock::given(method("GET"))
        .and(path(format!("/v2/private-network/{NETWORK}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(net))
        .expect(1)
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let machines = exo
        .list_machines(&MarkFilter::deployment("www-codetesters-uk"))
        .await
        .unwrap();
    let summary: Vec<(String, Option<String>)> = machines
        .iter()
        .map(|m| (m.id.clone(), m.private_ipv4.map(|ip| ip.to_string())))
        .collect();
    assert_eq!(
        summary,
        vec![
            (INSTANCE.to_owned(), Some("10.0.0.5".to_owned())),
            (
                "22222222-2222-4222-8222-222222222222".to_owned(),
                Some("10.0.0.6".to_owned())
            ),
        ]
    );
    assert_eq!(exo.api().calls(), 2);
    let none = exo
        .list_machines(&MarkFilter::region("www-codetesters-uk", "nl-ams"))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(exo.api().calls(), 3, "no network lookups when nothing matches");
    assert_conforms(&server).await;
}

fn request() -> MachineRequest {
    MachineRequest {
        name: "ws-1-gva".into(),
        region: ZONE.into(),
        size: "tiny".into(),
        image: "Linux Ubuntu 24.04 LTS 64-bit".into(),
        vpc_id: Some(NETWORK.into()),
        subnet_id: None,
        firewall_id: Some(FIREWALL.into()),
        ssh_keys: vec!["flotilla-build".into()],
        user_data: Some("#cloud-config\npackages: [nginx]\n".into()),
        marks: marks("www-codetesters-uk", "ch-gva"),
    }
}

#[tokio::test]
async fn create_machine_resolves_names_once_posts_polls_and_attaches_the_network() {
    let server = MockServer::start().await;
    let types = example(
        "/instance-type",
        "get",
        &[(
            "/instance-types",
            json!([
                component(
                    "instance-type",
                    &[
                        ("/id", json!("00000000-0000-4000-8000-00000000000a")),
                        ("/family", json!("standard")),
                        ("/size", json!("micro"))
                    ]
                ),
                component(
                    "instance-type",
                    &[
                        ("/id", json!(TYPE_TINY)),
                        ("/family", json!("standard")),
                        ("/size", json!("tiny"))
                    ]
                ),
                component(
                    "instance-type",
                    &[
                        ("/id", json!("00000000-0000-4000-8000-00000000000b")),
                        ("/family", json!("memory")),
                        ("/size", json!("tiny"))
                    ]
                ),
            ]),
        )],
    );
    Mock::given(method("GET"))
        .and(path("/v2/instance-type"))
        .respond_with(ResponseTemplate::new(200).set_body_json(types))
        .expect(1)
        .mount(&server)
        .await;
    let templates = example(
        "/template",
        "get",
        &[(
            "/templates",
            json!([
                component(
                    "template",
                    &[
                        ("/id", json!("00000000-0000-4000-8000-0000000000c1")),
                        ("/name", json!("Linux Debian 12 (Bookworm) 64-bit")),
                        ("/created-at", json!("2024-01-01T00:00:00Z"))
                    ]
                ),
                component(
                    "template",
                    &[
                        ("/id", json!("00000000-0000-4000-8000-0000000000c2")),
                        ("/name", json!("Linux Ubuntu 24.04 LTS 64-bit")),
                        ("/created-at", json!("2024-02-01T00:00:00Z"))
                    ]
                ),
                component(
                    "template",
                    &[
                        ("/id", json!(TEMPLATE)),
                        ("/name", json!("Linux Ubuntu 24.04 LTS 64-bit")),
                        ("/created-at", json!("2024-06-01T00:00:00Z"))
                    ]
                ),
            ]),
        )],
    );
    Mock::given(method("GET"))
        .and(path("/v2/template"))
        .and(query_param("visibility", "public"))
        .respond_with(ResponseTemplate::new(200).set_body_json(templates))
        .expect(1)
        .mount(&server)
        .await;
    let m = request().marks;
    Mock::given(method("POST"))
        .and(path("/v2/instance"))
        .and(body_partial_json(json!({
            "name": "ws-1-gva",
            "instance-type": {"id": TYPE_TINY},
            "template": {"id": TEMPLATE},
            "disk-size": 50,
            "labels": m.to_labels(),
            "security-groups": [{"id": FIREWALL}],
            "ssh-key": {"name": "flotilla-build"},
            "user-data": "I2Nsb3VkLWNvbmZpZwpwYWNrYWdlczogW25naW54XQo=",
            "public-ip-assignment": "inet4",
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "pending", INSTANCE)))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", INSTANCE)))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/v2/private-network/{NETWORK}:attach")))
        .and(body_partial_json(json!({"instance": {"id": INSTANCE}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", NETWORK)))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(instance(
            INSTANCE,
            &m,
            "starting",
            Some(NETWORK),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/private-network/{NETWORK}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(network_with_lease(INSTANCE, "10.0.0.9")))
        .mount(&server)
        .await;

    let exo = adapter(&server);
    let machine = exo.create_machine(&request()).await.unwrap();
    assert_eq!(machine.id, INSTANCE);
    assert_eq!(machine.state, MachineState::Provisioning);
    assert_eq!(machine.private_ipv4, Some("10.0.0.9".parse().unwrap()));
    assert_eq!(machine.marks, Some(m));
    // The second create uses the cached type and template ids (the mocks expect one lookup each).
    exo.create_machine(&request()).await.unwrap();

    // Every field we send is one the spec's create-instance body has.
    let allowed = request_properties("/instance", "post");
    let sent: Vec<serde_json::Value> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    for key in sent[0].as_object().unwrap().keys() {
        assert!(allowed.contains(key), "{key} is not in the spec");
    }
    assert_conforms(&server).await;
}

#[tokio::test]
async fn ids_are_used_as_given_and_other_zones_are_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/instance"))
        .and(body_partial_json(
            json!({"instance-type": {"id": TYPE_TINY}, "template": {"id": TEMPLATE}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", INSTANCE)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(instance(
            INSTANCE,
            &marks("d", "r"),
            "starting",
            None,
        )))
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let mut req = request();
    req.size = TYPE_TINY.into();
    req.image = TEMPLATE.into();
    req.vpc_id = None;
    exo.create_machine(&req).await.unwrap();
    assert_eq!(exo.api().calls(), 2, "no lookups for ids");

    req.region = "de-fra-1".into();
    let err = exo.create_machine(&req).await.unwrap_err();
    assert!(err.to_string().contains("de-fra-1"), "{err}");
    assert_eq!(exo.api().calls(), 2, "refused before any call");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn unknown_sizes_and_templates_are_invalid() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/instance-type"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"instance-types": []})))
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let err = exo.create_machine(&request()).await.unwrap_err();
    assert!(
        matches!(&err, flotilla_cloud::CloudError::Invalid { field: Some(f), .. } if f == "size"),
        "{err}"
    );
    assert_conforms(&server).await;
}
