//! The firewall loop: for each deployment, on every change of the desired state, the fleet view or the
//! health view (debounced), on a `reconcile` command and on a periodic resync — by the one replica holding
//! the deployment's lease ([`flotilla_runtime::deployments`]):
//!
//! - each region's firewalls, role by role ([`plan::rules`]): with `ACTIVE_FIREWALLS` 2 or 3, the provider's
//!   own firewall found by name (one read), created if missing, its rules written when what they allow
//!   differs, every machine of the role attached as it appears; with 1 or 3, the rule set published for
//!   the machines' own firewalls when it changes;
//! - the managed database's allow-list ([`plan::allow_list`]): read once, written whole only when it
//!   differs, never while the database is not ready, an entry's expiry waited for by a timer;
//! - the original toolkit's `dbaas_ips/<ip>` markers kept in step both ways ([`crate::markers`]).
//!
//! What was last written is kept in the service's database, so a target found otherwise was changed behind
//! our back: it is put back, and the event says `restored`. The API answers what a run would do and why an
//! address is (not) allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use flotilla_bus::state::{DesiredStates, FleetView, HealthView};
use flotilla_bus::{HandlerError, Publisher, TopologyConfig};
use flotilla_cloud::{Firewall, FirewallRule, ManagedDatabase, Marks};
use flotilla_clouds::Clouds;
use flotilla_proto::{
    AllowListChanged, AllowListView, AllowVerdict, AllowedEntry, EventMeta, ExcludedMachine, FirewallChanged,
    FirewallView, FirewallsView, ReconcileFirewalls, RuleSet, RuleView, ShowFirewalls, ShowMachineRules,
    WhyAllowed,
};
use flotilla_runtime::ApiFailure;
use flotilla_runtime::deployments::{LoopSettings, Nudge, Ran, Reconciler, Views};
use flotilla_spec::{Deployment, Region, Role};
use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::markers::Markers;
use crate::plan::{self, RuleInputs};
use crate::store::{self, FirewallStore};

/// The firewall service's settings (`[service]` in its configuration).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// How often every deployment is reconciled even when nothing changed (drift is found then too).
    #[serde(with = "humantime_serde")]
    pub resync_interval: Duration,
    /// Changes within this window are reconciled together.
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// How long a replica's hold on a deployment lasts unless renewed.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How long the address of a machine judged unhealthy (gone without a clean shutdown), or of an old
    /// toolkit's marker no longer written, stays allowed.
    #[serde(with = "humantime_serde")]
    pub expiry: Duration,
    /// Where the control plane connects from: SSH and HTTPS are opened to these where a region's control
    /// plane is outside its VPC (`BUILD_MACHINE_VPC=0`).
    pub control_plane: Vec<Ipv4Net>,
    /// Cloudflare's published IPv4 ranges (HTTPS sources of public-facing machines behind Cloudflare).
    pub cloudflare_ranges: Vec<Ipv4Net>,
    /// Keep the original toolkit's `<site>-multi-region/dbaas_ips/<ip>` markers in step, both ways.
    pub markers: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(60),
            debounce: Duration::from_millis(250),
            lease_ttl: Duration::from_secs(30),
            expiry: Duration::from_secs(15 * 60),
            control_plane: Vec::new(),
            cloudflare_ranges: plan::CLOUDFLARE_IPV4
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
            markers: true,
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
        if self.expiry.is_zero() {
            return Err("expiry must be positive".into());
        }
        self.loop_settings().validate(bus)
    }
}

/// How soon a deployment whose database is not there or not ready yet is looked at again.
const NOT_READY_RETRY: Duration = Duration::from_secs(5);

/// The firewall service's reconciler, API and command handler.
pub struct FirewallService {
    settings: Settings,
    clouds: Clouds,
    store: FirewallStore,
    publisher: Publisher,
    desired: DesiredStates,
    fleet: FleetView,
    health: HealthView,
    markers: Markers,
    nudge: std::sync::OnceLock<Nudge>,
    /// The rule set last published per deployment, region and role, for the machines' own firewalls.
    published: std::sync::Mutex<BTreeMap<(String, String, String), Vec<RuleView>>>,
}

