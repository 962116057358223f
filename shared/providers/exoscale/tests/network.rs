//! Private networks and security groups against answers built from the Exoscale OpenAPI spec.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ZONE, adapter, assert_conforms, component, example, operation, request_properties};
use flotilla_cloud::{CloudError, FirewallRule, Marks, Network, Protocol, ProviderKind, VpcRequest};
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NETWORK: &str = "4a3b7d2e-1c5f-4e8a-9b6d-2f0e8c7a1b3d";
const GROUP: &str = "0b6e0d3f-7f1e-4c6a-9d77-3d6c2f1a8e21";
const INSTANCE: &str = "9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d";
const OP: &str = "e2047130-b86e-11ed-afa1-0242ac120002";

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn ok_op(reference: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(operation(OP, "success", reference))
}

#[tokio::test]
async fn find_vpc_reads_the_range_back_and_create_vpc_derives_it() {
    let server = MockServer::start().await;
    let list = example(
        "/private-network",
        "get",
        &[(
            "/private-networks",
            json!([
                component(
                    "private-network",
                    &[
                        ("/id", json!("11111111-1111-4111-8111-111111111111")),
                        ("/name", json!("other"))
                    ]
                ),
                component(
                    "private-network",
                    &[
                        ("/id", json!(NETWORK)),
                        ("/name", json!("vpc-gva")),
                        ("/start-ip", json!("10.0.1.1")),
                        ("/end-ip", json!("10.0.1.254")),
                        ("/netmask", json!("255.255.255.0")),
                    ]
                ),
            ]),
        )],
    );
    Mock::given(method("GET"))
        .and(path("/v2/private-network"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/private-network"))
        .and(body_json(json!({
            "name": "vpc-new",
            "netmask": "255.255.0.0",
            "start-ip": "10.20.0.1",
            "end-ip": "10.20.255.254",
        })))
        .respond_with(ok_op(NETWORK))
        .expect(1)
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let vpc = exo.find_vpc(ZONE, "vpc-gva").await.unwrap().unwrap();
    assert_eq!(
        (vpc.id.as_str(), vpc.name.as_str(), vpc.region.as_str(), vpc.cidr),
        (NETWORK, "vpc-gva", ZONE, Some(net("10.0.1.0/24")))
    );
    assert!(exo.find_vpc(ZONE, "missing").await.unwrap().is_none());
    assert!(exo.find_vpc("de-fra-1", "vpc-gva").await.is_err());

    let created = exo
        .create_vpc(&VpcRequest {
            name: "vpc-new".into(),
            region: ZONE.into(),
            cidr: net("10.20.0.0/16"),
        })
        .await
        .unwrap();
    assert_eq!(created.id, NETWORK);
    assert_eq!(created.cidr, Some(net("10.20.0.0/16")));
    for key in ["name", "netmask", "start-ip", "end-ip"] {
        assert!(request_properties("/private-network", "post").contains(&key.to_owned()));
    }
    assert_conforms(&server).await;
}

fn rule(id: &str, protocol: &str, network: &str, ports: Option<(u16, u16)>, description: &str) -> Value {
    let mut r = component(
        "security-group-rule",
        &[
            ("/id", json!(id)),
            ("/flow-direction", json!("ingress")),
            ("/protocol", json!(protocol)),
            ("/network", json!(network)),
            ("/description", json!(description)),
        ],
    );
    let fields = r.as_object_mut().unwrap();
    fields.remove("security-group");
    match ports {
        Some((start, end)) => {
            fields.insert("start-port".into(), json!(start));
            fields.insert("end-port".into(), json!(end));
        }
        None => {
            fields.remove("start-port");
            fields.remove("end-port");
        }
    }
    r
}

fn group(rules: Vec<Value>) -> Value {
    example(
        "/security-group/{id}",
        "get",
        &[
            ("/id", json!(GROUP)),
            ("/name", json!("fl-web")),
            ("/rules", Value::Array(rules)),
        ],
    )
}

#[tokio::test]
async fn find_firewall_groups_rules_and_finds_its_machines() {
    let server = MockServer::start().await;
    let list = example(
        "/security-group",
        "get",
        &[(
            "/security-groups",
            json!([
                component(
                    "security-group",
                    &[
                        ("/id", json!("11111111-1111-4111-8111-111111111111")),
                        ("/name", json!("default"))
                    ]
                ),
                component(
                    "security-group",
                    &[("/id", json!(GROUP)), ("/name", json!("fl-web"))]
                ),
            ]),
        )],
    );
    Mock::given(method("GET"))
        .and(path("/v2/security-group"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list))
        .mount(&server)
        .await;
    let mut egress = rule("r9", "tcp", "0.0.0.0/0", Some((1, 65535)), "");
    egress["flow-direction"] = json!("egress");
    let mut by_group = rule("r8", "tcp", "0.0.0.0/0", Some((22, 22)), "");
    by_group.as_object_mut().unwrap().remove("network");
    Mock::given(method("GET"))
        .and(path(format!("/v2/security-group/{GROUP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(group(vec![
            rule("r1", "tcp", "203.0.113.0/24", Some((443, 443)), "https"),
            rule("r2", "tcp", "198.51.100.7/32", Some((443, 443)), "https"),
            rule("r3", "udp", "10.0.0.0/16", Some((1, 65535)), ""),
            rule("r4", "icmp", "0.0.0.0/0", None, "ping"),
            egress,
            by_group,
        ])))
        .mount(&server)
        .await;
    let with_group = |id: &str, groups: Value| {
        example(
            "/instance/{id}",
            "get",
            &[("/id", json!(id)), ("/security-groups", groups)],
        )
    };
    Mock::given(method("GET"))
        .and(path("/v2/instance"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"instances": [
            with_group(INSTANCE, json!([{"id": GROUP}])),
            with_group("22222222-2222-4222-8222-222222222222", json!([{"id": "11111111-1111-4111-8111-111111111111"}])),
        ]})))
        .mount(&server)
        .await;
    let exo = adapter(&server);
    let fw = exo.find_firewall("fl-web").await.unwrap().unwrap();
    assert_eq!(fw.id, GROUP);
    assert_eq!(fw.machine_ids, vec![INSTANCE.to_owned()]);
    let mut rules = fw.rules;
    rules.sort();
    assert_eq!(
        rules,
        vec![
            FirewallRule {
                protocol: Protocol::Tcp,
                ports: Some((443, 443)),
                sources: vec![net("203.0.113.0/24"), net("198.51.100.7/32")],
                description: "https".into(),
            },
            FirewallRule {
                protocol: Protocol::Udp,
                ports: None,
                sources: vec![net("10.0.0.0/16")],
                description: String::new(),
            },
            FirewallRule {
                protocol: Protocol::Icmp,
                ports: None,
                sources: vec![net("0.0.0.0/0")],
                description: "ping".into(),
            },
        ]
    );
    assert!(exo.find_firewall("missing").await.unwrap().is_none());
    assert_conforms(&server).await;
}

