//! The plan of one region: what to create and what to destroy so that its machines match its spec.
//!
//! A pure function of the region's spec and the machines the provisioner knows of, so that `--plan` shows
//! exactly what `apply` will do, and a re-apply of an unchanged spec plans nothing (like `terraform plan`).
//!
//! Rules:
//! - Roles are visited in the original toolkit's build order: autoscalers, webservers, the database
//!   machine, authenticators, reverse proxies.
//! - A machine counts toward its role while it is being created, running or healthy; failed and
//!   destroyed ones do not (a failed one is destroyed).
//! - Missing machines are created; extra ones are destroyed, newest first (the oldest have served longest
//!   and are the ones the toolkit never scaled in); a machine of the wrong size is replaced: a new one is
//!   created and the old one destroyed (once the new one is healthy — the apply's business).
//! - New resource ids are derived from the apply's id, the role and the ordinal, so a redelivered apply
//!   plans the same ids and the create fencing finds what an earlier attempt created.

use flotilla_spec::{Region, Role};
use uuid::Uuid;

/// Where a known machine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownState {
    /// Recorded before the create call; the cloud may or may not have it yet.
    CreatePending,
    /// The cloud has it; it is booting.
    Provisioning,
    /// Running, not yet answering its health check.
    Running,
    /// Answering its health check.
    Healthy,
    /// Never became healthy, or stopped being; to be destroyed.
    Failed,
    /// Being destroyed.
    Destroying,
}

impl KnownState {
    /// Whether the machine counts toward its role's desired number.
    pub fn counts(self) -> bool {
        matches!(
            self,
            Self::CreatePending | Self::Provisioning | Self::Running | Self::Healthy
        )
    }
}

/// A machine the provisioner knows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Our resource id (also in its marks).
    pub resource_id: String,
    /// Its role.
    pub role: Role,
    /// Its size.
    pub size: String,
    /// Its state.
    pub state: KnownState,
    /// Order of creation (higher is newer).
    pub created_seq: u64,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create a machine.
    Create {
        /// Role.
        role: Role,
        /// Size.
        size: String,
        /// Our resource id for it (derived: stable across redeliveries of the same apply).
        resource_id: String,
        /// Its name at the provider.
        name: String,
    },
    /// Destroy a machine.
    Destroy {
        /// Our resource id.
        resource_id: String,
        /// Why.
        reason: DestroyReason,
    },
}

/// Why a machine is destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestroyReason {
    /// More machines of its role than the spec asks for.
    Surplus,
    /// Its size differs from the spec's (a replacement is created).
    WrongSize,
    /// It failed.
    Failed,
}

/// The toolkit's build order.
pub const ROLE_ORDER: [Role; 5] = [
    Role::Autoscaler,
    Role::Webserver,
    Role::Database,
    Role::Authenticator,
    Role::ReverseProxy,
];

/// Short role prefix used in machine names, as the original toolkit's names start (`ws-`, `rp-` …).
pub fn role_prefix(role: Role) -> &'static str {
    match role {
        Role::Autoscaler => "as",
        Role::Webserver => "ws",
        Role::Database => "db",
        Role::Authenticator => "auth",
        Role::ReverseProxy => "rp",
    }
}

