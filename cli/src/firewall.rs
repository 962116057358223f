//! `flotilla firewall …`: the firewall service's answers — a deployment's firewalls and DBaaS allow-list,
//! desired and at the provider (`show`), and why an address is (not) allowed to the database (`why`).
//!
//! Exit 1 when the firewall service refuses (a deployment not deployed, no managed database) with its
//! reason, 2 when it finds the request invalid (an address that is not IPv4), 3 when it cannot be reached.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use flotilla_bus::api::ApiError;
use flotilla_proto::{AllowVerdict, FirewallsView, RuleView, ShowFirewalls, WhyAllowed};

use crate::out;
use crate::session::Session;

/// `flotilla firewall`: a deployment's firewalls and allow-list as the firewall service sees them.
#[derive(Debug, clap::Subcommand)]
pub enum FirewallCommand {
    /// Each firewall's rules and machines and the DBaaS allow-list: wanted, at the provider, and what a run
    /// would change (nothing is changed).
    #[command(after_help = "Examples:\n  flotilla firewall show www-codetesters-uk\n  \
                            flotilla firewall show www-codetesters-uk --output json")]
    Show {
        /// The deployment.
        deployment: String,
    },
    /// Whether an address may reach the deployment's managed database, and why (not).
    #[command(after_help = "Example:\n  flotilla firewall why www-codetesters-uk 203.0.113.7")]
    Why {
        /// The deployment.
        deployment: String,
        /// The IPv4 address.
        ip: String,
    },
}

/// `flotilla firewall …`.
pub async fn run(nats: &flotilla_bus::BusConfig, cmd: FirewallCommand) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    match cmd {
        FirewallCommand::Show { deployment } => {
            let view = show(&session, &deployment, session.timeout)
                .await
                .map_err(|e| crate::session::service_error("firewall", &session.url, e))?;
            out::answer(&view, || render_firewalls(&view))?;
        }
        FirewallCommand::Why { deployment, ip } => {
            let verdict: AllowVerdict = session
                .call("firewall", "why", &WhyAllowed { deployment, ip })
                .await?;
            out::answer(&verdict, || format!("{}: {}\n", verdict.ip, verdict.why))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The firewall service's view of a deployment (`flotilla.api.firewall.show`), waiting up to `timeout`.
pub async fn show(session: &Session, deployment: &str, timeout: Duration) -> Result<FirewallsView, ApiError> {
    let req = ShowFirewalls {
        deployment: deployment.to_owned(),
    };
    session.ask("firewall", "show", &req, timeout).await
}

fn rule_line(r: &RuleView) -> String {
    format!(
        "{} {} from {} ({})",
        r.protocol,
        r.ports,
        r.sources.join(", "),
        r.description
    )
}

/// A deployment's firewalls and allow-list as `flotilla firewall show` prints them.
pub fn render_firewalls(view: &FirewallsView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "deployment {}: what a run would do; nothing has been changed",
        view.deployment
    );
    match &view.allow_list {
        None => {
            let _ = writeln!(out, "  no managed database");
        }
        Some(list) => {
            let _ = writeln!(
                out,
                "  allow-list of database {} ({}, region {})",
                list.database, list.provider, list.region
            );
            for e in &list.desired {
                let _ = writeln!(out, "    {:<20} {}", e.cidr, e.why);
            }
            let current = list
                .current
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), |c| format!("{} entries", c.len()));
            let _ = writeln!(out, "    at the provider: {current}");
            if !list.adds.is_empty() {
                let _ = writeln!(out, "    a run would add: {}", list.adds.join(", "));
            }
            if !list.removes.is_empty() {
                let _ = writeln!(out, "    a run would remove: {}", list.removes.join(", "));
            }
            if let Some(why) = &list.blocked {
                let _ = writeln!(out, "    not written: {why}");
            }
            for x in &list.excluded {
                let _ = writeln!(
                    out,
                    "    left out: {} ({} {}, {}): {}",
                    x.resource_id,
                    x.region,
                    x.role,
                    x.public_ipv4.as_deref().unwrap_or("no public address"),
                    x.why
                );
            }
        }
    }
    for f in &view.firewalls {
        let mode = match (f.native, f.on_machine) {
            (true, true) => "native and on-machine",
            (true, false) => "native",
            (false, true) => "on-machine",
            (false, false) => "none",
        };
        let _ = writeln!(
            out,
            "  firewall {} (region {}, {}, {}; {mode})",
            f.name, f.region, f.role, f.provider
        );
        for r in &f.desired {
            let _ = writeln!(out, "    {}", rule_line(r));
        }
        match &f.current {
            Some(current) if sorted(current) == sorted(&f.desired) => {
                let _ = writeln!(out, "    at the provider: the same");
            }
            Some(_) => {
                let _ = writeln!(
                    out,
                    "    at the provider: different (a run writes the rules above)"
                );
            }
            None if f.native => {
                let _ = writeln!(out, "    at the provider: missing (a run creates it)");
            }
            None => {}
        }
        if !f.attached.is_empty() {
            let _ = writeln!(out, "    attached: {}", f.attached.join(", "));
        }
        if !f.to_attach.is_empty() {
            let _ = writeln!(out, "    a run would attach: {}", f.to_attach.join(", "));
        }
    }
    out
}

