//! `inventory`: a small service built on the platform the way the dns, firewall, sync and autoscaler
//! services are — the pattern ARCHITECTURE.md describes, exercised by `tests/platform.rs`.
//!
//! - It follows the desired state of every deployment and the fleet view (a snapshot, then every change).
//! - It consumes `MachineChanged` events through its own durable event subscription, idempotent by its own
//!   state: it keeps the ids of the events it handled in its inbox, so an event delivered again — however
//!   late, past the stream's de-duplication window — has no second effect.
//! - For every healthy machine it gets the region's adapters from the secrets file (or the simulator
//!   settings) through `flotilla-clouds` and asks the provider whether the machine is really there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use flotilla_bus::state::Change;
use flotilla_bus::{Dispatcher, HandlerError, StartAt, subject};
use flotilla_clouds::Clouds;
use flotilla_proto::{DesiredDeployment, MachineChanged, MachineRecord};
use flotilla_runtime::prometheus_client::metrics::counter::Counter;
use flotilla_runtime::{Context, NoSettings, ServiceDef};

/// The service's identity.
pub const DEF: ServiceDef = ServiceDef {
    name: "inventory",
    version: "0.0.0",
    description: "Test service: follows the desired state, the fleet view and machine events",
    admin_port: 0,
    migrations: None,
};

/// What the service knows; shared with the test that hosts it.
#[derive(Debug, Default)]
pub struct Seen {
    /// The fleet view, by key, as followed.
    pub fleet: BTreeMap<String, MachineRecord>,
    /// Whether the fleet view has caught up with its snapshot.
    pub fleet_current: bool,
    /// Desired states, by deployment.
    pub desired: BTreeMap<String, DesiredDeployment>,
    /// `MachineChanged` events handled (each once), by event id.
    pub events: BTreeSet<String>,
    /// How many times an event had an effect (must equal `events.len()`).
    pub effects: usize,
    /// Healthy machines the provider confirmed through adapters made from the secrets file, by
    /// provider id.
    pub confirmed: BTreeSet<String>,
    /// Errors met (adapters, provider calls), for the test to show.
    pub errors: Vec<String>,
}

/// The routes of the service; its state goes to `seen`. It counts its effects in its own metric,
/// `inventory_events_handled_total`, served by `/metrics` beside the platform's.
pub fn routes(ctx: &Context<NoSettings>, seen: Arc<Mutex<Seen>>) -> Dispatcher {
    let handled = Counter::<u64>::default();
    ctx.register_metrics(|registry| {
        registry.register(
            "inventory_events_handled",
            "MachineChanged events that had an effect",
            handled.clone(),
        );
    });
    let clouds = Clouds::new(ctx.config.clouds.clone(), ctx.config.secrets_file.clone());
    // The fleet view: snapshot, then every change.
    let fleet = ctx.fleet();
    let shutdown = ctx.shutdown.clone();
    let s = Arc::clone(&seen);
    ctx.spawn(async move {
        let Ok(mut follower) = fleet.follow(None).await else {
            return;
        };
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = follower.next() => c,
            };
            let Some(change) = change else { return };
            let Ok(mut seen) = s.lock() else { return };
            match change {
                Ok(Change::Put { key, value, .. }) => {
                    seen.fleet.insert(key, value);
                }
                Ok(Change::Removed { key, .. }) => {
                    seen.fleet.remove(&key);
                }
                Ok(Change::Current) => seen.fleet_current = true,
                Err(e) => seen.errors.push(e.to_string()),
            }
        }
    });
    // The desired state.
    let desired = ctx.desired();
    let shutdown = ctx.shutdown.clone();
    let s = Arc::clone(&seen);
    ctx.spawn(async move {
        let Ok(mut follower) = desired.follow(None).await else {
            return;
        };
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = follower.next() => c,
            };
            let Some(change) = change else { return };
            if let (Ok(Change::Put { value, .. }), Ok(mut seen)) = (change, s.lock()) {
                seen.desired.insert(value.deployment.name.clone(), value);
            }
        }
    });
    // Machine events, through a durable subscription shared by the service's replicas.
    let inbox = ctx.inbox();
    let desired = ctx.desired();
    let filter = subject::events_filter(Some("machine"), None).unwrap_or_default();
    let s = Arc::clone(&seen);
    let events = Dispatcher::new(DEF.name).on_event(move |event: MachineChanged, _delivery| {
        let (inbox, desired, clouds, seen) = (inbox.clone(), desired.clone(), clouds.clone(), Arc::clone(&s));
        let handled = handled.clone();
        async move {
            let id = event.meta.id.to_string();
            // Idempotent by its own state: an event handled before has no second effect.
            if !inbox
                .record(&id, "provisioner.machine-changed.v1")
                .await
                .map_err(HandlerError::retry)?
            {
                return Ok(());
            }
            let confirmed = if event.state == "healthy" {
                confirm(&clouds, &desired, &event).await
            } else {
                Ok(None)
            };
            let Ok(mut seen) = seen.lock() else {
                return Err(HandlerError::retry("state poisoned"));
            };
            seen.events.insert(id);
            seen.effects += 1;
            handled.inc();
            match confirmed {
                Ok(Some(provider_id)) => {
                    seen.confirmed.insert(provider_id);
                }
                Ok(None) => {}
                Err(e) => seen.errors.push(e),
            }
            Ok(())
        }
    });
    ctx.events("machines", vec![filter], StartAt::Beginning, events);
    Dispatcher::new(DEF.name)
}

/// Asks the machine's provider, through adapters made from the credentials, whether it is there.
async fn confirm(
    clouds: &Clouds,
    desired: &flotilla_bus::state::DesiredStates,
    event: &MachineChanged,
) -> Result<Option<String>, String> {
    let Some(provider_id) = &event.provider_id else {
        return Ok(None);
    };
    let spec = desired
        .get(&event.deployment)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no desired state for {}", event.deployment))?;
    let Some(region) = spec.value.deployment.region(&event.region) else {
        // Withdrawn since.
        return Ok(None);
    };
    let cloud = clouds
        .region(&event.deployment, region)
        .map_err(|e| e.to_string())?;
    match cloud.compute.get_machine(provider_id).await {
        Ok(_) => Ok(Some(provider_id.clone())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
