//! `flotilla scale` and `flotilla scaling` against the real autoscaler and provisioner and the simulator
//! over a real NATS: a region scaled 1 → 3 with `--wait`, a count out of bounds refused with exit 1 and the
//! bounds named, pause and resume, protect (by machine name) and replace, `why` and `reconcile`, and the
//! exit code when the autoscaler is absent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flotilla_cloudsim::defaults;
use flotilla_integration_tests::{TestNats, next_generation, service_config, sim, templates};
use flotilla_proto::{ApplyRegion, CommandMeta};

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

#[tokio::test]
async fn scale_waits_for_the_count_and_refuses_what_is_out_of_bounds() {
    let nats = TestNats::private().await;
    let url = nats.url().to_owned();
    // No autoscaler yet: exit 3, saying so.
    let out = flotilla(&url, &["scale", "www-codetesters-uk", "gb-lon", "2"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("autoscaler"), "{}", text(&out));

    let sim = sim::simulator(Duration::from_millis(50), Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = service_config::<flotilla_provisioner::Settings>(&nats, None, &dir.path().join("p"));
    p.clouds = sim.cloud_settings();
    p.service = sim::provisioner_settings(&sim);
    let provisioner =
        flotilla_runtime::host::start(flotilla_provisioner::DEF, p, flotilla_provisioner::routes)
            .await
            .unwrap();
    let mut a = service_config::<flotilla_autoscaler::Settings>(&nats, None, &dir.path().join("a"));
    a.service.probe = flotilla_autoscaler::settings::Probes::all(flotilla_autoscaler::settings::Probe {
        port: sim.health_port(),
        path: "/health".into(),
        interval: Duration::from_millis(250),
        timeout: Duration::from_millis(200),
        healthy_threshold: 1,
        ..flotilla_autoscaler::settings::Probe::default()
    });
    a.service.drain_delay = Duration::from_millis(200);
    let autoscaler = flotilla_runtime::host::start(flotilla_autoscaler::DEF, a, flotilla_autoscaler::routes)
        .await
        .unwrap();

    let d = templates::import(&[
        ("TOKEN", defaults::LINODE_TOKEN),
        ("INPARALLEL", "1"),
        ("NO_WEBSERVERS", "1"),
        ("MAX_WEBSERVERS", "3"),
    ])
    .deployment;
    let client = nats.client().await;
    flotilla_bus::Publisher::new(client, flotilla_bus::PublishConfig::default())
        .publish_command(&ApplyRegion {
            meta: CommandMeta::new("test"),
            deployment: d.clone(),
            region: "gb-lon".into(),
            generation: next_generation(),
        })
        .await
        .unwrap();
    // The provisioner records the deployment as it handles the apply: scaling names a deployed one.
    let desired =
        flotilla_bus::Topology::ensure(&nats.client().await, &flotilla_bus::TopologyConfig::default())
            .await
            .unwrap()
            .desired_states();
    flotilla_integration_tests::eventually("the deployment recorded", Duration::from_secs(30), || async {
        desired.get(&d.name).await.ok().flatten().map(|_| ())
    })
    .await;

    let out = flotilla(
        &url,
        &["scale", &d.name, "gb-lon", "3", "--wait", "--timeout", "60s"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("3 webservers, all healthy"), "{}", text(&out));

    let out = flotilla(&url, &["scale", &d.name, "gb-lon", "7"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("min 1 and max 3"), "{}", text(&out));

    let out = flotilla(
        &url,
        &["scaling", "pause", &d.name, "gb-lon", "--reason", "maintenance"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = flotilla(&url, &["scaling", "show", &d.name]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("3 webservers (3 healthy), desired 3 within 1..=3")
            && shown.contains("PAUSED (maintenance)"),
        "{shown}"
    );
    assert!(shown.contains("successful"), "the scale-out's activity: {shown}");
    let out = flotilla(&url, &["scaling", "protect", &d.name, "gb-lon", "machine-1"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&flotilla(&url, &["scaling", "show", &d.name]).await).contains("protected: machine-1"));
    let out = flotilla(&url, &["scaling", "unprotect", &d.name, "gb-lon", "machine-1"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&flotilla(&url, &["scaling", "show", &d.name]).await).contains("protected:"));
    let out = flotilla(&url, &["scaling", "resume", &d.name, "gb-lon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = flotilla(&url, &["scaling", "show", &d.name, "gb-lon", "-o", "json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["regions"][0]["paused"].is_null(), "{json}");

    // The operator's top-level commands: pause and resume, protect a machine by its name, replace one,
    // ask every service why, reconcile now.
    let out = flotilla(&url, &["pause", &d.name, "gb-lon", "--reason", "load test"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&flotilla(&url, &["scaling", "show", &d.name]).await).contains("PAUSED (load test)"));
    let out = flotilla(&url, &["resume", &d.name, "gb-lon", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["paused"].is_null() && json["region"] == "gb-lon", "{json}");
    let status: serde_json::Value =
        serde_json::from_slice(&flotilla(&url, &["status", &d.name, "-o", "json"]).await.stdout).unwrap();
    let webservers: Vec<(String, String)> = status["regions"][0]["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "webserver")
        .map(|m| {
            (
                m["resource_id"].as_str().unwrap().to_owned(),
                m["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(webservers.len(), 3, "{status}");
    let (id, name) = webservers[0].clone();
    let out = flotilla(&url, &["protect", &name]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&flotilla(&url, &["scaling", "show", &d.name]).await).contains(&format!("protected: {id}")),
        "protected by its name"
    );
    let out = flotilla(&url, &["protect", &id, "--off"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&flotilla(&url, &["scaling", "show", &d.name]).await).contains("protected:"));
    let out = flotilla(&url, &["protect", "no-such-machine"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no machine no-such-machine"),
        "{}",
        text(&out)
    );

    let out = flotilla(&url, &["replace", &id, "--timeout", "60s", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let fleet: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let now: Vec<&str> = fleet["regions"][0]["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "webserver")
        .map(|m| m["resource_id"].as_str().unwrap())
        .collect();
    assert!(!now.contains(&id.as_str()), "{id} still there: {now:?}");
    assert!(
        text(&out).contains(&format!("machine {id} replaced")),
        "{}",
        text(&out)
    );

    let out = flotilla(&url, &["why", &d.name, "gb-lon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let why = text(&out);
    assert!(why.contains("provisioner:\n  VPC"), "{why}");
    // The webservers the autoscaler added are not a surplus to the provisioner's plan.
    assert!(why.contains("machines as the spec wants: nothing to do"), "{why}");
    assert!(why.contains("autoscaler:\n  3 webservers"), "{why}");
    assert!(
        why.contains("dns: no answer"),
        "the dns service is not running: {why}"
    );
    let out = flotilla(&url, &["why", &d.name, "gb-lon", "-o", "json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["autoscaler"]["answer"]["desired"], 3, "{json}");
    assert!(json["firewall"]["unknown"].is_string(), "{json}");
    let out = flotilla(&url, &["why", &d.name, "xx-nowhere"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("its regions: gb-lon"), "{}", text(&out));
    // Status shows the region's scaling and its latest activities beside its machines.
    let out = flotilla(&url, &["status", &d.name]).await;
    let shown = text(&out);
    assert!(
        shown.contains("autoscaler: desired 3 within 1..=3, 3 webservers"),
        "{shown}"
    );
    assert!(shown.contains("successful"), "{shown}");
    let status: serde_json::Value =
        serde_json::from_slice(&flotilla(&url, &["status", &d.name, "-o", "json"]).await.stdout).unwrap();
    assert_eq!(
        status["scaling"][&d.name]["explained"]["regions"][0]["desired"], 3,
        "{status}"
    );
    let out = flotilla(&url, &["reconcile", &d.name, "gb-lon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("region(s) gb-lon"), "{}", text(&out));

    // A schedule and target tracking, shown back; a bad entry refused before anything is sent.
    let out = flotilla(
        &url,
        &[
            "scaling",
            "schedule",
            &d.name,
            "gb-lon",
            "08:00@mon,fri=3",
            "20:00=1",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = flotilla(&url, &["scaling", "schedule", &d.name, "gb-lon", "08:00"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = flotilla(&url, &["scaling", "schedule", &d.name, "gb-lon", "08:00=9"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("max 3"), "{}", text(&out));
    let out = flotilla(
        &url,
        &[
            "scaling", "track", &d.name, "gb-lon", "--metric", "cpu", "--target", "70",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&flotilla(&url, &["scaling", "show", &d.name, "gb-lon"]).await);
    assert!(
        shown.contains("schedule: 08:00 on mon,fri → 3")
            && shown.contains("schedule: 20:00 → 1")
            && shown.contains("target tracking: cpu at 70 per webserver"),
        "{shown}"
    );

    autoscaler.shutdown().await.unwrap();
    provisioner.shutdown().await.unwrap();
    sim.shutdown().await;
}
