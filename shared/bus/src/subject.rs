//! The subject scheme. Every subject Flotilla uses is built here, and nowhere else.
//!
//! | subject | what |
//! |---|---|
//! | `flotilla.cmd.<service>.<deployment>.<region>.<verb>` | a command for a service (work-queue stream) |
//! | `flotilla.evt.<topic>.<deployment>.<region>.<name>` | an event (limits stream) |
//! | `flotilla.api.<service>.<verb>` | request/reply through the NATS service API |
//! | `flotilla.dlq.<service>` | messages a service gave up on, with the error in a header |
//!
//! Tokens are lowercase ASCII letters, digits, `-` and `_`: never `.`, `*`, `>` or whitespace, so a name can
//! never change the shape of a subject. Deployments or regions that are not known (a command that failed to
//! decode) use `_`.

use crate::BusError;

/// Root of every Flotilla subject.
pub const ROOT: &str = "flotilla";
/// Subjects captured by the command stream.
pub const COMMANDS_WILDCARD: &str = "flotilla.cmd.>";
/// Subjects captured by the event stream.
pub const EVENTS_WILDCARD: &str = "flotilla.evt.>";
/// Subjects captured by the dead-letter stream.
pub const DLQ_WILDCARD: &str = "flotilla.dlq.>";

/// Checks one subject token.
pub fn check_token(what: &'static str, token: &str) -> Result<(), BusError> {
    let bad = |reason| {
        Err(BusError::SubjectToken {
            token: token.to_owned(),
            what,
            reason,
        })
    };
    if token.is_empty() {
        return bad("empty");
    }
    if token.len() > 128 {
        return bad("longer than 128 characters");
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return bad("only lowercase letters, digits, '-' and '_' are allowed");
    }
    Ok(())
}

/// `flotilla.cmd.<service>.<deployment>.<region>.<verb>`
pub fn command(service: &str, deployment: &str, region: &str, verb: &str) -> Result<String, BusError> {
    check_token("service", service)?;
    check_token("deployment", deployment)?;
    check_token("region", region)?;
    check_token("verb", verb)?;
    Ok(format!("{ROOT}.cmd.{service}.{deployment}.{region}.{verb}"))
}

/// The filter of every command for `service`: `flotilla.cmd.<service>.>`.
pub fn commands_for(service: &str) -> Result<String, BusError> {
    check_token("service", service)?;
    Ok(format!("{ROOT}.cmd.{service}.>"))
}

/// `flotilla.evt.<topic>.<deployment>.<region>.<name>`
pub fn event(topic: &str, deployment: &str, region: &str, name: &str) -> Result<String, BusError> {
    check_token("topic", topic)?;
    check_token("deployment", deployment)?;
    check_token("region", region)?;
    check_token("event name", name)?;
    Ok(format!("{ROOT}.evt.{topic}.{deployment}.{region}.{name}"))
}

/// `flotilla.api.<service>` — the prefix under which a service's request/reply endpoints live.
pub fn api_group(service: &str) -> Result<String, BusError> {
    check_token("service", service)?;
    Ok(format!("{ROOT}.api.{service}"))
}

/// `flotilla.api.<service>.<verb>`
pub fn api(service: &str, verb: &str) -> Result<String, BusError> {
    check_token("verb", verb)?;
    Ok(format!("{}.{verb}", api_group(service)?))
}

/// `flotilla.dlq.<service>`
pub fn dlq(service: &str) -> Result<String, BusError> {
    check_token("service", service)?;
    Ok(format!("{ROOT}.dlq.{service}"))
}

/// The subject of `cmd`: `flotilla.cmd.<service>.<deployment>.<region>.<verb>`, service and verb from its
/// kind. The only way a command's subject is built, so its subject and its body always agree.
pub fn command_for<C: flotilla_proto::Command>(cmd: &C) -> Result<String, BusError> {
    let (service, verb) = command_kind(C::KIND)?;
    command(service, cmd.deployment(), cmd.region(), verb)
}

/// The service and verb of a command kind, as subject tokens.
pub fn command_kind(kind: &'static str) -> Result<(&'static str, &'static str), BusError> {
    flotilla_proto::command_parts(kind).ok_or(BusError::SubjectToken {
        token: kind.to_owned(),
        what: "command kind",
        reason: "a command kind is <service>.<verb>.v<N>",
    })
}

