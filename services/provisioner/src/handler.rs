//! The provisioner's command handlers.

use std::sync::Arc;
use std::time::Duration;

use flotilla_bus::lease::Leases;
use flotilla_bus::state::{DesiredStates, FleetView};
use flotilla_bus::{Delivery, HandlerError, Publisher, TopologyConfig};
use flotilla_cloud::CloudError;
use flotilla_clouds::{Clouds, CloudsError, RegionCloud};
use flotilla_proto::{
    ApplyRegion, CommandMeta, CreateMachines, DbaasReady, DestroyMachine, DestroyRegion, Event, EventMeta,
    MachineChanged, MachineRecord, Message, ReconcileRegion, RegionApplied, ReplaceMachine,
};
use flotilla_spec::{CloudProvider, Dbaas, Deployment, OsFamily, Region, Role};
use flotilla_store::{Inbox, Store};
use serde::Deserialize;
use uuid::Uuid;

use crate::apply::{Applier, ApplyError, ApplyOptions, ApplyReport, Change, Observer};
use crate::infra::{DbaasWait, ensure_dbaas, ensure_vpc, remove_dbaas, remove_firewalls, remove_vpc};
use crate::lock::{RegionGuard, RegionLocks};
use crate::plan::plan;
use crate::store::{DbaasRow, MachineRow, MachineStore, MachineStoreError};

/// The provisioner's own settings (`[service]` in its configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Port of the machines' health check.
    pub health_port: u16,
    /// Path of the machines' health check.
    pub health_path: String,
    /// How long a machine may take to become healthy before it is replaced.
    #[serde(with = "humantime_serde")]
    pub boot_timeout: Duration,
    /// How often a booting machine is looked at.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Plan-and-execute rounds before an apply gives up (the toolkit retried a machine 5 times).
    pub max_rounds: u32,
    /// How often every region is compared with its cloud (vanished, unknown and stuck machines).
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// How long a secondary region's apply waits for the primary's DBaaS before it is retried.
    #[serde(with = "humantime_serde")]
    pub primary_wait: Duration,
    /// How long a new DBaaS may take to become ready.
    #[serde(with = "humantime_serde")]
    pub dbaas_timeout: Duration,
    /// How long a replica's hold on a region outlives the replica (renewed every third of it while the
    /// replica works): after a crash, the region waits this long before another replica takes it up.
    #[serde(with = "humantime_serde")]
    pub region_lease_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            health_port: 80,
            health_path: "/".into(),
            boot_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_secs(5),
            max_rounds: 5,
            reconcile_interval: Duration::from_secs(60),
            primary_wait: Duration::from_secs(30 * 60),
            dbaas_timeout: Duration::from_secs(30 * 60),
            region_lease_ttl: crate::lock::LEASE_TTL,
        }
    }
}

impl flotilla_runtime::ServiceSettings for Settings {
    fn validate(&self, bus: &TopologyConfig) -> Result<(), String> {
        for (name, value) in [
            ("boot_timeout", self.boot_timeout),
            ("poll_interval", self.poll_interval),
            ("reconcile_interval", self.reconcile_interval),
            ("primary_wait", self.primary_wait),
            ("dbaas_timeout", self.dbaas_timeout),
            ("region_lease_ttl", self.region_lease_ttl),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be positive"));
            }
        }
        if self.max_rounds == 0 {
            return Err("max_rounds must be at least 1".into());
        }
        if self.region_lease_ttl < Duration::from_secs(3) {
            return Err(format!(
                "region_lease_ttl {:?} is too short: it is renewed every third of it (at least 3s)",
                self.region_lease_ttl
            ));
        }
        if self.region_lease_ttl > bus.lease_max_age {
            return Err(format!(
                "region_lease_ttl {:?} exceeds bus.lease_max_age {:?}: the lease bucket would drop a held lease",
                self.region_lease_ttl, bus.lease_max_age
            ));
        }
        if self.reconcile_interval > bus.lease_max_age {
            return Err(format!(
                "reconcile_interval {:?} exceeds bus.lease_max_age {:?} (the reconcile lease lasts one interval)",
                self.reconcile_interval, bus.lease_max_age
            ));
        }
        if self.health_path.is_empty() || !self.health_path.starts_with('/') {
            return Err(format!("health_path {:?} must start with '/'", self.health_path));
        }
        Ok(())
    }
}

/// The image a region's machines are built from, as its provider names it (the spec's build OS).
pub fn image_for(region: &Region, family: OsFamily, version: &str) -> String {
    let family_name = family.as_str();
    match region.provider {
        CloudProvider::Linode => format!("linode/{family_name}{version}"),
        CloudProvider::DigitalOcean => format!("{family_name}-{}-x64", version.replace('.', "-")),
        // Vultr names images by OS id; the toolkit's supported releases.
        CloudProvider::Vultr => match (family, version) {
            (OsFamily::Debian, "11") => "477",
            (OsFamily::Ubuntu, "22.04") => "1743",
            (OsFamily::Ubuntu, "24.04") => "2284",
            (OsFamily::Ubuntu, "20.04") => "387",
            _ => "2136",
        }
        .to_owned(),
        CloudProvider::Exoscale => match family {
            OsFamily::Debian => format!("Linux Debian {version} ({}) 64-bit", debian_codename(version)),
            OsFamily::Ubuntu => format!("Linux Ubuntu {version} LTS 64-bit"),
        },
    }
}

