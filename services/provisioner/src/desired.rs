//! The desired state of every deployment, kept by the provisioner in the `flotilla_desired` KV bucket
//! (read and followed by every service).
//!
//! `flotilla deploy` and `flotilla destroy` write it through two requests: `flotilla.api.provisioner.accept`
//! (a deploy: the whole spec, validated, stored with the next generation — or left alone when it is
//! unchanged) and `flotilla.api.provisioner.withdraw` (regions removed before their destroy). Commands
//! carry the generation they were issued for; [`Provisioner::check_apply`] and
//! [`Provisioner::check_destroy`] compare it with the stored one, so a late apply or destroy (a retry, a
//! redelivery after a crash) can never replace what a newer deploy or destroy asked for — whatever the
//! clocks of the CLI and the services say. Those two checks write too, for a command published by hand
//! with a generation newer than the stored one: an apply stores its spec, a destroy withdraws its region.
//! Every write is a compare-and-set on the bucket's revision, so two writers never both win.

use flotilla_bus::HandlerError;
use flotilla_bus::state::{Versioned, next_generation};
use flotilla_proto::{
    AcceptDeployment, Accepted, ApplyRegion, DesiredDeployment, DestroyRegion, WithdrawRegions,
};
use flotilla_runtime::ApiFailure;
use flotilla_spec::Deployment;

use crate::handler::{Provisioner, Shared};

/// Attempts of a compare-and-set write that keeps losing to concurrent writers before giving up.
const CAS_ATTEMPTS: usize = 5;

/// What a command's generation says against the stored desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Proceed,
    /// Refuse, with the reason.
    Stale(String),
}

/// Whether two deployments ask the same of `region` (its spec, and the primary it may wait for).
fn same_for_region(a: &Deployment, b: &Deployment, region: &str) -> bool {
    let primary = |d: &Deployment| d.primary_region().cloned();
    a.region(region) == b.region(region) && primary(a) == primary(b)
}

/// The verdict on an apply of generation `generation` for `cmd`'s deployment, against `stored`.
pub fn judge_apply(stored: Option<&DesiredDeployment>, cmd: &ApplyRegion) -> Option<Verdict> {
    let stored = stored?;
    let name = &cmd.deployment.name;
    Some(if stored.generation > cmd.generation {
        if same_for_region(&stored.deployment, &cmd.deployment, &cmd.region) {
            // Older, but it asks exactly what the newer generation asks of this region: harmless.
            Verdict::Proceed
        } else {
            let newer = if stored.deployment.region(&cmd.region).is_some() {
                "asks otherwise of the region; deploy again to apply the newer spec"
            } else {
                "no longer deploys the region (it was destroyed or withdrawn after this apply was issued); \
                 deploy again to rebuild it"
            };
            Verdict::Stale(format!(
                "stale apply of region {} of deployment {name}: issued for generation {}, but generation {} \
                 (accepted {} by {}) {newer}",
                cmd.region,
                cmd.generation,
                stored.generation,
                stored.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
                if stored.updated_by.is_empty() {
                    "?"
                } else {
                    &stored.updated_by
                },
            ))
        }
    } else if stored.generation == cmd.generation {
        if same_for_region(&stored.deployment, &cmd.deployment, &cmd.region) {
            Verdict::Proceed
        } else {
            Verdict::Stale(format!(
                "conflicting apply of region {} of deployment {name}: generation {} was accepted with another \
                 spec; deploy again",
                cmd.region, cmd.generation
            ))
        }
    } else {
        // Newer than what is stored (published by hand): it becomes the desired state.
        return None;
    })
}

/// The verdict on a destroy against `stored`: refused when a generation newer than the destroy's still
/// (or again) holds the region, or the destroy's own generation holds it.
pub fn judge_destroy(stored: Option<&DesiredDeployment>, cmd: &DestroyRegion) -> Option<Verdict> {
    let stored = stored?;
    let holds = stored.deployment.region(&cmd.region).is_some();
    Some(if stored.generation > cmd.generation && holds {
        Verdict::Stale(format!(
            "stale destroy of region {} of deployment {}: issued for generation {}, but generation {} deploys \
             the region again; destroy it again if that is still wanted",
            cmd.region, cmd.deployment, cmd.generation, stored.generation
        ))
    } else if stored.generation == cmd.generation && holds {
        Verdict::Stale(format!(
            "conflicting destroy of region {} of deployment {}: generation {} still holds the region (withdraw \
             it first: flotilla destroy does)",
            cmd.region, cmd.deployment, cmd.generation
        ))
    } else if stored.generation >= cmd.generation || !holds {
        Verdict::Proceed
    } else {
        // Newer than what is stored and the region still there (published by hand): withdraw it first.
        return None;
    })
}

/// What a command makes of the stored desired state: nothing to write, or a newer state to store.
enum Step<T> {
    Done(T),
    Write(Box<DesiredDeployment>, T),
}

fn retry(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::retry(format!("desired state: {e}"))
}

