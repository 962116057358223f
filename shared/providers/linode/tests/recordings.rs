//! Real recorded Linode traffic (the Linode Go SDK's cassettes) replayed through a wiremock server to the
//! adapter's own methods: every recorded answer of an endpoint the adapter uses must parse, and the values
//! read must be the recorded ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::{
    Interaction, all_cassettes, assert_fields_recorded, cloud, interaction, machine_request, marks,
    recorded_bodies, recorded_items,
};
use flotilla_cloud::{
    CloudError, Compute, DatabaseRequest, Dns, FirewallRule, MachineState, ManagedDatabases, MarkFilter,
    Network, NewDnsRecord, Protocol, VpcRequest, Zone,
};
use ipnet::Ipv4Net;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Which adapter operation reads a recorded answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    CreateInstance,
    ListInstances,
    GetInstance,
    GetInstanceIps,
    DeleteInstance,
    CreateVpc,
    ListVpcs,
    CreateFirewall,
    ListFirewalls,
    ReplaceRules,
    AttachDevice,
    ListDevices,
    DeleteDevice,
    CreateDatabase,
    ListDatabases,
    GetDatabase,
    UpdateDatabase,
    DeleteDatabase,
    ListDomains,
    CreateRecord,
    ListRecords,
    DeleteRecord,
}

fn classify(i: &Interaction) -> Option<Op> {
    let p = i.api_path();
    let parts: Vec<&str> = p.split('/').collect();
    let numeric = |s: &str| s.parse::<u64>().is_ok();
    Some(match (i.request.method.as_str(), parts.as_slice()) {
        ("POST", ["linode", "instances"]) => Op::CreateInstance,
        ("GET", ["linode", "instances"]) => Op::ListInstances,
        ("GET", ["linode", "instances", id]) if numeric(id) => Op::GetInstance,
        ("GET", ["linode", "instances", id, "ips"]) if numeric(id) => Op::GetInstanceIps,
        ("DELETE", ["linode", "instances", id]) if numeric(id) => Op::DeleteInstance,
        ("POST", ["vpcs"]) => Op::CreateVpc,
        ("GET", ["vpcs"]) => Op::ListVpcs,
        ("POST", ["networking", "firewalls"]) => Op::CreateFirewall,
        ("GET", ["networking", "firewalls"]) => Op::ListFirewalls,
        ("PUT", ["networking", "firewalls", _, "rules"]) => Op::ReplaceRules,
        ("POST", ["networking", "firewalls", _, "devices"]) => Op::AttachDevice,
        ("GET", ["networking", "firewalls", _, "devices"]) => Op::ListDevices,
        ("DELETE", ["networking", "firewalls", _, "devices", _]) => Op::DeleteDevice,
        ("POST", ["databases", "mysql", "instances"]) => Op::CreateDatabase,
        ("GET", ["databases", "mysql", "instances"]) => Op::ListDatabases,
        ("GET", ["databases", "mysql", "instances", id]) if numeric(id) => Op::GetDatabase,
        ("PUT", ["databases", "mysql", "instances", id]) if numeric(id) => Op::UpdateDatabase,
        ("DELETE", ["databases", "mysql", "instances", id]) if numeric(id) => Op::DeleteDatabase,
        ("GET", ["domains"]) => Op::ListDomains,
        ("POST", ["domains", _, "records"]) => Op::CreateRecord,
        ("GET", ["domains", _, "records"]) => Op::ListRecords,
        ("DELETE", ["domains", _, "records", _]) => Op::DeleteRecord,
        _ => return None,
    })
}

fn ok_json() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({}))
}

fn segment(i: &Interaction, n: usize) -> String {
    i.api_path().split('/').nth(n).unwrap().to_owned()
}

