//! Bad input published by hand, for every command kind, to the five services running together:
//!
//! - a wrong type and a missing field (as a mistyped `nats pub` makes them), a body that is not JSON, and a
//!   kind no service has;
//! - a body over the size limit ([`flotilla_proto::MAX_MESSAGE_BYTES`]), up to what NATS carries at all;
//! - a valid body on a subject naming another deployment, another region or another verb;
//! - a valid body for a deployment nobody deployed.
//!
//! Each ends in its service's dead-letter queue on its first delivery, with a reason that says what is
//! wrong, is announced as a rejection, and every service is still serving afterwards.
//!
//! The valid bodies are those of the README's hand-published examples of every kind (`flotilla_cmd`), copied
//! here (the CLI's README test checks the README's own decode); the apply, whose body the README builds with
//! `jq`, carries the seed deployment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flotilla_bus::{PublishConfig, Publisher, Topology, TopologyConfig, subject};
use flotilla_integration_tests::{TestNats, init_logging, service_config, templates};
use flotilla_proto::{CommandMeta, MAX_MESSAGE_BYTES, Message};
use flotilla_runtime::host::{self, Running};
use futures::StreamExt;
use serde_json::json;

/// Every command kind, by its `Flotilla-Kind`.
const KINDS: [&str; 18] = [
    flotilla_proto::ApplyRegion::KIND,
    flotilla_proto::DestroyRegion::KIND,
    flotilla_proto::CreateMachines::KIND,
    flotilla_proto::DestroyMachine::KIND,
    flotilla_proto::ReplaceMachine::KIND,
    flotilla_proto::ReconcileRegion::KIND,
    flotilla_proto::ScaleRegion::KIND,
    flotilla_proto::PauseScaling::KIND,
    flotilla_proto::ResumeScaling::KIND,
    flotilla_proto::ProtectMachine::KIND,
    flotilla_proto::SetSchedule::KIND,
    flotilla_proto::SetTargetTracking::KIND,
    flotilla_proto::FailoverAuthenticator::KIND,
    flotilla_proto::ReconcileRecords::KIND,
    flotilla_proto::ReconcileFirewalls::KIND,
    flotilla_proto::ReconcileSync::KIND,
    flotilla_proto::TakeBackup::KIND,
    flotilla_proto::RestoreBackup::KIND,
];

/// The deployment and region the commands name. Nobody deploys it: every check these tests reach comes
/// before a handler would look it up.
const DEPLOYMENT: &str = "www-example-com";
const REGION: &str = "gb-lon";

/// NATS's default `max_payload`: the most a publication (headers and body) can be.
const NATS_MAX_PAYLOAD: usize = 1024 * 1024;

/// The most headers JetStream stores with a message (NATS error 10097 beyond).
const JETSTREAM_MAX_HEADERS: usize = 64 * 1024;

/// A valid command of `kind` for `region` of `deployment`, as the JSON an operator publishes: the fields of
/// the README's example of the kind, with a fresh `meta`.
fn valid_command(kind: &str, deployment: &str, region: &str) -> serde_json::Value {
    let meta = CommandMeta::new("ops:readme");
    if kind == flotilla_proto::ApplyRegion::KIND {
        let mut spec = templates::seed_import().deployment;
        spec.name = deployment.to_owned();
        let apply = flotilla_proto::ApplyRegion {
            meta,
            deployment: spec,
            region: region.to_owned(),
            generation: 1,
        };
        return serde_json::to_value(apply).unwrap();
    }
    let own = match kind {
        "provisioner.destroy.v1" => json!({"generation": 3}),
        "provisioner.create-machines.v1" => json!({"role": "webserver", "count": 1}),
        "provisioner.destroy-machine.v1" | "provisioner.replace-machine.v1" => {
            json!({"resource_id": "5c1e9a03b7d2"})
        }
        "autoscaler.scale.v1" => json!({"desired": 3}),
        "autoscaler.pause.v1" => json!({"reason": "load test"}),
        "autoscaler.protect.v1" => json!({"resource_id": "5c1e9a03b7d2", "protected": true}),
        "autoscaler.schedule.v1" => json!({"entries": [
            {"at": "08:00", "days": ["mon", "tue", "wed", "thu", "fri"], "desired": 4},
            {"at": "20:00", "desired": 1},
        ]}),
        "autoscaler.track.v1" => json!({"policy": {
            "metric": "cpu", "target": 60, "scale_out_cooldown_secs": 120,
            "scale_in_cooldown_secs": 600, "warmup_secs": 300,
        }}),
        "sync.backup.v1" => json!({"period": "manual"}),
        "sync.restore.v1" => json!({"from": "linode", "at": "2026-12-06T02:00:00Z"}),
        _ => json!({}),
    };
    let mut body = json!({"meta": meta, "deployment": deployment, "region": region});
    body.as_object_mut()
        .unwrap()
        .extend(own.as_object().unwrap().clone());
    body
}

