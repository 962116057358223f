//! `flotilla template check|import` on the seed's three real templates, as an operator runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../shared/spec/tests/common/mod.rs"]
mod seed;

use std::path::PathBuf;
use std::process::Command;

fn write_seed(dir: &std::path::Path, edit: impl Fn(usize, &mut String)) -> Vec<PathBuf> {
    seed::seed_templates()
        .into_iter()
        .zip(seed::NAMES)
        .enumerate()
        .map(|(i, (mut text, name))| {
            edit(i, &mut text);
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

fn flotilla(args: &[&str], files: &[PathBuf]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_the_seed_deployment_and_shows_its_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_seed(dir.path(), |_, _| {});
    let out = flotilla(&["template", "check"], &files);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("deployment www-codetesters-uk with 3 region(s): gb-lon (linode, primary), nl-ams (linode), ch-gva-2 (exoscale)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("SYSTEM_EMAIL_PROVIDER"),
        "the duplicate key is reported: {stderr}"
    );
    for secret in seed::SEED_SECRETS {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a secret was printed"
        );
    }
}

#[test]
fn check_reports_every_problem_with_file_line_and_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_seed(dir.path(), |i, text| match i {
        1 => seed::remove_line(text, "DBaaS_PUBLIC_ENDPOINT"),
        2 => seed::replace_once(
            text,
            "VPC_IP_RANGE=\"10.0.0.0/24\"",
            "VPC_IP_RANGE=\"10.0.0.0/33\"",
        ),
        _ => {}
    });
    let vpc_line = seed::line_of(&std::fs::read_to_string(&files[2]).unwrap(), "VPC_IP_RANGE");
    let out = flotilla(&["template", "check"], &files);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nl-ams.tmpl") && stderr.contains("DBaaS_PUBLIC_ENDPOINT"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("ch-gva-2.tmpl:{vpc_line}: VPC_IP_RANGE")),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}

#[test]
fn check_of_a_missing_file_names_it() {
    let out = flotilla(
        &["template", "check"],
        &[PathBuf::from("/nonexistent/gb-lon.tmpl")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gb-lon.tmpl"));
}

#[test]
fn import_writes_a_spec_without_secrets_and_a_private_secrets_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_seed(dir.path(), |_, _| {});
    let out_dir = dir.path().join("deploy");
    let mut args = vec!["template", "import", "--out"];
    let out_str = out_dir.display().to_string();
    args.push(&out_str);
    let out = flotilla(&args, &files);
    assert!(out.status.success(), "{out:?}");
    let spec_text = std::fs::read_to_string(out_dir.join("www-codetesters-uk.toml")).unwrap();
    let deployment = flotilla_spec::Deployment::from_toml(&spec_text).unwrap();
    assert_eq!(deployment.regions.len(), 3);
    for secret in seed::SEED_SECRETS {
        assert!(!spec_text.contains(secret), "the spec holds a secret");
    }
    let secrets_path = out_dir.join("www-codetesters-uk.secrets.toml");
    let secrets = std::fs::read_to_string(&secrets_path).unwrap();
    for secret in seed::SEED_SECRETS {
        assert!(
            secrets.contains(secret),
            "{secret} is missing from the secrets file"
        );
    }
    assert!(
        secrets.contains("[deployments.www-codetesters-uk.regions.gb-lon.cloud]"),
        "the secrets are keyed by deployment and region:\n{secrets}"
    );
    let file = flotilla_spec::SecretsFile::load(&secrets_path).unwrap();
    assert_eq!(
        file.deployments.keys().collect::<Vec<_>>(),
        ["www-codetesters-uk"]
    );
    assert_eq!(
        file.region("www-codetesters-uk", "gb-lon")
            .and_then(|r| r.cloud.token.as_ref())
            .map(|t| t.expose()),
        Some("hjdd738jdaq7fhwk2bdif8rhdnqi238fks92jdkfojshf93jsfhndjk67")
    );
    for region in ["gb-lon", "nl-ams", "ch-gva-2"] {
        assert!(
            file.region("www-codetesters-uk", region).is_some(),
            "{region} has credentials"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[deployments.www-codetesters-uk]"), "{stdout}");
    for secret in seed::SEED_SECRETS {
        assert!(
            !stdout.contains(secret) && !String::from_utf8_lossy(&out.stderr).contains(secret),
            "a secret was printed"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secrets_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Importing again over the same directory gives the same files.
    let again = flotilla(&args, &files);
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(out_dir.join("www-codetesters-uk.toml")).unwrap(),
        spec_text
    );
}

#[test]
fn imported_secrets_files_of_two_deployments_concatenate_into_one() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("deploy");
    let out_str = out_dir.display().to_string();
    let args = ["template", "import", "--out", out_str.as_str()];

    let first = dir.path().join("first");
    std::fs::create_dir(&first).unwrap();
    let files = write_seed(&first, |_, _| {});
    assert!(flotilla(&args, &files).status.success());

    let second = dir.path().join("second");
    std::fs::create_dir(&second).unwrap();
    let files = write_seed(&second, |_, text| {
        seed::replace_once(
            text,
            "WEBSITE_URL=\"www.codetesters.uk\"",
            "WEBSITE_URL=\"www.second-site.uk\"",
        );
        // The Linode regions' token (the Exoscale region has none).
        *text = text.replace(
            "hjdd738jdaq7fhwk2bdif8rhdnqi238fks92jdkfojshf93jsfhndjk67",
            "second-site-token",
        );
    });
    let out = flotilla(&args, &files);
    assert!(out.status.success(), "{out:?}");

    let mut joined = String::new();
    for name in ["www-codetesters-uk", "www-second-site-uk"] {
        joined.push_str(&std::fs::read_to_string(out_dir.join(format!("{name}.secrets.toml"))).unwrap());
        joined.push('\n');
    }
    let all = dir.path().join("all.secrets.toml");
    std::fs::write(&all, joined).unwrap();
    let file = flotilla_spec::SecretsFile::load(&all).unwrap();
    let token = |deployment: &str| {
        file.region(deployment, "gb-lon")
            .and_then(|r| r.cloud.token.as_ref())
            .map(|t| t.expose().to_owned())
    };
    assert_eq!(
        token("www-codetesters-uk").as_deref(),
        Some("hjdd738jdaq7fhwk2bdif8rhdnqi238fks92jdkfojshf93jsfhndjk67")
    );
    assert_eq!(token("www-second-site-uk").as_deref(), Some("second-site-token"));
}

#[test]
fn a_secrets_file_in_the_old_layout_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.secrets.toml");
    std::fs::write(
        &path,
        "[regions.gb-lon.cloud]\ntoken = \"hjdd738jdaq7fhwk2bdif8rhdnqi238fks92jdkfojshf93jsfhndjk67\"\n",
    )
    .unwrap();
    let err = flotilla_spec::SecretsFile::load(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("flotilla template import"), "{err}");
    assert!(!err.contains("hjdd738"), "{err}");
}
