//! Droplets: DigitalOcean's own example answers served by wiremock to the real adapter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::Ipv4Addr;

use chrono::{TimeZone, Utc};
use flotilla_cloud::{Compute, MachineState, MarkFilter};
use flotilla_spec::Role;
use serde_json::{Value, json};
use support::{DEPLOYMENT, Spec, TOKEN, assert_conforms, cloud, machine_request, marks};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn create_sends_the_request_and_reads_a_droplet_without_addresses_yet() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let request = machine_request("example.com");
    Mock::given(method("POST"))
        .and(path("/v2/droplets"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "name": "example.com",
            "region": "nyc3",
            "size": "s-1vcpu-1gb",
            "image": "ubuntu-20-04-x64",
            "ssh_keys": [289794, "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"],
            "tags": request.marks.to_tags(),
            "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000",
            "user_data": "#cloud-config\nruncmd:\n  - touch /test.txt\n",
        })))
        .respond_with(ResponseTemplate::new(202).set_body_json(spec.response(
            "droplets/droplets_create.yml",
            "202",
            Some("Single Droplet Create Response"),
        )))
        .expect(1)
        .mount(&server)
        .await;

    let m = cloud(&server).create_machine(&request).await.unwrap();
    assert_eq!(m.id, "3164444");
    assert_eq!(m.name, "example.com");
    assert_eq!(m.region, "nyc3");
    assert_eq!(m.size, "s-1vcpu-1gb");
    assert_eq!(m.state, MachineState::Provisioning, "status new");
    // The spec's answer has `networks: {v4: [], v6: []}`: no addresses right after create.
    assert_eq!((m.public_ipv4, m.private_ipv4), (None, None));
    assert_eq!(m.tags, vec!["web", "env:prod"]);
    assert_eq!(m.marks, None, "the example's tags are not ours");
    assert_eq!(
        m.created_at,
        Some(Utc.with_ymd_and_hms(2020, 7, 21, 18, 37, 44).unwrap())
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn create_with_a_firewall_adds_the_new_droplet_to_it() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let mut request = machine_request("example.com");
    request.firewall_id = Some("bb4b2611-3d72-467b-8602-280330ecd65c".into());
    Mock::given(method("POST"))
        .and(path("/v2/droplets"))
        .respond_with(ResponseTemplate::new(202).set_body_json(spec.response(
            "droplets/droplets_create.yml",
            "202",
            Some("Single Droplet Create Response"),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/firewalls/bb4b2611-3d72-467b-8602-280330ecd65c"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "firewalls/firewalls_get.yml",
            "200",
            None,
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/v2/firewalls/bb4b2611-3d72-467b-8602-280330ecd65c/droplets",
        ))
        .and(body_json(json!({"droplet_ids": [3164444]})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    let m = cloud(&server).create_machine(&request).await.unwrap();
    assert_eq!(m.id, "3164444");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn get_reads_public_and_private_addresses() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/droplets/3164444"))
        .respond_with(ResponseTemplate::new(200).set_body_json(spec.response(
            "droplets/droplets_get.yml",
            "200",
            None,
        )))
        .mount(&server)
        .await;
    let m = cloud(&server).get_machine("3164444").await.unwrap();
    assert_eq!(m.state, MachineState::Running, "status active");
    assert_eq!(m.public_ipv4, Some(Ipv4Addr::new(192, 241, 165, 154)));
    assert_eq!(m.private_ipv4, Some(Ipv4Addr::new(10, 128, 192, 124)));
    assert_eq!(m.region, "nyc3");
    assert_conforms(&server).await;
}

#[tokio::test]
async fn get_of_a_gone_droplet_is_not_found() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/droplets/99"))
        .respond_with(ResponseTemplate::new(404).set_body_json(spec.error("not_found")))
        .mount(&server)
        .await;
    let err = cloud(&server).get_machine("99").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("could not be found"), "{err}");
    assert_conforms(&server).await;
}

/// The spec's "Droplets Filtered By Tag" answer, its two droplets carrying our marks for two regions.
fn tagged_droplets(spec: &Spec) -> Value {
    let mut page = spec.response(
        "droplets/droplets_list.yml",
        "200",
        Some("Droplets Filtered By Tag"),
    );
    page["droplets"][0]["tags"] = json!(marks("gb-lon", Role::Webserver, "a").to_tags());
    page["droplets"][1]["tags"] = json!(marks("nl-ams", Role::Webserver, "b").to_tags());
    page
}

#[tokio::test]
async fn list_filters_by_one_tag_server_side_and_the_whole_filter_client_side() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/droplets"))
        .and(query_param("tag_name", format!("fl-dep:{DEPLOYMENT}").as_str()))
        .and(query_param("per_page", "200"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tagged_droplets(&spec)))
        .expect(1)
        .mount(&server)
        .await;
    // A region's list asks for the region's tag (DigitalOcean filters on one): another deployment's
    // region of the same name comes back too and is narrowed out here.
    let mut same_region = spec.response(
        "droplets/droplets_list.yml",
        "200",
        Some("Droplets Filtered By Tag"),
    );
    same_region["droplets"][0]["tags"] = json!(marks("gb-lon", Role::Webserver, "a").to_tags());
    let mut theirs = marks("gb-lon", Role::Webserver, "z");
    theirs.deployment = "another-deployment".into();
    same_region["droplets"][1]["tags"] = json!(theirs.to_tags());
    Mock::given(method("GET"))
        .and(path("/v2/droplets"))
        .and(query_param("tag_name", "fl-reg:gb-lon"))
        .and(query_param("per_page", "200"))
        .respond_with(ResponseTemplate::new(200).set_body_json(same_region))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);

    let all = c
        .list_machines(&MarkFilter::deployment(DEPLOYMENT))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["3164444", "3164459"]
    );

    let lon = c
        .list_machines(&MarkFilter::region(DEPLOYMENT, "gb-lon"))
        .await
        .unwrap();
    assert_eq!(lon.len(), 1);
    let m = &lon[0];
    assert_eq!(m.id, "3164444");
    assert_eq!(m.state, MachineState::Running);
    assert_eq!(m.public_ipv4, Some(Ipv4Addr::new(192, 241, 165, 154)));
    assert_eq!(m.private_ipv4, Some(Ipv4Addr::new(10, 128, 192, 124)));
    assert_eq!(m.marks, Some(marks("gb-lon", Role::Webserver, "a")));
    assert_conforms(&server).await;
}

