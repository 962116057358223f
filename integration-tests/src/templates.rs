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