/// Replays one recorded answer to the operation that reads it; panics with the context when it fails.
async fn replay(server: &MockServer, name: &str, i: &Interaction, op: Op) {
    server.reset().await;
    i.mount(server).await;
    let c = cloud(server);
    let what = format!("{name}: {} {} ({op:?})", i.request.method, i.path());
    let recorded = || i.json();
    match op {
        Op::CreateInstance => {
            let m = c.create_machine(&machine_request()).await.expect(&what);
            assert_eq!(m.id, recorded()["id"].to_string(), "{what}");
            assert_eq!(m.state, MachineState::Provisioning, "{what}");
        }
        Op::ListInstances => {
            // The recorded instances carry none of our tags: the client-side filter drops them.
            let ms = c.list_machines(&MarkFilter::deployment("d")).await.expect(&what);
            assert!(ms.is_empty(), "{what}");
        }
        Op::GetInstance | Op::GetInstanceIps => {
            let id = segment(i, 2);
            // The other half of a get, minimal.
            if op == Op::GetInstance {
                Mock::given(method("GET"))
                    .and(path(format!("/v4beta/linode/instances/{id}/ips")))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ipv4": {}})))
                    .mount(server)
                    .await;
            } else {
                Mock::given(method("GET"))
                    .and(path(format!("/v4beta/linode/instances/{id}")))
                    .respond_with(ResponseTemplate::new(200).set_body_json(
                        json!({"id": id.parse::<u64>().unwrap(), "label": "x", "status": "running"}),
                    ))
                    .mount(server)
                    .await;
            }
            let m = c.get_machine(&id).await.expect(&what);
            assert_eq!(m.id, id, "{what}");
            if op == Op::GetInstanceIps {
                assert!(m.public_ipv4.is_some(), "{what}");
            }
        }
        Op::DeleteInstance => c.delete_machine(&segment(i, 2)).await.expect(&what),
        Op::CreateVpc => {
            let result = c
                .create_vpc(&VpcRequest {
                    name: "v".into(),
                    region: "au-mel".into(),
                    cidr: "192.168.0.0/25".parse().unwrap(),
                })
                .await;
            if i.response.code == 200 {
                let vpc = result.expect(&what);
                assert_eq!(vpc.id, recorded()["id"].to_string(), "{what}");
            } else {
                assert!(
                    matches!(result, Err(CloudError::Invalid { ref field, .. }) if field.as_deref() == Some("label")),
                    "{what}: {result:?}"
                );
            }
        }
        Op::ListVpcs => {
            let first = &recorded()["data"][0];
            let vpc = c
                .find_vpc(
                    first["region"].as_str().unwrap(),
                    first["label"].as_str().unwrap(),
                )
                .await
                .expect(&what)
                .expect(&what);
            assert_eq!(vpc.id, first["id"].to_string(), "{what}");
        }
        Op::CreateFirewall => {
            let fw = c.create_firewall("fw", &[], &marks("d")).await.expect(&what);
            assert_eq!(fw.id, recorded()["id"].to_string(), "{what}");
            assert_eq!(fw.name, recorded()["label"].as_str().unwrap(), "{what}");
        }
        Op::ListFirewalls => {
            let body = recorded();
            for f in body["data"].as_array().unwrap() {
                let fw = c
                    .find_firewall(f["label"].as_str().unwrap())
                    .await
                    .expect(&what)
                    .expect(&what);
                assert_eq!(fw.name, f["label"].as_str().unwrap(), "{what}");
            }
        }
        Op::ReplaceRules => c.replace_firewall_rules(&segment(i, 2), &[]).await.expect(&what),
        Op::AttachDevice => {
            let machine = recorded()["entity"]["id"].to_string();
            c.attach_firewall(&segment(i, 2), &machine).await.expect(&what);
        }
        Op::ListDevices => {
            let firewall = segment(i, 2);
            Mock::given(method("DELETE"))
                .respond_with(ok_json())
                .mount(server)
                .await;
            for d in recorded()["data"].as_array().unwrap() {
                c.detach_firewall(&firewall, &d["entity"]["id"].to_string())
                    .await
                    .expect(&what);
            }
        }
        Op::DeleteDevice => {
            // A detach: the device list, then this delete.
            let firewall = segment(i, 2);
            let device: u64 = segment(i, 4).parse().unwrap();
            Mock::given(method("GET"))
                .and(path(format!("/v4beta/networking/firewalls/{firewall}/devices")))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "data": [{"id": device, "entity": {"id": 5, "type": "linode"}}],
                    "page": 1, "pages": 1, "results": 1
                })))
                .mount(server)
                .await;
            c.detach_firewall(&firewall, "5").await.expect(&what);
        }
        Op::CreateDatabase => {
            let sent: serde_json::Value = serde_json::from_str(&i.request.body).expect(&what);
            let db = c.create_database(&database_request(&sent)).await.expect(&what);
            assert_eq!(db.id, recorded()["id"].to_string(), "{what}");
            assert_eq!(db.status, recorded()["status"], "{what}");
        }
        Op::DeleteDatabase => {
            // The engine of an id not seen before is found with a read first.
            Mock::given(method("GET"))
                .and(path(i.path()))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "id": segment(i, 3).parse::<u64>().unwrap(), "label": "x", "engine": "mysql",
                    "status": "active"
                })))
                .mount(server)
                .await;
            c.delete_database(&segment(i, 3)).await.expect(&what);
        }
        Op::ListDatabases => {
            let body = recorded();
            let first = &body["data"][0];
            let db = c
                .find_database(first["label"].as_str().unwrap())
                .await
                .expect(&what)
                .expect(&what);
            assert_eq!(db.id, first["id"].to_string(), "{what}");
        }
        Op::GetDatabase => {
            let body = recorded();
            Mock::given(method("PUT"))
                .respond_with(ok_json())
                .mount(server)
                .await;
            let result = c.replace_allow_list(&segment(i, 3), &[]).await;
            if body["status"] == "active" {
                result.expect(&what);
            } else {
                assert!(
                    matches!(result, Err(CloudError::Conflict { .. })),
                    "{what}: {result:?}"
                );
            }
        }
        Op::UpdateDatabase => {
            // The update follows a read of the database.
            let id = segment(i, 3);
            Mock::given(method("GET"))
                .and(path(i.path()))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "id": id.parse::<u64>().unwrap(), "label": "x", "engine": "mysql",
                    "status": "active", "allow_list": []
                })))
                .mount(server)
                .await;
            c.replace_allow_list(&id, &["203.0.113.1/32".parse().unwrap()])
                .await
                .expect(&what);
        }
        Op::ListDomains => {
            for d in recorded()["data"].as_array().unwrap() {
                let zone = c
                    .find_zone(d["domain"].as_str().unwrap())
                    .await
                    .expect(&what)
                    .expect(&what);
                assert_eq!(zone.id, d["id"].to_string(), "{what}");
            }
        }
        Op::CreateRecord | Op::ListRecords | Op::DeleteRecord => {
            let zone = Zone {
                id: segment(i, 1),
                name: "linodego-blue-test.com".into(),
            };
            match op {
                Op::CreateRecord => {
                    let r = c
                        .create_record(
                            &zone,
                            &NewDnsRecord {
                                kind: "A".into(),
                                name: "a.linodego-blue-test.com".into(),
                                content: "127.0.0.1".into(),
                                ttl: 60,
                                proxied: None,
                                comment: None,
                            },
                        )
                        .await
                        .expect(&what);
                    assert_eq!(r.id, recorded()["id"].to_string(), "{what}");
                }
                Op::ListRecords => {
                    let rs = c.list_records(&zone, None, None).await.expect(&what);
                    assert_eq!(rs.len(), recorded()["data"].as_array().unwrap().len(), "{what}");
                }
                _ => c.delete_record(&zone, &segment(i, 3)).await.expect(&what),
            }
        }
    }
}

