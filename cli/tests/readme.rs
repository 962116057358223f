//! The README's commands published by hand (`nats pub` and its `flotilla_cmd` helper) are what the
//! services accept: each body, with the `meta` the helper adds, decodes as the kind its header names, and its
//! subject is the one the bus builds for that command. (Every `flotilla …` line of the README is parsed by
//! the CLI's own unit test, `every_cli_command_in_the_readme_parses`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_proto::{Command, CommandMeta, Encoding, decode_any_kind};

const README: &str = include_str!("../../README.md");

/// The shell command lines of the README's `sh` blocks, continuations joined.
fn lines() -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for raw in README.lines() {
        if let Some(info) = raw.trim_start().strip_prefix("```") {
            in_sh = !in_sh && info.trim() == "sh";
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
    for line in lines() {
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
