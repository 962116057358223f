//! Streams and KV buckets, created or updated idempotently at every start-up.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use serde::Deserialize;

use crate::{BusError, subject};

/// Name of the command stream (`flotilla.cmd.>`, work-queue retention).
pub const COMMAND_STREAM: &str = "FLOTILLA_COMMANDS";
/// Name of the event stream (`flotilla.evt.>`, limits retention).
pub const EVENT_STREAM: &str = "FLOTILLA_EVENTS";
/// Name of the dead-letter stream (`flotilla.dlq.>`, limits retention).
pub const DLQ_STREAM: &str = "FLOTILLA_DLQ";
/// Name of the KV bucket holding leases.
pub const LEASE_BUCKET: &str = "flotilla_leases";
/// Name of the KV bucket holding each deployment's desired state (`desired.deployment.v1`, keyed by
/// deployment).
pub const DESIRED_BUCKET: &str = "flotilla_desired";
/// Name of the KV bucket holding the fleet view (`fleet.machine.v1`, keyed by
/// `<deployment>.<region>.<resource id>`).
pub const FLEET_BUCKET: &str = "flotilla_fleet";

/// Name of the KV bucket holding the health view (`autoscaler.machine-health.v1`, keyed like the fleet
/// view), written by the autoscaler.
pub const HEALTH_BUCKET: &str = "flotilla_health";

/// Sizing of the streams; the `[bus]` section of a service's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    /// Replicas of every stream and bucket: 1 on a single server, 3 on a cluster.
    pub replicas: usize,
    /// Window in which a command re-published with the same `Nats-Msg-Id` is dropped by the server.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// How long an unconsumed command is kept.
    #[serde(with = "humantime_serde")]
    pub command_max_age: Duration,
    /// How long events are kept (services rebuild their views from them).
    #[serde(with = "humantime_serde")]
    pub event_max_age: Duration,
    /// How long dead letters are kept.
    #[serde(with = "humantime_serde")]
    pub dlq_max_age: Duration,
    /// Time-to-live of the lease bucket's entries.
    #[serde(with = "humantime_serde")]
    pub lease_max_age: Duration,
    /// Revisions of each deployment's desired state kept in the desired-state bucket (1–64).
    pub desired_history: i64,
}

impl TopologyConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), BusError> {
        if !(1..=5).contains(&self.replicas) {
            return Err(BusError::Options(format!(
                "bus.replicas must be 1..=5, got {}",
                self.replicas
            )));
        }
        for (name, value) in [
            ("duplicate_window", self.duplicate_window),
            ("command_max_age", self.command_max_age),
            ("event_max_age", self.event_max_age),
            ("dlq_max_age", self.dlq_max_age),
            ("lease_max_age", self.lease_max_age),
        ] {
            if value.is_zero() {
                return Err(BusError::Options(format!("bus.{name} must be positive")));
            }
        }
        if !(1..=64).contains(&self.desired_history) {
            return Err(BusError::Options(format!(
                "bus.desired_history must be 1..=64, got {}",
                self.desired_history
            )));
        }
        if self.duplicate_window > self.command_max_age {
            return Err(BusError::Options(
                "bus.duplicate_window must not exceed bus.command_max_age".into(),
            ));
        }
        Ok(())
    }
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            command_max_age: Duration::from_secs(7 * 24 * 3600),
            event_max_age: Duration::from_secs(30 * 24 * 3600),
            dlq_max_age: Duration::from_secs(30 * 24 * 3600),
            lease_max_age: Duration::from_secs(3600),
            desired_history: 5,
        }
    }
}

/// Handles to the provisioned streams and buckets.
#[derive(Clone)]
pub struct Topology {
    /// The JetStream context.
    pub js: jetstream::Context,
    /// The command stream.
    pub commands: stream::Stream,
    /// The event stream.
    pub events: stream::Stream,
    /// The dead-letter stream.
    pub dlq: stream::Stream,
    /// The lease bucket.
    pub leases: kv::Store,
    /// The desired-state bucket.
    pub desired: kv::Store,
    /// The fleet-view bucket.
    pub fleet: kv::Store,
    /// The health-view bucket.
    pub health: kv::Store,
    lease_max_age: Duration,
}