/// What [`FirewallService::new`] needs.
pub struct Parts {
    /// The desired-state bucket (the API reads it).
    pub desired: DesiredStates,
    /// The fleet view (the API reads it).
    pub fleet: FleetView,
    /// The health view (the API reads it).
    pub health: HealthView,
    /// The service's database.
    pub store: FirewallStore,
    /// Where events go.
    pub publisher: Publisher,
}

/// One deployment's managed database as a run finds it.
struct Database {
    provider: String,
    home: Region,
    label: String,
    found: Option<ManagedDatabase>,
}

impl FirewallService {
    /// A service writing through `clouds`.
    pub fn new(settings: Settings, clouds: Clouds, parts: Parts) -> Self {
        let markers = Markers::new(clouds.clone());
        Self {
            settings,
            clouds,
            store: parts.store,
            publisher: parts.publisher,
            desired: parts.desired,
            fleet: parts.fleet,
            health: parts.health,
            markers,
            nudge: std::sync::OnceLock::new(),
            published: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Connects the service to the loop that runs it (for the `reconcile` command).
    pub fn attach(&self, nudge: Nudge) {
        let _ = self.nudge.set(nudge);
    }

    fn inputs(&self) -> RuleInputs {
        RuleInputs {
            control_plane: self.settings.control_plane.clone(),
            cloudflare: self.settings.cloudflare_ranges.clone(),
        }
    }

    fn expiry(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.settings.expiry).unwrap_or(chrono::Duration::MAX)
    }

    // ----------------------------------------------------------------------------------------- firewalls

    /// Makes one region's firewalls what the spec and fleet say; returns what went wrong, role by role (the
    /// other roles are still done).
    async fn firewalls_of_region(
        &self,
        deployment: &Deployment,
        region: &Region,
        views: &Views,
    ) -> Vec<String> {
        let machines: Vec<&flotilla_proto::MachineRecord> = views
            .machines(&deployment.name)
            .filter(|m| m.region == region.name)
            .collect();
        let mut errors = Vec::new();
        let roles: Vec<(Role, Vec<FirewallRule>)> = plan::roles(region, machines.iter().copied())
            .into_iter()
            .map(|role| (role, plan::rules(deployment, region, role, &self.inputs())))
            .collect();
        if region.firewall.on_machine() {
            for (role, rules) in &roles {
                self.publish_rule_set(deployment, region, *role, rules).await;
            }
        }
        if !region.firewall.native() || roles.is_empty() {
            return errors;
        }
        let cloud = match self.clouds.region(&deployment.name, region) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("region {}: {e}", region.name));
                return errors;
            }
        };
        // The region's firewalls read together: one listing, not one per role.
        let names: Vec<String> = roles
            .iter()
            .map(|(role, _)| plan::firewall_name(region, *role))
            .collect();
        let found = match cloud.network.find_firewalls(&names).await {
            Ok(f) if f.len() == names.len() => f,
            Ok(f) => {
                errors.push(format!(
                    "region {}: the provider answered {} firewalls for {} names",
                    region.name,
                    f.len(),
                    names.len()
                ));
                return errors;
            }
            Err(e) => {
                errors.push(format!("region {}: reading its firewalls: {e}", region.name));
                return errors;
            }
        };
        for ((role, rules), current) in roles.iter().zip(found) {
            let of_role: Vec<(String, String)> = machines
                .iter()
                .filter(|m| m.role == role.as_str() && m.state != "failed")
                .filter_map(|m| Some((m.resource_id.clone(), m.provider_id.clone()?)))
                .collect();
            if let Err(e) = self
                .native(deployment, region, *role, rules, &of_role, current)
                .await
            {
                errors.push(format!("region {} {}: {e}", region.name, role.as_str()));
            }
        }
        errors
    }

    /// One role's provider firewall in one region, `current` as read: created, its rules written, machines
    /// attached — each only when needed.
    async fn native(
        &self,
        deployment: &Deployment,
        region: &Region,
        role: Role,
        rules: &[FirewallRule],
        machines: &[(String, String)],
        current: Option<Firewall>,
    ) -> Result<(), String> {
        let name = plan::firewall_name(region, role);
        let p = plan::firewall_plan(rules, current.as_ref(), machines);
        if p.is_empty() {
            return Ok(());
        }
        let cloud = self
            .clouds
            .region(&deployment.name, region)
            .map_err(|e| e.to_string())?;
        let target = store::firewall_target(&region.name, role.as_str());
        let allowed = |rules: &[FirewallRule]| -> Vec<String> {
            plan::allowed(rules)
                .into_iter()
                .map(|(protocol, ports, net)| format!("{protocol:?} {ports:?} {net}"))
                .collect()
        };
        let (firewall, outcome) = match current {
            None => {
                // A region withdrawn since this pass's view was taken gets no new firewall: its destroy may
                // have deleted this one a moment ago, and a firewall made now would outlive the region (the
                // fleet's events can arrive before the desired state's). Read the desired state itself.
                match self.desired.require_region(&deployment.name, &region.name).await {
                    Ok(()) => {}
                    Err(HandlerError::Reject(why)) => {
                        tracing::info!(deployment = %deployment.name, region = %region.name, firewall = %name, %why, "firewall: not created, the region is withdrawn");
                        return Ok(());
                    }
                    Err(e) => return Err(e.to_string()),
                }
                let marks = Marks {
                    deployment: deployment.name.clone(),
                    region: region.name.clone(),
                    role: Some(role),
                    resource_id: name.clone(),
                };
                tracing::info!(deployment = %deployment.name, region = %region.name, firewall = %name, "firewall: creating");
                let created = cloud
                    .network
                    .create_firewall(&name, rules, &marks)
                    .await
                    .map_err(|e| e.to_string())?;
                self.record(&deployment.name, &target, &allowed(rules)).await?;
                (created, "created")
            }
            Some(found) if p.write_rules => {
                let before = self
                    .store
                    .applied(&deployment.name, &target)
                    .await
                    .map_err(|e| e.to_string())?;
                // Ours, and not what we last wrote: changed behind our back.
                let drifted = before.is_some_and(|b| b != allowed(&found.rules));
                tracing::info!(deployment = %deployment.name, region = %region.name, firewall = %name, drifted,
                    "firewall: writing its rules");
                cloud
                    .network
                    .replace_firewall_rules(&found.id, rules)
                    .await
                    .map_err(|e| e.to_string())?;
                self.record(&deployment.name, &target, &allowed(rules)).await?;
                (found, if drifted { "restored" } else { "updated" })
            }
            Some(found) => (found, "attached"),
        };
        let mut attached = Vec::new();
        let mut failed = Vec::new();
        for (resource_id, provider_id) in &p.attach {
            if firewall.machine_ids.iter().any(|m| m == provider_id) {
                continue;
            }
            match cloud.network.attach_firewall(&firewall.id, provider_id).await {
                Ok(()) => attached.push(resource_id.clone()),
                Err(e) => failed.push(format!("attaching {resource_id}: {e}")),
            }
        }
        if outcome != "attached" || !attached.is_empty() {
            self.announce_firewall(deployment, region, role, &firewall, rules, outcome, attached)
                .await;
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    async fn record(&self, deployment: &str, target: &str, entries: &[String]) -> Result<(), String> {
        self.store
            .record(deployment, target, entries)
            .await
            .map_err(|e| e.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    async fn announce_firewall(
        &self,
        deployment: &Deployment,
        region: &Region,
        role: Role,
        firewall: &Firewall,
        rules: &[FirewallRule],
        outcome: &str,
        attached: Vec<String>,
    ) {
        let message = match outcome {
            "created" => format!("firewall {} created", firewall.name),
            "restored" => format!(
                "the rules of firewall {} had been changed behind our back; put back",
                firewall.name
            ),
            "updated" => format!("the rules of firewall {} written", firewall.name),
            _ => format!("{} attached to firewall {}", attached.join(", "), firewall.name),
        };
        let event = FirewallChanged {
            meta: EventMeta::new(uuid::Uuid::now_v7(), "firewall"),
            deployment: deployment.name.clone(),
            region: region.name.clone(),
            role: role.as_str().to_owned(),
            firewall: firewall.name.clone(),
            provider: region.provider.to_string(),
            outcome: outcome.to_owned(),
            rules: rules.iter().map(plan::rule_view).collect(),
            attached,
            message,
        };
        if let Err(e) = self.publisher.publish_event(&event).await {
            tracing::warn!(deployment = %deployment.name, error = %e, "firewall: an event was not published");
        }
    }

    /// Publishes a role's rule set for the machines' own firewalls when it differs from the last one
    /// published (by this process: after a restart, once again — an agent applies the same set harmlessly).
    async fn publish_rule_set(
        &self,
        deployment: &Deployment,
        region: &Region,
        role: Role,
        rules: &[FirewallRule],
    ) {
        let views: Vec<RuleView> = rules.iter().map(plan::rule_view).collect();
        let key = (
            deployment.name.clone(),
            region.name.clone(),
            role.as_str().to_owned(),
        );
        let unchanged = self
            .published
            .lock()
            .map(|p| p.get(&key) == Some(&views))
            .unwrap_or(false);
        if unchanged {
            return;
        }
        let set = RuleSet {
            meta: EventMeta::new(uuid::Uuid::now_v7(), "firewall"),
            deployment: deployment.name.clone(),
            region: region.name.clone(),
            role: role.as_str().to_owned(),
            on_machine: true,
            rules: views.clone(),
        };
        match self.publisher.publish_event(&set).await {
            Ok(_) => {
                if let Ok(mut p) = self.published.lock() {
                    p.insert(key, views);
                }
            }
            Err(e) => {
                tracing::warn!(deployment = %deployment.name, error = %e, "firewall: a rule set was not published")
            }
        }
    }

    // ---------------------------------------------------------------------------------------- allow-list

    /// The deployment's managed database, read once (`None`: it has none).
    async fn database(&self, deployment: &Deployment) -> Result<Option<Database>, String> {
        let Some((home, label)) = plan::database_home(deployment) else {
            return Ok(None);
        };
        let cloud = self
            .clouds
            .region(&deployment.name, home)
            .map_err(|e| e.to_string())?;
        let found = cloud
            .databases
            .find_database(label)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(Database {
            provider: home.provider.to_string(),
            home: home.clone(),
            label: label.to_owned(),
            found,
        }))
    }

    /// The desired allow-list of `deployment` from `views` and the old toolkit's markers, and the markers
    /// (`None` when they could not be read: see [`Self::allow_list`]).
    async fn desired_list(
        &self,
        deployment: &Deployment,
        home: &Region,
        views: &Views,
    ) -> (plan::AllowList, Option<Vec<plan::Marker>>) {
        let markers = if self.settings.markers {
            match self.markers.read(deployment, home).await {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(deployment = %deployment.name, error = %e,
                        "firewall: the old toolkit's markers are unknown this run; unexplained entries are left as they are");
                    None
                }
            }
        } else {
            Some(Vec::new())
        };
        let list = plan::allow_list(
            deployment,
            home,
            views.machines(&deployment.name),
            &views.health_of(&deployment.name),
            markers.as_deref().unwrap_or_default(),
            chrono::Utc::now(),
            self.expiry(),
        );
        (list, markers)
    }

    /// Makes the database's allow-list the desired one; `Ok(Some(at))` to be run again then (an entry
    /// expires, or the database is not ready yet).
    async fn allow_list(
        &self,
        deployment: &Deployment,
        views: &Views,
    ) -> Result<Option<tokio::time::Instant>, String> {
        let Some(db) = self.database(deployment).await? else {
            return Ok(None);
        };
        let (list, markers) = self.desired_list(deployment, &db.home, views).await;
        let again = list.next_expiry.map(|at| {
            let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
            tokio::time::Instant::now() + left + Duration::from_millis(50)
        });
        let soon = Some(tokio::time::Instant::now() + NOT_READY_RETRY);
        let Some(found) = &db.found else {
            tracing::debug!(deployment = %deployment.name, database = %db.label, "firewall: the database is not there yet");
            return Ok(soon);
        };
        if !found.is_ready() {
            tracing::debug!(deployment = %deployment.name, database = %db.label, status = %found.status,
                "firewall: the database is not ready for allow-list changes yet");
            return Ok(soon);
        }
        let mut wanted = list.nets();
        if markers.is_none() {
            // The old toolkit's markers could not be read (and never were): an entry the fleet does not
            // explain may be one of its machines', so it is left as it is rather than taken away.
            let gone: BTreeSet<Ipv4Net> = list
                .excluded
                .iter()
                .filter_map(|x| x.ip.as_deref()?.parse::<Ipv4Addr>().ok())
                .map(Ipv4Net::from)
                .collect();
            wanted.extend(
                plan::normalized(&found.allow_list)
                    .into_iter()
                    .filter(|n| !gone.contains(n)),
            );
        }
        let wanted = plan::normalized(&wanted);
        if let Some(refused) = plan::over_limit(db.home.provider, wanted.len()) {
            return Err(format!("database {}: {refused}", db.label));
        }
        let (adds, removes) = plan::list_diff(&wanted, &found.allow_list);
        let now_held: Vec<String> = plan::normalized(&found.allow_list)
            .iter()
            .map(ToString::to_string)
            .collect();
        let before = self
            .store
            .applied(&deployment.name, store::ALLOW_LIST)
            .await
            .map_err(|e| e.to_string())?;
        if adds.is_empty() && removes.is_empty() {
            if before.as_ref() != Some(&now_held) {
                // Right already (adopted, or written by a run that died before recording it).
                self.record(&deployment.name, store::ALLOW_LIST, &now_held)
                    .await?;
            }
        } else {
            let drifted = before.is_some_and(|b| b != now_held);
            tracing::info!(deployment = %deployment.name, database = %db.label, adds = adds.len(),
                removes = removes.len(), drifted, "firewall: writing the allow-list");
            let cloud = self
                .clouds
                .region(&deployment.name, &db.home)
                .map_err(|e| e.to_string())?;
            cloud
                .databases
                .replace_allow_list(&found.id, &wanted)
                .await
                .map_err(|e| format!("the allow-list of database {} was not written: {e}", db.label))?;
            let written: Vec<String> = wanted.iter().map(ToString::to_string).collect();
            self.record(&deployment.name, store::ALLOW_LIST, &written).await?;
            self.announce_list(deployment, &db, &list, &adds, &removes, drifted)
                .await;
        }
        if let (true, Some(markers)) = (self.settings.markers, &markers) {
            self.markers.write(deployment, &db.home, &list, markers).await;
        }
        Ok(again)
    }

    async fn announce_list(
        &self,
        deployment: &Deployment,
        db: &Database,
        list: &plan::AllowList,
        adds: &[Ipv4Net],
        removes: &[Ipv4Net],
        drifted: bool,
    ) {
        let machines: Vec<String> = list
            .entries
            .iter()
            .filter(|e| adds.contains(&e.net))
            .filter_map(|e| e.resource_id.clone())
            .collect();
        let (outcome, message) = if drifted {
            (
                "restored",
                format!(
                    "the allow-list of database {} had been changed behind our back; put back",
                    db.label
                ),
            )
        } else {
            (
                "changed",
                format!("the allow-list of database {} written", db.label),
            )
        };
        let event = AllowListChanged {
            meta: EventMeta::new(uuid::Uuid::now_v7(), "firewall"),
            deployment: deployment.name.clone(),
            region: db.home.name.clone(),
            provider: db.provider.clone(),
            database: db.label.clone(),
            added: adds.iter().map(ToString::to_string).collect(),
            removed: removes.iter().map(ToString::to_string).collect(),
            machines,
            outcome: outcome.to_owned(),
            message,
        };
        if let Err(e) = self.publisher.publish_event(&event).await {
            tracing::warn!(deployment = %deployment.name, error = %e, "firewall: an event was not published");
        }
    }

    // ----------------------------------------------------------------------------------------------- API

    /// A deployment's desired state, or the API's 404.
    async fn deployed(&self, name: &str) -> Result<Deployment, ApiFailure> {
        flotilla_bus::subject::check_token("deployment", name).map_err(ApiFailure::bad_request)?;
        self.desired
            .get(name)
            .await
            .map_err(ApiFailure::internal)?
            .map(|v| v.value.deployment)
            .ok_or_else(|| ApiFailure {
                code: 404,
                message: format!("deployment {name} is not deployed"),
            })
    }

    /// The views of one deployment, read afresh (the API does not share the loop's).
    async fn views_of(&self, deployment: &Deployment) -> Result<Views, ApiFailure> {
        let mut views = Views::default();
        views
            .deployments
            .insert(deployment.name.clone(), deployment.clone());
        views.fleet = self
            .fleet
            .snapshot(Some(&deployment.name))
            .await
            .map_err(ApiFailure::internal)?;
        views.health = self
            .health
            .snapshot(Some(&deployment.name))
            .await
            .map_err(ApiFailure::internal)?;
        Ok(views)
    }

    /// `flotilla.api.firewall.show`: each firewall's rules and machines, desired and at the provider, and
    /// the allow-list with why each entry is there and each machine left out is; changes nothing.
    pub async fn show(&self, req: ShowFirewalls) -> Result<FirewallsView, ApiFailure> {
        let deployment = self.deployed(&req.deployment).await?;
        let views = self.views_of(&deployment).await?;
        let mut firewalls = Vec::new();
        for region in &deployment.regions {
            let machines: Vec<&flotilla_proto::MachineRecord> = views
                .machines(&deployment.name)
                .filter(|m| m.region == region.name)
                .collect();
            let cloud = self.clouds.region(&deployment.name, region).ok();
            let roles = plan::roles(region, machines.iter().copied());
            let names: Vec<String> = roles
                .iter()
                .map(|role| plan::firewall_name(region, *role))
                .collect();
            let mut found = match (&cloud, region.firewall.native()) {
                (Some(c), true) => c
                    .network
                    .find_firewalls(&names)
                    .await
                    .map_err(ApiFailure::internal)?,
                _ => Vec::new(),
            }
            .into_iter();
            for (role, name) in roles.into_iter().zip(names) {
                let rules = plan::rules(&deployment, region, role, &self.inputs());
                let current = found.next().flatten();
                let of_role: Vec<(String, String)> = machines
                    .iter()
                    .filter(|m| m.role == role.as_str() && m.state != "failed")
                    .filter_map(|m| Some((m.resource_id.clone(), m.provider_id.clone()?)))
                    .collect();
                let attached_ids: BTreeSet<&str> = current
                    .iter()
                    .flat_map(|f| f.machine_ids.iter().map(String::as_str))
                    .collect();
                let (attached, to_attach): (Vec<_>, Vec<_>) = of_role
                    .iter()
                    .partition(|(_, pid)| attached_ids.contains(pid.as_str()));
                firewalls.push(FirewallView {
                    region: region.name.clone(),
                    role: role.as_str().to_owned(),
                    name,
                    provider: region.provider.to_string(),
                    native: region.firewall.native(),
                    on_machine: region.firewall.on_machine(),
                    desired: rules.iter().map(plan::rule_view).collect(),
                    current: current
                        .as_ref()
                        .map(|f| f.rules.iter().map(plan::rule_view).collect()),
                    attached: attached.into_iter().map(|(r, _)| r.clone()).collect(),
                    to_attach: if region.firewall.native() {
                        to_attach.into_iter().map(|(r, _)| r.clone()).collect()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        let allow_list = match self.database(&deployment).await {
            Ok(None) => None,
            Ok(Some(db)) => Some(self.list_view(&deployment, &db, &views).await?),
            Err(e) => return Err(ApiFailure::internal(e)),
        };
        Ok(FirewallsView {
            deployment: deployment.name,
            allow_list,
            firewalls,
        })
    }

    async fn list_view(
        &self,
        deployment: &Deployment,
        db: &Database,
        views: &Views,
    ) -> Result<AllowListView, ApiFailure> {
        let (list, _) = self.desired_list(deployment, &db.home, views).await;
        let current = db.found.as_ref().map(|f| plan::normalized(&f.allow_list));
        let (adds, removes) = current
            .as_ref()
            .map(|c| plan::list_diff(&list.nets(), c))
            .unwrap_or_default();
        let blocked = match &db.found {
            _ if plan::over_limit(db.home.provider, list.entries.len()).is_some() => {
                plan::over_limit(db.home.provider, list.entries.len())
            }
            None => Some(format!("database {} is not there yet", db.label)),
            Some(f) if !f.is_ready() => Some(format!(
                "database {} is {}; its allow-list changes once it is ready",
                db.label, f.status
            )),
            Some(_) => None,
        };
        Ok(AllowListView {
            provider: db.provider.clone(),
            region: db.home.name.clone(),
            database: db.label.clone(),
            desired: list
                .entries
                .iter()
                .map(|e| AllowedEntry {
                    cidr: e.net.to_string(),
                    why: e.why.clone(),
                    resource_id: e.resource_id.clone(),
                })
                .collect(),
            current: current.map(|c| c.iter().map(ToString::to_string).collect()),
            adds: adds.iter().map(ToString::to_string).collect(),
            removes: removes.iter().map(ToString::to_string).collect(),
            excluded: list
                .excluded
                .iter()
                .map(|x| ExcludedMachine {
                    resource_id: x.resource_id.clone(),
                    region: x.region.clone(),
                    role: x.role.clone(),
                    public_ipv4: x.ip.clone(),
                    why: x.why.clone(),
                })
                .collect(),
            blocked,
        })
    }

    /// `flotilla.api.firewall.why`: whether an address is (to be) allowed to the database, and why (not).
    pub async fn why(&self, req: WhyAllowed) -> Result<AllowVerdict, ApiFailure> {
        let ip: Ipv4Addr = req
            .ip
            .trim()
            .parse()
            .map_err(|_| ApiFailure::bad_request(format!("{:?} is not an IPv4 address", req.ip)))?;
        let deployment = self.deployed(&req.deployment).await?;
        let views = self.views_of(&deployment).await?;
        let db = self
            .database(&deployment)
            .await
            .map_err(ApiFailure::internal)?
            .ok_or_else(|| ApiFailure {
                code: 404,
                message: format!("deployment {} has no managed database", deployment.name),
            })?;
        let (list, _) = self.desired_list(&deployment, &db.home, &views).await;
        let (desired, why) = plan::why(&list, ip);
        let at_provider = db
            .found
            .as_ref()
            .map(|f| f.allow_list.iter().any(|n| n.contains(&ip)));
        let why = match at_provider {
            Some(held) if held != desired => format!(
                "{why}; the provider's list {} it until the next run",
                if held { "still holds" } else { "does not hold" }
            ),
            None => format!("{why}; database {} is not there yet", db.label),
            _ => why,
        };
        Ok(AllowVerdict {
            deployment: deployment.name,
            ip: ip.to_string(),
            desired,
            at_provider,
            why,
        })
    }

    /// `flotilla.api.firewall.machine-rules`: the rules a machine's own firewall applies (its role's in its
    /// region).
    pub async fn machine_rules(&self, req: ShowMachineRules) -> Result<RuleSet, ApiFailure> {
        let deployment = self.deployed(&req.deployment).await?;
        let machine = self
            .fleet
            .snapshot(Some(&deployment.name))
            .await
            .map_err(ApiFailure::internal)?
            .into_values()
            .find(|m| m.resource_id == req.resource_id)
            .ok_or_else(|| ApiFailure {
                code: 404,
                message: format!(
                    "deployment {} has no machine {}",
                    deployment.name, req.resource_id
                ),
            })?;
        let region = deployment.region(&machine.region).ok_or_else(|| ApiFailure {
            code: 404,
            message: format!(
                "region {} of machine {} is not deployed",
                machine.region, machine.resource_id
            ),
        })?;
        let role = Role::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == machine.role)
            .ok_or_else(|| ApiFailure::internal(format!("unknown role {}", machine.role)))?;
        Ok(RuleSet {
            meta: EventMeta::new(uuid::Uuid::now_v7(), "firewall"),
            deployment: deployment.name.clone(),
            region: region.name.clone(),
            role: machine.role.clone(),
            on_machine: region.firewall.on_machine(),
            rules: plan::rules(&deployment, region, role, &self.inputs())
                .iter()
                .map(plan::rule_view)
                .collect(),
        })
    }

    /// `firewall.reconcile`: reconcile the deployment now. Refused when it is not deployed.
    pub async fn reconcile_now(&self, cmd: ReconcileFirewalls) -> Result<(), HandlerError> {
        self.desired.require_region(&cmd.deployment, &cmd.region).await?;
        if let Some(n) = self.nudge.get() {
            n.deployment(&cmd.deployment);
        }
        Ok(())
    }
}

impl Reconciler for FirewallService {
    fn service(&self) -> &'static str {
        "firewall"
    }

    async fn reconcile(&self, views: &Views, name: &str) -> Result<Ran, String> {
        let Some(deployment) = views.deployments.get(name) else {
            return Ok(Ran::Done);
        };
        // The allow-list and each region's firewalls at once: they are independent, the allow-list is
        // what a new machine waits for, and one provider's slow operations (Exoscale's) must not hold up
        // another region's.
        let regions = futures::future::join_all(
            deployment
                .regions
                .iter()
                .map(|region| self.firewalls_of_region(deployment, region, views)),
        );
        let (regions, list) = futures::join!(regions, self.allow_list(deployment, views));
        let mut errors: Vec<String> = regions.into_iter().flatten().collect();
        let again = match list {
            Ok(again) => again,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        Ok(again.map_or(Ran::Done, Ran::Again))
    }
}

/// Starts the service's loop and API; returns the service for its command handler.
pub fn start(ctx: &flotilla_runtime::Context<Settings>) -> Arc<FirewallService> {
    let settings = ctx.config.service.clone();
    let service = Arc::new(FirewallService::new(
        settings.clone(),
        Clouds::new(ctx.config.clouds.clone(), ctx.config.secrets_file.clone()),
        Parts {
            desired: ctx.desired(),
            fleet: ctx.fleet(),
            health: ctx.topology.health_view(),
            store: FirewallStore::new(ctx.store.clone()),
            publisher: ctx.publisher.clone(),
        },
    ));
    let looped = flotilla_runtime::deployments::DeploymentLoop::new(
        Arc::clone(&service),
        settings.loop_settings(),
        flotilla_runtime::deployments::Sources {
            desired: ctx.desired(),
            fleet: ctx.fleet(),
            health: ctx.topology.health_view(),
            leases: ctx.leases(),
        },
    );
    service.attach(looped.nudge());
    macro_rules! api {
        ($verb:literal, $req:ty, $method:ident) => {{
            let api = Arc::clone(&service);
            ctx.api($verb, move |req: $req| {
                let api = Arc::clone(&api);
                async move { api.$method(req).await }
            });
        }};
    }
    api!("show", ShowFirewalls, show);
    api!("why", WhyAllowed, why);
    api!("machine-rules", ShowMachineRules, machine_rules);
    let stop = ctx.shutdown.clone();
    ctx.spawn(async move { looped.run(stop).await });
    service
}
