//! Writes fan out to every endpoint, a dead endpoint is reported after its retries while the others
//! succeed, and retries happen only for retryable failures. Real S3 protocol: every live endpoint is
//! its own in-process S3 server from the test harness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use bytes::Bytes;
use flotilla_datastore::{DatastoreOptions, DatastoreSet, FailureKind, RetryPolicy};
use flotilla_integration_tests::{TestS3, unique};

fn options(urls: &[String], retry: RetryPolicy) -> DatastoreOptions {
    urls.iter()
        .enumerate()
        .fold(DatastoreOptions::default().with_retry(retry), |o, (i, url)| {
            o.with_override(i, url.clone())
        })
}

fn quick() -> RetryPolicy {
    RetryPolicy::new(3, Duration::from_millis(20), Duration::from_millis(100))
}

async fn object(s3: &TestS3, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let output = s3
        .client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(output.body.collect().await.unwrap().into_bytes().to_vec())
}

async fn create_bucket(s3: &TestS3, bucket: &str) {
    s3.client().create_bucket().bucket(bucket).send().await.unwrap();
}

#[tokio::test]
async fn put_all_writes_to_every_endpoint() {
    let (a, b, c) = (
        TestS3::start().await,
        TestS3::start().await,
        TestS3::start().await,
    );
    let (region, secrets, urls) = common::region_for(&[Some(&a), Some(&b), Some(&c)]);
    let stores = DatastoreSet::from_region_with(&region, &secrets, &options(&urls, quick())).unwrap();
    assert_eq!(stores.endpoints().len(), 3);
    let bucket = unique("www-datastore-test-uk-config");

    let report = stores.ensure_bucket_all(&bucket).await;
    assert_eq!(report.succeeded, vec![0, 1, 2], "{:?}", report.failed);
    // Ensuring again finds the buckets: already ours is success.
    let again = stores.ensure_bucket_all(&bucket).await;
    assert!(again.is_complete(), "{:?}", again.failed);

    let report = stores
        .put_all(&bucket, "dir/settings.json", Bytes::from_static(b"{\"v\":1}"))
        .await;
    assert_eq!(report.succeeded, vec![0, 1, 2]);
    assert!(report.is_complete() && report.failed.is_empty());
    for s3 in [&a, &b, &c] {
        assert_eq!(
            object(s3, &bucket, "dir/settings.json").await.as_deref(),
            Some(&b"{\"v\":1}"[..])
        );
    }

    // Overwrites are unconditional.
    let report = stores
        .put_all(&bucket, "dir/settings.json", Bytes::from_static(b"{\"v\":2}"))
        .await;
    assert!(report.is_complete());
    for s3 in [&a, &b, &c] {
        assert_eq!(
            object(s3, &bucket, "dir/settings.json").await.as_deref(),
            Some(&b"{\"v\":2}"[..])
        );
    }

    let report = stores.delete_all(&bucket, "dir/settings.json").await;
    assert_eq!(report.succeeded, vec![0, 1, 2]);
    for s3 in [&a, &b, &c] {
        assert_eq!(object(s3, &bucket, "dir/settings.json").await, None);
    }
    // Deleting what is already gone (object or bucket) is success.
    assert!(
        stores
            .delete_all(&bucket, "dir/settings.json")
            .await
            .is_complete()
    );
    assert!(
        stores
            .delete_all(&unique("no-such-bucket"), "k")
            .await
            .is_complete()
    );
}

