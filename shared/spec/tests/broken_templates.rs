//! Broken variants of the seed templates: each must fail with the right message, at the right file, key
//! and line. One table, one `check` helper.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{NAMES, SEED_SECRETS, line_of, remove_line, replace_once, seed_templates, sources};
use flotilla_spec::{Diagnostic, import_templates};

const GB: usize = 0;
const NL: usize = 1;
const CH: usize = 2;

/// One broken variant: what it is, how to break the seed, and the error expected.
struct Case {
    what: &'static str,
    edit: fn(&mut [String; 3]),
    /// Template (index into `NAMES`) the error is reported in.
    file: usize,
    key: &'static str,
    /// Text of the reported line (found in the edited template), or `None` for "no line".
    line: Option<&'static str>,
    message: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "a ':' in the DBaaS password",
        edit: |t| {
            replace_once(
                &mut t[GB],
                "testdbuser:hfhuf83jfhfu73jd\"",
                "testdbuser:hfhuf83:jfhfu73jd\"",
            )
        },
        file: GB,
        key: "DATABASE_DBaaS_INSTALLATION_TYPE",
        line: Some("export DATABASE_DBaaS_INSTALLATION_TYPE="),
        message: "the field after the DBaaS password is not a VPC id: a password may not contain ':' (layout on linode: engine:DBAAS:version:region:size:nodes:label:database:user:password[:vpc_id[:subnet_id]])",
    },
    Case {
        what: "secondary without DBaaS_PUBLIC_ENDPOINT",
        edit: |t| {
            replace_once(
                &mut t[NL],
                "DBaaS_PUBLIC_ENDPOINT=\"a47568393-akamai-prod-6748387-default.g2a.akamaidb.net\"",
                "DBaaS_PUBLIC_ENDPOINT=\"\"",
            )
        },
        file: NL,
        key: "DBaaS_PUBLIC_ENDPOINT",
        line: Some("export DBaaS_PUBLIC_ENDPOINT="),
        message: "a secondary region needs the public endpoint of the primary region's DBaaS",
    },
    Case {
        what: "secondary with the DBaaS_PUBLIC_ENDPOINT line removed",
        edit: |t| remove_line(&mut t[CH], "DBaaS_PUBLIC_ENDPOINT="),
        file: CH,
        key: "DBaaS_PUBLIC_ENDPOINT",
        line: None,
        message: "a secondary region needs the public endpoint of the primary region's DBaaS",
    },
    Case {
        what: "two primaries",
        edit: |t| replace_once(&mut t[NL], "PRIMARY_REGION=\"0\"", "PRIMARY_REGION=\"1\""),
        file: NL,
        key: "PRIMARY_REGION",
        line: Some("export PRIMARY_REGION="),
        message: "region \"nl-ams\" is primary, but so is \"gb-lon\"; exactly one region must be",
    },
    Case {
        what: "no primary",
        edit: |t| replace_once(&mut t[GB], "PRIMARY_REGION=\"1\"", "PRIMARY_REGION=\"0\""),
        file: GB,
        key: "PRIMARY_REGION",
        line: Some("export PRIMARY_REGION="),
        message: "no region is primary; exactly one region must be",
    },
    Case {
        what: "no reverse proxy in a multi-region deployment",
        edit: |t| replace_once(&mut t[GB], "NO_REVERSE_PROXY=\"1\"", "NO_REVERSE_PROXY=\"0\""),
        file: GB,
        key: "NO_REVERSE_PROXY",
        line: Some("export NO_REVERSE_PROXY="),
        message: "multi-region deployments need at least one reverse proxy per region (found \"0\")",
    },
    Case {
        what: "VPC range with a /33 prefix",
        edit: |t| {
            replace_once(
                &mut t[GB],
                "VPC_IP_RANGE=\"10.0.1.0/24\"",
                "VPC_IP_RANGE=\"10.0.1.0/33\"",
            )
        },
        file: GB,
        key: "VPC_IP_RANGE",
        line: Some("export VPC_IP_RANGE="),
        message: "must be an IPv4 network such as 10.0.1.0/24 (found \"10.0.1.0/33\")",
    },
    Case {
        what: "public VPC range",
        edit: |t| {
            replace_once(
                &mut t[CH],
                "VPC_IP_RANGE=\"10.0.0.0/24\"",
                "VPC_IP_RANGE=\"8.8.8.0/24\"",
            )
        },
        file: CH,
        key: "VPC_IP_RANGE",
        line: Some("export VPC_IP_RANGE="),
        message: "must be a private range within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (found \"8.8.8.0/24\")",
    },
    Case {
        what: "unknown CLOUDHOST",
        edit: |t| replace_once(&mut t[CH], "CLOUDHOST=\"exoscale\"", "CLOUDHOST=\"aws\""),
        file: CH,
        key: "CLOUDHOST",
        line: Some("export CLOUDHOST="),
        message: "unknown value \"aws\" (expected one of: linode, digitalocean, vultr, exoscale)",
    },
    Case {
        what: "Maria database in a multi-region deployment",
        edit: |t| {
            for text in t.iter_mut() {
                replace_once(
                    text,
                    "DATABASE_INSTALLATION_TYPE=\"DBaaS\"",
                    "DATABASE_INSTALLATION_TYPE=\"Maria\"",
                );
            }
        },
        file: GB,
        key: "DATABASE_INSTALLATION_TYPE",
        line: Some("export DATABASE_INSTALLATION_TYPE="),
        message: "multi-region deployments need a DBaaS database (found \"maria\")",
    },
    Case {
        what: "one secondary with a different database",
        edit: |t| {
            replace_once(
                &mut t[NL],
                "DATABASE_INSTALLATION_TYPE=\"DBaaS\"",
                "DATABASE_INSTALLATION_TYPE=\"Maria\"",
            )
        },
        file: NL,
        key: "DATABASE_INSTALLATION_TYPE",
        line: Some("export DATABASE_INSTALLATION_TYPE="),
        message: "must be the same in every template; gb-lon.tmpl has \"DBaaS\" (found \"Maria\")",
    },
    Case {
        what: "virgin archive in a multi-region deployment",
        edit: |t| {
            for text in t.iter_mut() {
                replace_once(
                    text,
                    "BUILD_ARCHIVE_CHOICE=\"hourly\"",
                    "BUILD_ARCHIVE_CHOICE=\"virgin\"",
                );
            }
        },
        file: GB,
        key: "BUILD_ARCHIVE_CHOICE",
        line: Some("export BUILD_ARCHIVE_CHOICE="),
        message: "multi-region deployments must build from a periodic backup, not a virgin or baseline install (found \"virgin\")",
    },
    Case {
        what: "mismatched WEBSITE_URL",
        edit: |t| {
            replace_once(
                &mut t[NL],
                "WEBSITE_URL=\"www.codetesters.uk\"",
                "WEBSITE_URL=\"www.example.com\"",
            )
        },
        file: NL,
        key: "WEBSITE_URL",
        line: Some("export WEBSITE_URL="),
        message: "must be the same in every template; gb-lon.tmpl has \"www.codetesters.uk\" (found \"www.example.com\")",
    },
    Case {
        what: "MAX_WEBSERVERS below NO_WEBSERVERS",
        edit: |t| {
            replace_once(&mut t[GB], "NO_WEBSERVERS=\"1\"", "NO_WEBSERVERS=\"3\"");
            replace_once(&mut t[GB], "MAX_WEBSERVERS=\"10\"", "MAX_WEBSERVERS=\"2\"");
        },
        file: GB,
        key: "MAX_WEBSERVERS",
        line: Some("export MAX_WEBSERVERS="),
        message: "the maximum number of webservers must be at least the initial number 3 (found \"2\")",
    },
    Case {
        what: "too many webservers",
        edit: |t| replace_once(&mut t[CH], "NO_WEBSERVERS=\"1\"", "NO_WEBSERVERS=\"9\""),
        file: CH,
        key: "NO_WEBSERVERS",
        line: Some("export NO_WEBSERVERS="),
        message: "the number of webserver machines must be 1 to 5 (found \"9\")",
    },
    Case {
        what: "non-numeric NO_WEBSERVERS",
        edit: |t| replace_once(&mut t[GB], "NO_WEBSERVERS=\"1\"", "NO_WEBSERVERS=\"two\""),
        file: GB,
        key: "NO_WEBSERVERS",
        line: Some("export NO_WEBSERVERS="),
        message: "must be a whole number (found \"two\")",
    },
    Case {
        what: "empty TOKEN for linode",
        edit: |t| replace_once(&mut t[GB], SEED_SECRETS[0], ""),
        file: GB,
        key: "TOKEN",
        line: Some("export TOKEN="),
        message: "required for linode but empty",
    },
    Case {
        what: "no TOKEN line for linode",
        edit: |t| remove_line(&mut t[NL], "export TOKEN="),
        file: NL,
        key: "TOKEN",
        line: None,
        message: "required for linode but missing",
    },
    Case {
        what: "no SECRET_KEY for exoscale",
        edit: |t| replace_once(&mut t[CH], "jcbh846tfg2vdugihdhevuft2ojknbub374fbjbsksbd", ""),
        file: CH,
        key: "SECRET_KEY",
        line: Some("export SECRET_KEY="),
        message: "required for exoscale but empty",
    },
    Case {
        what: "missing REGION",
        edit: |t| remove_line(&mut t[NL], "export REGION="),
        file: NL,
        key: "REGION",
        line: None,
        message: "required but missing",
    },
    Case {
        what: "two templates for one region",
        edit: |t| replace_once(&mut t[CH], "REGION=\"ch-gva-2\"", "REGION=\"nl-ams\""),
        file: CH,
        key: "REGION",
        line: Some("export REGION="),
        message: "region \"nl-ams\" is defined more than once",
    },
    Case {
        what: "upper-case region id",
        edit: |t| replace_once(&mut t[NL], "REGION=\"nl-ams\"", "REGION=\"NL-AMS\""),
        file: NL,
        key: "REGION",
        line: Some("export REGION="),
        message: "the region name must be a subject token of a-z, 0-9, '-' and '_' (found \"NL-AMS\")",
    },
    Case {
        what: "|-lists of unequal length",
        edit: |t| {
            replace_once(
                &mut t[GB],
                "S3_ACCESS_KEY=\"JH56HJ78WE4T6U8OO90\"",
                "S3_ACCESS_KEY=\"JH56HJ78WE4T6U8OO90|SECOND\"",
            )
        },
        file: GB,
        key: "S3_ACCESS_KEY",
        line: Some("export S3_ACCESS_KEY="),
        message: "has 2 `|`-separated entries but S3_HOST_BASE has 1; entry N of each list belongs to datastore endpoint N",
    },
    Case {
        what: "unterminated quote (on a secret)",
        edit: |t| replace_once(&mut t[GB], "jk67\" #MANDATORY", "jk67 #MANDATORY"),
        file: GB,
        key: "TOKEN",
        line: Some("export TOKEN="),
        message: "unterminated double quote in the value",
    },
    Case {
        what: "ACTIVE_FIREWALLS out of range",
        edit: |t| replace_once(&mut t[NL], "ACTIVE_FIREWALLS=\"3\"", "ACTIVE_FIREWALLS=\"5\""),
        file: NL,
        key: "ACTIVE_FIREWALLS",
        line: Some("export ACTIVE_FIREWALLS="),
        message: "must be a number from 0 to 3 (found \"5\")",
    },
    Case {
        what: "SSH_PORT out of range",
        edit: |t| replace_once(&mut t[CH], "SSH_PORT=\"1035\"", "SSH_PORT=\"70000\""),
        file: CH,
        key: "SSH_PORT",
        line: Some("export SSH_PORT="),
        message: "must be a port number from 1 to 65535 (found \"70000\")",
    },
    Case {
        what: "flag that is neither 0 nor 1",
        edit: |t| replace_once(&mut t[CH], "SYNC_WEBROOTS=\"1\"", "SYNC_WEBROOTS=\"yes\""),
        file: CH,
        key: "SYNC_WEBROOTS",
        line: Some("export SYNC_WEBROOTS="),
        message: "must be 0 or 1 (found \"yes\")",
    },
    Case {
        what: "unknown DNS_CHOICE",
        edit: |t| replace_once(&mut t[GB], "DNS_CHOICE=\"cloudflare\"", "DNS_CHOICE=\"route53\""),
        file: GB,
        key: "DNS_CHOICE",
        line: Some("export DNS_CHOICE="),
        message: "unknown value \"route53\" (expected one of: cloudflare, digitalocean, exoscale, linode, vultr)",
    },
    Case {
        what: "MULTI_REGION differs between templates",
        edit: |t| replace_once(&mut t[CH], "MULTI_REGION=\"1\"", "MULTI_REGION=\"0\""),
        file: CH,
        key: "MULTI_REGION",
        line: Some("export MULTI_REGION="),
        message: "must be the same in every template; gb-lon.tmpl has \"1\" (found \"0\")",
    },
    Case {
        what: "several templates without MULTI_REGION",
        edit: |t| {
            for text in t.iter_mut() {
                replace_once(text, "MULTI_REGION=\"1\"", "MULTI_REGION=\"0\"");
            }
        },
        file: GB,
        key: "MULTI_REGION",
        line: Some("export MULTI_REGION="),
        message: "a deployment of 3 regions must be multi-region",
    },
    Case {
        what: "short DBaaS tuple (the password must not be echoed)",
        edit: |t| {
            replace_once(
                &mut t[GB],
                "MySQL:DBAAS:mysql/8:gb-lon:g6-nanode-1:1:test-cluster:testdb:testdbuser:hfhuf83jfhfu73jd",
                "MySQL:DBAAS:mysql/8:gb-lon:hfhuf83jfhfu73jd",
            )
        },
        file: GB,
        key: "DATABASE_DBaaS_INSTALLATION_TYPE",
        line: Some("export DATABASE_DBaaS_INSTALLATION_TYPE="),
        message: "on linode the DBaaS is written engine:DBAAS:version:region:size:nodes:label:database:user:password[:vpc_id[:subnet_id]] (10 to 12 colon-separated fields; found 5; a password may not contain ':')",
    },
];

