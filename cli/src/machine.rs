//! The operator's commands on one machine or region: `pause` / `resume` a region's scaling, `protect` a
//! machine from scale-in, `replace` a machine, `reconcile` a deployment now. A machine is named by its
//! resource id, its name, or its provider id: its deployment and region are looked up in the fleet.

use std::process::ExitCode;
use std::time::Duration;

use flotilla_bus::{PublishConfig, Publisher};
use flotilla_proto::{
    CommandMeta, MachineView, ReconcileFirewalls, ReconcileRecords, ReconcileRegion, ReconcileSync,
    ReplaceMachine,
};

use crate::out::{self, say};
use crate::scale::ScalingCommand;
use crate::session::{Exit, Outcome, Session, exit, issuer};

/// `flotilla pause`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla pause www-codetesters-uk gb-lon --reason \"load test\"\n  \
                        flotilla resume www-codetesters-uk gb-lon"
)]
pub struct PauseArgs {
    /// The deployment.
    deployment: String,
    /// The region.
    region: String,
    /// Why (shown by `status`, `why` and `scaling show`).
    #[arg(long, default_value = "")]
    reason: String,
}

/// `flotilla resume`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  flotilla resume www-codetesters-uk gb-lon")]
pub struct ResumeArgs {
    /// The deployment.
    deployment: String,
    /// The region.
    region: String,
}

/// `flotilla protect`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla protect gb-lon-webserver-2\n  flotilla protect gb-lon-webserver-2 --off"
)]
pub struct ProtectArgs {
    /// The machine: its resource id, name or provider id.
    machine: String,
    /// Lift the protection instead.
    #[arg(long)]
    off: bool,
}

/// `flotilla replace`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  flotilla replace gb-lon-webserver-2\n  \
                        flotilla replace gb-lon-webserver-2 --no-wait")]
pub struct ReplaceArgs {
    /// The machine: its resource id, name or provider id.
    machine: String,
    /// Return once the provisioner has the command, without waiting for the old machine to go.
    #[arg(long)]
    no_wait: bool,
    /// Give up waiting after this long (the provisioner carries on).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// `flotilla reconcile`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  flotilla reconcile www-codetesters-uk\n  \
                        flotilla reconcile www-codetesters-uk gb-lon")]
pub struct ReconcileArgs {
    /// The deployment.
    deployment: String,
    /// Only this region (the provisioner's part; records, firewalls and buckets are per deployment).
    region: Option<String>,
}

/// Where a machine is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Located {
    /// Its deployment.
    pub deployment: String,
    /// Its region.
    pub region: String,
    /// The machine.
    pub machine: MachineView,
}

