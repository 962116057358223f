//! The record loop: follow the desired state, the fleet view and the health view; on a change (debounced)
//! and on a periodic resync, reconcile each deployment's records — desired sets ([`plan::desired`]) →
//! the zone's A records (one list) → [`plan::plan`] → apply — by the one replica holding the
//! deployment's lease (`dns.<deployment>`).
//!
//! Ownership in this first version is the record's comment mark, which only Cloudflare keeps: on the other
//! providers the service creates records but, until its ownership registry lands, deletes none of them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flotilla_bus::lease::{Acquire, Leases};
use flotilla_bus::state::{Change, DesiredStates, FleetView, HealthView};
use flotilla_bus::{BusError, TopologyConfig};
use flotilla_cloud::{DnsBatch, ProviderKind};
use flotilla_clouds::Clouds;
use flotilla_proto::{ExcludedMachine, MachineHealth, MachineRecord, NameView, RecordsView, ShowRecords};
use flotilla_runtime::ApiFailure;
use flotilla_spec::Deployment;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::plan::{self, Observed, Policy};

/// The dns service's settings (`[service]` in its configuration).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// How often every deployment is reconciled even when nothing changed.
    #[serde(with = "humantime_serde")]
    pub resync_interval: Duration,
    /// Changes within this window are reconciled together.
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// `sync`, `upsert-only` or `create-only`.
    pub policy: PolicySetting,
    /// How long a replica's hold on a deployment's records lasts unless renewed.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

/// [`Policy`] as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicySetting {
    /// Create and delete.
    #[default]
    Sync,
    /// Never delete.
    UpsertOnly,
    /// Only create.
    CreateOnly,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(60),
            debounce: Duration::from_millis(250),
            policy: PolicySetting::Sync,
            lease_ttl: Duration::from_secs(30),
        }
    }
}

impl flotilla_runtime::ServiceSettings for Settings {
    fn validate(&self, bus: &TopologyConfig) -> Result<(), String> {
        if self.resync_interval.is_zero() {
            return Err("resync_interval must be positive".into());
        }
        if self.lease_ttl < Duration::from_secs(3) || self.lease_ttl > bus.lease_max_age {
            return Err(format!(
                "lease_ttl {:?} must be at least 3s and at most bus.lease_max_age {:?}",
                self.lease_ttl, bus.lease_max_age
            ));
        }
        Ok(())
    }
}

/// What the loop keeps.
#[derive(Default)]
struct World {
    deployments: BTreeMap<String, Deployment>,
    fleet: BTreeMap<String, MachineRecord>,
    health: BTreeMap<String, MachineHealth>,
    /// The sets last published, per deployment and name.
    last: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

/// The record loop of one process.
pub struct RecordLoop {
    settings: Settings,
    clouds: Clouds,
    desired: DesiredStates,
    fleet: FleetView,
    health: HealthView,
    leases: Leases,
    instance: String,
}

impl RecordLoop {
    /// A loop over these views, writing through `clouds`.
    pub fn new(
        settings: Settings,
        clouds: Clouds,
        desired: DesiredStates,
        fleet: FleetView,
        health: HealthView,
        leases: Leases,
    ) -> Self {
        Self {
            settings,
            clouds,
            desired,
            fleet,
            health,
            leases,
            instance: uuid::Uuid::now_v7().to_string(),
        }
    }

    /// Runs until `stop`.
    pub async fn run(&self, stop: CancellationToken) {
        loop {
            match self.follow(&stop).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "dns: following the views failed; starting again");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn follow(&self, stop: &CancellationToken) -> Result<(), BusError> {
        let mut desired = self.desired.follow(None).await?;
        let mut fleet = self.fleet.follow(None).await?;
        let mut health = self.health.follow(None).await?;
        let mut world = World::default();
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut resync = tokio::time::interval(self.settings.resync_interval);
        let debounce = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(debounce);
        let mut armed = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                c = desired.next() => match c {
                    None => return Err(BusError::Options("the desired-state follower ended".into())),
                    Some(Ok(Change::Put { value, .. })) => {
                        dirty.insert(value.deployment.name.clone());
                        world.deployments.insert(value.deployment.name.clone(), value.deployment);
                    }
                    Some(Ok(Change::Removed { key, .. })) => {
                        world.deployments.remove(&key);
                    }
                    Some(Ok(Change::Current)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "dns: a desired state that does not decode"),
                },
                c = fleet.next() => match c {
                    None => return Err(BusError::Options("the fleet follower ended".into())),
                    Some(Ok(Change::Put { key, value, .. })) => {
                        dirty.insert(value.deployment.clone());
                        world.fleet.insert(key, value);
                    }
                    Some(Ok(Change::Removed { key, previous })) => {
                        if let Some(p) = previous {
                            dirty.insert(p.deployment);
                        }
                        world.fleet.remove(&key);
                    }
                    Some(Ok(Change::Current)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "dns: a fleet record that does not decode"),
                },
                c = health.next() => match c {
                    None => return Err(BusError::Options("the health follower ended".into())),
                    Some(Ok(Change::Put { key, value, .. })) => {
                        dirty.insert(value.deployment.clone());
                        world.health.insert(key, value);
                    }
                    Some(Ok(Change::Removed { key, previous })) => {
                        if let Some(p) = previous {
                            dirty.insert(p.deployment);
                        }
                        world.health.remove(&key);
                    }
                    Some(Ok(Change::Current)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "dns: a health record that does not decode"),
                },
                _ = resync.tick() => {
                    dirty.extend(world.deployments.keys().cloned());
                }
                _ = &mut debounce, if armed => {
                    armed = false;
                    for name in std::mem::take(&mut dirty) {
                        tokio::select! {
                            _ = stop.cancelled() => return Ok(()),
                            r = self.reconcile(&mut world, &name) => if let Err(e) = r {
                                tracing::warn!(deployment = %name, error = %e, "dns: reconcile failed; tried again at the next change or resync");
                            }
                        }
                    }
                    continue;
                }
            }
            if !dirty.is_empty() && !armed {
                debounce
                    .as_mut()
                    .reset(tokio::time::Instant::now() + self.settings.debounce);
                armed = true;
            }
        }
    }

