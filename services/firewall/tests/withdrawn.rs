//! A pass whose view still holds a region that was withdrawn meanwhile (the fleet's events can arrive
//! before the desired state's) makes no firewall there: the region's destroy deletes its firewalls, and one
//! made afterwards would outlive the region (found by the chaos runs, seed 36 with 429 storms). The
//! service is driven directly with the stale view; the desired state, the store and the providers are real.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// The service's reconcile is a deep future.
#![recursion_limit = "256"]

mod common;

use std::time::Duration;

use common::{Harness, four_providers};
use flotilla_bus::{PublishConfig, Publisher};
use flotilla_clouds::Clouds;
use flotilla_firewall::service::{FirewallService, Parts};
use flotilla_firewall::store::FirewallStore;
use flotilla_runtime::deployments::{Reconciler as _, Views};
use flotilla_spec::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_view_of_a_withdrawn_region_makes_no_firewall_there() {
    let h = Harness::without_service().await;
    let d = four_providers("wd");
    h.database(&d).await;
    // The desired state without one secondary region (withdrawn), the view still with it.
    let gone = d
        .regions
        .iter()
        .find(|r| !r.primary && r.firewall.native())
        .expect("a secondary region with provider firewalls")
        .clone();
    let mut kept = d.clone();
    kept.regions.retain(|r| r.name != gone.name);
    h.deploy(&kept).await;

    let store = flotilla_store::Store::open(&format!(
        "sqlite://{}?mode=rwc",
        h.dir.path().join("firewall.db").display()
    ))
    .await
    .unwrap();
    let (sqlite, postgres) = flotilla_firewall::store::migrations();
    store.migrate_with(sqlite, postgres).await.unwrap();
    let settings = flotilla_firewall::Settings {
        control_plane: vec!["198.51.100.7/32".parse().unwrap()],
        ..flotilla_firewall::Settings::default()
    };
    let service = FirewallService::new(
        settings,
        Clouds::new(h.sim.cloud_settings(), None),
        Parts {
            desired: h.topology.desired_states(),
            fleet: h.topology.fleet_view(),
            health: h.topology.health_view(),
            store: FirewallStore::new(store),
            publisher: Publisher::new(h.client.clone(), PublishConfig::default()),
        },
    );
    let views = Views {
        deployments: [(d.name.clone(), d.clone())].into_iter().collect(),
        ..Views::default()
    };
    let mut outcome = Err(String::new());
    for _ in 0..5 {
        outcome = service.reconcile(&views, &d.name).await;
        if outcome.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    outcome.unwrap();

    for r in &d.regions {
        if !r.firewall.native() || r.machines.get(Role::Webserver).count == 0 {
            continue;
        }
        let made = h.firewall(&d, &r.name, Role::Webserver).await;
        if r.name == gone.name {
            assert!(
                made.is_none(),
                "no firewall in the withdrawn region {}: {made:?}",
                r.name
            );
        } else {
            assert!(made.is_some(), "the firewall of {} is made", r.name);
        }
    }
}
