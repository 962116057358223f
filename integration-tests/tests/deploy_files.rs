//! The files operators deploy with stay in step with the code: every service has a compose entry and a
//! systemd unit that checks its configuration first, and the example configuration loads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const SERVICES: [flotilla_runtime::ServiceDef; 5] = [
    flotilla_provisioner::DEF,
    flotilla_dns::DEF,
    flotilla_firewall::DEF,
    flotilla_sync::DEF,
    flotilla_autoscaler::DEF,
];

#[test]
fn compose_runs_every_service_against_jetstream() {
    let compose = std::fs::read_to_string(repo().join("compose/docker-compose.yml")).unwrap();
    assert!(compose.contains("\"-js\""), "NATS must run with JetStream");
    for def in SERVICES {
        assert!(
            compose.contains(&format!("command: [\"flotilla-{}\"]", def.name)),
            "{} missing from compose",
            def.name
        );
    }
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    for def in SERVICES {
        assert!(
            dockerfile.contains(&format!("target/release/flotilla-{}", def.name)),
            "{} missing from the image",
            def.name
        );
    }
    // Health checks that prove something and run in the images' own tools: NATS's JetStream health
    // endpoint (busybox wget in the alpine image), the services' `/ready` with curl (installed in ours) —
    // never bash's `/dev/tcp` (the image's `/bin/sh` is dash).
    assert!(
        compose.contains("nats:2.12-alpine") && compose.contains("/healthz?js-enabled-only=true"),
        "NATS needs a real health check"
    );
    assert!(!compose.contains("/dev/tcp") && !compose.contains("--help"));
    assert!(compose.contains("http://127.0.0.1:9100/ready"));
    assert!(
        dockerfile.contains(" curl"),
        "the image's health check needs curl"
    );
}

#[test]
fn every_service_has_a_systemd_unit_that_checks_its_config_first() {
    for def in SERVICES {
        let path = repo().join(format!("compose/systemd/flotilla-{}.service", def.name));
        let unit = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(unit.contains("Type=notify"), "{}", path.display());
        assert!(unit.contains(&format!(
            "ExecStartPre=/usr/local/bin/flotilla-{} --check-config",
            def.name
        )));
        assert!(unit.contains(&format!("ExecStart=/usr/local/bin/flotilla-{}\n", def.name)));
        assert!(unit.contains(&format!("FLOTILLA__ADMIN__LISTEN=127.0.0.1:{}", def.admin_port)));
        assert!(unit.contains("WatchdogSec="), "{}", path.display());
        assert!(
            unit.contains("LoadCredential=secrets.toml:/etc/flotilla/secrets.toml")
                && unit.contains("Environment=FLOTILLA__SECRETS_FILE=%d/secrets.toml"),
            "{}",
            path.display()
        );
        assert!(unit.contains("User=flotilla"), "{}", path.display());
    }
    // The user they run as is declared for systemd-sysusers.
    let sysusers = std::fs::read_to_string(repo().join("compose/systemd/flotilla.sysusers.conf")).unwrap();
    assert!(
        sysusers.lines().any(|l| l.starts_with("u flotilla ")),
        "{sysusers}"
    );
}

/// Every unit (the services', the sync agent's, the example nats-server's) passes `systemd-analyze verify`
/// (but for the binaries, which are not installed here) and `systemd-analyze security` rates it at
/// exposure 2.0 or lower.
#[test]
fn every_unit_verifies_and_is_hardened() {
    let analyze = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output();
    if analyze.is_err() {
        assert!(
            !flotilla_integration_tests::in_ci(),
            "CI=true but systemd-analyze is not installed (apt-get install systemd)"
        );
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let mut units: Vec<PathBuf> = std::fs::read_dir(repo().join("compose/systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    units.sort();
    assert!(units.len() >= 7, "{units:?}");
    for unit in units {
        let out = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(&unit)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: exposure above 2.0:\n{}",
            unit.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        let complaints: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("is not executable: No such file or directory"))
            .collect();
        assert!(
            complaints.is_empty(),
            "{}:\n{}",
            unit.display(),
            complaints.join("\n")
        );
    }
}

#[test]
fn the_example_configuration_loads() {
    let cfg: flotilla_runtime::ServiceConfig = flotilla_runtime::ServiceConfig::load_from(
        Some(&repo().join("compose/flotilla.example.toml")),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(cfg.consumer.max_deliver, 5);
    assert_eq!(
        cfg.bus.command_max_age,
        std::time::Duration::from_secs(7 * 24 * 3600)
    );
}

#[test]
fn the_sync_agent_has_its_own_unit_writing_only_its_webroot() {
    let path = repo().join("compose/systemd/flotilla-sync-agent.service");
    let unit = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(unit.contains("Type=notify"));
    assert!(unit.contains("ExecStartPre=/usr/local/bin/flotilla-sync --check-config"));
    assert!(unit.contains("ExecStart=/usr/local/bin/flotilla-sync\n"));
    assert!(unit.contains("ProtectSystem=strict") && unit.contains("ReadWritePaths=/var/www/html"));
    // Its example configuration (the comment at the top) is one the service accepts.
    let example: String = unit
        .lines()
        .skip_while(|l| !l.starts_with("#   [service]"))
        .take_while(|l| l.starts_with("#   "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sync-agent.toml");
    std::fs::write(&file, &example).unwrap();
    let cfg: flotilla_runtime::ServiceConfig<flotilla_sync::Settings> =
        flotilla_runtime::ServiceConfig::load_from(Some(&file), Vec::new())
            .unwrap_or_else(|e| panic!("{e}\n{example}"));
    assert_eq!(cfg.service.role, flotilla_sync::settings::Role::Agent);
    assert_eq!(
        cfg.service.agent.unwrap().webroot,
        std::path::PathBuf::from("/var/www/html")
    );
}