fn debian_codename(version: &str) -> &'static str {
    match version {
        "11" => "Bullseye",
        "13" => "Trixie",
        _ => "Bookworm",
    }
}

/// What the provisioner shares with the other services over NATS: leases, the desired state it writes,
/// the fleet view it keeps.
#[derive(Clone)]
pub struct Shared {
    /// Region and reconcile leases.
    pub leases: Leases,
    /// Every deployment's desired state (written here, when a deploy is accepted or regions withdrawn).
    pub desired: DesiredStates,
    /// The fleet view (written here with every `MachineChanged`).
    pub fleet: FleetView,
}

/// What the handlers share.
pub struct Provisioner {
    /// Settings.
    pub settings: Settings,
    /// Adapters from the secrets file or the simulator's settings.
    pub clouds: Clouds,
    /// The service's database.
    pub store: Store,
    /// Event publisher.
    pub publisher: Publisher,
    machines: MachineStore,
    /// One piece of work per region at a time, in this process and across replicas.
    locks: RegionLocks,
    /// `None` in single-process tests and benchmarks (no desired state kept, no fleet view written).
    shared: Option<Shared>,
}

/// Publishes machine changes as `MachineChanged` events, with ids derived from their cause.
struct Events<'a> {
    provisioner: &'a Provisioner,
    cause: &'a CommandMeta,
}

#[async_trait::async_trait]
impl Observer for Events<'_> {
    async fn machine(&self, row: &MachineRow, change: Change) -> Result<(), String> {
        let state = change.as_str();
        let event = MachineChanged {
            meta: EventMeta::derived(
                self.cause,
                &format!("machine/{}/{state}", row.resource_id),
                "provisioner",
            ),
            deployment: row.deployment.clone(),
            region: row.region.clone(),
            resource_id: row.resource_id.clone(),
            role: row.role.as_str().to_owned(),
            name: row.name.clone(),
            size: row.size.clone(),
            provider: row.provider.clone(),
            provider_id: row.provider_id.clone(),
            state: state.to_owned(),
            public_ipv4: row.public_ipv4.clone(),
            private_ipv4: row.private_ipv4.clone(),
        };
        self.provisioner
            .publish_event(&event)
            .await
            .map_err(|e| e.to_string())?;
        // The fleet view, in the same step: a crash between the two repeats both (the event under the
        // same id), never loses the view's update.
        if let Some(shared) = &self.provisioner.shared {
            let written = if change == Change::Destroyed {
                shared
                    .fleet
                    .remove(&row.deployment, &row.region, &row.resource_id)
                    .await
            } else {
                shared
                    .fleet
                    .put(&MachineRecord {
                        deployment: row.deployment.clone(),
                        region: row.region.clone(),
                        resource_id: row.resource_id.clone(),
                        role: event.role.clone(),
                        name: row.name.clone(),
                        size: row.size.clone(),
                        provider: row.provider.clone(),
                        provider_id: row.provider_id.clone(),
                        state: state.to_owned(),
                        public_ipv4: row.public_ipv4.clone(),
                        private_ipv4: row.private_ipv4.clone(),
                        created_at: chrono::DateTime::from_timestamp_millis(row.created_ms)
                            .unwrap_or_else(chrono::Utc::now),
                        updated_at: chrono::Utc::now(),
                        event_id: event.meta.id,
                    })
                    .await
                    .map(|_| ())
            };
            written.map_err(|e| format!("fleet view: {e}"))?;
        }
        Ok(())
    }
}

fn store_error(e: MachineStoreError) -> HandlerError {
    HandlerError::retry(e.to_string())
}

/// Cloud errors by their nature; our own database and the bus are retried; a region that gave up
/// (machines that never became healthy, a DBaaS that cannot be had) is final.
fn apply_error(e: ApplyError) -> HandlerError {
    match e {
        ApplyError::Cloud(c) => reject_or_retry(c),
        ApplyError::Store(_) | ApplyError::Observer(_) | ApplyError::DbaasNotReady(_) => {
            HandlerError::retry(e)
        }
        ApplyError::GaveUp { .. } | ApplyError::Dbaas(_) => HandlerError::Reject(e.to_string()),
    }
}

