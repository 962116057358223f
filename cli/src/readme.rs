//! The README's commands, checked against the code (the README promises that every command it shows is):
//! every `flotilla …` line of its `sh` blocks is parsed by the CLI's own definition, and every command
//! published by hand (`nats pub` and its `flotilla_cmd` helper) decodes, with the `meta` the helper adds, as
//! the kind its header names, on the subject the bus builds for it.

use clap::Parser;
use flotilla_proto::{Command, CommandMeta, Encoding, decode_any_kind};

/// The shell command lines of the README's `sh` blocks (continuations joined).
fn readme_lines() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let mut lines = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for raw in readme.lines() {
        let trimmed = raw.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && matches!(info.trim(), "sh" | "bash" | "console");
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(head) = raw.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        lines.push(std::mem::take(&mut pending).trim().to_owned());
    }
    lines
}

/// `line` as `flotilla` arguments, when it runs the CLI: a leading `cargo run --bin flotilla --` or
/// variable assignments dropped, a comment, a redirection or a pipe cut off.
fn flotilla_args(line: &str) -> Option<Vec<String>> {
    let line = line.strip_prefix("$ ").unwrap_or(line);
    let words = shlex::split(line)?;
    let mut words = words
        .into_iter()
        .skip_while(|w| w.contains('=') && !w.starts_with('-'))
        .peekable();
    let mut args: Vec<String> = match words.peek().map(String::as_str) {
        Some("flotilla") => words.skip(1).collect(),
        Some("cargo") => {
            let rest: Vec<String> = words.collect();
            let at = rest.iter().position(|w| w == "--")?;
            (rest.get(..at)? == ["cargo", "run", "--bin", "flotilla"]).then(|| rest[at + 1..].to_vec())?
        }
        _ => return None,
    };
    if let Some(cut) = args
        .iter()
        .position(|w| w.starts_with('#') || w.starts_with('>') || w == "|" || w == "&&")
    {
        args.truncate(cut);
    }
    Some(args)
}

#[test]
fn every_cli_command_in_the_readme_parses() {
    let mut checked = 0;
    let mut bad = Vec::new();
    for line in readme_lines() {
        let Some(args) = flotilla_args(&line) else {
            continue;
        };
        checked += 1;
        let argv = std::iter::once("flotilla".to_owned()).chain(args);
        if let Err(e) = crate::Cli::try_parse_from(argv) {
            bad.push(format!(
                "{line}\n    {}",
                e.to_string().lines().next().unwrap_or_default()
            ));
        }
    }
    assert!(
        checked >= 40,
        "only {checked} flotilla command lines found in the README"
    );
    assert!(
        bad.is_empty(),
        "README commands the CLI refuses:\n{}",
        bad.join("\n")
    );
}

/// Decodes `body` as `C` and checks its subject; the kind's name on success.
fn check_as<C: Command>(subject: &str, body: &[u8]) -> Result<(), String> {
    let cmd: C = decode_any_kind(Encoding::Json, body).map_err(|e| e.to_string())?;
    let built = flotilla_bus::subject::command_for(&cmd).map_err(|e| e.to_string())?;
    if built != subject {
        return Err(format!("published on {subject}, but its body makes it {built}"));
    }
    Ok(())
}

/// Every command kind there is, by its `Flotilla-Kind`.
fn check(kind: &str, subject: &str, body: &[u8]) -> Result<(), String> {
    use flotilla_proto::*;
    macro_rules! kinds {
        ($($t:ty),+) => {
            $(if kind == <$t as Message>::KIND { return check_as::<$t>(subject, body); })+
        };
    }
    kinds!(
        ApplyRegion,
        DestroyRegion,
        CreateMachines,
        DestroyMachine,
        ReplaceMachine,
        ReconcileRegion,
        ScaleRegion,
        PauseScaling,
        ResumeScaling,
        ProtectMachine,
        SetSchedule,
        SetTargetTracking,
        FailoverAuthenticator,
        ReconcileRecords,
        ReconcileFirewalls,
        ReconcileSync,
        TakeBackup,
        RestoreBackup
    );
    Err(format!("no command kind {kind}"))
}

/// The `meta` the README's `new_meta` makes.
fn meta() -> serde_json::Value {
    serde_json::to_value(CommandMeta::new("ops:readme")).unwrap()
}

#[test]
fn every_command_published_by_hand_in_the_readme_is_accepted() {
    let mut kinds = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for line in readme_lines() {
        let Some(words) = shlex::split(&line) else {
            continue;
        };
        let (subject, kind, body) = match words.first().map(String::as_str) {
            // flotilla_cmd SUBJECT KIND BODY (BODY without `meta`; a `$(…)` body is built by the shell).
            Some("flotilla_cmd") if words.len() == 4 && words[3].starts_with('{') => {
                let mut body: serde_json::Value = match serde_json::from_str(&words[3]) {
                    Ok(v) => v,
                    Err(e) => {
                        problems.push(format!("{line}\n    body is not JSON: {e}"));
                        continue;
                    }
                };
                body["meta"] = meta();
                (
                    words[1].clone(),
                    words[2].clone(),
                    serde_json::to_vec(&body).unwrap(),
                )
            }
            // nats pub [-J] SUBJECT -H Flotilla-Kind:KIND … BODY
            Some("nats") if words.get(1).map(String::as_str) == Some("pub") => {
                let args: Vec<&String> = words[2..].iter().filter(|w| *w != "-J").collect();
                let kind = args
                    .iter()
                    .filter_map(|w| w.strip_prefix("Flotilla-Kind:"))
                    .next()
                    .map(str::to_owned);
                let (Some(subject), Some(kind), Some(body)) = (args.first(), kind, args.last()) else {
                    continue;
                };
                if !body.starts_with('{') {
                    continue;
                }
                ((*subject).clone(), kind, body.as_bytes().to_vec())
            }
            _ => continue,
        };
        kinds.insert(kind.clone());
        if let Err(e) = check(&kind, &subject, &body) {
            problems.push(format!("{line}\n    {e}"));
        }
    }
    assert!(
        problems.is_empty(),
        "README commands a service would refuse:\n{}",
        problems.join("\n")
    );
    // One example per command kind (the apply's body is built by the shell from `flotilla.api.provisioner.accept`).
    let every: Vec<&str> = vec![
        "provisioner.destroy.v1",
        "provisioner.create-machines.v1",
        "provisioner.destroy-machine.v1",
        "provisioner.replace-machine.v1",
        "provisioner.reconcile.v1",
        "autoscaler.scale.v1",
        "autoscaler.pause.v1",
        "autoscaler.resume.v1",
        "autoscaler.protect.v1",
        "autoscaler.schedule.v1",
        "autoscaler.track.v1",
        "dns.failover.v1",
        "dns.reconcile.v1",
        "firewall.reconcile.v1",
        "sync.reconcile.v1",
        "sync.backup.v1",
        "sync.restore.v1",
    ];
    let missing: Vec<&&str> = every.iter().filter(|k| !kinds.contains(**k)).collect();
    assert!(missing.is_empty(), "no README example of {missing:?}");
}
