//! Instances: Vultr's own example answers served by wiremock to the real adapter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::Ipv4Addr;

use chrono::{TimeZone, Utc};
use flotilla_cloud::{CloudError, Compute, MachineState, MarkFilter};
use flotilla_spec::Role;
use serde_json::{Value, json};
use support::{DEPLOYMENT, Spec, TOKEN, assert_conforms, cloud, error, machine_request, marks};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const INSTANCE: &str = "cb676a46-66fd-4dfb-b839-443f2e6c0b60";

#[tokio::test]
async fn create_sends_the_request_and_reads_an_instance_without_addresses_yet() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let request = machine_request("ws-gb-lon-1");
    Mock::given(method("POST"))
        .and(path("/v2/instances"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "region": "ewr",
            "plan": "vc2-1c-1gb",
            "os_id": 215,
            "label": "ws-gb-lon-1",
            "hostname": "ws-gb-lon-1",
            "tags": request.marks.to_tags(),
            "sshkey_id": ["3b8066a7-b438-455a-9688-44afc9a3597f"],
            // The spec's own example of base64 user data.
            "user_data": spec.request("/instances", "post")["user_data"],
            "firewall_group_id": "1b2c3d4e-0000-4000-8000-000000000001",
            "attach_vpc": ["cb676a46-66fd-4dfb-b839-443f2e6c0b60"],
        })))
        .respond_with(ResponseTemplate::new(202).set_body_json(spec.response("/instances", "post", "202")))
        .expect(1)
        .mount(&server)
        .await;

    let m = cloud(&server).create_machine(&request).await.unwrap();
    assert_eq!(m.id, "4f0f12e5-1f84-404f-aa84-85f431ea5ec2");
    assert_eq!(m.state, MachineState::Provisioning, "status pending");
    // main_ip "0.0.0.0" and internal_ip "": not assigned yet.
    assert_eq!((m.public_ipv4, m.private_ipv4), (None, None));
    assert_eq!(m.region, "ewr");
    assert_eq!(m.size, "vc2-1c-1gb");
    assert_eq!(m.tags, vec!["a tag", "another"]);
    assert_eq!(m.marks, None);
    assert_eq!(
        m.created_at,
        Some(Utc.with_ymd_and_hms(2021, 9, 14, 13, 22, 20).unwrap())
    );
    assert!(
        !format!("{m:?}").contains("v5{Fkvb"),
        "the default password is not kept"
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn get_reads_a_running_instance() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let mut answer = spec.response("/instances/{instance-id}", "get", "200");
    answer["instance"]["internal_ip"] = json!("10.99.0.3");
    Mock::given(method("GET"))
        .and(path(format!("/v2/instances/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let m = cloud(&server).get_machine(INSTANCE).await.unwrap();
    assert_eq!(m.state, MachineState::Running, "active + running");
    assert_eq!(m.public_ipv4, Some(Ipv4Addr::new(192, 0, 2, 123)));
    assert_eq!(m.private_ipv4, Some(Ipv4Addr::new(10, 99, 0, 3)));
    assert_eq!(m.name, "Example Instance");
    assert_eq!(m.size, "vc2-6c-16gb");
    assert_eq!(
        m.created_at,
        Some(Utc.with_ymd_and_hms(2020, 10, 10, 1, 56, 20).unwrap())
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn states_and_the_older_date_format() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let mut answer = spec.response("/instances/{instance-id}", "get", "200");
    answer["instance"]["power_status"] = json!("stopped");
    answer["instance"]["date_created"] = json!("2013-12-19 14:45:41");
    Mock::given(method("GET"))
        .and(path(format!("/v2/instances/{INSTANCE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let m = cloud(&server).get_machine(INSTANCE).await.unwrap();
    assert_eq!(m.state, MachineState::Stopped);
    assert_eq!(
        m.created_at,
        Some(Utc.with_ymd_and_hms(2013, 12, 19, 14, 45, 41).unwrap())
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_gone_instance_is_not_found_whether_vultr_says_404_or_invalid_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/instances/gone-404"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error(404, "instance not found")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/instances/gone-400"))
        .respond_with(ResponseTemplate::new(400).set_body_json(error(400, "invalid instance ID")))
        .mount(&server)
        .await;
    let c = cloud(&server);
    for id in ["gone-404", "gone-400"] {
        let err = c.get_machine(id).await.unwrap_err();
        assert!(err.is_not_found(), "{id}: {err:?}");
    }
    assert_conforms(&server).await;
}

/// The spec's list answer with two instances carrying our marks for two regions.
fn tagged_instances(spec: &Spec) -> Value {
    let mut page = spec.response("/instances", "get", "200");
    let mut second = page["instances"][0].clone();
    second["id"] = json!("second");
    second["tags"] = json!(marks("nl-ams", Role::Webserver, "b").to_tags());
    page["instances"][0]["tags"] = json!(marks("gb-lon", Role::Webserver, "a").to_tags());
    // Another deployment's instance in the same account: listed too (no server-side tag filter), never ours.
    let mut foreign = second.clone();
    foreign["id"] = json!("foreign");
    let mut other = marks("gb-lon", Role::Webserver, "c");
    other.deployment = "another-site".into();
    foreign["tags"] = json!(other.to_tags());
    page["instances"].as_array_mut().unwrap().push(second);
    page["instances"].as_array_mut().unwrap().push(foreign);
    page["meta"]["links"]["next"] = json!("");
    page
}

#[tokio::test]
async fn list_uses_no_deprecated_tag_parameter_and_filters_by_marks_here() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/instances"))
        .and(query_param_is_missing("tag"))
        .and(query_param("per_page", "500"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tagged_instances(&spec)))
        .expect(2)
        .mount(&server)
        .await;
    let c = cloud(&server);
    let all = c
        .list_machines(&MarkFilter::deployment(DEPLOYMENT))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let lon = c
        .list_machines(&MarkFilter::region(DEPLOYMENT, "gb-lon"))
        .await
        .unwrap();
    assert_eq!(lon.len(), 1);
    assert_eq!(lon[0].id, INSTANCE);
    assert_eq!(lon[0].marks, Some(marks("gb-lon", Role::Webserver, "a")));
    assert_eq!(lon[0].public_ipv4, Some(Ipv4Addr::new(192, 0, 2, 123)));
    assert_conforms(&server).await;
}

#[tokio::test]
async fn list_follows_cursors_across_three_pages() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let template = spec.response("/instances", "get", "200");
    let page = |id: &str, next: &str| {
        let mut instance = template["instances"][0].clone();
        instance["id"] = json!(id);
        instance["tags"] = json!(marks("gb-lon", Role::Webserver, id).to_tags());
        json!({"instances": [instance], "meta": {"total": 3, "links": {"next": next, "prev": ""}}})
    };
    Mock::given(method("GET"))
        .and(path("/v2/instances"))
        .and(query_param_is_missing("tag"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page("i-1", "bmV4dF9fMg==")))
        .expect(1)
        .mount(&server)
        .await;
    for (cursor, id, next) in [
        ("bmV4dF9fMg==", "i-2", "bmV4dF9fMw=="),
        ("bmV4dF9fMw==", "i-3", ""),
    ] {
        Mock::given(method("GET"))
            .and(path("/v2/instances"))
            .and(query_param_is_missing("tag"))
            .and(query_param("per_page", "500"))
            .and(query_param("cursor", cursor))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(id, next)))
            .expect(1)
            .mount(&server)
            .await;
    }
    let all = cloud(&server)
        .list_machines(&MarkFilter::deployment(DEPLOYMENT))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["i-1", "i-2", "i-3"]
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_repeating_cursor_is_an_error_not_a_loop() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/instances"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"instances": [], "meta": {"links": {"next": "same"}}})),
        )
        .mount(&server)
        .await;
    let err = cloud(&server)
        .list_machines(&MarkFilter::deployment(DEPLOYMENT))
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Protocol { .. }), "{err}");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn deleting_a_gone_instance_succeeds() {
    let server = MockServer::start().await;
    for (id, response) in [
        ("live", ResponseTemplate::new(204)),
        (
            "gone-404",
            ResponseTemplate::new(404).set_body_json(error(404, "instance not found")),
        ),
        (
            "gone-400",
            ResponseTemplate::new(400).set_body_json(error(400, "invalid instance ID")),
        ),
    ] {
        Mock::given(method("DELETE"))
            .and(path(format!("/v2/instances/{id}")))
            .respond_with(response)
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("DELETE"))
        .and(path("/v2/instances/locked"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(error(400, "Unable to destroy server: locked")),
        )
        .mount(&server)
        .await;
    let c = cloud(&server);
    for id in ["live", "gone-404", "gone-400"] {
        c.delete_machine(id).await.unwrap();
    }
    let err = c.delete_machine("locked").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err}");
    assert_conforms(&server).await;
}
