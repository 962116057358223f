//! The README's local demo, `flotilla dev --demo`, as a user runs it: from an empty directory it starts NATS,
//! the simulator and every service, deploys the three-region example and shows the fleet; `flotilla status`
//! (text and JSON) and `flotilla deploy --plan` then talk to it over NATS; Ctrl-C stops everything cleanly
//! and a second `flotilla dev` resumes the same fleet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use flotilla_proto::Fleet;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_flotilla");

fn flotilla(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("NATS_URL")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    cmd
}

/// Starts `flotilla dev ARGS` and reads its stdout until a line contains `until`; returns the child and
/// everything it printed so far.
async fn start_dev(dir: &Path, args: &[&str], until: &str) -> (Child, String) {
    let mut child = flotilla(dir)
        .arg("dev")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(until) {
                return true;
            }
        }
        false
    })
    .await;
    if !matches!(found, Ok(true)) {
        let _ = child.start_kill();
        let out = child.wait_with_output().await.unwrap();
        panic!(
            "flotilla dev never printed {until:?}; stdout so far:\n{seen}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, seen)
}

/// Ctrl-C, then the exit status and whatever it printed on stderr.
async fn interrupt(mut child: Child) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("flotilla dev stops within a minute of Ctrl-C")
        .unwrap()
}

async fn status_json(dir: &Path) -> Fleet {
    let out = flotilla(dir)
        .args(["status", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn healthy(fleet: &Fleet) -> Vec<String> {
    let mut ids: Vec<String> = fleet
        .regions
        .iter()
        .flat_map(|r| &r.machines)
        .filter(|m| m.state == "healthy")
        .map(|m| m.resource_id.clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_demo_deploys_three_regions_and_resumes_after_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (dev, printed) = start_dev(dir.path(), &["--demo"], "the demo fleet is up").await;
    assert!(printed.contains("provisioner serving"), "{printed}");
    assert!(
        printed.contains("every region applied"),
        "the demo reports success:\n{printed}"
    );

    // `flotilla status` over NATS, found through ./.flotilla/dev.json.
    let out = flotilla(dir.path()).arg("status").output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for header in [
        "region gb-lon (linode, primary) — applied",
        "region nl-ams (linode) — applied",
        "region ch-gva-2 (exoscale) — applied",
        "DBaaS",
    ] {
        assert!(text.contains(header), "status lacks {header:?}:\n{text}");
    }
    let fleet = status_json(dir.path()).await;
    assert_eq!(fleet.regions.len(), 3, "{fleet:?}");
    for region in &fleet.regions {
        assert_eq!(region.status, "applied", "{region:?}");
        assert!(!region.machines.is_empty(), "{region:?}");
        for m in &region.machines {
            assert_eq!(m.state, "healthy", "{m:?}");
            assert!(m.public_ipv4.is_some() && m.private_ipv4.is_some(), "{m:?}");
        }
        // Every machine line of the text output is there too.
        for m in &region.machines {
            assert!(text.contains(&m.name), "{} missing from:\n{text}", m.name);
        }
    }
    let primary = fleet.regions.iter().find(|r| r.primary).unwrap();
    assert_eq!(primary.dbaas.as_ref().unwrap().status, "ready");
    let before = healthy(&fleet);

    // The examples again, as a plan: nothing to change.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let out = flotilla(dir.path())
        .args(["deploy", "--plan"])
        .arg(examples.join("gb-lon.tmpl"))
        .arg(examples.join("nl-ams.tmpl"))
        .arg(examples.join("ch-gva-2.tmpl"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(plan.matches("machines: no change").count(), 3, "{plan}");

    // Ctrl-C: a clean stop, and nothing left listening.
    let status = interrupt(dev).await;
    assert!(status.success(), "flotilla dev exits 0 after Ctrl-C: {status:?}");
    assert!(!dir.path().join(".flotilla/dev.json").exists());
    let out = flotilla(dir.path()).arg("status").output().await.unwrap();
    assert_eq!(out.status.code(), Some(3), "NATS is gone: {out:?}");

    // A second `flotilla dev` resumes the same fleet.
    let (dev, _) = start_dev(dir.path(), &[], "Ctrl-C stops everything").await;
    let fleet = status_json(dir.path()).await;
    assert_eq!(healthy(&fleet), before, "the same machines after a restart");
    let status = interrupt(dev).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn dev_says_what_is_missing_when_it_cannot_start_nats() {
    let dir = tempfile::tempdir().unwrap();
    let out = flotilla(dir.path())
        .arg("dev")
        .env_remove("NATS_SERVER_BIN")
        .env("PATH", dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no nats-server on PATH") && stderr.contains("NATS_URL"),
        "{stderr}"
    );

    // A binary that is not a working nats-server: its failure is reported, with where its log is.
    let out = flotilla(dir.path())
        .arg("dev")
        .env("NATS_SERVER_BIN", "/bin/false")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nats-server exited") && stderr.contains("nats.log"),
        "{stderr}"
    );
}
