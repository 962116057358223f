//! VPCs and Cloud Firewalls against DigitalOcean's example answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flotilla_cloud::{CloudError, FirewallRule, Network, Protocol, ProviderKind, VpcRequest};
use flotilla_spec::Role;
use serde_json::json;
use support::{Spec, assert_conforms, cloud, marks};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FIREWALL: &str = "bb4b2611-3d72-467b-8602-280330ecd65c";

fn rule(protocol: Protocol, ports: Option<(u16, u16)>, sources: &[&str]) -> FirewallRule {
    FirewallRule {
        protocol,
        ports,
        sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
        description: String::new(),
    }
}

#[tokio::test]
async fn find_vpc_matches_name_and_region() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/vpcs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "vpcs/vpcs_list.yml",
            "200",
            None,
        )))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let vpc = c.find_vpc("nyc1", "env.prod-vpc").await.unwrap().unwrap();
    assert_eq!(vpc.id, "5a4981aa-9653-4bd1-bef5-d6bff52042e4");
    assert_eq!(vpc.cidr, Some("10.10.10.0/24".parse().unwrap()));
    assert_eq!(vpc.region, "nyc1");
    assert_eq!(vpc.subnet_id, None);
    let default = c.find_vpc("nyc3", "default-nyc3").await.unwrap().unwrap();
    assert_eq!(default.cidr, Some("10.100.0.0/20".parse().unwrap()));
    assert_eq!(
        c.find_vpc("nyc3", "env.prod-vpc").await.unwrap(),
        None,
        "other region"
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn create_vpc_posts_name_region_and_range() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    // The spec gives no example answer for this one: it is built from the VPC model's property examples.
    let answer = spec.response("vpcs/vpcs_create.yml", "201", None);
    assert_eq!(
        answer["vpc"]["urn"],
        "do:vpc:5a4981aa-9653-4bd1-bef5-d6bff52042e4"
    );
    Mock::given(method("POST"))
        .and(path("/v2/vpcs"))
        .and(body_json(
            json!({"name": "env.prod-vpc", "region": "nyc1", "ip_range": "10.10.10.0/24"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(answer))
        .expect(1)
        .mount(&server)
        .await;
    let vpc = cloud(&server)
        .create_vpc(&VpcRequest {
            name: "env.prod-vpc".into(),
            region: "nyc1".into(),
            cidr: "10.10.10.0/24".parse().unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(vpc.id, "5a4981aa-9653-4bd1-bef5-d6bff52042e4");
    assert_eq!(vpc.name, "env.prod-vpc");
    assert_eq!(vpc.cidr, Some("10.10.10.0/24".parse().unwrap()));
    assert_conforms(&server).await;
}

const VPC: &str = "5a4981aa-9653-4bd1-bef5-d6bff52042e4";

#[tokio::test]
async fn delete_vpc_is_a_delete_of_its_id_and_a_gone_one_is_not_found() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/vpcs/{VPC}")))
        .respond_with(ResponseTemplate::new(204))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/vpcs/{VPC}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(spec.error("not_found")))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.delete_vpc(VPC).await.unwrap();
    let err = c.delete_vpc(VPC).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = c.delete_vpc("../account").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    server.verify().await;
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_vpc_with_members_is_a_conflict_with_digitaloceans_message() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/vpcs/{VPC}")))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "id": "conflict", "message": "Can not delete VPC with members",
            "request_id": "4d9d8375-3c56-4925-a3e7-eb137fed17e9"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let err = cloud(&server).delete_vpc(VPC).await.unwrap_err();
    assert_eq!(
        err,
        CloudError::Conflict {
            provider: ProviderKind::DigitalOcean,
            message: "Can not delete VPC with members".into(),
        }
    );
    server.verify().await;
    assert_conforms(&server).await;
}

/// The specification's 403 for a VPC with members or a default VPC: a conflict when the VPC says so, an
/// authorisation failure otherwise.
#[tokio::test]
async fn a_403_is_a_conflict_only_for_a_default_vpc_or_one_with_members() {
    let spec = Spec::load();
    let forbidden = || ResponseTemplate::new(403).set_body_json(spec.error("forbidden"));
    // The spec's VPC example is a region's default VPC.
    let default = spec.response("vpcs/vpcs_get.yml", "200", None);
    assert_eq!(default["vpc"]["default"], true);
    let mut plain = default.clone();
    plain["vpc"]["default"] = json!(false);
    let members = spec.response("vpcs/vpcs_list_members.yml", "200", None);
    let no_members = json!({"members": [], "links": {}, "meta": {"total": 0}});

    for (vpc, listed, conflict) in [
        (&default, &no_members, true),
        (&plain, &members, true),
        (&plain, &no_members, false),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path(format!("/v2/vpcs/{VPC}")))
            .respond_with(forbidden())
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/v2/vpcs/{VPC}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(vpc.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/v2/vpcs/{VPC}/members")))
            .respond_with(ResponseTemplate::new(200).set_body_json(listed.clone()))
            .mount(&server)
            .await;
        let err = cloud(&server).delete_vpc(VPC).await.unwrap_err();
        if conflict {
            assert!(
                matches!(&err, CloudError::Conflict { message, .. }
                    if message.starts_with("You do not have permission")),
                "{err:?}"
            );
        } else {
            assert!(matches!(err, CloudError::Auth { .. }), "{err:?}");
        }
        server.verify().await;
        assert_conforms(&server).await;
    }

    // When the VPC cannot be read either, the refusal stays what it was.
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(forbidden())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(forbidden())
        .mount(&server)
        .await;
    let err = cloud(&server).delete_vpc(VPC).await.unwrap_err();
    assert!(matches!(err, CloudError::Auth { .. }), "{err:?}");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn find_firewall_reads_address_rules_and_droplets() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/firewalls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "firewalls/firewalls_list.yml",
            "200",
            None,
        )))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let fw = c.find_firewall("firewall").await.unwrap().unwrap();
    assert_eq!(fw.id, "fb6045f1-cf1d-4ca3-bfac-18832663025b");
    // The port-80 rule admits a load balancer only, which has no neutral form.
    assert_eq!(
        fw.rules,
        vec![rule(Protocol::Tcp, Some((22, 22)), &["18.0.0.0/8"])]
    );
    assert_eq!(fw.machine_ids, vec!["8043964"]);
    assert_eq!(c.find_firewall("other").await.unwrap(), None);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn create_firewall_sends_inbound_rules_and_open_outbound_without_tags() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/firewalls"))
        .and(body_json(json!({
            "name": "firewall",
            "inbound_rules": [
                {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["18.0.0.0/8"]}},
                {"protocol": "tcp", "ports": "8000-9000", "sources": {"addresses": ["10.0.0.0/24", "203.0.113.4/32"]}},
                {"protocol": "udp", "ports": "0", "sources": {"addresses": ["10.0.0.0/24"]}},
                {"protocol": "icmp", "ports": "0", "sources": {"addresses": ["0.0.0.0/0"]}},
            ],
            "outbound_rules": [
                {"protocol": "tcp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0"]}},
                {"protocol": "udp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0"]}},
                {"protocol": "icmp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0"]}},
            ],
            "droplet_ids": [],
            "tags": [],
        })))
        .respond_with(
            ResponseTemplate::new(202).set_body_json(spec.response("firewalls/firewalls_create.yml", "202", None)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let rules = [
        rule(Protocol::Tcp, Some((22, 22)), &["18.0.0.0/8"]),
        rule(
            Protocol::Tcp,
            Some((8000, 9000)),
            &["10.0.0.0/24", "203.0.113.4/32"],
        ),
        rule(Protocol::Udp, None, &["10.0.0.0/24"]),
        rule(Protocol::Icmp, None, &["0.0.0.0/0"]),
    ];
    let fw = cloud(&server)
        .create_firewall("firewall", &rules, &marks("gb-lon", Role::Webserver, "fw-1"))
        .await
        .unwrap();
    assert_eq!(fw.id, FIREWALL);
    assert_eq!(fw.name, "firewall");
    assert_eq!(fw.machine_ids, vec!["8043964"]);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn replacing_rules_is_a_full_put_that_keeps_name_outbound_droplets_and_tags() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let current = spec.response("firewalls/firewalls_get.yml", "200", None);
    Mock::given(method("GET"))
        .and(path(format!("/v2/firewalls/{FIREWALL}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(current.clone()))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/v2/firewalls/{FIREWALL}")))
        .and(body_json(json!({
            "name": "firewall",
            "inbound_rules": [
                {"protocol": "tcp", "ports": "443", "sources": {"addresses": ["0.0.0.0/0"]}},
            ],
            "outbound_rules": current["firewall"]["outbound_rules"],
            "droplet_ids": [8043964],
            "tags": [],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "firewalls/firewalls_update.yml",
            "200",
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    cloud(&server)
        .replace_firewall_rules(FIREWALL, &[rule(Protocol::Tcp, Some((443, 443)), &["0.0.0.0/0"])])
        .await
        .unwrap();
    assert_conforms(&server).await;
}

#[tokio::test]
async fn attach_and_detach_only_change_what_needs_changing() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/firewalls/{FIREWALL}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "firewalls/firewalls_get.yml",
            "200",
            None,
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/firewalls/{FIREWALL}/droplets")))
        .and(body_json(json!({"droplet_ids": [123]})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/firewalls/{FIREWALL}/droplets")))
        .and(body_json(json!({"droplet_ids": [8043964]})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.attach_firewall(FIREWALL, "8043964").await.unwrap(); // already on it: nothing sent
    c.attach_firewall(FIREWALL, "123").await.unwrap();
    c.detach_firewall(FIREWALL, "123456").await.unwrap(); // not on it: nothing sent
    c.detach_firewall(FIREWALL, "8043964").await.unwrap();
    assert_conforms(&server).await;
}

#[tokio::test]
async fn detaching_from_a_gone_firewall_succeeds_but_attaching_does_not() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/firewalls/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(spec.error("not_found")))
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.detach_firewall("gone", "1").await.unwrap();
    assert!(c.attach_firewall("gone", "1").await.unwrap_err().is_not_found());
    assert_conforms(&server).await;
}
