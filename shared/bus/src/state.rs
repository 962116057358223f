//! Shared state in KV buckets, typed ([`Bucket`]): each deployment's desired state ([`DesiredStates`]), the
//! fleet view ([`FleetView`]) and the health view ([`HealthView`]). Values are `flotilla-proto` messages (JSON, so `nats kv get` is readable).
//!
//! Both are read the same way: [`Follower`] delivers every current value of the keys it follows, says when
//! it has caught up ([`Change::Current`]), and then delivers every later change. It is one ordered consumer
//! on the bucket's stream (last value per key first, then everything new), so no change can fall between
//! the snapshot and the stream; a follower started late, or after its owner lost its own database, ends
//! with the same view as one that watched from the start.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::kv;
use chrono::Utc;
use flotilla_proto::{DesiredDeployment, Encoding, MachineHealth, MachineRecord, Message};
use futures::StreamExt;

use crate::{BusError, subject};

/// Header a KV store puts on deletes and purges.
const KV_OPERATION: &str = "KV-Operation";

/// A value read from a bucket, with its revision (the compare-and-set token).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its revision in the bucket.
    pub revision: u64,
}

/// Why a compare-and-set write was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} changed since revision {expected:?}: somebody else wrote it first")]
pub struct Conflict {
    /// The key.
    pub key: String,
    /// The revision the writer expected (`None`: it expected no value).
    pub expected: Option<u64>,
}

fn encode<T: Message>(value: &T) -> Result<bytes::Bytes, BusError> {
    Ok(flotilla_proto::encode(value, Encoding::Json)?.into())
}

fn decode<T: Message>(key: &str, bytes: &[u8]) -> Result<T, BusError> {
    flotilla_proto::decode(Some(T::KIND), None, bytes).map_err(|e| BusError::JetStream {
        op: "decode a KV value",
        reason: format!("{key}: {e}"),
    })
}

/// Reads one key, `None` when absent or deleted.
async fn read<T: Message>(store: &kv::Store, key: &str) -> Result<Option<Versioned<T>>, BusError> {
    let entry = store
        .entry(key)
        .await
        .map_err(|e| BusError::js("read a KV value", e))?;
    match entry {
        Some(e) if e.operation == kv::Operation::Put => Ok(Some(Versioned {
            value: decode(key, &e.value)?,
            revision: e.revision,
        })),
        _ => Ok(None),
    }
}

/// A KV bucket of one message type: read, write (plainly or by compare-and-set), delete and follow.
/// The typed views below are built on it, and a service keeps its own shared state in one (the
/// autoscaler's per-region scaling state, say).
pub struct Bucket<T> {
    store: kv::Store,
    client: async_nats::Client,
    _kind: PhantomData<fn() -> T>,
}

impl<T> Clone for Bucket<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            client: self.client.clone(),
            _kind: PhantomData,
        }
    }
}

impl<T: Message + Clone> Bucket<T> {
    /// The values in `store`, followed over `client`.
    pub fn new(store: kv::Store, client: async_nats::Client) -> Self {
        Self {
            store,
            client,
            _kind: PhantomData,
        }
    }

    /// The value under `key`, `None` when absent or deleted.
    pub async fn get(&self, key: &str) -> Result<Option<Versioned<T>>, BusError> {
        read(&self.store, key).await
    }

    /// Writes `value` under `key`, whatever is there.
    pub async fn put(&self, key: &str, value: &T) -> Result<u64, BusError> {
        self.store
            .put(key, encode(value)?)
            .await
            .map_err(|e| BusError::js("write a KV value", e))
    }

