//! VPCs and firewall groups against Vultr's example answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flotilla_cloud::{CloudError, FirewallRule, Network, Protocol, ProviderKind, VpcRequest};
use flotilla_spec::Role;
use serde_json::json;
use support::{Spec, assert_conforms, cloud, error, marks};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const GROUP: &str = "cb676a46-66fd-4dfb-b839-443f2e6c0b60";
const INSTANCE: &str = "4f0f12e5-1f84-404f-aa84-85f431ea5ec2";

fn rule(protocol: Protocol, ports: Option<(u16, u16)>, sources: &[&str], note: &str) -> FirewallRule {
    FirewallRule {
        protocol,
        ports,
        sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
        description: note.into(),
    }
}

#[tokio::test]
async fn find_vpc_by_description_and_region() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/vpcs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response("/vpcs", "get", "200")))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let vpc = c
        .find_vpc("ewr", "Example VPC Description")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(vpc.id, GROUP);
    assert_eq!(vpc.name, "Example VPC Description");
    assert_eq!(vpc.cidr, Some("10.99.0.0/24".parse().unwrap()));
    assert_eq!(c.find_vpc("ams", "Example VPC Description").await.unwrap(), None);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn create_vpc_sends_subnet_and_mask() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/vpcs"))
        // Exactly the spec's request example.
        .and(body_json(spec.request("/vpcs", "post")))
        // The spec's example answer names the object `network`; the schema (and the API) `vpc`.
        .respond_with(ResponseTemplate::new(201).set_body_json(spec.response("/vpcs", "post", "201")))
        .expect(1)
        .mount(&server)
        .await;
    let vpc = cloud(&server)
        .create_vpc(&VpcRequest {
            name: "Example VPC".into(),
            region: "ewr".into(),
            cidr: "10.99.0.0/24".parse().unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(vpc.id, GROUP);
    assert_eq!(vpc.name, "Example VPC");
    assert_eq!(vpc.region, "ewr");
    assert_eq!(vpc.cidr, Some("10.99.0.0/24".parse().unwrap()));
    assert_conforms(&server).await;
}

async fn serve_group(server: &MockServer, spec: &Spec, instance_count: u64) {
    let mut groups = spec.response("/firewalls", "get", "200");
    groups["firewall_groups"][0]["instance_count"] = json!(instance_count);
    Mock::given(method("GET"))
        .and(path("/v2/firewalls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(groups))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/firewalls/{GROUP}/rules")))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "/firewalls/{firewall-group-id}/rules",
            "get",
            "200",
        )))
        .mount(server)
        .await;
}

