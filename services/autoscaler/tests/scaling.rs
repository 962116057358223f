//! The autoscaler over a real NATS, beside the real provisioner, against the simulator:
//!
//! - scale 1 → 5 → 2: counts converge, activities tell the story, out-of-range values are refused with
//!   the bounds named, and a scale command delivered again changes nothing;
//! - a webserver whose health listener stops is reported unhealthy and replaced, once, even when the
//!   autoscaler restarts in the middle;
//! - a reverse proxy that stops answering is reported unhealthy within two intervals, and healthy again
//!   when it answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_autoscaler::settings::{Probe, Probes};
use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_cloudsim::{Fault, FaultKind, Provider, RunningSim, defaults};
use flotilla_integration_tests::{TestNats, eventually, next_generation, service_config, sim, templates};
use flotilla_proto::{
    AnyEvent, ApplyRegion, CommandMeta, ExplainScaling, MachineHealth, RegionScaling, ScaleRegion,
    ScalingActivity, ScalingStatus,
};
use flotilla_runtime::host::Running;
use flotilla_spec::Deployment;
use futures::StreamExt;

const PATIENCE: Duration = Duration::from_secs(60);

/// What the test saw on the bus.
#[derive(Default)]
struct Seen {
    health: Vec<MachineHealth>,
    activities: Vec<ScalingActivity>,
    rejected: Vec<flotilla_proto::CommandRejected>,
    replace_commands: BTreeSet<String>,
}

struct Harness {
    nats: TestNats,
    sim: RunningSim,
    dir: tempfile::TempDir,
    provisioner: Option<Running>,
    autoscaler: Option<Running>,
    client: async_nats::Client,
    publisher: Publisher,
    seen: Arc<Mutex<Seen>>,
    deployment: Deployment,
    region: String,
}

fn settings(sim: &RunningSim) -> flotilla_autoscaler::Settings {
    let probe = Probe {
        port: sim.health_port(),
        path: "/health".into(),
        interval: Duration::from_millis(250),
        timeout: Duration::from_millis(200),
        healthy_threshold: 1,
        unhealthy_threshold: 2,
        grace: Duration::from_secs(5),
        replace_after: 3,
    };
    flotilla_autoscaler::Settings {
        probe: Probes::all(probe),
        lease_ttl: Duration::from_secs(3),
        resync_interval: Duration::from_secs(1),
        drain_delay: Duration::from_millis(500),
        action_timeout: Duration::from_secs(60),
        backoff_base: Duration::from_secs(1),
        ..flotilla_autoscaler::Settings::default()
    }
}