    /// Writes `value` under `key` if the stored revision is still `expected` (`None`: nothing stored yet);
    /// `Ok(Err(Conflict))` when somebody wrote it first.
    pub async fn put_if(
        &self,
        key: &str,
        value: &T,
        expected: Option<u64>,
    ) -> Result<Result<u64, Conflict>, BusError> {
        let bytes = encode(value)?;
        let conflict = Conflict {
            key: key.to_owned(),
            expected,
        };
        match expected {
            None => match self.store.create(key, bytes).await {
                Ok(revision) => Ok(Ok(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(Err(conflict)),
                Err(e) => Err(BusError::js("write a KV value", e)),
            },
            Some(revision) => match self.store.update(key, bytes, revision).await {
                Ok(revision) => Ok(Ok(revision)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Err(conflict)),
                Err(e) => Err(BusError::js("write a KV value", e)),
            },
        }
    }

    /// Deletes `key`; deleting an absent key is not an error.
    pub async fn remove(&self, key: &str) -> Result<(), BusError> {
        self.store
            .delete(key)
            .await
            .map_err(|e| BusError::js("delete a KV value", e))
    }

    /// Follows the keys matching `filter` (a KV key filter: `a.>`, `a.*.c`, `>`).
    pub async fn follow(&self, filter: &str) -> Result<Follower<T>, BusError> {
        Follower::start(&self.store, &self.client, filter).await
    }

    /// The current values of the keys matching `filter`, by key.
    pub async fn snapshot(&self, filter: &str) -> Result<BTreeMap<String, T>, BusError> {
        let mut follower = self.follow(filter).await?;
        follower.until_current().await?;
        Ok(follower.into_values())
    }
}

/// Each deployment's desired state, in the `flotilla_desired` bucket. Written only by the provisioner,
/// by compare-and-set; read and followed by every service.
#[derive(Clone)]
pub struct DesiredStates {
    bucket: Bucket<DesiredDeployment>,
}

impl DesiredStates {
    /// The desired states in `store`, followed over `client`.
    pub fn new(store: kv::Store, client: async_nats::Client) -> Self {
        Self {
            bucket: Bucket::new(store, client),
        }
    }

    /// The desired state of `deployment`, if it was ever deployed.
    pub async fn get(&self, deployment: &str) -> Result<Option<Versioned<DesiredDeployment>>, BusError> {
        self.bucket.get(&subject::desired_key(deployment)?).await
    }

    /// For a command handler: `Ok` when the desired state holds `region` of `deployment`; a refusal (a dead
    /// letter with the reason) when it does not; a retry when the bucket cannot be read now.
    pub async fn require_region(&self, deployment: &str, region: &str) -> Result<(), crate::HandlerError> {
        let deployed = self
            .get(deployment)
            .await
            .map_err(|e| crate::HandlerError::Retry {
                reason: e.to_string(),
                after: None,
            })?
            .is_some_and(|d| d.value.deployment.region(region).is_some());
        if deployed {
            Ok(())
        } else {
            Err(crate::HandlerError::Reject(format!(
                "region {region} of deployment {deployment} is not deployed"
            )))
        }
    }

    /// Writes `value` if the stored revision is still `expected` (`None`: nothing stored yet). Refuses a
    /// value whose generation does not grow, whatever the revision says.
    pub async fn put(
        &self,
        value: &DesiredDeployment,
        expected: Option<&Versioned<DesiredDeployment>>,
    ) -> Result<Result<u64, Conflict>, BusError> {
        let key = subject::desired_key(&value.deployment.name)?;
        if let Some(previous) = expected
            && value.generation <= previous.value.generation
        {
            return Err(BusError::Options(format!(
                "desired state of {key}: generation {} does not follow {}",
                value.generation, previous.value.generation
            )));
        }
        self.bucket
            .put_if(&key, value, expected.map(|e| e.revision))
            .await
    }

    /// Follows the desired state of `deployment` (every deployment when `None`).
    pub async fn follow(&self, deployment: Option<&str>) -> Result<Follower<DesiredDeployment>, BusError> {
        let filter = match deployment {
            Some(d) => subject::desired_key(d)?,
            None => ">".to_owned(),
        };
        self.bucket.follow(&filter).await
    }
}

/// A record kept per machine under `<deployment>.<region>.<resource id>`.
pub trait PerMachine: Message + Clone {
    /// Its deployment, region and resource id.
    fn machine(&self) -> (&str, &str, &str);
}

impl PerMachine for MachineRecord {
    fn machine(&self) -> (&str, &str, &str) {
        (&self.deployment, &self.region, &self.resource_id)
    }
}

impl PerMachine for MachineHealth {
    fn machine(&self) -> (&str, &str, &str) {
        (&self.deployment, &self.region, &self.resource_id)
    }
}

/// Records kept per machine: the fleet view ([`FleetView`], the `flotilla_fleet` bucket, written by the
/// provisioner in the same step as its `MachineChanged` events and deleted when the machine is destroyed)
/// and the health view ([`HealthView`], the `flotilla_health` bucket, written by the autoscaler — the one
/// prober — with its `machine-health` events).
pub struct MachineView<T> {
    bucket: Bucket<T>,
}

impl<T> Clone for MachineView<T> {
    fn clone(&self) -> Self {
        Self {
            bucket: self.bucket.clone(),
        }
    }
}

/// Every machine of the fleet, as the provisioner records it.
pub type FleetView = MachineView<MachineRecord>;

/// Every probed machine's health, as the autoscaler sees it.
pub type HealthView = MachineView<MachineHealth>;

impl<T: PerMachine> MachineView<T> {
    /// The records in `store`, followed over `client`.
    pub fn new(store: kv::Store, client: async_nats::Client) -> Self {
        Self {
            bucket: Bucket::new(store, client),
        }
    }

    /// Writes (or replaces) a machine's record.
    pub async fn put(&self, record: &T) -> Result<u64, BusError> {
        let (deployment, region, resource_id) = record.machine();
        let key = subject::fleet_key(deployment, region, resource_id)?;
        self.bucket.put(&key, record).await
    }

    /// Removes a machine's record (it was destroyed); removing an absent one is not an error.
    pub async fn remove(&self, deployment: &str, region: &str, resource_id: &str) -> Result<(), BusError> {
        self.bucket
            .remove(&subject::fleet_key(deployment, region, resource_id)?)
            .await
    }

    /// One machine's record.
    pub async fn get(
        &self,
        deployment: &str,
        region: &str,
        resource_id: &str,
    ) -> Result<Option<T>, BusError> {
        let key = subject::fleet_key(deployment, region, resource_id)?;
        Ok(self.bucket.get(&key).await?.map(|v| v.value))
    }

    /// Follows the machines of `deployment` (every deployment when `None`).
    pub async fn follow(&self, deployment: Option<&str>) -> Result<Follower<T>, BusError> {
        self.bucket.follow(&subject::fleet_filter(deployment)?).await
    }

    /// The current records of `deployment` (every deployment when `None`), by key.
    pub async fn snapshot(&self, deployment: Option<&str>) -> Result<BTreeMap<String, T>, BusError> {
        self.bucket.snapshot(&subject::fleet_filter(deployment)?).await
    }
}

/// One change seen by a [`Follower`].
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// A key now holds `value` (new or replaced).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: T,
        /// Its revision.
        revision: u64,
    },
    /// A key was deleted; `previous` is what it held, if the follower had seen it.
    Removed {
        /// The key.
        key: String,
        /// What it held.
        previous: Option<T>,
    },
    /// Every value that existed when the follower started has been delivered; what follows is new.
    /// Delivered once.
    Current,
}

