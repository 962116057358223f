//! `flotilla dev`: all of Flotilla on one machine with no cloud account — a NATS server with JetStream, the
//! cloud simulator, and every service, with their state under `./.flotilla/`. Ctrl-C stops everything
//! cleanly; a second `flotilla dev` resumes the same state. Every deployed region gets a sync agent, as a
//! webserver would, with its webroot in `./.flotilla/webroots/<region>/`: a file written there reaches the
//! other regions' webroots. `--demo` also deploys the three-region example (the original toolkit's
//! templates, shipped in `examples/`) and shows the fleet.
//!
//! Nothing is ever sent to a real provider here: the provisioner's endpoints are the simulator's and it uses
//! the simulator's credentials whatever a template carries.
//!
//! While it runs, `<dir>/dev.json` says how to reach its NATS (other commands read it) and which processes
//! are its own: should `flotilla dev` be killed without a chance to stop its nats-server (which runs in a
//! process group of its own), the next `flotilla dev` finds that server from there and stops it first.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use flotilla_cloudsim::{RunningSim, SimConfig, Simulator};
use flotilla_runtime::ServiceConfig;
use flotilla_runtime::host::{self, Running};
use flotilla_spec::TemplateSource;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::session::{Exit, Session, exit};

/// The example deployment `--demo` deploys: the seed's three templates (secrets replaced by placeholders).
pub const EXAMPLES: [(&str, &str); 3] = [
    ("examples/gb-lon.tmpl", include_str!("../../examples/gb-lon.tmpl")),
    ("examples/nl-ams.tmpl", include_str!("../../examples/nl-ams.tmpl")),
    (
        "examples/ch-gva-2.tmpl",
        include_str!("../../examples/ch-gva-2.tmpl"),
    ),
];

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla dev --demo\n  flotilla dev\n  flotilla dev --nats-url nats://127.0.0.1:4222"
)]
pub struct Args {
    /// Also deploy the three-region example and show the fleet.
    #[arg(long)]
    demo: bool,
    /// Where the state lives.
    #[arg(long, default_value = ".flotilla")]
    dir: PathBuf,
    /// How long a simulated machine takes to boot.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    boot_delay: Duration,
    /// How long a simulated managed database takes to become ready.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    database_delay: Duration,
}

/// What `flotilla dev` records in `<dir>/dev.json` while it runs.
#[derive(Debug, Serialize, Deserialize)]
struct DevState {
    /// Its NATS.
    nats_url: String,
    /// The `flotilla dev` process.
    #[serde(default)]
    pid: u32,
    /// The nats-server it started (none when given a NATS).
    #[serde(default)]
    nats_pid: Option<u32>,
    /// That nats-server's store directory (absolute): how to recognise it among the processes.
    #[serde(default)]
    nats_store: Option<PathBuf>,
}

impl DevState {
    fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Writes it whole or not at all (a reader never sees half of it).
    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// A `nats-server` started for this session.
struct NatsChild {
    child: tokio::process::Child,
    /// Its store directory (absolute).
    store: PathBuf,
}

impl NatsChild {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(pid_from) {
            let _ = kill(pid, Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = self.child.kill().await;
            }
        }
    }
}

/// The error of a start-up cut short by Ctrl-C or SIGTERM.
fn interrupted() -> anyhow::Error {
    Exit::error(
        exit::FAILED,
        "interrupted during start-up; everything started was stopped",
    )
}

/// A token cancelled by the first Ctrl-C (SIGINT) or SIGTERM. The handlers are in place when this returns,
/// so a signal at any later point is seen (and no longer ends the process at once).
fn stop_on_signal() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        token.cancel();
    });
    Ok(stop)
}

