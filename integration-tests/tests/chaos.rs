//! Whole-system chaos: every service as a process, two replicas each, PostgreSQL and the cloud simulator,
//! driven through a scenario — deploy the seed's three regions and a four-provider deployment, write and
//! delete webroot files, scale out and in, fail a reverse proxy, destroy a region — while a fault schedule
//! picked by a seed SIGKILLs replicas (one, or both of a service), restarts PostgreSQL, and injects
//! provider faults (429 storms, 5xx bursts, a region down, machine creates failing, machines that never
//! boot, a datastore down).
//! Afterwards the invariants are checked against the simulator's state, the datastores and the webroots
//! on disk ([`System::violations`]: machines, DNS, provider firewalls, the managed database's allow-list,
//! webroots, a backup asked for mid-run on every datastore), the dead-letter queue must hold only the bad
//! input the scenario injected, and no replica may have exited on its own.
//!
//! - CI runs a small sample (see [`ci_sample`]).
//! - `FLOTILLA_CHAOS_SEED=<n> FLOTILLA_CHAOS_FAULT=<kind>` replays one run.
//! - `FLOTILLA_CHAOS_SEEDS=1-50 FLOTILLA_CHAOS_FAULT=all` is the long run (RELIABILITY.md): every seed
//!   with every fault kind; a summary line per run and a table at the end.
//!
//! The secrets sweep runs after the first run of each invocation: every known secret value searched for
//! in every log line, stream message, KV revision, API answer, database row and data file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla_cloudsim::{Fault, FaultKind, Provider};
use flotilla_integration_tests::process::Rng;
use flotilla_integration_tests::system::{Expected, Options, SERVICES, System};
use flotilla_spec::{CloudProvider, Deployment, Role};

const BIN: &str = env!("CARGO_BIN_EXE_flotilla-service");

/// The kinds of fault a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// SIGKILL one replica of a service; started again a few seconds later.
    Kill,
    /// SIGKILL both replicas of a service.
    KillBoth,
    /// PostgreSQL stopped hard and started again.
    Postgres,
    /// A 429 storm at one provider.
    RateLimit,
    /// A burst of 5xx answers at one provider.
    ServerErrors,
    /// One provider region down (its API and its machines).
    RegionDown,
    /// Machine creates failing.
    FailCreates,
    /// One datastore (S3 endpoint) down.
    DatastoreDown,
    /// Machines created that never boot.
    NeverBoots,
    /// Each fault of any kind.
    Mixed,
}

const KINDS: [Kind; 10] = [
    Kind::Kill,
    Kind::KillBoth,
    Kind::Postgres,
    Kind::RateLimit,
    Kind::ServerErrors,
    Kind::RegionDown,
    Kind::FailCreates,
    Kind::DatastoreDown,
    Kind::NeverBoots,
    Kind::Mixed,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::KillBoth => "kill-both",
            Kind::Postgres => "postgres",
            Kind::RateLimit => "429",
            Kind::ServerErrors => "5xx",
            Kind::RegionDown => "region-down",
            Kind::FailCreates => "fail-creates",
            Kind::DatastoreDown => "datastore-down",
            Kind::NeverBoots => "never-boots",
            Kind::Mixed => "mixed",
        }
    }

    fn parse(s: &str) -> Vec<Kind> {
        if s == "all" {
            return KINDS.to_vec();
        }
        s.split(',')
            .map(|k| {
                *KINDS
                    .iter()
                    .find(|kind| kind.name() == k.trim())
                    .unwrap_or_else(|| {
                        panic!(
                            "FLOTILLA_CHAOS_FAULT {k:?}: one of {:?} or all",
                            KINDS.map(Kind::name)
                        )
                    })
            })
            .collect()
    }
}