impl Provisioner {
    /// The handler state, on a migrated `store` (the service host runs [`crate::store::migrations`]).
    /// `shared`: leases, desired state and fleet view; `None` for a single process without them.
    pub fn new(
        settings: Settings,
        clouds: Clouds,
        store: Store,
        publisher: Publisher,
        shared: Option<Shared>,
    ) -> Arc<Self> {
        let poll = settings.poll_interval.max(Duration::from_millis(100));
        let locks = RegionLocks::new(
            shared.as_ref().map(|s| s.leases.clone()),
            Uuid::now_v7().to_string(),
            poll,
        )
        .with_ttl(settings.region_lease_ttl);
        Arc::new(Self {
            settings,
            clouds,
            machines: MachineStore::new(store.clone()),
            store,
            publisher,
            locks,
            shared,
        })
    }

    /// The machine store.
    pub async fn machines(&self) -> Result<&MachineStore, HandlerError> {
        Ok(&self.machines)
    }

    /// What the provisioner shares over NATS, when it does.
    pub fn shared(&self) -> Option<&Shared> {
        self.shared.as_ref()
    }

    /// Holds a region (waiting for whoever has it).
    async fn hold(&self, deployment: &str, region: &str) -> Result<RegionGuard, HandlerError> {
        self.locks
            .hold(deployment, region)
            .await
            .map_err(HandlerError::retry)
    }

    /// The adapters of `region`, with credentials read afresh (the secrets file may have been rotated
    /// since the last command).
    fn region_cloud(&self, deployment: &str, region: &Region) -> Result<RegionCloud, HandlerError> {
        self.clouds
            .region(deployment, region)
            .map_err(|e| clouds_error(&region.name, e))
    }

    /// Apply options from the settings, for machines built from `image`.
    fn options(&self, image: String) -> ApplyOptions {
        ApplyOptions {
            health_port: self.settings.health_port,
            health_path: self.settings.health_path.clone(),
            boot_timeout: self.settings.boot_timeout,
            poll_interval: self.settings.poll_interval,
            max_rounds: self.settings.max_rounds,
            image,
        }
    }

    /// Brings one region in line with `region` (its VPC, its DBaaS in the primary, its machines), telling
    /// the fleet of every change. The caller holds the region.
    async fn converge(
        &self,
        held: &RegionGuard,
        cause: &CommandMeta,
        deployment: &str,
        region: &Region,
        image: String,
    ) -> (ApplyReport, Result<(), HandlerError>) {
        let cloud = match self.region_cloud(deployment, region) {
            Ok(c) => c,
            Err(e) => return (ApplyReport::default(), Err(e)),
        };
        let machines = match self.machines().await {
            Ok(m) => m,
            Err(e) => return (ApplyReport::default(), Err(e)),
        };
        let options = self.options(image);
        let events = Events {
            provisioner: self,
            cause,
        };
        let placement = match ensure_vpc(&cloud, machines, deployment, region).await {
            Ok(p) => p,
            Err(e) => return (ApplyReport::default(), Err(apply_error(e))),
        };
        let applier = Applier {
            cloud: &cloud,
            store: machines,
            deployment,
            region,
            options: &options,
            placement: placement.clone(),
            observer: &events,
        };
        let wait = DbaasWait {
            timeout: self.settings.dbaas_timeout,
            poll: self.settings.poll_interval,
        };
        // The DBaaS takes minutes at a real provider: the machines are built meanwhile, and the secondaries
        // are let go as soon as it is ready, whatever the primary's machines are doing.
        let dbaas = async {
            if let Some(row) = ensure_dbaas(&cloud, machines, deployment, region, &placement, wait)
                .await
                .map_err(apply_error)?
            {
                self.dbaas_ready(cause, &row).await?;
                machines.save_dbaas(&row).await.map_err(store_error)?;
            }
            Ok::<_, HandlerError>(())
        };
        // Stopped where it stands if another replica takes the region over (the lease is the fencing
        // token): what it did is recorded, as after a crash, and the command is retried.
        let both = async { tokio::join!(dbaas, applier.apply(cause.id.0)) };
        let (dbaas, applied) = tokio::select! {
            r = both => r,
            _ = held.lost() => return (ApplyReport::default(), Err(lease_lost(deployment, &region.name))),
        };
        match applied {
            Ok(report) => (report, dbaas),
            Err(ApplyError::GaveUp { report, .. }) if dbaas.is_err() => (*report, dbaas),
            Err(e) => {
                let report = match &e {
                    ApplyError::GaveUp { report, .. } => (**report).clone(),
                    _ => ApplyReport::default(),
                };
                (report, Err(apply_error(e)))
            }
        }
    }

    async fn dbaas_ready(&self, cause: &CommandMeta, row: &DbaasRow) -> Result<(), HandlerError> {
        let event = DbaasReady {
            meta: EventMeta::derived(cause, "dbaas/ready", "provisioner"),
            deployment: row.deployment.clone(),
            region: row.region.clone(),
            provider: row.provider.clone(),
            id: row.id.clone().unwrap_or_default(),
            name: row.name.clone(),
            engine: row.engine.clone(),
            host: row.host.clone(),
            port: row.port,
            created: row.created,
        };
        self.publish_event(&event).await
    }

