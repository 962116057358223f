//! The adapter against a wiremock Linode: error mapping, pagination, filters, idempotent deletes and
//! attaches, what a create sends, and how many calls a list costs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TOKEN, cloud, cloud_with_attempts, machine_request, marks};
use flotilla_cloud::{
    CloudError, Compute, DatabaseRequest, Dns, ManagedDatabases, MarkFilter, Network, ProviderKind, Zone,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const INSTANCES: &str = "/v4beta/linode/instances";

fn errors(reason: &str, field: Option<&str>) -> Value {
    match field {
        Some(f) => json!({"errors": [{"reason": reason, "field": f}]}),
        None => json!({"errors": [{"reason": reason}]}),
    }
}

fn instance(id: u64, tags: &[String]) -> Value {
    json!({
        "id": id, "label": format!("ws-{id}"), "status": "running", "region": "gb-lon",
        "type": "g6-nanode-1", "ipv4": ["203.0.113.10", "192.168.130.7"], "tags": tags,
        "created": "2024-05-06T07:08:09"
    })
}

fn page(data: Vec<Value>, page: u64, pages: u64) -> Value {
    json!({"data": data, "page": page, "pages": pages, "results": data.len()})
}

async fn get_error(status: u16, template: ResponseTemplate) -> CloudError {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(template)
        .mount(&server)
        .await;
    let c = cloud_with_attempts(&server, 1);
    let err = c.get_machine("7").await.unwrap_err();
    assert_eq!(c.calls(), 1, "status {status}");
    err
}

#[tokio::test]
async fn errors_map_to_cloud_errors() {
    let err = get_error(
        404,
        ResponseTemplate::new(404).set_body_json(errors("Not found", None)),
    )
    .await;
    assert_eq!(
        err,
        CloudError::NotFound {
            provider: ProviderKind::Linode,
            what: "Not found".into()
        }
    );

    let err = get_error(
        401,
        ResponseTemplate::new(401).set_body_json(errors("Invalid Token", None)),
    )
    .await;
    assert!(
        matches!(&err, CloudError::Auth { message, .. } if message == "Invalid Token"),
        "{err:?}"
    );

    let err = get_error(
        403,
        ResponseTemplate::new(403).set_body_json(errors("Unauthorized", None)),
    )
    .await;
    assert!(matches!(err, CloudError::Auth { .. }), "{err:?}");

    let err = get_error(
        400,
        ResponseTemplate::new(400).set_body_json(errors("Label must be unique", Some("label"))),
    )
    .await;
    assert_eq!(
        err,
        CloudError::Invalid {
            provider: ProviderKind::Linode,
            field: Some("label".into()),
            message: "label: Label must be unique".into(),
        }
    );

    let err = get_error(
        400,
        ResponseTemplate::new(400).set_body_json(errors("Linode busy.", None)),
    )
    .await;
    assert!(matches!(err, CloudError::Retryable { .. }), "{err:?}");

    let err = get_error(
        503,
        ResponseTemplate::new(503)
            .insert_header("X-Maintenance-Mode", "1")
            .set_body_json(errors("Currently in maintenance mode.", None)),
    )
    .await;
    assert!(
        matches!(&err, CloudError::Retryable { message, .. } if message.contains("maintenance")),
        "{err:?}"
    );

    let err = get_error(
        429,
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "7")
            .set_body_json(errors("Too Many Requests", None)),
    )
    .await;
    assert_eq!(
        err,
        CloudError::RateLimited {
            provider: ProviderKind::Linode,
            retry_after: Some(Duration::from_secs(7))
        }
    );

    let err = get_error(200, ResponseTemplate::new(200).set_body_string("{\"id\": \"x\"}")).await;
    assert!(matches!(err, CloudError::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn a_busy_linode_is_retried_until_it_answers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{INSTANCES}/7")))
        .respond_with(ResponseTemplate::new(400).set_body_json(errors("Linode busy.", None)))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{INSTANCES}/7")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7, "status": "deleting"})))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let m = c.get_machine("7").await.unwrap();
    assert_eq!(m.id, "7");
    assert_eq!(
        c.calls(),
        3,
        "two busy answers, then the machine (deleting: no ips call)"
    );
}

#[tokio::test]
async fn lists_follow_every_page_and_filter_by_tag_server_side() {
    let server = MockServer::start().await;
    let deployment = "www-codetesters-uk";
    let ours = marks(deployment).to_tags();
    let mut other_region = marks(deployment);
    other_region.region = "nl-ams".into();
    let theirs = other_region.to_tags();
    let deployment_filter = json!({"tags": "fl-dep:www-codetesters-uk"}).to_string();
    for (n, data) in [
        (1, vec![instance(1, &ours), instance(2, &ours)]),
        (2, vec![instance(3, &theirs)]),
        (3, vec![instance(4, &ours)]),
    ] {
        Mock::given(method("GET"))
            .and(path(INSTANCES))
            .and(query_param("page", n.to_string()))
            .and(query_param("page_size", "500"))
            .and(header("X-Filter", deployment_filter.as_str()))
            .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(data, n, 3)))
            .expect(1)
            .mount(&server)
            .await;
    }
    // A region's list asks for the deployment's and the region's tags together: one page here.
    let region_filter =
        json!({"+and": [{"tags": "fl-dep:www-codetesters-uk"}, {"tags": "fl-reg:gb-lon"}]}).to_string();
    Mock::given(method("GET"))
        .and(path(INSTANCES))
        .and(query_param("page", "1"))
        .and(query_param("page_size", "500"))
        // Compared whole: wiremock's `header` would split the value at its commas.
        .and(move |r: &wiremock::Request| {
            r.headers
                .get("X-Filter")
                .is_some_and(|v| v.as_bytes() == region_filter.as_bytes())
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![instance(1, &ours), instance(2, &ours), instance(4, &ours)],
            1,
            1,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    let all = c
        .list_machines(&MarkFilter::deployment(deployment))
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
    assert_eq!(c.calls(), 3, "one call per page, none per machine");

    let london = c
        .list_machines(&MarkFilter::region(deployment, "gb-lon"))
        .await
        .unwrap();
    let ids: Vec<&str> = london.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "4"]);
    assert_eq!(c.calls(), 4, "the region's own page only");
    let m = &london[0];
    assert_eq!(m.public_ipv4, Some("203.0.113.10".parse().unwrap()));
    assert_eq!(m.private_ipv4, Some("192.168.130.7".parse().unwrap()));
    assert_eq!(m.marks, Some(marks(deployment)));
    server.verify().await;
}

