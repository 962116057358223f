//! `flotilla why DEPLOYMENT REGION`: each service's own account of a region — what it would do next and
//! why, or why it does nothing — asked of all five at once through their APIs (nothing is changed):
//! the provisioner's plan, the autoscaler's explanation, the dns service's records and the machines it
//! leaves out, the firewall service's pending changes, the sync service's lag and what it holds back. A
//! service that does not answer is named with the reason; it never hides the others.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use flotilla_proto::{
    ExplainScaling, FirewallsView, PlanView, RecordsView, RegionScaling, ScalingStatus, ShowPlan, SyncView,
};

use crate::out;
use crate::session::{Exit, Session, exit};

/// How long each service is given.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  flotilla why www-codetesters-uk gb-lon\n  \
                        flotilla why www-codetesters-uk nl-ams -o json")]
pub struct Args {
    /// The deployment.
    deployment: String,
    /// The region.
    region: String,
}

/// One service's answer, or why there is none.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Said<T> {
    /// Its answer.
    Answer(T),
    /// Why it gave none.
    Unknown(String),
}

impl<T> Said<T> {
    fn of<E: std::fmt::Display>(r: Result<T, E>) -> Self {
        r.map_or_else(|e| Self::Unknown(e.to_string()), Self::Answer)
    }
}

/// Every service's account of a region.
#[derive(Debug, serde::Serialize)]
pub struct Why {
    /// The deployment.
    pub deployment: String,
    /// The region.
    pub region: String,
    /// The provisioner's plan for the region.
    pub provisioner: Said<PlanView>,
    /// The autoscaler's explanation of the region.
    pub autoscaler: Said<RegionScaling>,
    /// The dns service's records of the deployment.
    pub dns: Said<RecordsView>,
    /// The firewall service's view of the deployment.
    pub firewall: Said<Box<FirewallsView>>,
    /// The sync service's view of the deployment.
    pub sync: Said<Box<SyncView>>,
}

