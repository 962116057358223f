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

/// A compose file, its `<<` merge keys applied.
fn compose(name: &str) -> serde_norway::Value {
    let text = std::fs::read_to_string(repo().join("compose").join(name)).unwrap();
    let mut value: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    value.apply_merge().unwrap();
    // Merges nested under a service (`environment: {<<: *env}`) too.
    if let Some(services) = value.get_mut("services").and_then(|s| s.as_mapping_mut()) {
        for (_, service) in services.iter_mut() {
            if let Some(m) = service.as_mapping_mut() {
                for (_, v) in m.iter_mut() {
                    v.apply_merge().unwrap();
                }
            }
        }
    }
    value
}

fn strings(v: &serde_norway::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Environment variables, in order.
type Env = Vec<(String, String)>;
/// Secret files: where the container sees each, and the file it comes from.
type Mounted = Vec<(String, PathBuf)>;

/// A service's environment as compose gives it, and the files its secrets come from (by their path in
/// the container), relative to the compose file's directory.
fn environment(file: &serde_norway::Value, service: &serde_norway::Value) -> (Env, Mounted) {
    let env = service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let value = match v {
                        serde_norway::Value::String(s) => s.clone(),
                        serde_norway::Value::Number(n) => n.to_string(),
                        serde_norway::Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((k.as_str()?.to_owned(), value))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut secrets = Vec::new();
    for entry in service["secrets"].as_sequence().into_iter().flatten() {
        let (source, target) = match entry {
            serde_norway::Value::String(name) => (name.clone(), format!("/run/secrets/{name}")),
            other => {
                let source = other["source"].as_str().unwrap().to_owned();
                let target = other["target"]
                    .as_str()
                    .map_or_else(|| format!("/run/secrets/{source}"), str::to_owned);
                (source, target)
            }
        };
        let path = file["secrets"][source.as_str()]["file"]
            .as_str()
            .unwrap_or_else(|| panic!("secret {source} has no file"));
        secrets.push((target, repo().join("compose").join(path)));
    }
    (env, secrets)
}

/// Loads `service`'s configuration as the container would, its secrets' paths mapped to `files`.
fn load_config<S: flotilla_runtime::ServiceSettings>(
    env: &[(String, String)],
    files: &[(String, PathBuf)],
) -> Result<flotilla_runtime::ServiceConfig<S>, String> {
    let local = |v: &str| {
        files
            .iter()
            .find(|(target, _)| target == v)
            .map_or_else(|| v.to_owned(), |(_, p)| p.display().to_string())
    };
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), local(v))).collect();
    let config = env
        .iter()
        .find(|(k, _)| k == "FLOTILLA_CONFIG")
        .map(|(_, v)| PathBuf::from(v));
    flotilla_runtime::ServiceConfig::<S>::load_from(config.as_deref(), env).map_err(|e| e.to_string())
}

/// Loads the configuration of the service that runs `binary`, checking it as `--check-config` would.
fn check(binary: &str, env: &[(String, String)], files: &[(String, PathBuf)]) -> Result<(), String> {
    match binary {
        "flotilla-provisioner" => load_config::<flotilla_provisioner::Settings>(env, files).map(|_| ()),
        "flotilla-dns" => load_config::<flotilla_dns::Settings>(env, files).map(|_| ()),
        "flotilla-firewall" => load_config::<flotilla_firewall::Settings>(env, files).map(|_| ()),
        "flotilla-sync" => load_config::<flotilla_sync::Settings>(env, files).map(|_| ()),
        "flotilla-autoscaler" => load_config::<flotilla_autoscaler::Settings>(env, files).map(|_| ()),
        other => Err(format!("no such service binary {other}")),
    }
}

