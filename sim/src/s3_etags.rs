//! The S3 service of an endpoint (the simulator's, and the tests' in-process S3 server): s3s-fs, with one thing real providers do that it does not — listings
//! (`ListObjects`, `ListObjectsV2`) carry each object's entity tag, as AWS, Ceph (Linode, DigitalOcean)
//! and Exoscale SOS all do. A client comparing by checksum relies on it. Every other operation is
//! s3s-fs's own.

use std::path::PathBuf;

use base64::Engine;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CreateBucketInput, CreateBucketOutput,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteBucketInput, DeleteBucketOutput,
    DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, ETag,
    GetBucketLocationInput, GetBucketLocationOutput, GetObjectInput, GetObjectOutput, HeadBucketInput,
    HeadBucketOutput, HeadObjectInput, HeadObjectOutput, ListBucketsInput, ListBucketsOutput,
    ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, ListPartsInput,
    ListPartsOutput, Object, PutObjectInput, PutObjectOutput, UploadPartCopyInput, UploadPartCopyOutput,
    UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result};

/// s3s-fs with entity tags in listings.
pub struct Tagged {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
}

impl Tagged {
    /// The file system at `root` (the endpoint's data directory).
    pub fn new(fs: s3s_fs::FileSystem, root: PathBuf) -> Self {
        Self { fs, root }
    }

    /// The entity tag s3s-fs recorded for `key` of `bucket` (in its per-object `internal.json`, version
    /// 0.14.1's layout).
    async fn etag(&self, bucket: &str, key: &str) -> Option<ETag> {
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let path = self.root.join(format!(
            ".bucket-{}.object-{}.internal.json",
            encode(bucket),
            encode(key)
        ));
        let text = tokio::fs::read(path).await.ok()?;
        let info: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&text).ok()?;
        info.get("e_tag")
            .and_then(|v| v.as_str())
            .map(|e| ETag::Strong(e.to_owned()))
    }

    async fn tag(&self, bucket: &str, contents: &mut Option<Vec<Object>>) {
        for object in contents.iter_mut().flatten() {
            if object.e_tag.is_none()
                && let Some(key) = &object.key
            {
                object.e_tag = self.etag(bucket, key).await;
            }
        }
    }
}

/// `result`, its cause logged when it is an internal error: s3s-fs answers an I/O failure of its own
/// (a full disk, too many open files) with a bare `InternalError` and logs nothing, which leaves a
/// failing test with no clue.
fn explained<T>(operation: &str, result: S3Result<T>) -> S3Result<T> {
    if let Err(e) = &result
        && *e.code() == s3s::S3ErrorCode::InternalError
    {
        let cause = e.source().map(ToString::to_string);
        tracing::warn!(
            operation,
            cause = cause.as_deref().unwrap_or("none given"),
            "S3 endpoint: internal error"
        );
    }
    result
}

// Every other operation: s3s-fs unchanged (internal errors explained).
#[async_trait::async_trait]
impl S3 for Tagged {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        explained("copy_object", self.fs.copy_object(req).await)
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        explained("delete_object", self.fs.delete_object(req).await)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        explained("delete_objects", self.fs.delete_objects(req).await)
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        explained("get_object", self.fs.get_object(req).await)
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        explained("head_object", self.fs.head_object(req).await)
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        explained("put_object", self.fs.put_object(req).await)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        explained(
            "create_multipart_upload",
            self.fs.create_multipart_upload(req).await,
        )
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        explained("upload_part", self.fs.upload_part(req).await)
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        explained("upload_part_copy", self.fs.upload_part_copy(req).await)
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        explained(
            "complete_multipart_upload",
            self.fs.complete_multipart_upload(req).await,
        )
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let mut resp = self.fs.list_objects(req).await?;
        self.tag(&bucket, &mut resp.output.contents).await;
        Ok(resp)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let dir = self.root.join(&bucket);
        // A flat listing reads only its page, as S3's does (s3s-fs reads the whole bucket for each
        // page); with a delimiter, or for a bucket that is not there, s3s-fs answers.
        let plain = !bucket.is_empty() && !bucket.contains(['/', '\\']) && bucket != "." && bucket != "..";
        if req.input.delimiter.is_none() && plain && dir.is_dir() {
            let input = req.input;
            let after = match (input.continuation_token.clone(), input.start_after.clone()) {
                (Some(c), Some(s)) => Some(c.max(s)),
                (c, s) => c.or(s),
            };
            let prefix = input.prefix.clone().unwrap_or_default();
            let max = usize::try_from(input.max_keys.unwrap_or(1000).clamp(0, 1000)).unwrap_or(1000);
            let walked = {
                let (after, prefix) = (after.clone(), prefix.clone());
                tokio::task::spawn_blocking(move || page(&dir, after.as_deref(), &prefix, max + 1)).await
            };
            let Ok(Ok(mut found)) = walked else {
                return Err(s3s::s3_error!(InternalError, "the bucket could not be read"));
            };
            let truncated = found.len() > max;
            found.truncate(max);
            let next = truncated
                .then(|| found.last().map(|(k, _, _)| k.clone()))
                .flatten();
            let mut contents = Vec::with_capacity(found.len());
            for (key, size, modified) in found {
                let e_tag = self.etag(&bucket, &key).await;
                contents.push(Object {
                    key: Some(key),
                    size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
                    last_modified: Some(s3s::dto::Timestamp::from(modified)),
                    e_tag,
                    ..Default::default()
                });
            }
            let output = ListObjectsV2Output {
                key_count: Some(i32::try_from(contents.len()).unwrap_or(i32::MAX)),
                max_keys: input.max_keys,
                is_truncated: Some(truncated),
                contents: (!contents.is_empty()).then_some(contents),
                continuation_token: input.continuation_token,
                next_continuation_token: next,
                encoding_type: input.encoding_type,
                name: Some(input.bucket),
                prefix: input.prefix,
                start_after: input.start_after,
                ..Default::default()
            };
            return Ok(S3Response::new(output));
        }
        let mut resp = self.fs.list_objects_v2(req).await?;
        self.tag(&bucket, &mut resp.output.contents).await;
        Ok(resp)
    }
}