#[tokio::test]
async fn a_list_costs_the_same_whatever_the_fleet_size() {
    let server = MockServer::start().await;
    let tags = marks("d").to_tags();
    let many: Vec<Value> = (1..=40).map(|i| instance(i, &tags)).collect();
    Mock::given(method("GET"))
        .and(path(INSTANCES))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(many, 1, 1)))
        .mount(&server)
        .await;
    let c = cloud(&server);
    assert_eq!(
        c.list_machines(&MarkFilter::deployment("d")).await.unwrap().len(),
        40
    );
    assert_eq!(c.calls(), 1);
}

#[tokio::test]
async fn deleting_a_gone_machine_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("{INSTANCES}/9")))
        .respond_with(ResponseTemplate::new(404).set_body_json(errors("Not found", None)))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.delete_machine("9").await.unwrap();
    server.verify().await;
    let err = c.delete_machine("../account").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    assert_eq!(c.calls(), 1, "a malformed id is refused before any call");
}

#[tokio::test]
async fn a_create_sends_marks_keys_network_and_user_data_but_never_shows_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INSTANCES))
        .respond_with(|req: &Request| {
            let sent: Value = req.body_json().unwrap();
            let mut answer = instance(55, &[]);
            answer["tags"] = sent["tags"].clone();
            answer["status"] = json!("provisioning");
            ResponseTemplate::new(200).set_body_json(answer)
        })
        .mount(&server)
        .await;
    let c = cloud(&server);
    let mut request = machine_request();
    request.subnet_id = Some("818612".into());
    request.vpc_id = Some("583412".into());
    request.firewall_id = Some("9618630".into());
    request.ssh_keys = vec!["ssh-ed25519 AAAAC3Nza flotilla".into()];
    request.user_data = Some("#cloud-config\n".into());
    let machine = c.create_machine(&request).await.unwrap();
    assert_eq!(machine.id, "55");
    assert_eq!(machine.marks, Some(request.marks.clone()));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "the subnet was given: no VPC lookup");
    let sent: Value = requests[0].body_json().unwrap();
    assert_eq!(sent["label"], "ws-gb-lon-1");
    assert_eq!(sent["region"], "gb-lon");
    assert_eq!(sent["type"], "g6-nanode-1");
    assert_eq!(sent["image"], "linode/debian12");
    assert_eq!(sent["tags"], json!(request.marks.to_tags()));
    assert_eq!(sent["authorized_keys"], json!(["ssh-ed25519 AAAAC3Nza flotilla"]));
    assert_eq!(sent["firewall_id"], 9_618_630);
    assert_eq!(
        sent["interfaces"],
        json!([{"purpose": "public"}, {"purpose": "vpc", "subnet_id": 818_612, "ipv4": {"nat_1_1": "any"}}])
    );
    assert_eq!(sent["metadata"]["user_data"], "I2Nsb3VkLWNvbmZpZwo=");
    assert_eq!(
        requests[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("Bearer {TOKEN}")
    );

    let password = sent["root_pass"].as_str().unwrap().to_owned();
    assert!(password.len() >= 32, "a strong password");
    for shown in [format!("{machine:?}"), format!("{c:?}"), machine.tags.join(",")] {
        assert!(!shown.contains(&password), "password leaked: {shown}");
        assert!(!shown.contains(TOKEN), "token leaked: {shown}");
    }

    // Every create gets its own password.
    c.create_machine(&machine_request()).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let second: Value = requests[1].body_json().unwrap();
    assert_ne!(second["root_pass"].as_str().unwrap(), password);
    for absent in ["interfaces", "firewall_id", "metadata", "authorized_keys"] {
        assert!(
            second.get(absent).is_none(),
            "{absent} sent without being asked for"
        );
    }
}