/// The plan that makes `known` match `region`, for the apply `apply_id`.
pub fn plan(region: &Region, known: &[Known], apply_id: Uuid) -> Vec<Step> {
    let mut steps = Vec::new();
    for role in ROLE_ORDER {
        let spec = region.machines.get(role);
        let want = usize::try_from(spec.count).unwrap_or(usize::MAX);
        let mut mine: Vec<&Known> = known.iter().filter(|k| k.role == role).collect();
        mine.sort_by_key(|k| k.created_seq);
        for k in mine.iter().filter(|k| k.state == KnownState::Failed) {
            steps.push(Step::Destroy {
                resource_id: k.resource_id.clone(),
                reason: DestroyReason::Failed,
            });
        }
        let live: Vec<&&Known> = mine.iter().filter(|k| k.state.counts()).collect();
        let (right, wrong): (Vec<&&Known>, Vec<&&Known>) = live.iter().partition(|k| k.size == spec.size);
        // Keep the oldest right-sized machines up to the count; the rest are surplus.
        let keep = right.len().min(want);
        for k in right.iter().skip(keep).rev() {
            steps.push(Step::Destroy {
                resource_id: k.resource_id.clone(),
                reason: DestroyReason::Surplus,
            });
        }
        for k in &wrong {
            steps.push(Step::Destroy {
                resource_id: k.resource_id.clone(),
                reason: DestroyReason::WrongSize,
            });
        }
        // Ordinals from `keep` on, skipping an id already known: an earlier attempt of the same apply whose
        // concurrent creates were recorded out of order (0 and 2, not 1) must not have 2 planned again.
        let fresh = (keep..)
            .map(|o| derived_id(apply_id, role, o))
            .filter(|id| !known.iter().any(|k| &k.resource_id == id));
        for resource_id in fresh.take(want.saturating_sub(keep)) {
            steps.push(Step::Create {
                role,
                size: spec.size.clone(),
                name: machine_name(role, region, &resource_id),
                resource_id,
            });
        }
    }
    // Creates before destroys: a replacement is up before what it replaces goes.
    steps.sort_by_key(|s| matches!(s, Step::Destroy { .. }));
    steps
}

/// A resource id derived from the apply, the role and the ordinal (a name-based UUID, shortened).
fn derived_id(apply_id: Uuid, role: Role, ordinal: usize) -> String {
    let name = format!("{apply_id}/{}/{ordinal}", role.as_str());
    let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes());
    id.simple().to_string().chars().take(12).collect()
}