pub async fn run(nats: &flotilla_bus::BusConfig, args: Args) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    let deployment = session.desired(&args.deployment).await?;
    if deployment.region(&args.region).is_none() {
        return Err(Exit::error(
            exit::FAILED,
            format!(
                "deployment {} has no region {} (its regions: {})",
                args.deployment,
                args.region,
                deployment
                    .regions
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let (d, r) = (args.deployment.as_str(), args.region.as_str());
    let plan = ShowPlan {
        deployment: deployment.clone(),
        region: r.to_owned(),
    };
    let explain = ExplainScaling {
        deployment: d.to_owned(),
        region: Some(r.to_owned()),
    };
    let (provisioner, autoscaler, dns, firewall, sync) = tokio::join!(
        session.ask::<_, PlanView>("provisioner", "plan", &plan, TIMEOUT),
        session.ask::<_, ScalingStatus>("autoscaler", "explain", &explain, TIMEOUT),
        crate::dns::records(&session, d, TIMEOUT),
        crate::firewall::show(&session, d, TIMEOUT),
        crate::sync::show(&session, d, TIMEOUT),
    );
    let why = Why {
        deployment: d.to_owned(),
        region: r.to_owned(),
        provisioner: Said::of(provisioner),
        autoscaler: Said::of(autoscaler.and_then(|s| {
            s.regions
                .into_iter()
                .next()
                .ok_or_else(|| flotilla_bus::api::ApiError::Transport {
                    subject: "flotilla.api.autoscaler.explain".into(),
                    reason: "the autoscaler does not know the region yet".into(),
                })
        })),
        dns: Said::of(dns),
        firewall: Said::of(firewall.map(Box::new)),
        sync: Said::of(sync.map(Box::new)),
    };
    out::answer(&why, || render(&why))?;
    Ok(ExitCode::SUCCESS)
}

fn section<T>(text: &mut String, name: &str, said: &Said<T>, body: impl FnOnce(&T) -> Vec<String>) {
    match said {
        Said::Answer(a) => {
            let lines = body(a);
            let _ = writeln!(text, "{name}:");
            for l in lines {
                let _ = writeln!(text, "  {l}");
            }
        }
        Said::Unknown(why) => {
            let _ = writeln!(text, "{name}: no answer ({why})");
        }
    }
}

/// The account as text, a section per service.
pub fn render(w: &Why) -> String {
    let mut text = format!("deployment {} region {}\n", w.deployment, w.region);
    section(&mut text, "provisioner", &w.provisioner, |p| {
        let mut l = vec![format!("VPC {}, DBaaS {}", p.vpc, p.dbaas)];
        if p.steps.is_empty() {
            l.push("machines as the spec wants: nothing to do".into());
        }
        for s in &p.steps {
            l.push(format!(
                "would {} {} {} ({})",
                s.action, s.role, s.resource_id, s.reason
            ));
        }
        l
    });
    section(&mut text, "autoscaler", &w.autoscaler, |a| {
        let mut l = vec![format!(
            "{} webservers ({} healthy), desired {} within {}..={}",
            a.current, a.healthy, a.desired, a.min, a.max
        )];
        if let Some(p) = &a.paused {
            l.push(format!("paused: {p}"));
        }
        l.push(match &a.blocked {
            Some(b) => format!("not acting: {b}"),
            None if a.current == a.desired && a.healthy == a.current => {
                "at desired, every webserver healthy: nothing to do".into()
            }
            None => "acting: see its latest activity".into(),
        });
        if let Some(act) = a.activities.first() {
            l.push(format!(
                "latest activity: {} {} — {} ({})",
                act.started_at.format("%H:%M:%S"),
                act.status,
                act.cause,
                act.message
            ));
        }
        l
    });
    section(&mut text, "dns", &w.dns, |v| {
        let mut l = Vec::new();
        for n in &v.names {
            if n.creates.is_empty() && n.deletes.is_empty() && n.conflicts.is_empty() {
                l.push(format!("{}: in step ({})", n.name, n.current.join(", ")));
            } else {
                l.push(format!(
                    "{}: would create [{}], delete [{}]{}",
                    n.name,
                    n.creates.join(", "),
                    n.deletes.join(", "),
                    if n.conflicts.is_empty() {
                        String::new()
                    } else {
                        format!("; held by others: {}", n.conflicts.join(", "))
                    }
                ));
            }
        }
        for x in v.excluded.iter().filter(|x| x.region == w.region) {
            l.push(format!("left out: {} {} — {}", x.role, x.resource_id, x.why));
        }
        if let Some(a) = &v.active_authenticator {
            l.push(format!("active authenticator: region {a}"));
        }
        for a in &v.alarms {
            l.push(format!("alarm: {a}"));
        }
        l
    });
    section(&mut text, "firewall", &w.firewall, |v| {
        let mut l = Vec::new();
        if let Some(a) = &v.allow_list {
            if a.adds.is_empty() && a.removes.is_empty() {
                l.push(format!(
                    "allow-list of {}: in step ({} entries)",
                    a.database,
                    a.desired.len()
                ));
            } else {
                l.push(format!(
                    "allow-list of {}: would add [{}], remove [{}]",
                    a.database,
                    a.adds.join(", "),
                    a.removes.join(", ")
                ));
            }
        }
        for f in v.firewalls.iter().filter(|f| f.region == w.region) {
            let rules_differ = f.current.as_ref().is_none_or(|c| *c != f.desired);
            l.push(format!(
                "firewall {} ({}): {}",
                f.name,
                f.role,
                match (rules_differ, f.to_attach.is_empty()) {
                    (false, true) => "in step".to_owned(),
                    (true, true) => "rules would change".to_owned(),
                    (false, false) => format!("would attach {}", f.to_attach.join(", ")),
                    (true, false) => format!("rules would change; would attach {}", f.to_attach.join(", ")),
                }
            ));
        }
        l
    });
    section(&mut text, "sync", &w.sync, |v| {
        let mut l = Vec::new();
        for b in v.buckets.iter().filter(|b| b.region == w.region) {
            l.push(format!(
                "{} ↔ {}: lag {}, {} pending{}{}",
                b.bucket,
                b.peer,
                b.lag_ms
                    .map_or_else(|| "unknown".to_owned(), |ms| format!("{ms} ms")),
                b.pending,
                if b.failed.is_empty() {
                    String::new()
                } else {
                    format!("; failed: {}", b.failed.join("; "))
                },
                if b.held_back.is_empty() {
                    String::new()
                } else {
                    format!("; held back: {}", b.held_back.join("; "))
                }
            ));
        }
        for a in v.agents.iter().filter(|a| a.region == w.region && a.failed > 0) {
            l.push(format!(
                "agent on {}: {} action(s) failed in its last pass",
                a.machine, a.failed
            ));
        }
        if l.is_empty() {
            l.push("nothing replicated for this region".into());
        }
        l
    });
    text
}