#[tokio::test]
async fn a_vpc_without_a_subnet_id_uses_its_first_subnet() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v4beta/vpcs/583412"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 583412, "label": "v", "region": "gb-lon",
            "subnets": [{"id": 818612, "label": "flotilla", "ipv4": "10.0.0.0/24"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(INSTANCES))
        .respond_with(ResponseTemplate::new(200).set_body_json(instance(5, &[])))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let mut request = machine_request();
    request.vpc_id = Some("583412".into());
    c.create_machine(&request).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let sent: Value = requests[1].body_json().unwrap();
    assert_eq!(sent["interfaces"][1]["subnet_id"], 818_612);
}

#[tokio::test]
async fn a_failed_create_is_not_repeated_and_keeps_the_password_out_of_the_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INSTANCES))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let err = c.create_machine(&machine_request()).await.unwrap_err();
    assert!(matches!(err, CloudError::Retryable { .. }), "{err:?}");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests.len(),
        1,
        "a create that may have happened is not repeated"
    );
    let sent: Value = requests[0].body_json().unwrap();
    assert!(!format!("{err:?}").contains(sent["root_pass"].as_str().unwrap()));
}

#[tokio::test]
async fn attaching_twice_and_detaching_what_is_not_attached_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v4beta/networking/firewalls/10/devices"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(errors("Linode 5 is already assigned to this firewall.", None)),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4beta/networking/firewalls/10/devices"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![json!({"id": 77, "entity": {"id": 5, "type": "linode", "label": "ws"}})],
            1,
            1,
        )))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(0)
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.attach_firewall("10", "5").await.unwrap();
    // Another machine's refusal is still an error.
    let err = c.attach_firewall("10", "6").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    // Not attached: nothing to delete.
    c.detach_firewall("10", "6").await.unwrap();
    server.verify().await;

    // A firewall that is gone applies to nothing.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(errors("Not found", None)))
        .mount(&server)
        .await;
    c.detach_firewall("10", "5").await.unwrap();
}