    /// Makes one deployment's records what its fleet and health say.
    async fn reconcile(&self, world: &mut World, name: &str) -> Result<(), String> {
        let Some(deployment) = world.deployments.get(name).cloned() else {
            return Ok(());
        };
        let Some(primary) = deployment.primary_region().cloned() else {
            // Every region withdrawn: nothing to publish from (the records stay until a region is back).
            return Ok(());
        };
        let key = format!("dns.{name}");
        match self
            .leases
            .acquire(&key, &self.instance, self.settings.lease_ttl)
            .await
            .map_err(|e| e.to_string())?
        {
            Acquire::Acquired { .. } => {}
            Acquire::Held(by) => {
                tracing::debug!(deployment = %name, holder = %by.holder, "dns: another replica keeps these records");
                return Ok(());
            }
        }
        let observed = Observed {
            fleet: world.fleet.values().filter(|m| m.deployment == name).collect(),
            health: world
                .health
                .values()
                .filter(|h| h.deployment == name)
                .map(|h| (h.resource_id.clone(), h))
                .collect(),
            last: world.last.get(name).cloned().unwrap_or_default(),
            active_authenticator_region: None,
        };
        let (sets, alarms) = plan::desired(&deployment, &observed);
        for alarm in &alarms {
            tracing::error!(deployment = %name, ?alarm, "dns: every endpoint of a name is gone; its last set is kept");
        }
        let now = self.read_zone(name, &deployment, &primary).await?;
        let (dns, zone) = (&now.dns, &now.zone);
        let p = plan::plan(
            &sets,
            &now.current,
            |r| now.owned(r),
            now.mark(),
            now.provider,
            self.policy(now.marks),
        );
        for conflict in &p.conflicts {
            tracing::warn!(
                deployment = %name, record = %conflict.record.name, content = %conflict.record.content,
                reason = %conflict.reason, "dns: a record at a managed name is not ours; left alone"
            );
        }
        if !p.is_empty() {
            tracing::info!(
                deployment = %name, zone = %zone.name, creates = p.creates.len(), deletes = p.deletes.len(),
                "dns: applying"
            );
            dns.apply_batch(
                zone,
                &DnsBatch {
                    deletes: p.deletes.iter().map(|r| r.id.clone()).collect(),
                    updates: Vec::new(),
                    creates: p.creates.clone(),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        world.last.insert(
            name.to_owned(),
            sets.into_iter().map(|s| (s.name, s.addresses)).collect(),
        );
        Ok(())
    }
}

impl RecordLoop {
    /// `flotilla.api.dns.records`: what a run would do to a deployment's records now, with the conflicts
    /// and why each left-out machine is left out. Reads the views afresh and the zone once; changes
    /// nothing.
    pub async fn show(&self, req: ShowRecords) -> Result<RecordsView, ApiFailure> {
        flotilla_bus::subject::check_token("deployment", &req.deployment).map_err(ApiFailure::bad_request)?;
        let deployment = self
            .desired
            .get(&req.deployment)
            .await
            .map_err(ApiFailure::internal)?
            .map(|v| v.value.deployment)
            .ok_or_else(|| ApiFailure {
                code: 404,
                message: format!("deployment {} is not deployed", req.deployment),
            })?;
        let primary = deployment.primary_region().cloned().ok_or_else(|| ApiFailure {
            code: 404,
            message: format!("deployment {} has no primary region deployed", req.deployment),
        })?;
        let fleet = self
            .fleet
            .snapshot(Some(&req.deployment))
            .await
            .map_err(ApiFailure::internal)?;
        let health = self
            .health
            .snapshot(Some(&req.deployment))
            .await
            .map_err(ApiFailure::internal)?;
        let observed = Observed {
            fleet: fleet.values().collect(),
            health: health.values().map(|h| (h.resource_id.clone(), h)).collect(),
            last: BTreeMap::new(),
            active_authenticator_region: None,
        };
        let (sets, alarms) = plan::desired(&deployment, &observed);
        let now = self
            .read_zone(&req.deployment, &deployment, &primary)
            .await
            .map_err(ApiFailure::internal)?;
        let names = sets
            .iter()
            .map(|set| {
                let p = plan::plan(
                    std::slice::from_ref(set),
                    &now.current,
                    |r| now.owned(r),
                    now.mark(),
                    now.provider,
                    self.policy(now.marks),
                );
                NameView {
                    name: set.name.clone(),
                    desired: set.addresses.iter().cloned().collect(),
                    current: now
                        .current
                        .iter()
                        .filter(|r| r.kind == "A" && r.name.eq_ignore_ascii_case(&set.name) && now.owned(r))
                        .map(|r| r.content.clone())
                        .collect(),
                    creates: p.creates.iter().map(|r| r.content.clone()).collect(),
                    deletes: p.deletes.iter().map(|r| r.content.clone()).collect(),
                    conflicts: p
                        .conflicts
                        .iter()
                        .map(|c| format!("{} ({})", c.record.content, c.reason))
                        .collect(),
                }
            })
            .collect();
        Ok(RecordsView {
            deployment: req.deployment.clone(),
            zone: now.zone.name.clone(),
            provider: now.provider.as_str().to_owned(),
            names,
            excluded: plan::excluded(&deployment, &observed)
                .into_iter()
                .map(|(m, why)| ExcludedMachine {
                    resource_id: m.resource_id.clone(),
                    region: m.region.clone(),
                    role: m.role.clone(),
                    public_ipv4: m.public_ipv4.clone(),
                    why,
                })
                .collect(),
            alarms: alarms
                .iter()
                .map(|a| match a {
                    plan::Alarm::NoHealthyEndpoint { name, kept } => format!(
                        "every endpoint of {name} is gone; the last set is kept ({})",
                        kept.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                })
                .collect(),
        })
    }

    /// A deployment's zone as it stands: its adapter (with the DNS credentials of `primary`), the zone and
    /// its A records, read once.
    async fn read_zone(
        &self,
        name: &str,
        deployment: &Deployment,
        primary: &flotilla_spec::Region,
    ) -> Result<ZoneNow, String> {
        let dns = self
            .clouds
            .dns(name, deployment.dns.provider, primary)
            .map_err(|e| e.to_string())?;
        let zone = dns
            .find_zone(&deployment.dns.zone)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("zone {} is not in the DNS account", deployment.dns.zone))?;
        let current = dns
            .list_records(&zone, None, Some("A"))
            .await
            .map_err(|e| e.to_string())?;
        let provider = dns.provider();
        Ok(ZoneNow {
            dns,
            zone,
            current,
            provider,
            marks: provider == ProviderKind::Cloudflare,
            mark: plan::owner_mark(name),
        })
    }

    /// The policy in force: without ownership marks nothing is known to be ours, so nothing is deleted.
    fn policy(&self, marks: bool) -> Policy {
        match (self.settings.policy, marks) {
            (PolicySetting::Sync, true) => Policy::Sync,
            (PolicySetting::Sync | PolicySetting::UpsertOnly, _) => Policy::UpsertOnly,
            (PolicySetting::CreateOnly, _) => Policy::CreateOnly,
        }
    }
}

/// A deployment's zone as read by [`RecordLoop::read_zone`].
struct ZoneNow {
    dns: std::sync::Arc<dyn flotilla_cloud::Dns>,
    zone: flotilla_cloud::Zone,
    current: Vec<flotilla_cloud::DnsRecord>,
    provider: ProviderKind,
    /// Whether the provider keeps the ownership mark (record comments: Cloudflare).
    marks: bool,
    mark: String,
}

impl ZoneNow {
    /// Whether `record` is the deployment's (marked as ours; without marks nothing is known to be).
    fn owned(&self, record: &flotilla_cloud::DnsRecord) -> bool {
        self.marks && record.comment.as_deref() == Some(self.mark.as_str())
    }

    /// The mark new records carry, where the provider keeps it.
    fn mark(&self) -> Option<&str> {
        self.marks.then_some(self.mark.as_str())
    }
}

/// Starts the record loop of a service and its API.
pub fn start(ctx: &flotilla_runtime::Context<Settings>) {
    let records = RecordLoop::new(
        ctx.config.service.clone(),
        Clouds::new(ctx.config.clouds.clone(), ctx.config.secrets_file.clone()),
        ctx.desired(),
        ctx.fleet(),
        ctx.topology.health_view(),
        ctx.leases(),
    );
    let records = std::sync::Arc::new(records);
    let api = std::sync::Arc::clone(&records);
    ctx.api("records", move |req: ShowRecords| {
        let api = std::sync::Arc::clone(&api);
        async move { api.show(req).await }
    });
    let stop = ctx.shutdown.clone();
    ctx.spawn(async move { records.run(stop).await });
}
