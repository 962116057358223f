//! `flotilla sync …`, `flotilla backup`, `flotilla restore`: the sync service's answers and commands — a
//! deployment's replication and agents (`sync show`), a dry run file by file (`sync plan`), a replication
//! run now (`sync reconcile`), a webroot
//! backup on every datastore (`backup`), and a restore of the newest good backup from any provider
//! (`restore`).
//!
//! Exit codes: 0 when done, 1 when the sync service refused or failed (no such region, no good backup), 3
//! when NATS or the sync service cannot be reached.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use flotilla_bus::api::ApiError;
use flotilla_bus::subject;
use flotilla_proto::{
    BackupWritten, CommandMeta, ReconcileSync, RestoreBackup, ServiceStatus, ServiceStatusRequest, ShowSync,
    SyncView, TakeBackup,
};

use crate::out::{self, say};
use crate::session::{Exit, FleetEvent, Outcome, Session, exit, issuer};

/// `flotilla sync`: a deployment's webroots and buckets across regions.
#[derive(Debug, clap::Subcommand)]
pub enum SyncCommand {
    /// Each bucket between each region and the hub (last pass, lag, pending, failures, deletions held
    /// back), each agent heard from, and the backups on every datastore.
    #[command(after_help = "Examples:\n  flotilla sync show www-codetesters-uk\n  \
                            flotilla sync show www-codetesters-uk --output json")]
    Show {
        /// The deployment.
        deployment: String,
    },
    /// What a replication run would copy, delete, keep and hold back, file by file (nothing is changed).
    #[command(after_help = "Example:\n  flotilla sync plan www-codetesters-uk")]
    Plan {
        /// The deployment.
        deployment: String,
    },
    /// Replicate the deployment's buckets between its regions now (rather than at the next change).
    #[command(after_help = "Example:\n  flotilla sync reconcile www-codetesters-uk")]
    Reconcile {
        /// The deployment.
        deployment: String,
    },
}

/// `flotilla backup`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  flotilla backup www-codetesters-uk\n  \
                        flotilla backup www-codetesters-uk --region nl-ams --period daily")]