#[tokio::test]
async fn an_allow_list_waits_for_an_active_database_and_is_not_rewritten_when_unchanged() {
    let server = MockServer::start().await;
    // Not a MySQL database: found under PostgreSQL.
    Mock::given(method("GET"))
        .and(path("/v4beta/databases/mysql/instances/42"))
        .respond_with(ResponseTemplate::new(404).set_body_json(errors("Not found", None)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4beta/databases/postgresql/instances/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 42, "label": "pg", "engine": "postgresql", "status": "active",
            "allow_list": ["203.0.113.1/32", "10.0.0.0/24"]
        })))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let same = [
        "10.0.0.0/24".parse().unwrap(),
        "203.0.113.1".parse::<std::net::Ipv4Addr>().unwrap().into(),
    ];
    c.replace_allow_list("42", &same).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.method.as_str() == "GET"),
        "unchanged: no write"
    );

    c.replace_allow_list("42", &["10.0.0.0/24".parse().unwrap()])
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let put = requests.last().unwrap();
    assert_eq!(put.url.path(), "/v4beta/databases/postgresql/instances/42");
    assert_eq!(
        put.body_json::<Value>().unwrap(),
        json!({"allow_list": ["10.0.0.0/24"]})
    );
    let probes = requests
        .iter()
        .filter(|r| r.url.path().contains("/mysql/"))
        .count();
    assert_eq!(probes, 1, "the engine is remembered after the first probe");

    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/v4beta/databases/mysql/instances/43"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 43, "label": "m", "engine": "mysql", "status": "provisioning", "allow_list": []
        })))
        .mount(&server)
        .await;
    let err = c
        .replace_allow_list("43", &["10.0.0.0/24".parse().unwrap()])
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Conflict { .. }), "{err:?}");

    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(errors("Not found", None)))
        .mount(&server)
        .await;
    let err = c.replace_allow_list("44", &[]).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

fn database_request() -> DatabaseRequest {
    DatabaseRequest {
        name: "www-db".into(),
        engine: "postgresql/16".into(),
        region: "gb-lon".into(),
        size: "g6-nanode-1".into(),
        nodes: 3,
        vpc_id: Some("583412".into()),
        subnet_id: None,
        allow_list: vec!["10.0.0.0/24".parse().unwrap()],
    }
}

#[tokio::test]
async fn a_database_create_joins_the_vpc_and_a_taken_label_is_a_conflict() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v4beta/vpcs/583412"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 583412, "label": "v", "region": "gb-lon",
            "subnets": [{"id": 818612, "label": "flotilla", "ipv4": "10.0.0.0/24"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v4beta/databases/postgresql/instances"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 42, "label": "www-db", "engine": "postgresql", "version": "16", "region": "gb-lon",
            "status": "provisioning", "allow_list": ["10.0.0.0/24"], "port": 5432
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    let db = c.create_database(&database_request()).await.unwrap();
    assert_eq!(db.id, "42");
    assert_eq!(db.engine, "postgresql");
    assert!(!db.is_ready());
    let requests = server.received_requests().await.unwrap();
    let sent: Value = requests.last().unwrap().body_json().unwrap();
    assert_eq!(
        sent,
        json!({
            "label": "www-db", "region": "gb-lon", "type": "g6-nanode-1", "engine": "postgresql/16",
            "cluster_size": 3, "allow_list": ["10.0.0.0/24"],
            "private_network": {"vpc_id": 583_412, "subnet_id": 818_612}
        })
    );

    // The same label again: Linode refuses it as invalid; a database has it, so it is a conflict.
    Mock::given(method("POST"))
        .and(path("/v4beta/databases/postgresql/instances"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(errors("Label must be unique among your databases", Some("label"))),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4beta/databases/mysql/instances"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], 1, 1)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4beta/databases/postgresql/instances"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![json!({"id": 42, "label": "www-db", "engine": "postgresql", "status": "provisioning"})],
            1,
            1,
        )))
        .mount(&server)
        .await;
    let err = c.create_database(&database_request()).await.unwrap_err();
    assert!(matches!(err, CloudError::Conflict { .. }), "{err:?}");

    // Any other refusal stays what it was.
    let mut other = database_request();
    other.name = "free-name".into();
    let err = c.create_database(&other).await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");

    // Linode needs a version; an engine it lacks is refused; neither is sent.
    let calls = c.calls();
    for engine in ["mysql", "mongodb/7"] {
        let mut bad = database_request();
        bad.engine = engine.into();
        let err = c.create_database(&bad).await.unwrap_err();
        assert!(
            matches!(&err, CloudError::Invalid { field: Some(f), .. } if f == "engine"),
            "{engine}: {err:?}"
        );
    }
    assert_eq!(c.calls(), calls);
}