/// The machine named `name` (resource id, name or provider id) in the fleet; exit 1 when none or several
/// match.
pub async fn locate(session: &Session, name: &str) -> anyhow::Result<Located> {
    let fleet = session.fleet(None, None).await?;
    let found: Vec<Located> = fleet
        .regions
        .iter()
        .flat_map(|r| {
            r.machines.iter().map(move |m| Located {
                deployment: r.deployment.clone(),
                region: r.region.clone(),
                machine: m.clone(),
            })
        })
        .filter(|l| {
            l.machine.resource_id == name
                || l.machine.name == name
                || l.machine.provider_id.as_deref() == Some(name)
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Exit::error(
            exit::FAILED,
            format!("no machine {name} in the fleet (`flotilla status` lists them)"),
        )),
        _ => Err(Exit::error(
            exit::FAILED,
            format!(
                "{name} names several machines: {}; give the resource id",
                found
                    .iter()
                    .map(|l| format!("{} ({}/{})", l.machine.resource_id, l.deployment, l.region))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

pub async fn pause(nats: &flotilla_bus::BusConfig, args: PauseArgs) -> anyhow::Result<ExitCode> {
    crate::scale::scaling(
        nats,
        ScalingCommand::Pause {
            deployment: args.deployment,
            region: args.region,
            reason: args.reason,
        },
    )
    .await
}

pub async fn resume(nats: &flotilla_bus::BusConfig, args: ResumeArgs) -> anyhow::Result<ExitCode> {
    crate::scale::scaling(
        nats,
        ScalingCommand::Resume {
            deployment: args.deployment,
            region: args.region,
        },
    )
    .await
}

pub async fn protect(nats: &flotilla_bus::BusConfig, args: ProtectArgs) -> anyhow::Result<ExitCode> {
    let found = {
        let session = Session::connect(nats).await?;
        locate(&session, &args.machine).await?
    };
    let (deployment, region, machine) = (found.deployment, found.region, found.machine.resource_id);
    let cmd = if args.off {
        ScalingCommand::Unprotect {
            deployment,
            region,
            machine,
        }
    } else {
        ScalingCommand::Protect {
            deployment,
            region,
            machine,
        }
    };
    crate::scale::scaling(nats, cmd).await
}

pub async fn replace(nats: &flotilla_bus::BusConfig, args: ReplaceArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    let found = locate(&session, &args.machine).await?;
    let cmd = ReplaceMachine {
        meta: CommandMeta::new(issuer()),
        deployment: found.deployment.clone(),
        region: found.region.clone(),
        resource_id: found.machine.resource_id.clone(),
    };
    let wait = if args.no_wait {
        Duration::from_secs(2)
    } else {
        args.timeout
    };
    let old = found.machine.resource_id.clone();
    let role = found.machine.role.clone();
    let outcome = session
        .send(&cmd, None, Some(Duration::from_millis(500)), wait, async |_| {
            let fleet = session.fleet(Some(&cmd.deployment), Some(&cmd.region)).await?;
            let machines: Vec<&MachineView> = fleet.regions.iter().flat_map(|r| &r.machines).collect();
            let gone = !machines.iter().any(|m| m.resource_id == old);
            let healthy = machines
                .iter()
                .filter(|m| m.role == role && m.state == "healthy")
                .count();
            Ok((gone && healthy > 0).then(|| fleet.clone()))
        })
        .await?;
    match outcome {
        Outcome::Done(fleet) => {
            say!(
                "machine {old} replaced: {} of {}/{} now",
                fleet
                    .regions
                    .iter()
                    .flat_map(|r| &r.machines)
                    .filter(|m| m.role == role)
                    .map(|m| format!("{} ({})", m.resource_id, m.state))
                    .collect::<Vec<_>>()
                    .join(", "),
                cmd.deployment,
                cmd.region
            );
            out::result(&fleet)?;
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Rejected(why) => Err(Exit::error(
            exit::FAILED,
            format!("the provisioner refused to replace {old}: {why}"),
        )),
        Outcome::TimedOut if args.no_wait => {
            say!(
                "replacement of {old} asked for: a new {role} is made, then {old} destroyed once it is healthy \
                 (follow it with `flotilla events {} --follow`)",
                cmd.deployment
            );
            out::result(&cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        Outcome::TimedOut => Err(Exit::error(
            exit::FAILED,
            format!(
                "{old} not replaced within {} (the provisioner carries on; `flotilla why {} {}` says where it is)",
                humantime::format_duration(args.timeout),
                cmd.deployment,
                cmd.region
            ),
        )),
    }
}

/// What `reconcile` asked for.
#[derive(Debug, serde::Serialize)]
struct Asked {
    deployment: String,
    provisioner: Vec<String>,
    dns: bool,
    firewall: bool,
    sync: bool,
}

pub async fn reconcile(nats: &flotilla_bus::BusConfig, args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    let deployment = session.desired(&args.deployment).await?;
    let regions: Vec<String> = match &args.region {
        Some(r) if deployment.region(r).is_none() => {
            return Err(Exit::error(
                exit::FAILED,
                format!("deployment {} has no region {r}", args.deployment),
            ));
        }
        Some(r) => vec![r.clone()],
        None => deployment.regions.iter().map(|r| r.name.clone()).collect(),
    };
    let Some(any) = regions.first().cloned() else {
        return Err(Exit::error(
            exit::FAILED,
            format!("deployment {} has no region", args.deployment),
        ));
    };
    let publisher = Publisher::new(session.client.clone(), PublishConfig::default());
    let d = args.deployment.clone();
    let meta = || CommandMeta::new(issuer());
    for region in &regions {
        publisher
            .publish_command(&ReconcileRegion {
                meta: meta(),
                deployment: d.clone(),
                region: region.clone(),
            })
            .await?;
    }
    publisher
        .publish_command(&ReconcileRecords {
            meta: meta(),
            deployment: d.clone(),
            region: any.clone(),
        })
        .await?;
    publisher
        .publish_command(&ReconcileFirewalls {
            meta: meta(),
            deployment: d.clone(),
            region: any.clone(),
        })
        .await?;
    publisher
        .publish_command(&ReconcileSync {
            meta: meta(),
            deployment: d.clone(),
            region: any,
        })
        .await?;
    say!(
        "deployment {d}: the provisioner compares region(s) {} with the providers now; the dns, firewall and \
         sync services reconcile the deployment (the autoscaler reviews every region continuously). \
         `flotilla why {d} REGION` shows what each then does.",
        regions.join(", ")
    );
    out::result(&Asked {
        deployment: d,
        provisioner: regions,
        dns: true,
        firewall: true,
        sync: true,
    })?;
    Ok(ExitCode::SUCCESS)
}