#[tokio::test]
async fn create_firewall_marks_the_description_and_adds_one_rule_per_source() {
    let server = MockServer::start().await;
    let marks = Marks {
        deployment: "www-codetesters-uk".into(),
        region: "ch-gva".into(),
        role: None,
        resource_id: "fw-1".into(),
    };
    Mock::given(method("POST"))
        .and(path("/v2/security-group"))
        .and(body_json(json!({
            "name": "fl-web",
            "description": "flotilla fl-dep:www-codetesters-uk fl-reg:ch-gva fl-id:fw-1",
        })))
        .respond_with(ok_op(GROUP))
        .expect(1)
        .mount(&server)
        .await;
    for network in ["203.0.113.0/24", "198.51.100.7/32"] {
        Mock::given(method("POST"))
            .and(path(format!("/v2/security-group/{GROUP}/rules")))
            .and(body_json(json!({
                "flow-direction": "ingress",
                "protocol": "tcp",
                "network": network,
                "start-port": 80,
                "end-port": 443,
                "description": "web",
            })))
            .respond_with(ok_op(GROUP))
            .expect(1)
            .mount(&server)
            .await;
    }
    let rules = vec![FirewallRule {
        protocol: Protocol::Tcp,
        ports: Some((80, 443)),
        sources: vec![net("203.0.113.0/24"), net("198.51.100.7/32")],
        description: "web".into(),
    }];
    let fw = adapter(&server)
        .create_firewall("fl-web", &rules, &marks)
        .await
        .unwrap();
    assert_eq!((fw.id.as_str(), fw.rules), (GROUP, rules));
    let allowed = request_properties("/security-group/{id}/rules", "post");
    for key in [
        "flow-direction",
        "protocol",
        "network",
        "start-port",
        "end-port",
        "description",
    ] {
        assert!(allowed.contains(&key.to_owned()), "{key}");
    }
    assert_conforms(&server).await;
}