/// The runs CI makes (about a minute each): seed 1 of mixed faults, seed 3 of kills. Kept small: the long
/// run is a separate command (RELIABILITY.md).
fn ci_sample() -> Vec<(u64, Kind)> {
    // Seed 3 with kills found the allow-list that waited for an expiry (RELIABILITY.md).
    vec![(1, Kind::Mixed), (3, Kind::Kill)]
}

fn runs() -> Vec<(u64, Kind)> {
    let kinds = std::env::var("FLOTILLA_CHAOS_FAULT")
        .map(|k| Kind::parse(&k))
        .unwrap_or_else(|_| vec![Kind::Mixed]);
    if let Ok(seed) = std::env::var("FLOTILLA_CHAOS_SEED") {
        let seed: u64 = seed.parse().expect("FLOTILLA_CHAOS_SEED is a number");
        return kinds.into_iter().map(|k| (seed, k)).collect();
    }
    if let Ok(range) = std::env::var("FLOTILLA_CHAOS_SEEDS") {
        let (lo, hi) = range
            .split_once('-')
            .map(|(a, b)| (a.parse::<u64>(), b.parse::<u64>()))
            .and_then(|(a, b)| Some((a.ok()?, b.ok()?)))
            .expect("FLOTILLA_CHAOS_SEEDS is a range such as 1-50");
        return (lo..=hi)
            .flat_map(|s| kinds.iter().map(move |k| (s, *k)))
            .collect();
    }
    ci_sample()
}

/// Something a fault left to undo, and when.
enum Undo {
    Start(String, usize),
    StartPostgres,
    Clear(Provider),
}

/// The fault schedule of one run: a seeded sequence of faults, each undone after a while.
struct Chaos {
    rng: Rng,
    kind: Kind,
    budget: u32,
    pending: Vec<(Instant, Undo)>,
    injected: Vec<String>,
    providers: Vec<(Provider, String)>,
    datastores: Vec<String>,
}

fn sim_provider(p: CloudProvider) -> Provider {
    match p {
        CloudProvider::Linode => Provider::Linode,
        CloudProvider::DigitalOcean => Provider::DigitalOcean,
        CloudProvider::Vultr => Provider::Vultr,
        CloudProvider::Exoscale => Provider::Exoscale,
    }
}