impl Harness {
    /// One Linode region with `webservers` webservers (also its minimum), at most 5, a reverse proxy and the
    /// database machine, deployed by the provisioner; the autoscaler running beside it.
    async fn start(webservers: &str, tune: impl FnOnce(&mut flotilla_autoscaler::Settings)) -> Self {
        flotilla_integration_tests::init_logging();
        let nats = TestNats::private().await;
        let sim = sim::simulator(Duration::from_millis(50), Duration::from_millis(100)).await;
        let dir = tempfile::tempdir().unwrap();
        let import = templates::import(&[
            ("TOKEN", defaults::LINODE_TOKEN),
            ("INPARALLEL", "1"),
            ("NO_WEBSERVERS", webservers),
            ("MAX_WEBSERVERS", "5"),
        ]);
        let deployment = import.deployment.clone();
        let region = deployment.regions[0].name.clone();

        let mut config = service_config::<flotilla_provisioner::Settings>(&nats, None, &dir.path().join("p"));
        config.clouds = sim.cloud_settings();
        config.service = sim::provisioner_settings(&sim);
        let provisioner =
            flotilla_runtime::host::start(flotilla_provisioner::DEF, config, flotilla_provisioner::routes)
                .await
                .unwrap();

        let client = nats.client().await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut events = client.subscribe("flotilla.evt.>").await.unwrap();
        let mut replaces = client
            .subscribe("flotilla.cmd.provisioner.*.*.replace-machine")
            .await
            .unwrap();
        let s = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = events.next() => {
                        let Some(m) = m else { return };
                        let header = |name: &str| {
                            m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned())
                        };
                        let kind = header(flotilla_proto::KIND_HEADER);
                        let ct = header(flotilla_proto::CONTENT_TYPE_HEADER);
                        let mut seen = s.lock().unwrap();
                        match AnyEvent::decode(kind.as_deref(), ct.as_deref(), &m.payload) {
                            Ok(Some(AnyEvent::Health(h))) => seen.health.push(h),
                            Ok(Some(AnyEvent::Activity(a))) => seen.activities.push(a),
                            Ok(Some(AnyEvent::Rejected(r))) => seen.rejected.push(r),
                            _ => {}
                        }
                    }
                    m = replaces.next() => {
                        let Some(m) = m else { return };
                        let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
                        s.lock().unwrap().replace_commands.insert(id.unwrap_or_default());
                    }
                }
            }
        });
        let publisher = Publisher::new(client.clone(), PublishConfig::default());
        let mut h = Self {
            nats,
            sim,
            dir,
            provisioner: Some(provisioner),
            autoscaler: None,
            client,
            publisher,
            seen,
            deployment,
            region,
        };
        let mut s = settings(&h.sim);
        tune(&mut s);
        h.start_autoscaler(s).await;
        // Deploy.
        let apply = ApplyRegion {
            meta: CommandMeta::new("test"),
            deployment: h.deployment.clone(),
            region: h.region.clone(),
            generation: next_generation(),
        };
        h.publisher.publish_command(&apply).await.unwrap();
        let n: u32 = webservers.parse().unwrap();
        h.converged(n).await;
        h
    }

    async fn start_autoscaler(&mut self, settings: flotilla_autoscaler::Settings) {
        let mut config =
            service_config::<flotilla_autoscaler::Settings>(&self.nats, None, &self.dir.path().join("a"));
        config.service = settings;
        self.autoscaler = Some(
            flotilla_runtime::host::start(flotilla_autoscaler::DEF, config, flotilla_autoscaler::routes)
                .await
                .unwrap(),
        );
    }

    async fn explain(&self) -> RegionScaling {
        self.try_explain().await.unwrap()
    }

    async fn try_explain(&self) -> Result<RegionScaling, flotilla_bus::api::ApiError> {
        let status: ScalingStatus = flotilla_bus::api::request(
            &self.client,
            &subject::api("autoscaler", "explain").unwrap(),
            &ExplainScaling {
                deployment: self.deployment.name.clone(),
                region: Some(self.region.clone()),
            },
            Duration::from_secs(5),
        )
        .await?;
        Ok(status.regions.into_iter().next().unwrap())
    }

    /// Waits until the region has `n` webservers, all healthy, and nothing under way.
    async fn converged(&self, n: u32) -> RegionScaling {
        eventually(
            &format!("{n} healthy webservers and nothing under way"),
            PATIENCE,
            || async {
                let r = self.try_explain().await.ok()?;
                let pending = r.activities.first().is_some_and(|a| a.ended_at.is_none());
                (r.current == n && r.healthy == n && r.desired == n && !pending && r.blocked.is_none())
                    .then_some(r)
            },
        )
        .await
    }

    async fn scale(&self, desired: u32) -> ScaleRegion {
        let cmd = ScaleRegion {
            meta: CommandMeta::new("test"),
            deployment: self.deployment.name.clone(),
            region: self.region.clone(),
            desired,
        };
        self.publisher.publish_command(&cmd).await.unwrap();
        cmd
    }

    fn webservers_at_the_provider(&self) -> usize {
        self.at_the_provider("webserver").len()
    }

    /// The simulator's machines of `role` (by our marks).
    fn at_the_provider(&self, role: &str) -> Vec<flotilla_cloudsim::MachineInfo> {
        self.sim
            .machines()
            .into_iter()
            .filter(|m| {
                m.tags
                    .iter()
                    .any(|t| t.starts_with("fl-role") && t.ends_with(role))
            })
            .collect()
    }

    async fn stop(mut self) {
        if let Some(a) = self.autoscaler.take() {
            a.shutdown().await.unwrap();
        }
        if let Some(p) = self.provisioner.take() {
            p.shutdown().await.unwrap();
        }
        self.sim.shutdown().await;
    }
}