/// The subject a command of `kind` travels on.
fn subject_of(kind: &str, deployment: &str, region: &str) -> String {
    let (service, verb) = flotilla_proto::command_parts(kind).unwrap();
    subject::command(service, deployment, region, verb).unwrap()
}

/// A message's `Flotilla-Kind` and, when given, `Content-Type` headers.
fn headers(kind: &str, content_type: Option<&str>) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert(flotilla_proto::KIND_HEADER, kind);
    if let Some(ct) = content_type {
        h.insert(flotilla_proto::CONTENT_TYPE_HEADER, ct);
    }
    h
}

/// What a bad command must come back with, by its message id: its dead letter's reason holds every one of
/// these texts.
type Expected = BTreeMap<String, Vec<String>>;

/// One dead letter, as read back from the DLQ stream.
#[derive(Debug)]
struct Letter {
    error: String,
    deliveries: Option<String>,
    truncated: Option<String>,
    headers_dropped: Option<String>,
    body_len: usize,
}

/// The five services started in-process on one NATS, with a client watching what they refuse.
struct System {
    nats: TestNats,
    _dir: tempfile::TempDir,
    services: Vec<Running>,
    client: async_nats::Client,
    publisher: Publisher,
    rejections: async_nats::Subscriber,
}

impl System {
    /// Starts the services, with a secrets file holding the seed deployment's credentials (and nobody
    /// else's).
    async fn start() -> Self {
        init_logging();
        let nats = TestNats::private().await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets.toml");
        templates::seed_import()
            .secrets_file()
            .write_to(&secrets)
            .unwrap();
        macro_rules! start {
            ($krate:ident) => {{
                let mut config = service_config(&nats, None, &dir.path().join($krate::DEF.name));
                config.secrets_file = Some(secrets.clone());
                host::start($krate::DEF, config, $krate::routes)
                    .await
                    .unwrap()
            }};
        }
        let services = vec![
            start!(flotilla_provisioner),
            start!(flotilla_dns),
            start!(flotilla_firewall),
            start!(flotilla_sync),
            start!(flotilla_autoscaler),
        ];
        let client = nats.client().await;
        Topology::ensure(&client, &TopologyConfig::default())
            .await
            .unwrap();
        let publisher = Publisher::new(client.clone(), PublishConfig::default());
        let rejections = client.subscribe("flotilla.evt.command.>").await.unwrap();
        client.flush().await.unwrap();
        Self {
            nats,
            _dir: dir,
            services,
            client,
            publisher,
            rejections,
        }
    }

    /// Publishes `body` as it is on `subject`, with message id `id`.
    async fn publish(&self, subject: &str, id: &str, headers: async_nats::HeaderMap, body: Vec<u8>) {
        self.publisher
            .publish_raw(subject, id, headers, body.into())
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }

    /// Publishes a command of `kind` in JSON, as `nats pub` does.
    async fn publish_json(&self, subject: &str, id: &str, kind: &str, body: &serde_json::Value) {
        let body = serde_json::to_vec(body).unwrap();
        self.publish(subject, id, headers(kind, Some("application/json")), body)
            .await;
    }