#[tokio::test]
async fn every_recorded_answer_of_an_endpoint_we_use_parses() {
    let server = MockServer::start().await;
    let mut seen = BTreeSet::new();
    let mut replayed = 0;
    for (name, cassette) in all_cassettes() {
        for i in &cassette.interactions {
            if let Some(op) = classify(i) {
                replay(&server, &name, i, op).await;
                seen.insert(op);
                replayed += 1;
            }
        }
    }
    let all = [
        Op::CreateInstance,
        Op::ListInstances,
        Op::GetInstance,
        Op::GetInstanceIps,
        Op::DeleteInstance,
        Op::CreateVpc,
        Op::ListVpcs,
        Op::CreateFirewall,
        Op::ListFirewalls,
        Op::ReplaceRules,
        Op::AttachDevice,
        Op::ListDevices,
        Op::DeleteDevice,
        Op::CreateDatabase,
        Op::ListDatabases,
        Op::GetDatabase,
        Op::UpdateDatabase,
        Op::DeleteDatabase,
        Op::ListDomains,
        Op::CreateRecord,
        Op::ListRecords,
        Op::DeleteRecord,
    ];
    let missing: Vec<_> = all.iter().filter(|op| !seen.contains(op)).collect();
    assert!(missing.is_empty(), "no recording exercised {missing:?}");
    assert!(replayed > 100, "only {replayed} answers replayed");
}

