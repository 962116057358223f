//! The provisioner's command handlers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flotilla_bus::{Delivery, HandlerError, Publisher, subject};
use flotilla_cloud::CloudError;
use flotilla_proto::{ApplyRegion, DestroyRegion, EventMeta, MachineChanged, Message, RegionApplied};
use flotilla_spec::{CloudProvider, OsFamily, Region};
use flotilla_store::{Inbox, Store};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::apply::{Applier, ApplyError, ApplyOptions};
use crate::clouds::{Endpoints, RegionCloud, connect};
use crate::store::MachineStore;

/// The provisioner's own settings (`[service]` in its configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Base URLs replacing the providers' real APIs (the simulator, under `flotilla dev`).
    pub endpoints: Endpoints,
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            endpoints: Endpoints::default(),
            health_port: 80,
            health_path: "/".into(),
            boot_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_secs(5),
            max_rounds: 5,
        }
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

/// What the handlers share.
pub struct Provisioner {
    /// Settings.
    pub settings: Settings,
    /// The secrets file (cloud credentials), read at each apply.
    pub secrets_file: Option<PathBuf>,
    /// The service's database.
    pub store: Store,
    /// Event publisher.
    pub publisher: Publisher,
    machines: OnceCell<MachineStore>,
}

impl Provisioner {
    /// The handler state.
    pub fn new(
        settings: Settings,
        secrets_file: Option<PathBuf>,
        store: Store,
        publisher: Publisher,
    ) -> Arc<Self> {
        Arc::new(Self {
            settings,
            secrets_file,
            store,
            publisher,
            machines: OnceCell::new(),
        })
    }

    async fn machines(&self) -> Result<&MachineStore, HandlerError> {
        self.machines
            .get_or_try_init(|| MachineStore::open(self.store.clone()))
            .await
            .map_err(|e| HandlerError::retry(format!("machine store: {e}")))
    }

