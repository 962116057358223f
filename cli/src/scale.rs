//! `flotilla scale DEPLOYMENT REGION N` and `flotilla scaling …`: the autoscaler's commands and its
//! `explain` answer.
//!
//! `scale` exits 0 once the autoscaler took the new count (with `--wait`, once the region is at it with
//! every webserver healthy), 1 when it was refused (out of the region's bounds, unknown region) with the
//! reason, 3 when NATS or the autoscaler cannot be reached.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use flotilla_bus::api::{self, ApiError};
use flotilla_bus::subject;
use flotilla_proto::{
    CommandMeta, ExplainScaling, PauseScaling, ProtectMachine, RegionScaling, ResumeScaling, ScaleRegion,
    ScalingStatus, ScheduleEntry, SetSchedule, SetTargetTracking, TargetTracking,
};

use crate::out::{self, say};
use crate::session::{Exit, Outcome, Session, exit, issuer};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla scale www-codetesters-uk gb-lon 4\n  flotilla scale www-codetesters-uk gb-lon 2 --wait --timeout 15m"
)]
pub struct ScaleArgs {
    /// The deployment.
    deployment: String,
    /// The region.
    region: String,
    /// Desired webservers (within the region's min and max).
    desired: u32,
    /// Wait until the region is at the count with every webserver healthy.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this long (the autoscaler carries on).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// `flotilla scaling`: what the autoscaler does with a deployment's regions, and its other commands.
#[derive(Debug, clap::Subcommand)]
pub enum ScalingCommand {
    /// Per region: bounds, desired and current counts, the leader, what blocks it, the latest activities.
    #[command(
        after_help = "Examples:\n  flotilla scaling show www-codetesters-uk\n  flotilla scaling show www-codetesters-uk gb-lon -o json"
    )]
    Show {
        /// The deployment.
        deployment: String,
        /// Only this region.
        region: Option<String>,
    },
    /// Stop scaling a region (health is still watched).
    #[command(
        after_help = "Example:\n  flotilla scaling pause www-codetesters-uk gb-lon --reason \"load test\""
    )]
    Pause {
        /// The deployment.
        deployment: String,
        /// The region.
        region: String,
        /// Why (shown by `scaling show`).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Scale a paused region again.
    #[command(after_help = "Example:\n  flotilla scaling resume www-codetesters-uk gb-lon")]
    Resume {
        /// The deployment.
        deployment: String,
        /// The region.
        region: String,
    },
    /// Never pick this machine for scale-in.
    #[command(
        after_help = "Example:\n  flotilla scaling protect www-codetesters-uk gb-lon gb-lon-webserver-2"
    )]
    Protect {
        /// The deployment.
        deployment: String,
        /// The region.
        region: String,
        /// The machine's resource id.
        machine: String,
    },
    /// Replace a region's schedule: `HH:MM[:SS][@mon,tue,…]=N` entries (UTC; every day without `@`);
    /// no entry clears it.
    #[command(
        after_help = "Examples:\n  flotilla scaling schedule www-codetesters-uk gb-lon 08:00@mon,tue,wed,thu,fri=4 20:00=1\n  flotilla scaling schedule www-codetesters-uk gb-lon"
    )]
    Schedule {
        /// The deployment.
        deployment: String,
        /// The region.
        region: String,
        /// The entries, e.g. `08:00@mon,tue,wed,thu,fri=4 20:00=1`.
        entries: Vec<String>,
    },
    /// Set a region's target tracking on a metric the webservers publish (`--off` removes it).
    #[command(
        after_help = "Examples:\n  flotilla scaling track www-codetesters-uk gb-lon --metric cpu --target 60\n  flotilla scaling track www-codetesters-uk gb-lon --off"
    )]
    Track {
        /// The deployment.
        deployment: String,
        /// The region.
        region: String,
        /// The metric (`cpu`, `rps` …).
        #[arg(long, default_value = "cpu")]
        metric: String,
        /// The value aimed at per webserver.
        #[arg(long, default_value_t = 60.0)]
        target: f64,
        /// No scale-out by tracking within this long of the last one.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        scale_out_cooldown: Duration,
        /// No scale-in by tracking within this long of the last one.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        scale_in_cooldown: Duration,
        /// A new webserver's samples count only after this long.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        warmup: Duration,
        /// Remove the region's target tracking.
        #[arg(long)]
        off: bool,
    },
    /// Lift a machine's protection.
    #[command(
        after_help = "Example:\n  flotilla scaling unprotect www-codetesters-uk gb-lon gb-lon-webserver-2"
    )]
    Unprotect {
        /// The deployment.
        deployment: String,
        /// The region.
        region: String,
        /// The machine's resource id.
        machine: String,
    },
}