#[tokio::test]
async fn a_machine_with_a_vpc_reads_its_vpc_address_from_the_ips_call() {
    let server = MockServer::start().await;
    let created = interaction("TestVPC_Subnet_WithInstance.yaml", "POST", "linode/instances");
    let ips = interaction(
        "TestVPC_Subnet_WithInstance.yaml",
        "GET",
        "linode/instances/82362784/ips",
    );
    Mock::given(method("GET"))
        .and(path("/v4beta/linode/instances/82362784"))
        .respond_with(ResponseTemplate::new(200).set_body_string(created.response.body.clone()))
        .mount(&server)
        .await;
    ips.mount(&server).await;
    let c = cloud(&server);
    let m = c.get_machine("82362784").await.unwrap();
    assert_eq!(m.id, "82362784");
    assert_eq!(m.name, "go-test-ins-wo-disk-1d009bbc19uy");
    assert_eq!(m.region, "us-iad");
    assert_eq!(m.size, "g6-nanode-1");
    assert_eq!(m.state, MachineState::Provisioning);
    assert_eq!(m.public_ipv4, Some(Ipv4Addr::new(192, 0, 2, 0)));
    assert_eq!(m.private_ipv4, Some(Ipv4Addr::new(192, 168, 0, 2)));
    assert_eq!(m.marks, None, "not ours: no tags");
    assert_eq!(
        m.created_at.map(|t| t.to_rfc3339()),
        Some("2018-01-02T03:04:05+00:00".into())
    );
    assert_eq!(c.calls(), 2);
}

