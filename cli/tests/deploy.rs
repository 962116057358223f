//! `flotilla deploy`, `status` and `destroy` against the provisioner and the simulator over a real NATS, on
//! SQLite and PostgreSQL: the seed deployment deployed from its three templates as they stand (secondaries
//! waiting for the primary's DBaaS), every machine once with its role, region, size and VPC; the exit codes
//! and messages when the files are bad, NATS or the provisioner is absent, or a region fails; destroy with
//! and without a confirmation. A stand-in provisioner gives the answers the real one rarely gives: no plan,
//! and destroys that leave something in place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_cloudsim::RunningSim;
use flotilla_integration_tests::templates::{SEED_NAMES, seed_import, seed_templates};
use flotilla_integration_tests::{TestDb, TestNats, databases, free_port, service_config};
use flotilla_provisioner::Settings;
use flotilla_runtime::host::Running;
use flotilla_spec::CloudProvider;

async fn flotilla(nats_url: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .env("NATS_URL", nats_url)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Stack {
    nats: TestNats,
    sim: RunningSim,
    provisioner: Option<Running>,
    _dir: tempfile::TempDir,
}

async fn stack(db: Option<&TestDb>) -> Stack {
    let sim =
        flotilla_integration_tests::sim::simulator(Duration::from_millis(50), Duration::from_millis(300))
            .await;
    let nats = TestNats::private().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = service_config::<Settings>(&nats, db.map(|d| d.url.clone()), dir.path());
    config.consumer.ack_wait = Duration::from_secs(5);
    config.clouds = sim.cloud_settings();
    config.service = Settings {
        max_rounds: 2,
        ..flotilla_integration_tests::sim::provisioner_settings(&sim)
    };
    let provisioner =
        flotilla_runtime::host::start(flotilla_provisioner::DEF, config, flotilla_provisioner::routes)
            .await
            .unwrap();
    Stack {
        nats,
        sim,
        provisioner: Some(provisioner),
        _dir: dir,
    }
}

fn write_seed(dir: &Path) -> Vec<PathBuf> {
    seed_templates()
        .iter()
        .zip(SEED_NAMES)
        .map(|(text, name)| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

fn args<'a>(head: &[&'a str], files: &'a [PathBuf]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(files.iter().map(|p| p.to_str().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_deployment_deploys_with_every_machine_once_and_secondaries_waiting() {
    for db in databases().await {
        let s = stack(Some(&db)).await;
        let files_dir = tempfile::tempdir().unwrap();
        let files = write_seed(files_dir.path());
        let out = flotilla(s.nats.url(), &args(&["deploy"], &files)).await;
        assert!(out.status.success(), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for secondary in ["nl-ams", "ch-gva-2"] {
            let waited = stderr
                .find(&format!("{secondary}: waiting"))
                .unwrap_or_else(|| panic!("{secondary} did not wait:\n{}", text(&out)));
            let dbaas = stderr.find("gb-lon: DBaaS").expect("DBaaS ready is reported");
            let built = stderr
                .find(&format!("{secondary}: applied"))
                .expect("secondary applied");
            assert!(waited < dbaas && dbaas < built, "{}", text(&out));
        }
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("every region applied"),
            "{}",
            text(&out)
        );

        // At the simulator: every wanted machine exactly once, in its region, of its size, in its VPC.
        let deployment = seed_import().deployment;
        let machines = s.sim.machines();
        for region in &deployment.regions {
            let mine: Vec<_> = machines
                .iter()
                .filter(|m| m.tags.iter().any(|t| t.contains(&region.name)))
                .collect();
            let mut per_role: BTreeMap<String, usize> = BTreeMap::new();
            for m in &mine {
                let role = m.name.split('-').next().unwrap().to_owned();
                *per_role.entry(role).or_default() += 1;
                let expected_region = &region.provider_region;
                assert_eq!(&m.region, expected_region, "{m:?}");
                let private = m.private_ip.unwrap_or_else(|| panic!("{m:?} is not in a VPC"));
                assert!(
                    region.vpc.cidr.contains(&private),
                    "{m:?} outside {}",
                    region.vpc.cidr
                );
            }
            for (role, spec) in region.machines.iter() {
                let prefix = flotilla_provisioner::plan::role_prefix(role);
                assert_eq!(
                    per_role.get(prefix).copied().unwrap_or(0),
                    spec.count as usize,
                    "{} {role:?} in {mine:#?}",
                    region.name
                );
                for m in mine.iter().filter(|m| m.name.starts_with(&format!("{prefix}-"))) {
                    let size = if region.provider == CloudProvider::Exoscale && !spec.size.contains('.') {
                        format!("standard.{}", spec.size)
                    } else {
                        spec.size.clone()
                    };
                    assert_eq!(m.size, size, "{m:?}");
                }
            }
        }
        let total: u32 = deployment
            .regions
            .iter()
            .flat_map(|r| r.machines.iter().map(|(_, s)| s.count))
            .sum();
        assert_eq!(machines.len(), total as usize, "no machine more: {machines:#?}");

        // Deploying again changes nothing.
        let out = flotilla(s.nats.url(), &args(&["deploy"], &files)).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(s.sim.machines().len(), total as usize);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .matches("(0 created, 0 adopted, 0 destroyed")
                .count(),
            3,
            "{}",
            text(&out)
        );

        // `status --output json` lists them all; destroy without confirmation is refused, with --yes done.
        let out = flotilla(s.nats.url(), &["status", "--output", "json"]).await;
        let fleet: flotilla_proto::Fleet = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            fleet.regions.iter().map(|r| r.machines.len()).sum::<usize>(),
            total as usize
        );
        // The same deployment as a TOML spec (what `template import` writes): nothing to change.
        let out_dir = files_dir.path().join("spec");
        let out = flotilla(
            s.nats.url(),
            &args(
                &["template", "import", "--out", out_dir.to_str().unwrap()],
                &files,
            ),
        )
        .await;
        assert!(out.status.success(), "{}", text(&out));
        let spec = out_dir.join(format!("{}.toml", deployment.name));
        let out = flotilla(s.nats.url(), &["deploy", "--plan", spec.to_str().unwrap()]).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .matches("machines: no change")
                .count(),
            3,
            "{}",
            text(&out)
        );

        // `--watch` redraws until interrupted.
        let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .env("NATS_URL", s.nats.url())
            .args(["status", "--watch", "--interval", "200ms"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = watch.stdout.take().unwrap();
        let mut seen = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut seen),
        )
        .await;
        watch.kill().await.unwrap();
        let seen = String::from_utf8_lossy(&seen);
        assert!(seen.matches("\x1b[2J").count() >= 2, "redrawn: {seen}");
        assert!(seen.contains("region nl-ams (linode) — applied"), "{seen}");

        let out = flotilla(s.nats.url(), &["destroy", &deployment.name]).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("--yes"), "{}", text(&out));
        assert_eq!(s.sim.machines().len(), total as usize, "nothing destroyed");
        let out = flotilla(s.nats.url(), &["destroy", &deployment.name, "--yes"]).await;
        assert!(out.status.success(), "{}", text(&out));
        assert!(s.sim.machines().is_empty(), "{:#?}", s.sim.machines());
        let out = flotilla(s.nats.url(), &["status", &deployment.name]).await;
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("nothing recorded"),
            "{}",
            text(&out)
        );
        let Stack { provisioner, sim, .. } = s;
        provisioner.unwrap().shutdown().await.unwrap();
        sim.shutdown().await;
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_says_why_it_cannot_and_exits_accordingly() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_seed(dir.path());

    // No NATS at all.
    let out = flotilla(
        &format!("nats://127.0.0.1:{}", free_port()),
        &args(&["deploy"], &files),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("cannot reach NATS"), "{}", text(&out));

    // A broken template: exit 2, file:line first.
    let broken = dir.path().join("broken.tmpl");
    std::fs::write(
        &broken,
        "export CLOUDHOST=\"linode\"\nexport NO_WEBSERVERS=\"many\"\n",
    )
    .unwrap();
    let out = flotilla("nats://127.0.0.1:1", &["deploy", broken.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("broken.tmpl:"), "{}", text(&out));

    // A spec that cannot be read: exit 2 too, naming it.
    let out = flotilla("nats://127.0.0.1:1", &["deploy", "/nonexistent.toml"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("/nonexistent.toml"), "{}", text(&out));

    // NATS but no provisioner.
    let mut s = stack(None).await;
    s.provisioner.take().unwrap().shutdown().await.unwrap();
    let out = flotilla(s.nats.url(), &args(&["deploy"], &files)).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("the provisioner is not running"),
        "{}",
        text(&out)
    );
    let out = flotilla(s.nats.url(), &["status"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_that_fails_makes_deploy_exit_1_with_the_reason_and_the_others_still_apply() {
    let s = stack(None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut templates = seed_templates();
    // nl-ams asks for a plan the provider does not have.
    let ws = templates[1]
        .lines()
        .find(|l| l.starts_with("export WS_SERVER_TYPE="))
        .unwrap()
        .to_owned();
    templates[1] = templates[1].replace(&ws, "export WS_SERVER_TYPE=\"g6-imaginary-64\"");
    let files: Vec<PathBuf> = templates
        .iter()
        .zip(SEED_NAMES)
        .map(|(t, n)| {
            let p = dir.path().join(n);
            std::fs::write(&p, t).unwrap();
            p
        })
        .collect();
    let out = flotilla(s.nats.url(), &args(&["deploy", "--timeout", "2m"], &files)).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("nl-ams"), "{all}");
    assert!(
        all.contains("nl-ams: FAILED") && all.contains("plan type"),
        "the region and the provider's reason are given: {all}"
    );
    assert!(
        all.contains("gb-lon: applied") && all.contains("ch-gva-2: applied"),
        "{all}"
    );
}

/// Answers `request` (a core NATS request) with `resp`.
async fn reply<M: flotilla_proto::Message>(
    client: &async_nats::Client,
    request: &async_nats::Message,
    resp: &M,
) {
    let encoding = flotilla_proto::Encoding::MessagePack;
    let body = flotilla_proto::encode(resp, encoding).unwrap();
    client
        .publish_with_headers(
            request.reply.clone().unwrap(),
            flotilla_bus::message_headers::<M>(encoding),
            body.into(),
        )
        .await
        .unwrap();
}

fn decode<M: flotilla_proto::Message>(msg: &async_nats::Message) -> M {
    let kind = flotilla_bus::header(msg.headers.as_ref(), flotilla_proto::KIND_HEADER);
    let ct = flotilla_bus::header(msg.headers.as_ref(), flotilla_proto::CONTENT_TYPE_HEADER);
    flotilla_proto::decode(kind.as_deref(), ct.as_deref(), &msg.payload).unwrap()
}

/// A stand-in provisioner on `nats`: answers `status`, and `machines` with `fleet` (filtered by region), and
/// each region's destroy with the outcome and error `outcomes` give it; does not answer `plan`.
async fn fake_provisioner(
    nats: &TestNats,
    fleet: flotilla_proto::Fleet,
    outcomes: BTreeMap<String, (&'static str, Option<&'static str>)>,
) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    let client = nats.client().await;
    flotilla_bus::Topology::ensure(&client, &flotilla_bus::TopologyConfig::default())
        .await
        .unwrap();
    let mut status = client.subscribe("flotilla.api.provisioner.status").await.unwrap();
    let mut machines = client
        .subscribe("flotilla.api.provisioner.machines")
        .await
        .unwrap();
    let mut destroys = client
        .subscribe("flotilla.cmd.provisioner.*.*.destroy")
        .await
        .unwrap();
    let mut withdraws = client
        .subscribe("flotilla.api.provisioner.withdraw")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let service: flotilla_proto::ServiceStatus = serde_json::from_value(serde_json::json!({
        "service": "provisioner",
        "version": "0.0.0",
        "instance": "stand-in",
        "started_at": "2026-01-01T00:00:00Z",
        "database_ok": true,
        "commands_acked": 0,
        "commands_retried": 0,
        "commands_dead_lettered": 0,
    }))
    .unwrap();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(m) = status.next() => reply(&client, &m, &service).await,
                Some(m) = machines.next() => {
                    let req: flotilla_proto::ListMachines = decode(&m);
                    let mut answer = fleet.clone();
                    answer.regions.retain(|r| req.region.as_ref().is_none_or(|want| *want == r.region));
                    reply(&client, &m, &answer).await;
                }
                Some(m) = withdraws.next() => {
                    let req: flotilla_proto::WithdrawRegions = decode(&m);
                    let answer = flotilla_proto::Accepted { deployment: req.deployment, generation: 7, changed: true };
                    reply(&client, &m, &answer).await;
                }
                Some(m) = destroys.next() => {
                    let cmd: flotilla_proto::DestroyRegion = decode(&m);
                    assert_eq!(cmd.generation, 7, "the destroy carries the generation of the withdrawal");
                    let (outcome, error) = outcomes[&cmd.region];
                    let event = flotilla_proto::RegionApplied {
                        meta: flotilla_proto::EventMeta::new(cmd.meta.correlation_id, "provisioner"),
                        deployment: cmd.deployment.clone(),
                        region: cmd.region.clone(),
                        outcome: outcome.to_owned(),
                        error: error.map(str::to_owned),
                        created: Vec::new(),
                        adopted: Vec::new(),
                        destroyed: vec![format!("{}-machine", cmd.region)],
                        failed: Vec::new(),
                    };
                    let encoding = flotilla_proto::Encoding::MessagePack;
                    client
                        .publish_with_headers(
                            flotilla_bus::subject::event("region", &cmd.deployment, &cmd.region, outcome).unwrap(),
                            flotilla_bus::message_headers::<flotilla_proto::RegionApplied>(encoding),
                            flotilla_proto::encode(&event, encoding).unwrap().into(),
                        )
                        .await
                        .unwrap();
                }
                else => return,
            }
        }
    })
}