pub async fn scale(nats: &flotilla_bus::BusConfig, args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    let before = explain(&session, &args.deployment, Some(&args.region)).await?;
    let cmd = ScaleRegion {
        meta: CommandMeta::new(issuer()),
        deployment: args.deployment.clone(),
        region: args.region.clone(),
        desired: args.desired,
    };
    let taken = send(&session, &cmd, |r| r.desired == args.desired).await?;
    say!(
        "region {} of {}: desired webservers {} → {} (bounds {}..={})",
        args.region,
        args.deployment,
        before.desired,
        args.desired,
        before.min,
        before.max
    );
    if !args.wait {
        out::result(&taken)?;
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        let r = explain(&session, &args.deployment, Some(&args.region)).await?;
        let busy = r.activities.first().is_some_and(|a| a.ended_at.is_none());
        if r.current == args.desired && r.healthy == args.desired && !busy {
            say!("region {}: {} webservers, all healthy", args.region, r.current);
            out::result(&r)?;
            return Ok(ExitCode::SUCCESS);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Exit::error(
                exit::FAILED,
                format!(
                    "region {} not at {} after {:?}: {} webservers, {} healthy{}",
                    args.region,
                    args.desired,
                    args.timeout,
                    r.current,
                    r.healthy,
                    r.blocked.map(|b| format!("; {b}")).unwrap_or_default()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn scaling(nats: &flotilla_bus::BusConfig, cmd: ScalingCommand) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    match cmd {
        ScalingCommand::Show { deployment, region } => {
            let status = explain_all(&session, &deployment, region.as_deref()).await?;
            out::answer(&status, || status.regions.iter().map(render_region).collect())?;
            Ok(ExitCode::SUCCESS)
        }
        ScalingCommand::Pause {
            deployment,
            region,
            reason,
        } => {
            let cmd = PauseScaling {
                meta: CommandMeta::new(issuer()),
                deployment,
                region,
                reason,
            };
            let taken = send(&session, &cmd, |r| r.paused.is_some()).await?;
            say!("scaling of region {} paused", cmd.region);
            out::result(&taken)?;
            Ok(ExitCode::SUCCESS)
        }
        ScalingCommand::Resume { deployment, region } => {
            let cmd = ResumeScaling {
                meta: CommandMeta::new(issuer()),
                deployment,
                region,
            };
            let taken = send(&session, &cmd, |r| r.paused.is_none()).await?;
            say!("scaling of region {} resumed", cmd.region);
            out::result(&taken)?;
            Ok(ExitCode::SUCCESS)
        }
        ScalingCommand::Protect {
            deployment,
            region,
            machine,
        } => protect(&session, deployment, region, machine, true).await,
        ScalingCommand::Schedule {
            deployment,
            region,
            entries,
        } => {
            let entries = entries
                .iter()
                .map(|e| parse_entry(e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Exit::error(exit::INVALID, e))?;
            let n = entries.len();
            let cmd = SetSchedule {
                meta: CommandMeta::new(issuer()),
                deployment,
                region,
                entries,
            };
            let taken = send(&session, &cmd, |r| r.schedule == cmd.entries).await?;
            say!(
                "region {}: {n} schedule entr{} set",
                cmd.region,
                if n == 1 { "y" } else { "ies" }
            );
            out::result(&taken)?;
            Ok(ExitCode::SUCCESS)
        }
        ScalingCommand::Track {
            deployment,
            region,
            metric,
            target,
            scale_out_cooldown,
            scale_in_cooldown,
            warmup,
            off,
        } => {
            let cmd = SetTargetTracking {
                meta: CommandMeta::new(issuer()),
                deployment,
                region,
                policy: (!off).then_some(TargetTracking {
                    metric,
                    target,
                    scale_out_cooldown_secs: scale_out_cooldown.as_secs(),
                    scale_in_cooldown_secs: scale_in_cooldown.as_secs(),
                    warmup_secs: warmup.as_secs(),
                }),
            };
            let taken = send(&session, &cmd, |r| r.tracking == cmd.policy).await?;
            say!(
                "region {}: target tracking {}",
                cmd.region,
                match &cmd.policy {
                    Some(p) => format!("on {} at {} per webserver", p.metric, p.target),
                    None => "off".into(),
                }
            );
            out::result(&taken)?;
            Ok(ExitCode::SUCCESS)
        }
        ScalingCommand::Unprotect {
            deployment,
            region,
            machine,
        } => protect(&session, deployment, region, machine, false).await,
    }
}

async fn protect(
    session: &Session,
    deployment: String,
    region: String,
    machine: String,
    protected: bool,
) -> anyhow::Result<ExitCode> {
    let cmd = ProtectMachine {
        meta: CommandMeta::new(issuer()),
        deployment,
        region,
        resource_id: machine.clone(),
        protected,
    };
    let taken = send(session, &cmd, |r| r.protected.contains(&machine) == protected).await?;
    say!(
        "machine {machine} {}",
        if protected {
            "protected from scale-in"
        } else {
            "no longer protected"
        }
    );
    out::result(&taken)?;
    Ok(ExitCode::SUCCESS)
}

/// `HH:MM[:SS][@mon,tue,…]=N`.
fn parse_entry(text: &str) -> Result<ScheduleEntry, String> {
    let bad = || format!("schedule entry {text:?} is not HH:MM[:SS][@mon,tue,…]=N");
    let (when, desired) = text.split_once('=').ok_or_else(bad)?;
    let desired: u32 = desired.trim().parse().map_err(|_| bad())?;
    let (at, days) = match when.split_once('@') {
        Some((at, days)) => (at, days.split(',').map(|d| d.trim().to_owned()).collect()),
        None => (when, Vec::new()),
    };
    Ok(ScheduleEntry {
        at: at.trim().to_owned(),
        days,
        desired,
    })
}

/// Publishes `cmd` and waits until `taken` says the autoscaler took it, or its rejection arrives.
async fn send<C: flotilla_proto::Command>(
    session: &Session,
    cmd: &C,
    taken: impl Fn(&RegionScaling) -> bool,
) -> anyhow::Result<RegionScaling> {
    let poll = Some(Duration::from_millis(200));
    let outcome = session
        .send(cmd, None, poll, session.timeout * 2, async |_| {
            let r = explain(session, cmd.deployment(), Some(cmd.region())).await?;
            Ok(taken(&r).then_some(r))
        })
        .await?;
    match outcome {
        Outcome::Done(r) => Ok(r),
        Outcome::Rejected(why) => Err(Exit::error(
            exit::FAILED,
            format!("the autoscaler refused: {why}"),
        )),
        Outcome::TimedOut => Err(Exit::error(
            exit::UNREACHABLE,
            "the autoscaler did not take the command in time (is it running? `flotilla ping`)",
        )),
    }
}

async fn explain(session: &Session, deployment: &str, region: Option<&str>) -> anyhow::Result<RegionScaling> {
    explain_all(session, deployment, region)
        .await?
        .regions
        .into_iter()
        .next()
        .ok_or_else(|| {
            Exit::error(
                exit::FAILED,
                format!("deployment {deployment} has no such region"),
            )
        })
}

/// The autoscaler's explanation of every region of a deployment (`flotilla.api.autoscaler.explain`),
/// waiting up to `timeout`.
pub async fn regions(
    session: &Session,
    deployment: &str,
    timeout: Duration,
) -> Result<ScalingStatus, ApiError> {
    let req = ExplainScaling {
        deployment: deployment.to_owned(),
        region: None,
    };
    session.ask("autoscaler", "explain", &req, timeout).await
}

async fn explain_all(
    session: &Session,
    deployment: &str,
    region: Option<&str>,
) -> anyhow::Result<ScalingStatus> {
    let subject = subject::api("autoscaler", "explain")?;
    let req = ExplainScaling {
        deployment: deployment.to_owned(),
        region: region.map(str::to_owned),
    };
    api::request::<ExplainScaling, ScalingStatus>(&session.client, &subject, &req, session.timeout)
        .await
        .map_err(|e| match e {
            ApiError::Service { code, message, .. } if (400..500).contains(&code) => {
                Exit::error(exit::FAILED, message)
            }
            ApiError::NoResponders { .. } | ApiError::TimedOut { .. } => Exit::error(
                exit::UNREACHABLE,
                format!("the autoscaler does not answer on NATS at {}: {e}", session.url),
            ),
            other => anyhow::anyhow!(other),
        })
}

/// One region's scaling, as `scaling show` prints it.
pub fn render_region(r: &RegionScaling) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {}: {} webservers ({} healthy), desired {} within {}..={}{}",
        r.deployment,
        r.region,
        r.current,
        r.healthy,
        r.desired,
        r.min,
        r.max,
        r.paused
            .as_ref()
            .map(|p| format!(", PAUSED ({p})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "  leader: {}",
        r.leader
            .as_deref()
            .unwrap_or("none (no replica holds the region)")
    );
    if let Some(b) = &r.blocked {
        let _ = writeln!(s, "  why not at desired / idle: {b}");
    }
    for e in &r.schedule {
        let _ = writeln!(
            s,
            "  schedule: {}{} → {}",
            e.at,
            if e.days.is_empty() {
                String::new()
            } else {
                format!(" on {}", e.days.join(","))
            },
            e.desired
        );
    }
    if let Some(t) = &r.tracking {
        let _ = writeln!(
            s,
            "  target tracking: {} at {} per webserver (cool-downs out {}s, in {}s; warm-up {}s)",
            t.metric, t.target, t.scale_out_cooldown_secs, t.scale_in_cooldown_secs, t.warmup_secs
        );
    }
    if !r.protected.is_empty() {
        let _ = writeln!(s, "  protected: {}", r.protected.join(", "));
    }
    for a in r.activities.iter().take(5) {
        let _ = writeln!(
            s,
            "  {} {:<20} {:<11} {} — {}",
            a.started_at.format("%Y-%m-%d %H:%M:%S"),
            a.status,
            format!("{}%", a.progress),
            a.cause,
            a.message
        );
    }
    s
}