impl Provisioner {
    /// Refuses a stale apply; stores a newer one (published by hand) as the desired state.
    pub async fn check_apply(&self, cmd: &ApplyRegion) -> Result<(), HandlerError> {
        if cmd.generation == 0 {
            return Err(HandlerError::Reject(
                "the apply carries no generation: issue it with `flotilla deploy` (which has the spec accepted \
                 through flotilla.api.provisioner.accept first), or set `generation` above the stored one"
                    .into(),
            ));
        }
        self.judge_and_store(&cmd.deployment.name, (), |stored| {
            Ok(match judge_apply(stored.map(|s| &s.value), cmd) {
                Some(Verdict::Proceed) => Step::Done(()),
                Some(Verdict::Stale(why)) => return Err(HandlerError::Superseded(why)),
                None => Step::Write(
                    Box::new(DesiredDeployment {
                        generation: cmd.generation,
                        deployment: cmd.deployment.clone(),
                        updated_at: chrono::Utc::now(),
                        updated_by: cmd.meta.issued_by.clone(),
                    }),
                    (),
                ),
            })
        })
        .await
    }

    /// Refuses a stale destroy; withdraws the region from the desired state for a newer one published by
    /// hand. `Ok(false)` when the deployment was never deployed and the region is not recorded (unknown).
    pub async fn check_destroy(&self, cmd: &DestroyRegion) -> Result<bool, HandlerError> {
        if cmd.generation == 0 {
            return Err(HandlerError::Reject(
                "the destroy carries no generation: issue it with `flotilla destroy` (which withdraws the region \
                 through flotilla.api.provisioner.withdraw first)"
                    .into(),
            ));
        }
        self.judge_and_store(&cmd.deployment, true, |stored| {
            let Some(current) = stored else {
                return Ok(Step::Done(false));
            };
            Ok(match judge_destroy(Some(&current.value), cmd) {
                Some(Verdict::Proceed) => Step::Done(true),
                Some(Verdict::Stale(why)) => return Err(HandlerError::Superseded(why)),
                None => {
                    let mut deployment = current.value.deployment.clone();
                    deployment.regions.retain(|r| r.name != cmd.region);
                    Step::Write(
                        Box::new(DesiredDeployment {
                            generation: cmd.generation,
                            deployment,
                            updated_at: chrono::Utc::now(),
                            updated_by: cmd.meta.issued_by.clone(),
                        }),
                        true,
                    )
                }
            })
        })
        .await
    }

    /// Reads the deployment's desired state, asks `decide` what to make of it and writes what it says by
    /// compare-and-set, deciding again on a lost race. `without_kv` is the answer when this provisioner
    /// keeps no desired state.
    async fn judge_and_store<T>(
        &self,
        name: &str,
        without_kv: T,
        decide: impl Fn(Option<&Versioned<DesiredDeployment>>) -> Result<Step<T>, HandlerError>,
    ) -> Result<T, HandlerError> {
        let Some(shared) = self.shared() else {
            return Ok(without_kv);
        };
        for _ in 0..CAS_ATTEMPTS {
            let stored = shared.desired.get(name).await.map_err(retry)?;
            match decide(stored.as_ref())? {
                Step::Done(answer) => return Ok(answer),
                Step::Write(next, answer) => {
                    if shared
                        .desired
                        .put(&next, stored.as_ref())
                        .await
                        .map_err(retry)?
                        .is_ok()
                    {
                        return Ok(answer);
                    }
                }
            }
        }
        Err(retry("kept losing the compare-and-set to other writers"))
    }

    /// `flotilla.api.provisioner.accept`: validates `req.deployment` and makes it the desired state with the
    /// next generation — or, when it equals the stored spec, answers the stored generation unchanged.
    pub async fn accept(&self, req: AcceptDeployment) -> Result<Accepted, ApiFailure> {
        let name = req.deployment.name.clone();
        flotilla_bus::subject::check_token("deployment", &name).map_err(ApiFailure::bad_request)?;
        req.deployment
            .check()
            .map_err(|e| ApiFailure::bad_request(format!("deployment {name} is not valid: {e}")))?;
        let shared = self
            .shared()
            .ok_or_else(|| ApiFailure::internal("this provisioner keeps no desired state (no NATS KV)"))?;
        self.write_desired(
            shared,
            &name,
            |stored| match stored {
                Some(s) if s.value.deployment == req.deployment => None,
                _ => Some(req.deployment.clone()),
            },
            &req.issued_by,
        )
        .await
    }

    /// `flotilla.api.provisioner.withdraw`: removes regions from the desired state (before their destroy).
    pub async fn withdraw(&self, req: WithdrawRegions) -> Result<Accepted, ApiFailure> {
        flotilla_bus::subject::check_token("deployment", &req.deployment).map_err(ApiFailure::bad_request)?;
        let shared = self
            .shared()
            .ok_or_else(|| ApiFailure::internal("this provisioner keeps no desired state (no NATS KV)"))?;
        let stored = shared
            .desired
            .get(&req.deployment)
            .await
            .map_err(ApiFailure::internal)?;
        if stored.is_none() {
            return Err(ApiFailure {
                code: 404,
                message: format!("deployment {} was never deployed", req.deployment),
            });
        }
        self.write_desired(
            shared,
            &req.deployment,
            |stored| {
                let current = &stored?.value.deployment;
                if !current.regions.iter().any(|r| req.regions.contains(&r.name)) {
                    return None;
                }
                let mut next = current.clone();
                next.regions.retain(|r| !req.regions.contains(&r.name));
                Some(next)
            },
            &req.issued_by,
        )
        .await
    }

