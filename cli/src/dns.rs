//! `flotilla failover DEPLOYMENT --to REGION` and `flotilla dns …`: the dns service's command (move the
//! authenticator name) and its answers (`records`, `hand-over`, `adopt`).
//!
//! `failover` exits 0 once the authenticator name points at the region (or already did), 1 when the dns
//! service refused it (deployment or region not deployed, no authenticator there) or did not move it in time,
//! 3 when NATS or the dns service cannot be reached. The `dns` commands exit 1 when the dns service refuses
//! (a deployment not deployed, a hand-over from a deployment still deployed …) with its reason, 2 when it
//! finds the request invalid, 3 when it cannot be reached.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use flotilla_bus::api::ApiError;
use flotilla_bus::subject;
use flotilla_proto::{
    Adopt, AuthenticatorMoved, CommandMeta, FailoverAuthenticator, HandOver, OwnershipChanged, RecordsView,
    ServiceStatus, ServiceStatusRequest, ShowRecords,
};

use crate::out::{self, say};
use crate::session::{Exit, FleetEvent, Outcome, Session, exit, issuer};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  flotilla failover www-codetesters-uk --to nl-ams")]
pub struct FailoverArgs {
    /// The deployment.
    deployment: String,
    /// The region whose authenticator the authenticator name points at from now on.
    #[arg(long = "to", value_name = "REGION")]
    to: String,
    /// Give up waiting for the dns service after this long (the command stays queued).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// `flotilla dns`: a deployment's records as the dns service sees them, and taking records over.
#[derive(Debug, clap::Subcommand)]
pub enum DnsCommand {
    /// What the dns service would do to a deployment's records now (a dry run: nothing is changed).
    ///
    /// Per name the addresses wanted, those it holds, what a run would create and delete, the records of
    /// others in the way; then the active authenticator region, the machines left out and why, the alarms.
    #[command(after_help = "Examples:\n  flotilla dns show www-codetesters-uk\n  \
                            flotilla dns show www-codetesters-uk --output json")]
    Show {
        /// The deployment.
        deployment: String,
    },
    /// Make the records another owner holds at a deployment's names the deployment's (nothing is deleted).
    ///
    /// OWNER is another deployment (destroyed first: a deployment still deployed would create its records
    /// again) or an old install's ownership mark (`flotilla:<name>`).
    #[command(after_help = "Examples:\n  \
                            flotilla dns hand-over www-codetesters-uk --from old-codetesters --dry-run\n  \
                            flotilla dns hand-over www-codetesters-uk --from old-codetesters \
                            --name www.codetesters.uk")]
    HandOver {
        /// The deployment taking the records.
        deployment: String,
        /// The owner giving them.
        #[arg(long, value_name = "OWNER")]
        from: String,
        /// Only this name (fully qualified; repeat for several) [default: every name of the deployment].
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// Say what would move, move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Make the unmarked records at a deployment's names (the original toolkit's) the deployment's.
    ///
    /// Nothing is deleted here: the dns service's next run keeps the wanted ones and removes the stale ones.
    #[command(
        after_help = "Examples:\n  flotilla dns adopt www-codetesters-uk --dry-run\n  \
                            flotilla dns adopt www-codetesters-uk"
    )]
    Adopt {
        /// The deployment.
        deployment: String,
        /// Say what would be adopted, adopt nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `flotilla failover`: publishes `dns.failover` and waits for the name to move (or the refusal).
pub async fn failover(nats: &flotilla_bus::BusConfig, args: FailoverArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    // Said at once when the dns service is not there, rather than after waiting for it.
    let _: ServiceStatus = session.call("dns", "status", &ServiceStatusRequest {}).await?;
    let cmd = FailoverAuthenticator {
        meta: CommandMeta::new(issuer()),
        deployment: args.deployment.clone(),
        region: args.to.clone(),
    };
    let correlation = cmd.meta.correlation_id;
    let moves = subject::events_filter(
        Some(<AuthenticatorMoved as flotilla_proto::Event>::TOPIC),
        Some(&args.deployment),
    )?;
    let outcome = session
        .send(&cmd, Some(&moves), None, args.timeout, async |e| {
            Ok(match e {
                Some(FleetEvent::Authenticator(m)) if m.meta.correlation_id == correlation => Some(m.clone()),
                _ => None,
            })
        })
        .await?;
    match outcome {
        Outcome::Done(moved) => {
            out::answer(&moved, || format!("{}\n", moved_line(&moved)))?;
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Rejected(why) => Err(Exit::error(
            exit::FAILED,
            format!("the dns service refused the fail-over: {why}"),
        )),
        // A region already active moves nothing and announces nothing: ask where the name points.
        Outcome::TimedOut => {
            let waited = humantime::format_duration(args.timeout);
            let view = records(&session, &args.deployment, session.timeout)
                .await
                .map_err(|e| dns_error(&session.url, e).context(format!("no fail-over within {waited}")))?;
            match view.active_authenticator.as_deref() {
                Some(active) if active == args.to => {
                    out::result(&view)?;
                    say!(
                        "deployment {}: region {active} is already the active authenticator; nothing changed",
                        args.deployment
                    );
                    Ok(ExitCode::SUCCESS)
                }
                active => Err(Exit::error(
                    exit::FAILED,
                    format!(
                        "the dns service did not move the authenticator name of {} within {waited}: it points \
                         at {} (the command stays queued; see `flotilla dns show {}`)",
                        args.deployment,
                        active.map_or_else(|| "no region".to_owned(), |r| format!("region {r}")),
                        args.deployment
                    ),
                )),
            }
        }
    }
}

fn moved_line(m: &AuthenticatorMoved) -> String {
    format!(
        "deployment {}: the authenticator name now points at region {}{} ({})",
        m.deployment,
        m.region,
        m.from
            .as_ref()
            .filter(|f| !f.is_empty())
            .map(|f| format!(", was {f}"))
            .unwrap_or_default(),
        m.reason
    )
}

/// `flotilla dns …`.
pub async fn run(nats: &flotilla_bus::BusConfig, cmd: DnsCommand) -> anyhow::Result<ExitCode> {
    let session = Session::connect(nats).await?;
    match cmd {
        DnsCommand::Show { deployment } => {
            let view = records(&session, &deployment, session.timeout)
                .await
                .map_err(|e| dns_error(&session.url, e))?;
            out::answer(&view, || render_records(&view))?;
        }
        DnsCommand::HandOver {
            deployment,
            from,
            names,
            dry_run,
        } => {
            let req = HandOver {
                deployment,
                from: from.clone(),
                names,
                dry_run,
            };
            let changed: OwnershipChanged = session.call("dns", "hand-over", &req).await?;
            out::answer(&changed, || {
                render_ownership(&changed, &format!("handed over from {from}"))
            })?;
        }
        DnsCommand::Adopt { deployment, dry_run } => {
            let changed: OwnershipChanged = session
                .call("dns", "adopt", &Adopt { deployment, dry_run })
                .await?;
            out::answer(&changed, || render_ownership(&changed, "adopted"))?;
            if !changed.dry_run && !changed.records.is_empty() {
                say!(
                    "the dns service's next run keeps the wanted ones and removes the stale ones \
                     (`flotilla dns show {}` says which)",
                    changed.deployment
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The dns service's view of a deployment's records (`flotilla.api.dns.records`), waiting up to `timeout`.
pub async fn records(
    session: &Session,
    deployment: &str,
    timeout: Duration,
) -> Result<RecordsView, ApiError> {
    let req = ShowRecords {
        deployment: deployment.to_owned(),
    };
    session.ask("dns", "records", &req, timeout).await
}

/// A failed request to the dns service, said as the exit codes want ([`crate::session::service_error`]).
pub fn dns_error(url: &str, e: ApiError) -> anyhow::Error {
    crate::session::service_error("dns", url, e)
}

/// Addresses as `a, b`, or `none`.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// A deployment's records as `flotilla dns show` prints them: per name what is wanted, held, and what a run
/// would change; then the active authenticator, the machines left out, the alarms.
pub fn render_records(view: &RecordsView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "deployment {}: zone {} ({}) — what a run would do; nothing has been changed",
        view.deployment, view.zone, view.provider
    );
    if view.names.is_empty() {
        let _ = writeln!(out, "  no managed names");
    }
    for n in &view.names {
        let _ = writeln!(out, "  {}", n.name);
        let _ = writeln!(out, "    desired:   {}", list(&n.desired));
        let _ = writeln!(out, "    current:   {}", list(&n.current));
        let _ = writeln!(out, "    creates:   {}", list(&n.creates));
        let _ = writeln!(out, "    deletes:   {}", list(&n.deletes));
        if n.conflicts.is_empty() {
            let _ = writeln!(out, "    conflicts: none");
        } else {
            let _ = writeln!(out, "    conflicts (left alone):");
            for c in &n.conflicts {
                let _ = writeln!(out, "      {c}");
            }
        }
    }
    let (creates, deletes): (usize, usize) = view
        .names
        .iter()
        .fold((0, 0), |(c, d), n| (c + n.creates.len(), d + n.deletes.len()));
    if creates + deletes == 0 {
        let _ = writeln!(out, "  a run would change nothing");
    } else {
        let _ = writeln!(
            out,
            "  a run would create {creates} and delete {deletes} record(s)"
        );
    }
    let _ = writeln!(
        out,
        "  active authenticator: {}",
        view.active_authenticator
            .as_deref()
            .map_or_else(|| "none".to_owned(), |r| format!("region {r}"))
    );
    if view.excluded.is_empty() {
        let _ = writeln!(out, "  excluded machines: none");
    } else {
        let _ = writeln!(out, "  excluded machines:");
        for m in &view.excluded {
            let _ = writeln!(
                out,
                "    {} ({} {}, {}): {}",
                m.resource_id,
                m.region,
                m.role,
                m.public_ipv4.as_deref().unwrap_or("no public address"),
                m.why
            );
        }
    }
    if view.alarms.is_empty() {
        let _ = writeln!(out, "  alarms: none");
    } else {
        let _ = writeln!(out, "  alarms:");
        for a in &view.alarms {
            let _ = writeln!(out, "    ALARM {a}");
        }
    }
    out
}

/// A deployment's records in `flotilla status`, under the deployment (indented by two): each name with
/// the addresses it holds and what is pending, the conflicts, the alarms and the active authenticator.
pub fn render_status_records(view: &RecordsView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  DNS zone {} ({}), {}",
        view.zone,
        view.provider,
        view.active_authenticator.as_deref().map_or_else(
            || "no active authenticator".to_owned(),
            |r| format!("authenticator active in {r}")
        )
    );
    if view.names.is_empty() {
        let _ = writeln!(out, "    no managed names");
    }
    let width = view.names.iter().map(|n| n.name.len()).max().unwrap_or(0);
    for n in &view.names {
        let mut pending = Vec::new();
        if !n.creates.is_empty() {
            pending.push(format!("to create: {}", n.creates.join(", ")));
        }
        if !n.deletes.is_empty() {
            pending.push(format!("to delete: {}", n.deletes.join(", ")));
        }
        let _ = writeln!(
            out,
            "    {:<width$}  {}{}",
            n.name,
            if n.current.is_empty() {
                "-".to_owned()
            } else {
                n.current.join(", ")
            },
            if pending.is_empty() {
                String::new()
            } else {
                format!("  ({})", pending.join("; "))
            }
        );
        for c in &n.conflicts {
            let _ = writeln!(out, "    {:<width$}  conflict: {c}", "");
        }
    }
    for a in &view.alarms {
        let _ = writeln!(out, "    ALARM {a}");
    }
    out
}

/// What `hand-over` or `adopt` moved (`what`: `adopted`, `handed over from x`), or would move.
pub fn render_ownership(changed: &OwnershipChanged, what: &str) -> String {
    let mut out = String::new();
    let n = changed.records.len();
    if n == 0 {
        let _ = writeln!(
            out,
            "deployment {}: no record {} {what}",
            changed.deployment,
            if changed.dry_run { "would be" } else { "was" }
        );
        return out;
    }
    let _ = writeln!(
        out,
        "deployment {}: {n} record(s) {}{what}{}:",
        changed.deployment,
        if changed.dry_run { "would be " } else { "" },
        if changed.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    for r in &changed.records {
        let _ = writeln!(out, "  {r}");
    }
    out
}

#[cfg(test)]
mod tests {
    use flotilla_proto::{ExcludedMachine, NameView};

    use super::*;

    fn view() -> RecordsView {
        RecordsView {
            deployment: "shop".into(),
            zone: "example.com".into(),
            provider: "cloudflare".into(),
            names: vec![
                NameView {
                    name: "www.example.com".into(),
                    desired: vec!["203.0.113.10".into(), "203.0.113.11".into()],
                    current: vec!["203.0.113.10".into(), "203.0.113.9".into()],
                    creates: vec!["203.0.113.11".into()],
                    deletes: vec!["203.0.113.9".into()],
                    conflicts: vec!["198.51.100.7 (owned by deployment old-shop)".into()],
                },
                NameView {
                    name: "auth.example.com".into(),
                    desired: vec!["203.0.113.20".into()],
                    current: vec!["203.0.113.20".into()],
                    creates: vec![],
                    deletes: vec![],
                    conflicts: vec![],
                },
            ],
            excluded: vec![ExcludedMachine {
                resource_id: "shop-gb-lon-ws-2".into(),
                region: "gb-lon".into(),
                role: "webserver".into(),
                public_ipv4: None,
                why: "not healthy".into(),
            }],
            alarms: vec![
                "every endpoint of api.example.com is gone; the last set is kept (203.0.113.30)".into(),
            ],
            active_authenticator: Some("gb-lon".into()),
        }
    }

    #[test]
    fn the_plan_shows_each_name_the_authenticator_the_left_out_and_the_alarms() {
        let text = render_records(&view());
        for line in [
            "deployment shop: zone example.com (cloudflare)",
            "  www.example.com\n    desired:   203.0.113.10, 203.0.113.11\n    current:   203.0.113.10, \
             203.0.113.9\n    creates:   203.0.113.11\n    deletes:   203.0.113.9\n    conflicts (left \
             alone):\n      198.51.100.7 (owned by deployment old-shop)\n",
            "  auth.example.com\n    desired:   203.0.113.20\n    current:   203.0.113.20\n    creates:   \
             none\n    deletes:   none\n    conflicts: none\n",
            "  a run would create 1 and delete 1 record(s)\n",
            "  active authenticator: region gb-lon\n",
            "    shop-gb-lon-ws-2 (gb-lon webserver, no public address): not healthy\n",
            "    ALARM every endpoint of api.example.com is gone",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
    }

    #[test]
    fn an_empty_plan_says_so() {
        let empty = RecordsView {
            names: vec![],
            excluded: vec![],
            alarms: vec![],
            active_authenticator: None,
            ..view()
        };
        let text = render_records(&empty);
        assert!(text.contains("  no managed names\n"), "{text}");
        assert!(text.contains("  a run would change nothing\n"), "{text}");
        assert!(text.contains("  active authenticator: none\n"), "{text}");
        assert!(text.contains("  excluded machines: none\n"), "{text}");
        assert!(text.contains("  alarms: none\n"), "{text}");
        assert_eq!(
            render_status_records(&empty),
            "  DNS zone example.com (cloudflare), no active authenticator\n    no managed names\n"
        );
    }

    #[test]
    fn status_shows_what_each_name_holds_and_what_is_pending() {
        let text = render_status_records(&view());
        assert!(
            text.starts_with("  DNS zone example.com (cloudflare), authenticator active in gb-lon\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "    www.example.com   203.0.113.10, 203.0.113.9  (to create: 203.0.113.11; to delete: \
                 203.0.113.9)\n"
            ),
            "{text}"
        );
        assert!(text.contains("    auth.example.com  203.0.113.20\n"), "{text}");
        assert!(
            text.contains("conflict: 198.51.100.7 (owned by deployment old-shop)"),
            "{text}"
        );
        assert!(text.contains("    ALARM every endpoint"), "{text}");
    }

    #[test]
    fn ownership_changes_name_each_record_and_dry_runs_say_so() {
        let changed = OwnershipChanged {
            deployment: "shop".into(),
            records: vec!["www.example.com 203.0.113.10".into()],
            dry_run: true,
        };
        assert_eq!(
            render_ownership(&changed, "handed over from old-shop"),
            "deployment shop: 1 record(s) would be handed over from old-shop (dry run: nothing changed):\n  \
             www.example.com 203.0.113.10\n"
        );
        let done = OwnershipChanged {
            dry_run: false,
            ..changed.clone()
        };
        assert_eq!(
            render_ownership(&done, "adopted"),
            "deployment shop: 1 record(s) adopted:\n  www.example.com 203.0.113.10\n"
        );
        let none = OwnershipChanged {
            records: vec![],
            ..done
        };
        assert_eq!(
            render_ownership(&none, "adopted"),
            "deployment shop: no record was adopted\n"
        );
    }

    #[test]
    fn a_refusal_says_the_code_and_the_reason_and_exits_by_it() {
        let refused = |code| {
            dns_error(
                "nats://x",
                ApiError::Service {
                    subject: "flotilla.api.dns.hand-over".into(),
                    code,
                    message: "deployment old is still deployed".into(),
                },
            )
        };
        let e = refused(409);
        assert_eq!(
            e.to_string(),
            "the dns service refused (409): deployment old is still deployed"
        );
        assert_eq!(e.downcast_ref::<Exit>().map(|x| x.code), Some(exit::FAILED));
        assert_eq!(
            refused(400).downcast_ref::<Exit>().map(|x| x.code),
            Some(exit::INVALID)
        );
        let e = dns_error(
            "nats://x",
            ApiError::NoResponders {
                subject: "flotilla.api.dns.records".into(),
            },
        );
        assert_eq!(e.downcast_ref::<Exit>().map(|x| x.code), Some(exit::UNREACHABLE));
        assert!(e.to_string().contains("the dns service is not running"), "{e}");
        // Context added on top keeps the exit code.
        let e = e.context("no fail-over within 15s");
        assert_eq!(e.downcast_ref::<Exit>().map(|x| x.code), Some(exit::UNREACHABLE));
    }
}
