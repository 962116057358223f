//! The `flotilla-provisioner` binary as systemd runs it: `--check-config`, readiness, SIGTERM.
//! (Every service binary is the same `flotilla_runtime::host::main`; this one stands for all five.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use flotilla_integration_tests::{TestNats, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_flotilla-provisioner");

#[test]
fn check_config_validates_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "data_dir = \"/tmp/x\"\n[nats]\nurls = [\"nats://10.1.2.3:4222\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[consumer]\nmax_deliver = \"lots\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_deliver"),
        "{out:?}"
    );

    let out = Command::new(BIN)
        .arg("--check-config")
        .env("FLOTILLA__ADMIN__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // The service's own settings are checked against the bus's, before anything runs: each of these
    // passed the check once and then panicked or failed every lock.
    let refused = |name: &str, toml: &str, expected: &[&str]| {
        let path = dir.path().join(name);
        std::fs::write(&path, toml).unwrap();
        let out = Command::new(BIN)
            .args(["--check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        for e in expected {
            assert!(stderr.contains(e), "{name}: {e:?} not in {stderr}");
        }
    };
    refused(
        "zero-interval.toml",
        "[service]\nreconcile_interval = \"0s\"\n",
        &["reconcile_interval must be positive"],
    );
    refused(
        "long-lease.toml",
        "[bus]\nlease_max_age = \"10s\"\n[service]\nregion_lease_ttl = \"30s\"\n",
        &["region_lease_ttl", "lease_max_age"],
    );
    // A secrets file is parsed, not only found: the old unkeyed layout is refused with the reason.
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(&secrets, "[regions.gb-lon]\ntoken = \"x\"\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    refused(
        "secrets.toml.cfg",
        &format!("secrets_file = \"{}\"\n", secrets.display()),
        &["secrets_file", "secrets.toml", "old layout"],
    );
}

#[tokio::test]
async fn signals_readiness_and_stops_cleanly_on_sigterm() {
    let nats = TestNats::private().await;
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut child = Command::new(BIN)
        .env("FLOTILLA__NATS__URLS", nats.url())
        .env("FLOTILLA__DATA_DIR", dir.path().join("data"))
        .env("FLOTILLA__ADMIN__LISTEN", "127.0.0.1:0")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 from the service");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    assert!(
        dir.path().join("data/provisioner.db").exists(),
        "SQLite database in the data directory"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let n = notify.recv(&mut buf).expect("STOPPING=1 from the service");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    let status = eventually("the process to exit", Duration::from_secs(20), || {
        let s = child.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("SIGTERM") && stderr.contains("stopped"),
        "{stderr}"
    );
}

#[test]
fn refuses_an_unreachable_nats_with_a_clear_error() {
    let port = flotilla_integration_tests::free_port();
    let out = Command::new(BIN)
        .env("FLOTILLA__NATS__URLS", format!("nats://127.0.0.1:{port}"))
        .env("FLOTILLA__NATS__CONNECT_TIMEOUT", "1s")
        .env("FLOTILLA__ADMIN__DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to NATS") && stderr.contains(&port.to_string()),
        "{stderr}"
    );
}