    /// Tells the fleet how a region's apply ended (with what it did, failed or not) and records it.
    async fn region_outcome(
        &self,
        cause: &CommandMeta,
        deployment: &str,
        region: &str,
        report: ApplyReport,
        result: &Result<(), HandlerError>,
        last_attempt: bool,
    ) -> Result<(), HandlerError> {
        // Provider text is scrubbed (and bounded) before it is recorded or published.
        let (outcome, error) = match result {
            Ok(()) => ("applied", None),
            Err(e) => (
                "failed",
                Some(flotilla_bus::redact::redact_and_truncate(&e.to_string(), 2048)),
            ),
        };
        // A failure that will be retried is not final: it is recorded as `retrying` (for `status`) and told
        // only on the last attempt.
        let will_retry = matches!(result, Err(HandlerError::Retry { .. })) && !last_attempt;
        let status = if will_retry { "retrying" } else { outcome };
        self.machines()
            .await?
            .set_region_status(deployment, region, status, error.as_deref())
            .await
            .map_err(store_error)?;
        if will_retry {
            return Ok(());
        }
        let event = RegionApplied {
            meta: EventMeta::derived(cause, &format!("region/{outcome}"), "provisioner"),
            deployment: deployment.to_owned(),
            region: region.to_owned(),
            outcome: outcome.to_owned(),
            error,
            created: report.created,
            adopted: report.adopted,
            destroyed: report.destroyed,
            failed: report.failed,
        };
        self.publish_event(&event).await
    }

