//! A region's datastores: reads from endpoint 1, writes fanned out to all.

use std::{fmt, future::Future};

use bytes::Bytes;
use flotilla_spec::{Region, RegionSecrets};
use futures::future::join_all;

use crate::{Datastore, DatastoreError, DatastoreOptions, EndpointConfig, ObjectInfo};

/// All datastore endpoints of one region, endpoint 1 (index 0) first. Reads go to endpoint 1, the
/// region's own; writes go to every endpoint at once and report per endpoint. Never empty. `Debug`
/// shows the endpoints, never their keys.
#[derive(Clone)]
pub struct DatastoreSet {
    primary: Datastore,
    stores: Vec<Datastore>,
}

/// The outcome of a write fanned out to every endpoint. Endpoints are named by their position in the
/// region's list (0 = endpoint 1); both lists are in that order.
#[derive(Debug, Clone, Default)]
pub struct WriteReport {
    /// Endpoints the write reached.
    pub succeeded: Vec<usize>,
    /// Endpoints it did not reach, with the last error of each (after its retries).
    pub failed: Vec<(usize, DatastoreError)>,
}

/// The outcome of [`DatastoreSet::put_all`] (the same type reports every fanned-out write).
pub type PutReport = WriteReport;

impl WriteReport {
    /// Whether every endpoint was written.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// Whether the write reached `index` (0 = endpoint 1, the one reads use).
    pub fn reached(&self, index: usize) -> bool {
        self.succeeded.contains(&index)
    }

    /// The failure on endpoint `index`, if it failed.
    pub fn error_for(&self, index: usize) -> Option<&DatastoreError> {
        self.failed.iter().find(|(i, _)| *i == index).map(|(_, e)| e)
    }

    /// `Ok` with the report when every endpoint was written, else the first endpoint's error.
    pub fn into_result(self) -> Result<Self, DatastoreError> {
        match self.failed.first() {
            Some((_, error)) => Err(error.clone()),
            None => Ok(self),
        }
    }
}

impl DatastoreSet {
    /// Clients for every endpoint of `region` (`Region::datastores`), with the S3 keys at the same
    /// positions in `secrets.datastores` and [`DatastoreOptions::default`].
    pub fn from_region(region: &Region, secrets: &RegionSecrets) -> Result<Self, DatastoreError> {
        Self::from_region_with(region, secrets, &DatastoreOptions::default())
    }

    /// Like [`from_region`](Self::from_region), with options: endpoint overrides (for the simulator and
    /// tests), retries, timeouts. Fails when the region has no endpoint, an endpoint has no keys, a
    /// host base or override URL is unusable, or an override names a position the region lacks.
    pub fn from_region_with(
        region: &Region,
        secrets: &RegionSecrets,
        options: &DatastoreOptions,
    ) -> Result<Self, DatastoreError> {
        let endpoints = region.datastores.len();
        if endpoints == 0 {
            return Err(DatastoreError::NoEndpoints {
                region: region.name.clone(),
            });
        }
        if let Some(&index) = options.endpoint_overrides.keys().find(|&&i| i >= endpoints) {
            return Err(DatastoreError::UnknownOverride { index, endpoints });
        }
        let stores = region
            .datastores
            .iter()
            .enumerate()
            .map(|(index, endpoint)| {
                let credentials = secrets
                    .datastores
                    .get(index)
                    .filter(|c| !c.access_key.is_empty() && !c.secret_key.is_empty())
                    .ok_or_else(|| DatastoreError::MissingCredentials {
                        region: region.name.clone(),
                        index,
                        host: endpoint.host_base.clone(),
                    })?;
                let invalid = |source| DatastoreError::InvalidEndpoint { index, source };
                let mut config = EndpointConfig::for_endpoint(endpoint).map_err(invalid)?;
                if let Some(url) = options.endpoint_overrides.get(&index) {
                    config = config.with_url(url).map_err(invalid)?;
                }
                Ok(Datastore::new(index, config, credentials, options))
            })
            .collect::<Result<Vec<_>, DatastoreError>>()?;
        Self::new(stores).ok_or_else(|| DatastoreError::NoEndpoints {
            region: region.name.clone(),
        })
    }

    /// A set of already built datastores, the first being the one reads use; `None` when `stores` is
    /// empty.
    pub fn new(stores: Vec<Datastore>) -> Option<Self> {
        let primary = stores.first()?.clone();
        Some(Self { primary, stores })
    }

    /// Endpoint 1, the region's own: the one reads use.
    pub fn primary(&self) -> &Datastore {
        &self.primary
    }

    /// Every endpoint, endpoint 1 first.
    pub fn endpoints(&self) -> &[Datastore] {
        &self.stores
    }

    /// Reads an object from endpoint 1; `None` when the key does not exist there.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, DatastoreError> {
        self.primary.get(bucket, key).await
    }

    /// Lists the objects under `prefix` on endpoint 1, all pages.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, DatastoreError> {
        self.primary.list(bucket, prefix).await
    }

    /// Writes an object to every endpoint concurrently, each retried on its own; returns when all
    /// are done.
    pub async fn put_all(&self, bucket: &str, key: &str, body: Bytes) -> PutReport {
        self.fan_out("put", bucket, key, |store| {
            let body = body.clone();
            async move { store.put(bucket, key, body).await }
        })
        .await
    }

    /// Deletes an object on every endpoint concurrently; already gone is success.
    pub async fn delete_all(&self, bucket: &str, key: &str) -> WriteReport {
        self.fan_out("delete", bucket, key, |store| store.delete(bucket, key))
            .await
    }

    /// Creates the bucket on every endpoint where it does not exist yet.
    pub async fn ensure_bucket_all(&self, bucket: &str) -> WriteReport {
        self.fan_out("ensure bucket", bucket, "", |store| store.ensure_bucket(bucket))
            .await
    }

    async fn fan_out<'a, F, Fut>(&'a self, what: &str, bucket: &str, key: &str, write: F) -> WriteReport
    where
        F: Fn(&'a Datastore) -> Fut,
        Fut: Future<Output = Result<(), DatastoreError>>,
    {
        let results = join_all(self.stores.iter().map(|store| {
            let write = &write;
            async move { (store.index(), write(store).await) }
        }))
        .await;
        let mut report = WriteReport::default();
        for (index, result) in results {
            match result {
                Ok(()) => report.succeeded.push(index),
                Err(error) => {
                    tracing::warn!(
                        endpoint = index + 1,
                        what,
                        bucket,
                        key,
                        %error,
                        "datastore write failed on one endpoint"
                    );
                    report.failed.push((index, error));
                }
            }
        }
        report
    }
}

impl fmt::Debug for DatastoreSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatastoreSet")
            .field("endpoints", &self.stores)
            .finish()
    }
}