#[tokio::test]
async fn a_recorded_instance_list_with_our_tags_is_read() {
    let server = MockServer::start().await;
    let list = interaction("TestInstances_List.yaml", "GET", "linode/instances");
    let mut body = list.json();
    let tags = marks("www-codetesters-uk").to_tags();
    body["data"][0]["tags"] = json!(tags);
    Mock::given(method("GET"))
        .and(path("/v4beta/linode/instances"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let ms = c
        .list_machines(&MarkFilter::region("www-codetesters-uk", "gb-lon"))
        .await
        .unwrap();
    assert_eq!(ms.len(), 1);
    let m = &ms[0];
    assert_eq!(m.id, "82372946");
    assert_eq!(m.name, "go-test-ins-wo-disk-jwn61up693k2");
    assert_eq!(m.region, "us-sea");
    assert_eq!(m.state, MachineState::Provisioning);
    assert_eq!(m.public_ipv4, Some(Ipv4Addr::new(192, 0, 2, 0)));
    assert_eq!(m.private_ipv4, None, "lists do not fetch VPC addresses");
    assert_eq!(m.marks, Some(marks("www-codetesters-uk")));
    assert_eq!(c.calls(), 1);
}

#[tokio::test]
async fn a_recorded_create_is_read() {
    let server = MockServer::start().await;
    interaction(
        "TestInstance_CreateWithLinodeInterfaces.yaml",
        "POST",
        "linode/instances",
    )
    .mount(&server)
    .await;
    let m = cloud(&server).create_machine(&machine_request()).await.unwrap();
    let sent: serde_json::Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    assert_fields_recorded(
        &sent,
        &recorded_bodies("POST", "linode/instances"),
        "POST linode/instances",
    );
    assert_eq!(m.id, "97189542");
    assert_eq!(m.name, "go-test-intf-2x63ssy273oo");
    assert_eq!(m.region, "au-mel");
    assert_eq!(m.state, MachineState::Provisioning);
    assert_eq!(m.public_ipv4, Some(Ipv4Addr::new(192, 0, 2, 0)));
}

#[tokio::test]
async fn recorded_vpcs_are_created_found_and_refused() {
    let server = MockServer::start().await;
    interaction("TestVPC_Subnet_Create.yaml", "POST", "vpcs")
        .mount(&server)
        .await;
    let c = cloud(&server);
    let vpc = c
        .create_vpc(&VpcRequest {
            name: "go-test-vpc-1785265120301731000".into(),
            region: "au-mel".into(),
            cidr: "192.168.0.0/25".parse().unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(vpc.id, "583412");
    assert_eq!(vpc.region, "au-mel");
    assert_eq!(vpc.subnet_id.as_deref(), Some("818612"));
    assert_eq!(vpc.cidr, Some("192.168.0.0/25".parse().unwrap()));
    let sent: serde_json::Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    assert_fields_recorded(&sent, &recorded_bodies("POST", "vpcs"), "POST vpcs");
    assert_eq!(sent["subnets"][0]["ipv4"], "192.168.0.0/25");

    server.reset().await;
    interaction("TestVPC_List.yaml", "GET", "vpcs")
        .mount(&server)
        .await;
    let found = c.find_vpc("us-ord", "cool-vpc-2").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.subnet_id), ("581720", None));
    assert_eq!(
        c.find_vpc("au-mel", "cool-vpc").await.unwrap(),
        None,
        "wrong region"
    );

    server.reset().await;
    interaction("TestVPC_Create_Invalid.yaml", "POST", "vpcs")
        .mount(&server)
        .await;
    let err = c
        .create_vpc(&VpcRequest {
            name: "bad!".into(),
            region: "au-mel".into(),
            cidr: "10.0.0.0/24".parse().unwrap(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CloudError::Invalid { field: Some(f), message, .. }
            if f == "label" && message.contains("ASCII letters")),
        "{err:?}"
    );
}

#[tokio::test]
async fn recorded_firewalls_are_read() {
    let server = MockServer::start().await;
    interaction("TestFirewalls_List.yaml", "GET", "networking/firewalls")
        .mount(&server)
        .await;
    let c = cloud(&server);
    let fw = c.find_firewall("akamai-non-prod-1").await.unwrap().unwrap();
    assert_eq!(fw.id, "1629606");
    // A linode_interface device counts as its instance.
    assert_eq!(fw.machine_ids, vec!["97114135".to_owned()]);
    let net = |s: &str| s.parse::<Ipv4Net>().unwrap();
    let proxies = vec![
        net("172.236.119.4/30"),
        net("172.234.160.4/30"),
        net("172.236.94.4/30"),
    ];
    assert_eq!(fw.rules.len(), 5, "{:?}", fw.rules);
    assert_eq!(
        fw.rules[0],
        FirewallRule {
            protocol: Protocol::Icmp,
            ports: None,
            sources: vec![net("0.0.0.0/0")],
            description: "Accept inbound ICMP".into(),
        }
    );
    assert_eq!(
        fw.rules[1],
        FirewallRule {
            protocol: Protocol::Tcp,
            ports: Some((22, 22)),
            sources: proxies.clone(),
            description: "Accept inbound TCP from SSH proxies".into(),
        }
    );
    assert_eq!(fw.rules[2].ports, Some((443, 443)));
    assert_eq!(fw.rules[2].sources, proxies);
    assert!(c.find_firewall("no-such-firewall").await.unwrap().is_none());

    server.reset().await;
    interaction("TestFirewallDevices_List.yaml", "POST", "networking/firewalls")
        .mount(&server)
        .await;
    let fw = c
        .create_firewall(
            "linodego-fw-test",
            &[FirewallRule {
                protocol: Protocol::Tcp,
                ports: Some((22, 22)),
                sources: vec![net("0.0.0.0/0")],
                description: "ssh".into(),
            }],
            &marks("d"),
        )
        .await
        .unwrap();
    assert_eq!(fw.id, "9618549");
    assert_eq!(fw.machine_ids, vec!["97185936".to_owned()]);
    assert_eq!(
        fw.rules,
        vec![FirewallRule {
            protocol: Protocol::Tcp,
            ports: Some((22, 22)),
            sources: vec![net("0.0.0.0/0")],
            description: "go-fwrule-test".into(),
        }]
    );
    let sent: serde_json::Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    // Rule fields are also evidenced by the firewalls Linode lists (their rules carry `description`).
    let mut evidence = recorded_bodies("POST", "networking/firewalls");
    evidence.extend(recorded_items("networking/firewalls"));
    assert_fields_recorded(&sent, &evidence, "POST networking/firewalls");
    assert_eq!(sent["label"], "linodego-fw-test");
    assert_eq!(sent["tags"], json!(marks("d").to_tags()));
    assert_eq!(sent["rules"]["inbound_policy"], "DROP");
    assert_eq!(sent["rules"]["outbound_policy"], "ACCEPT");
    assert_eq!(
        sent["rules"]["inbound"],
        json!([{"action": "ACCEPT", "protocol": "TCP", "ports": "22", "label": "accept-tcp-22",
                "description": "ssh", "addresses": {"ipv4": ["0.0.0.0/0"]}}])
    );
}

#[tokio::test]
async fn recorded_devices_are_attached_and_detached() {
    let server = MockServer::start().await;
    interaction(
        "TestFirewallDevice_Get.yaml",
        "POST",
        "networking/firewalls/9618589/devices",
    )
    .mount(&server)
    .await;
    let c = cloud(&server);
    c.attach_firewall("9618589", "97185937").await.unwrap();
    let sent: serde_json::Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    assert_fields_recorded(
        &sent,
        &recorded_bodies("POST", "networking/firewalls/1/devices"),
        "POST networking/firewalls/1/devices",
    );
    assert_eq!(sent, json!({"id": 97185937, "type": "linode"}));

    server.reset().await;
    interaction(
        "TestFirewallDevices_List.yaml",
        "GET",
        "networking/firewalls/9618549/devices",
    )
    .mount(&server)
    .await;
    Mock::given(method("DELETE"))
        .and(path("/v4beta/networking/firewalls/9618549/devices/11909957"))
        .respond_with(ok_json())
        .expect(1)
        .mount(&server)
        .await;
    c.detach_firewall("9618549", "97185936").await.unwrap();
    c.detach_firewall("9618549", "12345").await.unwrap();
    server.verify().await;
}

#[tokio::test]
async fn recorded_rule_replacement_is_accepted() {
    let server = MockServer::start().await;
    interaction(
        "TestFirewallRules_Update.yaml",
        "PUT",
        "networking/firewalls/9618482/rules",
    )
    .mount(&server)
    .await;
    let c = cloud(&server);
    let rules = [FirewallRule {
        protocol: Protocol::Tcp,
        ports: Some((8000, 9000)),
        sources: vec!["10.0.0.0/8".parse().unwrap()],
        description: "app".into(),
    }];
    c.replace_firewall_rules("9618482", &rules).await.unwrap();
    let sent: serde_json::Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    let mut evidence = recorded_bodies("PUT", "networking/firewalls/1/rules");
    evidence.extend(
        recorded_items("networking/firewalls")
            .into_iter()
            .map(|f| f["rules"].clone()),
    );
    assert_fields_recorded(&sent, &evidence, "PUT networking/firewalls/1/rules");
    assert_eq!(sent["inbound_policy"], "DROP");
    assert_eq!(sent["inbound"][0]["ports"], "8000-9000");
    assert_eq!(sent["inbound"][0]["addresses"]["ipv4"], json!(["10.0.0.0/8"]));
}

/// The request behind a recorded database create (`{label, region, type, engine, allow_list, cluster_size}`).
fn database_request(sent: &serde_json::Value) -> DatabaseRequest {
    DatabaseRequest {
        name: sent["label"].as_str().unwrap().into(),
        engine: sent["engine"].as_str().unwrap().into(),
        region: sent["region"].as_str().unwrap().into(),
        size: sent["type"].as_str().unwrap().into(),
        nodes: u32::try_from(sent["cluster_size"].as_u64().unwrap()).unwrap(),
        vpc_id: None,
        subnet_id: None,
        allow_list: sent["allow_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let a = a.as_str().unwrap();
                a.parse::<Ipv4Net>()
                    .unwrap_or_else(|_| a.parse::<Ipv4Addr>().unwrap().into())
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_database_create_sends_what_the_recorded_one_sent() {
    let server = MockServer::start().await;
    let created = interaction(
        "TestDatabase_MySQL_Suite.yaml",
        "POST",
        "databases/mysql/instances",
    );
    created.mount(&server).await;
    let recorded: serde_json::Value = serde_json::from_str(&created.request.body).unwrap();
    let c = cloud(&server);
    let db = c.create_database(&database_request(&recorded)).await.unwrap();
    assert_eq!(db.id, "227288");
    assert_eq!(db.name, "go-mysql-test-def7yr571p0nnx2");
    assert_eq!(db.status, "provisioning");
    assert!(!db.is_ready());

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let mut sent: serde_json::Value = requests[0].body_json().unwrap();
    assert_fields_recorded(
        &sent,
        &recorded_bodies("POST", "databases/mysql/instances"),
        "POST databases/mysql/instances",
    );
    // Addresses go as CIDRs (Linode answers every entry so); the rest is the recorded body.
    assert_eq!(sent["allow_list"], json!(["203.0.113.1/32", "192.0.1.0/24"]));
    sent["allow_list"] = recorded["allow_list"].clone();
    assert_eq!(sent, recorded);

    // The engine was learnt by the create: the delete needs no read first.
    server.reset().await;
    interaction(
        "TestDatabase_MySQL_Suite.yaml",
        "DELETE",
        "databases/mysql/instances/227288",
    )
    .mount(&server)
    .await;
    c.delete_database("227288").await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "no engine probing");
    assert_eq!(requests[0].method.as_str(), "DELETE");
}

#[tokio::test]
async fn recorded_databases_are_found_and_their_allow_list_replaced() {
    let server = MockServer::start().await;
    interaction(
        "TestDatabase_MySQL_Suite.yaml",
        "GET",
        "databases/mysql/instances",
    )
    .mount(&server)
    .await;
    let c = cloud(&server);
    let db = c
        .find_database("go-mysql-test-def7yr571p0nnx2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(db.id, "227288");
    assert_eq!(db.engine, "mysql");
    assert_eq!(db.region, "ap-west");
    assert_eq!(db.status, "active");
    assert!(db.is_ready());
    assert_eq!(
        db.host.as_deref(),
        Some("a227288-akamai-prod-5782758-default.g2a.akamaidb.net")
    );
    assert_eq!(db.port, Some(18319));
    assert_eq!(
        db.allow_list,
        vec![
            "192.0.1.0/24".parse::<Ipv4Net>().unwrap(),
            "203.0.113.1/32".parse().unwrap()
        ]
    );

    // The recorded read (active) and update; the engine was learnt by the find.
    server.reset().await;
    interaction(
        "TestDatabase_MySQL_Suite.yaml",
        "GET",
        "databases/mysql/instances/227288",
    )
    .mount(&server)
    .await;
    interaction(
        "TestDatabase_MySQL_Suite.yaml",
        "PUT",
        "databases/mysql/instances/227288",
    )
    .mount(&server)
    .await;
    let allow = ["10.0.1.0/24".parse().unwrap(), "203.0.113.1/32".parse().unwrap()];
    c.replace_allow_list("227288", &allow).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "read, then write; no engine probing");
    let sent: serde_json::Value = requests[1].body_json().unwrap();
    assert_fields_recorded(
        &sent,
        &recorded_bodies("PUT", "databases/mysql/instances/1"),
        "PUT databases/mysql/instances/1",
    );
    assert_eq!(sent, json!({"allow_list": ["10.0.1.0/24", "203.0.113.1/32"]}));
}

#[tokio::test]
async fn recorded_domains_and_records_are_read() {
    let server = MockServer::start().await;
    interaction("TestDomains_List.yaml", "GET", "domains")
        .mount(&server)
        .await;
    let c = cloud(&server);
    let zone = c.find_zone("linodego-blue-test.com.").await.unwrap().unwrap();
    assert_eq!(
        zone,
        Zone {
            id: "3041960".into(),
            name: "linodego-blue-test.com".into()
        }
    );
    assert!(c.find_zone("codetesters.uk").await.unwrap().is_none());

    server.reset().await;
    let list = interaction("TestDomainRecords_List.yaml", "GET", "domains/3153530/records");
    assert_eq!(list.x_filter().as_deref(), Some(r#"{"name":"a"}"#));
    list.mount(&server).await;
    let zone = Zone {
        id: "3153530".into(),
        name: "linodego-blue-test.com".into(),
    };
    let records = c
        .list_records(&zone, Some("a.linodego-blue-test.com"), Some("A"))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (
            r.id.as_str(),
            r.kind.as_str(),
            r.name.as_str(),
            r.content.as_str(),
            r.ttl
        ),
        ("36666866", "A", "a.linodego-blue-test.com", "127.0.0.1", 0)
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests[0].headers.get("x-filter").unwrap().to_str().unwrap(),
        list.x_filter().unwrap(),
        "the same filter the Go SDK sent"
    );
    assert!(
        c.list_records(&zone, Some("a.linodego-blue-test.com"), Some("AAAA"))
            .await
            .unwrap()
            .is_empty()
    );

    server.reset().await;
    interaction("TestDomainRecord_Create.yaml", "POST", "domains/3153528/records")
        .mount(&server)
        .await;
    let zone = Zone {
        id: "3153528".into(),
        name: "linodego-blue-test.com".into(),
    };
    let created = c
        .create_record(
            &zone,
            &NewDnsRecord {
                kind: "A".into(),
                name: "a.linodego-blue-test.com".into(),
                content: "127.0.0.1".into(),
                ttl: 60,
                proxied: None,
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(created.id, "36666864");
    assert_eq!(created.name, "a.linodego-blue-test.com");
    let sent: serde_json::Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    assert_fields_recorded(
        &sent,
        &recorded_bodies("POST", "domains/1/records"),
        "POST domains/1/records",
    );
    assert_eq!(
        sent,
        json!({"type": "A", "name": "a", "target": "127.0.0.1", "ttl_sec": 60})
    );
}

#[tokio::test]
async fn a_recorded_not_found_is_not_found() {
    let server = MockServer::start().await;
    let gone = interaction(
        "TestFirewallDevice_Delete.yaml",
        "GET",
        "networking/firewalls/9618630/devices/11909960",
    );
    assert_eq!(gone.response.code, 404);
    Mock::given(method("GET"))
        .and(path("/v4beta/linode/instances/1"))
        .respond_with(ResponseTemplate::new(404).set_body_string(gone.response.body.clone()))
        .mount(&server)
        .await;
    let err = cloud(&server).get_machine("1").await.unwrap_err();
    assert!(
        matches!(&err, CloudError::NotFound { what, .. } if what == "Not found"),
        "{err:?}"
    );
}

/// The field-by-field comparison refuses what no recording shows: an unknown field, or a known one with
/// another type.
#[test]
fn a_field_or_type_no_recording_shows_is_refused() {
    let evidence = recorded_bodies("POST", "vpcs");
    let unknown = std::panic::catch_unwind(|| {
        assert_fields_recorded(&json!({"label": "x", "invented": 1}), &evidence, "POST vpcs");
    });
    assert!(unknown.is_err());
    let retyped = std::panic::catch_unwind(|| {
        assert_fields_recorded(&json!({"label": 7}), &evidence, "POST vpcs");
    });
    assert!(retyped.is_err());
    assert_fields_recorded(&json!({"label": "x"}), &evidence, "POST vpcs");
}