/// The subject of `event`: `flotilla.evt.<topic>.<deployment>.<region>.<name>` (`_` in the name becomes
/// `-`). The only way an event's subject is built.
pub fn event_for<E: flotilla_proto::Event>(event: &E) -> Result<String, BusError> {
    self::event(
        E::TOPIC,
        event.deployment(),
        event.region(),
        &event.name().replace('_', "-"),
    )
}

/// A filter of events: every event of `topic` (all topics when `None`) of `deployment` (all when
/// `None`): `flotilla.evt.<topic|*>.<deployment|*>.>`.
pub fn events_filter(topic: Option<&str>, deployment: Option<&str>) -> Result<String, BusError> {
    let topic = match topic {
        Some(t) => {
            check_token("topic", t)?;
            t
        }
        None => "*",
    };
    let deployment = match deployment {
        Some(d) => {
            check_token("deployment", d)?;
            d
        }
        None => "*",
    };
    Ok(format!("{ROOT}.evt.{topic}.{deployment}.>"))
}

/// The parts of an event subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSubject<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Deployment.
    pub deployment: &'a str,
    /// Region.
    pub region: &'a str,
    /// Name.
    pub name: &'a str,
}

/// Splits an event subject into its parts; `None` when it does not follow the scheme.
pub fn parse_event(subject: &str) -> Option<EventSubject<'_>> {
    let mut parts = subject.split('.');
    let (Some(ROOT), Some("evt")) = (parts.next(), parts.next()) else {
        return None;
    };
    let (topic, deployment, region, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(EventSubject {
        topic,
        deployment,
        region,
        name,
    })
}

/// The key of a deployment's desired state in the desired-state bucket: its name.
pub fn desired_key(deployment: &str) -> Result<String, BusError> {
    check_token("deployment", deployment)?;
    Ok(deployment.to_owned())
}

/// The key of a machine in the fleet bucket: `<deployment>.<region>.<resource id>`.
pub fn fleet_key(deployment: &str, region: &str, resource_id: &str) -> Result<String, BusError> {
    check_token("deployment", deployment)?;
    check_token("region", region)?;
    check_token("resource id", resource_id)?;
    Ok(format!("{deployment}.{region}.{resource_id}"))
}

/// The keys of a deployment's machines in the fleet bucket (all deployments when `None`), as a KV watch
/// filter.
pub fn fleet_filter(deployment: Option<&str>) -> Result<String, BusError> {
    match deployment {
        Some(d) => {
            check_token("deployment", d)?;
            Ok(format!("{d}.>"))
        }
        None => Ok(">".to_owned()),
    }
}

/// The key of a bucket's stamp on an endpoint in the sync service's stamp bucket:
/// `<deployment>.<bucket>.<endpoint>`, the endpoint (`<provider>:<host>`) lowercased with every character
/// a key token cannot hold turned into `_`.
pub fn stamp_key(deployment: &str, bucket: &str, endpoint: &str) -> Result<String, BusError> {
    check_token("deployment", deployment)?;
    check_token("bucket", bucket)?;
    let endpoint: String = endpoint
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    check_token("endpoint", &endpoint)?;
    Ok(format!("{deployment}.{bucket}.{endpoint}"))
}

/// The parts of a command subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSubject<'a> {
    /// Target service.
    pub service: &'a str,
    /// Deployment.
    pub deployment: &'a str,
    /// Region.
    pub region: &'a str,
    /// Verb.
    pub verb: &'a str,
}

