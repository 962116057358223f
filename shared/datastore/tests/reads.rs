//! Reads (get, list) use endpoint 1 only, and lists follow every page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use flotilla_datastore::{DatastoreOptions, DatastoreSet, FailureKind};
use flotilla_integration_tests::{TestS3, unique};

async fn put(s3: &TestS3, bucket: &str, key: &str, body: &'static [u8]) {
    s3.client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(Bytes::from_static(body).into())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn get_and_list_read_endpoint_1() {
    let (a, b) = (TestS3::start().await, TestS3::start().await);
    // With an external S3 (S3_ENDPOINT) both "providers" are the same server.
    let separate = a.endpoint != b.endpoint;
    let (region, secrets, urls) = common::region_for(&[Some(&a), Some(&b)]);
    let options = DatastoreOptions {
        list_page_size: 10,
        ..DatastoreOptions::default()
    }
    .with_override(0, &urls[0])
    .with_override(1, &urls[1]);
    let stores = DatastoreSet::from_region_with(&region, &secrets, &options).unwrap();
    let bucket = unique("www-datastore-test-uk-scaling");
    assert!(stores.ensure_bucket_all(&bucket).await.is_complete());

    put(&a, &bucket, "only-on-1", b"one").await;
    put(&b, &bucket, "only-on-2", b"two").await;
    for i in 0..25 {
        put(&a, &bucket, &format!("webservers/{i:02}"), b"ip").await;
    }

    assert_eq!(
        stores.get(&bucket, "only-on-1").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    if separate {
        assert_eq!(stores.get(&bucket, "only-on-2").await.unwrap(), None);
    }
    assert_eq!(stores.get(&bucket, "never-written").await.unwrap(), None);
    // The second endpoint has it, read directly.
    assert_eq!(
        stores.endpoints()[1]
            .get(&bucket, "only-on-2")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"two"[..])
    );

    // 25 keys at 10 per page: three pages.
    let listed = stores.list(&bucket, "webservers/").await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let expected: Vec<String> = (0..25).map(|i| format!("webservers/{i:02}")).collect();
    assert_eq!(keys, expected);
    assert!(listed.iter().all(|o| o.size == 2 && o.last_modified.is_some()));

    let all = stores.list(&bucket, "").await.unwrap();
    assert!(all.iter().any(|o| o.key == "only-on-1"));
    if separate {
        assert!(!all.iter().any(|o| o.key == "only-on-2"));
        assert_eq!(all.len(), 26);
    }
    assert!(stores.list(&bucket, "nothing-here/").await.unwrap().is_empty());

    // A missing bucket is an error, not an empty listing. (For GetObject, S3 answers NoSuchBucket,
    // which is an error too, but s3s-fs answers NoSuchKey, so that is not checked here.)
    let missing = unique("no-such-bucket");
    let err = stores.list(&missing, "").await.unwrap_err();
    assert_eq!(err.kind(), Some(FailureKind::NotFound), "{err}");
    assert!(err.is_not_found());
}
