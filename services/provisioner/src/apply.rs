//! Applying a region's plan: create fencing, boot and health checks, replacement of what never became
//! healthy, removal of what is no longer wanted.

use std::time::Duration;

use flotilla_cloud::{CloudError, Machine, MachineRequest, MachineState, MarkFilter, Marks};
use flotilla_spec::Region;
use uuid::Uuid;

use crate::clouds::RegionCloud;
use crate::plan::{KnownState, Step, plan};
use crate::store::{MachineRow, MachineStore, MachineStoreError};

/// How an apply waits and retries.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Port of the machines' health check.
    pub health_port: u16,
    /// Path of the health check.
    pub health_path: String,
    /// How long a machine may take to become healthy before it is destroyed and replaced.
    pub boot_timeout: Duration,
    /// How often a booting machine is looked at.
    pub poll_interval: Duration,
    /// Rounds of plan-and-execute before the apply gives up (the toolkit retried a machine 5 times).
    pub max_rounds: u32,
    /// The image machines are built from, as the provider names it.
    pub image: String,
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A cloud call failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The provisioner's database failed.
    #[error(transparent)]
    Store(#[from] MachineStoreError),
    /// The managed database cannot be had (the one to adopt does not exist, a name clash).
    #[error("{0}")]
    Dbaas(String),
    /// The managed database is not ready yet after the wait allowed (the apply is tried again).
    #[error("{0}")]
    DbaasNotReady(String),
    /// Telling the fleet of a change failed.
    #[error("publishing a machine change: {0}")]
    Observer(String),
    /// Machines kept failing to become healthy.
    #[error("region {region}: still {missing} machine(s) short after {rounds} rounds")]
    GaveUp {
        /// Region.
        region: String,
        /// Machines still missing.
        missing: usize,
        /// Rounds made.
        rounds: u32,
        /// What the rounds did.
        report: Box<ApplyReport>,
    },
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Machines created (resource ids).
    pub created: Vec<String>,
    /// Machines found already created by an earlier attempt (create fencing).
    pub adopted: Vec<String>,
    /// Machines destroyed (resource ids).
    pub destroyed: Vec<String>,
    /// Machines that never became healthy and were destroyed.
    pub failed: Vec<String>,
}

/// A machine's change of state, as the fleet's other services hear of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The cloud has it (created, or found by its marks after a crash).
    Created,
    /// It runs (not yet answering its health check).
    Running,
    /// It answers its health check.
    Healthy,
    /// It never became healthy, or vanished; it is being replaced.
    Failed,
    /// It is gone.
    Destroyed,
}

impl Change {
    /// The event's spelling (and last subject token).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Healthy => "healthy",
            Self::Failed => "failed",
            Self::Destroyed => "destroyed",
        }
    }
}

/// Told of every machine change as it happens (the handler publishes them as events).
#[async_trait::async_trait]
pub trait Observer: Send + Sync {
    /// `machine` (as recorded after the change) changed as `change` says. An error fails the apply (it is
    /// retried: the events of a redelivery carry the same ids, so nothing is told twice).
    async fn machine(&self, machine: &MachineRow, change: Change) -> Result<(), String>;
}

/// An observer that tells nobody.
pub struct Silent;

#[async_trait::async_trait]
impl Observer for Silent {
    async fn machine(&self, _: &MachineRow, _: Change) -> Result<(), String> {
        Ok(())
    }
}

/// The region's network, as machines are created into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// VPC id.
    pub vpc_id: Option<String>,
    /// Subnet id (Linode).
    pub subnet_id: Option<String>,
}

/// What a reconcile found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// Machines recorded but gone from the cloud (deleted behind our back): forgotten, to be replaced.
    pub vanished: Vec<String>,
    /// Machines carrying the region's marks that were not recorded: adopted (recorded; the plan keeps or
    /// removes them like any other).
    pub adopted: Vec<String>,
    /// Machines carrying the deployment's marks without a role or resource id: reported, left alone.
    pub unknown: Vec<String>,
    /// Machines stuck booting past the boot timeout: marked failed, to be destroyed and recreated.
    pub stuck: Vec<String>,
}

impl Drift {
    /// Whether anything differed.
    pub fn is_empty(&self) -> bool {
        self.vanished.is_empty() && self.adopted.is_empty() && self.stuck.is_empty()
    }
}