#[test]
fn the_compose_demo_runs_the_whole_system_on_the_simulator() {
    let file = compose("docker-compose.yml");
    let services = file["services"].as_mapping().unwrap();
    let by_command = |binary: &str| -> Vec<&serde_norway::Value> {
        services
            .values()
            .filter(|s| strings(&s["command"]).first().map(String::as_str) == Some(binary))
            .collect()
    };
    // NATS with JetStream and a health check that proves it; PostgreSQL with a database per service.
    let nats = &file["services"]["nats"];
    assert_eq!(nats["image"].as_str(), Some("nats:2.12-alpine"));
    assert!(strings(&nats["command"]).contains(&"-js".to_owned()));
    assert!(
        strings(&nats["healthcheck"]["test"])
            .join(" ")
            .contains("/healthz?js-enabled-only=true")
    );
    let databases = file["configs"]["databases"]["content"].as_str().unwrap();
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("target/release/flotilla-cloudsim") && dockerfile.contains(" curl"));
    for def in SERVICES {
        let binary = format!("flotilla-{}", def.name);
        assert!(
            dockerfile.contains(&format!("target/release/{binary}")),
            "{binary} not in the image"
        );
        let found = by_command(&binary);
        assert!(!found.is_empty(), "{binary} not in the compose demo");
        for service in found {
            let (env, files) = environment(&file, service);
            check(&binary, &env, &files).unwrap_or_else(|e| panic!("{binary}: {e}"));
            let is_agent = env
                .iter()
                .any(|(k, v)| k == "FLOTILLA__SERVICE__ROLE" && v == "agent");
            if is_agent {
                continue;
            }
            // Its own database, created by the init script; its /ready as the health check.
            let db = format!("flotilla_{}", def.name);
            assert!(databases.contains(&format!("CREATE DATABASE {db};")), "{db}");
            assert!(
                env.iter()
                    .any(|(k, v)| k == "FLOTILLA__DATABASE_URL" && v.ends_with(&format!("/{db}"))),
                "{binary} on PostgreSQL"
            );
            let listen = env
                .iter()
                .find(|(k, _)| k == "FLOTILLA__ADMIN__LISTEN")
                .unwrap()
                .1
                .clone();
            let port = listen.rsplit(':').next().unwrap();
            let test = strings(&service["healthcheck"]["test"]).join(" ");
            assert!(
                test.contains(&format!("http://127.0.0.1:{port}/ready")),
                "{binary}: {test}"
            );
            assert!(!test.contains("/dev/tcp"), "{binary}: {test}");
        }
    }
    // The simulator listens where compose/demo/clouds.toml says the clouds are.
    let sim = strings(&file["services"]["cloudsim"]["command"]);
    assert_eq!(sim.first().map(String::as_str), Some("flotilla-cloudsim"));
    let flag = |name: &str| sim.iter().position(|a| a == name).map(|i| sim[i + 1].clone());
    let clouds: flotilla_runtime::ServiceConfig = flotilla_runtime::ServiceConfig::load_from(
        Some(&repo().join("compose/demo/clouds.toml")),
        Vec::new(),
    )
    .unwrap();
    let endpoints = &clouds.clouds.endpoints;
    for (url, flag_name) in [
        (&endpoints.linode, "--linode-port"),
        (&endpoints.digitalocean, "--digitalocean-port"),
        (&endpoints.vultr, "--vultr-port"),
        (&endpoints.exoscale, "--exoscale-port"),
        (&endpoints.cloudflare, "--cloudflare-port"),
    ] {
        let port = flag(flag_name).unwrap();
        assert!(
            url.as_deref().unwrap().contains(&format!("127.0.0.1:{port}/")),
            "{flag_name}"
        );
    }
    let simulated = clouds.clouds.simulator.as_ref().unwrap();
    let s3: Vec<&String> = sim
        .iter()
        .skip(1)
        .step_by(1)
        .filter(|a| a.contains('@'))
        .collect();
    assert_eq!(s3.len(), simulated.s3.len(), "one S3 endpoint per simulated host");
    for (host, endpoint) in &simulated.s3 {
        let port = endpoint.url.rsplit(':').next().unwrap();
        let region = host.trim_start_matches("sos-").split('.').next().unwrap();
        assert!(
            s3.iter().any(|a| a.ends_with(&format!("={region}@{port}"))),
            "{host} at {port} not served: {s3:?}"
        );
    }
    // The simulator's machines answer the health checks where the provisioner and autoscaler look.
    let health = flag("--health-port").unwrap();
    let env_of = |name: &str| environment(&file, &file["services"][name]).0;
    assert!(env_of("provisioner").contains(&("FLOTILLA__SERVICE__HEALTH_PORT".into(), health.clone())));
    assert!(env_of("autoscaler").contains(&("FLOTILLA__SERVICE__PROBE__WEBSERVER__PORT".into(), health)));
    // An agent per region of the example deployment, and the one-shot demo using their webroots.
    let sources: Vec<flotilla_spec::TemplateSource> = ["gb-lon", "nl-ams", "ch-gva-2"]
        .iter()
        .map(|r| {
            let path = repo().join(format!("examples/{r}.tmpl"));
            flotilla_spec::TemplateSource::new(
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    let example = flotilla_spec::import_templates(&sources).unwrap().deployment;
    for region in &example.regions {
        let agent = env_of(&format!("agent-{}", region.name));
        assert!(agent.contains(&(
            "FLOTILLA__SERVICE__AGENT__DEPLOYMENT".into(),
            example.name.clone()
        )));
        assert!(agent.contains(&("FLOTILLA__SERVICE__AGENT__REGION".into(), region.name.clone())));
    }
    let demo = &file["services"]["demo"];
    assert_eq!(
        strings(&demo["command"])[..2],
        ["flotilla".to_owned(), "demo".to_owned()]
    );
    assert_eq!(demo["restart"].as_str(), Some("no"));
    for def in SERVICES {
        assert_eq!(
            demo["depends_on"][def.name]["condition"].as_str(),
            Some("service_healthy"),
            "the demo waits for {}",
            def.name
        );
    }
}

#[test]
fn the_compose_cluster_runs_three_nats_nodes_and_two_replicas_of_each_service() {
    let file = compose("docker-compose.cluster.yml");
    let services = file["services"].as_mapping().unwrap();
    let nodes: Vec<String> = (1..=3).map(|i| format!("nats-{i}")).collect();
    for node in &nodes {
        let command = strings(&file["services"][node.as_str()]["command"]).join(" ");
        assert!(
            command.contains("-js") && command.contains("--cluster_name flotilla"),
            "{command}"
        );
        for other in &nodes {
            assert!(
                command.contains(&format!("nats://{other}:6222")),
                "{node} routes to {other}"
            );
        }
    }
    // The operator's own files, stood in for: a secrets file as `flotilla template import` writes it.
    let dir = tempfile::tempdir().unwrap();
    let (_, secrets) = flotilla_integration_tests::templates::seed_import()
        .write_to_dir(dir.path())
        .unwrap();
    let password = dir.path().join("postgres-password");
    std::fs::write(&password, "pw\n").unwrap();
    for def in SERVICES {
        let binary = format!("flotilla-{}", def.name);
        let service = services
            .values()
            .find(|s| strings(&s["command"]).first() == Some(&binary))
            .unwrap_or_else(|| panic!("{binary} not in the cluster file"));
        assert_eq!(service["deploy"]["replicas"].as_u64(), Some(2), "{binary}");
        let (env, files) = environment(&file, service);
        let files: Vec<(String, PathBuf)> = files
            .into_iter()
            .map(|(target, path)| {
                let stand_in = if target.ends_with(".secrets.toml") {
                    secrets.clone()
                } else {
                    password.clone()
                };
                assert!(
                    path.starts_with(repo().join("compose/secrets")),
                    "{}",
                    path.display()
                );
                (target, stand_in)
            })
            .collect();
        check(&binary, &env, &files).unwrap_or_else(|e| panic!("{binary}: {e}"));
        let cfg = load_config::<flotilla_runtime::NoSettings>(
            &env.iter()
                .filter(|(k, _)| !k.starts_with("FLOTILLA__SERVICE__"))
                .cloned()
                .collect::<Vec<_>>(),
            &files,
        )
        .unwrap();
        assert_eq!(
            cfg.bus.replicas, 3,
            "{binary}: streams and buckets on three nodes"
        );
        assert_eq!(cfg.nats.urls.len(), 3, "{binary}: every node's URL");
        assert!(
            cfg.secrets_file.is_some() && cfg.database_password_file.is_some(),
            "{binary}"
        );
    }
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