    /// The adapters of `region`, with credentials read afresh from the secrets file (it may have been
    /// rotated since the last command).
    fn region_cloud(&self, region: &Region) -> Result<RegionCloud, HandlerError> {
        let path = self.secrets_file.as_ref().ok_or_else(|| {
            HandlerError::Reject("the provisioner has no secrets_file: it cannot reach any cloud".into())
        })?;
        let secrets = flotilla_spec::Secrets::load(path)
            .map_err(|e| HandlerError::retry(format!("secrets file: {e}")))?;
        let region_secrets = secrets.region(&region.name).ok_or_else(|| {
            HandlerError::Reject(format!(
                "the secrets file has no credentials for region {}",
                region.name
            ))
        })?;
        connect(region, region_secrets, &self.settings.endpoints).map_err(reject_or_retry)
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

    /// `provisioner.apply.v1`: makes one region match its spec and reports how it went.
    pub async fn apply(&self, cmd: ApplyRegion, _delivery: Delivery) -> Result<(), HandlerError> {
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
        let cloud = self.region_cloud(region)?;
        let machines = self.machines().await?;
        machines
            .save_region(&deployment.name, region)
            .await
            .map_err(|e| HandlerError::retry(e.to_string()))?;
        let os = &deployment.application.build_os;
        let options = self.options(image_for(region, os.family, &os.version));
        let applier = Applier {
            cloud: &cloud,
            store: machines,
            deployment: &deployment.name,
            region,
            options: &options,
        };
        let result = applier.apply(cmd.meta.id.0).await;
        // Tell the fleet's other services what exists now.
        if let Ok(rows) = machines.region(&deployment.name, &region.name).await {
            for row in rows {
                let state = crate::store::state_name(row.state);
                let event = MachineChanged {
                    meta: EventMeta::derived(
                        &cmd.meta,
                        &format!("machine/{}/{state}", row.resource_id),
                        "provisioner",
                    ),
                    deployment: deployment.name.clone(),
                    region: region.name.clone(),
                    resource_id: row.resource_id.clone(),
                    role: row.role.as_str().to_owned(),
                    provider: row.provider.clone(),
                    provider_id: row.provider_id.clone(),
                    state: state.to_owned(),
                    public_ipv4: row.public_ipv4.clone(),
                    private_ipv4: row.private_ipv4.clone(),
                };
                self.publish_event("machine", &deployment.name, &region.name, state, &event)
                    .await?;
            }
        }
        let (outcome, error, report) = match &result {
            Ok(report) => ("applied", None, report.clone()),
            Err(e) => ("failed", Some(e.to_string()), Default::default()),
        };
        let event = RegionApplied {
            meta: EventMeta::derived(&cmd.meta, &format!("region/{outcome}"), "provisioner"),
            deployment: deployment.name.clone(),
            region: region.name.clone(),
            outcome: outcome.to_owned(),
            error,
            created: report.created,
            adopted: report.adopted,
            destroyed: report.destroyed,
            failed: report.failed,
        };
        match result {
            Ok(_) => {
                self.publish_event("region", &deployment.name, &region.name, outcome, &event)
                    .await?;
                inbox
                    .record(&id, ApplyRegion::KIND)
                    .await
                    .map_err(|e| HandlerError::retry(e.to_string()))?;
                Ok(())
            }
            Err(ApplyError::Cloud(c)) if c.is_retryable() => Err(HandlerError::retry(c)),
            Err(e) => {
                self.publish_event("region", &deployment.name, &region.name, outcome, &event)
                    .await?;
                Err(HandlerError::Reject(e.to_string()))
            }
        }
    }

    /// `provisioner.destroy.v1`: removes everything Flotilla created in one region, and nothing else.
    pub async fn destroy(&self, cmd: DestroyRegion, _delivery: Delivery) -> Result<(), HandlerError> {
        let machines = self.machines().await?;
        let retry = |e: crate::store::MachineStoreError| HandlerError::retry(e.to_string());
        let destroyed = match machines
            .region_spec(&cmd.deployment, &cmd.region)
            .await
            .map_err(retry)?
        {
            // Never applied (or already destroyed): nothing of ours is there.
            None => Vec::new(),
            Some(region) => {
                let cloud = self.region_cloud(&region)?;
                // A destroy builds nothing: no image.
                let options = self.options(String::new());
                let applier = Applier {
                    cloud: &cloud,
                    store: machines,
                    deployment: &cmd.deployment,
                    region: &region,
                    options: &options,
                };
                let destroyed = applier.destroy_all().await.map_err(|e| match e {
                    ApplyError::Cloud(c) => reject_or_retry(c),
                    other => HandlerError::retry(other),
                })?;
                machines
                    .forget_region(&cmd.deployment, &cmd.region)
                    .await
                    .map_err(retry)?;
                destroyed
            }
        };
        let cause = &cmd.meta;
        for resource_id in &destroyed {
            let event = MachineChanged {
                meta: EventMeta::derived(cause, &format!("machine/{resource_id}/destroyed"), "provisioner"),
                deployment: cmd.deployment.clone(),
                region: cmd.region.clone(),
                resource_id: resource_id.clone(),
                role: String::new(),
                provider: String::new(),
                provider_id: None,
                state: "destroyed".into(),
                public_ipv4: None,
                private_ipv4: None,
            };
            self.publish_event("machine", &cmd.deployment, &cmd.region, "destroyed", &event)
                .await?;
        }
        let event = RegionApplied {
            meta: EventMeta::derived(cause, "region/destroyed", "provisioner"),
            deployment: cmd.deployment.clone(),
            region: cmd.region.clone(),
            outcome: "destroyed".into(),
            error: None,
            created: Vec::new(),
            adopted: Vec::new(),
            destroyed,
            failed: Vec::new(),
        };
        self.publish_event("region", &cmd.deployment, &cmd.region, "destroyed", &event)
            .await
    }

    async fn publish_event<M: Message + HasEventId>(
        &self,
        topic: &str,
        deployment: &str,
        region: &str,
        name: &str,
        event: &M,
    ) -> Result<(), HandlerError> {
        let subject = subject::event(topic, deployment, region, &name.replace('_', "-"))
            .map_err(|e| HandlerError::Reject(e.to_string()))?;
        self.publisher
            .publish(&subject, &event.event_id(), event)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::retry(format!("publishing {subject}: {e}")))
    }
}

/// Events know their own id (their `Nats-Msg-Id`).
pub trait HasEventId {
    /// The event's id.
    fn event_id(&self) -> String;
}

impl HasEventId for MachineChanged {
    fn event_id(&self) -> String {
        self.meta.id.to_string()
    }
}

impl HasEventId for RegionApplied {
    fn event_id(&self) -> String {
        self.meta.id.to_string()
    }
}

fn reject_or_retry(e: CloudError) -> HandlerError {
    if e.is_retryable() {
        HandlerError::retry(e)
    } else {
        HandlerError::Reject(e.to_string())
    }
}