/// Follows the keys of a bucket matching a filter: every current value, then [`Change::Current`], then
/// every change; keeps the current values ([`Follower::values`]).
pub struct Follower<T> {
    messages: push::Ordered,
    prefix: String,
    values: BTreeMap<String, T>,
    current: bool,
    told_current: bool,
    ended: bool,
    _kind: PhantomData<T>,
}

impl<T: Message + Clone> Follower<T> {
    async fn start(store: &kv::Store, client: &async_nats::Client, filter: &str) -> Result<Self, BusError> {
        let consumer = store
            .stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                description: Some("flotilla state follower".into()),
                filter_subject: format!("{}{filter}", store.prefix),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::js("follow a KV bucket", e))?;
        let current = consumer.cached_info().num_pending == 0;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| BusError::js("follow a KV bucket", e))?;
        Ok(Self {
            messages,
            prefix: store.prefix.clone(),
            values: BTreeMap::new(),
            current,
            told_current: false,
            ended: false,
            _kind: PhantomData,
        })
    }

    /// The next change (applied to [`Follower::values`] before it is returned); `None` when the
    /// connection closed or the watch failed (the owner follows again). A value that does not decode is
    /// an error for that key, not the end: the next call goes on.
    pub async fn next(&mut self) -> Option<Result<Change<T>, BusError>> {
        if self.current && !self.told_current {
            self.told_current = true;
            return Some(Ok(Change::Current));
        }
        if self.ended {
            return None;
        }
        let message = match self.messages.next().await? {
            Ok(m) => m,
            Err(e) => {
                // The watch itself failed (a missed heartbeat when a NATS node went away, a consumer that
                // could not be recreated): it may never deliver again, so the follower ends and its owner
                // follows anew (every owner does on `None`), reading every current value again.
                tracing::warn!(error = %e, filter = %self.prefix, "following a KV bucket failed; the follower ends");
                self.ended = true;
                return None;
            }
        };
        let pending = message.info().map(|i| i.pending).unwrap_or(0);
        if pending == 0 {
            self.current = true;
        }
        let key = message
            .subject
            .strip_prefix(self.prefix.as_str())
            .unwrap_or(message.subject.as_str())
            .to_owned();
        let operation = message
            .headers
            .as_ref()
            .and_then(|h| h.get(KV_OPERATION))
            .map(|v| v.as_str().to_owned());
        let revision = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        Some(match operation.as_deref() {
            Some("DEL") | Some("PURGE") => Ok(Change::Removed {
                previous: self.values.remove(&key),
                key,
            }),
            _ => match decode::<T>(&key, &message.payload) {
                Ok(value) => {
                    self.values.insert(key.clone(), value.clone());
                    Ok(Change::Put { key, value, revision })
                }
                Err(e) => Err(e),
            },
        })
    }

    /// Reads until every value that existed at the start is in [`Follower::values`]. Values that do not
    /// decode are logged and skipped.
    pub async fn until_current(&mut self) -> Result<(), BusError> {
        while !self.told_current {
            match self.next().await {
                None => return Err(BusError::js("follow a KV bucket", "the connection closed")),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "skipping a KV value that does not decode"),
            }
        }
        Ok(())
    }

    /// The current values, by key.
    pub fn values(&self) -> &BTreeMap<String, T> {
        &self.values
    }

    /// The current values, by key, consuming the follower.
    pub fn into_values(self) -> BTreeMap<String, T> {
        self.values
    }
}

/// A new desired state from `previous` (if any): the next generation, now.
pub fn next_generation(
    previous: Option<&Versioned<DesiredDeployment>>,
    deployment: flotilla_spec::Deployment,
    updated_by: &str,
) -> DesiredDeployment {
    DesiredDeployment {
        generation: previous.map_or(1, |p| p.value.generation + 1),
        deployment,
        updated_at: Utc::now(),
        updated_by: updated_by.to_owned(),
    }
}