impl Chaos {
    fn new(seed: u64, kind: Kind, sys: &System, deployments: &[&Deployment]) -> Self {
        let mut providers = Vec::new();
        let mut datastores = Vec::new();
        for d in deployments {
            for r in &d.regions {
                providers.push((sim_provider(r.provider), r.provider_region.clone()));
                for ds in &r.datastores {
                    datastores.extend(
                        sys.sim
                            .s3_endpoints()
                            .iter()
                            .filter(|e| e.host_base().as_deref() == Some(ds.host_base.as_str()))
                            .map(|e| e.region.clone()),
                    );
                }
            }
        }
        providers.sort_by_key(|(p, r)| (p.as_str(), r.clone()));
        providers.dedup();
        datastores.sort();
        datastores.dedup();
        Self {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9).wrapping_add(kind as u64)),
            kind,
            budget: 0,
            pending: Vec::new(),
            injected: Vec::new(),
            providers,
            datastores,
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = self.rng.between(0, items.len() as u64 - 1);
        &items[usize::try_from(i).unwrap()]
    }

    fn later(&mut self, lo_ms: u64, hi_ms: u64, undo: Undo) {
        let at = Instant::now() + Duration::from_millis(self.rng.between(lo_ms, hi_ms));
        self.pending.push((at, undo));
    }

    /// Maybe injects one fault (while the phase's budget lasts), and undoes what is due.
    async fn tick(&mut self, sys: &mut System) {
        self.undo(sys, false).await;
        if self.budget == 0 || self.rng.between(0, 3) != 0 {
            return;
        }
        self.budget -= 1;
        let kind = if self.kind == Kind::Mixed {
            *self.pick(&KINDS[..KINDS.len() - 1])
        } else {
            self.kind
        };
        let what = match kind {
            Kind::Kill => {
                let service = *self.pick(&SERVICES);
                let replica = usize::try_from(self.rng.between(0, 1)).unwrap();
                sys.kill_service(service, replica).await;
                self.later(500, 5_000, Undo::Start(service.into(), replica));
                format!("SIGKILL {service} replica {replica}")
            }
            Kind::KillBoth => {
                let service = *self.pick(&SERVICES);
                for replica in 0..2 {
                    sys.kill_service(service, replica).await;
                    self.later(1_000, 8_000, Undo::Start(service.into(), replica));
                }
                format!("SIGKILL both {service} replicas")
            }
            Kind::Postgres => {
                sys.pg.kill();
                self.later(500, 4_000, Undo::StartPostgres);
                "PostgreSQL stopped hard".into()
            }
            Kind::RateLimit => {
                let (provider, _) = self.pick(&self.providers.clone()).clone();
                let secs = self.rng.between(2, 8);
                sys.fault(&Fault {
                    provider,
                    kind: FaultKind::RateLimitStorm {
                        retry_after_secs: 1,
                        duration_secs: Some(secs),
                        count: None,
                    },
                });
                format!("429 storm at {} for {secs} s", provider.as_str())
            }
            Kind::ServerErrors => {
                let (provider, _) = self.pick(&self.providers.clone()).clone();
                let count = u32::try_from(self.rng.between(3, 30)).unwrap();
                sys.fault(&Fault {
                    provider,
                    kind: FaultKind::ServerErrors { count, status: None },
                });
                format!("{count} × 5xx at {}", provider.as_str())
            }
            Kind::RegionDown => {
                let (provider, region) = self.pick(&self.providers.clone()).clone();
                sys.fault(&Fault {
                    provider,
                    kind: FaultKind::RegionDown {
                        region: region.clone(),
                    },
                });
                self.later(3_000, 12_000, Undo::Clear(provider));
                format!("region {region} of {} down", provider.as_str())
            }
            Kind::FailCreates => {
                let (provider, _) = self.pick(&self.providers.clone()).clone();
                let count = u32::try_from(self.rng.between(1, 3)).unwrap();
                sys.fault(&Fault {
                    provider,
                    kind: FaultKind::FailCreates { count },
                });
                format!("{count} machine create(s) failing at {}", provider.as_str())
            }
            Kind::NeverBoots => {
                let (provider, _) = self.pick(&self.providers.clone()).clone();
                let count = u32::try_from(self.rng.between(1, 2)).unwrap();
                sys.fault(&Fault {
                    provider,
                    kind: FaultKind::NeverBoots { count },
                });
                format!("the next {count} machine(s) at {} never boot", provider.as_str())
            }
            Kind::DatastoreDown => {
                let region = self.pick(&self.datastores.clone()).clone();
                let provider = sys
                    .sim
                    .s3_endpoints()
                    .iter()
                    .find(|e| e.region == region)
                    .map(|e| e.provider)
                    .unwrap_or(Provider::Linode);
                sys.fault(&Fault {
                    provider,
                    kind: FaultKind::DatastoreDown {
                        region: region.clone(),
                    },
                });
                self.later(2_000, 10_000, Undo::Clear(provider));
                format!("datastore {region} down")
            }
            Kind::Mixed => unreachable!("mixed picks a kind"),
        };
        eprintln!("  fault: {what}");
        self.injected.push(what);
    }

    /// Undoes what is due (everything when `all`). A killed service is started again no earlier than a
    /// stopped PostgreSQL: starting a service waits until it is ready, and a service waits for its database
    /// (`services.rs` tests that on its own), so a restart due while PostgreSQL is still down would hold
    /// back PostgreSQL's own restart.
    async fn undo(&mut self, sys: &mut System, all: bool) {
        let now = Instant::now();
        let postgres_back = self
            .pending
            .iter()
            .filter(|(_, u)| matches!(u, Undo::StartPostgres))
            .map(|(at, _)| *at)
            .max();
        let (mut due, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|(at, u)| {
                    all || (*at <= now
                        && (!matches!(u, Undo::Start(..)) || postgres_back.is_none_or(|p| p <= now)))
                });
        // PostgreSQL and the providers first, then the services.
        due.sort_by_key(|(_, u)| matches!(u, Undo::Start(..)));
        self.pending = rest;
        for (_, undo) in due {
            match undo {
                Undo::Start(service, replica) => sys.start_service(&service, replica).await,
                Undo::StartPostgres => sys.pg.start_again(),
                Undo::Clear(provider) => sys.sim.clear_faults(Some(provider)),
            }
        }
    }
}

