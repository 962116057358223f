//! `flotilla deploy FILE…`: one `provisioner.apply.v1` per region, then the fleet followed by its events
//! until every region is applied (exit 0) or one fails (exit 1, with the reason). `--plan` asks the
//! provisioner what would change and changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use flotilla_bus::{PublishConfig, Publisher, subject};
use flotilla_proto::{ApplyRegion, CommandMeta, Fleet, ShowPlan};
use flotilla_spec::Deployment;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use uuid::Uuid;

use crate::out::{self, say};
use crate::session::{Exit, FleetEvent, Session, exit, load_deployment};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla deploy examples/*.tmpl\n  flotilla deploy www-codetesters-uk.toml --plan\n  flotilla deploy www-codetesters-uk.toml --timeout 1h -o json"
)]
pub struct Args {
    /// TOML specs or the original toolkit's templates (several files = one deployment).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Show what would change, change nothing.
    #[arg(long)]
    plan: bool,
    /// Give up waiting after this long (the provisioner carries on).
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub async fn run(nats: &flotilla_bus::BusConfig, args: Args) -> anyhow::Result<ExitCode> {
    let deployment = load_deployment(&args.files)?;
    let session = Session::connect(nats).await?;
    session.require_provisioner().await?;
    if args.plan {
        show_plan(&session, &deployment).await?;
        return Ok(ExitCode::SUCCESS);
    }
    deploy(
        &session,
        &deployment,
        args.timeout,
        std::io::stderr().is_terminal(),
    )
    .await
}

async fn show_plan(session: &Session, deployment: &Deployment) -> anyhow::Result<()> {
    say!("deployment {}", deployment.name);
    let mut plans = BTreeMap::new();
    for region in ordered(deployment) {
        let req = ShowPlan {
            deployment: deployment.clone(),
            region: region.name.clone(),
        };
        let plan = session.plan(&req).await?;
        say!(
            "  region {} ({}{}): VPC {}, DBaaS {}",
            region.name,
            region.provider,
            if region.primary { ", primary" } else { "" },
            plan.vpc,
            plan.dbaas
        );
        if plan.steps.is_empty() {
            say!("    machines: no change");
        }
        for step in &plan.steps {
            let sign = if step.action == "create" { '+' } else { '-' };
            say!(
                "    {sign} {:<7} {:<14} {:<16} {} ({})",
                step.action,
                step.role,
                step.size,
                step.resource_id,
                step.reason
            );
        }
        plans.insert(region.name.clone(), plan);
    }
    out::result(&serde_json::json!({ "deployment": deployment.name, "plans": plans }))
}

/// Primary first, so that its apply is queued before the secondaries that wait for it.
fn ordered(deployment: &Deployment) -> Vec<&flotilla_spec::Region> {
    let mut regions: Vec<_> = deployment.regions.iter().collect();
    regions.sort_by_key(|r| (!r.primary, r.name.clone()));
    regions
}

/// Where one region stands, as the events tell.
#[derive(Debug, Default)]
struct RegionProgress {
    /// Healthy machines by role.
    healthy: BTreeMap<String, BTreeSet<String>>,
    outcome: Option<Result<(), String>>,
}

/// Publishes the applies and follows the fleet until every region is applied or one fails.
pub async fn deploy(
    session: &Session,
    deployment: &Deployment,
    timeout: Duration,
    bars: bool,
) -> anyhow::Result<ExitCode> {
    let correlation = Uuid::now_v7();
    let mut events = session
        .client
        .subscribe(subject::events_filter(None, Some(&deployment.name))?)
        .await
        .context("subscribing to the deployment's events")?;
    // Everything about the deployment, refusals of its commands included
    // (`flotilla.evt.command.<deployment>.<region>.rejected`).
    let before = session.fleet(Some(&deployment.name), None).await?;
    let multi = MultiProgress::with_draw_target(if bars {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{prefix:<28} [{bar:24}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut progress: BTreeMap<String, RegionProgress> = BTreeMap::new();
    let mut role_bars: BTreeMap<(String, String), ProgressBar> = BTreeMap::new();
    for region in ordered(deployment) {
        let mut p = RegionProgress::default();
        if let Some(view) = before.regions.iter().find(|r| r.region == region.name) {
            for m in view.machines.iter().filter(|m| m.state == "healthy") {
                p.healthy
                    .entry(m.role.clone())
                    .or_default()
                    .insert(m.resource_id.clone());
            }
        }
        for (role, spec) in region.machines.iter().filter(|(_, s)| s.count > 0) {
            let bar = multi.add(ProgressBar::new(u64::from(spec.count)));
            bar.set_style(style.clone());
            bar.set_prefix(format!("{} {}", region.name, role.as_str()));
            bar.set_position(p.healthy.get(role.as_str()).map_or(0, |s| s.len() as u64));
            role_bars.insert((region.name.clone(), role.as_str().to_owned()), bar);
        }
        progress.insert(region.name.clone(), p);
    }
    let say = |line: String| {
        if bars {
            multi.suspend(|| eprintln!("{line}"));
        } else {
            eprintln!("{line}");
        }
    };

    // The spec becomes the desired state first (validated by the provisioner); the applies carry its
    // generation, so a late one can never replace a newer deploy.
    let accepted = session.accept(deployment).await?;
    say(format!(
        "deployment {}: generation {}{}",
        deployment.name,
        accepted.generation,
        if accepted.changed { "" } else { " (unchanged)" }
    ));
    let publisher = Publisher::new(session.client.clone(), PublishConfig::default());
    let mut command_ids = HashSet::new();
    for region in ordered(deployment) {
        let cmd = ApplyRegion {
            meta: CommandMeta::caused_by(correlation, crate::session::issuer()),
            deployment: deployment.clone(),
            region: region.name.clone(),
            generation: accepted.generation,
        };
        publisher
            .publish_command(&cmd)
            .await
            .with_context(|| format!("publishing the apply of {}", region.name))?;
        command_ids.insert(cmd.meta.id.to_string());
        say(format!(
            "{}: apply sent ({}{})",
            region.name,
            region.provider,
            if region.primary { ", primary" } else { "" }
        ));
    }

    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while progress.values().any(|p| p.outcome.is_none()) {
        let msg = tokio::select! {
            _ = &mut deadline => {
                multi.clear().ok();
                return Err(Exit::error(exit::FAILED, format!(
                    "timed out after {} waiting for the fleet; the provisioner carries on — see `flotilla status {}`",
                    humantime::format_duration(timeout), deployment.name
                )));
            }
            m = events.next() => m,
        };
        let Some(msg) = msg else {
            return Err(Exit::error(exit::UNREACHABLE, "the NATS connection closed"));
        };
        match flotilla_bus::decode_event(&msg) {
            Some(FleetEvent::Machine(e)) => {
                if e.meta.correlation_id != correlation {
                    continue;
                }
                let Some(p) = progress.get_mut(&e.region) else {
                    continue;
                };
                let healthy = p.healthy.entry(e.role.clone()).or_default();
                match e.state.as_str() {
                    "healthy" => {
                        healthy.insert(e.resource_id.clone());
                    }
                    "failed" | "destroyed" => {
                        healthy.remove(&e.resource_id);
                    }
                    _ => {}
                }
                let count = healthy.len() as u64;
                if let Some(bar) = role_bars.get(&(e.region.clone(), e.role.clone())) {
                    bar.set_position(count);
                    bar.set_message(format!("{} {}", e.resource_id, e.state));
                }
                if !bars {
                    say(format!(
                        "{} {} {} {}{}",
                        e.region,
                        e.role,
                        e.resource_id,
                        e.state,
                        e.public_ipv4.map(|ip| format!(" {ip}")).unwrap_or_default()
                    ));
                }
            }
            Some(FleetEvent::Region(e)) => {
                if e.meta.correlation_id != correlation {
                    continue;
                }
                let Some(p) = progress.get_mut(&e.region) else {
                    continue;
                };
                match e.outcome.as_str() {
                    "applied" => {
                        p.outcome = Some(Ok(()));
                        say(format!(
                            "{}: applied ({} created, {} adopted, {} destroyed, {} replaced)",
                            e.region,
                            e.created.len(),
                            e.adopted.len(),
                            e.destroyed.len(),
                            e.failed.len()
                        ));
                    }
                    "blocked" => say(format!("{}: waiting — {}", e.region, e.error.unwrap_or_default())),
                    "failed" => {
                        let why = e.error.unwrap_or_else(|| "no reason given".into());
                        say(format!("{}: FAILED — {why}", e.region));
                        p.outcome = Some(Err(why));
                    }
                    _ => {}
                }
            }
            Some(FleetEvent::Dbaas(e)) if e.meta.correlation_id == correlation => {
                say(format!(
                    "{}: DBaaS {} ready ({}{})",
                    e.region,
                    e.name,
                    e.host.unwrap_or_default(),
                    e.port.map(|p| format!(":{p}")).unwrap_or_default()
                ));
            }
            Some(FleetEvent::Rejected(e))
                if e.command_id.as_ref().is_some_and(|id| command_ids.contains(id)) =>
            {
                // The subject says which region: flotilla.cmd.provisioner.<dep>.<region>.apply
                let region = e.subject.split('.').nth(4).unwrap_or_default().to_owned();
                if let Some(p) = progress.get_mut(&region)
                    && p.outcome.is_none()
                {
                    say(format!("{region}: REFUSED — {}", e.error));
                    p.outcome = Some(Err(e.error));
                }
            }
            _ => {}
        }
    }
    for bar in role_bars.values() {
        bar.finish();
    }
    multi.clear().ok();
    let failed: Vec<String> = progress
        .iter()
        .filter_map(|(name, p)| match &p.outcome {
            Some(Err(why)) => Some(format!("{name}: {why}")),
            _ => None,
        })
        .collect();
    let fleet = session.fleet(Some(&deployment.name), None).await?;
    out::text(&crate::status::render(&fleet));
    out::result(&fleet)?;
    if failed.is_empty() {
        say!(
            "deployment {}: every region applied, {} machine(s) healthy",
            deployment.name,
            healthy_count(&fleet)
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Exit::error(
            exit::FAILED,
            format!(
                "deployment {} failed:\n  {}",
                deployment.name,
                failed.join("\n  ")
            ),
        ))
    }
}

fn healthy_count(fleet: &Fleet) -> usize {
    fleet
        .regions
        .iter()
        .flat_map(|r| &r.machines)
        .filter(|m| m.state == "healthy")
        .count()
}
