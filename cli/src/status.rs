//! `flotilla status [DEPLOYMENT]`: per region, its machines (role, name, state, public and private IP) and
//! its DBaaS, as the provisioner records them, and its scaling (counts, pause, what blocks it, the latest
//! activities) as the autoscaler explains it; per deployment its DNS records as the dns service sees
//! them and its DBaaS allow-list and firewalls as the firewall service sees them (unknown when a service
//! does not answer, which never fails the status); `--output json` for scripts; `--watch` refreshes (the
//! services' views at most every 10 s: each answer reads the providers).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use flotilla_bus::api::ApiError;
use flotilla_proto::{FirewallsView, Fleet, RecordsView};

use crate::out::{self, Output};
use crate::session::Session;

/// How long `status` waits for the dns service's records of a deployment.
const DNS_TIMEOUT: Duration = Duration::from_secs(3);

/// How often `--watch` asks the dns service again.
const DNS_REFRESH: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flotilla status\n  flotilla status www-codetesters-uk --output json\n  \
                        flotilla status www-codetesters-uk --region gb-lon --watch"
)]
pub struct Args {
    /// Only this deployment.
    deployment: Option<String>,
    /// Only this region.
    #[arg(long)]
    region: Option<String>,
    /// Refresh until interrupted.
    #[arg(long, short)]
    watch: bool,
    /// How often `--watch` refreshes.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

/// A deployment's DNS records as `status` shows them.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsStatus {
    /// The dns service's view.
    Records(RecordsView),
    /// Why they are unknown (the dns service not answering …).
    Unknown(String),
}

/// A deployment's allow-list and firewalls as `status` shows them.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallStatus {
    /// The firewall service's view.
    Firewalls(Box<FirewallsView>),
    /// Why they are unknown (the firewall service not answering …).
    Unknown(String),
}

/// A deployment's replication and backups as `status` shows them.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// The sync service's view.
    Sync(Box<flotilla_proto::SyncView>),
    /// Why it is unknown (the sync service not answering …).
    Unknown(String),
}

/// A deployment's scaling as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalingStatus {
    /// The autoscaler's explanation, per region.
    Explained(flotilla_proto::ScalingStatus),
    /// Why it is unknown (the autoscaler not answering …).
    Unknown(String),
}

/// What `status` shows beside the fleet, per deployment.
#[derive(Debug, Default, serde::Serialize)]
pub struct Beside {
    /// DNS records.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dns: BTreeMap<String, DnsStatus>,
    /// Allow-lists and firewalls.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub firewall: BTreeMap<String, FirewallStatus>,
    /// Replication and backups.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sync: BTreeMap<String, SyncStatus>,
    /// Scaling per region: desired count, pause, what blocks it, recent activities.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub scaling: BTreeMap<String, ScalingStatus>,
}

/// `status --output json`: the provisioner's answer (its fields as they are), and the DNS records, the
/// firewalls and the replication per deployment.
#[derive(Debug, serde::Serialize)]
struct StatusJson<'a> {
    #[serde(flatten)]
    fleet: &'a Fleet,
    #[serde(flatten)]
    beside: &'a Beside,
}