#[tokio::test]
async fn find_firewall_reads_rules_and_skips_the_instance_scan_when_the_group_is_unused() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    serve_group(&server, &spec, 0).await;
    Mock::given(method("GET"))
        .and(path("/v2/instances"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let c = cloud(&server);
    let fw = c.find_firewall("Example Firewall Group").await.unwrap().unwrap();
    assert_eq!(fw.id, GROUP);
    assert_eq!(
        fw.rules,
        vec![rule(
            Protocol::Tcp,
            Some((80, 80)),
            &["192.0.2.0/24"],
            "Example Firewall Rule"
        )]
    );
    assert!(fw.machine_ids.is_empty());
    assert_eq!(c.find_firewall("other").await.unwrap(), None);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn find_firewall_lists_the_instances_in_the_group() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    serve_group(&server, &spec, 1).await;
    let mut instances = spec.response("/instances", "get", "200");
    let mut other = instances["instances"][0].clone();
    instances["instances"][0]["firewall_group_id"] = json!(GROUP);
    other["id"] = json!("not-in-group");
    instances["instances"].as_array_mut().unwrap().push(other);
    instances["meta"]["links"]["next"] = json!("");
    Mock::given(method("GET"))
        .and(path("/v2/instances"))
        .respond_with(ResponseTemplate::new(200).set_body_json(instances))
        .expect(1)
        .mount(&server)
        .await;
    let fw = cloud(&server)
        .find_firewall("Example Firewall Group")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fw.machine_ids, vec!["cb676a46-66fd-4dfb-b839-443f2e6c0b60"]);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn create_firewall_posts_the_group_then_one_rule_per_source() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/firewalls"))
        .and(body_json(spec.request("/firewalls", "post")))
        .respond_with(ResponseTemplate::new(201).set_body_json(spec.response("/firewalls", "post", "201")))
        .expect(1)
        .mount(&server)
        .await;
    // The first rule is exactly the spec's request example.
    Mock::given(method("POST"))
        .and(path(format!("/v2/firewalls/{GROUP}/rules")))
        .and(body_json(
            spec.request("/firewalls/{firewall-group-id}/rules", "post"),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(spec.response(
            "/firewalls/{firewall-group-id}/rules",
            "post",
            "201",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/firewalls/{GROUP}/rules")))
        .and(body_json(json!({
            "ip_type": "v4", "protocol": "tcp", "port": "80", "subnet": "198.51.100.0", "subnet_size": 24,
            "source": "", "notes": "Example Firewall Rule",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"firewall_rule": {
            "id": 2, "type": "v4", "ip_type": "v4", "action": "accept", "protocol": "tcp", "port": "80",
            "subnet": "198.51.100.0", "subnet_size": 24, "source": "", "notes": "Example Firewall Rule",
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let wanted = [rule(
        Protocol::Tcp,
        Some((80, 80)),
        &["192.0.2.0/24", "198.51.100.0/24"],
        "Example Firewall Rule",
    )];
    let fw = cloud(&server)
        .create_firewall(
            "Example Firewall Group",
            &wanted,
            &marks("gb-lon", Role::Webserver, "fw"),
        )
        .await
        .unwrap();
    assert_eq!(fw.id, GROUP);
    assert_eq!(fw.name, "Example Firewall Group");
    assert_eq!(fw.rules, wanted);
    assert_conforms(&server).await;
}

#[tokio::test]
async fn replace_deletes_unwanted_rules_keeps_the_right_ones_and_adds_the_missing() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let listed = spec.response("/firewalls/{firewall-group-id}/rules", "get", "200");
    let mut rules = listed["firewall_rules"].as_array().unwrap().clone();
    rules.push(
        json!({"id": 2, "ip_type": "v4", "action": "accept", "protocol": "tcp", "port": "22",
        "subnet": "0.0.0.0", "subnet_size": 0, "source": "", "notes": "old ssh"}),
    );
    rules.push(
        json!({"id": 3, "ip_type": "v4", "action": "accept", "protocol": "tcp", "port": "443",
        "subnet": "", "subnet_size": 0, "source": "cloudflare", "notes": ""}),
    );
    Mock::given(method("GET"))
        .and(path(format!("/v2/firewalls/{GROUP}/rules")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "firewall_rules": rules, "meta": {"total": 3, "links": {"next": "", "prev": ""}}
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/firewalls/{GROUP}/rules/1")))
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&server)
        .await;
    for id in [2, 3] {
        Mock::given(method("DELETE"))
            .and(path(format!("/v2/firewalls/{GROUP}/rules/{id}")))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(format!("/v2/firewalls/{GROUP}/rules")))
        .and(body_json(json!({
            "ip_type": "v4", "protocol": "tcp", "port": "8000:9000", "subnet": "10.0.0.0", "subnet_size": 8,
            "source": "", "notes": "app",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"firewall_rule": {
            "id": 4, "ip_type": "v4", "protocol": "tcp", "port": "8000:9000", "subnet": "10.0.0.0",
            "subnet_size": 8, "source": "", "notes": "app",
        }})))
        .expect(1)
        .mount(&server)
        .await;
    cloud(&server)
        .replace_firewall_rules(
            GROUP,
            &[
                rule(
                    Protocol::Tcp,
                    Some((80, 80)),
                    &["192.0.2.0/24"],
                    "Example Firewall Rule",
                ),
                rule(Protocol::Tcp, Some((8000, 9000)), &["10.0.0.0/8"], "app"),
            ],
        )
        .await
        .unwrap();
    assert_conforms(&server).await;
}

#[tokio::test]
async fn attach_sets_the_instance_group_and_detach_clears_only_this_group() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("/v2/instances/{INSTANCE}")))
        .and(body_json(json!({"firewall_group_id": GROUP})))
        .respond_with(ResponseTemplate::new(202).set_body_json(spec.response(
            "/instances/{instance-id}",
            "patch",
            "202",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let mut in_group = spec.response("/instances/{instance-id}", "get", "200");
    in_group["instance"]["firewall_group_id"] = json!(GROUP);
    Mock::given(method("GET"))
        .and(path(format!("/v2/instances/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(in_group))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/instances/elsewhere"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "/instances/{instance-id}",
            "get",
            "200",
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/instances/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error(404, "instance not found")))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/v2/instances/{INSTANCE}")))
        .and(body_json(json!({"firewall_group_id": ""})))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v2/instances/elsewhere"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.attach_firewall(GROUP, INSTANCE).await.unwrap();
    c.detach_firewall(GROUP, INSTANCE).await.unwrap();
    c.detach_firewall(GROUP, "elsewhere").await.unwrap(); // in no group: nothing sent
    c.detach_firewall(GROUP, "gone").await.unwrap();
    assert_conforms(&server).await;
}

const VPC: &str = "cb676a46-66fd-4dfb-b839-443f2e6c0b60";

#[tokio::test]
async fn delete_vpc_deletes_under_vpcs_and_maps_gone_and_in_use() {
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
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(error(400, "The VPC has instances attached; detach them first.")),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/vpcs/{VPC}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(error(404, "Not found.")))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/vpcs/{VPC}")))
        .respond_with(ResponseTemplate::new(400).set_body_json(error(400, "Invalid VPC ID.")))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.delete_vpc(VPC).await.unwrap();
    let err = c.delete_vpc(VPC).await.unwrap_err();
    assert_eq!(
        err,
        CloudError::Conflict {
            provider: ProviderKind::Vultr,
            message: "The VPC has instances attached; detach them first.".into(),
        }
    );
    let err = c.delete_vpc(VPC).await.unwrap_err();
    assert!(err.is_not_found(), "404: {err:?}");
    let err = c.delete_vpc(VPC).await.unwrap_err();
    assert!(err.is_not_found(), "Vultr's invalid-id answer: {err:?}");
    let err = c.delete_vpc("../account").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    // Nothing went to VPC 2.0's `/vpc2`.
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(paths, vec![format!("/v2/vpcs/{VPC}"); 4]);
    server.verify().await;
    assert_conforms(&server).await;
}
