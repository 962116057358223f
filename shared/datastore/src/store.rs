//! One endpoint: an aws-sdk-s3 client with static credentials, and its operations, each retried.

use std::{
    fmt,
    future::Future,
    time::{Duration, SystemTime},
};

use aws_sdk_s3::{
    config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
        http::HttpResponse, retry::RetryConfig, timeout::TimeoutConfig,
    },
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
    types::{BucketLocationConstraint, CreateBucketConfiguration},
};
use backon::Retryable;
use bytes::Bytes;
use flotilla_spec::{DatastoreCredentials, Secret};

use crate::{DatastoreError, DatastoreOptions, EndpointConfig, FailureKind, RequestFailure, RetryPolicy};

/// One S3-compatible endpoint of a region: position `index` of its datastore list (0 = endpoint 1).
///
/// Every operation is retried by the [`RetryPolicy`] when it fails in a retryable way. Cloning is cheap
/// (the client is shared). `Debug` shows the endpoint, never the keys.
#[derive(Clone)]
pub struct Datastore {
    index: usize,
    config: EndpointConfig,
    client: aws_sdk_s3::Client,
    retry: RetryPolicy,
    timeouts: Timeouts,
    list_page_size: i32,
    redactor: Redactor,
}

/// Per-try time limits (see [`DatastoreOptions::request_timeout`]).
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    request: Duration,
    min_transfer_rate: u64,
}

impl Timeouts {
    /// How long one try that moves `bytes` bytes may take.
    fn for_bytes(&self, bytes: u64) -> Duration {
        let allowance = bytes.checked_div(self.min_transfer_rate).unwrap_or(0);
        self.request.saturating_add(Duration::from_secs(allowance))
    }
}

/// The smallest part of a multipart upload S3 accepts (all but the last part).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// An object's user metadata (`x-amz-meta-<name>` headers), by name (lower case, without the prefix).
pub type Metadata = std::collections::HashMap<String, String>;

/// What [`Datastore::get_to_file`] and [`Datastore::copy_to`] moved: the bytes, and the source object's
/// user metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    /// Bytes written.
    pub size: u64,
    /// The source object's user metadata.
    pub metadata: Metadata,
}

/// The entity tag S3 gives the file at `path` (`size` bytes) once this crate wrote it with `part_size`
/// ([`Datastore::put_file`], [`Datastore::copy_to`]): the MD5 of its bytes, hex, when it is one part;
/// otherwise the MD5 of its parts' MD5s followed by `-<parts>`. Read in blocks, never held whole.
pub fn etag_of_file(path: &std::path::Path, size: u64, part_size: u64) -> std::io::Result<String> {
    use md5::Digest;
    use std::io::Read;
    let part_size = part_size.max(MIN_PART_SIZE);
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut whole = md5::Md5::new();
    let mut parts: Vec<u8> = Vec::new();
    let (mut in_part, mut count, mut total) = (0u64, 0u64, 0u64);
    loop {
        let room = usize::try_from((part_size - in_part).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = file.read(&mut buf[..room])?;
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        in_part += n as u64;
        total += n as u64;
        if in_part == part_size {
            parts.extend_from_slice(&std::mem::take(&mut whole).finalize());
            in_part = 0;
            count += 1;
        }
    }
    if total != size {
        return Err(std::io::Error::other(format!(
            "expected {size} bytes, read {total} (it changed while read)"
        )));
    }
    match (count, in_part) {
        // Smaller than a part (or empty): one write, the MD5 of the bytes.
        (0, _) => Ok(hex::encode(whole.finalize())),
        // Exactly one part: one write too, whose MD5 is that part's.
        (1, 0) => Ok(hex::encode(&parts)),
        _ => {
            if in_part > 0 {
                parts.extend_from_slice(&whole.finalize());
                count += 1;
            }
            Ok(format!("{}-{count}", hex::encode(md5::Md5::digest(&parts))))
        }
    }
}

/// An entity tag as a comparable checksum: quotes stripped, lowercase.
pub fn normal_etag(etag: &str) -> String {
    etag.trim_matches('"').to_ascii_lowercase()
}

/// One object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, when the endpoint said.
    pub last_modified: Option<SystemTime>,
    /// Its entity tag as sent by the endpoint (with quotes), when it said.
    pub etag: Option<String>,
}