/// `<role>-<region>-<build id>-<resource id>`: readable in the provider's console, unique, and within every
/// provider's label rules (letters, digits and `-`; at most 63 characters; starts with a letter).
pub fn machine_name(role: Role, region: &Region, resource_id: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect()
    };
    let head = format!(
        "{}-{}-{}",
        role_prefix(role),
        clean(&region.name),
        clean(&region.build_identifier)
    );
    // Room for "-" and the id; cut the readable part, never the id.
    let room = 63usize.saturating_sub(resource_id.len() + 1);
    let head: String = head.chars().take(room).collect();
    format!("{}-{resource_id}", head.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn region() -> Region {
        flotilla_integration_tests::templates::import(&[("NO_WEBSERVERS", "2"), ("MAX_WEBSERVERS", "5")])
            .deployment
            .regions
            .remove(0)
    }

    fn known(id: &str, role: Role, state: KnownState, seq: u64) -> Known {
        Known {
            resource_id: id.into(),
            role,
            size: "g6-nanode-1".into(),
            state,
            created_seq: seq,
        }
    }

    fn creates(steps: &[Step]) -> Vec<(Role, String)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Create {
                    role, resource_id, ..
                } => Some((*role, resource_id.clone())),
                Step::Destroy { .. } => None,
            })
            .collect()
    }

    #[test]
    fn an_empty_region_creates_every_role_in_build_order() {
        let r = region();
        let steps = plan(&r, &[], Uuid::nil());
        let roles: Vec<Role> = creates(&steps).into_iter().map(|(role, _)| role).collect();
        assert_eq!(
            roles,
            vec![
                Role::Webserver,
                Role::Webserver,
                Role::Database,
                Role::ReverseProxy
            ]
        );
        for s in &steps {
            if let Step::Create { name, .. } = s {
                assert!(
                    name.len() <= 63 && name.starts_with(char::is_alphabetic),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn a_redelivered_apply_plans_the_same_ids_and_a_satisfied_one_plans_nothing() {
        let r = region();
        let apply = Uuid::now_v7();
        assert_eq!(plan(&r, &[], apply), plan(&r, &[], apply));
        assert_ne!(
            creates(&plan(&r, &[], apply)),
            creates(&plan(&r, &[], Uuid::now_v7()))
        );
        let all: Vec<Known> = creates(&plan(&r, &[], apply))
            .into_iter()
            .enumerate()
            .map(|(i, (role, id))| known(&id, role, KnownState::Healthy, i as u64))
            .collect();
        assert!(
            plan(&r, &all, Uuid::now_v7()).is_empty(),
            "no change for an unchanged spec"
        );
        // Machines still being created count too: no second create while the first is pending.
        let pending: Vec<Known> = all
            .iter()
            .map(|k| Known {
                state: KnownState::CreatePending,
                ..k.clone()
            })
            .collect();
        assert!(plan(&r, &pending, Uuid::now_v7()).is_empty());
    }

    #[test]
    fn only_the_difference_changes() {
        let mut r = region();
        let have = vec![
            known("w1", Role::Webserver, KnownState::Healthy, 1),
            known("w2", Role::Webserver, KnownState::Healthy, 2),
            known("d1", Role::Database, KnownState::Healthy, 3),
            known("p1", Role::ReverseProxy, KnownState::Healthy, 4),
        ];
        r.machines.webserver.count = 1;
        r.machines.reverse_proxy.count = 2;
        let steps = plan(&r, &have, Uuid::nil());
        assert_eq!(creates(&steps).len(), 1);
        assert!(
            matches!(
                &steps[0],
                Step::Create {
                    role: Role::ReverseProxy,
                    ..
                }
            ),
            "creates first: {steps:?}"
        );
        assert_eq!(
            steps[1],
            Step::Destroy {
                resource_id: "w2".into(),
                reason: DestroyReason::Surplus
            },
            "the newest surplus webserver goes"
        );
        assert_eq!(steps.len(), 2);
    }

    #[test]
    fn failed_and_wrong_sized_machines_are_replaced() {
        let mut r = region();
        r.machines.database.size = "g6-standard-2".into();
        let have = vec![
            known("w1", Role::Webserver, KnownState::Healthy, 1),
            known("w2", Role::Webserver, KnownState::Failed, 2),
            known("d1", Role::Database, KnownState::Healthy, 3),
            known("p1", Role::ReverseProxy, KnownState::Healthy, 4),
        ];
        let steps = plan(&r, &have, Uuid::nil());
        let made = creates(&steps);
        assert_eq!(
            made.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            vec![Role::Webserver, Role::Database]
        );
        assert!(steps.contains(&Step::Destroy {
            resource_id: "w2".into(),
            reason: DestroyReason::Failed
        }));
        assert!(steps.contains(&Step::Destroy {
            resource_id: "d1".into(),
            reason: DestroyReason::WrongSize
        }));
    }

    #[test]
    fn a_planned_create_never_reuses_a_known_resource_id() {
        let mut r = region();
        r.machines.webserver.count = 3;
        let apply = Uuid::now_v7();
        let ids: Vec<String> = (0..3).map(|o| derived_id(apply, Role::Webserver, o)).collect();
        // A crashed attempt of this very apply recorded its webservers 0 and 2 (their creates ran
        // concurrently) but not 1; its redelivery plans with the same apply id.
        let have = vec![
            known(&ids[0], Role::Webserver, KnownState::CreatePending, 1),
            known(&ids[2], Role::Webserver, KnownState::CreatePending, 2),
            known("d1", Role::Database, KnownState::Healthy, 3),
            known("p1", Role::ReverseProxy, KnownState::Healthy, 4),
        ];
        let steps = plan(&r, &have, apply);
        let made = creates(&steps);
        assert_eq!(made.len(), 1, "{steps:?}");
        assert!(
            have.iter().all(|k| k.resource_id != made[0].1),
            "a second create of a machine already being created: {steps:?}"
        );
        assert_eq!(plan(&r, &have, apply), steps, "and the same plan every time");
    }

    #[test]
    fn names_stay_within_provider_label_rules() {
        let mut r = region();
        r.build_identifier = "a-very-long-build-identifier-that-someone-typed-in-full.example".into();
        let name = machine_name(Role::ReverseProxy, &r, "0123456789ab");
        assert!(name.len() <= 63 && name.ends_with("-0123456789ab"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
    }
}