fn check(case: &Case) {
    let mut texts = seed_templates();
    (case.edit)(&mut texts);
    let diagnostics = match import_templates(&sources(&texts)) {
        Ok(_) => panic!("{}: imported without error", case.what),
        Err(diagnostics) => diagnostics,
    };
    let rendered = diagnostics.to_string();
    for secret in SEED_SECRETS {
        assert!(
            !rendered.contains(secret),
            "{}: a secret leaked into\n{rendered}",
            case.what
        );
    }
    let expected = Diagnostic::error(NAMES[case.file], case.message)
        .at_line(case.line.map(|needle| line_of(&texts[case.file], needle)))
        .with_key(case.key);
    assert!(
        diagnostics.errors().any(|d| *d == expected),
        "{}: expected\n  {expected}\namong\n{rendered}",
        case.what
    );
}

#[test]
fn broken_variants_are_reported_at_their_key_and_line() {
    assert!(CASES.len() >= 12);
    for case in CASES {
        check(case);
    }
}

#[test]
fn rendering_matches_the_documented_form() {
    let mut texts = seed_templates();
    replace_once(&mut texts[GB], "NO_REVERSE_PROXY=\"1\"", "NO_REVERSE_PROXY=\"0\"");
    let line = line_of(&texts[GB], "NO_REVERSE_PROXY");
    let err = import_templates(&sources(&texts)).unwrap_err();
    let duplicate = |file: usize| {
        let first = line_of(&texts[file], "export SYSTEM_EMAIL_PROVIDER=\"\"");
        let second = line_of(&texts[file], "export SYSTEM_EMAIL_PROVIDER=\"2\"");
        format!(
            "{}:{second}: warning: SYSTEM_EMAIL_PROVIDER: set more than once (lines {first} and {second}); the value from line {second} is used",
            NAMES[file]
        )
    };
    let expected = [
        duplicate(GB),
        format!(
            "gb-lon.tmpl:{line}: NO_REVERSE_PROXY: multi-region deployments need at least one reverse proxy per region (found \"0\")"
        ),
        duplicate(NL),
        duplicate(CH),
    ];
    assert_eq!(err.to_string(), expected.join("\n"));
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let mut texts = seed_templates();
    for case in CASES.iter().filter(|c| {
        [
            "unknown CLOUDHOST",
            "no reverse proxy in a multi-region deployment",
            "mismatched WEBSITE_URL",
            "non-numeric NO_WEBSERVERS",
        ]
        .contains(&c.what)
    }) {
        (case.edit)(&mut texts);
    }
    let err = import_templates(&sources(&texts)).unwrap_err();
    let keys: Vec<(&str, &str)> = err
        .errors()
        .map(|d| (d.file.as_str(), d.key.as_deref().unwrap_or("")))
        .collect();
    for expected in [
        ("gb-lon.tmpl", "NO_REVERSE_PROXY"),
        ("gb-lon.tmpl", "NO_WEBSERVERS"),
        ("nl-ams.tmpl", "WEBSITE_URL"),
        ("ch-gva-2.tmpl", "CLOUDHOST"),
    ] {
        assert!(keys.contains(&expected), "{expected:?} missing from\n{err}");
    }
    assert_eq!(err.errors().count(), 4, "one error per problem:\n{err}");
}