    /// Writes what `change` makes of the stored desired state (`None`: no change) with the next generation,
    /// by compare-and-set, retrying a lost race a few times.
    async fn write_desired(
        &self,
        shared: &Shared,
        name: &str,
        change: impl Fn(Option<&Versioned<DesiredDeployment>>) -> Option<Deployment>,
        by: &str,
    ) -> Result<Accepted, ApiFailure> {
        for _ in 0..CAS_ATTEMPTS {
            let stored = shared.desired.get(name).await.map_err(ApiFailure::internal)?;
            let Some(next) = change(stored.as_ref()) else {
                return Ok(Accepted {
                    deployment: name.to_owned(),
                    generation: stored.map_or(0, |s| s.value.generation),
                    changed: false,
                });
            };
            let next = next_generation(stored.as_ref(), next, by);
            if shared
                .desired
                .put(&next, stored.as_ref())
                .await
                .map_err(ApiFailure::internal)?
                .is_ok()
            {
                tracing::info!(deployment = %name, generation = next.generation, by, "desired state accepted");
                return Ok(Accepted {
                    deployment: name.to_owned(),
                    generation: next.generation,
                    changed: true,
                });
            }
        }
        Err(ApiFailure::internal(
            "the desired state kept changing under this request; try again",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use flotilla_proto::CommandMeta;

    /// The three-region example (the original toolkit's templates).
    fn deployment() -> Deployment {
        use flotilla_spec::TemplateSource;
        flotilla_spec::import_templates(&[
            TemplateSource::new("gb-lon.tmpl", include_str!("../../../examples/gb-lon.tmpl")),
            TemplateSource::new("nl-ams.tmpl", include_str!("../../../examples/nl-ams.tmpl")),
            TemplateSource::new("ch-gva-2.tmpl", include_str!("../../../examples/ch-gva-2.tmpl")),
        ])
        .unwrap()
        .deployment
    }

    fn stored(generation: u64, deployment: Deployment) -> DesiredDeployment {
        DesiredDeployment {
            generation,
            deployment,
            updated_at: chrono::Utc::now(),
            updated_by: "t".into(),
        }
    }

    fn apply(generation: u64, deployment: Deployment, region: &str) -> ApplyRegion {
        ApplyRegion {
            meta: CommandMeta::new("t"),
            deployment,
            region: region.into(),
            generation,
        }
    }

    #[test]
    fn an_older_apply_is_refused_unless_it_asks_the_same() {
        let old = deployment();
        let region = old.regions[0].name.clone();
        let mut new = old.clone();
        new.regions[0].scaling.max += 1;
        let s = stored(5, new.clone());
        assert!(matches!(
            judge_apply(Some(&s), &apply(4, old.clone(), &region)),
            Some(Verdict::Stale(_))
        ));
        assert_eq!(
            judge_apply(Some(&s), &apply(4, new.clone(), &region)),
            Some(Verdict::Proceed)
        );
        assert_eq!(
            judge_apply(Some(&s), &apply(5, new.clone(), &region)),
            Some(Verdict::Proceed)
        );
        assert!(matches!(
            judge_apply(Some(&s), &apply(5, old.clone(), &region)),
            Some(Verdict::Stale(_))
        ));
        assert_eq!(judge_apply(Some(&s), &apply(6, old, &region)), None);
        assert_eq!(judge_apply(None, &apply(1, new, &region)), None);
    }

    #[test]
    fn an_older_destroy_never_removes_a_region_deployed_again() {
        let d = deployment();
        let region = d.regions[0].name.clone();
        let destroy = |generation| DestroyRegion {
            meta: CommandMeta::new("t"),
            deployment: d.name.clone(),
            region: region.clone(),
            generation,
        };
        let mut without = d.clone();
        without.regions.retain(|r| r.name != region);
        // Deployed again at 7 after the destroy of 6: the late destroy is refused.
        assert!(matches!(
            judge_destroy(Some(&stored(7, d.clone())), &destroy(6)),
            Some(Verdict::Stale(_))
        ));
        // The destroy's own withdrawal (6), or later ones without the region: go ahead (idempotent).
        assert_eq!(
            judge_destroy(Some(&stored(6, without.clone())), &destroy(6)),
            Some(Verdict::Proceed)
        );
        assert_eq!(
            judge_destroy(Some(&stored(8, without)), &destroy(6)),
            Some(Verdict::Proceed)
        );
        assert!(matches!(
            judge_destroy(Some(&stored(6, d.clone())), &destroy(6)),
            Some(Verdict::Stale(_))
        ));
        assert_eq!(judge_destroy(Some(&stored(5, d.clone())), &destroy(6)), None);
    }
}