#[tokio::test]
async fn deleting_a_gone_database_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v4beta/databases/mysql/instances/43"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 43, "label": "m", "engine": "mysql", "status": "active"
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v4beta/databases/mysql/instances/43"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(404).set_body_json(errors("Not found", None)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(errors("Not found", None)))
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.delete_database("43").await.unwrap();
    // Gone between the read and the delete: the delete's 404 is the answer.
    let err = c.delete_database("43").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    // Under no engine at all.
    let err = c.delete_database("44").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = c.delete_database("../account").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
}

#[tokio::test]
async fn deleting_a_vpc_maps_in_use_to_conflict_and_gone_to_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/v4beta/vpcs/583412"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v4beta/vpcs/583413"))
        .respond_with(ResponseTemplate::new(400).set_body_json(errors(
            "Cannot delete a VPC while Linodes are assigned to its subnets",
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v4beta/vpcs/583414"))
        .respond_with(ResponseTemplate::new(404).set_body_json(errors("Not found", None)))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.delete_vpc("583412").await.unwrap();
    let err = c.delete_vpc("583413").await.unwrap_err();
    assert_eq!(
        err,
        CloudError::Conflict {
            provider: ProviderKind::Linode,
            message: "Cannot delete a VPC while Linodes are assigned to its subnets".into(),
        }
    );
    // Unlike `delete_machine`, a VPC already gone is an error.
    let err = c.delete_vpc("583414").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = c.delete_vpc("../account").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    assert_eq!(c.calls(), 3, "a malformed id is refused before any call");
    server.verify().await;
}

#[tokio::test]
async fn a_busy_vpc_delete_is_retried_not_a_conflict() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/v4beta/vpcs/7"))
        .respond_with(ResponseTemplate::new(400).set_body_json(errors("VPC busy.", None)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v4beta/vpcs/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.delete_vpc("7").await.unwrap();
    assert_eq!(c.calls(), 2);
}

#[tokio::test]
async fn records_are_updated_and_deleted_by_id() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v4beta/domains/3/records/30"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 30, "type": "A", "name": "www", "target": "198.51.100.2", "ttl_sec": 120
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v4beta/domains/3/records/31"))
        .respond_with(ResponseTemplate::new(404).set_body_json(errors("Not found", None)))
        .mount(&server)
        .await;
    let c = cloud(&server);
    let zone = Zone {
        id: "3".into(),
        name: "codetesters.uk".into(),
    };
    let updated = c
        .update_record(
            &zone,
            &flotilla_cloud::DnsRecord {
                id: "30".into(),
                kind: "A".into(),
                name: "www.codetesters.uk".into(),
                content: "198.51.100.2".into(),
                ttl: 120,
                proxied: None,
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "www.codetesters.uk");
    assert_eq!(updated.ttl, 120);
    let sent: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    assert_eq!(
        sent,
        json!({"name": "www", "target": "198.51.100.2", "ttl_sec": 120})
    );
    c.delete_record(&zone, "31").await.unwrap();
}

#[tokio::test]
async fn the_base_url_is_configurable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/somewhere/else/v4/domains"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![json!({"id": 1, "domain": "codetesters.uk"})],
            1,
            1,
        )))
        .mount(&server)
        .await;
    let c = flotilla_linode::LinodeCloud::new(
        flotilla_linode::LinodeConfig::new("t").with_base_url(format!("{}/somewhere/else/v4", server.uri())),
    )
    .unwrap();
    let zone = c.find_zone("codetesters.uk").await.unwrap().unwrap();
    assert_eq!(zone.id, "1");
}
