//! `flotilla destroy DEPLOYMENT [REGION]`: removes everything Flotilla created in the deployment's regions
//! (or one region), after a confirmation (`--yes` skips it). Exits 0 once every region is destroyed, 1 when
//! a region's destroy left something in place (say, a VPC still in use), with what and why.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_proto::{CommandMeta, DestroyRegion};
use futures::StreamExt;
use uuid::Uuid;

use crate::out::{self, say};
use crate::session::{Exit, FleetEvent, Session, exit};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla destroy www-codetesters-uk\n  flotilla destroy www-codetesters-uk nl-ams --yes"
)]
pub struct Args {
    /// The deployment.
    deployment: String,
    /// Only this region.
    region: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
    /// Give up waiting after this long (the provisioner carries on).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub async fn run(nats: &flotilla_bus::BusConfig, args: Args) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    session.require_provisioner().await?;
    let fleet = session
        .fleet(Some(&args.deployment), args.region.as_deref())
        .await?;
    if fleet.regions.is_empty() {
        say!(
            "deployment {}{}: nothing recorded, nothing to destroy",
            args.deployment,
            args.region
                .as_ref()
                .map(|r| format!(" region {r}"))
                .unwrap_or_default()
        );
        out::result(&serde_json::json!({ "deployment": args.deployment, "destroyed": {} }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let machines: usize = fleet.regions.iter().map(|r| r.machines.len()).sum();
    let names: Vec<&str> = fleet.regions.iter().map(|r| r.region.as_str()).collect();
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Exit::error(
                exit::FAILED,
                "refusing to destroy without a confirmation: run it in a terminal, or pass --yes",
            ));
        }
        print!(
            "Destroy {machines} machine(s) and everything else Flotilla created in {} of deployment {}?\n\
             This cannot be undone. Type the deployment name to confirm: ",
            names.join(", "),
            args.deployment
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != args.deployment {
            say!("not confirmed; nothing destroyed");
            return Ok(ExitCode::from(exit::FAILED));
        }
    }
    let correlation = Uuid::now_v7();
    let mut events = session
        .client
        .subscribe(subject::events_filter(Some("region"), Some(&args.deployment))?)
        .await
        .context("subscribing to the deployment's events")?;
    let mut rejected = session
        .client
        .subscribe(subject::events_filter(Some("command"), Some(&args.deployment))?)
        .await
        .context("subscribing to command rejections")?;
    // The regions leave the desired state first; the destroys carry that generation, so a late one can
    // never remove a region deployed again after it.
    let withdrawn: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let generation = match session.withdraw(&args.deployment, &withdrawn).await {
        Ok(accepted) => accepted.generation,
        // Recorded by the provisioner but never in the desired state (deployed by an older version):
        // nothing to withdraw; the destroys are issued for the first generation.
        Err(e) if e.to_string().contains("never deployed") => 1,
        Err(e) => return Err(e),
    };
    let mut command_ids = std::collections::HashSet::new();
    let publisher = Publisher::new(session.client.clone(), PublishConfig::default());
    let mut pending: BTreeSet<String> = BTreeSet::new();
    for name in &names {
        let cmd = DestroyRegion {
            meta: CommandMeta::caused_by(correlation, crate::session::issuer()),
            deployment: args.deployment.clone(),
            region: (*name).to_owned(),
            generation,
        };
        publisher
            .publish_command(&cmd)
            .await
            .with_context(|| format!("publishing the destroy of {name}"))?;
        pending.insert((*name).to_owned());
        command_ids.insert(cmd.meta.id.to_string());
    }
    // Regions whose destroy left something in place, and what.
    let mut incomplete: BTreeMap<String, String> = BTreeMap::new();
    let mut destroyed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = tokio::time::sleep(args.timeout);
    tokio::pin!(deadline);
    while !pending.is_empty() {
        let msg = tokio::select! {
            _ = &mut deadline => return Err(Exit::error(exit::FAILED, format!(
                "timed out waiting for {} to be destroyed; the provisioner carries on",
                pending.iter().cloned().collect::<Vec<_>>().join(", ")
            ))),
            m = events.next() => m,
            m = rejected.next() => m,
        };
        let Some(msg) = msg else {
            return Err(Exit::error(exit::UNREACHABLE, "the NATS connection closed"));
        };
        let e = match flotilla_bus::decode_event(&msg) {
            Some(FleetEvent::Rejected(e))
                if e.command_id.as_ref().is_some_and(|id| command_ids.contains(id)) =>
            {
                return Err(Exit::error(
                    exit::FAILED,
                    format!("the provisioner refused a destroy: {}", e.error),
                ));
            }
            Some(FleetEvent::Region(e)) => e,
            _ => continue,
        };
        if e.meta.correlation_id != correlation || !pending.contains(&e.region) {
            continue;
        }
        match e.outcome.as_str() {
            "destroyed" => {
                say!("{}: destroyed ({} machine(s))", e.region, e.destroyed.len());
                destroyed.insert(e.region.clone(), e.destroyed.clone());
                if let Some(left) = &e.error {
                    eprintln!("{}: warning — {left}", e.region);
                }
            }
            "failed" => {
                let why = e.error.unwrap_or_else(|| "no reason given".into());
                say!("{}: destroy incomplete — {why}", e.region);
                incomplete.insert(e.region.clone(), why);
            }
            _ => continue,
        }
        pending.remove(&e.region);
    }
    if incomplete.is_empty() {
        out::result(&serde_json::json!({ "deployment": args.deployment, "destroyed": destroyed }))?;
        return Ok(ExitCode::SUCCESS);
    }
    Err(Exit::error(
        exit::FAILED,
        format!(
            "the destroy of deployment {} is incomplete:\n  {}",
            args.deployment,
            incomplete
                .iter()
                .map(|(region, why)| format!("{region}: {why}"))
                .collect::<Vec<_>>()
                .join("\n  ")
        ),
    ))
}