    /// In a secondary region, waits until the primary region's DBaaS is ready — saying so once with a
    /// `blocked` event — or for `primary_wait` at most (then the command is retried later).
    async fn wait_for_primary(
        &self,
        cmd: &ApplyRegion,
        region: &Region,
        last_attempt: bool,
    ) -> Result<(), HandlerError> {
        let deployment = &cmd.deployment;
        let Some(primary) = deployment.regions.iter().find(|r| r.primary) else {
            return Ok(());
        };
        if primary.name == region.name || !matches!(primary.dbaas, Some(Dbaas::Primary { .. })) {
            return Ok(());
        }
        let machines = self.machines().await?;
        let deadline = tokio::time::Instant::now() + self.settings.primary_wait;
        let mut told = false;
        loop {
            let ready = machines
                .dbaas(&deployment.name, &primary.name)
                .await
                .map_err(store_error)?
                .is_some_and(|d| d.state == "ready");
            if ready {
                return Ok(());
            }
            let why = format!(
                "waiting for the primary region {}'s DBaaS to be ready",
                primary.name
            );
            if !told {
                tracing::info!(region = %region.name, primary = %primary.name, "secondary region waits for the primary's DBaaS");
                machines
                    .set_region_status(&deployment.name, &region.name, "blocked", Some(&why))
                    .await
                    .map_err(store_error)?;
                let event = RegionApplied {
                    meta: EventMeta::derived(&cmd.meta, "region/blocked", "provisioner"),
                    deployment: deployment.name.clone(),
                    region: region.name.clone(),
                    outcome: "blocked".into(),
                    error: Some(why.clone()),
                    created: Vec::new(),
                    adopted: Vec::new(),
                    destroyed: Vec::new(),
                    failed: Vec::new(),
                };
                self.publish_event(&event).await?;
                told = true;
            }
            if tokio::time::Instant::now() >= deadline {
                let gave_up: Result<(), HandlerError> = Err(HandlerError::Retry {
                    reason: format!("{why} (waited {:?})", self.settings.primary_wait),
                    after: Some(self.settings.poll_interval),
                });
                // Recorded (a region left `blocked` would be skipped by reconciliation for good) and,
                // on the last attempt, told.
                self.region_outcome(
                    &cmd.meta,
                    &deployment.name,
                    &region.name,
                    ApplyReport::default(),
                    &gave_up,
                    last_attempt,
                )
                .await?;
                return gave_up;
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// `provisioner.apply.v1`: makes one region match its spec and reports how it went.
    pub async fn apply(&self, cmd: ApplyRegion, delivery: Delivery) -> Result<(), HandlerError> {
        let deployment = &cmd.deployment;
        let region = deployment.region(&cmd.region).ok_or_else(|| {
            HandlerError::Reject(format!(
                "deployment {} has no region {:?}",
                deployment.name, cmd.region
            ))
        })?;
        let inbox = Inbox::new(self.store.clone());
        let id = cmd.meta.id.to_string();
        if inbox
            .contains(&id)
            .await
            .map_err(|e| HandlerError::retry(e.to_string()))?
        {
            tracing::info!(command = %id, "apply already handled");
            return Ok(());
        }
        // Validated here, not only by the CLI: whoever published it.
        deployment
            .check()
            .map_err(|e| HandlerError::Reject(format!("deployment {} is not valid: {e}", deployment.name)))?;
        // Credentials first: a region we cannot reach is refused before anything is recorded.
        self.region_cloud(&deployment.name, region)?;
        // A late apply (a retry, a redelivery) never replaces a newer desired state.
        self.check_apply(&cmd).await?;
        let machines = self.machines().await?;
        let image = image_of(deployment, region);
        let recorded = machines
            .regions(Some(&deployment.name), Some(&region.name))
            .await
            .map_err(store_error)?
            .into_iter()
            .next();
        let (live, initial) = live_region(region, recorded.as_ref());
        machines
            .save_region(&deployment.name, &live, &image, initial)
            .await
            .map_err(store_error)?;
        machines
            .set_region_status(&deployment.name, &region.name, "applying", None)
            .await
            .map_err(store_error)?;
        self.wait_for_primary(&cmd, region, delivery.is_last_attempt())
            .await?;
        let held = self.hold(&deployment.name, &region.name).await?;
        // A destroy of the region, or a newer deploy, may have come while this apply waited.
        self.check_apply(&cmd).await?;
        let Some(record) = machines
            .regions(Some(&deployment.name), Some(&region.name))
            .await
            .map_err(store_error)?
            .into_iter()
            .next()
        else {
            return Err(HandlerError::Reject(format!(
                "region {} of deployment {} was destroyed while this apply waited; apply it again to rebuild it",
                region.name, deployment.name
            )));
        };
        // The wanted counts as recorded now (the autoscaler may have changed them meanwhile).
        let region = &record.spec;
        machines
            .set_region_status(&deployment.name, &region.name, "applying", None)
            .await
            .map_err(store_error)?;
        let (report, result) = self
            .converge(&held, &cmd.meta, &deployment.name, region, image)
            .await;
        self.region_outcome(
            &cmd.meta,
            &deployment.name,
            &region.name,
            report,
            &result,
            delivery.is_last_attempt(),
        )
        .await?;
        result?;
        inbox
            .record(&id, ApplyRegion::KIND)
            .await
            .map_err(|e| HandlerError::retry(e.to_string()))?;
        Ok(())
    }

    /// The recorded spec of a region, for a command that names only the region.
    async fn recorded(
        &self,
        deployment: &str,
        region: &str,
    ) -> Result<crate::store::RegionRecord, HandlerError> {
        let record = self
            .machines()
            .await?
            .regions(Some(deployment), Some(region))
            .await
            .map_err(store_error)?
            .into_iter()
            .next();
        match record {
            Some(record) => Ok(record),
            None => Err(self.unrecorded(deployment, region).await),
        }
    }

    /// Why a command naming a region without a record is not done: the region was destroyed since — the
    /// autoscaler's replacement of a machine in a region that was down, delivered after the region's destroy —
    /// which is no one's mistake (superseded, kept out of the dead-letter queue); or it was never applied
    /// (rejected).
    async fn unrecorded(&self, deployment: &str, region: &str) -> HandlerError {
        let destroyed = match self.machines().await {
            Ok(machines) => machines
                .destroyed_at(deployment, region)
                .await
                .map_err(store_error),
            Err(e) => Err(e),
        };
        match destroyed {
            Ok(Some(ms)) => HandlerError::Superseded(format!(
                "region {region} of deployment {deployment} was destroyed ({}): nothing to do",
                chrono::DateTime::from_timestamp_millis(ms)
                    .map_or_else(|| format!("at {ms} ms"), |t| t.to_rfc3339())
            )),
            Ok(None) => HandlerError::Reject(format!(
                "region {region} of deployment {deployment} has never been applied"
            )),
            Err(e) => e,
        }
    }

    /// A machine-level change accepted (or applied before), or why not.
    async fn accepted(
        &self,
        changed: Option<Result<bool, String>>,
        deployment: &str,
        region: &str,
    ) -> Result<(), HandlerError> {
        match changed {
            None => Err(self.unrecorded(deployment, region).await),
            Some(Err(refused)) => Err(HandlerError::Reject(refused)),
            Some(Ok(_)) => Ok(()),
        }
    }

    /// Converges a region from its recorded spec and tells how it went.
    /// `last_attempt`: whether a failure that would be retried is final (the command's last delivery).
    async fn converge_recorded(
        &self,
        held: &RegionGuard,
        cause: &CommandMeta,
        deployment: &str,
        region: &str,
        last_attempt: bool,
    ) -> Result<(), HandlerError> {
        let record = self.recorded(deployment, region).await?;
        let (report, result) = self
            .converge(held, cause, deployment, &record.spec, record.image)
            .await;
        self.region_outcome(cause, deployment, region, report, &result, last_attempt)
            .await?;
        result
    }

    /// Runs `work` on one region (which the caller holds), with its adapters and an applier whose changes are told
    /// as caused by `cause`.
    async fn on_region<T>(
        &self,
        held: &RegionGuard,
        cause: &CommandMeta,
        deployment: &str,
        region: &Region,
        image: String,
        work: impl AsyncFnOnce(&Applier<'_>) -> Result<T, ApplyError>,
    ) -> Result<T, HandlerError> {
        let cloud = self.region_cloud(deployment, region)?;
        let machines = self.machines().await?;
        let options = self.options(image);
        let events = Events {
            provisioner: self,
            cause,
        };
        let applier = Applier {
            cloud: &cloud,
            store: machines,
            deployment,
            region,
            options: &options,
            placement: Default::default(),
            observer: &events,
        };
        tokio::select! {
            r = work(&applier) => r.map_err(apply_error),
            _ = held.lost() => Err(lease_lost(deployment, &region.name)),
        }
    }

    /// `provisioner.create-machines.v1`: `count` more machines of a role, once per command.
    pub async fn create_machines(&self, cmd: CreateMachines, delivery: Delivery) -> Result<(), HandlerError> {
        if cmd.count == 0 {
            return Err(HandlerError::Reject("count must be at least 1".into()));
        }
        let role = cmd.role;
        let count = cmd.count;
        // Held across the change and the converge: nobody else plans the region between the two.
        let held = self.hold(&cmd.deployment, &cmd.region).await?;
        let changed = self
            .machines()
            .await?
            .change_region(&cmd.meta.id.to_string(), &cmd.deployment, &cmd.region, |spec| {
                let max = spec.scaling.max;
                let wanted = &mut spec.machines.get_mut(role).count;
                let target = wanted.saturating_add(count);
                if role == Role::Webserver && target > max {
                    return Err(format!(
                        "{target} webservers would exceed the region's maximum of {max}"
                    ));
                }
                *wanted = target;
                Ok(())
            })
            .await
            .map_err(store_error)?;
        self.accepted(changed, &cmd.deployment, &cmd.region).await?;
        self.converge_recorded(
            &held,
            &cmd.meta,
            &cmd.deployment,
            &cmd.region,
            delivery.is_last_attempt(),
        )
        .await
    }

    /// `provisioner.destroy-machine.v1`: one machine destroyed, its role's wanted count one lower.
    pub async fn destroy_machine(
        &self,
        cmd: DestroyMachine,
        _delivery: Delivery,
    ) -> Result<(), HandlerError> {
        // Held across the change of the wanted count and the destroy: a reconcile in between would see a
        // surplus and destroy another machine.
        let held = self.hold(&cmd.deployment, &cmd.region).await?;
        let machines = self.machines().await?;
        let command_id = cmd.meta.id.to_string();
        let rows = machines
            .region(&cmd.deployment, &cmd.region)
            .await
            .map_err(store_error)?;
        let Some(row) = rows.iter().find(|r| r.resource_id == cmd.resource_id) else {
            if machines.change_applied(&command_id).await.map_err(store_error)? {
                return Ok(());
            }
            // A region never applied is refused as such, not as a missing machine.
            self.recorded(&cmd.deployment, &cmd.region).await?;
            return Err(HandlerError::Reject(format!(
                "machine {} is not a machine of region {} of deployment {}",
                cmd.resource_id, cmd.region, cmd.deployment
            )));
        };
        let role = row.role;
        let changed = machines
            .change_region(&command_id, &cmd.deployment, &cmd.region, |spec| {
                let min = spec.scaling.min;
                let wanted = &mut spec.machines.get_mut(role).count;
                if role == Role::Webserver && *wanted <= min {
                    return Err(format!(
                        "the region keeps at least {min} webserver(s); replace the machine instead"
                    ));
                }
                *wanted = wanted.saturating_sub(1);
                Ok(())
            })
            .await
            .map_err(store_error)?;
        self.accepted(changed, &cmd.deployment, &cmd.region).await?;
        let record = self.recorded(&cmd.deployment, &cmd.region).await?;
        self.on_region(
            &held,
            &cmd.meta,
            &cmd.deployment,
            &record.spec,
            record.image.clone(),
            async |applier| applier.destroy_one(&cmd.resource_id).await,
        )
        .await?;
        Ok(())
    }

    /// `provisioner.replace-machine.v1`: a new machine of the same role, then the old one destroyed.
    pub async fn replace_machine(&self, cmd: ReplaceMachine, delivery: Delivery) -> Result<(), HandlerError> {
        let held = self.hold(&cmd.deployment, &cmd.region).await?;
        let record = self.recorded(&cmd.deployment, &cmd.region).await?;
        let known = self
            .on_region(
                &held,
                &cmd.meta,
                &cmd.deployment,
                &record.spec,
                record.image.clone(),
                async |applier| applier.mark_for_replacement(&cmd.resource_id).await,
            )
            .await?;
        if !known {
            // Gone already: replaced by an earlier delivery of this command, or destroyed since.
            tracing::info!(resource_id = %cmd.resource_id, "machine to replace is not recorded; nothing to do");
            return Ok(());
        }
        self.converge_recorded(
            &held,
            &cmd.meta,
            &cmd.deployment,
            &cmd.region,
            delivery.is_last_attempt(),
        )
        .await
    }

    /// `provisioner.destroy.v1`: removes everything Flotilla created in one region — its machines, its
    /// DBaaS and VPC if Flotilla created them — and the region's provider firewalls once they apply to no
    /// machine ([`remove_firewalls`]); nothing else.
    pub async fn destroy(&self, cmd: DestroyRegion, _delivery: Delivery) -> Result<(), HandlerError> {
        let inbox = Inbox::new(self.store.clone());
        let id = cmd.meta.id.to_string();
        if inbox
            .contains(&id)
            .await
            .map_err(|e| HandlerError::retry(e.to_string()))?
        {
            tracing::info!(command = %id, "destroy already handled");
            return Ok(());
        }
        let machines = self.machines().await?;
        let recorded = |machines: &MachineStore| {
            let (deployment, region) = (cmd.deployment.clone(), cmd.region.clone());
            let machines = machines.clone();
            async move {
                machines
                    .regions(Some(&deployment), Some(&region))
                    .await
                    .map_err(store_error)
                    .map(|r| r.into_iter().next())
            }
        };
        // A late destroy never removes a region deployed again after it; an unknown one is refused.
        let known = self.check_destroy(&cmd).await?;
        if !known && recorded(machines).await?.is_none() {
            return Err(HandlerError::Reject(format!(
                "deployment {} has no region {}: it was never deployed",
                cmd.deployment, cmd.region
            )));
        }
        let held = self.hold(&cmd.deployment, &cmd.region).await?;
        // A deploy may have brought the region back while this destroy waited.
        self.check_destroy(&cmd).await?;
        let record = recorded(machines).await?;
        let (destroyed, left) = match record {
            // Never applied (or already destroyed): nothing of ours is there.
            None => (Vec::new(), None),
            Some(record) => {
                let patience = self.settings.boot_timeout.min(Duration::from_secs(120));
                let poll = self.settings.poll_interval;
                let wait = DbaasWait {
                    timeout: self.settings.dbaas_timeout,
                    poll,
                };
                // A destroy builds nothing: no image.
                let (destroyed, left) = self
                    .on_region(
                        &held,
                        &cmd.meta,
                        &cmd.deployment,
                        &record.spec,
                        String::new(),
                        async |applier| {
                            let destroyed = applier.destroy_all().await?;
                            remove_dbaas(applier.cloud, applier.store, &cmd.deployment, &cmd.region, wait)
                                .await?;
                            let firewalls =
                                remove_firewalls(applier.cloud, &record.spec, patience, poll).await?;
                            let vpc = remove_vpc(applier.cloud, &record, patience, poll).await?;
                            let left: Vec<String> = firewalls.into_iter().chain(vpc).collect();
                            Ok((destroyed, (!left.is_empty()).then(|| left.join("; "))))
                        },
                    )
                    .await?;
                match &left {
                    // Everything of ours is gone: forget the region.
                    None => machines
                        .forget_region(&cmd.deployment, &cmd.region)
                        .await
                        .map_err(store_error)?,
                    // Something is left (its VPC, still in use): the region stays recorded, failed, so that
                    // `status` shows it and a later destroy tries again.
                    Some(why) => machines
                        .set_region_status(&cmd.deployment, &cmd.region, "failed", Some(why))
                        .await
                        .map_err(store_error)?,
                }
                (destroyed, left)
            }
        };
        let outcome = if left.is_some() { "failed" } else { "destroyed" };
        let event = RegionApplied {
            meta: EventMeta::derived(&cmd.meta, &format!("region/{outcome}"), "provisioner"),
            deployment: cmd.deployment.clone(),
            region: cmd.region.clone(),
            outcome: outcome.into(),
            // What was left in place, and why.
            error: left,
            created: Vec::new(),
            adopted: Vec::new(),
            destroyed,
            failed: Vec::new(),
        };
        self.publish_event(&event).await?;
        inbox
            .record(&id, DestroyRegion::KIND)
            .await
            .map_err(|e| HandlerError::retry(e.to_string()))?;
        Ok(())
    }

    /// `provisioner.reconcile.v1`: one region compared with its cloud now, drift corrected. Waits for a
    /// command busy with the region rather than skipping it.
    pub async fn reconcile(&self, cmd: ReconcileRegion, delivery: Delivery) -> Result<(), HandlerError> {
        let record = self.recorded(&cmd.deployment, &cmd.region).await?;
        if record.status == "blocked" {
            return Ok(());
        }
        self.reconcile_region(&record, Some((&cmd.meta, delivery.is_last_attempt())))
            .await
    }

    /// Compares every recorded region (but those blocked or failed) with its cloud once, and converges those
    /// that drifted (a machine
    /// deleted behind our back, an unrecorded machine with our marks, one stuck booting) or whose plan is
    /// not empty. Costs one list call per region when nothing changed. Regions busy with a command are
    /// skipped this time.
    pub async fn reconcile_all(&self) -> Result<(), HandlerError> {
        let machines = self.machines().await?;
        for record in machines.regions(None, None).await.map_err(store_error)? {
            // Blocked: its apply is waiting for the primary. Failed: its last apply was refused for good
            // (a bad size, machines that never boot) — converging it again every pass would only create and
            // destroy machines; the next apply or a reconcile command takes it up again.
            if matches!(record.status.as_str(), "blocked" | "failed") {
                continue;
            }
            let deployment = record.deployment.clone();
            let region = record.spec.name.clone();
            if let Err(e) = self.reconcile_region(&record, None).await {
                tracing::warn!(%deployment, %region, error = %e, "reconciling the region failed");
            }
        }
        Ok(())
    }

    /// `command`: the reconcile command and whether this is its last delivery; `None` for the periodic pass,
    /// which skips a region busy with a command.
    async fn reconcile_region(
        &self,
        record: &crate::store::RegionRecord,
        command: Option<(&CommandMeta, bool)>,
    ) -> Result<(), HandlerError> {
        let deployment = &record.deployment;
        let region = &record.spec;
        let periodic = CommandMeta::new("provisioner/reconcile");
        let (cause, last_attempt) = command.unwrap_or((&periodic, false));
        let held = match command {
            Some(_) => self.hold(deployment, &region.name).await?,
            // The periodic pass skips a region that is busy (or whose lease cannot be read just now).
            None => match self.locks.try_hold(deployment, &region.name).await {
                Ok(Some(held)) => held,
                Ok(None) => return Ok(()),
                Err(e) => return Err(HandlerError::retry(e)),
            },
        };
        // Destroyed while this pass waited?
        let Some(record) = self
            .machines()
            .await?
            .regions(Some(deployment), Some(&region.name))
            .await
            .map_err(store_error)?
            .into_iter()
            .next()
        else {
            return Ok(());
        };
        let region = &record.spec;
        let drifted = self
            .on_region(
                &held,
                cause,
                deployment,
                region,
                record.image.clone(),
                async |applier| {
                    let drift = applier.reconcile().await?;
                    let known: Vec<_> = applier
                        .store
                        .region(deployment, &region.name)
                        .await?
                        .iter()
                        .map(MachineRow::known)
                        .collect();
                    let unfinished = known
                        .iter()
                        .any(|k| !matches!(k.state, crate::plan::KnownState::Healthy));
                    Ok(!drift.is_empty() || unfinished || !plan(region, &known, Uuid::nil()).is_empty())
                },
            )
            .await?;
        if drifted {
            tracing::info!(%deployment, region = %region.name, "region drifted from its spec; converging");
            // The next pass retries: a failure is recorded for `status`, told only when final.
            self.converge_recorded(&held, cause, deployment, &region.name, last_attempt)
                .await?;
        }
        Ok(())
    }

    /// Publishes an event on its own subject, with its own id.
    async fn publish_event<E: Event>(&self, event: &E) -> Result<(), HandlerError> {
        self.publisher
            .publish_event(event)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::retry(format!("publishing a {} event: {e}", E::KIND)))
    }
}

/// The region to record for an apply of `spec`, and the webserver count its spec asks for. The live
/// webserver count belongs to the autoscaler: a redeploy whose initial count is unchanged keeps the
/// recorded one (clamped to the new bounds); a new region, or a changed initial count, takes the spec's.
pub fn live_region(spec: &Region, recorded: Option<&crate::store::RegionRecord>) -> (Region, u32) {
    let initial = spec.machines.get(Role::Webserver).count;
    let mut live = spec.clone();
    if let Some(record) = recorded
        && record.initial_webservers == Some(initial)
    {
        let current = record.spec.machines.get(Role::Webserver).count;
        live.machines.get_mut(Role::Webserver).count =
            current.clamp(spec.scaling.min, spec.scaling.max.max(spec.scaling.min));
    }
    (live, initial)
}

/// The image of a region's machines, from the deployment's build OS.
fn image_of(deployment: &Deployment, region: &Region) -> String {
    let os = &deployment.application.build_os;
    image_for(region, os.family, &os.version)
}

/// The region lease was taken over by another replica while this one worked.
fn lease_lost(deployment: &str, region: &str) -> HandlerError {
    HandlerError::retry(format!(
        "the lease on region {region} of deployment {deployment} was taken over by another replica;          stopped and handed back"
    ))
}

/// A failure to make a region's adapters as a handler outcome: a secrets file being rewritten or a cloud
/// error worth retrying is retried; missing credentials, a missing simulator endpoint are refused.
fn clouds_error(region: &str, e: CloudsError) -> HandlerError {
    match e {
        CloudsError::Cloud(c) => reject_or_retry(c),
        e if e.is_retryable() => HandlerError::retry(format!("region {region}: {e}")),
        e => HandlerError::Reject(format!("region {region}: {e}")),
    }
}

/// A cloud error as a handler outcome: retried (after the provider's `Retry-After` when it gave one) when
/// trying again can help, refused otherwise.
fn reject_or_retry(e: CloudError) -> HandlerError {
    if e.is_retryable() {
        HandlerError::Retry {
            // The provider's word, capped.
            after: flotilla_clouds::retry_after(&e),
            reason: e.to_string(),
        }
    } else {
        HandlerError::Reject(e.to_string())
    }
}