impl Datastore {
    /// A client for endpoint `index` (0 = endpoint 1) with static credentials. The HTTP stack is
    /// hyper with rustls on ring. Request checksums are only sent where an operation requires them and
    /// response checksums only checked where required: several S3-compatible services reject the
    /// SDK's newer default (checksum trailers with `aws-chunked` bodies). Conditional requests are never
    /// used.
    pub fn new(
        index: usize,
        config: EndpointConfig,
        credentials: &DatastoreCredentials,
        options: &DatastoreOptions,
    ) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        // Only the connection is limited by the SDK: its read timeout would cover a whole upload, so
        // each try is limited here instead, by its size.
        let sdk_timeouts = TimeoutConfig::builder()
            .connect_timeout(options.connect_timeout)
            .build();
        let sdk_config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .endpoint_url(&config.url)
            .force_path_style(config.path_style)
            .credentials_provider(Credentials::new(
                credentials.access_key.expose(),
                credentials.secret_key.expose(),
                None,
                None,
                "flotilla-datastore",
            ))
            .http_client(http)
            .retry_config(RetryConfig::disabled())
            .timeout_config(sdk_timeouts)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self {
            index,
            config,
            client: aws_sdk_s3::Client::from_conf(sdk_config),
            retry: options.retry,
            timeouts: Timeouts {
                request: options.request_timeout,
                min_transfer_rate: options.min_transfer_rate,
            },
            list_page_size: options.list_page_size.clamp(1, 1000),
            redactor: Redactor::new(credentials),
        }
    }

    /// Position in the region's datastore list (0 = endpoint 1, the region's own).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The endpoint URL, used as its name in logs and errors.
    pub fn name(&self) -> &str {
        &self.config.url
    }

    /// How many objects a page of a listing holds at most.
    pub fn list_page_size(&self) -> usize {
        usize::try_from(self.list_page_size).unwrap_or(1000)
    }

    /// How the endpoint is reached.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// The underlying SDK client, for operations this crate does not wrap (e.g. multipart uploads).
    /// Requests made with it are not retried by this crate.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Reads an object; `None` when the key does not exist. A missing bucket is an error
    /// ([`FailureKind::NotFound`]).
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, DatastoreError> {
        Ok(Box::pin(self.get_with_metadata(bucket, key))
            .await?
            .map(|(body, _)| body))
    }

    /// [`Datastore::get`], with the object's user metadata.
    pub async fn get_with_metadata(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Bytes, Metadata)>, DatastoreError> {
        let operation = format!("GetObject {bucket}/{key}");
        let result = self
            .with_retry(&operation, || async {
                let request = self.client.get_object().bucket(bucket).key(key).send();
                let output = self
                    .timed(&operation, 0, async {
                        request.await.map_err(|e| self.sdk_failure(&operation, e))
                    })
                    .await?;
                let size = output
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0);
                let metadata = output.metadata().cloned().unwrap_or_default();
                let body = self
                    .timed(&operation, size, async {
                        output.body.collect().await.map_err(|e| {
                            self.failure(&operation, FailureKind::Protocol, None, None, &e.to_string())
                        })
                    })
                    .await?;
                Ok((body.into_bytes(), metadata))
            })
            .await;
        found(result)
    }

    /// Writes an object (unconditionally: no `If-None-Match`/`If-Match`).
    pub async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), DatastoreError> {
        self.put_with_metadata(bucket, key, body, &Metadata::new()).await
    }

    /// [`Datastore::put`], with user metadata (none when `metadata` is empty).
    pub async fn put_with_metadata(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        metadata: &Metadata,
    ) -> Result<(), DatastoreError> {
        let operation = format!("PutObject {bucket}/{key}");
        let size = u64::try_from(body.len()).unwrap_or(u64::MAX);
        let metadata = (!metadata.is_empty()).then(|| metadata.clone());
        self.with_retry(&operation, || async {
            let request = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .set_metadata(metadata.clone())
                .body(ByteStream::from(body.clone()))
                .send();
            self.timed(&operation, size, async {
                request
                    .await
                    .map(|_| ())
                    .map_err(|e| self.sdk_failure(&operation, e))
            })
            .await
        })
        .await
    }

    /// Copies `key` of `bucket` here to `to_key` of `to_bucket` on `target` (another endpoint, of any
    /// provider), `size` bytes long (as the listing said), holding at most one part of `part_size` bytes
    /// in memory whatever the object's size: an object larger than one part is read by ranges and written
    /// as a multipart upload (each part retried on its own; the upload aborted if a part cannot be
    /// written), a smaller one is one read and one write. `part_size` is at least 5 MiB, S3's smallest
    /// part. The copy keeps the source's user metadata (as S3's own copy does); returns the bytes copied and
    /// that metadata.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_to(
        &self,
        bucket: &str,
        key: &str,
        target: &Datastore,
        to_bucket: &str,
        to_key: &str,
        size: u64,
        part_size: u64,
    ) -> Result<Moved, DatastoreError> {
        let part_size = part_size.max(MIN_PART_SIZE);
        let gone = || {
            self.failure(
                &format!("GetObject {bucket}/{key}"),
                FailureKind::NotFound,
                Some(404),
                None,
                "the object went away before it was copied",
            )
        };
        if size <= part_size {
            // Boxed: the SDK's futures are large, and this one is awaited inside others.
            let (body, metadata) = Box::pin(self.get_with_metadata(bucket, key))
                .await?
                .ok_or_else(gone)?;
            let copied = u64::try_from(body.len()).unwrap_or(u64::MAX);
            Box::pin(target.put_with_metadata(to_bucket, to_key, body, &metadata)).await?;
            return Ok(Moved {
                size: copied,
                metadata,
            });
        }
        let metadata = Box::pin(self.head_metadata(bucket, key))
            .await?
            .ok_or_else(gone)?;
        // Boxed: the parts' futures are large, and this one is awaited inside others.
        Box::pin(
            target.multipart(to_bucket, to_key, size, part_size, &metadata, |start, len| {
                self.get_range(bucket, key, start, len)
            }),
        )
        .await
        .map(|()| Moved { size, metadata })
    }

    /// The user metadata of `key` of `bucket` (a `HeadObject`); `None` when the key does not exist.
    async fn head_metadata(&self, bucket: &str, key: &str) -> Result<Option<Metadata>, DatastoreError> {
        let operation = format!("HeadObject {bucket}/{key}");
        let result = self
            .with_retry(&operation, || async {
                let request = self.client.head_object().bucket(bucket).key(key).send();
                self.timed(&operation, 0, async {
                    request
                        .await
                        .map(|o| o.metadata().cloned().unwrap_or_default())
                        .map_err(|e| self.sdk_failure(&operation, e))
                })
                .await
            })
            .await;
        found(result)
    }

    /// Writes the file at `path`, `size` bytes long, as `key` of `bucket`, holding at most one part of
    /// `part_size` bytes in memory: a file larger than one part is written as a multipart upload. A file
    /// that changes length while it is read fails the write (a local error), and nothing is left behind.
    /// The object gets `metadata` as its user metadata.
    pub async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
        size: u64,
        part_size: u64,
        metadata: &Metadata,
    ) -> Result<u64, DatastoreError> {
        let part_size = part_size.max(MIN_PART_SIZE);
        if size <= part_size {
            let body = tokio::fs::read(path).await.map_err(|e| local(path, &e))?;
            if u64::try_from(body.len()).ok() != Some(size) {
                return Err(DatastoreError::Local {
                    path: path.display().to_string(),
                    message: format!(
                        "expected {size} bytes, read {} (it changed while read)",
                        body.len()
                    ),
                });
            }
            Box::pin(self.put_with_metadata(bucket, key, Bytes::from(body), metadata)).await?;
            return Ok(size);
        }
        Box::pin(
            self.multipart(bucket, key, size, part_size, metadata, |start, len| {
                read_range(path, start, len)
            }),
        )
        .await
        .map(|()| size)
    }

    /// Reads `key` of `bucket` into a new file at `path` (created or truncated), streamed: at most one
    /// chunk of the answer is held in memory. `None` (and no file written) when the key does not exist.
    /// The file is flushed to disk before this returns; write it under a temporary name and rename it, so
    /// that no reader ever sees half of it. Returns the bytes written and the object's user metadata.
    pub async fn get_to_file(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
    ) -> Result<Option<Moved>, DatastoreError> {
        use tokio::io::AsyncWriteExt;
        let operation = format!("GetObject {bucket}/{key}");
        let result = self
            .with_retry(&operation, || async {
                let request = self.client.get_object().bucket(bucket).key(key).send();
                let mut output = self
                    .timed(&operation, 0, async {
                        request.await.map_err(|e| self.sdk_failure(&operation, e))
                    })
                    .await?;
                let size = output
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0);
                let metadata = output.metadata().cloned().unwrap_or_default();
                let mut file = tokio::fs::File::create(path).await.map_err(|e| local(path, &e))?;
                let mut written = 0u64;
                self.timed(&operation, size, async {
                    while let Some(chunk) = output.body.try_next().await.map_err(|e| {
                        self.failure(&operation, FailureKind::Protocol, None, None, &e.to_string())
                    })? {
                        file.write_all(&chunk).await.map_err(|e| local(path, &e))?;
                        written += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
                    }
                    Ok(())
                })
                .await?;
                file.sync_all().await.map_err(|e| local(path, &e))?;
                if written != size {
                    return Err(self.failure(
                        &operation,
                        FailureKind::Protocol,
                        None,
                        None,
                        &format!("the answer said {size} bytes and carried {written}"),
                    ));
                }
                Ok(Moved {
                    size: written,
                    metadata,
                })
            })
            .await;
        found(result)
    }

    /// Bytes `start..start + len` of `key` of `bucket`.
    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<Bytes, DatastoreError> {
        let end = start + len - 1;
        let operation = format!("GetObject {bucket}/{key} bytes {start}-{end}");
        let body = self
            .with_retry(&operation, || async {
                let request = self
                    .client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .range(format!("bytes={start}-{end}"))
                    .send();
                let output = self
                    .timed(&operation, 0, async {
                        request.await.map_err(|e| self.sdk_failure(&operation, e))
                    })
                    .await?;
                self.timed(&operation, len, async {
                    output.body.collect().await.map_err(|e| {
                        self.failure(&operation, FailureKind::Protocol, None, None, &e.to_string())
                    })
                })
                .await
                .map(|b| b.into_bytes())
            })
            .await?;
        if u64::try_from(body.len()).ok() != Some(len) {
            return Err(self.failure(
                &operation,
                FailureKind::Protocol,
                None,
                None,
                &format!(
                    "asked for {len} bytes, got {} (the object changed while it was copied?)",
                    body.len()
                ),
            ));
        }
        Ok(body)
    }

    /// Writes `key` of `bucket` here as a multipart upload of `size` bytes, part by part, each part's
    /// bytes from `read(start, len)` (each part retried on its own; the upload aborted if a part cannot
    /// be read or written), with `metadata` as its user metadata.
    async fn multipart<R, F>(
        &self,
        bucket: &str,
        key: &str,
        size: u64,
        part_size: u64,
        metadata: &Metadata,
        mut read: R,
    ) -> Result<(), DatastoreError>
    where
        R: FnMut(u64, u64) -> F,
        F: Future<Output = Result<Bytes, DatastoreError>>,
    {
        let operation = format!("CreateMultipartUpload {bucket}/{key}");
        let metadata = (!metadata.is_empty()).then(|| metadata.clone());
        let created = self
            .with_retry(&operation, || async {
                let request = self
                    .client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .set_metadata(metadata.clone())
                    .send();
                self.timed(&operation, 0, async {
                    request.await.map_err(|e| self.sdk_failure(&operation, e))
                })
                .await
            })
            .await?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let mut parts = Vec::new();
        let mut start = 0u64;
        let mut number = 1i32;
        let mut failed = None;
        while start < size {
            let len = part_size.min(size - start);
            let body = match read(start, len).await {
                Ok(body) => body,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            let operation = format!("UploadPart {bucket}/{key} #{number}");
            let uploaded = self
                .with_retry(&operation, || async {
                    let request = self
                        .client
                        .upload_part()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(&upload_id)
                        .part_number(number)
                        .body(ByteStream::from(body.clone()))
                        .send();
                    self.timed(&operation, len, async {
                        request.await.map_err(|e| self.sdk_failure(&operation, e))
                    })
                    .await
                })
                .await;
            match uploaded {
                Ok(part) => parts.push(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                ),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            start += len;
            number += 1;
        }
        if failed.is_none() {
            let operation = format!("CompleteMultipartUpload {bucket}/{key}");
            let completed = aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build();
            let done = self
                .with_retry(&operation, || async {
                    let request = self
                        .client
                        .complete_multipart_upload()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(&upload_id)
                        .multipart_upload(completed.clone())
                        .send();
                    self.timed(&operation, 0, async {
                        request
                            .await
                            .map(|_| ())
                            .map_err(|e| self.sdk_failure(&operation, e))
                    })
                    .await
                })
                .await;
            match done {
                Ok(()) => return Ok(()),
                Err(e) => failed = Some(e),
            }
        }
        // Best effort: an upload left behind only costs storage until the bucket's lifecycle rule.
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
        Err(failed.unwrap_or_else(|| {
            self.failure(&operation, FailureKind::Protocol, None, None, "the upload failed")
        }))
    }

    /// Deletes an object. An object or bucket that is already gone is success.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), DatastoreError> {
        let operation = format!("DeleteObject {bucket}/{key}");
        let result = self
            .with_retry(&operation, || async {
                let request = self.client.delete_object().bucket(bucket).key(key).send();
                self.timed(&operation, 0, async {
                    request
                        .await
                        .map(|_| ())
                        .map_err(|e| self.sdk_failure(&operation, e))
                })
                .await
            })
            .await;
        match result {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Every object whose key starts with `prefix` (all of them for `""`), following all pages, in
    /// the endpoint's (lexicographic) order.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, DatastoreError> {
        let mut objects = Vec::new();
        let mut listing = self.listing(bucket, prefix, None);
        while let Some(page) = listing.next_page().await? {
            objects.extend(page);
        }
        Ok(objects)
    }

    /// The objects of `bucket` under `prefix` whose keys come after `start_after`, in key order, read a
    /// page at a time ([`Listing::next_page`]): only one page is ever held.
    pub fn listing<'a>(&'a self, bucket: &'a str, prefix: &'a str, start_after: Option<&str>) -> Listing<'a> {
        Listing {
            store: self,
            bucket,
            prefix,
            start_after: start_after.map(str::to_owned),
            token: None,
            seen_tokens: std::collections::HashSet::new(),
            done: false,
        }
    }

    /// Creates the bucket unless it exists. A bucket that exists and is ours is success; one owned by
    /// another account is an error ([`FailureKind::Auth`] or [`FailureKind::Conflict`]).
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), DatastoreError> {
        match self.head_bucket(bucket).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let operation = format!("CreateBucket {bucket}");
        let created = self
            .with_retry(&operation, || async {
                let mut request = self.client.create_bucket().bucket(bucket);
                if let Some(location) = &self.config.location_constraint {
                    request = request.create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(location.as_str()))
                            .build(),
                    );
                }
                let request = request.send();
                self.timed(&operation, 0, async {
                    request
                        .await
                        .map(|_| ())
                        .map_err(|e| self.sdk_failure(&operation, e))
                })
                .await
            })
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if error_code(&e) == Some("BucketAlreadyOwnedByYou") => Ok(()),
            // Someone created it since we looked: ours when we can see it now (some services say
            // "already exists" even to the owner).
            Err(e) if error_code(&e) == Some("BucketAlreadyExists") => {
                self.head_bucket(bucket).await.map_err(|_| e)
            }
            Err(e) => Err(e),
        }
    }

    async fn head_bucket(&self, bucket: &str) -> Result<(), DatastoreError> {
        let operation = format!("HeadBucket {bucket}");
        self.with_retry(&operation, || async {
            let request = self.client.head_bucket().bucket(bucket).send();
            self.timed(&operation, 0, async {
                request
                    .await
                    .map(|_| ())
                    .map_err(|e| self.sdk_failure(&operation, e))
            })
            .await
        })
        .await
    }

    /// Runs `attempt` until it succeeds, fails in a way not worth retrying, or the policy's tries are
    /// used up.
    async fn with_retry<T, F, Fut>(&self, operation: &str, attempt: F) -> Result<T, DatastoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DatastoreError>>,
    {
        attempt
            .retry(self.retry.backoff())
            .when(DatastoreError::is_retryable)
            .notify(|error, delay| {
                tracing::warn!(
                    endpoint = self.index + 1,
                    url = %self.config.url,
                    operation,
                    %error,
                    retry_in = ?delay,
                    "datastore request failed; retrying"
                );
            })
            .await
    }

    /// Runs one try of a request that moves `bytes` bytes, abandoning it (a retryable
    /// [`FailureKind::Timeout`]) when it takes longer than allowed.
    async fn timed<T>(
        &self,
        operation: &str,
        bytes: u64,
        work: impl Future<Output = Result<T, DatastoreError>>,
    ) -> Result<T, DatastoreError> {
        let limit = self.timeouts.for_bytes(bytes);
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(self.failure(
                operation,
                FailureKind::Timeout,
                None,
                None,
                &format!("no complete answer within {limit:?}"),
            ))
        })
    }

    /// Turns an SDK error into a [`RequestFailure`], keeping only status, code and message (scrubbed).
    fn sdk_failure<E>(&self, operation: &str, error: SdkError<E, HttpResponse>) -> DatastoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = error.raw_response().map(|r| r.status().as_u16());
        let (kind, code, message) = match &error {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let code = e.code().filter(|c| !c.is_empty()).map(str::to_owned);
                let kind = FailureKind::for_response(status, code.as_deref());
                (kind, code, e.message().unwrap_or_default().to_owned())
            }
            SdkError::DispatchFailure(failure) if failure.is_timeout() => {
                (FailureKind::Timeout, None, context(&error))
            }
            SdkError::DispatchFailure(failure) if failure.is_user() => {
                (FailureKind::Invalid, None, context(&error))
            }
            SdkError::DispatchFailure(_) => (FailureKind::Unreachable, None, context(&error)),
            SdkError::TimeoutError(_) => (FailureKind::Timeout, None, context(&error)),
            SdkError::ConstructionFailure(_) => (FailureKind::Invalid, None, context(&error)),
            // Response errors, and whatever later SDK versions add.
            _ => (FailureKind::Protocol, None, context(&error)),
        };
        self.failure(operation, kind, status, code, &message)
    }

    fn failure(
        &self,
        operation: &str,
        kind: FailureKind,
        status: Option<u16>,
        code: Option<String>,
        message: &str,
    ) -> DatastoreError {
        RequestFailure {
            index: self.index,
            endpoint: self.config.url.clone(),
            operation: operation.to_owned(),
            kind,
            status,
            code: code.map(|c| self.redactor.scrub(&c)),
            message: self.redactor.scrub(message),
        }
        .into()
    }
}