pub struct BackupArgs {
    /// The deployment.
    pub deployment: String,
    /// The region whose webroot is archived (default: the primary region).
    #[arg(long)]
    pub region: Option<String>,
    /// The period it is kept under (`manual`, `hourly`, `daily`, `weekly`, `monthly`, `bimonthly`).
    #[arg(long, default_value = "manual")]
    pub period: String,
    /// How long to wait for the archive to be written.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `flotilla restore`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  flotilla restore www-codetesters-uk\n  \
                        flotilla restore www-codetesters-uk --from digitalocean --at 2026-12-06T02:00:00Z")]
pub struct RestoreArgs {
    /// The deployment.
    pub deployment: String,
    /// The region whose webroot is restored (default: the primary region); the others follow.
    #[arg(long)]
    pub region: Option<String>,
    /// Only from this provider's datastores (`linode`, `digitalocean`, `vultr`, `exoscale`).
    #[arg(long)]
    pub from: Option<String>,
    /// The newest backup taken at or before this time (RFC 3339).
    #[arg(long)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// How long to wait for the restore.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// The sync service's view of a deployment (`flotilla.api.sync.show`), waiting up to `timeout`.
pub async fn show(session: &Session, deployment: &str, timeout: Duration) -> Result<SyncView, ApiError> {
    let req = ShowSync {
        deployment: deployment.to_owned(),
    };
    session.ask("sync", "show", &req, timeout).await
}

/// `flotilla sync …`.
pub async fn run(nats: &flotilla_bus::BusConfig, cmd: SyncCommand) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    match cmd {
        SyncCommand::Show { deployment } => {
            let view = show(&session, &deployment, session.timeout)
                .await
                .map_err(|e| crate::session::service_error("sync", &session.url, e))?;
            out::answer(&view, || render(&view))?;
        }
        SyncCommand::Plan { deployment } => {
            let view: flotilla_proto::SyncDryRunView = session
                .call("sync", "dry-run", &flotilla_proto::SyncDryRun { deployment })
                .await?;
            out::answer(&view, || render_dry_run(&view))?;
        }
        SyncCommand::Reconcile { deployment } => {
            let _: ServiceStatus = session.call("sync", "status", &ServiceStatusRequest {}).await?;
            let region = primary_region(&session, &deployment).await?;
            let cmd = ReconcileSync {
                meta: CommandMeta::new(issuer()),
                deployment: deployment.clone(),
                region,
            };
            flotilla_bus::Publisher::new(session.client.clone(), flotilla_bus::PublishConfig::default())
                .publish_command(&cmd)
                .await?;
            say!("deployment {deployment}: replication asked for (see `flotilla sync show {deployment}`)");
            out::result(&cmd)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The deployment's primary region, from its desired state (the provisioner need not be running).
async fn primary_region(session: &Session, deployment: &str) -> anyhow::Result<String> {
    let d = session.desired(deployment).await?;
    d.regions
        .iter()
        .find(|r| r.primary)
        .or_else(|| d.regions.first())
        .map(|r| r.name.clone())
        .ok_or_else(|| Exit::error(exit::FAILED, format!("deployment {deployment} has no region")))
}

/// Publishes a backup or restore command and waits for its `sync.backup-written` event.
async fn backup_outcome<C: flotilla_proto::Command>(
    session: &Session,
    cmd: &C,
    wanted: &'static [&'static str],
    timeout: Duration,
) -> anyhow::Result<BackupWritten> {
    let _: ServiceStatus = session.call("sync", "status", &ServiceStatusRequest {}).await?;
    let correlation = cmd.meta().correlation_id;
    let watch = subject::events_filter(
        Some(<BackupWritten as flotilla_proto::Event>::TOPIC),
        Some(cmd.deployment()),
    )?;
    let outcome = session
        .send(cmd, Some(&watch), None, timeout, async |e| {
            Ok(match e {
                Some(FleetEvent::Backup(b))
                    if b.meta.correlation_id == correlation
                        && (wanted.contains(&b.outcome.as_str()) || b.outcome == "failed") =>
                {
                    Some(b.clone())
                }
                _ => None,
            })
        })
        .await?;
    match outcome {
        Outcome::Done(b) if b.outcome == "failed" => Err(Exit::error(exit::FAILED, b.message)),
        Outcome::Done(b) => Ok(b),
        Outcome::Rejected(why) => Err(Exit::error(
            exit::FAILED,
            format!("the sync service refused: {why}"),
        )),
        Outcome::TimedOut => Err(Exit::error(
            exit::FAILED,
            format!(
                "no answer within {} (the command stays queued; see `flotilla sync show {}`)",
                humantime::format_duration(timeout),
                cmd.deployment()
            ),
        )),
    }
}

/// `flotilla backup`.
pub async fn backup(nats: &flotilla_bus::BusConfig, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    let region = match args.region {
        Some(r) => r,
        None => primary_region(&session, &args.deployment).await?,
    };
    let cmd = TakeBackup {
        meta: CommandMeta::new(issuer()),
        deployment: args.deployment.clone(),
        region,
        period: args.period,
    };
    let b = backup_outcome(&session, &cmd, &["written", "incomplete"], args.timeout).await?;
    out::answer(&b, || {
        let mut text = format!(
            "{}\n  {}/{}  sha256 {}  {} bytes\n",
            b.message, b.bucket, b.key, b.checksum, b.size
        );
        for w in &b.written {
            text.push_str(&format!("  on {w}\n"));
        }
        for m in &b.missing {
            text.push_str(&format!("  missing on {m} (written as soon as it answers)\n"));
        }
        text
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `flotilla restore`.
pub async fn restore(nats: &flotilla_bus::BusConfig, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    let region = match args.region {
        Some(r) => r,
        None => primary_region(&session, &args.deployment).await?,
    };
    let cmd = RestoreBackup {
        meta: CommandMeta::new(issuer()),
        deployment: args.deployment.clone(),
        region,
        from: args.from,
        at: args.at,
    };
    let b = backup_outcome(&session, &cmd, &["restored"], args.timeout).await?;
    out::answer(&b, || {
        let mut text = format!("{}\n", b.message);
        for note in &b.missing {
            text.push_str(&format!("  passed over: {note}\n"));
        }
        text
    })?;
    Ok(ExitCode::SUCCESS)
}

fn ago(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "never".to_owned(),
        |t| {
            let secs = (chrono::Utc::now() - t).num_seconds().max(0);
            format!("{}s ago", secs)
        },
    )
}

/// A deployment's replication as `flotilla sync show` (and `status`) prints it.
pub fn render(view: &SyncView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "deployment {}: sync", view.deployment);
    if view.buckets.is_empty() {
        let _ = writeln!(
            out,
            "  no bucket passed yet (one region, or every region on one datastore endpoint: nothing to \
             replicate; or the replicator has not run)"
        );
    }
    for b in &view.buckets {
        let _ = writeln!(
            out,
            "  {} {} ↔ {}: last pass {}, last full pass {}, last full comparison {}, {} applied, lag {}, {} pending",
            b.bucket,
            b.region,
            b.peer,
            ago(b.last_pass),
            ago(b.last_full_pass),
            ago(b.last_full_comparison),
            b.last_applied,
            b.lag_ms.map_or_else(|| "-".to_owned(), |l| format!("{l} ms")),
            b.pending
        );
        for f in &b.failed {
            let _ = writeln!(out, "    failed: {f}");
        }
        for h in &b.held_back {
            let _ = writeln!(out, "    held back: {h}");
        }
    }
    for a in &view.agents {
        let _ = writeln!(
            out,
            "  agent {} ({}): last push {}, last pull {}, lag {}{}",
            a.machine,
            a.region,
            ago(a.last_push),
            ago(a.last_pull),
            a.lag_ms.map_or_else(|| "-".to_owned(), |l| format!("{l} ms")),
            if a.failed > 0 {
                format!(", {} failed", a.failed)
            } else {
                String::new()
            }
        );
    }
    for b in view.backups.iter().take(10) {
        let _ = writeln!(
            out,
            "  backup {} {} ({} bytes, {}): on {}{}",
            b.period,
            b.key,
            b.size,
            b.taken_at.format("%Y-%m-%d %H:%M:%SZ"),
            b.written.len(),
            if b.missing.is_empty() {
                String::new()
            } else {
                format!(", missing on {}", b.missing.join(", "))
            }
        );
    }
    out
}

/// What a replication run would do, as `flotilla sync plan` prints it.
pub fn render_dry_run(view: &flotilla_proto::SyncDryRunView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "deployment {}: what a replication run would do; nothing has been changed",
        view.deployment
    );
    for p in &view.passes {
        match (&p.error, p.lines.is_empty() && p.omitted == 0) {
            (Some(e), _) => {
                let _ = writeln!(
                    out,
                    "  {} {} ↔ {}: cannot be planned: {e}",
                    p.bucket, p.peer, p.region
                );
            }
            (None, true) => {
                let _ = writeln!(out, "  {} {} ↔ {}: in step", p.bucket, p.peer, p.region);
            }
            (None, false) => {
                let _ = writeln!(out, "  {} {} ↔ {}:", p.bucket, p.peer, p.region);
                for l in &p.lines {
                    let _ = writeln!(out, "    {l}");
                }
                if p.omitted > 0 {
                    let _ = writeln!(
                        out,
                        "    … and {} more (the answer keeps to {} KiB of lines)",
                        p.omitted,
                        flotilla_proto::SYNC_DRY_RUN_BYTES / 1024
                    );
                }
            }
        }
    }
    out
}
