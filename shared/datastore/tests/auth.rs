//! Wrong credentials give a clear authentication error, at once, with no key in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use flotilla_datastore::{DatastoreOptions, DatastoreSet, FailureKind};
use flotilla_integration_tests::{TestS3, unique};
use flotilla_spec::DatastoreCredentials;

#[tokio::test]
async fn wrong_credentials_are_an_auth_error_without_the_secret() {
    let s3 = TestS3::start().await;
    let (region, good, urls) = common::region_for(&[Some(&s3)]);
    let options = DatastoreOptions::default().with_override(0, &urls[0]);
    let bucket = unique("www-datastore-test-uk-config");
    let stores = DatastoreSet::from_region_with(&region, &good, &options).unwrap();
    assert!(stores.ensure_bucket_all(&bucket).await.is_complete());

    let wrong_secret = "Wr0ngSecretKeyThatMustNotLeak/xyz";
    let unknown_access = "AKUNKNOWNACCESSKEY";
    for credentials in [
        DatastoreCredentials {
            access_key: s3.access_key.clone().into(),
            secret_key: wrong_secret.into(),
        },
        DatastoreCredentials {
            access_key: unknown_access.into(),
            secret_key: wrong_secret.into(),
        },
    ] {
        let mut secrets = good.clone();
        secrets.datastores = vec![credentials];
        let stores = DatastoreSet::from_region_with(&region, &secrets, &options).unwrap();

        let report = stores.put_all(&bucket, "k", Bytes::from_static(b"v")).await;
        let error = report.error_for(0).unwrap();
        assert!(error.is_auth(), "{error}");
        assert_eq!(error.kind(), Some(FailureKind::Auth));
        let text = error.to_string();
        assert!(text.contains("authentication failed"), "{text}");
        assert!(text.contains("HTTP 403"), "{text}");
        let debug = format!("{error:?} {stores:?}");
        for leak in [text.as_str(), debug.as_str()] {
            assert!(!leak.contains(wrong_secret), "secret in {leak}");
            assert!(!leak.contains(&s3.secret_key), "secret in {leak}");
        }
        // Not retried: counted exactly in fanout.rs (`other_failures_are_not_retried`); no wall-clock
        // bound here, which a loaded machine could break.

        let err = stores.get(&bucket, "k").await.unwrap_err();
        assert!(err.is_auth(), "{err}");
        let err = stores.list(&bucket, "").await.unwrap_err();
        assert!(err.is_auth(), "{err}");
    }
}