fn region_view(deployment: &str, region: &str) -> flotilla_proto::RegionView {
    serde_json::from_value(serde_json::json!({
        "deployment": deployment,
        "region": region,
        "provider": "linode",
        "primary": false,
        "status": "applied",
        "detail": null,
        "vpc_id": null,
        "machines": [],
        "dbaas": null,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_the_provisioner_does_not_answer_exits_3_saying_so() {
    let nats = TestNats::private().await;
    let _provisioner = fake_provisioner(
        &nats,
        flotilla_proto::Fleet { regions: Vec::new() },
        BTreeMap::new(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let files = write_seed(dir.path());
    let out = flotilla(nats.url(), &args(&["deploy", "--plan"], &files)).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("the provisioner is not running"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroy_that_leaves_something_in_place_says_what_and_exits_1() {
    let nats = TestNats::private().await;
    let fleet = flotilla_proto::Fleet {
        regions: vec![
            region_view("shop", "gb-lon"),
            region_view("shop", "nl-ams"),
            region_view("shop", "ch-gva-2"),
        ],
    };
    let outcomes = BTreeMap::from([
        ("gb-lon".to_owned(), ("destroyed", None)),
        (
            "nl-ams".to_owned(),
            (
                "destroyed",
                Some("VPC shop-ams (vpc-2) left in place: still in use (found after a retry)"),
            ),
        ),
        (
            "ch-gva-2".to_owned(),
            (
                "failed",
                Some("VPC shop-gva (vpc-3) left in place: still in use (machine 42)"),
            ),
        ),
    ]);
    let _provisioner = fake_provisioner(&nats, fleet, outcomes).await;

    let out = flotilla(nats.url(), &["destroy", "shop", "--yes", "--timeout", "30s"]).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("gb-lon: destroyed (1 machine(s))"), "{all}");
    assert!(stdout.contains("nl-ams: destroyed (1 machine(s))"), "{all}");
    assert!(
        stderr.contains("nl-ams: warning — VPC shop-ams (vpc-2) left in place"),
        "a destroy that left something says so: {all}"
    );
    assert!(
        stdout.contains(
            "ch-gva-2: destroy incomplete — VPC shop-gva (vpc-3) left in place: still in use (machine 42)"
        ),
        "{all}"
    );
    assert!(!stderr.contains("gb-lon: warning"), "{all}");

    // One region, destroyed whole: exit 0.
    let out = flotilla(
        nats.url(),
        &["destroy", "shop", "gb-lon", "--yes", "--timeout", "30s"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("gb-lon: destroyed"),
        "{}",
        text(&out)
    );
}
