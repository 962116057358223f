//! The harness's S3 endpoint speaks the real S3 protocol to aws-sdk-s3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::primitives::ByteStream;
use flotilla_integration_tests::TestS3;

#[tokio::test]
async fn objects_round_trip_through_the_s3_protocol() {
    let s3 = TestS3::start().await;
    let client = s3.client();
    let bucket = flotilla_integration_tests::unique("www-codetesters-uk-multi-region");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    client
        .put_object()
        .bucket(&bucket)
        .key("dbaas_ips/203.0.113.7")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .unwrap();
    client
        .put_object()
        .bucket(&bucket)
        .key("config/x.txt")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("dbaas_ips/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["dbaas_ips/203.0.113.7"]);
    let got = client
        .get_object()
        .bucket(&bucket)
        .key("config/x.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"hello");
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let s3 = TestS3::start().await;
    let mut wrong = s3_clone(&s3);
    wrong.secret_key = "not-the-secret".into();
    let err = wrong.client().list_buckets().send().await.unwrap_err();
    let text = format!("{:?}", err.into_service_error());
    assert!(
        text.contains("SignatureDoesNotMatch") || text.contains("AccessDenied"),
        "{text}"
    );
}

fn s3_clone(s3: &TestS3) -> TestS3 {
    TestS3::external(&s3.endpoint, &s3.access_key, &s3.secret_key)
}
