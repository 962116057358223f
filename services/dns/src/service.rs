//! The record loop: follow the desired state, the fleet view and the health view; on a change (debounced)
//! and on a periodic resync, reconcile each deployment's records — desired sets ([`plan::desired`]) →
//! the zone's A records (one list) → [`plan::plan`] → apply — by the one replica holding the
//! deployment's lease (`dns.<deployment>`), on the loop every reacting service shares
//! ([`flotilla_runtime::deployments`]). A reconcile that fails is tried again with a growing delay (a 429
//! storm slows convergence, never stops it).
//!
//! Ownership: a record is the deployment's when its ownership registry ([`DnsStore`]) says so, or, on
//! Cloudflare, when it carries the deployment's comment mark. Every record change, alarm and authenticator
//! move is an event; the API answers what a run would do, hands ownership over and adopts records the
//! original toolkit wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flotilla_bus::state::{DesiredStates, FleetView, HealthView};
use flotilla_bus::{HandlerError, Publisher, TopologyConfig};
use flotilla_cloud::{DnsBatch, DnsChange, DnsRecord, ProviderKind};
use flotilla_clouds::Clouds;
use flotilla_proto::{
    ALL_REGIONS, Adopt, AuthenticatorMoved, DnsAlarm, EventMeta, ExcludedMachine, FailoverAuthenticator,
    HandOver, NameView, OwnershipChanged, ReconcileRecords, RecordsChanged, RecordsView, ShowRecords,
};
use flotilla_runtime::ApiFailure;
use flotilla_runtime::deployments::{DeploymentLoop, LoopSettings, Nudge, Ran, Reconciler, Sources, Views};
use flotilla_spec::Deployment;
use serde::Deserialize;

use crate::plan::{self, Alarm, Observed, Policy};
use crate::store::{DnsStore, Owned};

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
    /// Move the authenticator name to a healthy standby region when every authenticator of the active
    /// region is down.
    pub auto_failover: bool,
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
            auto_failover: true,
        }
    }
}

impl Settings {
    /// The loop's timing.
    pub fn loop_settings(&self) -> LoopSettings {
        LoopSettings {
            resync: self.resync_interval,
            debounce: self.debounce,
            lease_ttl: self.lease_ttl,
        }
    }
}

impl flotilla_runtime::ServiceSettings for Settings {
    fn validate(&self, bus: &TopologyConfig) -> Result<(), String> {
        self.loop_settings().validate(bus)
    }
}

/// The record loop of one process, and the API and command handlers that share its views.
pub struct RecordLoop {
    settings: Settings,
    clouds: Clouds,
    desired: DesiredStates,
    fleet: FleetView,
    health: HealthView,
    store: DnsStore,
    publisher: Publisher,
    /// Asks the loop running this service for a deployment's run (set by [`start`]).
    nudge: std::sync::OnceLock<Nudge>,
    /// The names of each deployment with an alarm raised (an event is published when one is raised and
    /// when it clears).
    alarmed: std::sync::Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Zones found, by deployment/DNS provider and zone name: a zone's id does not change, so a no-op run
    /// reads only its records (one call).
    zones: std::sync::Mutex<BTreeMap<(String, String), flotilla_cloud::Zone>>,
}

/// What [`RecordLoop::new`] needs.
pub struct Parts {
    /// The desired-state bucket.
    pub desired: DesiredStates,
    /// The fleet view.
    pub fleet: FleetView,
    /// The health view.
    pub health: HealthView,
    /// The service's database.
    pub store: DnsStore,
    /// Where events go.
    pub publisher: Publisher,
}