#[test]
fn unknown_keys_and_alias_conflicts_are_warnings() {
    let mut texts = seed_templates();
    texts[GB].push_str("export NO_WEBSEVERS=\"2\"\nexport IN_PARALLEL=\"0\"\n");
    let import = import_templates(&sources(&texts)).unwrap();
    let warnings: Vec<String> = import.warnings.iter().map(ToString::to_string).collect();
    let typo = line_of(&texts[GB], "NO_WEBSEVERS");
    let newer = line_of(&texts[GB], "export IN_PARALLEL=");
    let older = line_of(&texts[GB], "export INPARALLEL=");
    assert!(
        warnings.contains(&format!(
            "gb-lon.tmpl:{typo}: warning: NO_WEBSEVERS: unknown key; ignored"
        )),
        "{warnings:#?}"
    );
    assert!(
        warnings.contains(&format!(
            "gb-lon.tmpl:{older}: warning: INPARALLEL: superseded by IN_PARALLEL on line {newer}, whose value is used"
        )),
        "{warnings:#?}"
    );
    assert!(!import.deployment.regions[0].in_parallel);
}

#[test]
fn consequences_of_a_reported_error_are_not_reported_again() {
    // The DBaaS tuple's layout depends on CLOUDHOST; once CLOUDHOST is wrong, only that is reported.
    let mut texts = seed_templates();
    replace_once(&mut texts[GB], "CLOUDHOST=\"linode\"", "CLOUDHOST=\"aws\"");
    let err = import_templates(&sources(&texts)).unwrap_err();
    let errors: Vec<String> = err.errors().map(ToString::to_string).collect();
    let line = line_of(&texts[GB], "export CLOUDHOST=");
    assert_eq!(
        errors,
        [format!(
            "gb-lon.tmpl:{line}: CLOUDHOST: unknown value \"aws\" (expected one of: linode, digitalocean, vultr, exoscale)"
        )]
    );

    // A bad website URL is reported once, not again as a bad deployment name.
    let mut texts = seed_templates();
    for text in texts.iter_mut() {
        replace_once(
            text,
            "WEBSITE_URL=\"www.codetesters.uk\"",
            "WEBSITE_URL=\"https://www.codetesters.uk/\"",
        );
    }
    let err = import_templates(&sources(&texts)).unwrap_err();
    assert_eq!(err.errors().count(), 1, "{err}");
}
