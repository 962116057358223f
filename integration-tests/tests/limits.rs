//! One rate budget per provider account per process: adapters rebuilt from the secrets file for every
//! command (as the services do) all draw from the account's one limiter, instead of each getting the
//! account's whole budget. This binary holds only this test, so nothing else adds limiters to the
//! process-wide registry while it counts them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_cloud::http::Limiters;
use flotilla_clouds::{CloudSettings, Clouds, Endpoints};
use flotilla_integration_tests::templates;

#[test]
fn adapters_rebuilt_for_one_account_share_its_limiter() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = |name: &str, token: &str| {
        let url = format!("www.{name}.uk");
        let import = templates::import(&[("TOKEN", token), ("WEBSITE_URL", &url)]);
        let (_, path) = import.write_to_dir(dir.path().join(name)).unwrap();
        (import.deployment, path)
    };
    let (deployment, file) = secrets("one", "token-of-account-one");
    let endpoints = Endpoints {
        linode: Some("http://127.0.0.1:9/v4".into()),
        ..Endpoints::default()
    };
    let clouds = Clouds::new(
        CloudSettings {
            endpoints: endpoints.clone(),
            simulator: None,
        },
        Some(file),
    );
    let region = &deployment.regions[0];
    let before = Limiters::global().len();
    let first = clouds.region(&deployment.name, region).unwrap();
    let per_account = Limiters::global().len() - before;
    assert!(per_account > 0, "an adapter draws from the registry's limiters");
    // Rebuilt for each of nine more commands (the secrets file read afresh each time): no new limiter.
    let rebuilt: Vec<_> = (0..9)
        .map(|_| clouds.region(&deployment.name, region).unwrap())
        .collect();
    assert_eq!(
        Limiters::global().len() - before,
        per_account,
        "rebuilt adapters of one account share its limiters"
    );
    drop((first, rebuilt));

    // Another account (another token) has a budget of its own.
    let (other, file) = secrets("two", "token-of-account-two");
    let clouds = Clouds::new(
        CloudSettings {
            endpoints,
            simulator: None,
        },
        Some(file),
    );
    clouds.region(&other.name, &other.regions[0]).unwrap();
    assert_eq!(Limiters::global().len() - before, 2 * per_account);
}
