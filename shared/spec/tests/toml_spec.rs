//! The TOML spec: the same rules as for templates, reported by spec path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{seed_templates, sources};
use flotilla_spec::{Deployment, SpecError, import_templates};

fn seed_deployment() -> Deployment {
    import_templates(&sources(&seed_templates()))
        .expect("the seed imports")
        .deployment
}

#[test]
fn validate_reports_every_problem_by_spec_path() {
    let mut d = seed_deployment();
    d.regions[0].machines.reverse_proxy.count = 0;
    d.regions[1].vpc.cidr = "8.8.8.0/24".parse().unwrap();
    d.regions[2].scaling.min = 0;
    d.regions[2].name = "ch.gva.2".into();
    let rendered: Vec<String> = d.validate().iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "www-codetesters-uk.toml: regions[gb-lon].machines.reverse_proxy.count: multi-region deployments need at least one reverse proxy per region (found \"0\")",
            "www-codetesters-uk.toml: regions[nl-ams].vpc.cidr: must be a private range within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (found \"8.8.8.0/24\")",
            "www-codetesters-uk.toml: regions[ch.gva.2].name: the region name must be a subject token of a-z, 0-9, '-' and '_' (found \"ch.gva.2\")",
            "www-codetesters-uk.toml: regions[ch.gva.2].scaling.min: the minimum number of webservers must be at least 1 (found \"0\")",
        ]
    );
    let err = d.check().unwrap_err();
    assert_eq!(err.errors().count(), 4);
}

#[test]
fn from_toml_rejects_invalid_specs_with_all_diagnostics() {
    let text = seed_deployment()
        .to_toml()
        .unwrap()
        .replacen(
            "[regions.machines.reverse_proxy]\ncount = 1",
            "[regions.machines.reverse_proxy]\ncount = 0",
            1,
        )
        .replacen("max = 10", "max = 0", 1);
    match Deployment::from_toml(&text) {
        Err(SpecError::Invalid(diagnostics)) => {
            let keys: Vec<&str> = diagnostics.errors().filter_map(|d| d.key.as_deref()).collect();
            assert_eq!(
                keys,
                [
                    "regions[gb-lon].machines.reverse_proxy.count",
                    "regions[gb-lon].scaling.max"
                ]
            );
        }
        other => panic!("expected an invalid spec, got {other:?}"),
    }
}

#[test]
fn dns_zone_can_be_overridden_but_must_contain_the_site() {
    let mut d = seed_deployment();
    d.dns.zone = "www.codetesters.uk".into();
    assert!(Deployment::from_toml(&d.to_toml().unwrap()).is_ok());
    d.dns.zone = "example.com".into();
    let err = d.check().unwrap_err();
    assert_eq!(
        err.to_string(),
        "www-codetesters-uk.toml: dns.zone: the DNS zone \"example.com\" does not contain the site \"www.codetesters.uk\""
    );
}

#[test]
fn malformed_toml_is_a_parse_error() {
    let text =
        seed_deployment()
            .to_toml()
            .unwrap()
            .replacen("provider = \"exoscale\"", "provider = \"aws\"", 1);
    assert!(matches!(
        Deployment::from_toml(&text),
        Err(SpecError::TomlParse(_))
    ));
    assert!(matches!(
        Deployment::from_toml("name = 1"),
        Err(SpecError::TomlParse(_))
    ));
}

#[test]
fn single_region_spec_needs_no_multi_region_rules() {
    let mut d = seed_deployment();
    d.regions.truncate(1);
    d.multi_region = false;
    d.regions[0].machines.reverse_proxy.count = 0;
    d.application.archive = flotilla_spec::ArchiveChoice::Virgin;
    assert_eq!(d.check().unwrap(), []);
}

#[test]
fn extra_ports_round_trip_and_are_checked() {
    let mut d = seed_deployment();
    d.regions[0].extra_ports.push(flotilla_spec::ExtraPort {
        role: flotilla_spec::Role::Webserver,
        protocol: "udp".into(),
        port: 9000,
        to_port: Some(9010),
        sources: vec!["203.0.113.0/24".parse().unwrap()],
    });
    let text = d.to_toml().unwrap();
    assert_eq!(Deployment::from_toml(&text).unwrap(), d);
    // Written by hand: the protocol defaults to TCP, the sources to anywhere.
    let text = text.replacen(
        "[[regions.extra_ports]]",
        "[[regions.extra_ports]]\nrole = \"reverse-proxy\"\nport = 8443\n\n[[regions.extra_ports]]",
        1,
    );
    let back = Deployment::from_toml(&text).unwrap();
    let added = &back.regions[0].extra_ports[0];
    assert_eq!(
        (added.protocol.as_str(), added.port, added.sources.len()),
        ("tcp", 8443, 0)
    );
    d.regions[0].extra_ports[0].protocol = "sctp".into();
    d.regions[0].extra_ports[0].to_port = Some(8000);
    let rendered: Vec<String> = d.validate().iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "www-codetesters-uk.toml: regions[gb-lon].extra_ports: extra port 0: the protocol must be tcp or udp (found \"sctp\")",
            "www-codetesters-uk.toml: regions[gb-lon].extra_ports: extra port 0: ports must be 1-65535 with to_port not below port (found 9000..Some(8000))",
        ]
    );
}
