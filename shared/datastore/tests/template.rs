//! A `|`-separated three-endpoint region imported from a toolkit template maps to three endpoints
//! with their providers' region strings; errors in the region's datastore settings are reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use flotilla_datastore::{DatastoreError, DatastoreOptions, DatastoreSet};
use flotilla_spec::DatastoreProvider;

#[test]
fn three_endpoints_from_a_template() {
    let (region, secrets) = common::region(
        "nl-ams-1.linodeobjects.com|ams3.digitaloceanspaces.com|sos-ch-gva-2.exo.io",
        "US|US|US",
        "AK1|AK2|AK3",
        "SK-one|SK-two|SK-three",
    );
    assert_eq!(region.datastores.len(), 3);
    let stores = DatastoreSet::from_region(&region, &secrets).unwrap();
    let seen: Vec<(usize, DatastoreProvider, &str, &str, bool)> = stores
        .endpoints()
        .iter()
        .map(|s| {
            let c = s.config();
            (
                s.index(),
                c.provider,
                c.url.as_str(),
                c.region.as_str(),
                c.path_style,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                0,
                DatastoreProvider::Linode,
                "https://nl-ams-1.linodeobjects.com",
                "nl-ams-1",
                true
            ),
            (
                1,
                DatastoreProvider::DigitalOcean,
                "https://ams3.digitaloceanspaces.com",
                "ams3",
                true
            ),
            (
                2,
                DatastoreProvider::Exoscale,
                "https://sos-ch-gva-2.exo.io",
                "ch-gva-2",
                true
            ),
        ]
    );
    assert_eq!(stores.primary().index(), 0);
    assert_eq!(stores.primary().name(), "https://nl-ams-1.linodeobjects.com");

    // No key in Debug output.
    let debug = format!("{stores:?} {stores:#?}");
    for key in ["AK1", "AK2", "AK3", "SK-one", "SK-two", "SK-three"] {
        assert!(!debug.contains(key), "{key} in {debug}");
    }
}

#[test]
fn vultr_and_aws_endpoints_from_a_template() {
    let (region, secrets) = common::region(
        "ewr1.vultrobjects.com|s3.eu-west-2.amazonaws.com",
        "US|eu-west-2",
        "AK1|AK2",
        "SK1|SK2",
    );
    let stores = DatastoreSet::from_region(&region, &secrets).unwrap();
    let [vultr, aws] = stores.endpoints() else {
        panic!("two endpoints expected")
    };
    assert_eq!(
        (vultr.config().region.as_str(), vultr.config().path_style),
        ("us-east-1", true)
    );
    assert_eq!(
        (aws.config().region.as_str(), aws.config().path_style),
        ("eu-west-2", false)
    );
    assert_eq!(aws.config().location_constraint.as_deref(), Some("eu-west-2"));
}

#[test]
fn configuration_errors() {
    let (mut region, mut secrets) = common::region(
        "nl-ams-1.linodeobjects.com|ams3.digitaloceanspaces.com",
        "US|US",
        "AK1|AK2",
        "SK1|SK2",
    );

    let options = DatastoreOptions::default().with_override(2, "http://127.0.0.1:9");
    let err = DatastoreSet::from_region_with(&region, &secrets, &options).unwrap_err();
    assert!(
        matches!(
            err,
            DatastoreError::UnknownOverride {
                index: 2,
                endpoints: 2
            }
        ),
        "{err}"
    );

    let options = DatastoreOptions::default().with_override(1, "ftp://127.0.0.1:9");
    let err = DatastoreSet::from_region_with(&region, &secrets, &options).unwrap_err();
    assert!(
        matches!(err, DatastoreError::InvalidEndpoint { index: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("datastore endpoint 2: "), "{err}");

    secrets.datastores.truncate(1);
    let err = DatastoreSet::from_region(&region, &secrets).unwrap_err();
    assert_eq!(
        err.to_string(),
        "region nl-ams: datastore endpoint 2 (ams3.digitaloceanspaces.com) has no S3 access/secret key in the secrets"
    );

    region.datastores.clear();
    let err = DatastoreSet::from_region(&region, &secrets).unwrap_err();
    assert!(matches!(err, DatastoreError::NoEndpoints { .. }), "{err}");
}