impl RecordLoop {
    /// A loop over these views, writing through `clouds`.
    pub fn new(settings: Settings, clouds: Clouds, parts: Parts) -> Self {
        Self {
            settings,
            clouds,
            desired: parts.desired,
            fleet: parts.fleet,
            health: parts.health,
            store: parts.store,
            publisher: parts.publisher,
            nudge: std::sync::OnceLock::new(),
            alarmed: std::sync::Mutex::new(BTreeMap::new()),
            zones: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Connects the service to the loop that runs it (for its commands and API calls).
    pub fn attach(&self, nudge: Nudge) {
        let _ = self.nudge.set(nudge);
    }

    /// Asks the loop for a run of `deployment` soon.
    fn nudge(&self, deployment: &str) {
        if let Some(n) = self.nudge.get() {
            n.deployment(deployment);
        }
    }

    /// Makes one deployment's records what its fleet and health say (the loop holds its lease).
    async fn reconcile_records(&self, views: &Views, name: &str) -> Result<Ran, String> {
        let Some(deployment) = views.deployments.get(name).cloned() else {
            return Ok(Ran::Done);
        };
        let Some(primary) = deployment.primary_region().cloned() else {
            // Every region withdrawn: nothing to publish from (the records stay until a region is back).
            return Ok(Ran::Done);
        };
        let now = self.read_zone(name, &deployment, &primary).await?;
        let recorded = self
            .store
            .active_authenticator(name)
            .await
            .map_err(|e| e.to_string())?;
        let mut observed = Observed {
            fleet: views.machines(name).collect(),
            health: views
                .health
                .values()
                .filter(|h| h.deployment == name)
                .map(|h| (h.resource_id.clone(), h))
                .collect(),
            ..Observed::default()
        };
        let a = self.assess(
            &deployment,
            &mut observed,
            &now,
            recorded.as_ref().map(|r| r.region.as_str()),
        );
        if let Some(moved) = &a.moved {
            let expected = Some(recorded.as_ref().map(|r| r.region.as_str()));
            self.move_authenticator(name, moved, None, expected).await?;
        }
        self.announce_alarms(name, &a.alarms).await;
        for conflict in &a.plan.conflicts {
            tracing::debug!(
                deployment = %name, record = %conflict.record.name, content = %conflict.record.content,
                reason = %conflict.reason, "dns: a record at a managed name is not ours; left alone"
            );
        }
        let released_after_delete = self.prepare_registry(&now, &a).await?;
        if a.plan.is_empty() {
            return Ok(Ran::Done);
        }
        tracing::info!(
            deployment = %name, zone = %now.zone.name, creates = a.plan.creates.len(), deletes = a.plan.deletes.len(),
            "dns: applying"
        );
        // Creates first, then deletes. Applied change by change (providers without a batch endpoint, or a
        // Cloudflare batch refused and replayed), deletes first could leave a name with no record when a
        // create is refused or interrupted; a name whose create was refused keeps its old records.
        let (provider, zone_name) = (now.provider.as_str(), now.zone.name.as_str());
        let mut refused: BTreeMap<(String, String), String> = BTreeMap::new();
        if !a.plan.creates.is_empty() {
            let creates = DnsBatch {
                creates: a.plan.creates.clone(),
                ..DnsBatch::default()
            };
            let report = now
                .dns
                .apply_batch(&now.zone, &creates)
                .await
                .map_err(|e| e.to_string())?;
            note_refusals(name, &report, &a.plan, &mut refused);
            // A refused create made nothing: its claim must not make a record someone adds later ours.
            for (record_name, content) in refused.keys() {
                self.store
                    .release(provider, zone_name, record_name, content, name)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let held_back: BTreeSet<&str> = refused.keys().map(|(n, _)| n.as_str()).collect();
        let deletes: Vec<DnsRecord> = a
            .plan
            .deletes
            .iter()
            .filter(|r| !held_back.contains(r.name.to_ascii_lowercase().as_str()))
            .cloned()
            .collect();
        if !deletes.is_empty() {
            let batch = DnsBatch {
                deletes: deletes.iter().map(|r| r.id.clone()).collect(),
                ..DnsBatch::default()
            };
            let report = now
                .dns
                .apply_batch(&now.zone, &batch)
                .await
                .map_err(|e| e.to_string())?;
            note_refusals(name, &report, &a.plan, &mut refused);
        }
        let deleted: BTreeSet<(String, String)> = deletes
            .iter()
            .map(|r| (r.name.to_ascii_lowercase(), r.content.clone()))
            .collect();
        for key in released_after_delete {
            if deleted.contains(&key) && !refused.contains_key(&key) {
                self.store
                    .release(provider, zone_name, &key.0, &key.1, name)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let applied = plan::Plan {
            creates: a.plan.creates.clone(),
            deletes,
            conflicts: Vec::new(),
        };
        self.announce_changes(name, &now, &applied, &refused).await;
        Ok(Ran::Done)
    }

    /// Everything a run decides for a deployment from the views (`observed`: its fleet and health) and one
    /// read of its zone: which region's authenticator is active, the wanted sets, the alarms and the plan.
    /// `observed` is completed with the active region and the sets the zone holds of ours (a name whose
    /// endpoints are all gone keeps those, even across a restart).
    fn assess(
        &self,
        deployment: &Deployment,
        observed: &mut Observed<'_>,
        now: &ZoneNow,
        recorded: Option<&str>,
    ) -> Assessment {
        let (active, moved) =
            plan::choose_authenticator(deployment, observed, recorded, self.settings.auto_failover);
        observed.active_authenticator_region = active.clone();
        observed.last = now.owned_sets();
        let (sets, alarms) = plan::desired(deployment, observed);
        let mark = now.mark();
        let mut p = plan::plan(
            &sets,
            &now.current,
            |r| now.owned(r),
            mark.as_deref(),
            now.provider,
            self.policy(),
        );
        for conflict in &mut p.conflicts {
            if let Some(owner) = now.other_owner(&conflict.record) {
                conflict.reason = format!("owned by deployment {owner}");
            }
        }
        Assessment {
            sets,
            alarms,
            plan: p,
            active,
            moved,
        }
    }

    /// Brings the ownership registry in step with a plan before it is applied: each address about to be
    /// created is claimed (id unknown) first; each kept record is bound to its row; the rows of records that
    /// are gone are released. Returns the rows to release once their records' deletes succeed.
    async fn prepare_registry(&self, now: &ZoneNow, a: &Assessment) -> Result<Vec<(String, String)>, String> {
        let (provider, zone, me) = (
            now.provider.as_str(),
            now.zone.name.as_str(),
            now.deployment.as_str(),
        );
        let err = |e: flotilla_store::StoreError| e.to_string();
        let managed: BTreeSet<String> = a.sets.iter().map(|s| s.name.to_ascii_lowercase()).collect();
        let creating: BTreeSet<(String, String)> = a
            .plan
            .creates
            .iter()
            .map(|c| (c.name.to_ascii_lowercase(), c.content.clone()))
            .collect();
        for (record_name, content) in &creating {
            let bound = now.rows.iter().any(|o| {
                o.owner == me && &o.name == record_name && &o.content == content && o.record_id.is_none()
            });
            if !bound {
                self.store
                    .claim(provider, zone, record_name, content, me, None)
                    .await
                    .map_err(err)?;
            }
        }
        let deleting: BTreeSet<&str> = a.plan.deletes.iter().map(|r| r.id.as_str()).collect();
        let at = |r: &DnsRecord| (r.name.to_ascii_lowercase(), r.content.clone());
        let mut kept: BTreeMap<(String, String), &str> = BTreeMap::new();
        for r in &now.current {
            if r.kind == "A"
                && now.owned(r)
                && !deleting.contains(r.id.as_str())
                && managed.contains(&at(r).0)
            {
                kept.entry(at(r)).or_insert(r.id.as_str());
            }
        }
        for ((record_name, content), id) in &kept {
            let row = now
                .rows
                .iter()
                .find(|o| o.owner == me && &o.name == record_name && &o.content == content);
            if row.is_none_or(|o| o.record_id.as_deref() != Some(*id)) {
                self.store
                    .claim(provider, zone, record_name, content, me, Some(id))
                    .await
                    .map_err(err)?;
            }
        }
        let mut after_delete = Vec::new();
        for o in now
            .rows
            .iter()
            .filter(|o| o.owner == me && managed.contains(&o.name))
        {
            let key = (o.name.clone(), o.content.clone());
            if creating.contains(&key) || kept.contains_key(&key) {
                continue;
            }
            let still_there = now.current.iter().any(|r| at(r) == key && now.owned(r));
            if still_there {
                after_delete.push(key);
            } else {
                self.store
                    .release(provider, zone, &o.name, &o.content, me)
                    .await
                    .map_err(err)?;
            }
        }
        Ok(after_delete)
    }

    /// Records a move of the authenticator name and announces it (`cause` of a command, or the loop's).
    async fn move_authenticator(
        &self,
        deployment: &str,
        moved: &plan::Move,
        cause: Option<&flotilla_proto::CommandMeta>,
        expected: Option<Option<&str>>,
    ) -> Result<(), String> {
        let (changed, _) = self
            .store
            .set_active_authenticator(deployment, &moved.to, moved.cause, &moved.reason, expected)
            .await
            .map_err(|e| e.to_string())?;
        if !changed {
            return Ok(());
        }
        tracing::warn!(deployment, from = %moved.from, to = %moved.to, reason = %moved.reason, "dns: the authenticator name moves");
        let meta = match cause {
            Some(c) => EventMeta::derived(c, "authenticator-moved", "dns"),
            None => EventMeta::new(uuid::Uuid::now_v7(), "dns"),
        };
        let event = AuthenticatorMoved {
            meta,
            deployment: deployment.to_owned(),
            region: moved.to.clone(),
            from: Some(moved.from.clone()),
            cause: moved.cause.to_owned(),
            reason: moved.reason.clone(),
        };
        if let Err(e) = self.publisher.publish_event(&event).await {
            tracing::warn!(deployment, error = %e, "dns: the authenticator-moved event was not published");
        }
        Ok(())
    }

    /// Publishes an alarm event for each alarm raised since the last run, and a cleared one for each gone.
    async fn announce_alarms(&self, deployment: &str, alarms: &[Alarm]) {
        let now: BTreeMap<&str, &BTreeSet<String>> = alarms
            .iter()
            .map(|a| match a {
                Alarm::NoHealthyEndpoint { name, kept } => (name.as_str(), kept),
            })
            .collect();
        let before = self
            .alarmed
            .lock()
            .ok()
            .and_then(|mut a| a.remove(deployment))
            .unwrap_or_default();
        let mut events = Vec::new();
        for (record_name, kept) in &now {
            if !before.contains(*record_name) {
                let kept: Vec<String> = kept.iter().cloned().collect();
                tracing::error!(deployment, name = %record_name, kept = ?kept,
                    "dns: every endpoint of a name is gone; its last set is kept");
                events.push((record_name.to_string(), true, kept));
            }
        }
        for record_name in &before {
            if !now.contains_key(record_name.as_str()) {
                tracing::info!(deployment, name = %record_name, "dns: a name has healthy endpoints again");
                events.push((record_name.clone(), false, Vec::new()));
            }
        }
        if let Ok(mut alarmed) = self.alarmed.lock() {
            alarmed.insert(
                deployment.to_owned(),
                now.keys().map(|n| (*n).to_owned()).collect(),
            );
        }
        for (record_name, raised, kept) in events {
            let message = if raised {
                format!(
                    "every endpoint of {record_name} is unhealthy or gone; its last set is kept ({})",
                    kept.join(", ")
                )
            } else {
                format!("{record_name} has healthy endpoints again")
            };
            let event = DnsAlarm {
                meta: EventMeta::new(uuid::Uuid::now_v7(), "dns"),
                deployment: deployment.to_owned(),
                region: ALL_REGIONS.to_owned(),
                name: record_name,
                alarm: "no-healthy-endpoint".into(),
                raised,
                kept,
                message,
            };
            if let Err(e) = self.publisher.publish_event(&event).await {
                tracing::warn!(deployment, error = %e, "dns: an alarm event was not published");
            }
        }
    }

    /// One `records-changed` event per name the run changed.
    async fn announce_changes(
        &self,
        deployment: &str,
        now: &ZoneNow,
        p: &plan::Plan,
        refused: &BTreeMap<(String, String), String>,
    ) {
        let correlation = uuid::Uuid::now_v7();
        let mut by_name: BTreeMap<String, RecordsChanged> = BTreeMap::new();
        let changes = p
            .creates
            .iter()
            .map(|c| (c.name.as_str(), c.content.as_str(), true))
            .chain(
                p.deletes
                    .iter()
                    .map(|d| (d.name.as_str(), d.content.as_str(), false)),
            );
        for (record_name, content, create) in changes {
            let record_name = record_name.to_ascii_lowercase();
            let event = by_name
                .entry(record_name.clone())
                .or_insert_with(|| RecordsChanged {
                    meta: EventMeta::new(correlation, "dns"),
                    deployment: deployment.to_owned(),
                    region: ALL_REGIONS.to_owned(),
                    zone: now.zone.name.clone(),
                    provider: now.provider.as_str().to_owned(),
                    name: record_name.clone(),
                    created: Vec::new(),
                    deleted: Vec::new(),
                    refused: Vec::new(),
                    outcome: "changed".into(),
                });
            match refused.get(&(record_name, content.to_owned())) {
                Some(why) => event.refused.push(why.clone()),
                None if create => event.created.push(content.to_owned()),
                None => event.deleted.push(content.to_owned()),
            }
        }
        for (_, mut event) in by_name {
            if !event.refused.is_empty() {
                event.outcome = "partial".into();
            }
            if let Err(e) = self.publisher.publish_event(&event).await {
                tracing::warn!(deployment, error = %e, "dns: a records-changed event was not published");
            }
        }
    }
}

/// Adds the changes `report` says were refused to `refused`, by name and address, and logs them.
fn note_refusals(
    deployment: &str,
    report: &flotilla_cloud::BatchReport,
    p: &plan::Plan,
    refused: &mut BTreeMap<(String, String), String>,
) {
    for (change, error) in &report.refused {
        let at = match change {
            DnsChange::Create(r) => Some((r.name.to_ascii_lowercase(), r.content.clone())),
            DnsChange::Delete(id) => p
                .deletes
                .iter()
                .find(|r| &r.id == id)
                .map(|r| (r.name.to_ascii_lowercase(), r.content.clone())),
            DnsChange::Update(r) => Some((r.name.to_ascii_lowercase(), r.content.clone())),
        };
        tracing::warn!(deployment, %change, %error, "dns: the provider refused a change; the others were applied");
        if let Some(at) = at {
            refused.insert(at, format!("{change}: {error}"));
        }
    }
}

/// What [`RecordLoop::assess`] decides.
struct Assessment {
    sets: Vec<plan::RecordSet>,
    alarms: Vec<Alarm>,
    plan: plan::Plan,
    active: Option<String>,
    moved: Option<plan::Move>,
}

impl RecordLoop {
    /// `flotilla.api.dns.records`: what a run would do to a deployment's records now, with the conflicts
    /// and why each left-out machine is left out. Reads the views afresh and the zone once; changes
    /// nothing.
    pub async fn show(&self, req: ShowRecords) -> Result<RecordsView, ApiFailure> {
        let (deployment, primary) = self.deployed(&req.deployment).await?;
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
        let now = self
            .read_zone(&req.deployment, &deployment, &primary)
            .await
            .map_err(ApiFailure::internal)?;
        let recorded = self
            .store
            .active_authenticator(&req.deployment)
            .await
            .map_err(ApiFailure::internal)?;
        let mut observed = Observed {
            fleet: fleet.values().collect(),
            health: health.values().map(|h| (h.resource_id.clone(), h)).collect(),
            ..Observed::default()
        };
        let a = self.assess(
            &deployment,
            &mut observed,
            &now,
            recorded.as_ref().map(|r| r.region.as_str()),
        );
        let same = |n: &str, set: &str| n.eq_ignore_ascii_case(set);
        let names = a
            .sets
            .iter()
            .map(|set| NameView {
                name: set.name.clone(),
                desired: set.addresses.iter().cloned().collect(),
                current: now
                    .current
                    .iter()
                    .filter(|r| r.kind == "A" && same(&r.name, &set.name) && now.owned(r))
                    .map(|r| r.content.clone())
                    .collect(),
                creates: a
                    .plan
                    .creates
                    .iter()
                    .filter(|c| same(&c.name, &set.name))
                    .map(|c| c.content.clone())
                    .collect(),
                deletes: a
                    .plan
                    .deletes
                    .iter()
                    .filter(|r| same(&r.name, &set.name))
                    .map(|r| r.content.clone())
                    .collect(),
                conflicts: a
                    .plan
                    .conflicts
                    .iter()
                    .filter(|c| same(&c.record.name, &set.name))
                    .map(|c| format!("{} ({})", c.record.content, c.reason))
                    .collect(),
            })
            .collect();
        let mut alarms: Vec<String> = a
            .alarms
            .iter()
            .map(|al| match al {
                Alarm::NoHealthyEndpoint { name, kept } => format!(
                    "every endpoint of {name} is gone; the last set is kept ({})",
                    kept.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
            .collect();
        if let Some(m) = &a.moved {
            alarms.push(format!(
                "the authenticator name would move from {} to {}: {}",
                m.from, m.to, m.reason
            ));
        }
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
            alarms,
            active_authenticator: a.active,
        })
    }

    /// `flotilla.api.dns.hand-over`: the records at the deployment's names that `from` owns become the
    /// deployment's (registry rows moved, Cloudflare marks rewritten); nothing is deleted. Refused while
    /// `from` is still deployed: it would create its records again.
    pub async fn hand_over(&self, req: HandOver) -> Result<OwnershipChanged, ApiFailure> {
        let (deployment, primary) = self.deployed(&req.deployment).await?;
        let from = req
            .from
            .strip_prefix(&plan::owner_mark(""))
            .unwrap_or(&req.from)
            .to_owned();
        if from.is_empty() || from == req.deployment {
            return Err(ApiFailure::bad_request(format!(
                "cannot hand records over from {:?} to {}: name another owner",
                req.from, req.deployment
            )));
        }
        let still = self.desired.get(&from).await.map_err(ApiFailure::internal)?;
        if still.is_some_and(|d| d.value.deployment.primary_region().is_some()) {
            return Err(ApiFailure {
                code: 409,
                message: format!(
                    "deployment {from} is still deployed and would create its records again; destroy it first"
                ),
            });
        }
        let now = self
            .read_zone(&req.deployment, &deployment, &primary)
            .await
            .map_err(ApiFailure::internal)?;
        let names = self.names_of(&deployment, &req.names);
        let theirs: Vec<&DnsRecord> = now
            .current
            .iter()
            .filter(|r| names.contains(&r.name.to_ascii_lowercase()) && now.owned_by(r, &from))
            .collect();
        let records = theirs
            .iter()
            .map(|r| format!("{} {}", r.name, r.content))
            .collect();
        if !req.dry_run {
            for r in &theirs {
                self.take(&now, r, Some(&from)).await?;
            }
            self.nudge(&req.deployment);
        }
        Ok(OwnershipChanged {
            deployment: req.deployment,
            records,
            dry_run: req.dry_run,
        })
    }

    /// `flotilla.api.dns.adopt`: the A records at the deployment's names that nobody owns (no mark, no
    /// registry row: those the original toolkit wrote) become the deployment's; nothing is deleted here —
    /// the next run keeps the wanted ones and removes the stale ones.
    pub async fn adopt(&self, req: Adopt) -> Result<OwnershipChanged, ApiFailure> {
        let (deployment, primary) = self.deployed(&req.deployment).await?;
        let now = self
            .read_zone(&req.deployment, &deployment, &primary)
            .await
            .map_err(ApiFailure::internal)?;
        let names = self.names_of(&deployment, &[]);
        let orphans: Vec<&DnsRecord> = now
            .current
            .iter()
            .filter(|r| {
                names.contains(&r.name.to_ascii_lowercase())
                    && r.comment.as_deref().is_none_or(str::is_empty)
                    && now.owner_of(r).is_none()
            })
            .collect();
        let records = orphans
            .iter()
            .map(|r| format!("{} {}", r.name, r.content))
            .collect();
        if !req.dry_run {
            for r in &orphans {
                self.take(&now, r, None).await?;
            }
            self.nudge(&req.deployment);
        }
        Ok(OwnershipChanged {
            deployment: req.deployment,
            records,
            dry_run: req.dry_run,
        })
    }

    /// Makes `record` the zone's deployment's: its registry row (moved from `from`), and its mark where the
    /// provider keeps marks.
    async fn take(&self, now: &ZoneNow, record: &DnsRecord, from: Option<&str>) -> Result<(), ApiFailure> {
        let (provider, zone) = (now.provider.as_str(), now.zone.name.as_str());
        // The mark first: should the registry write fail after it, the record is still the new owner's by
        // its mark, never the old owner's by its mark and the new one's by its row.
        if let Some(mark) = now.mark()
            && record.comment.as_deref() != Some(mark.as_str())
        {
            let mut marked = record.clone();
            marked.comment = Some(mark);
            now.dns
                .update_record(&now.zone, &marked)
                .await
                .map_err(ApiFailure::internal)?;
        }
        match from {
            Some(from) => {
                self.store
                    .transfer(
                        provider,
                        zone,
                        &record.name,
                        &record.content,
                        Some(&record.id),
                        from,
                        &now.deployment,
                    )
                    .await
            }
            None => {
                self.store
                    .claim(
                        provider,
                        zone,
                        &record.name,
                        &record.content,
                        &now.deployment,
                        Some(&record.id),
                    )
                    .await
            }
        }
        .map_err(ApiFailure::internal)?;
        Ok(())
    }

    /// `dns.reconcile`: reconciles the deployment's records now (the record loop is nudged). Refused when
    /// the region is not deployed; again, nothing changes that is already right.
    pub async fn reconcile_now(&self, cmd: ReconcileRecords) -> Result<(), HandlerError> {
        self.desired.require_region(&cmd.deployment, &cmd.region).await?;
        self.nudge(&cmd.deployment);
        Ok(())
    }

    /// `dns.failover`: points the deployment's authenticator name at the region's authenticator. Refused
    /// when the deployment or region is not deployed or the region has no authenticator; again, nothing
    /// changes.
    pub async fn failover(&self, cmd: FailoverAuthenticator) -> Result<(), HandlerError> {
        let deployment = self
            .desired
            .get(&cmd.deployment)
            .await
            .map_err(|e| HandlerError::Retry {
                reason: e.to_string(),
                after: None,
            })?
            .map(|v| v.value.deployment)
            .ok_or_else(|| HandlerError::Reject(format!("deployment {} is not deployed", cmd.deployment)))?;
        let region = deployment.region(&cmd.region).ok_or_else(|| {
            HandlerError::Reject(format!(
                "deployment {} has no region {} deployed",
                cmd.deployment, cmd.region
            ))
        })?;
        if region.machines.authenticator.count == 0 {
            return Err(HandlerError::Reject(format!(
                "region {} of deployment {} has no authenticator to fail over to",
                cmd.region, cmd.deployment
            )));
        }
        let before = self
            .store
            .active_authenticator(&cmd.deployment)
            .await
            .map_err(|e| HandlerError::Retry {
                reason: e.to_string(),
                after: None,
            })?
            .map(|a| a.region)
            .or_else(|| deployment.primary_region().map(|r| r.name.clone()))
            .unwrap_or_default();
        let moved = plan::Move {
            from: before,
            to: cmd.region.clone(),
            cause: "command",
            reason: format!("fail-over by {}", cmd.meta.issued_by),
        };
        self.move_authenticator(&cmd.deployment, &moved, Some(&cmd.meta), None)
            .await
            .map_err(|reason| HandlerError::Retry { reason, after: None })?;
        self.nudge(&cmd.deployment);
        Ok(())
    }

    /// A deployment's desired state and primary region, or the API's 404.
    async fn deployed(&self, name: &str) -> Result<(Deployment, flotilla_spec::Region), ApiFailure> {
        flotilla_bus::subject::check_token("deployment", name).map_err(ApiFailure::bad_request)?;
        let deployment = self
            .desired
            .get(name)
            .await
            .map_err(ApiFailure::internal)?
            .map(|v| v.value.deployment)
            .ok_or_else(|| ApiFailure {
                code: 404,
                message: format!("deployment {name} is not deployed"),
            })?;
        let primary = deployment.primary_region().cloned().ok_or_else(|| ApiFailure {
            code: 404,
            message: format!("deployment {name} has no primary region deployed"),
        })?;
        Ok((deployment, primary))
    }

    /// The names asked for (lower case), or every name the deployment manages.
    fn names_of(&self, deployment: &Deployment, asked: &[String]) -> BTreeSet<String> {
        if asked.is_empty() {
            let (sets, _) = plan::desired(deployment, &Observed::default());
            sets.into_iter().map(|s| s.name).collect()
        } else {
            asked
                .iter()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect()
        }
    }

    /// A deployment's zone as it stands: its adapter (with the DNS credentials of `primary`), the zone and
    /// its A records, read once, and the ownership registry's rows for the zone.
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
        let key = (
            format!("{name}/{}", deployment.dns.provider),
            deployment.dns.zone.clone(),
        );
        let cached = self.zones.lock().ok().and_then(|z| z.get(&key).cloned());
        let zone = match cached {
            Some(zone) => zone,
            None => {
                let zone = dns
                    .find_zone(&deployment.dns.zone)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("zone {} is not in the DNS account", deployment.dns.zone))?;
                if let Ok(mut zones) = self.zones.lock() {
                    zones.insert(key.clone(), zone.clone());
                }
                zone
            }
        };
        let current = match dns.list_records(&zone, None, Some("A")).await {
            Ok(current) => current,
            Err(e) => {
                // The zone may be gone, or the account changed: find it again next time (not after a rate
                // limit or an outage, which would only add calls).
                let gone = e.is_not_found() || matches!(e, flotilla_cloud::CloudError::Auth { .. });
                if gone && let Ok(mut zones) = self.zones.lock() {
                    zones.remove(&key);
                }
                return Err(e.to_string());
            }
        };
        let provider = dns.provider();
        let rows = self
            .store
            .owned(provider.as_str(), &zone.name)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ZoneNow {
            dns,
            zone,
            current,
            provider,
            marks: provider == ProviderKind::Cloudflare,
            deployment: name.to_owned(),
            rows,
        })
    }

    /// The policy in force.
    fn policy(&self) -> Policy {
        match self.settings.policy {
            PolicySetting::Sync => Policy::Sync,
            PolicySetting::UpsertOnly => Policy::UpsertOnly,
            PolicySetting::CreateOnly => Policy::CreateOnly,
        }
    }
}

/// A deployment's zone as read by [`RecordLoop::read_zone`].
struct ZoneNow {
    dns: std::sync::Arc<dyn flotilla_cloud::Dns>,
    zone: flotilla_cloud::Zone,
    current: Vec<DnsRecord>,
    provider: ProviderKind,
    /// Whether the provider keeps the ownership mark (record comments: Cloudflare).
    marks: bool,
    /// The deployment reconciled.
    deployment: String,
    /// The registry's rows for the zone, every owner's.
    rows: Vec<Owned>,
}

impl ZoneNow {
    /// Whether `record` is the deployment's.
    fn owned(&self, record: &DnsRecord) -> bool {
        self.owned_by(record, &self.deployment)
    }

    /// Whether `record` is `owner`'s: its mark, or a registry row of its name and address (bound to its id,
    /// or not bound yet: created, the answer not recorded).
    fn owned_by(&self, record: &DnsRecord, owner: &str) -> bool {
        if self.marks && record.comment.as_deref() == Some(plan::owner_mark(owner).as_str()) {
            return true;
        }
        self.rows.iter().any(|o| {
            o.owner == owner
                && o.name.eq_ignore_ascii_case(&record.name)
                && o.content == record.content
                && o.record_id.as_deref().is_none_or(|id| id == record.id)
        })
    }

    /// The owner of `record` by the registry or its mark, whoever it is.
    fn owner_of(&self, record: &DnsRecord) -> Option<String> {
        let by_row = self
            .rows
            .iter()
            .find(|o| {
                o.name.eq_ignore_ascii_case(&record.name)
                    && o.content == record.content
                    && o.record_id.as_deref().is_none_or(|id| id == record.id)
            })
            .map(|o| o.owner.clone());
        let by_mark = || {
            record
                .comment
                .as_deref()
                .filter(|_| self.marks)
                .and_then(|c| c.strip_prefix(plan::owner_mark("").as_str()))
                .map(str::to_owned)
        };
        by_row.or_else(by_mark)
    }

    /// Another deployment owning `record`, if one does.
    fn other_owner(&self, record: &DnsRecord) -> Option<String> {
        self.owner_of(record).filter(|o| o != &self.deployment)
    }

    /// The addresses the zone holds of ours, per name (lower case).
    fn owned_sets(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in self.current.iter().filter(|r| r.kind == "A" && self.owned(r)) {
            sets.entry(r.name.to_ascii_lowercase())
                .or_default()
                .insert(r.content.clone());
        }
        sets
    }

    /// The mark new records carry, where the provider keeps it.
    fn mark(&self) -> Option<String> {
        self.marks.then(|| plan::owner_mark(&self.deployment))
    }
}

/// Starts the record loop of a service and its API; returns it for the command routes.
pub fn start(ctx: &flotilla_runtime::Context<Settings>) -> std::sync::Arc<RecordLoop> {
    let settings = ctx.config.service.clone();
    let records = std::sync::Arc::new(RecordLoop::new(
        settings.clone(),
        Clouds::new(ctx.config.clouds.clone(), ctx.config.secrets_file.clone()),
        Parts {
            desired: ctx.desired(),
            fleet: ctx.fleet(),
            health: ctx.topology.health_view(),
            store: DnsStore::new(ctx.store.clone()),
            publisher: ctx.publisher.clone(),
        },
    ));
    let looped = DeploymentLoop::new(
        std::sync::Arc::clone(&records),
        settings.loop_settings(),
        Sources {
            desired: ctx.desired(),
            fleet: ctx.fleet(),
            health: ctx.topology.health_view(),
            leases: ctx.leases(),
        },
    );
    records.attach(looped.nudge());
    macro_rules! api {
        ($verb:literal, $req:ty, $method:ident) => {{
            let api = std::sync::Arc::clone(&records);
            ctx.api($verb, move |req: $req| {
                let api = std::sync::Arc::clone(&api);
                async move { api.$method(req).await }
            });
        }};
    }
    api!("records", ShowRecords, show);
    api!("hand-over", HandOver, hand_over);
    api!("adopt", Adopt, adopt);
    let stop = ctx.shutdown.clone();
    ctx.spawn(async move { looped.run(stop).await });
    records
}

impl Reconciler for RecordLoop {
    fn service(&self) -> &'static str {
        "dns"
    }

    async fn reconcile(&self, views: &Views, name: &str) -> Result<Ran, String> {
        self.reconcile_records(views, name).await
    }
}