#[tokio::test]
async fn scale_one_to_five_to_two_converges_and_refuses_what_is_out_of_bounds() {
    let h = Harness::start("1", |_| {}).await;
    let five = h.scale(5).await;
    let r = h.converged(5).await;
    assert_eq!((r.min, r.max), (1, 5));
    assert_eq!(h.webservers_at_the_provider(), 5, "{:?}", h.sim.machines());
    let done = &r.activities[0];
    assert_eq!(done.status, "successful", "{r:?}");
    assert!(done.cause.contains("desired count 5"), "{done:?}");

    // Out of bounds: refused, with the bounds named; nothing changes.
    let too_many = h.scale(9).await;
    let rejection = eventually("the rejection of 9", PATIENCE, || async {
        let seen = h.seen.lock().unwrap();
        seen.rejected
            .iter()
            .find(|r| r.command_id.as_deref() == Some(&too_many.meta.id.to_string()))
            .cloned()
    })
    .await;
    assert!(
        rejection.error.contains("min 1") && rejection.error.contains("max 5"),
        "{rejection:?}"
    );

    h.scale(2).await;
    let r = h.converged(2).await;
    assert_eq!(h.webservers_at_the_provider(), 2);
    assert_eq!(r.activities[0].status, "successful");
    assert!(r.activities[0].message.contains("destroyed"), "{r:?}");
    // The machines scaled in were drained first: reported unhealthy ("draining") before they went.
    assert!(
        h.seen
            .lock()
            .unwrap()
            .health
            .iter()
            .filter(|e| e.reason.contains("draining"))
            .count()
            == 3
    );

    // The earlier scale to 5, delivered again (under another message id, past de-duplication): no change.
    h.publisher
        .publish(&subject::command_for(&five).unwrap(), "a-late-copy", &five)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = h.converged(2).await;
    assert_eq!(r.desired, 2, "a redelivered command changes nothing twice");
    // The story, in activities: out to 5, in to 2.
    let story: Vec<(String, String)> = r
        .activities
        .iter()
        .rev()
        .map(|a| (a.cause.clone(), a.status.clone()))
        .collect();
    assert_eq!(story.len(), 2, "{story:?}");
    h.stop().await;
}

#[tokio::test]
async fn an_unhealthy_webserver_is_replaced_once_across_a_restart() {
    let mut h = Harness::start("2", |_| {}).await;
    let fleet = h.explain().await;
    assert_eq!(fleet.current, 2);
    let victim = h
        .at_the_provider("webserver")
        .into_iter()
        .next()
        .expect("a webserver at the provider");
    h.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::Unhealthy {
            machine_id: victim.id.clone(),
        },
    });
    // Reported unhealthy, then a replacement is under way: restart the autoscaler now.
    eventually("the replacement under way", PATIENCE, || async {
        let r = h.explain().await;
        r.activities
            .first()
            .filter(|a| a.ended_at.is_none() && a.cause.contains("unhealthy"))
            .cloned()
    })
    .await;
    h.autoscaler.take().unwrap().shutdown().await.unwrap();
    let s = settings(&h.sim);
    h.start_autoscaler(s).await;
    let r = h.converged(2).await;
    assert!(
        h.sim.machines().iter().all(|m| m.id != victim.id),
        "the dead webserver is destroyed"
    );
    {
        let seen = h.seen.lock().unwrap();
        assert_eq!(
            seen.replace_commands.len(),
            1,
            "one replacement: {:?}",
            seen.replace_commands
        );
        assert!(seen.health.iter().any(|e| !e.healthy && e.role == "webserver"));
    }
    assert!(
        r.activities
            .iter()
            .any(|a| a.cause.contains("unhealthy") && a.status == "successful"),
        "{r:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_reverse_proxy_that_stops_answering_is_reported_and_recovers() {
    // Reverse proxies are watched, not replaced, here.
    let h = Harness::start("1", |s| s.probe.reverse_proxy.replace_after = 0).await;
    let proxy = eventually("a reverse proxy at the provider", PATIENCE, || async {
        h.at_the_provider("reverse-proxy").into_iter().next()
    })
    .await;
    eventually("the proxy healthy", PATIENCE, || async {
        h.seen
            .lock()
            .unwrap()
            .health
            .iter()
            .any(|e| e.role == "reverse-proxy" && e.healthy)
            .then_some(())
    })
    .await;
    let before = h.seen.lock().unwrap().health.len();
    let stopped = std::time::Instant::now();
    h.sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::Unhealthy {
            machine_id: proxy.id.clone(),
        },
    });
    let unhealthy = eventually("the proxy reported unhealthy", PATIENCE, || async {
        h.seen.lock().unwrap().health[before..]
            .iter()
            .find(|e| e.role == "reverse-proxy" && !e.healthy)
            .cloned()
    })
    .await;
    // Two failed checks at the interval, plus one interval of slack for where in its cycle it stopped.
    println!("unhealthy after {:?}: {unhealthy:?}", stopped.elapsed());
    assert!(unhealthy.failures >= 2, "{unhealthy:?}");
    assert!(!unhealthy.reason.is_empty());
    h.sim.clear_faults(None);
    eventually("the proxy healthy again", PATIENCE, || async {
        h.seen.lock().unwrap().health[before..]
            .iter()
            .any(|e| e.role == "reverse-proxy" && e.healthy)
            .then_some(())
    })
    .await;
    // Nothing was replaced.
    assert!(h.seen.lock().unwrap().replace_commands.is_empty());
    h.stop().await;
}