    /// Waits until every message of `expected` is dead-lettered, and checks each one: its reason, refused
    /// on its first delivery (not retried), announced as a rejection. Then checks every service is still
    /// ready and stops them. The dead letters, by message id.
    async fn expect_refused(self, expected: &Expected) -> BTreeMap<String, Letter> {
        let letters = self.dead_letters(expected.len()).await;
        let mut wrong = Vec::new();
        for (id, texts) in expected {
            match letters.get(id) {
                Some(letter) if texts.iter().all(|t| letter.error.contains(t.as_str())) => {
                    if letter.deliveries.as_deref() != Some("1") {
                        wrong.push(format!(
                            "{id}: refused after {:?} deliveries, not at once",
                            letter.deliveries
                        ));
                    }
                }
                other => wrong.push(format!(
                    "{id}: wanted {texts:?}, got {:?}",
                    other.map(|l| &l.error)
                )),
            }
        }
        assert!(
            wrong.is_empty(),
            "dead letters without their reason:\n{}",
            wrong.join("\n")
        );
        assert_eq!(
            letters.len(),
            expected.len(),
            "a dead letter nobody sent: {:?}",
            letters
                .keys()
                .filter(|k| !expected.contains_key(*k))
                .collect::<Vec<_>>()
        );

        // Each announced as a rejection (a client waiting for its command hears why).
        let mut rejections = self.rejections;
        let mut announced = BTreeSet::new();
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while announced.len() < expected.len() {
                let Some(msg) = rejections.next().await else { break };
                if let Some(flotilla_proto::AnyEvent::Rejected(r)) = flotilla_bus::decode_event(&msg)
                    && let Some(id) = r.command_id
                {
                    announced.insert(id);
                }
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "not announced: {:?}",
            expected
                .keys()
                .filter(|k| !announced.contains(*k))
                .collect::<Vec<_>>()
        );

        // And every service still serving.
        for s in &self.services {
            let ready = format!("http://{}/ready", s.admin_addr.unwrap());
            let r = reqwest::get(&ready).await.unwrap();
            assert!(r.status().is_success(), "{ready}: {}", r.status());
        }
        for s in self.services {
            s.shutdown().await.unwrap();
        }
        drop(self.nats);
        letters
    }