impl fmt::Debug for Datastore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datastore")
            .field("index", &self.index)
            .field("config", &self.config)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The SDK error and its causes, on one line: `dispatch failure: io error: ...: Connection refused`.
fn context(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

fn error_code(error: &DatastoreError) -> Option<&str> {
    error.request().and_then(|f| f.code.as_deref())
}

/// A read's result with a missing key as `None` (a missing bucket stays an error).
fn found<T>(result: Result<T, DatastoreError>) -> Result<Option<T>, DatastoreError> {
    match result {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() && !is_missing_bucket(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_missing_bucket(error: &DatastoreError) -> bool {
    error_code(error) == Some("NoSuchBucket")
}

/// Removes an endpoint's keys from text that came back from it or from the SDK.
#[derive(Clone)]
struct Redactor {
    keys: Vec<Secret>,
}

impl Redactor {
    fn new(credentials: &DatastoreCredentials) -> Self {
        let keys = [&credentials.secret_key, &credentials.access_key]
            .into_iter()
            .filter(|k| !k.is_empty())
            .cloned()
            .collect();
        Self { keys }
    }

    fn scrub(&self, text: &str) -> String {
        self.keys.iter().fold(text.to_owned(), |text, key| {
            text.replace(key.expose(), "<redacted>")
        })
    }
}

/// A local file's error as a datastore error.
fn local(path: &std::path::Path, e: &std::io::Error) -> DatastoreError {
    DatastoreError::Local {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Bytes `start..start + len` of the file at `path`.
async fn read_range(path: &std::path::Path, start: u64, len: u64) -> Result<Bytes, DatastoreError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await.map_err(|e| local(path, &e))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| local(path, &e))?;
    let mut body = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    file.read_exact(&mut body).await.map_err(|e| local(path, &e))?;
    Ok(Bytes::from(body))
}

/// A listing read page by page (see [`Datastore::listing`]).
pub struct Listing<'a> {
    store: &'a Datastore,
    bucket: &'a str,
    prefix: &'a str,
    start_after: Option<String>,
    token: Option<String>,
    seen_tokens: std::collections::HashSet<String>,
    done: bool,
}

impl Listing<'_> {
    /// The next page, in key order; `None` once the listing is complete. A truncated listing without a
    /// continuation token, or one that repeats a token, is an error: a silently short list would look
    /// complete.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectInfo>>, DatastoreError> {
        if self.done {
            return Ok(None);
        }
        let store = self.store;
        let operation = format!("ListObjectsV2 {}/{}", self.bucket, self.prefix);
        let page = store
            .with_retry(&operation, || async {
                let mut request = store
                    .client
                    .list_objects_v2()
                    .bucket(self.bucket)
                    .max_keys(store.list_page_size);
                if !self.prefix.is_empty() {
                    request = request.prefix(self.prefix);
                }
                match (&self.token, &self.start_after) {
                    (Some(token), _) => request = request.continuation_token(token),
                    (None, Some(after)) => request = request.start_after(after),
                    (None, None) => {}
                }
                let request = request.send();
                store
                    .timed(&operation, 0, async {
                        request.await.map_err(|e| store.sdk_failure(&operation, e))
                    })
                    .await
            })
            .await?;
        let objects: Vec<ObjectInfo> = page
            .contents()
            .iter()
            .filter_map(|object| {
                Some(ObjectInfo {
                    key: object.key()?.to_owned(),
                    size: object.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    last_modified: object.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
                    etag: object.e_tag().map(str::to_owned),
                })
            })
            .collect();
        let truncated = page.is_truncated() == Some(true);
        let next = page.next_continuation_token().filter(|t| !t.is_empty());
        let protocol = |message: &str| store.failure(&operation, FailureKind::Protocol, None, None, message);
        match (truncated, next) {
            (false, _) => self.done = true,
            (true, None) => {
                return Err(protocol("the listing is truncated but has no continuation token"));
            }
            (true, Some(next)) if !self.seen_tokens.insert(next.to_owned()) => {
                return Err(protocol(
                    "the endpoint returned a continuation token it had returned before",
                ));
            }
            (true, Some(next)) => self.token = Some(next.to_owned()),
        }
        Ok(Some(objects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_transfers_get_more_time() {
        let timeouts = Timeouts {
            request: Duration::from_secs(60),
            min_transfer_rate: 256 * 1024,
        };
        assert_eq!(timeouts.for_bytes(0), Duration::from_secs(60));
        assert_eq!(
            timeouts.for_bytes(100 * 1024 * 1024),
            Duration::from_secs(60 + 400)
        );
        let no_allowance = Timeouts {
            min_transfer_rate: 0,
            ..timeouts
        };
        assert_eq!(no_allowance.for_bytes(u64::MAX), Duration::from_secs(60));
    }

    #[test]
    fn redactor_removes_both_keys() {
        let redactor = Redactor::new(&DatastoreCredentials {
            access_key: "AKID123".into(),
            secret_key: "s3cr3t".into(),
        });
        assert_eq!(
            redactor.scrub("key AKID123 with s3cr3t"),
            "key <redacted> with <redacted>"
        );
    }
}