pub async fn run(nats: &flotilla_bus::BusConfig, args: Args) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    let mut beside = Beside::default();
    let mut dns_asked: Option<tokio::time::Instant> = None;
    loop {
        let fleet = session
            .fleet(args.deployment.as_deref(), args.region.as_deref())
            .await?;
        let deployments: BTreeSet<&str> = fleet.regions.iter().map(|r| r.deployment.as_str()).collect();
        let stale = dns_asked.is_none_or(|at| at.elapsed() >= DNS_REFRESH)
            || !deployments
                .iter()
                .copied()
                .eq(beside.dns.keys().map(String::as_str));
        if stale {
            (beside.dns, beside.firewall, beside.sync, beside.scaling) = tokio::join!(
                dns_status(&session, &deployments),
                firewall_status(&session, &deployments),
                sync_status(&session, &deployments),
                scaling_status(&session, &deployments)
            );
            dns_asked = Some(tokio::time::Instant::now());
        }
        let text = match out::format() {
            Output::Json => format!(
                "{}\n",
                serde_json::to_string_pretty(&StatusJson {
                    fleet: &fleet,
                    beside: &beside,
                })?
            ),
            Output::Table if fleet.regions.is_empty() => match &args.deployment {
                Some(d) => format!("deployment {d}: nothing recorded (never deployed, or destroyed)\n"),
                None => "no deployments\n".to_owned(),
            },
            Output::Table => render_with(&fleet, &beside),
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

/// The fleet of `deployment` (all when `None`) and everything `status` shows beside it, asked now.
pub async fn snapshot(session: &Session, deployment: Option<&str>) -> anyhow::Result<(Fleet, Beside)> {
    let fleet = session.fleet(deployment, None).await?;
    let deployments: BTreeSet<&str> = fleet.regions.iter().map(|r| r.deployment.as_str()).collect();
    let (dns, firewall, sync, scaling) = tokio::join!(
        dns_status(session, &deployments),
        firewall_status(session, &deployments),
        sync_status(session, &deployments),
        scaling_status(session, &deployments)
    );
    let beside = Beside {
        dns,
        firewall,
        sync,
        scaling,
    };
    Ok((fleet, beside))
}

/// Each deployment's answer of one service, asked together (`ask`), as `status` shows it (`answer`);
/// never an error.
async fn ask_each<'a, V, S, F>(
    deployments: &BTreeSet<&'a str>,
    ask: impl Fn(&'a str) -> F,
    answer: impl Fn(Result<V, ApiError>) -> S,
) -> BTreeMap<String, S>
where
    F: std::future::Future<Output = Result<V, ApiError>>,
{
    let answers = futures::future::join_all(deployments.iter().map(|d| ask(d))).await;
    deployments
        .iter()
        .zip(answers)
        .map(|(d, a)| ((*d).to_owned(), answer(a)))
        .collect()
}

/// The records of each deployment, asked of the dns service together.
async fn dns_status(session: &Session, deployments: &BTreeSet<&str>) -> BTreeMap<String, DnsStatus> {
    ask_each(
        deployments,
        |d| crate::dns::records(session, d, DNS_TIMEOUT),
        dns_answer,
    )
    .await
}

/// The allow-list and firewalls of each deployment, asked of the firewall service together.
async fn firewall_status(
    session: &Session,
    deployments: &BTreeSet<&str>,
) -> BTreeMap<String, FirewallStatus> {
    ask_each(
        deployments,
        |d| crate::firewall::show(session, d, DNS_TIMEOUT),
        |answer| match answer {
            Ok(view) => FirewallStatus::Firewalls(Box::new(view)),
            Err(e) => FirewallStatus::Unknown(unknown_because("firewall", e)),
        },
    )
    .await
}

/// The replication of each deployment, asked of the sync service together.
async fn sync_status(session: &Session, deployments: &BTreeSet<&str>) -> BTreeMap<String, SyncStatus> {
    ask_each(
        deployments,
        |d| crate::sync::show(session, d, DNS_TIMEOUT),
        |answer| match answer {
            Ok(view) => SyncStatus::Sync(Box::new(view)),
            Err(e) => SyncStatus::Unknown(unknown_because("sync", e)),
        },
    )
    .await
}

/// The scaling of each deployment's regions, asked of the autoscaler together.
async fn scaling_status(session: &Session, deployments: &BTreeSet<&str>) -> BTreeMap<String, ScalingStatus> {
    ask_each(
        deployments,
        |d| crate::scale::regions(session, d, DNS_TIMEOUT),
        |answer| match answer {
            Ok(view) => ScalingStatus::Explained(view),
            Err(e) => ScalingStatus::Unknown(unknown_because("autoscaler", e)),
        },
    )
    .await
}

/// The dns service's answer as `status` shows it.
fn dns_answer(answer: Result<RecordsView, ApiError>) -> DnsStatus {
    match answer {
        Ok(view) => DnsStatus::Records(view),
        Err(e) => DnsStatus::Unknown(unknown_because("dns", e)),
    }
}

/// Why a service's view is unknown, in words.
fn unknown_because(service: &str, e: ApiError) -> String {
    match e {
        ApiError::NoResponders { .. } | ApiError::TimedOut { .. } => {
            format!("{service} service not answering")
        }
        ApiError::Service { code, message, .. } => {
            format!("the {service} service answered {code}: {message}")
        }
        e => e.to_string(),
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
    render_with(fleet, &Beside::default())
}

/// [`render`], each deployment followed by its DNS records, its allow-list and firewalls and its
/// replication (those `beside` has).
pub fn render_with(fleet: &Fleet, beside: &Beside) -> String {
    let mut out = String::new();
    let mut last_deployment: Option<&String> = None;
    for region in &fleet.regions {
        if last_deployment != Some(&region.deployment) {
            if let Some(d) = last_deployment {
                write_beside(&mut out, beside, d);
            }
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
        write_scaling(&mut out, beside, &region.deployment, &region.region);
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
    if let Some(d) = last_deployment {
        write_beside(&mut out, beside, d);
    }
    out
}

fn write_beside(out: &mut String, beside: &Beside, deployment: &str) {
    write_dns(out, beside.dns.get(deployment));
    write_firewall(out, beside.firewall.get(deployment));
    match beside.sync.get(deployment) {
        Some(SyncStatus::Sync(view)) => {
            // Under the deployment's heading already: its own heading line left out.
            let text = crate::sync::render(view);
            for line in text.lines().skip(1) {
                let _ = writeln!(out, "{line}");
            }
        }
        Some(SyncStatus::Unknown(why)) => {
            let _ = writeln!(out, "  sync unknown ({why})");
        }
        None => {}
    }
}

/// A region's scaling: its counts, pause and what blocks it, and its three latest activities.
fn write_scaling(out: &mut String, beside: &Beside, deployment: &str, region: &str) {
    match beside.scaling.get(deployment) {
        Some(ScalingStatus::Explained(s)) => {
            let Some(r) = s.regions.iter().find(|r| r.region == region) else {
                return;
            };
            let _ = writeln!(
                out,
                "    autoscaler: desired {} within {}..={}, {} webservers ({} healthy){}{}",
                r.desired,
                r.min,
                r.max,
                r.current,
                r.healthy,
                r.paused
                    .as_ref()
                    .map(|p| format!(", PAUSED ({p})"))
                    .unwrap_or_default(),
                r.blocked.as_ref().map(|b| format!("; {b}")).unwrap_or_default()
            );
            for a in r.activities.iter().take(3) {
                let _ = writeln!(
                    out,
                    "      {} {:<11} {} — {}",
                    a.started_at.format("%H:%M:%S"),
                    a.status,
                    a.cause,
                    a.message
                );
            }
        }
        Some(ScalingStatus::Unknown(why)) => {
            let _ = writeln!(out, "    autoscaler unknown ({why})");
        }
        None => {}
    }
}

fn write_firewall(out: &mut String, firewall: Option<&FirewallStatus>) {
    match firewall {
        Some(FirewallStatus::Firewalls(view)) => {
            out.push_str(&crate::firewall::render_status_firewalls(view))
        }
        Some(FirewallStatus::Unknown(why)) => {
            let _ = writeln!(out, "  allow-list and firewalls unknown ({why})");
        }
        None => {}
    }
}

fn write_dns(out: &mut String, dns: Option<&DnsStatus>) {
    match dns {
        Some(DnsStatus::Records(view)) => out.push_str(&crate::dns::render_status_records(view)),
        Some(DnsStatus::Unknown(why)) => {
            let _ = writeln!(out, "  DNS records unknown ({why})");
        }
        None => {}
    }
}