pub async fn run(explicit_nats: Option<flotilla_bus::BusConfig>, args: Args) -> anyhow::Result<ExitCode> {
    let stop = stop_on_signal()?;
    let dir = args.dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let state_file = dir.join("dev.json");
    if let Some(previous) = DevState::read(&state_file) {
        clear_previous(&state_file, &previous, &stop).await?;
    }
    init_logging(&dir)?;
    println!(
        "flotilla dev: state in {}/ (logs in {}/dev.log)",
        dir.display(),
        dir.display()
    );

    let (nats_cfg, nats_child) = match explicit_nats {
        Some(cfg) => (cfg, None),
        None => {
            let (url, child) = start_nats(&dir, &stop).await?;
            (flotilla_bus::BusConfig::for_urls([url]), Some(child))
        }
    };
    // Recorded as soon as NATS is up, so that a `flotilla dev` killed from here on leaves a trace of the
    // nats-server it started.
    let state = DevState {
        nats_url: nats_cfg.urls.join(","),
        pid: std::process::id(),
        nats_pid: nats_child.as_ref().and_then(|c| c.child.id()),
        nats_store: nats_child.as_ref().map(|c| c.store.clone()),
    };
    let result = match state.write(&state_file) {
        Ok(()) => {
            match &nats_child {
                None => println!("  NATS        {} (given)", state.nats_url),
                Some(_) => println!(
                    "  NATS        {} (nats-server with JetStream, data in {}/nats)",
                    state.nats_url,
                    dir.display()
                ),
            }
            serve(&dir, &nats_cfg, &args, &stop).await
        }
        Err(e) => Err(e),
    };
    if let Some(child) = nats_child {
        child.stop().await;
    }
    // Unless a later `flotilla dev` has taken over (it found this one stopping): then the file is its.
    if DevState::read(&state_file).is_none_or(|s| s.pid == state.pid) {
        let _ = std::fs::remove_file(&state_file);
    }
    if result.is_ok() {
        println!(
            "flotilla dev: stopped; state kept in {}/ — `flotilla dev` resumes it",
            dir.display()
        );
    }
    result
}

/// Deals with the `dev.json` a `flotilla dev` left: refuses to start while that one runs (it is alive and
/// its NATS answers); otherwise it was killed without stopping its nats-server, which is stopped now.
async fn clear_previous(
    state_file: &Path,
    previous: &DevState,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let dev_alive = pid_from(previous.pid)
        .filter(|_| previous.pid != std::process::id())
        .is_some_and(|pid| alive(pid) && is_dev(pid));
    let answers = async {
        let cfg = flotilla_bus::BusConfig::for_urls([previous.nats_url.clone()]);
        tokio::select! {
            _ = stop.cancelled() => Err(interrupted()),
            r = flotilla_bus::connect(&cfg) => Ok(r.is_ok()),
        }
    };
    if dev_alive && answers.await? {
        return Err(Exit::error(
            exit::FAILED,
            format!(
                "flotilla dev is already running here (pid {}, NATS at {}); stop it first",
                previous.pid, previous.nats_url
            ),
        ));
    }
    let orphan = previous
        .nats_pid
        .and_then(pid_from)
        .filter(|pid| alive(*pid) && is_nats(*pid, previous.nats_store.as_deref()));
    if let Some(nats) = orphan {
        println!(
            "flotilla dev: the last flotilla dev here (pid {}) did not stop cleanly; stopping the \
             nats-server it left running (pid {nats})",
            previous.pid
        );
        stop_process(nats, stop).await?;
    }
    let _ = std::fs::remove_file(state_file);
    Ok(())
}