#[tokio::test]
async fn a_dead_endpoint_is_reported_while_the_others_succeed() {
    let (a, c) = (TestS3::start().await, TestS3::start().await);
    let (region, secrets, urls) = common::region_for(&[Some(&a), None, Some(&c)]);
    let bucket = unique("www-datastore-test-uk-multi-region");
    create_bucket(&a, &bucket).await;
    create_bucket(&c, &bucket).await;

    // The default policy: 5 tries, delays 250 ms, 500 ms, 1 s, 2 s (each plus up to itself in jitter).
    let stores =
        DatastoreSet::from_region_with(&region, &secrets, &options(&urls, RetryPolicy::default())).unwrap();
    let started = Instant::now();
    let report = stores.put_all(&bucket, "dbaas_ips/10.0.0.5", Bytes::new()).await;
    let elapsed = started.elapsed();

    assert_eq!(report.succeeded, vec![0, 2]);
    assert_eq!(report.failed.len(), 1);
    let (index, error) = &report.failed[0];
    assert_eq!(*index, 1);
    assert_eq!(error.kind(), Some(FailureKind::Unreachable), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("datastore endpoint 2 (http://127.0.0.1:"),
        "{error}"
    );
    assert!(!report.is_complete() && report.reached(0) && !report.reached(1));
    assert!(report.error_for(1).is_some() && report.error_for(0).is_none());
    assert!(report.clone().into_result().is_err());
    // It waited out its retries, and no longer than the policy allows.
    assert!(
        elapsed >= Duration::from_millis(3750),
        "gave up after {elapsed:?}"
    );
    for s3 in [&a, &c] {
        assert_eq!(
            object(s3, &bucket, "dbaas_ips/10.0.0.5").await.as_deref(),
            Some(&b""[..])
        );
    }

    // The other writes report the same way.
    let stores = DatastoreSet::from_region_with(&region, &secrets, &options(&urls, quick())).unwrap();
    let report = stores.ensure_bucket_all(&bucket).await;
    assert_eq!((report.succeeded.clone(), report.failed.len()), (vec![0, 2], 1));
    let report = stores.delete_all(&bucket, "dbaas_ips/10.0.0.5").await;
    assert_eq!(report.succeeded, vec![0, 2]);
    assert_eq!(report.failed[0].0, 1);
}

#[tokio::test]
async fn retryable_failures_are_retried_up_to_the_policy() {
    let a = TestS3::start().await;
    let (hang_up, connections) = common::hang_up_server().await;
    let (unavailable, unavailable_requests) = common::scripted_server(503, "SlowDown").await;
    let (bad_gateway, bad_gateway_requests) = common::scripted_server(502, "").await;
    let retry = RetryPolicy::new(4, Duration::from_millis(10), Duration::from_millis(50));
    for (url, count, kind) in [
        (&hang_up, &connections, FailureKind::Unreachable),
        (&unavailable, &unavailable_requests, FailureKind::Throttled),
        (&bad_gateway, &bad_gateway_requests, FailureKind::ServerError),
    ] {
        let (region, secrets, mut urls) = common::region_for(&[Some(&a), Some(&a)]);
        urls[1] = url.clone();
        let stores = DatastoreSet::from_region_with(&region, &secrets, &options(&urls, retry)).unwrap();
        let report = stores.put_all("bucket", "key", Bytes::from_static(b"x")).await;
        let error = report.error_for(1).unwrap();
        assert_eq!(error.kind(), Some(kind), "{error}");
        assert!(error.is_retryable());
        assert_eq!(count.load(Ordering::SeqCst), 4, "{url}: {error}");
    }

    // An endpoint that never answers: each try is abandoned after the request timeout.
    let (silent, connections) = common::silent_server().await;
    let (region, secrets, mut urls) = common::region_for(&[Some(&a), Some(&a)]);
    urls[1] = silent;
    let options = DatastoreOptions {
        request_timeout: Duration::from_millis(300),
        ..options(&urls, retry)
    };
    let stores = DatastoreSet::from_region_with(&region, &secrets, &options).unwrap();
    let started = Instant::now();
    let report = stores.put_all("bucket", "key", Bytes::from_static(b"x")).await;
    let error = report.error_for(1).unwrap();
    assert_eq!(error.kind(), Some(FailureKind::Timeout), "{error}");
    assert_eq!(connections.load(Ordering::SeqCst), 4);
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn other_failures_are_not_retried() {
    let a = TestS3::start().await;
    let retry = RetryPolicy::new(4, Duration::from_millis(10), Duration::from_millis(50));
    for (status, code, kind) in [
        (403, "AccessDenied", FailureKind::Auth),
        (400, "InvalidArgument", FailureKind::Rejected),
        (409, "BucketNotEmpty", FailureKind::Conflict),
    ] {
        let (url, count) = common::scripted_server(status, code).await;
        let (region, secrets, mut urls) = common::region_for(&[Some(&a), Some(&a)]);
        urls[1] = url;
        let stores = DatastoreSet::from_region_with(&region, &secrets, &options(&urls, retry)).unwrap();
        let report = stores.put_all("bucket", "key", Bytes::from_static(b"x")).await;
        let error = report.error_for(1).unwrap();
        assert_eq!(error.kind(), Some(kind), "{error}");
        let failure = error.request().unwrap();
        assert_eq!(
            (failure.status, failure.code.as_deref()),
            (Some(status), Some(code))
        );
        assert_eq!(failure.message, format!("scripted {code}"));
        assert_eq!(count.load(Ordering::SeqCst), 1, "{code} was retried");
    }
}
