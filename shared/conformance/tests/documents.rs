//! The validator against the providers' real documents: requests as the adapters send them pass, and a
//! deliberately wrong one (a required field missing, a deprecated parameter, an unknown path) fails with
//! the operation, the field and the rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use flotilla_conformance::Spec;
use serde_json::json;

fn specs() -> PathBuf {
    flotilla_conformance::provider_specs(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("shared/provider-specs above the repository")
}

#[test]
fn digitalocean_firewall_rules_need_their_ports() {
    let spec = Spec::digitalocean(&specs()).unwrap();
    assert!(spec.len() > 100, "{spec:?}");
    let good = json!({
        "name": "fl-www-web",
        "inbound_rules": [{"protocol": "tcp", "ports": "443", "sources": {"addresses": ["0.0.0.0/0"]}}],
        "outbound_rules": [{"protocol": "icmp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0"]}}],
        "droplet_ids": [],
        "tags": []
    });
    spec.check("POST", "/v2/firewalls", &[], Some(&good)).unwrap();
    // The adapter's old body: an ICMP rule without ports.
    let mut bad = good.clone();
    bad["outbound_rules"][0].as_object_mut().unwrap().remove("ports");
    let violations = spec.check("POST", "/v2/firewalls", &[], Some(&bad)).unwrap_err();
    assert!(
        violations.iter().any(|v| v.operation.contains("firewalls_create")
            && v.field.starts_with("body/outbound_rules/0")
            && v.rule.contains("ports")),
        "{violations:#?}"
    );
    // Path parameters and literal segments.
    spec.check("GET", "/v2/droplets/3164444", &[], None).unwrap();
    let err = spec
        .check("GET", "/v2/droplets/not-a-number", &[], None)
        .unwrap_err();
    assert!(err.iter().any(|v| v.field == "path droplet_id"), "{err:#?}");
    let err = spec.check("GET", "/v2/no-such-thing", &[], None).unwrap_err();
    assert_eq!(err[0].field, "path", "{err:#?}");
}

#[test]
fn vultr_instances_are_not_listed_by_the_deprecated_tag() {
    let spec = Spec::vultr(&specs()).unwrap();
    let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    spec.check("GET", "/v2/instances", &q(&[("per_page", "500")]), None)
        .unwrap();
    let err = spec
        .check(
            "GET",
            "/v2/instances",
            &q(&[("tag", "fl-dep:x"), ("per_page", "500")]),
            None,
        )
        .unwrap_err();
    assert!(
        err.iter()
            .any(|v| v.field == "query tag" && v.rule == "deprecated"),
        "{err:#?}"
    );
    let err = spec
        .check("POST", "/v2/instances", &[], Some(&json!({"plan": "vc2-1c-1gb"})))
        .unwrap_err();
    assert!(
        err.iter().any(|v| v.rule.contains("region")),
        "a create without its required region: {err:#?}"
    );
}

#[test]
fn exoscale_operations_are_found_under_a_zone_prefix_and_checked() {
    let spec = Spec::exoscale(&specs()).unwrap();
    let good = json!({"name": "fl-www-web"});
    spec.check("POST", "/v2/security-group", &[], Some(&good))
        .unwrap();
    // A zone's endpoint segment before `/v2` is not part of the path.
    spec.check("POST", "/ch-gva-2/v2/security-group", &[], Some(&good))
        .unwrap();
    let err = spec
        .check(
            "POST",
            "/v2/security-group",
            &[],
            Some(&json!({"description": "x"})),
        )
        .unwrap_err();
    assert!(err.iter().any(|v| v.rule.contains("name")), "{err:#?}");
    spec.check(
        "PUT",
        "/v2/security-group/3f5e6b6a-1a2b-4c3d-8e9f-0a1b2c3d4e5f:attach",
        &[],
        Some(&json!({"instance": {"id": "3f5e6b6a-1a2b-4c3d-8e9f-0a1b2c3d4e5f"}})),
    )
    .unwrap();
}

#[test]
fn request_bodies_are_made_from_the_documents_own_schemas() {
    use flotilla_conformance::Fill;
    let spec = Spec::digitalocean(&specs()).unwrap();
    let operations = spec.operations();
    assert!(operations.contains(&("POST".to_owned(), "/v2/firewalls".to_owned())));
    assert_eq!(
        spec.template("PUT", "/v2/firewalls/bb4b2611-3d72-467b-8602-280330ecd65c")
            .as_deref(),
        Some("/v2/firewalls/{firewall_id}")
    );
    // Only the required fields: the document accepts it, and leaving one out is refused.
    let body = spec
        .request("POST", "/v2/vpcs", Fill::RequiredOnly)
        .unwrap()
        .expect("a JSON body");
    spec.check("POST", "/v2/vpcs", &[], Some(&body)).unwrap();
    let mut without = body.clone();
    without.as_object_mut().unwrap().remove("name");
    assert!(spec.check("POST", "/v2/vpcs", &[], Some(&without)).is_err());
    // An operation without a body has none.
    assert_eq!(spec.request("GET", "/v2/vpcs", Fill::RequiredOnly).unwrap(), None);
    let exoscale = Spec::exoscale(&specs()).unwrap();
    let body = exoscale
        .request("PUT", "/v2/security-group/abc:attach", Fill::RequiredOnly)
        .unwrap()
        .expect("a JSON body");
    assert!(body["instance"].is_object(), "{body}");
}

#[test]
fn vultr_managed_databases_are_judged_against_the_supplement() {
    let spec = Spec::vultr(&specs()).unwrap();
    let good = json!({
        "database_engine": "mysql",
        "database_engine_version": "8",
        "region": "ams",
        "plan": "vultr-dbaas-hobbyist-cc-1-25-1",
        "label": "test-cluster",
        "trusted_ips": ["10.0.1.0/24"]
    });
    spec.check("POST", "/v2/databases", &[], Some(&good)).unwrap();
    let mut without = good.clone();
    without.as_object_mut().unwrap().remove("plan");
    let violations = spec
        .check("POST", "/v2/databases", &[], Some(&without))
        .unwrap_err();
    assert!(
        violations.iter().any(|v| v.rule.contains("plan")),
        "{violations:#?}"
    );
    let update = json!({"trusted_ips": ["10.0.1.0/24", "203.0.113.4/32"]});
    spec.check("PUT", "/v2/databases/9b1a-db", &[], Some(&update))
        .unwrap();
    let wrong = json!({"trusted_ips": "10.0.1.0/24"});
    assert!(
        spec.check("PUT", "/v2/databases/9b1a-db", &[], Some(&wrong))
            .is_err()
    );
    spec.check(
        "GET",
        "/v2/databases",
        &[("label".into(), "test-cluster".into())],
        None,
    )
    .unwrap();
    spec.check("DELETE", "/v2/databases/9b1a-db", &[], None).unwrap();
}