/// Splits a command subject into its parts; `None` when it does not follow the scheme.
pub fn parse_command(subject: &str) -> Option<CommandSubject<'_>> {
    let mut parts = subject.split('.');
    let (Some(ROOT), Some("cmd")) = (parts.next(), parts.next()) else {
        return None;
    };
    let (service, deployment, region, verb) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(CommandSubject {
        service,
        deployment,
        region,
        verb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme() {
        assert_eq!(
            command("provisioner", "www-codetesters-uk", "gb-lon", "apply").unwrap(),
            "flotilla.cmd.provisioner.www-codetesters-uk.gb-lon.apply"
        );
        assert_eq!(
            event("machine", "www-codetesters-uk", "ch-gva-2", "healthy").unwrap(),
            "flotilla.evt.machine.www-codetesters-uk.ch-gva-2.healthy"
        );
        assert_eq!(
            api("provisioner", "machines").unwrap(),
            "flotilla.api.provisioner.machines"
        );
        assert_eq!(dlq("dns").unwrap(), "flotilla.dlq.dns");
        assert_eq!(commands_for("sync").unwrap(), "flotilla.cmd.sync.>");
    }

    #[test]
    fn every_built_subject_is_captured_by_its_stream_wildcard() {
        let matches = |wildcard: &str, subject: &str| {
            let prefix = wildcard.trim_end_matches('>');
            subject.starts_with(prefix) && subject.len() > prefix.len()
        };
        assert!(matches(
            COMMANDS_WILDCARD,
            &command("dns", "d", "r", "v").unwrap()
        ));
        assert!(matches(EVENTS_WILDCARD, &event("t", "d", "r", "n").unwrap()));
        assert!(matches(DLQ_WILDCARD, &dlq("dns").unwrap()));
        // Per-service command filters never overlap (work-queue streams require it).
        let a = commands_for("dns").unwrap();
        assert!(!matches(&a, &command("dnsx", "d", "r", "v").unwrap()));
    }

    #[test]
    fn tokens_cannot_change_the_shape_of_a_subject() {
        for bad in ["", "a.b", "*", ">", "a b", "Gb-Lon", "a\n", &"x".repeat(129)] {
            assert!(command("dns", bad, "r", "v").is_err(), "{bad:?} accepted");
            assert!(event("t", "d", bad, "n").is_err(), "{bad:?} accepted");
        }
        assert!(check_token("region", "ch-gva-2").is_ok());
        assert!(check_token("region", "ams3").is_ok());
        assert!(check_token("deployment", "www_codetesters-uk").is_ok());
    }

    #[test]
    fn stamp_keys_hold_any_endpoint_in_one_token() {
        assert_eq!(
            stamp_key("www-x", "www-x-webroot-sync", "linode:nl-ams-1.LinodeObjects.com").unwrap(),
            "www-x.www-x-webroot-sync.linode_nl-ams-1_linodeobjects_com"
        );
        assert!(stamp_key("www-x", "a.b", "linode:h").is_err());
        assert!(stamp_key("www-x", "b", "").is_err());
    }

    #[test]
    fn typed_subjects_follow_the_body() {
        let cmd = flotilla_proto::ReconcileRegion {
            meta: flotilla_proto::CommandMeta::new("t"),
            deployment: "dep".into(),
            region: "gb-lon".into(),
        };
        assert_eq!(
            command_for(&cmd).unwrap(),
            "flotilla.cmd.provisioner.dep.gb-lon.reconcile"
        );
        let bad = flotilla_proto::ReconcileRegion {
            deployment: "../../etc".into(),
            ..cmd
        };
        assert!(command_for(&bad).is_err());
        assert_eq!(events_filter(None, Some("dep")).unwrap(), "flotilla.evt.*.dep.>");
        assert_eq!(
            events_filter(Some("machine"), None).unwrap(),
            "flotilla.evt.machine.*.>"
        );
        assert!(events_filter(Some("a.b"), None).is_err());
        let e = parse_event("flotilla.evt.machine.dep.gb-lon.healthy").unwrap();
        assert_eq!(
            (e.topic, e.deployment, e.region, e.name),
            ("machine", "dep", "gb-lon", "healthy")
        );
        assert!(parse_event("flotilla.cmd.machine.dep.gb-lon.healthy").is_none());
        assert_eq!(fleet_key("d", "r", "ws-1").unwrap(), "d.r.ws-1");
        assert!(fleet_key("d", "r", "a.b").is_err());
        assert_eq!(fleet_filter(Some("d")).unwrap(), "d.>");
    }

    #[test]
    fn parse_round_trips() {
        let s = command("provisioner", "dep", "gb-lon", "apply").unwrap();
        let p = parse_command(&s).unwrap();
        assert_eq!(
            (p.service, p.deployment, p.region, p.verb),
            ("provisioner", "dep", "gb-lon", "apply")
        );
        assert!(parse_command("flotilla.evt.a.b.c.d").is_none());
        assert!(parse_command("flotilla.cmd.a.b.c").is_none());
        assert!(parse_command("flotilla.cmd.a.b.c.d.e").is_none());
    }
}