    /// The dead letters, once there are at least `want` (or a minute has passed: the check then says which
    /// are missing).
    async fn dead_letters(&self, want: usize) -> BTreeMap<String, Letter> {
        let js = async_nats::jetstream::new(self.client.clone());
        let dlq = js.get_stream(flotilla_bus::topology::DLQ_STREAM).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut found = BTreeMap::new();
            let mut at = 1;
            while let Ok(m) = dlq
                .raw_message_builder()
                .sequence(at)
                .next_by_subject(subject::DLQ_WILDCARD.to_owned())
                .send()
                .await
            {
                at = m.sequence + 1;
                let header = |name| flotilla_bus::header(Some(&m.headers), name);
                if let (Some(id), Some(error)) = (
                    header(flotilla_bus::DLQ_MSG_ID_HEADER),
                    header(flotilla_bus::DLQ_ERROR_HEADER),
                ) {
                    let letter = Letter {
                        error,
                        deliveries: header(flotilla_bus::DLQ_DELIVERIES_HEADER),
                        truncated: header(flotilla_bus::consume::DLQ_TRUNCATED_HEADER),
                        headers_dropped: header(flotilla_bus::DLQ_HEADERS_DROPPED_HEADER),
                        body_len: m.payload.len(),
                    };
                    found.insert(id, letter);
                }
            }
            if found.len() >= want || tokio::time::Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_of_every_kind_are_dead_lettered_with_their_reason_and_nothing_stops() {
    let system = System::start().await;
    let mut expected = Expected::new();
    let meta = serde_json::to_value(CommandMeta::new("ops:typo")).unwrap();
    for kind in KINDS {
        let subj = subject_of(kind, DEPLOYMENT, REGION);
        // The deployment as a number: the first field read is the wrong one.
        let id = format!("wrong-type-{kind}");
        let body = json!({"deployment": 5, "region": REGION, "meta": meta});
        system.publish_json(&subj, &id, kind, &body).await;
        expected.insert(id, vec![format!("invalid {kind} (json) at `deployment`")]);
        // Nothing but the metadata: no deployment, no region, nothing the kind needs besides.
        let id = format!("missing-{kind}");
        system
            .publish_json(&subj, &id, kind, &json!({"meta": meta}))
            .await;
        expected.insert(id, vec!["missing field".to_owned()]);
        // Not JSON at all, though it says so.
        let id = format!("not-json-{kind}");
        let body = b"{deployment: www".to_vec();
        system
            .publish(&subj, &id, headers(kind, Some("application/json")), body)
            .await;
        expected.insert(id, vec![format!("invalid {kind} (json)")]);
    }
    // A kind nobody has, on each service's subjects.
    for service in ["provisioner", "dns", "firewall", "sync", "autoscaler"] {
        let subj = subject::command(service, DEPLOYMENT, REGION, "launch").unwrap();
        let kind = format!("{service}.launch.v1");
        let id = format!("unknown-kind-{service}");
        system
            .publish(&subj, &id, headers(&kind, None), b"{}".to_vec())
            .await;
        expected.insert(id, vec![format!("unknown message kind \"{kind}\"")]);
    }
    system.expect_refused(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_commands_of_every_kind_are_dead_lettered_naming_the_size_limit() {
    let system = System::start().await;

    // The services' own publisher refuses to send what no service would read.
    let mut pause = serde_json::from_value::<flotilla_proto::PauseScaling>(valid_command(
        flotilla_proto::PauseScaling::KIND,
        DEPLOYMENT,
        REGION,
    ))
    .unwrap();
    pause.reason = "x".repeat(MAX_MESSAGE_BYTES);
    let refused = system
        .publisher
        .publish_command(&pause)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("cannot send a autoscaler.pause.v1 of")
            && refused.contains(&format!(
                "bytes (msgpack): it is over the {MAX_MESSAGE_BYTES}-byte limit"
            )),
        "{refused}"
    );

    // By hand, a body of every kind as big as NATS carries (its few headers fit beside it, a dead letter's
    // would not): a valid command padded out in JSON, or bytes labelled MessagePack. Either is refused
    // before it is parsed.
    let size = NATS_MAX_PAYLOAD - 256;
    let mut expected = Expected::new();
    for (i, kind) in KINDS.into_iter().enumerate() {
        let id = format!("oversize-{kind}");
        let (content_type, body) = if i % 2 == 0 {
            let mut body = valid_command(kind, DEPLOYMENT, REGION);
            body["padding"] = json!("");
            let pad = size - serde_json::to_vec(&body).unwrap().len();
            body["padding"] = json!("x".repeat(pad));
            ("application/json", serde_json::to_vec(&body).unwrap())
        } else {
            ("application/msgpack", vec![0xc0; size])
        };
        assert_eq!(body.len(), size);
        let subj = subject_of(kind, DEPLOYMENT, REGION);
        system
            .publish(&subj, &id, headers(kind, Some(content_type)), body)
            .await;
        expected.insert(
            id,
            vec![format!(
                "a {kind} of {size} bytes is over the {MAX_MESSAGE_BYTES}-byte limit of a message"
            )],
        );
    }
    let letters = system.expect_refused(&expected).await;
    // Each dead letter keeps the first MAX_MESSAGE_BYTES of the body, and says how long it was.
    for (id, letter) in &letters {
        assert_eq!(letter.body_len, MAX_MESSAGE_BYTES, "{id}");
        assert_eq!(letter.truncated, Some(size.to_string()), "{id}");
    }
}

/// Headers as big as JetStream stores (64 KiB) on a bad command: kept whole beside the dead letter's own
/// (its reason alone up to 1 KiB), they would be over that limit, the dead letter could never be stored,
/// and the message would be handed back forever. The dead letter keeps the first 32 KiB of the headers
/// and counts the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_of_every_kind_with_oversize_headers_are_dead_lettered_with_their_headers_cut() {
    let system = System::start().await;
    let mut expected = Expected::new();
    for kind in KINDS {
        let id = format!("huge-headers-{kind}");
        let body = serde_json::to_vec(&json!({"deployment": 5, "region": REGION})).unwrap();
        let mut h = headers(kind, Some("application/json"));
        // Filled to 100 bytes short of the limit (as NATS counts them: `NATS/1.0\r\n`, a
        // `Name: value\r\n` line each, a blank line): less than any dead letter's own headers take.
        let line = |name: &str, value: &str| name.len() + 2 + value.len() + 2;
        let mut size = 10
            + 2
            + line(flotilla_proto::KIND_HEADER, kind)
            + line(flotilla_proto::CONTENT_TYPE_HEADER, "application/json")
            + line("Nats-Msg-Id", &id);
        let target = JETSTREAM_MAX_HEADERS - 100;
        for i in 0.. {
            let name = format!("X-Padding-{i:04}");
            let room = target - size;
            if room < name.len() + 5 {
                break;
            }
            let value = "v".repeat((room - name.len() - 4).min(1000));
            size += line(&name, &value);
            h.insert(name.as_str(), value.as_str());
        }
        system
            .publish(&subject_of(kind, DEPLOYMENT, REGION), &id, h, body)
            .await;
        expected.insert(id, vec![format!("invalid {kind} (json) at `deployment`")]);
    }
    let letters = system.expect_refused(&expected).await;
    for (id, letter) in &letters {
        let dropped: usize = letter
            .headers_dropped
            .as_deref()
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("{id}: no count of dropped headers"));
        assert!(dropped > 25, "{id}: only {dropped} dropped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_of_every_kind_whose_subject_disagrees_with_their_body_are_dead_lettered() {
    let system = System::start().await;
    let mut expected = Expected::new();
    for kind in KINDS {
        let (service, verb) = flotilla_proto::command_parts(kind).unwrap();
        let body = valid_command(kind, DEPLOYMENT, REGION);
        // The body names www-example-com gb-lon; the subject another deployment, or another region.
        for (case, deployment, region) in [
            ("deployment", "someone-else", REGION),
            ("region", DEPLOYMENT, "nl-ams"),
        ] {
            let id = format!("other-{case}-{kind}");
            system
                .publish_json(&subject_of(kind, deployment, region), &id, kind, &body)
                .await;
            expected.insert(
                id,
                vec![format!(
                    "disagrees with its body: it names deployment \"{deployment}\" region \"{region}\", the \
                     body deployment \"{DEPLOYMENT}\" region \"{REGION}\""
                )],
            );
        }
        // Another verb of the same service (the firewall has one: a made-up one).
        let other = KINDS
            .iter()
            .filter_map(|k| flotilla_proto::command_parts(k))
            .find(|(s, v)| *s == service && *v != verb)
            .map_or("open", |(_, v)| v);
        let id = format!("other-verb-{kind}");
        let subj = subject::command(service, DEPLOYMENT, REGION, other).unwrap();
        system.publish_json(&subj, &id, kind, &body).await;
        expected.insert(
            id,
            vec![format!(
                "disagrees with its body: it says verb \"{other}\", the body is a {kind} command (verb \
                 \"{verb}\")"
            )],
        );
    }
    system.expect_refused(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_of_every_kind_for_a_deployment_nobody_deployed_are_refused_by_name() {
    let system = System::start().await;
    const NOBODY: &str = "never-deployed";
    let not_deployed = format!("region {REGION} of deployment {NOBODY} is not deployed");
    let never_applied = format!("region {REGION} of deployment {NOBODY} has never been applied");
    let deployment_not_deployed = format!("deployment {NOBODY} is not deployed");
    let mut expected = Expected::new();
    for kind in KINDS {
        let reason = match kind {
            // An apply is how a deployment starts (it carries the spec, and a generation newer than any
            // stored becomes the desired state), so it is not refused for being new: it is refused for
            // having no credentials, before anything is recorded.
            "provisioner.apply.v1" => {
                format!("the secrets file has no credentials for region {REGION} of deployment {NOBODY}")
            }
            "provisioner.destroy.v1" => {
                format!("deployment {NOBODY} has no region {REGION}: it was never deployed")
            }
            "provisioner.create-machines.v1"
            | "provisioner.destroy-machine.v1"
            | "provisioner.replace-machine.v1"
            | "provisioner.reconcile.v1" => never_applied.clone(),
            "dns.failover.v1" | "sync.backup.v1" | "sync.restore.v1" => deployment_not_deployed.clone(),
            // The autoscaler's six, and the dns, firewall and sync reconciles.
            _ => not_deployed.clone(),
        };
        let id = format!("nobody-{kind}");
        let body = valid_command(kind, NOBODY, REGION);
        system
            .publish_json(&subject_of(kind, NOBODY, REGION), &id, kind, &body)
            .await;
        expected.insert(id, vec![reason]);
    }
    system.expect_refused(&expected).await;
}

/// A deployment of 20 regions with every field filled: the largest spec an apply (and the desired state)
/// carries. Built from the seed's three regions, each filled out to the most an operator writes.
fn twenty_regions() -> flotilla_spec::Deployment {
    use flotilla_spec::{
        ApplicationRepository, Dbaas, EmailProvider, EmailSettings, ExtraPort, RepositoryProvider, Role,
    };
    let mut d = templates::seed_import().deployment;
    d.multi_region = true;
    d.application.php_version = Some("8.4".into());
    d.application.repository = Some(ApplicationRepository {
        provider: RepositoryProvider::Github,
        owner: "codetesters-applications".into(),
        username: "codetesters-deploy-bot".into(),
    });
    d.email = Some(EmailSettings {
        provider: EmailProvider::Ses,
        to_address: "operations-alerts@codetesters.uk".into(),
        from_address: "flotilla-notifications@codetesters.uk".into(),
        notification_level: "MANDATORY".into(),
    });
    let seed = d.regions.clone();
    let datastores: Vec<_> = seed.iter().flat_map(|r| r.datastores.clone()).collect();
    let primary_dbaas = seed.iter().find_map(|r| match &r.dbaas {
        Some(Dbaas::Primary { .. }) => r.dbaas.clone(),
        _ => None,
    });
    d.regions = (0..20)
        .map(|i| {
            let mut r = seed[i % seed.len()].clone();
            r.name = format!("{}-{i:02}", r.name);
            r.build_identifier = format!("codetesters-production-{}", r.name);
            r.primary = i == 0;
            r.account_id = Some("codetesters-production-account".into());
            r.vpc.name = format!("codetesters-production-vpc-{}", r.name);
            r.directories_to_mount = (1..=8)
                .map(|n| format!("wp-content/uploads/site-{n}/media"))
                .collect();
            r.datastores = datastores.iter().cycle().take(3).cloned().collect();
            r.extra_ports = [Role::Webserver, Role::ReverseProxy, Role::Database]
                .into_iter()
                .cycle()
                .take(6)
                .enumerate()
                .map(|(n, role)| ExtraPort {
                    role,
                    protocol: "tcp".into(),
                    port: 8080 + u16::try_from(n).unwrap(),
                    to_port: Some(8180),
                    sources: (0..4)
                        .map(|s| format!("203.0.{s}.0/24").parse().unwrap())
                        .collect(),
                })
                .collect();
            r.dbaas = if i == 0 {
                primary_dbaas.clone().map(|mut p| {
                    if let Dbaas::Primary {
                        vpc_id, subnet_id, ..
                    } = &mut p
                    {
                        *vpc_id = Some("vpc-0123456789abcdef".into());
                        *subnet_id = Some("subnet-0123456789abcdef".into());
                    }
                    p
                })
            } else {
                Some(Dbaas::Secondary {
                    public_endpoint: "a123456-akamai-prod-1234567-default.g2a.akamaidb.net".into(),
                })
            };
            r
        })
        .collect();
    d
}

/// The fleet of the scale goal, 20 regions of 50 webservers (plus each region's two reverse proxies,
/// authenticator, autoscaler and database: 1,100 machines), as `flotilla.api.provisioner.machines` answers
/// it, the machines named as the provisioner names them (up to 63 characters).
fn thousand_webservers(deployment: &flotilla_spec::Deployment) -> flotilla_proto::Fleet {
    use flotilla_spec::Role;
    let roles = std::iter::repeat_n(Role::Webserver, 50).chain([
        Role::ReverseProxy,
        Role::ReverseProxy,
        Role::Authenticator,
        Role::Autoscaler,
        Role::Database,
    ]);
    let regions = deployment
        .regions
        .iter()
        .enumerate()
        .map(|(r, region)| flotilla_proto::RegionView {
            deployment: deployment.name.clone(),
            region: region.name.clone(),
            provider: region.provider.as_str().into(),
            primary: region.primary,
            status: "applied".into(),
            detail: None,
            vpc_id: Some("vpc-0123456789abcdef".into()),
            machines: roles
                .clone()
                .enumerate()
                .map(|(n, role)| {
                    let resource_id = format!("{:012x}", 0x5c1e_9a03_0000 + r * 100 + n);
                    flotilla_proto::MachineView {
                        name: flotilla_provisioner::plan::machine_name(role, region, &resource_id),
                        resource_id,
                        role: role.as_str().into(),
                        size: "g6-standard-2".into(),
                        state: "healthy".into(),
                        provider_id: Some(format!("{}", 60_000_000 + r * 100 + n)),
                        public_ipv4: Some(format!("203.0.{r}.{n}")),
                        private_ipv4: Some(format!("10.0.{r}.{n}")),
                    }
                })
                .collect(),
            dbaas: None,
        })
        .collect();
    flotilla_proto::Fleet { regions }
}

/// The limit leaves a wide margin over the largest real messages: an apply (and the desired state) of a
/// 20-region deployment with every field filled, and the largest answer there is, the machines of the scale
/// goal. The figures printed are the ones `MAX_MESSAGE_BYTES`'s documentation gives.
#[test]
fn the_largest_real_messages_fit_the_size_limit_with_a_wide_margin() {
    use flotilla_proto::{Encoding, encode};
    let deployment = twenty_regions();
    if let Err(e) = deployment.check() {
        panic!("the 20-region deployment is not valid: {e}");
    }
    let apply = flotilla_proto::ApplyRegion {
        meta: CommandMeta::new("cli:operations-engineer@build-host.codetesters.uk"),
        region: deployment.regions[0].name.clone(),
        deployment: deployment.clone(),
        generation: 1_000_000,
    };
    let desired = flotilla_proto::DesiredDeployment {
        generation: 1_000_000,
        deployment,
        updated_at: chrono::Utc::now(),
        updated_by: "cli:operations-engineer@build-host.codetesters.uk".into(),
    };
    let fleet = thousand_webservers(&desired.deployment);
    let mut sizes = Vec::new();
    for encoding in [Encoding::Json, Encoding::MessagePack] {
        let apply = encode(&apply, encoding).unwrap().len();
        let desired = encode(&desired, encoding).unwrap().len();
        let fleet = encode(&fleet, encoding).unwrap().len();
        println!("{encoding:?}: apply {apply} B, desired state {desired} B, 1,100 machines {fleet} B");
        // Commands and what is kept: eight times under the limit. Answers: twice.
        sizes.push((apply, desired, fleet));
    }
    // A command, and the desired state kept of it, at most an eighth of the limit; the largest answer at
    // the scale goal at most two thirds (a deployment half as big again still gets its machines listed).
    for (apply, desired, fleet) in sizes {
        assert!(apply.max(desired) * 8 <= MAX_MESSAGE_BYTES, "{apply} / {desired}");
        assert!(fleet * 3 <= MAX_MESSAGE_BYTES * 2, "{fleet}");
    }
}