/// Stops process `pid` (not a child of ours): SIGTERM, then SIGKILL after 10 s.
async fn stop_process(pid: Pid, stop: &CancellationToken) -> anyhow::Result<()> {
    let _ = kill(pid, Signal::SIGTERM);
    let term_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let kill_deadline = term_deadline + Duration::from_secs(5);
    let mut killed = false;
    while alive(pid) {
        let now = tokio::time::Instant::now();
        if !killed && now >= term_deadline {
            let _ = kill(pid, Signal::SIGKILL);
            killed = true;
        }
        if now >= kill_deadline {
            return Err(anyhow!(
                "the nats-server left running by the last flotilla dev (pid {pid}) does not stop; stop it \
                 and start again"
            ));
        }
        tokio::select! {
            _ = stop.cancelled() => return Err(interrupted()),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    Ok(())
}

fn pid_from(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().filter(|p| *p > 0).map(Pid::from_raw)
}

/// Whether process `pid` exists and has not exited (a zombie, exited but not yet reaped by its parent,
/// counts as gone).
fn alive(pid: Pid) -> bool {
    if kill(pid, None).is_err() {
        return false;
    }
    // Where the system shows it (Linux), the state after the command name in parentheses.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|state| !matches!(state, 'Z' | 'X')),
        // Gone since, or a system without /proc.
        Err(_) => !Path::new("/proc/self/stat").exists(),
    }
}

/// The arguments of process `pid`, where the system shows them (Linux); `None` elsewhere.
fn arguments(pid: Pid) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Whether process `pid` is a `flotilla dev` (not another process that got the pid since).
fn is_dev(pid: Pid) -> bool {
    arguments(pid).is_none_or(|args| args.iter().skip(1).any(|a| a == "dev"))
}

/// Whether process `pid` is the nats-server with its store in `store`.
fn is_nats(pid: Pid, store: Option<&Path>) -> bool {
    match (arguments(pid), store) {
        (Some(args), Some(store)) => args.iter().any(|a| Path::new(a) == store),
        (Some(args), None) => args.iter().any(|a| a.contains("nats-server")),
        (None, _) => true,
    }
}

async fn serve(
    dir: &Path,
    nats: &flotilla_bus::BusConfig,
    args: &Args,
    stop: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let health_port = free_port()?;
    let starting = Simulator::start(SimConfig {
        boot_delay: args.boot_delay,
        database_delay: args.database_delay,
        health_port,
        state_dir: Some(dir.join("sim")),
        // The examples' zone too, so the dns service has somewhere to publish the demo's records (on
        // Cloudflare, or on a provider's DNS when a template says so).
        cloudflare_zones: vec!["example.com".into(), "codetesters.uk".into()],
        provider_zones: vec!["example.com".into(), "codetesters.uk".into()],
        ..SimConfig::default()
    });
    let sim = tokio::select! {
        _ = stop.cancelled() => return Err(interrupted()),
        sim = starting => sim.map_err(|e| anyhow!("starting the cloud simulator: {e}"))?,
    };
    println!(
        "  simulator   Linode {}, DigitalOcean {}, Vultr {}, Exoscale {}, Cloudflare {}",
        sim.linode_url(),
        sim.digitalocean_url(),
        sim.vultr_url(),
        sim.exoscale_url(),
        sim.cloudflare_url()
    );
    let services = match start_services(dir, nats, &sim, health_port, stop).await {
        Ok(s) => s,
        Err(e) => {
            sim.shutdown().await;
            return Err(e);
        }
    };
    // Sync agents follow what is deployed (the demo's deployment, or whatever `flotilla deploy` brings).
    let agents_stop = CancellationToken::new();
    let agents = tokio::spawn(run_agents(
        dir.to_owned(),
        nats.clone(),
        sim.cloud_settings(),
        agents_stop.clone(),
    ));
    println!("ready. In another terminal, from this directory:");
    println!("  flotilla deploy examples/*.tmpl    flotilla status    flotilla destroy <deployment>");
    println!("Ctrl-C stops everything.");

    let outcome = async {
        if args.demo {
            demo(nats, &dir.join("webroots")).await
        } else {
            Ok(ExitCode::SUCCESS)
        }
    };
    let mut code = ExitCode::SUCCESS;
    tokio::select! {
        r = outcome => match r {
            Ok(c) => {
                code = c;
                if args.demo {
                    println!("the demo fleet is up; `flotilla status` shows it. Ctrl-C stops everything.");
                }
                stop.cancelled().await;
            }
            Err(e) => {
                eprintln!("flotilla dev: the demo failed: {e:#}");
                code = ExitCode::from(exit::FAILED);
                stop.cancelled().await;
            }
        },
        _ = stop.cancelled() => {}
    }
    println!("flotilla dev: stopping…");
    agents_stop.cancel();
    let (_, agents) = tokio::join!(stop_all(services), agents);
    if let Err(e) = agents {
        eprintln!("  sync agents: {e}");
    }
    sim.shutdown().await;
    Ok(code)
}

/// Stops every service at once (each within its own bound: the stop takes as long as the slowest one, not
/// the sum of them), saying which did not stop cleanly.
async fn stop_all(services: Services) {
    let stops = services
        .into_iter()
        .map(|(name, running)| async move { (name, running.shutdown().await) });
    for (name, stopped) in futures::future::join_all(stops).await {
        if let Err(e) = stopped {
            eprintln!("  {name}: {e}");
        }
    }
}

/// `flotilla demo`: the demo's deploy and tour against a Flotilla already running on the simulator (the
/// one-shot container of the compose demo; `flotilla dev --demo` runs the same after starting everything).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  flotilla demo --webroots .flotilla/webroots\n  \
                        flotilla --nats-url nats://nats:4222 demo --webroots /srv/webroots")]
pub struct DemoArgs {
    /// Where the demo's sync agents keep their webroots, one directory per region.
    #[arg(long, default_value = ".flotilla/webroots")]
    webroots: PathBuf,
}

/// `flotilla demo`.
pub async fn run_demo(nats: &flotilla_bus::BusConfig, args: DemoArgs) -> anyhow::Result<ExitCode> {
    demo(nats, &args.webroots).await
}

/// Deploys the examples (to the simulator the services point at) and tours the system at work; the
/// agents' webroots are under `webroots`.
async fn demo(nats: &flotilla_bus::BusConfig, webroots: &Path) -> anyhow::Result<ExitCode> {
    let sources: Vec<TemplateSource> = EXAMPLES
        .iter()
        .map(|(name, text)| TemplateSource::new(*name, *text))
        .collect();
    let import = flotilla_spec::import_templates(&sources)
        .map_err(|d| anyhow!("the shipped examples do not import:\n{d}"))?;
    let deployment = import.deployment;
    println!(
        "demo: deploying {} ({} regions) from examples/",
        deployment.name,
        deployment.regions.len()
    );
    let session = Session::connect(nats).await?;
    use std::io::IsTerminal;
    let code = crate::deploy::deploy(
        &session,
        &deployment,
        Duration::from_secs(600),
        std::io::stderr().is_terminal(),
    )
    .await?;
    tour(&session, &deployment, webroots).await?;
    Ok(code)
}

/// How long each step of the demo's tour may take.
const TOUR_STEP: Duration = Duration::from_secs(120);

/// Polls `check` every 250 ms until it gives a value, or fails saying `what` after [`TOUR_STEP`].
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + TOUR_STEP;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(anyhow!(
                "{what}: not within {}",
                humantime::format_duration(TOUR_STEP)
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The rest of the system at work on the deployed demo, each step waited for and said: the DNS records
/// (every region's reverse proxies in round-robin), the DBaaS allow-list, a file written into the primary
/// region's webroot arriving in the others, a scale-out; then the whole `flotilla status`.
async fn tour(
    session: &Session,
    deployment: &flotilla_spec::Deployment,
    webroots: &Path,
) -> anyhow::Result<()> {
    let name = deployment.name.as_str();
    let records = until("the DNS records", async || {
        let view = crate::dns::records(session, name, Duration::from_secs(5))
            .await
            .ok()?;
        let settled = !view.names.is_empty()
            && view
                .names
                .iter()
                .all(|n| n.creates.is_empty() && n.deletes.is_empty() && !n.current.is_empty());
        settled.then_some(view)
    })
    .await?;
    for n in &records.names {
        println!(
            "demo: DNS {} → {} ({})",
            n.name,
            n.current.join(", "),
            records.provider
        );
    }
    let allowed = until("the DBaaS allow-list", async || {
        let view = crate::firewall::show(session, name, Duration::from_secs(5))
            .await
            .ok()?;
        let list = view.allow_list?;
        let settled = list.adds.is_empty() && list.removes.is_empty() && list.current.is_some();
        settled.then_some(list)
    })
    .await?;
    println!(
        "demo: the allow-list of database {} ({} {}) holds {}",
        allowed.database,
        allowed.provider,
        allowed.region,
        allowed.current.unwrap_or_default().join(", ")
    );
    let Some(primary) = deployment
        .regions
        .iter()
        .find(|r| r.primary)
        .or(deployment.regions.first())
    else {
        return Ok(());
    };
    let page = format!(
        "<p>written in {} at {}</p>\n",
        primary.name,
        chrono::Utc::now().to_rfc3339()
    );
    let written = webroots.join(&primary.name).join("demo");
    std::fs::create_dir_all(&written).context("the demo's webroot")?;
    std::fs::write(written.join("hello.html"), &page).context("the demo's page")?;
    let begun = std::time::Instant::now();
    let others: Vec<&str> = deployment
        .regions
        .iter()
        .filter(|r| r.name != primary.name)
        .map(|r| r.name.as_str())
        .collect();
    until("the page in every region's webroot", async || {
        others
            .iter()
            .all(|r| {
                std::fs::read_to_string(webroots.join(r).join("demo/hello.html"))
                    .ok()
                    .as_deref()
                    == Some(page.as_str())
            })
            .then_some(())
    })
    .await?;
    println!(
        "demo: demo/hello.html written into {}'s webroot reached {} in {} ms",
        primary.name,
        others.join(", "),
        begun.elapsed().as_millis()
    );
    let wanted = (primary.scaling.min.max(1) + 1).min(primary.scaling.max.max(1));
    let now = crate::scale::regions(session, name, Duration::from_secs(5))
        .await
        .ok()
        .and_then(|s| s.regions.into_iter().find(|r| r.region == primary.name));
    if now.as_ref().is_none_or(|r| r.desired < wanted) {
        let cmd = flotilla_proto::ScaleRegion {
            meta: flotilla_proto::CommandMeta::new(crate::session::issuer()),
            deployment: name.to_owned(),
            region: primary.name.clone(),
            desired: wanted,
        };
        flotilla_bus::Publisher::new(session.client.clone(), flotilla_bus::PublishConfig::default())
            .publish_command(&cmd)
            .await?;
        println!("demo: scaling {} out to {wanted} webservers…", primary.name);
    }
    let r = until("the scale-out", async || {
        let s = crate::scale::regions(session, name, Duration::from_secs(5))
            .await
            .ok()?;
        let r = s.regions.into_iter().find(|r| r.region == primary.name)?;
        let busy = r.activities.first().is_some_and(|a| a.ended_at.is_none());
        (r.current >= wanted && r.healthy >= wanted && !busy).then_some(r)
    })
    .await?;
    println!("demo: {} has {} webservers, all healthy", primary.name, r.current);
    // DNS and the allow-list follow the new machine: the whole picture once they have.
    let (fleet, beside) = crate::status::snapshot(session, Some(name)).await?;
    print!("{}", crate::status::render_with(&fleet, &beside));
    Ok(())
}

type Services = Vec<(&'static str, Running)>;

/// Sync agents for whatever is deployed, as on webservers: one per region of every deployment in the
/// desired state, each with its webroot in `<dir>/webroots/<region>/` (a file written into one appears in
/// the others), started when the region is deployed and stopped when it is withdrawn or `stop` is
/// cancelled. A region whose name another deployment's agent holds already keeps that one (said once).
async fn run_agents(
    dir: PathBuf,
    nats: flotilla_bus::BusConfig,
    clouds: flotilla_provisioner::clouds::CloudSettings,
    stop: CancellationToken,
) {
    use std::collections::BTreeMap;

    use flotilla_bus::state::Change;

    let mut running: BTreeMap<String, (String, Running)> = BTreeMap::new();
    let mut deployed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut said = std::collections::BTreeSet::new();
    'follow: while !stop.is_cancelled() {
        let followed = async {
            let client = flotilla_bus::connect(&nats).await?;
            let topology =
                flotilla_bus::Topology::ensure(&client, &flotilla_bus::TopologyConfig::default()).await?;
            topology.desired_states().follow(None).await
        };
        let mut follower = tokio::select! {
            () = stop.cancelled() => break,
            f = followed => match f {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("flotilla dev: the sync agents cannot follow the deployments ({e}); again in 2 s");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    }
                }
            },
        };
        // Followed anew: the deployments are delivered again up to `Current`, and what is no longer there is
        // only known then.
        deployed.clear();
        let mut snapshot = true;
        loop {
            let change = tokio::select! {
                () = stop.cancelled() => break 'follow,
                c = follower.next() => c,
            };
            match change {
                Some(Ok(Change::Put { value, .. })) => {
                    let d = value.deployment;
                    deployed.insert(d.name.clone(), d.regions.iter().map(|r| r.name.clone()).collect());
                    for region in &d.regions {
                        if let Some((holder, _)) = running.get(&region.name) {
                            if *holder != d.name && said.insert((d.name.clone(), region.name.clone())) {
                                println!(
                                    "  sync agent  region {} of {}: none (its webroot is {}'s)",
                                    region.name, d.name, holder
                                );
                            }
                            continue;
                        }
                        match start_agent(&dir, &nats, &clouds, &d.name, &region.name).await {
                            Ok(agent) => {
                                running.insert(region.name.clone(), (d.name.clone(), agent));
                            }
                            Err(e) => eprintln!("flotilla dev: {e:#}"),
                        }
                    }
                }
                Some(Ok(Change::Removed { key, previous })) => {
                    deployed.remove(previous.map_or(key, |p| p.deployment.name).as_str());
                }
                Some(Ok(Change::Current)) => snapshot = false,
                ended => {
                    if let Some(Err(e)) = ended {
                        eprintln!("flotilla dev: following the deployments: {e}; again in 1 s");
                    }
                    tokio::select! {
                        () = stop.cancelled() => break 'follow,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue 'follow,
                    }
                }
            }
            if snapshot {
                continue;
            }
            // Agents of regions no longer deployed stop.
            let gone: Vec<String> = running
                .iter()
                .filter(|(region, (deployment, _))| {
                    !deployed
                        .get(deployment)
                        .is_some_and(|regions| regions.contains(region))
                })
                .map(|(region, _)| region.clone())
                .collect();
            for region in gone {
                if let Some((deployment, agent)) = running.remove(&region) {
                    println!("  sync agent  region {region} of {deployment}: stopped (withdrawn)");
                    if let Err(e) = agent.shutdown().await {
                        eprintln!("  sync agent {region}: {e}");
                    }
                }
            }
        }
    }
    stop_all(
        running
            .into_values()
            .map(|(_, agent)| ("sync agent", agent))
            .collect(),
    )
    .await;
}

/// Starts the sync agent of `region` of `deployment` (machine `dev-<region>`).
async fn start_agent(
    dir: &Path,
    nats: &flotilla_bus::BusConfig,
    clouds: &flotilla_provisioner::clouds::CloudSettings,
    deployment: &str,
    region: &str,
) -> anyhow::Result<Running> {
    let webroot = dir.join("webroots").join(region);
    let mut cfg = ServiceConfig::<flotilla_sync::Settings> {
        data_dir: dir.join("sync-agents").join(region),
        nats: nats.clone(),
        clouds: clouds.clone(),
        ..Default::default()
    };
    cfg.admin.disabled = true;
    cfg.service.role = flotilla_sync::settings::Role::Agent;
    cfg.service.agent = Some(flotilla_sync::settings::AgentSettings {
        deployment: deployment.to_owned(),
        region: region.to_owned(),
        machine: format!("dev-{region}"),
        webroot: webroot.clone(),
        excludes: flotilla_sync::settings::default_excludes(),
    });
    let running = host::start(flotilla_sync::DEF, cfg, flotilla_sync::routes)
        .await
        .map_err(|e| anyhow!("starting the sync agent of region {region}: {e}"))?;
    println!("  sync agent  region {region}: webroot {}", webroot.display());
    Ok(running)
}

async fn start_services(
    dir: &Path,
    nats: &flotilla_bus::BusConfig,
    sim: &RunningSim,
    health_port: u16,
    stop: &CancellationToken,
) -> anyhow::Result<Services> {
    // Every service talks to the simulator, with its credentials: nothing can reach a real API.
    let clouds = sim.cloud_settings();
    fn config<S: Default>(
        dir: &Path,
        name: &str,
        nats: &flotilla_bus::BusConfig,
        clouds: &flotilla_provisioner::clouds::CloudSettings,
    ) -> ServiceConfig<S> {
        let mut cfg = ServiceConfig::<S> {
            data_dir: dir.join(name),
            nats: nats.clone(),
            clouds: clouds.clone(),
            ..Default::default()
        };
        cfg.admin.listen = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        cfg
    }
    let mut services: Services = Vec::new();
    let mut provisioner: ServiceConfig<flotilla_provisioner::Settings> =
        config(dir, "provisioner", nats, &clouds);
    provisioner.service = flotilla_provisioner::Settings {
        health_port,
        health_path: "/health".into(),
        boot_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(250),
        reconcile_interval: Duration::from_secs(30),
        ..flotilla_provisioner::Settings::default()
    };
    macro_rules! start {
        ($krate:ident, $cfg:expr) => {{
            let def = $krate::DEF;
            let started = tokio::select! {
                _ = stop.cancelled() => Err(interrupted()),
                r = host::start(def, $cfg, $krate::routes) => r.map_err(|e| anyhow!("starting {}: {e}", def.name)),
            };
            match started {
                Ok(running) => {
                    println!(
                        "  {:<11} serving{}",
                        def.name,
                        running
                            .admin_addr
                            .map(|a| format!(" (admin http://{a})"))
                            .unwrap_or_default()
                    );
                    services.push((def.name, running));
                }
                Err(e) => {
                    stop_all(services).await;
                    return Err(e);
                }
            }
        }};
    }
    start!(flotilla_provisioner, provisioner);
    start!(flotilla_dns, config(dir, "dns", nats, &clouds));
    start!(flotilla_firewall, config(dir, "firewall", nats, &clouds));
    start!(flotilla_sync, config(dir, "sync", nats, &clouds));
    let mut autoscaler: ServiceConfig<flotilla_autoscaler::Settings> =
        config(dir, "autoscaler", nats, &clouds);
    // The simulator's machines answer health checks on its health port.
    autoscaler.service.probe =
        flotilla_autoscaler::settings::Probes::all(flotilla_autoscaler::settings::Probe {
            port: health_port,
            path: "/health".into(),
            grace: Duration::from_secs(60),
            ..flotilla_autoscaler::settings::Probe::default()
        });
    start!(flotilla_autoscaler, autoscaler);
    Ok(services)
}

/// Starts `nats-server` (see [`flotilla_natsbin::ensure`]) with JetStream, its data in `<dir>/nats`, on
/// 127.0.0.1:4222 when free (another port otherwise). Returns its URL once it answers; stops it when it
/// does not, or when `stop` is cancelled first.
async fn start_nats(dir: &Path, stop: &CancellationToken) -> anyhow::Result<(String, NatsChild)> {
    // NATS_SERVER_BIN, a new-enough one on PATH, or the pinned release fetched into `<dir>/bin/`.
    let bin = flotilla_natsbin::ensure(&dir.join("bin"), |line| println!("flotilla dev: {line}"))
        .await
        .map_err(|e| {
            Exit::error(
                exit::UNREACHABLE,
                format!("{e}; or point NATS_URL at a running NATS"),
            )
        })?;
    let port = if TcpListener::bind((Ipv4Addr::LOCALHOST, 4222)).is_ok() {
        4222
    } else {
        free_port()?
    };
    // Absolute, so that the process can be recognised by it later (see `is_nats`).
    let store = std::path::absolute(dir.join("nats")).context("resolving the NATS store directory")?;
    let log = std::fs::File::create(dir.join("nats.log"))?;
    let child = tokio::process::Command::new(&bin)
        .arg("--jetstream")
        .arg("--store_dir")
        .arg(&store)
        .args([
            "--addr",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--server_name",
            "flotilla-dev",
        ])
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        // Its own process group: a Ctrl-C in the terminal reaches us, not it, so the services drain before
        // it stops.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut child = NatsChild { child, store };
    let url = format!("nats://127.0.0.1:{port}");
    let ready = tokio::select! {
        _ = stop.cancelled() => Err(interrupted()),
        r = wait_for_nats(&bin, dir, &url, &mut child.child) => r,
    };
    match ready {
        Ok(()) => Ok((url, child)),
        Err(e) => {
            child.stop().await;
            Err(e)
        }
    }
}

/// Waits (up to 15 s) until the nats-server `child` answers at `url`.
async fn wait_for_nats(
    bin: &Path,
    dir: &Path,
    url: &str,
    child: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    let cfg = flotilla_bus::BusConfig::for_urls([url.to_owned()]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match flotilla_bus::connect(&cfg).await {
            Ok(client) => {
                drop(client);
                return Ok(());
            }
            Err(
                e
                @ (flotilla_bus::BusError::ServerTooOld { .. } | flotilla_bus::BusError::NoJetStream { .. }),
            ) => {
                return Err(Exit::error(
                    exit::UNREACHABLE,
                    format!("{} cannot serve Flotilla: {e}", bin.display()),
                ));
            }
            Err(e) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(anyhow!(
                        "nats-server exited ({status}); see {}/nats.log",
                        dir.display()
                    ));
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(anyhow!("nats-server did not become ready: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

fn init_logging(dir: &Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dev.log"))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}