/// Waits until `expected` holds (faults going on meanwhile), for up to `patience`; the violations left.
async fn settle(
    sys: &mut System,
    chaos: &mut Chaos,
    expected: &[Expected],
    patience: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + patience;
    let mut shown = Instant::now();
    loop {
        chaos.tick(sys).await;
        let left = sys.violations(expected).await;
        if (left.is_empty() && chaos.pending.is_empty()) || Instant::now() > deadline {
            return left;
        }
        if Instant::now() > shown + Duration::from_secs(20) {
            shown = Instant::now();
            eprintln!(
                "  waiting ({} violation(s)): {:?}",
                left.len(),
                left.iter().take(3).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The seed deployment, and a second one on all four providers (the seed with nl-ams replaced by a Vultr
/// and a DigitalOcean region), its own site name and managed database.
fn deployments() -> (Deployment, Deployment) {
    let seed = flotilla_integration_tests::templates::seed_import().deployment;
    let mut four = flotilla_integration_tests::templates::four_providers("four");
    four.website_url = format!("four-{}", seed.website_url);
    for r in &mut four.regions {
        if let Some(flotilla_spec::Dbaas::Primary { label, .. }) = &mut r.dbaas {
            *label = format!("{label}-four");
        }
    }
    (seed, four)
}

fn file(n: usize, round: usize) -> Vec<u8> {
    format!("<p>page {n}, round {round}</p>\n")
        .repeat(n + 1)
        .into_bytes()
}

struct Outcome {
    faults: Vec<String>,
    violations: Vec<String>,
    took: Duration,
}

async fn run(seed: u64, kind: Kind, sweep: bool) -> Outcome {
    let started = Instant::now();
    eprintln!(
        "chaos run: seed {seed}, faults {} (replay with FLOTILLA_CHAOS_SEED={seed} FLOTILLA_CHAOS_FAULT={})",
        kind.name(),
        kind.name()
    );
    let (seed_d, four) = deployments();
    let Some(mut sys) = System::start(Options {
        replicas: 2,
        boot: Duration::from_millis(300),
        database: Duration::from_secs(1),
        zones: vec![seed_d.dns.zone.clone()],
        nats_nodes: 1,
        bin: BIN.into(),
    })
    .await
    else {
        return Outcome {
            faults: vec![],
            violations: vec![],
            took: Duration::ZERO,
        };
    };
    sys.write_secrets_file(&[&seed_d, &four]);
    sys.start_all().await;
    let mut chaos = Chaos::new(seed, kind, &sys, &[&seed_d, &four]);
    let mut violations = Vec::new();
    let agents: Vec<String> = seed_d.regions.iter().map(|r| r.name.clone()).collect();
    let mut expect_seed = Expected {
        deployment: seed_d.clone(),
        webservers: BTreeMap::new(),
        agents: agents.clone(),
        webroot: None,
        backup: None,
        gone: Vec::new(),
    };
    let mut expect_four = Expected {
        deployment: four.clone(),
        webservers: BTreeMap::new(),
        agents: vec![],
        webroot: None,
        backup: None,
        gone: Vec::new(),
    };

    // 1. Deploy both, faults meanwhile.
    chaos.budget = 2;
    sys.deploy(&seed_d).await;
    sys.deploy(&four).await;
    for r in &agents {
        sys.start_agent(&seed_d.name, r).await;
    }
    let left = settle(
        &mut sys,
        &mut chaos,
        &[expect_seed.clone(), expect_four.clone()],
        Duration::from_secs(240),
    )
    .await;
    violations.extend(left.iter().map(|v| format!("after the deploy: {v}")));

    // 2. Files written in two regions, a scale-out, a reverse proxy failing, bad input, a backup; faults
    //    meanwhile.
    chaos.budget = 2;
    let mut files = BTreeMap::new();
    for n in 0..12 {
        let region = &agents[n % 2];
        let key = format!("pages/p{n}.html");
        let path = sys.webroot(&seed_d.name, region).join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file(n, 0)).unwrap();
        files.insert(key, file(n, 0));
    }
    let out_region = seed_d.regions[1].name.clone();
    let max = seed_d.regions[1].scaling.max.max(seed_d.regions[1].scaling.min);
    let wider = (seed_d.regions[1].scaling.initial + 1).min(max);
    sys.scale(&seed_d, &out_region, wider).await;
    expect_seed.webservers.insert(out_region.clone(), wider);
    if let Some(proxy) = sys
        .machines(&seed_d.name)
        .into_iter()
        .find(|m| m.role == Some(Role::ReverseProxy) && m.fl_region == agents[0])
    {
        sys.fault(&Fault {
            provider: proxy.provider,
            kind: FaultKind::Unhealthy {
                machine_id: proxy.id.clone(),
            },
        });
        eprintln!("  scenario: reverse proxy {} stops answering", proxy.name);
    }
    let bad = inject_bad_input(&sys, &seed_d).await;
    expect_seed.webroot = Some(files.clone());
    // A backup asked for while the faults go on (twice: a redelivery): once on every datastore.
    expect_seed.backup = Some(sys.take_backup(&seed_d, &agents[0]).await);
    let left = settle(
        &mut sys,
        &mut chaos,
        &[expect_seed.clone(), expect_four.clone()],
        Duration::from_secs(240),
    )
    .await;
    violations.extend(left.iter().map(|v| format!("after the scale-out: {v}")));

    // 3. Some files deleted and one changed, a scale-in, a region of the second deployment destroyed.
    chaos.budget = 2;
    for n in 0..4 {
        let key = format!("pages/p{n}.html");
        let _ = std::fs::remove_file(sys.webroot(&seed_d.name, &agents[2]).join(&key));
        files.remove(&key);
    }
    let key = "pages/p5.html".to_owned();
    std::fs::write(sys.webroot(&seed_d.name, &agents[2]).join(&key), file(5, 1)).unwrap();
    files.insert(key, file(5, 1));
    expect_seed.webroot = Some(files.clone());
    let narrower = seed_d.regions[1].scaling.min.max(1).min(wider);
    sys.scale(&seed_d, &out_region, narrower).await;
    expect_seed.webservers.insert(out_region.clone(), narrower);
    let gone = four
        .regions
        .iter()
        .find(|r| !r.primary && r.provider == CloudProvider::Vultr)
        .unwrap();
    sys.destroy_region(&four, &gone.name).await;
    expect_four.deployment.regions.retain(|r| r.name != gone.name);
    expect_four.gone.push(gone.clone());

    // 4. The faults end; everything must hold.
    let _ = settle(
        &mut sys,
        &mut chaos,
        &[expect_seed.clone(), expect_four.clone()],
        Duration::from_secs(30),
    )
    .await;
    chaos.budget = 0;
    chaos.undo(&mut sys, true).await;
    sys.sim.clear_faults(None);
    let left = settle(
        &mut sys,
        &mut chaos,
        &[expect_seed.clone(), expect_four.clone()],
        Duration::from_secs(240),
    )
    .await;
    violations.extend(left);
    violations.extend(sys.exited());
    for (subject, id, reason) in sys.dead_letters().await {
        if !bad.contains(&id) {
            violations.push(format!("dead letter not injected: {subject} {id}: {reason}"));
        }
    }
    if sweep {
        let found = sys.sweep_secrets(&[&seed_d, &four]).await;
        eprintln!(
            "  secrets sweep: {} known secret values, {} occurrence(s)",
            sys.secrets.len(),
            found.len()
        );
        violations.extend(found.into_iter().map(|f| format!("secret leaked: {f}")));
    }
    if !violations.is_empty() {
        diagnose(&sys).await;
        eprintln!("  logs kept in {}", sys.logs().display());
        let dir = sys.dir.path().to_path_buf();
        std::mem::forget(std::mem::replace(&mut sys.dir, tempfile::tempdir().unwrap()));
        eprintln!("  (the run's directory {} is kept)", dir.display());
    }
    sys.shutdown().await;
    Outcome {
        faults: chaos.injected,
        violations,
        took: started.elapsed(),
    }
}

/// What a failed run's output must carry, as CI keeps nothing else: the dead letters, and the last
/// warnings and errors each process logged (the services redact their own logs).
async fn diagnose(sys: &System) {
    for (subject, id, reason) in sys.dead_letters().await {
        eprintln!("  dead letter: {subject} {id}: {reason}");
    }
    let Ok(entries) = std::fs::read_dir(sys.logs()) else {
        return;
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        if lines.is_empty() {
            continue;
        }
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        eprintln!("  {name}: {} warning(s)/error(s), the last:", lines.len());
        for line in &lines[lines.len().saturating_sub(12)..] {
            let cut: String = line.chars().take(400).collect();
            eprintln!("    {cut}");
        }
    }
}

/// Two commands as a mistyping operator publishes them: each must end in the dead-letter queue, and
/// nothing else may. Returns their message ids.
async fn inject_bad_input(sys: &System, d: &Deployment) -> Vec<String> {
    let mut ids = Vec::new();
    let region = &d.regions[0].name;
    for (n, body) in [r#"{"deployment": 5}"#, "not json"].into_iter().enumerate() {
        let subj = flotilla_bus::subject::command("autoscaler", &d.name, region, "scale").unwrap();
        let mut h = async_nats::HeaderMap::new();
        h.insert(flotilla_proto::KIND_HEADER, flotilla_proto::ScaleRegion::KIND);
        h.insert(flotilla_proto::CONTENT_TYPE_HEADER, "application/json");
        let id = format!("chaos-bad-{n}");
        use flotilla_proto::Message as _;
        sys.publisher
            .publish_raw(&subj, &id, h, body.as_bytes().to_vec().into())
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_system_keeps_its_invariants_under_seeded_faults() {
    flotilla_integration_tests::init_logging();
    let mut table: BTreeMap<&str, (u32, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, (seed, kind)) in runs().into_iter().enumerate() {
        let outcome = run(seed, kind, i == 0).await;
        eprintln!(
            "chaos run: seed {seed} faults {}: {} fault(s) injected, {} violation(s), {:.0} s",
            kind.name(),
            outcome.faults.len(),
            outcome.violations.len(),
            outcome.took.as_secs_f64()
        );
        let row = table.entry(kind.name()).or_default();
        row.0 += 1;
        row.1 += outcome.faults.len();
        row.2 += outcome.violations.len();
        if !outcome.violations.is_empty() {
            failures.push(format!(
                "seed {seed} faults {} (FLOTILLA_CHAOS_SEED={seed} FLOTILLA_CHAOS_FAULT={}), faults {:?}:\n  {}",
                kind.name(),
                kind.name(),
                outcome.faults,
                outcome.violations.join("\n  ")
            ));
        }
    }
    eprintln!("| fault kind | seeds run | faults injected | invariant violations |");
    eprintln!("|---|---|---|---|");
    for (kind, (runs, faults, violations)) in &table {
        eprintln!("| {kind} | {runs} | {faults} | {violations} |");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
