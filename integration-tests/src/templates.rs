//! Small, valid original-toolkit templates for tests, with any key overridden.

/// The keys of a minimal valid single-region Linode template, in order.
const BASE: &[(&str, &str)] = &[
    ("CLOUDHOST", "linode"),
    ("REGION", "gb-lon"),
    ("TOKEN", "test-token"),
    ("BUILD_IDENTIFIER", "t-gb-lon"),
    ("WEBSITE_URL", "www.codetesters.uk"),
    ("DNS_CHOICE", "cloudflare"),
    ("DNS_SECURITY_KEY", "acct:::tok"),
    ("NO_WEBSERVERS", "1"),
    ("MAX_WEBSERVERS", "4"),
    ("NO_REVERSE_PROXY", "1"),
    ("NO_AUTOSCALERS", "0"),
    ("VPC_IP_RANGE", "10.0.1.0/24"),
    ("DATABASE_INSTALLATION_TYPE", "MySQL"),
    ("BUILD_ARCHIVE_CHOICE", "hourly"),
    ("S3_ACCESS_KEY", "a"),
    ("S3_SECRET_KEY", "s"),
    ("S3_HOST_BASE", "nl-ams-1.linodeobjects.com"),
    ("WS_SERVER_TYPE", "g6-nanode-1"),
    ("DB_SERVER_TYPE", "g6-nanode-1"),
    ("RP_SERVER_TYPE", "g6-nanode-1"),
    ("AS_SERVER_TYPE", "g6-nanode-1"),
    ("AUTH_SERVER_TYPE", "g6-nanode-1"),
];

/// A single-region template: the base keys with `overrides` replacing (or, for keys not in the base,
/// adding) values; an override with an empty value removes the key.
pub fn template(overrides: &[(&str, &str)]) -> String {
    let mut lines: Vec<(String, String)> = BASE
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (key, value) in overrides {
        match lines.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = (*value).to_owned(),
            None => lines.push(((*key).to_owned(), (*value).to_owned())),
        }
    }
    lines
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("export {k}=\"{v}\"\n"))
        .collect()
}

/// [`template`] imported (panics with the diagnostics if it does not import).
pub fn import(overrides: &[(&str, &str)]) -> flotilla_spec::Import {
    flotilla_spec::import_templates(&[flotilla_spec::TemplateSource::new(
        "test.tmpl",
        template(overrides),
    )])
    .unwrap_or_else(|d| panic!("test template does not import:\n{d}"))
}

/// The seed document holding the original toolkit's three real templates printed inside markdown:
/// `shared/seeds/000_…` in the reference folder beside the repository.
pub fn seed_document() -> String {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = here
        .ancestors()
        .map(|a| a.join("shared/seeds/000_92ab6873bcd865bc.txt"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("the seed document ../shared/seeds/000_92ab6873bcd865bc.txt is not beside the repository")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// File names given to the seed's three templates, in seed order: the gb-lon Linode primary (with the
/// DBaaS), the nl-ams Linode secondary, the ch-gva-2 Exoscale secondary.
pub const SEED_NAMES: [&str; 3] = ["gb-lon.tmpl", "nl-ams.tmpl", "ch-gva-2.tmpl"];

/// The seed's three templates, byte for byte: each runs from the first `\####` header line after prose to
/// its `export CLOUDHOST=` line, inclusive.
pub fn seed_templates() -> [String; 3] {
    let seed = seed_document();
    let mut templates = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in seed.split_inclusive('\n') {
        if start.is_none() && line.starts_with("\\####") {
            start = Some(offset);
        }
        offset += line.len();
        if let Some(begin) = start
            && line.starts_with("export CLOUDHOST=")
        {
            templates.push(seed[begin..offset].to_owned());
            start = None;
        }
    }
    let templates: [String; 3] = templates
        .try_into()
        .unwrap_or_else(|t: Vec<String>| panic!("the seed holds {} templates, not three", t.len()));
    for (text, name) in templates.iter().zip(SEED_NAMES) {
        let region = name.trim_end_matches(".tmpl");
        assert!(
            text.contains(&format!("REGION=\"{region}\"")),
            "{name} is not the {region} template"
        );
    }
    templates
}

/// The seed deployment, imported (spec and secrets).
pub fn seed_import() -> flotilla_spec::Import {
    let sources: Vec<flotilla_spec::TemplateSource> = seed_templates()
        .iter()
        .zip(SEED_NAMES)
        .map(|(text, name)| flotilla_spec::TemplateSource::new(name, text.clone()))
        .collect();
    flotilla_spec::import_templates(&sources).unwrap_or_else(|d| panic!("the seed does not import:\n{d}"))
}

/// The seed deployment named `name`, its nl-ams Linode region replaced by one on Vultr (`ams`) and one on
/// DigitalOcean (`ams3`), each with the provider's own machine plans, VPC and object storage: the primary
/// and its DBaaS on Linode (gb-lon), secondaries on Exoscale, Vultr and DigitalOcean. Deployable as it is.
pub fn four_providers(name: &str) -> flotilla_spec::Deployment {
    let mut d = seed_import().deployment;
    d.name = name.into();
    let nl_ams = d.regions.remove(1);
    for (region, provider) in [
        ("ams", flotilla_spec::CloudProvider::Vultr),
        ("ams3", flotilla_spec::CloudProvider::DigitalOcean),
    ] {
        let mut r = nl_ams.clone();
        r.name = region.into();
        r.provider = provider;
        r.provider_region = region.into();
        r.build_identifier = format!("{name}-{region}");
        r.vpc.name = format!("adt-vpc-{region}");
        // The provider's own plan names and object storage in the same city.
        let (size, datastore, host_base) = match provider {
            flotilla_spec::CloudProvider::Vultr => (
                "vc2-1c-1gb",
                flotilla_spec::DatastoreProvider::Vultr,
                "ams1.vultrobjects.com",
            ),
            _ => (
                "s-1vcpu-1gb",
                flotilla_spec::DatastoreProvider::DigitalOcean,
                "ams3.digitaloceanspaces.com",
            ),
        };
        let m = &mut r.machines;
        for spec in [
            &mut m.autoscaler,
            &mut m.webserver,
            &mut m.database,
            &mut m.authenticator,
            &mut m.reverse_proxy,
        ] {
            spec.size = size.into();
        }
        r.datastores = vec![flotilla_spec::DatastoreEndpoint {
            provider: datastore,
            host_base: host_base.into(),
            location: host_base.split('.').next().unwrap_or(region).into(),
        }];
        d.regions.push(r);
    }
    for r in &mut d.regions {
        r.build_identifier = format!("{name}-{}", r.name);
    }
    d
}