#[tokio::test]
async fn replace_rules_adds_the_missing_then_deletes_the_stale_only() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/security-group/{GROUP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(group(vec![
            rule("keep", "tcp", "203.0.113.0/24", Some((443, 443)), "old text"),
            rule("stale", "tcp", "192.0.2.0/24", Some((443, 443)), ""),
            rule("dupe", "tcp", "203.0.113.0/24", Some((443, 443)), ""),
        ])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/security-group/{GROUP}/rules")))
        .and(body_json(json!({
            "flow-direction": "ingress", "protocol": "tcp", "network": "10.0.0.0/16",
            "start-port": 443, "end-port": 443, "description": "https",
        })))
        .respond_with(ok_op(GROUP))
        .expect(1)
        .mount(&server)
        .await;
    for id in ["stale", "dupe"] {
        Mock::given(method("DELETE"))
            .and(path(format!("/v2/security-group/{GROUP}/rules/{id}")))
            .respond_with(ok_op(GROUP))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/security-group/{GROUP}/rules/keep")))
        .respond_with(ok_op(GROUP))
        .expect(0)
        .mount(&server)
        .await;
    let rules = vec![FirewallRule {
        protocol: Protocol::Tcp,
        ports: Some((443, 443)),
        sources: vec![net("203.0.113.0/24"), net("10.0.0.0/16")],
        description: "https".into(),
    }];
    adapter(&server)
        .replace_firewall_rules(GROUP, &rules)
        .await
        .unwrap();
    let order: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().contains("/rules"))
        .map(|r| r.method.to_string())
        .collect();
    assert_eq!(order, ["POST", "DELETE", "DELETE"], "add before delete");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn attach_and_detach_are_idempotent() {
    let server = MockServer::start().await;
    let instance = |groups: Value| {
        example(
            "/instance/{id}",
            "get",
            &[("/id", json!(INSTANCE)), ("/security-groups", groups)],
        )
    };
    // First without the group, then with it.
    Mock::given(method("GET"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(instance(json!([]))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/instance/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(instance(json!([{"id": GROUP}]))))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/v2/security-group/{GROUP}:attach")))
        .and(body_json(json!({"instance": {"id": INSTANCE}})))
        .respond_with(ok_op(GROUP))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/v2/security-group/{GROUP}:detach")))
        .and(body_json(json!({"instance": {"id": INSTANCE}})))
        .respond_with(ok_op(GROUP))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/instance/33333333-3333-4333-8333-333333333333"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "instance not found"})))
        .mount(&server)
        .await;
    let exo = adapter(&server);
    exo.attach_firewall(GROUP, INSTANCE).await.unwrap();
    exo.attach_firewall(GROUP, INSTANCE).await.unwrap(); // already there: no PUT
    exo.detach_firewall(GROUP, INSTANCE).await.unwrap();
    exo.detach_firewall(GROUP, "33333333-3333-4333-8333-333333333333")
        .await
        .unwrap(); // gone machine: nothing applied
    let err = exo
        .attach_firewall(GROUP, "33333333-3333-4333-8333-333333333333")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn delete_vpc_polls_its_operation_and_maps_in_use_and_gone() {
    let server = MockServer::start().await;
    const IN_USE: &str = "5b4c8e3f-2d60-4f9b-8c7e-3a1f9d8b2c4e";
    const GONE: &str = "6c5d9f40-3e71-4a0c-9d8f-4b2a0e9c3d5f";
    const FAILS: &str = "7d6e0a51-4f82-4b1d-8e90-5c3b1f0d4e60";
    const FAILED_OP: &str = "f3158241-c97f-11ed-b0b2-0242ac120003";
    // Deleted: the operation is pending at first and polled until it succeeds.
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/private-network/{NETWORK}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "pending", NETWORK)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(OP, "success", NETWORK)))
        .expect(1)
        .mount(&server)
        .await;
    // Refused at once while instances are attached.
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/private-network/{IN_USE}")))
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_json(json!({"message": "The private network has instances attached"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/private-network/{GONE}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .expect(1)
        .mount(&server)
        .await;
    // Refused by the operation instead.
    let mut failed = operation(FAILED_OP, "failure", FAILS);
    failed["reason"] = json!("conflict");
    failed["message"] = json!("Private Network is in use");
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/private-network/{FAILS}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(operation(FAILED_OP, "pending", FAILS)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/operation/{FAILED_OP}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(failed))
        .mount(&server)
        .await;
    let exo = adapter(&server);
    exo.delete_vpc(NETWORK).await.unwrap();
    let err = exo.delete_vpc(IN_USE).await.unwrap_err();
    assert_eq!(
        err,
        CloudError::Conflict {
            provider: ProviderKind::Exoscale,
            message: "The private network has instances attached".into(),
        }
    );
    let err = exo.delete_vpc(GONE).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = exo.delete_vpc(FAILS).await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Conflict { message, .. } if message.contains("in use")),
        "{err:?}"
    );
    let calls = exo.api().calls();
    let err = exo.delete_vpc("../instance").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    assert_eq!(
        exo.api().calls(),
        calls,
        "a malformed id is refused before any call"
    );
    server.verify().await;
    assert_conforms(&server).await;
}
