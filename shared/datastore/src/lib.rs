//! Flotilla's S3 datastores.
//!
//! A region lists its S3-compatible datastore endpoints ([`Region::datastores`], imported from the
//! toolkit's `|`-separated `S3_HOST_BASE` / `S3_LOCATION` / `S3_ACCESS_KEY` / `S3_SECRET_KEY` lists:
//! entry N of each forms endpoint N), with their keys in [`RegionSecrets::datastores`]. Endpoint 1
//! (index 0) is the region's own; the others are usually other regions' or other providers' stores.
//!
//! [`DatastoreSet::from_region`] builds one aws-sdk-s3 client ([`Datastore`]) per endpoint, with
//! static credentials, the provider's SigV4 region string and path-style or virtual-host addressing
//! per provider (see [`EndpointConfig`] for the rules). Then, as the toolkit did:
//!
//! - reads ([`DatastoreSet::get`], [`DatastoreSet::list`]) use endpoint 1 only;
//! - writes ([`DatastoreSet::put_all`], [`DatastoreSet::delete_all`],
//!   [`DatastoreSet::ensure_bucket_all`]) go to every endpoint concurrently, each endpoint retried on
//!   its own, and return a [`PutReport`] of which endpoints succeeded and which failed (and why). A
//!   dead endpoint does not stop the others; the caller decides what a partial write means.
//!
//! Each request is retried per [`RetryPolicy`] (default 5 tries, exponential delays from 250 ms)
//! when it fails in a retryable way: timeouts, unreachable endpoints, 5xx, throttling, unreadable
//! responses ([`FailureKind::is_retryable`]). Refused credentials, missing buckets and other 4xx
//! return at once. The SDK's own retries are off. Each try is bounded: connections by
//! [`DatastoreOptions::connect_timeout`], the whole try by [`DatastoreOptions::request_timeout`] plus
//! an allowance for the bytes moved ([`DatastoreOptions::min_transfer_rate`]), so a write to a dead or
//! hung endpoint always comes back.
//!
//! Writes are unconditional: no S3 conditional request (`If-None-Match`, `If-Match`) is ever sent,
//! because support for them on the VPS providers is unknown.
//!
//! For the simulator and tests, [`DatastoreOptions::endpoint_overrides`] points endpoints at other
//! URLs (e.g. `http://127.0.0.1:9000`) while keeping everything else from the spec.
//!
//! Keys never appear in `Debug` output, logs or errors: [`Datastore`]'s `Debug` shows only the endpoint,
//! and a failed request keeps only the status, S3 error code and message, scrubbed of the endpoint's
//! keys ([`RequestFailure`]).
//!
//! ```no_run
//! # async fn example(region: &flotilla_spec::Region, secrets: &flotilla_spec::RegionSecrets)
//! # -> Result<(), flotilla_datastore::DatastoreError> {
//! use flotilla_datastore::DatastoreSet;
//!
//! let stores = DatastoreSet::from_region(region, secrets)?;
//! stores.ensure_bucket_all("www-example-com-multi-region").await.into_result()?;
//! let report = stores
//!     .put_all("www-example-com-multi-region", "dbaas_ips/10.0.0.5", bytes::Bytes::new())
//!     .await;
//! for (index, error) in &report.failed {
//!     tracing::warn!(endpoint = index + 1, %error, "marker not written");
//! }
//! let credentials = stores.get("www-example-com-multi-region", "credentials.dat").await?;
//! # let _ = credentials;
//! # Ok(())
//! # }
//! ```
//!
//! [`Region::datastores`]: flotilla_spec::Region::datastores
//! [`RegionSecrets::datastores`]: flotilla_spec::RegionSecrets::datastores

mod endpoint;
mod error;
mod options;
mod set;
mod store;

pub use endpoint::{DEFAULT_REGION, EndpointConfig, EndpointError};
pub use error::{DatastoreError, FailureKind, RequestFailure};
pub use options::{DatastoreOptions, RetryPolicy};
pub use set::{DatastoreSet, PutReport, WriteReport};
pub use store::{Datastore, Listing, MIN_PART_SIZE, Metadata, Moved, ObjectInfo, etag_of_file, normal_etag};