/// Up to `limit` objects of the bucket at `dir` whose keys come after `after` and start with `prefix`, in
/// key order (each directory's names sorted, a directory's with `/` after it, so a depth-first walk is in
/// byte order), skipping every directory whose keys all come before `after` or miss `prefix`.
fn page(
    dir: &std::path::Path,
    after: Option<&str>,
    prefix: &str,
    limit: usize,
) -> std::io::Result<Vec<(String, u64, std::time::SystemTime)>> {
    let read = |path: &std::path::Path, key_prefix: &str| -> std::io::Result<Vec<(String, bool)>> {
        let mut names = Vec::new();
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            // Removed while listed (its last object deleted): nothing in it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !key_prefix.is_empty() => return Ok(names),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if kind.is_dir() {
                names.push((format!("{key_prefix}{name}/"), true));
            } else if kind.is_file() {
                names.push((format!("{key_prefix}{name}"), false));
            }
        }
        names.sort_unstable();
        Ok(names)
    };
    // A subtree (all keys starting with `p`) that can hold a key of the page.
    let wanted = |p: &str| {
        let past = after.is_none_or(|a| p > a || a.starts_with(p));
        past && (p.starts_with(prefix) || prefix.starts_with(p))
    };
    let mut out = Vec::new();
    let mut stack = vec![read(dir, "")?.into_iter()];
    while let Some(top) = stack.last_mut() {
        let Some((key, is_dir)) = top.next() else {
            stack.pop();
            continue;
        };
        if is_dir {
            if wanted(&key) {
                stack.push(read(&dir.join(&key), &key)?.into_iter());
            }
            continue;
        }
        if after.is_some_and(|a| key.as_str() <= a) || !key.starts_with(prefix) {
            continue;
        }
        let meta = match std::fs::metadata(dir.join(&key)) {
            Ok(m) => m,
            // Deleted while listed: not listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.push((key, meta.len(), meta.modified()?));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn a_page_is_in_key_order_after_its_start_and_under_its_prefix() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let keys = ["a-b", "a/x", "a/y/z", "a.txt", "b", "a/y-1", "a/y.d/q", "c/d/e"];
        for k in keys {
            let path = dir.path().join(k);
            std::fs::create_dir_all(path.parent().unwrap_or(dir.path())).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&path, k).unwrap_or_else(|e| panic!("{e}"));
        }
        let names = |after: Option<&str>, prefix: &str, limit: usize| -> Vec<String> {
            page(dir.path(), after, prefix, limit)
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|(k, _, _)| k)
                .collect()
        };
        let mut sorted: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        sorted.sort();
        assert_eq!(names(None, "", 100), sorted);
        // Page by page, each after the last key of the one before: the same keys.
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let p = names(after.as_deref(), "", 3);
            let Some(last) = p.last().cloned() else { break };
            paged.extend(p);
            after = Some(last);
        }
        assert_eq!(paged, sorted);
        assert_eq!(names(None, "a/y", 100), ["a/y-1", "a/y.d/q", "a/y/z"]);
        assert_eq!(names(Some("a/y-1"), "a/", 2), ["a/y.d/q", "a/y/z"]);
    }
}
