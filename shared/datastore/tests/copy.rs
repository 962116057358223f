//! An object copied from one endpoint to another (two S3 servers: two providers), part by part when it is
//! larger than one part: the bytes arrive intact, a small object is one read and one write, and a missing
//! source is a clear not-found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use flotilla_datastore::{DatastoreOptions, DatastoreSet, FailureKind, MIN_PART_SIZE};
use flotilla_integration_tests::{TestS3, unique};

#[tokio::test]
async fn objects_are_copied_across_endpoints_part_by_part() {
    let (a, b) = (TestS3::start().await, TestS3::start().await);
    let (region, secrets, urls) = common::region_for(&[Some(&a), Some(&b)]);
    let options = DatastoreOptions::default()
        .with_override(0, &urls[0])
        .with_override(1, &urls[1]);
    let stores = DatastoreSet::from_region_with(&region, &secrets, &options).unwrap();
    let (from, to) = (&stores.endpoints()[0], &stores.endpoints()[1]);
    let bucket = unique("www-datastore-test-uk-webroot-sync");
    assert!(stores.ensure_bucket_all(&bucket).await.is_complete());

    // 12 MiB and 3 bytes: three parts of 5 MiB, 5 MiB and 2 MiB + 3 bytes, each byte telling its offset.
    let size = 12 * 1024 * 1024 + 3;
    let big: Vec<u8> = (0..size).map(|i: usize| (i % 251) as u8).collect();
    // The source's user metadata goes with every copy (as S3's own copy keeps it).
    let meta: flotilla_datastore::Metadata =
        [("flotilla-changed".to_owned(), "2026-12-07T09:00:00Z".to_owned())].into();
    from.put_with_metadata(&bucket, "assets/video.mp4", big.clone().into(), &meta)
        .await
        .unwrap();
    let copied = from
        .copy_to(
            &bucket,
            "assets/video.mp4",
            to,
            &bucket,
            "assets/video.mp4",
            size as u64,
            MIN_PART_SIZE,
        )
        .await
        .unwrap();
    assert_eq!(copied.size, size as u64);
    assert_eq!(copied.metadata, meta);
    let (back, kept) = to
        .get_with_metadata(&bucket, "assets/video.mp4")
        .await
        .unwrap()
        .unwrap();
    assert!(back.len() == big.len() && back[..] == big[..], "the copy differs");
    assert_eq!(kept, meta, "a multipart copy keeps the metadata");

    // Smaller than a part: one read, one write, under another name.
    from.put_with_metadata(&bucket, "index.php", "<?php echo 1;".into(), &meta)
        .await
        .unwrap();
    let copied = from
        .copy_to(
            &bucket,
            "index.php",
            to,
            &bucket,
            "index.php.copy",
            13,
            MIN_PART_SIZE,
        )
        .await
        .unwrap();
    assert_eq!(copied.metadata, meta);
    assert_eq!(
        to.get_with_metadata(&bucket, "index.php.copy").await.unwrap(),
        Some((bytes::Bytes::from_static(b"<?php echo 1;"), meta.clone()))
    );
    // Read into a file: the metadata comes back with it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.php");
    let got = Box::pin(to.get_to_file(&bucket, "index.php.copy", &path))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.size, got.metadata), (13, meta));
    assert_eq!(std::fs::read(&path).unwrap(), b"<?php echo 1;");

    // The source gone: not found, nothing written.
    let e = from
        .copy_to(&bucket, "gone", to, &bucket, "gone", 10, MIN_PART_SIZE)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Some(FailureKind::NotFound), "{e}");
    assert_eq!(to.get(&bucket, "gone").await.unwrap(), None);
}

/// The entity tag computed from a local file is the one the S3 server gives the object this crate wrote
/// from it — one part, exactly one part, several parts — so a checksum comparison needs no download.
#[tokio::test]
async fn a_files_etag_is_known_before_it_is_written() {
    let s3 = TestS3::start().await;
    let (region, secrets, urls) = common::region_for(&[Some(&s3)]);
    let options = DatastoreOptions::default().with_override(0, &urls[0]);
    let stores = DatastoreSet::from_region_with(&region, &secrets, &options).unwrap();
    let store = stores.primary();
    let bucket = unique("www-datastore-test-uk-etags");
    assert!(stores.ensure_bucket_all(&bucket).await.is_complete());
    let dir = tempfile::tempdir().unwrap();
    let part = MIN_PART_SIZE;
    let sizes = [0, 13, part - 1, part, part + 1, 2 * part, 2 * part + 7];
    for (i, size) in sizes.into_iter().enumerate() {
        let path = dir.path().join(format!("f{i}"));
        let body: Vec<u8> = (0..size).map(|j| ((j * 7 + i as u64) % 251) as u8).collect();
        std::fs::write(&path, &body).unwrap();
        let key = format!("f{i}");
        let meta: flotilla_datastore::Metadata = [("n".to_owned(), i.to_string())].into();
        Box::pin(store.put_file(&bucket, &key, &path, size, part, &meta))
            .await
            .unwrap();
        let fetched = dir.path().join(format!("g{i}"));
        let got = Box::pin(store.get_to_file(&bucket, &key, &fetched))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.size, got.metadata), (size, meta), "size {size}");
        let listed = store.list(&bucket, &key).await.unwrap();
        let etag = listed[0].etag.as_deref().map(flotilla_datastore::normal_etag);
        let computed = flotilla_datastore::etag_of_file(&path, size, part).unwrap();
        assert_eq!(etag.as_deref(), Some(computed.as_str()), "size {size}");
        assert_eq!(computed.contains('-'), size > part, "size {size}: {computed}");
    }
    // A file that is not the size it was said to be is an error, not a wrong checksum.
    let path = dir.path().join("f1");
    assert!(flotilla_datastore::etag_of_file(&path, 14, part).is_err());
}
