//! Acceptance: the three real templates of the seed import as one three-region deployment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{NAMES, SEED_CREDENTIAL_NAMES, SEED_SECRETS, line_of, seed_templates, sources};
use flotilla_spec::{
    CloudProvider, DatabaseKind, DatastoreProvider, DbInstallMode, Dbaas, DbaasMode, Deployment, DnsProvider,
    FirewallMode, Import, Role, Secrets, SecretsFile, Severity, check_files, import_templates,
};

fn import_seed() -> Import {
    match import_templates(&sources(&seed_templates())) {
        Ok(import) => import,
        Err(diagnostics) => panic!("the seed must import:\n{diagnostics}"),
    }
}

#[test]
fn seed_imports_as_one_three_region_deployment() {
    let Import {
        deployment: d,
        secrets,
        warnings,
    } = import_seed();

    assert_eq!(d.name, "www-codetesters-uk");
    assert_eq!(d.website_url, "www.codetesters.uk");
    assert!(d.multi_region);
    assert_eq!(d.dns.provider, DnsProvider::Cloudflare);
    assert_eq!(d.dns.zone, "codetesters.uk");
    assert_eq!(d.application.database, DatabaseKind::Dbaas);
    assert_eq!(d.application.php_version.as_deref(), Some("8.4"));

    let names: Vec<&str> = d.regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["gb-lon", "nl-ams", "ch-gva-2"]);
    let providers: Vec<CloudProvider> = d.regions.iter().map(|r| r.provider).collect();
    assert_eq!(
        providers,
        [
            CloudProvider::Linode,
            CloudProvider::Linode,
            CloudProvider::Exoscale
        ]
    );
    let primaries: Vec<bool> = d.regions.iter().map(|r| r.primary).collect();
    assert_eq!(primaries, [true, false, false]);
    assert_eq!(d.primary_region().map(|r| r.name.as_str()), Some("gb-lon"));

    let [gb, nl, ch] = [&d.regions[0], &d.regions[1], &d.regions[2]];
    assert_eq!(
        gb.dbaas,
        Some(Dbaas::Primary {
            mode: DbaasMode::Create,
            engine: "MySQL".into(),
            version: "mysql/8".into(),
            provider_region: "gb-lon".into(),
            size: "g6-nanode-1".into(),
            nodes: 1,
            label: "test-cluster".into(),
            database: "testdb".into(),
            user: "testdbuser".into(),
            vpc_id: None,
            subnet_id: None,
        })
    );
    assert_eq!(
        nl.dbaas,
        Some(Dbaas::Secondary {
            public_endpoint: "a47568393-akamai-prod-6748387-default.g2a.akamaidb.net".into()
        })
    );
    assert_eq!(
        ch.dbaas,
        Some(Dbaas::Secondary {
            public_endpoint: "a327564-akamai-prod-370219-default.g2a.akamaidb.net".into()
        })
    );

    for (region, size) in [(gb, "g6-nanode-1"), (nl, "g6-nanode-1"), (ch, "tiny")] {
        for (role, spec) in region.machines.iter() {
            assert_eq!(spec.size, size, "{} {role}", region.name);
        }
        let counts: Vec<u32> = region.machines.iter().map(|(_, spec)| spec.count).collect();
        // autoscaler, webserver, database, authenticator, reverse proxy
        assert_eq!(counts, [1, 1, 1, 0, 1], "{}", region.name);
        assert_eq!(
            (region.scaling.initial, region.scaling.min, region.scaling.max),
            (1, 1, 10)
        );
        assert_eq!(region.firewall, FirewallMode::Both);
        assert_eq!((region.ssh_port, region.db_port), (1035, 2035));
        assert!(region.in_parallel);
        assert!(region.persist_assets);
        assert_eq!(region.directories_to_mount, ["images"]);
        assert_eq!(region.datastores.len(), 1);
        assert_eq!(region.datastores[0].provider, DatastoreProvider::Linode);
        assert_eq!(region.datastores[0].host_base, "nl-ams-1.linodeobjects.com");
        assert_eq!(region.datastores[0].location, "US");
    }
    assert_eq!(gb.machines.get(Role::ReverseProxy).count, 1);
    assert_eq!(gb.database_install, DbInstallMode::Install);
    assert_eq!(nl.database_install, DbInstallMode::Reuse);
    assert_eq!(ch.database_install, DbInstallMode::Reuse);
    assert_eq!(
        (gb.sync_webroots, nl.sync_webroots, ch.sync_webroots),
        (false, false, true)
    );

    let vpcs: Vec<(&str, String, bool)> = d
        .regions
        .iter()
        .map(|r| (r.vpc.name.as_str(), r.vpc.cidr.to_string(), r.build_machine_vpc))
        .collect();
    assert_eq!(
        vpcs,
        [
            ("adt-vpc-gb-lon", "10.0.1.0/24".to_owned(), true),
            ("adt-vpc-nl-ams", "10.0.1.0/24".to_owned(), false),
            ("adt-vpc", "10.0.0.0/24".to_owned(), false),
        ]
    );
    let build_ids: Vec<&str> = d.regions.iter().map(|r| r.build_identifier.as_str()).collect();
    assert_eq!(build_ids, ["test-gb-lon", "test-nl-ams", "test-ch-gva"]);
    assert_eq!(gb.account_id.as_deref(), Some("demoaccount"));

    // Secrets: per region, nothing lost.
    let gb_secrets = secrets.region("gb-lon").expect("gb-lon secrets");
    assert_eq!(
        gb_secrets.dbaas_password.as_ref().map(|s| s.expose()),
        Some("hfhuf83jfhfu73jd")
    );
    assert_eq!(
        gb_secrets.cloud.token.as_ref().map(|s| s.expose()),
        Some(SEED_SECRETS[0])
    );
    assert_eq!(
        gb_secrets.datastores[0].access_key.expose(),
        "JH56HJ78WE4T6U8OO90"
    );
    assert_eq!(
        gb_secrets.repositories.infrastructure_password, None,
        "\"none\" is no password"
    );
    let ch_secrets = secrets.region("ch-gva-2").expect("ch-gva-2 secrets");
    assert_eq!(
        ch_secrets.cloud.access_key.as_ref().map(|s| s.expose()),
        Some("EXO7hfgu476gfvfnsu4nfbgy223dhf")
    );
    assert_eq!(ch_secrets.cloud.token, None);
    assert_eq!(ch_secrets.dbaas_password, None);

    // Warnings: the duplicate SYSTEM_EMAIL_PROVIDER in every template, and nothing is an error.
    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
    let texts = seed_templates();
    for (name, text) in NAMES.iter().zip(&texts) {
        let first = line_of(text, "export SYSTEM_EMAIL_PROVIDER=\"\"");
        let second = line_of(text, "export SYSTEM_EMAIL_PROVIDER=\"2\"");
        let expected = format!(
            "{name}:{second}: warning: SYSTEM_EMAIL_PROVIDER: set more than once (lines {first} and {second}); the value from line {second} is used"
        );
        assert!(
            warnings.iter().any(|w| w.to_string() == expected),
            "missing {expected}\nin:\n{}",
            warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn seed_spec_round_trips_through_toml() {
    let d = import_seed().deployment;
    let text = d.to_toml().unwrap();
    let back = Deployment::from_toml(&text).unwrap();
    assert_eq!(back, d);
    assert!(text.contains("name = \"www-codetesters-uk\""), "{text}");
}

#[test]
fn seed_spec_holds_no_secret() {
    let import = import_seed();
    let spec = import.deployment.to_toml().unwrap();
    let secrets = import.secrets.to_toml().unwrap();
    let debug = format!("{:?}", import);
    let seed = common::seed_document();
    for secret in SEED_SECRETS {
        assert!(seed.contains(secret), "{secret} is not in the seed");
        assert!(!spec.contains(secret), "{secret} leaked into the spec:\n{spec}");
        assert!(secrets.contains(secret), "{secret} is missing from the secrets");
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
    for name in SEED_CREDENTIAL_NAMES {
        assert!(!spec.contains(name), "{name} leaked into the spec");
        assert!(secrets.contains(name), "{name} is missing from the secrets");
    }
    let warnings: String = import.warnings.iter().map(ToString::to_string).collect();
    assert!(SEED_SECRETS.iter().all(|s| !warnings.contains(s)));
}

#[test]
fn secrets_toml_round_trips() {
    let import = import_seed();
    let secrets = import.secrets.clone();
    assert_eq!(Secrets::from_toml(&secrets.to_toml().unwrap()).unwrap(), secrets);
    let file = import.secrets_file();
    assert_eq!(SecretsFile::from_toml(&file.to_toml().unwrap()).unwrap(), file);
    assert_eq!(file.deployment("www-codetesters-uk"), Some(&secrets));
}

#[test]
fn imported_secrets_debug_holds_no_value() {
    let import = import_seed();
    let debug = format!("{:?} {:#?}", import.secrets, import.secrets_file());
    for secret in SEED_SECRETS {
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
}

#[test]
fn check_files_and_write_to_dir() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = NAMES
        .iter()
        .zip(seed_templates())
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let import = check_files(&paths).unwrap();
    assert_eq!(import.deployment.regions.len(), 3);
    let first = &import.warnings[0];
    assert_eq!(
        first.file,
        paths[0].display().to_string(),
        "diagnostics name the path"
    );

    let out = dir.path().join("out");
    let (spec_path, secrets_path) = import.write_to_dir(&out).unwrap();
    assert_eq!(spec_path, out.join("www-codetesters-uk.toml"));
    assert_eq!(secrets_path, out.join("www-codetesters-uk.secrets.toml"));
    let spec = Deployment::from_toml(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    assert_eq!(spec, import.deployment);
    let file = SecretsFile::load(&secrets_path).unwrap();
    assert_eq!(file.deployments.len(), 1, "one deployment per imported file");
    assert_eq!(file.deployment("www-codetesters-uk"), Some(&import.secrets));
    assert_eq!(
        file.region("www-codetesters-uk", "gb-lon")
            .and_then(|r| r.cloud.token.as_ref())
            .map(|t| t.expose()),
        Some(SEED_SECRETS[0])
    );
    let text = std::fs::read_to_string(&secrets_path).unwrap();
    assert!(
        text.contains("[deployments.www-codetesters-uk.regions.gb-lon.cloud]"),
        "{text}"
    );
    for secret in SEED_SECRETS {
        assert!(text.contains(secret), "{secret} is missing from the secrets file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn check_files_reports_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.tmpl");
    let err = check_files(&[&missing]).unwrap_err();
    let rendered = err.to_string();
    assert!(
        rendered.starts_with(&format!("{}: cannot read the template", missing.display())),
        "{rendered}"
    );
}

#[test]
fn single_region_templates_are_primary() {
    for multi in ["0", "1"] {
        let mut gb = seed_templates()[0].clone();
        common::replace_once(
            &mut gb,
            "export MULTI_REGION=\"1\"",
            &format!("export MULTI_REGION=\"{multi}\""),
        );
        if multi == "0" {
            common::replace_once(
                &mut gb,
                "export PRIMARY_REGION=\"1\"",
                "export PRIMARY_REGION=\"0\"",
            );
        }
        let import =
            import_templates(&sources(&[gb])).unwrap_or_else(|e| panic!("MULTI_REGION={multi}:\n{e}"));
        let d = import.deployment;
        assert_eq!(d.multi_region, multi == "1");
        assert_eq!(d.regions.len(), 1);
        assert!(d.regions[0].primary);
        assert!(matches!(d.regions[0].dbaas, Some(Dbaas::Primary { .. })));
    }
}

#[test]
fn prose_inside_a_template_is_a_warning() {
    let mut texts = seed_templates();
    texts[1].insert_str(0, "Here is my template for the nl-ams region:\n\n");
    let import = import_templates(&sources(&texts)).unwrap();
    assert!(
        import
            .warnings
            .iter()
            .any(|w| w.to_string() == "nl-ams.tmpl:1: warning: not an `export KEY=\"value\"` line; ignored")
    );
}

#[test]
fn json_schema_is_available() {
    let schema = schemars::schema_for!(Deployment);
    let properties = schema
        .as_object()
        .and_then(|o| o.get("properties"))
        .and_then(|p| p.as_object())
        .unwrap();
    assert!(properties.contains_key("regions"));
}

#[test]
fn a_byte_order_mark_does_not_hide_the_first_key() {
    let mut texts = seed_templates();
    texts[0] = format!("\u{feff}export CLOUDHOST=\"linode\"\n{}", texts[0]);
    let import = flotilla_spec::import_templates(&sources(&texts)).unwrap();
    assert_eq!(import.deployment.regions.len(), 3);
}