impl Topology {
    /// Creates every stream and bucket, or updates it to `config` when it exists. Safe to call from every
    /// replica of every service at once.
    pub async fn ensure(client: &async_nats::Client, config: &TopologyConfig) -> Result<Self, BusError> {
        config.validate()?;
        let js = jetstream::new(client.clone());
        let commands = ensure_stream(
            &js,
            stream::Config {
                name: COMMAND_STREAM.into(),
                description: Some("Flotilla commands, one durable consumer per service".into()),
                subjects: vec![subject::COMMANDS_WILDCARD.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                duplicate_window: config.duplicate_window,
                max_age: config.command_max_age,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        let events = ensure_stream(
            &js,
            stream::Config {
                name: EVENT_STREAM.into(),
                description: Some("Flotilla events; services build their views from them".into()),
                subjects: vec![subject::EVENTS_WILDCARD.into()],
                retention: stream::RetentionPolicy::Limits,
                duplicate_window: config.duplicate_window,
                max_age: config.event_max_age,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        let dlq = ensure_stream(
            &js,
            stream::Config {
                name: DLQ_STREAM.into(),
                description: Some(
                    "Messages a Flotilla service gave up on, with the error in a header".into(),
                ),
                subjects: vec![subject::DLQ_WILDCARD.into()],
                retention: stream::RetentionPolicy::Limits,
                max_age: config.dlq_max_age,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        let leases = js
            .create_or_update_key_value(kv::Config {
                bucket: LEASE_BUCKET.into(),
                description: "Flotilla leases (compare-and-set on revision)".into(),
                history: 1,
                max_age: config.lease_max_age,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::provision(format!("KV bucket {LEASE_BUCKET}"), e))?;
        let desired = js
            .create_or_update_key_value(kv::Config {
                bucket: DESIRED_BUCKET.into(),
                description: "Flotilla desired state per deployment (generation only grows)".into(),
                history: config.desired_history,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::provision(format!("KV bucket {DESIRED_BUCKET}"), e))?;
        let fleet = ensure_bucket(
            &js,
            config,
            FLEET_BUCKET,
            "Flotilla fleet view: every machine, kept by the provisioner",
        )
        .await?;
        let health = ensure_bucket(
            &js,
            config,
            HEALTH_BUCKET,
            "Flotilla health view: every probed machine's health, kept by the autoscaler",
        )
        .await?;
        Ok(Self {
            js,
            commands,
            events,
            dlq,
            leases,
            desired,
            fleet,
            health,
            lease_max_age: config.lease_max_age,
        })
    }

    /// The desired state of every deployment.
    pub fn desired_states(&self) -> crate::state::DesiredStates {
        crate::state::DesiredStates::new(self.desired.clone(), self.js.client())
    }

    /// The fleet view.
    pub fn fleet_view(&self) -> crate::state::FleetView {
        crate::state::FleetView::new(self.fleet.clone(), self.js.client())
    }

    /// The health view.
    pub fn health_view(&self) -> crate::state::HealthView {
        crate::state::HealthView::new(self.health.clone(), self.js.client())
    }

    /// A service's own bucket of `T` (created, or updated to `config`'s replicas, when needed): state a
    /// service shares between its replicas.
    pub async fn service_bucket<T: flotilla_proto::Message + Clone>(
        &self,
        config: &TopologyConfig,
        name: &str,
        description: &str,
    ) -> Result<crate::state::Bucket<T>, BusError> {
        let store = ensure_bucket(&self.js, config, name, description).await?;
        Ok(crate::state::Bucket::new(store, self.js.client()))
    }

    /// The longest a lease may last (the lease bucket's `lease_max_age`).
    pub fn lease_max_age(&self) -> Duration {
        self.lease_max_age
    }

    /// Leases in the lease bucket; a lease may last at most the bucket's `lease_max_age`.
    pub fn leases(&self) -> crate::lease::Leases {
        crate::lease::Leases::new(self.leases.clone(), self.lease_max_age)
    }
}

/// A KV bucket keeping the last value per key, replicated like the streams.
async fn ensure_bucket(
    js: &jetstream::Context,
    config: &TopologyConfig,
    name: &str,
    description: &str,
) -> Result<kv::Store, BusError> {
    js.create_or_update_key_value(kv::Config {
        bucket: name.into(),
        description: description.into(),
        history: 1,
        num_replicas: config.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| BusError::provision(format!("KV bucket {name}"), e))
}

async fn ensure_stream(js: &jetstream::Context, config: stream::Config) -> Result<stream::Stream, BusError> {
    let name = config.name.clone();
    js.create_or_update_stream(config)
        .await
        .map_err(|e| BusError::provision(format!("stream {name}"), e))?;
    js.get_stream(&name)
        .await
        .map_err(|e| BusError::provision(format!("stream {name}"), e))
}
