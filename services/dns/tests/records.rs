//! The record loop against the simulator's Cloudflare, beside the real provisioner and autoscaler: the
//! site's A records hold the healthy reverse proxies, a proxy that stops answering leaves and comes back,
//! and records that are not ours — at the same name and at another — are never touched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_autoscaler::settings::{Probe, Probes};
use flotilla_cloud::{DnsRecord, NewDnsRecord};
use flotilla_cloudsim::{Fault, FaultKind, Provider, defaults};
use flotilla_integration_tests::{TestNats, eventually, next_generation, service_config, sim, templates};
use flotilla_proto::{ApplyRegion, CommandMeta};

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_site_holds_the_healthy_reverse_proxies_and_foreign_records_survive() {
    flotilla_integration_tests::init_logging();
    let nats = TestNats::private().await;
    let sim = sim::simulator(Duration::from_millis(50), Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = templates::import(&[
        ("TOKEN", defaults::LINODE_TOKEN),
        ("INPARALLEL", "1"),
        ("WEBSITE_URL", "www.example.com"),
        ("NO_REVERSE_PROXY", "2"),
    ])
    .deployment;
    let region = d.regions[0].clone();

    // Records that are not ours, before anything runs.
    let clouds = flotilla_clouds::Clouds::new(sim.cloud_settings(), None);
    let dns = clouds.dns(&d.name, d.dns.provider, &region).unwrap();
    let zone = dns
        .find_zone("example.com")
        .await
        .unwrap()
        .expect("the simulator's zone");
    for (name, ip) in [
        ("www.example.com", "192.0.2.9"),
        ("mail.example.com", "192.0.2.25"),
    ] {
        dns.create_record(
            &zone,
            &NewDnsRecord {
                kind: "A".into(),
                name: name.into(),
                content: ip.into(),
                ttl: 300,
                proxied: Some(false),
                comment: None,
            },
        )
        .await
        .unwrap();
    }

    let mut p = service_config::<flotilla_provisioner::Settings>(&nats, None, &dir.path().join("p"));
    p.clouds = sim.cloud_settings();
    p.service = sim::provisioner_settings(&sim);
    let provisioner =
        flotilla_runtime::host::start(flotilla_provisioner::DEF, p, flotilla_provisioner::routes)
            .await
            .unwrap();
    let mut a = service_config::<flotilla_autoscaler::Settings>(&nats, None, &dir.path().join("a"));
    a.service.probe = Probes::all(Probe {
        port: sim.health_port(),
        path: "/health".into(),
        interval: Duration::from_millis(250),
        timeout: Duration::from_millis(200),
        healthy_threshold: 1,
        replace_after: 0,
        ..Probe::default()
    });
    let autoscaler = flotilla_runtime::host::start(flotilla_autoscaler::DEF, a, flotilla_autoscaler::routes)
        .await
        .unwrap();
    let mut n = service_config::<flotilla_dns::Settings>(&nats, None, &dir.path().join("d"));
    n.clouds = sim.cloud_settings();
    n.service.debounce = Duration::from_millis(50);
    let dns_service = flotilla_runtime::host::start(flotilla_dns::DEF, n, flotilla_dns::routes)
        .await
        .unwrap();

    let client = nats.client().await;
    flotilla_bus::Publisher::new(client.clone(), flotilla_bus::PublishConfig::default())
        .publish_command(&ApplyRegion {
            meta: CommandMeta::new("test"),
            deployment: d.clone(),
            region: region.name.clone(),
            generation: next_generation(),
        })
        .await
        .unwrap();

    let mark = flotilla_dns::plan::owner_mark(&d.name);
    let ours = |records: &[DnsRecord]| -> BTreeSet<String> {
        records
            .iter()
            .filter(|r| r.name == "www.example.com" && r.comment.as_deref() == Some(mark.as_str()))
            .map(|r| r.content.clone())
            .collect()
    };
    let proxies = || {
        sim.machines()
            .into_iter()
            .filter(|m| m.tags.iter().any(|t| t == "fl-role:reverse-proxy"))
            .collect::<Vec<_>>()
    };
    let both = eventually("both proxies in the record set", PATIENCE, || async {
        let records = dns.list_records(&zone, None, Some("A")).await.ok()?;
        let want: BTreeSet<String> = proxies().iter().map(|m| m.public_ip.to_string()).collect();
        (want.len() == 2 && ours(&records) == want).then_some(want)
    })
    .await;

    // The API: nothing left to do, the foreign record at the site reported as a conflict.
    let show = |client: async_nats::Client, name: String| async move {
        flotilla_bus::api::request::<flotilla_proto::ShowRecords, flotilla_proto::RecordsView>(
            &client,
            &flotilla_bus::subject::api("dns", "records").unwrap(),
            &flotilla_proto::ShowRecords { deployment: name },
            Duration::from_secs(5),
        )
        .await
        .unwrap()
    };
    let view = show(client.clone(), d.name.clone()).await;
    let site = view.names.iter().find(|n| n.name == "www.example.com").unwrap();
    assert!(site.creates.is_empty() && site.deletes.is_empty(), "{view:?}");
    assert!(
        site.conflicts.iter().any(|c| c.starts_with("192.0.2.9")),
        "{view:?}"
    );

    // One proxy stops answering: it leaves; it answers again: it comes back.
    let victim = proxies().into_iter().next().unwrap();
    sim.add_fault(&Fault {
        provider: Provider::Linode,
        kind: FaultKind::Unhealthy {
            machine_id: victim.id.clone(),
        },
    });
    let ip = victim.public_ip.to_string();
    eventually("the dead proxy out", PATIENCE, || async {
        let records = dns.list_records(&zone, None, Some("A")).await.ok()?;
        let now = ours(&records);
        (now.len() == 1 && !now.contains(&ip)).then_some(())
    })
    .await;
    // Asked why it is not in the record, the API says.
    let view = show(client.clone(), d.name.clone()).await;
    let why = view
        .excluded
        .iter()
        .find(|e| e.public_ipv4.as_deref() == Some(ip.as_str()))
        .unwrap_or_else(|| panic!("{view:?}"));
    assert!(why.why.starts_with("unhealthy since"), "{why:?}");
    sim.clear_faults(None);
    eventually("the proxy back", PATIENCE, || async {
        let records = dns.list_records(&zone, None, Some("A")).await.ok()?;
        (ours(&records) == both).then_some(())
    })
    .await;

    // The records that are not ours are as they were.
    let records = dns.list_records(&zone, None, Some("A")).await.unwrap();
    for (name, ip) in [
        ("www.example.com", "192.0.2.9"),
        ("mail.example.com", "192.0.2.25"),
    ] {
        assert!(
            records
                .iter()
                .any(|r| r.name == name && r.content == ip && r.comment.is_none()),
            "{name} {ip} survives: {records:?}"
        );
    }
    // And ours are proxied with automatic TTL, as the original toolkit wrote them.
    assert!(
        records
            .iter()
            .filter(|r| r.comment.as_deref() == Some(mark.as_str()))
            .all(|r| r.proxied == Some(true) && r.ttl == 1),
        "{records:?}"
    );

    dns_service.shutdown().await.unwrap();
    autoscaler.shutdown().await.unwrap();
    provisioner.shutdown().await.unwrap();
    sim.shutdown().await;
}