fn sorted(rules: &[RuleView]) -> Vec<(String, String, Vec<String>)> {
    let mut v: Vec<(String, String, Vec<String>)> = rules
        .iter()
        .map(|r| {
            let mut s = r.sources.clone();
            s.sort();
            (r.protocol.clone(), r.ports.clone(), s)
        })
        .collect();
    v.sort();
    v
}

/// A deployment's allow-list and firewalls in a few lines, as `flotilla status` shows them.
pub fn render_status_firewalls(view: &FirewallsView) -> String {
    let mut out = String::new();
    if let Some(list) = &view.allow_list {
        let pending = list.adds.len() + list.removes.len();
        let state = match (&list.blocked, pending) {
            (Some(why), _) => format!("not written: {why}"),
            (None, 0) => "in step".to_owned(),
            (None, n) => format!("{n} change(s) pending"),
        };
        let _ = writeln!(
            out,
            "  allow-list of database {} ({}): {} entries, {state}",
            list.database,
            list.provider,
            list.desired.len()
        );
        for e in &list.desired {
            let _ = writeln!(out, "    {:<20} {}", e.cidr, e.why);
        }
    }
    let native: Vec<_> = view.firewalls.iter().filter(|f| f.native).collect();
    if !native.is_empty() {
        let behind = native
            .iter()
            .filter(|f| {
                f.current.as_ref().is_none_or(|c| sorted(c) != sorted(&f.desired)) || !f.to_attach.is_empty()
            })
            .count();
        let _ = writeln!(
            out,
            "  firewalls: {} native, {}",
            native.len(),
            if behind == 0 {
                "all in step".to_owned()
            } else {
                format!("{behind} to change")
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_proto::{AllowListView, AllowedEntry, FirewallView};

    fn view() -> FirewallsView {
        let rule = RuleView {
            protocol: "tcp".into(),
            ports: "all".into(),
            sources: vec!["10.0.1.0/24".into()],
            description: "all TCP from the region's VPC".into(),
        };
        FirewallsView {
            deployment: "shop".into(),
            allow_list: Some(AllowListView {
                provider: "linode".into(),
                region: "gb-lon".into(),
                database: "test-cluster".into(),
                desired: vec![AllowedEntry {
                    cidr: "10.0.1.0/24".into(),
                    why: "the VPC of region gb-lon (the database's own)".into(),
                    resource_id: None,
                }],
                current: Some(vec!["10.0.1.0/24".into(), "192.0.2.1/32".into()]),
                adds: vec![],
                removes: vec!["192.0.2.1/32".into()],
                excluded: vec![],
                blocked: None,
            }),
            firewalls: vec![FirewallView {
                region: "gb-lon".into(),
                role: "webserver".into(),
                name: "adt-webserver-test-gb-lon".into(),
                provider: "linode".into(),
                native: true,
                on_machine: false,
                desired: vec![rule.clone()],
                current: Some(vec![rule]),
                attached: vec!["ws1".into()],
                to_attach: vec!["ws2".into()],
            }],
        }
    }

    #[test]
    fn show_says_what_a_run_would_change() {
        let text = render_firewalls(&view());
        assert!(text.contains("a run would remove: 192.0.2.1/32"), "{text}");
        assert!(text.contains("at the provider: the same"), "{text}");
        assert!(text.contains("a run would attach: ws2"), "{text}");
    }

    #[test]
    fn status_counts_what_is_pending() {
        let text = render_status_firewalls(&view());
        assert!(
            text.contains("allow-list of database test-cluster (linode): 1 entries, 1 change(s) pending"),
            "{text}"
        );
        assert!(text.contains("firewalls: 1 native, 1 to change"), "{text}");
    }
}