/// Applies one region of one deployment.
pub struct Applier<'a> {
    /// The region's provider account.
    pub cloud: &'a RegionCloud,
    /// The provisioner's record.
    pub store: &'a MachineStore,
    /// Deployment name.
    pub deployment: &'a str,
    /// The region's spec.
    pub region: &'a Region,
    /// Timings.
    pub options: &'a ApplyOptions,
    /// Where new machines go.
    pub placement: Placement,
    /// Told of every change.
    pub observer: &'a dyn Observer,
}

impl Applier<'_> {
    /// Makes the region's machines match its spec. Safe to run again after a crash at any point, and for
    /// the same `apply_id` twice: machines recorded as being created are looked up by their marks before
    /// anything is created.
    pub async fn apply(&self, apply_id: Uuid) -> Result<ApplyReport, ApplyError> {
        let mut report = ApplyReport::default();
        for round in 0..self.options.max_rounds {
            // Round 0 plans with the apply's own id (a redelivery plans the same ids); later rounds, which
            // replace failures, with ids of their own.
            let round_id = if round == 0 {
                apply_id
            } else {
                Uuid::new_v5(&apply_id, &round.to_le_bytes())
            };
            // Machines an earlier attempt left half-destroyed are finished first.
            let mut rows = self.store.region(self.deployment, &self.region.name).await?;
            if rows.iter().any(|r| r.state == KnownState::Destroying) {
                for row in rows.iter().filter(|r| r.state == KnownState::Destroying) {
                    self.destroy(&row.resource_id).await?;
                    report.destroyed.push(row.resource_id.clone());
                }
                rows = self.store.region(self.deployment, &self.region.name).await?;
            }
            let known: Vec<_> = rows.iter().map(MachineRow::known).collect();
            let steps = plan(self.region, &known, round_id);
            // Machines an earlier attempt left half-way (recorded, maybe created, not yet healthy) count as
            // present in the plan; they are finished here: found by their marks, or created.
            let unfinished: Vec<Step> = rows
                .iter()
                .filter(|r| {
                    matches!(
                        r.state,
                        KnownState::CreatePending | KnownState::Provisioning | KnownState::Running
                    )
                })
                .map(|r| Step::Create {
                    role: r.role,
                    size: r.size.clone(),
                    resource_id: r.resource_id.clone(),
                    name: r.name.clone(),
                })
                .collect();
            if steps.is_empty() && unfinished.is_empty() {
                return Ok(report);
            }
            let creates: Vec<NewMachine<'_>> = unfinished
                .iter()
                .chain(steps.iter())
                .filter_map(NewMachine::of)
                .collect();
            let results = if self.region.in_parallel {
                futures::future::join_all(creates.iter().map(|s| self.create(s))).await
            } else {
                let mut out = Vec::new();
                for s in &creates {
                    out.push(self.create(s).await);
                }
                out
            };
            for result in results {
                match result? {
                    Created::New(id) => report.created.push(id),
                    Created::Adopted(id) => report.adopted.push(id),
                    Created::Failed(id) => report.failed.push(id),
                }
            }
            for step in &steps {
                if let Step::Destroy { resource_id, .. } = step {
                    self.destroy(resource_id).await?;
                    report.destroyed.push(resource_id.clone());
                }
            }
        }
        let known: Vec<_> = self
            .store
            .region(self.deployment, &self.region.name)
            .await?
            .iter()
            .map(MachineRow::known)
            .collect();
        let missing = plan(self.region, &known, apply_id)
            .iter()
            .filter(|s| matches!(s, Step::Create { .. }))
            .count();
        if missing == 0 {
            Ok(report)
        } else {
            Err(ApplyError::GaveUp {
                region: self.region.name.clone(),
                missing,
                rounds: self.options.max_rounds,
                report: Box::new(report),
            })
        }
    }

    /// Removes everything Flotilla created in the region: the machines it recorded, and any machine still
    /// carrying the region's marks (created by an attempt that crashed before recording it). Nothing else —
    /// a machine without our marks is never touched. Returns the resource ids destroyed.
    pub async fn destroy_all(&self) -> Result<Vec<String>, ApplyError> {
        let mut destroyed = Vec::new();
        for row in self.store.region(self.deployment, &self.region.name).await? {
            self.destroy(&row.resource_id).await?;
            destroyed.push(row.resource_id);
        }
        let filter = MarkFilter::region(self.deployment, &self.region.name);
        for machine in self.cloud.compute.list_machines(&filter).await? {
            match self.cloud.compute.delete_machine(&machine.id).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(marks) = machine.marks
                && !destroyed.contains(&marks.resource_id)
            {
                destroyed.push(marks.resource_id);
            }
        }
        Ok(destroyed)
    }

    /// Compares the record with the cloud — one list by the region's marks, whatever the number of
    /// machines — and brings the record in line: vanished machines forgotten (an apply replaces them),
    /// unrecorded marked ones adopted, ones stuck booting past the boot timeout marked failed.
    pub async fn reconcile(&self) -> Result<Drift, ApplyError> {
        let mut drift = Drift::default();
        let rows = self.store.region(self.deployment, &self.region.name).await?;
        let filter = MarkFilter::region(self.deployment, &self.region.name);
        let listed = self.cloud.compute.list_machines(&filter).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let boot_ms = i64::try_from(self.options.boot_timeout.as_millis()).unwrap_or(i64::MAX);
        for row in &rows {
            let Some(provider_id) = &row.provider_id else {
                // Never answered by the cloud: an apply finishes it (find by marks, or create).
                continue;
            };
            let found = listed.iter().find(|m| &m.id == provider_id);
            match (found, row.state) {
                // Left half-destroyed by an earlier attempt: finish it.
                (_, KnownState::Destroying) => {
                    self.destroy(&row.resource_id).await?;
                }
                (None, _) => {
                    tracing::warn!(
                        resource_id = %row.resource_id, machine = %provider_id,
                        "machine deleted behind our back; it will be replaced"
                    );
                    self.tell(row, Change::Destroyed).await?;
                    self.store.remove(&row.resource_id).await?;
                    drift.vanished.push(row.resource_id.clone());
                }
                (Some(m), KnownState::Provisioning | KnownState::Running | KnownState::CreatePending)
                    if m.state != MachineState::Running && now.saturating_sub(row.created_ms) > boot_ms =>
                {
                    tracing::warn!(resource_id = %row.resource_id, "machine stuck booting past the boot timeout");
                    self.tell(row, Change::Failed).await?;
                    self.store
                        .update(&row.resource_id, None, KnownState::Failed, None, None)
                        .await?;
                    drift.stuck.push(row.resource_id.clone());
                }
                _ => {}
            }
        }
        for machine in &listed {
            let known = rows
                .iter()
                .any(|r| r.provider_id.as_deref() == Some(machine.id.as_str()));
            if known {
                continue;
            }
            match machine.marks.as_ref() {
                Some(marks) if marks.role.is_some() && !marks.resource_id.is_empty() => {
                    let Some(role) = marks.role else { continue };
                    // A pending record of ours (crash before the create answered) is finished by the apply.
                    if rows.iter().any(|r| r.resource_id == marks.resource_id) {
                        continue;
                    }
                    let row = MachineRow {
                        resource_id: marks.resource_id.clone(),
                        deployment: self.deployment.to_owned(),
                        region: self.region.name.clone(),
                        role,
                        // The provider may spell the spec's size with a family (`standard.tiny` for
                        // `tiny` at Exoscale): the spec's spelling, so that the plan sees the right size.
                        size: spec_size(self.region, role, &machine.size),
                        name: machine.name.clone(),
                        provider: self.cloud.provider.as_str().to_owned(),
                        provider_id: Some(machine.id.clone()),
                        state: KnownState::CreatePending,
                        public_ipv4: machine.public_ipv4.map(|ip| ip.to_string()),
                        private_ipv4: machine.private_ipv4.map(|ip| ip.to_string()),
                        attempts: 0,
                        created_ms: 0,
                    };
                    if self.store.record_pending(&row).await? {
                        tracing::warn!(
                            resource_id = %row.resource_id, machine = %machine.id,
                            "adopting a machine with our marks that was not recorded"
                        );
                        self.store
                            .update(
                                &row.resource_id,
                                Some(&machine.id),
                                KnownState::Provisioning,
                                row.public_ipv4.as_deref(),
                                row.private_ipv4.as_deref(),
                            )
                            .await?;
                        drift.adopted.push(row.resource_id);
                    }
                }
                _ => {
                    tracing::warn!(
                        machine = %machine.id, name = %machine.name,
                        "a machine carries this region's marks but no role or resource id; left alone"
                    );
                    drift.unknown.push(machine.id.clone());
                }
            }
        }
        Ok(drift)
    }

    /// Marks one machine failed, so that the next apply creates its replacement and then destroys it.
    /// Returns whether the machine was known.
    pub async fn mark_for_replacement(&self, resource_id: &str) -> Result<bool, ApplyError> {
        let rows = self.store.region(self.deployment, &self.region.name).await?;
        let Some(row) = rows.iter().find(|r| r.resource_id == resource_id) else {
            return Ok(false);
        };
        if row.state != KnownState::Failed {
            self.tell(row, Change::Failed).await?;
            self.store
                .update(resource_id, None, KnownState::Failed, None, None)
                .await?;
        }
        Ok(true)
    }

    /// Destroys one machine now (a scale-in). Returns whether the machine was known.
    pub async fn destroy_one(&self, resource_id: &str) -> Result<bool, ApplyError> {
        let rows = self.store.region(self.deployment, &self.region.name).await?;
        if !rows.iter().any(|r| r.resource_id == resource_id) {
            return Ok(false);
        }
        self.destroy(resource_id).await?;
        Ok(true)
    }

    async fn create(&self, new: &NewMachine<'_>) -> Result<Created, ApplyError> {
        let NewMachine {
            role,
            size,
            resource_id,
            name,
        } = *new;
        let marks = Marks {
            deployment: self.deployment.to_owned(),
            region: self.region.name.clone(),
            role: Some(*role),
            resource_id: resource_id.clone(),
        };
        let mut row = MachineRow {
            resource_id: resource_id.clone(),
            deployment: self.deployment.to_owned(),
            region: self.region.name.clone(),
            role: *role,
            size: size.clone(),
            name: name.clone(),
            provider: self.cloud.provider.as_str().to_owned(),
            provider_id: None,
            state: KnownState::CreatePending,
            public_ipv4: None,
            private_ipv4: None,
            attempts: 0,
            created_ms: 0,
        };
        // Fencing: the record first, then the cloud — and if the record was already there, the cloud may
        // already have the machine: look for it by its marks before creating.
        let fresh = self.store.record_pending(&row).await?;
        let existing = if fresh { None } else { self.find(&marks).await? };
        let (machine, outcome) = match existing {
            Some(m) => (m, Created::Adopted(resource_id.clone())),
            None => {
                self.store.add_attempt(resource_id).await?;
                let request = MachineRequest {
                    name: name.clone(),
                    region: self.region.provider_region.clone(),
                    size: size.clone(),
                    image: self.options.image.clone(),
                    vpc_id: self.placement.vpc_id.clone(),
                    subnet_id: self.placement.subnet_id.clone(),
                    firewall_id: None,
                    ssh_keys: Vec::new(),
                    user_data: None,
                    marks: marks.clone(),
                };
                (
                    self.cloud.compute.create_machine(&request).await?,
                    Created::New(resource_id.clone()),
                )
            }
        };
        row.provider_id = Some(machine.id.clone());
        row.state = KnownState::Provisioning;
        row.public_ipv4 = machine.public_ipv4.map(|ip| ip.to_string());
        row.private_ipv4 = machine.private_ipv4.map(|ip| ip.to_string());
        // Told before recorded: if telling fails (or the process dies) the record still says where this
        // machine was, the next attempt gets here again and tells again (same event id: nothing twice).
        self.tell(&row, Change::Created).await?;
        self.store
            .update(
                resource_id,
                Some(&machine.id),
                KnownState::Provisioning,
                row.public_ipv4.as_deref(),
                row.private_ipv4.as_deref(),
            )
            .await?;
        match self.wait_healthy(&mut row).await? {
            Some(up) => {
                row.public_ipv4 = up.public_ipv4.map(|ip| ip.to_string()).or(row.public_ipv4);
                row.private_ipv4 = up.private_ipv4.map(|ip| ip.to_string()).or(row.private_ipv4);
                row.state = KnownState::Healthy;
                self.tell(&row, Change::Healthy).await?;
                self.store
                    .update(
                        resource_id,
                        None,
                        KnownState::Healthy,
                        row.public_ipv4.as_deref(),
                        row.private_ipv4.as_deref(),
                    )
                    .await?;
                Ok(outcome)
            }
            None => {
                tracing::warn!(resource_id, machine = %machine.id, "machine never became healthy; destroying it");
                row.state = KnownState::Failed;
                self.tell(&row, Change::Failed).await?;
                self.store
                    .update(resource_id, None, KnownState::Failed, None, None)
                    .await?;
                self.destroy(resource_id).await?;
                Ok(Created::Failed(resource_id.clone()))
            }
        }
    }

    async fn tell(&self, row: &MachineRow, change: Change) -> Result<(), ApplyError> {
        self.observer
            .machine(row, change)
            .await
            .map_err(ApplyError::Observer)
    }

    /// The machine carrying `marks`, if the cloud has it.
    async fn find(&self, marks: &Marks) -> Result<Option<Machine>, ApplyError> {
        let filter = MarkFilter {
            deployment: marks.deployment.clone(),
            region: Some(marks.region.clone()),
            role: marks.role,
        };
        Ok(self
            .cloud
            .compute
            .list_machines(&filter)
            .await?
            .into_iter()
            .find(|m| {
                m.marks
                    .as_ref()
                    .is_some_and(|k| k.resource_id == marks.resource_id)
            }))
    }

    /// Waits until the machine runs and answers its health check; `None` when it did not in time. Tells
    /// the observer when it first runs.
    async fn wait_healthy(&self, row: &mut MachineRow) -> Result<Option<Machine>, ApplyError> {
        let id = row.provider_id.clone().unwrap_or_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| CloudError::Transport {
                provider: self.cloud.provider,
                message: e.to_string(),
            })?;
        let deadline = tokio::time::Instant::now() + self.options.boot_timeout;
        while tokio::time::Instant::now() < deadline {
            let machine = match self.cloud.compute.get_machine(&id).await {
                Ok(m) => m,
                // Gone while booting (deleted by hand, or the provider gave up on it): a failed machine,
                // replaced like one that never answers.
                Err(e) if e.is_not_found() => {
                    tracing::warn!(machine = %id, "machine vanished while booting");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            if machine.state == MachineState::Running && row.state != KnownState::Running {
                row.state = KnownState::Running;
                row.public_ipv4 = machine
                    .public_ipv4
                    .map(|ip| ip.to_string())
                    .or(row.public_ipv4.take());
                row.private_ipv4 = machine
                    .private_ipv4
                    .map(|ip| ip.to_string())
                    .or(row.private_ipv4.take());
                self.tell(row, Change::Running).await?;
                self.store
                    .update(
                        &row.resource_id,
                        None,
                        KnownState::Running,
                        row.public_ipv4.as_deref(),
                        row.private_ipv4.as_deref(),
                    )
                    .await?;
            }
            if machine.state == MachineState::Running
                && let Some(ip) = machine.public_ipv4
            {
                let url = format!(
                    "http://{ip}:{}{}",
                    self.options.health_port, self.options.health_path
                );
                if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                    return Ok(Some(machine));
                }
            }
            tokio::time::sleep(self.options.poll_interval).await;
        }
        Ok(None)
    }

    /// Destroys a machine and forgets it: by its provider id when recorded, else by its marks.
    async fn destroy(&self, resource_id: &str) -> Result<(), ApplyError> {
        let rows = self.store.region(self.deployment, &self.region.name).await?;
        let row = rows.iter().find(|r| r.resource_id == resource_id);
        let provider_id = match row.and_then(|r| r.provider_id.clone()) {
            Some(id) => Some(id),
            None => {
                let marks = Marks {
                    deployment: self.deployment.to_owned(),
                    region: self.region.name.clone(),
                    role: row.map(|r| r.role),
                    resource_id: resource_id.to_owned(),
                };
                self.find(&marks).await?.map(|m| m.id)
            }
        };
        if let Some(id) = provider_id {
            self.store
                .update(resource_id, None, KnownState::Destroying, None, None)
                .await?;
            match self.cloud.compute.delete_machine(&id).await {
                Ok(()) => {}
                // Already gone (deleted by hand, or by an attempt that crashed before forgetting it).
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Told, then forgotten: a row left `destroying` by a crash here is finished by the next apply or
        // reconcile pass (the delete answers "not found", the event is told again, the row goes).
        if let Some(row) = row {
            let mut gone = row.clone();
            gone.state = KnownState::Destroying;
            self.tell(&gone, Change::Destroyed).await?;
        }
        self.store.remove(resource_id).await?;
        Ok(())
    }
}

/// `size` as the region's spec spells it when it names the spec's size of `role` (maybe with a family prefix,
/// as Exoscale answers `standard.tiny` for `tiny`); `size` itself otherwise.
fn spec_size(region: &Region, role: flotilla_spec::Role, size: &str) -> String {
    let wanted = &region.machines.get(role).size;
    if size == wanted || size.rsplit_once('.').is_some_and(|(_, s)| s == wanted) {
        wanted.clone()
    } else {
        size.to_owned()
    }
}

/// The parts of a create step.
#[derive(Clone, Copy)]
struct NewMachine<'a> {
    role: &'a flotilla_spec::Role,
    size: &'a String,
    resource_id: &'a String,
    name: &'a String,
}

impl<'a> NewMachine<'a> {
    fn of(step: &'a Step) -> Option<Self> {
        match step {
            Step::Create {
                role,
                size,
                resource_id,
                name,
            } => Some(Self {
                role,
                size,
                resource_id,
                name,
            }),
            Step::Destroy { .. } => None,
        }
    }
}

enum Created {
    New(String),
    Adopted(String),
    Failed(String),
}
