//! `flotilla status [DEPLOYMENT]`: per region, its machines (role, name, state, public and private IP) and
//! its DBaaS, as the provisioner records them; `--output json` for scripts; `--watch` refreshes.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use flotilla_proto::Fleet;

use crate::session::Session;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table per region.
    Table,
    /// The provisioner's answer as JSON.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this deployment.
    deployment: Option<String>,
    /// Only this region.
    #[arg(long)]
    region: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
    /// Refresh until interrupted.
    #[arg(long, short)]
    watch: bool,
    /// How often `--watch` refreshes.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

pub async fn run(nats: &flotilla_bus::BusConfig, args: Args) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    loop {
        let fleet = session
            .fleet(args.deployment.as_deref(), args.region.as_deref())
            .await?;
        let text = match args.output {
            Output::Json => format!("{}\n", serde_json::to_string_pretty(&fleet)?),
            Output::Table if fleet.regions.is_empty() => match &args.deployment {
                Some(d) => format!("deployment {d}: nothing recorded (never deployed, or destroyed)\n"),
                None => "no deployments\n".to_owned(),
            },
            Output::Table => render(&fleet),
        };
        if args.watch {
            // Clear the screen and home the cursor, then the fresh view.
            print!("\x1b[2J\x1b[H{text}");
        } else {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(args.interval) => {}
        }
    }
}

/// Roles in the order the toolkit builds them.
fn role_rank(role: &str) -> usize {
    [
        "autoscaler",
        "webserver",
        "database",
        "authenticator",
        "reverse-proxy",
    ]
    .iter()
    .position(|r| *r == role)
    .unwrap_or(usize::MAX)
}

/// The fleet as text: a header per deployment and region, the DBaaS, then a table of machines.
pub fn render(fleet: &Fleet) -> String {
    let mut out = String::new();
    let mut last_deployment = None;
    for region in &fleet.regions {
        if last_deployment != Some(&region.deployment) {
            let _ = writeln!(out, "deployment {}", region.deployment);
            last_deployment = Some(&region.deployment);
        }
        let _ = writeln!(
            out,
            "  region {} ({}{}) — {}{}",
            region.region,
            region.provider,
            if region.primary { ", primary" } else { "" },
            region.status,
            region
                .detail
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
        if let Some(db) = &region.dbaas {
            let _ = writeln!(
                out,
                "    DBaaS {} ({}) {} {}{}{}",
                db.name,
                db.engine,
                db.status,
                db.host.as_deref().unwrap_or("-"),
                db.port.map(|p| format!(":{p}")).unwrap_or_default(),
                if db.created { "" } else { " (adopted)" }
            );
        }
        if region.machines.is_empty() {
            let _ = writeln!(out, "    no machines");
            continue;
        }
        let _ = writeln!(
            out,
            "    {:<14} {:<40} {:<15} {:<15} PRIVATE IP",
            "ROLE", "NAME", "STATE", "PUBLIC IP"
        );
        let mut machines: Vec<_> = region.machines.iter().collect();
        machines.sort_by_key(|m| (role_rank(&m.role), m.name.clone()));
        for m in machines {
            let _ = writeln!(
                out,
                "    {:<14} {:<40} {:<15} {:<15} {}",
                m.role,
                m.name,
                m.state,
                m.public_ipv4.as_deref().unwrap_or("-"),
                m.private_ipv4.as_deref().unwrap_or("-")
            );
        }
    }
    out
}
