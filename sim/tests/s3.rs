//! S3 endpoints per provider region, each with its own credentials and data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use common::{config, start};
use flotilla_cloudsim::{Provider, S3Endpoint};

fn client(url: &str, region: &str, access: &str, secret: &str) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access, secret, None, None, "cloudsim-test"))
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

fn of(e: &S3Endpoint) -> aws_sdk_s3::Client {
    client(&e.url, &e.region, &e.access_key, &e.secret_key)
}

#[tokio::test]
async fn each_region_has_its_own_store_and_credentials() {
    let sim = start(config()).await;
    assert_eq!(sim.s3_endpoints().len(), 8);
    let ams = sim.s3_endpoint(Provider::Linode, "nl-ams-1").unwrap();
    let lon = sim.s3_endpoint(Provider::Linode, "gb-lon-1").unwrap();
    assert!(
        !format!("{ams:?}").contains(&ams.secret_key),
        "secrets stay out of Debug"
    );

    let c = of(ams);
    c.create_bucket().bucket("fl-backups").send().await.unwrap();
    c.put_object()
        .bucket("fl-backups")
        .key("db/2026-01-01.sql.gz")
        .body(ByteStream::from_static(b"dump"))
        .send()
        .await
        .unwrap();
    let got = c
        .get_object()
        .bucket("fl-backups")
        .key("db/2026-01-01.sql.gz")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"dump");
    assert!(ams.data_dir.join("fl-backups").exists());

    // Another region is another store.
    let other = of(lon).list_buckets().send().await.unwrap();
    assert!(other.buckets().is_empty());
    // Another endpoint's credentials are refused.
    let wrong = client(&ams.url, &ams.region, &lon.access_key, &lon.secret_key);
    assert!(wrong.list_buckets().send().await.is_err());
    let wrong = client(&ams.url, &ams.region, &ams.access_key, "not-the-secret");
    assert!(wrong.list_buckets().send().await.is_err());
    sim.shutdown().await;
}
