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
    assert!(secrets.contains("hjdd738jdaq7fhwk2bdif8rhdnqi238fks92jdkfojshf93jsfhndjk67"));
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