#[tokio::test]
async fn list_follows_links_pages_next_across_three_pages() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    let template = spec.response(
        "droplets/droplets_list.yml",
        "200",
        Some("Droplets Filtered By Tag"),
    );
    let tag = format!("fl-dep:{DEPLOYMENT}");
    let page = |id: u64, next: Option<u32>| {
        let mut droplet = template["droplets"][0].clone();
        droplet["id"] = json!(id);
        droplet["tags"] = json!(marks("gb-lon", Role::Webserver, &id.to_string()).to_tags());
        let pages = match next {
            // Absolute, pointing at the real API host: only its query is used.
            Some(n) => json!({
                "next": format!("https://api.digitalocean.com/v2/droplets?page={n}&per_page=200&tag_name={tag}"),
                "last": "https://api.digitalocean.com/v2/droplets?page=3&per_page=200",
            }),
            None => json!({"first": "https://api.digitalocean.com/v2/droplets?page=1&per_page=200"}),
        };
        json!({"droplets": [droplet], "links": {"pages": pages}, "meta": {"total": 3}})
    };
    Mock::given(method("GET"))
        .and(path("/v2/droplets"))
        .and(query_param_is_missing("page"))
        .and(query_param("tag_name", tag.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1, Some(2))))
        .expect(1)
        .mount(&server)
        .await;
    for (n, next) in [("2", Some(3)), ("3", None)] {
        Mock::given(method("GET"))
            .and(path("/v2/droplets"))
            .and(query_param("page", n))
            .and(query_param("tag_name", tag.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(n.parse().unwrap(), next)))
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
        ["1", "2", "3"]
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn a_next_link_to_the_same_page_is_an_error_not_a_loop() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/droplets"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "droplets": [],
            "links": {"pages": {"next": "https://api.digitalocean.com/v2/droplets?page=2"}},
        })))
        .mount(&server)
        .await;
    let err = cloud(&server)
        .list_machines(&MarkFilter::deployment(DEPLOYMENT))
        .await
        .unwrap_err();
    assert!(
        matches!(err, flotilla_cloud::CloudError::Protocol { .. }),
        "{err}"
    );
    assert_conforms(&server).await;
}

#[tokio::test]
async fn deleting_a_gone_droplet_succeeds() {
    let spec = Spec::load();
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/v2/droplets/3164444"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/droplets/99"))
        .respond_with(ResponseTemplate::new(404).set_body_json(spec.error("not_found")))
        .expect(1)
        .mount(&server)
        .await;
    let c = cloud(&server);
    c.delete_machine("3164444").await.unwrap();
    c.delete_machine("99").await.unwrap();
    let err = c.delete_machine("../account").await.unwrap_err();
    assert!(matches!(err, flotilla_cloud::CloudError::Invalid { .. }), "{err}");
    assert_conforms(&server).await;
}
