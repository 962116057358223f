//! The Cloudflare API as a client sees it: the envelope, zones by name, records with filters and
//! pagination, the batch endpoint, both kinds of credentials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{call, config, http, json, start};
use flotilla_cloudsim::defaults::{CLOUDFLARE_EMAIL, CLOUDFLARE_KEY, CLOUDFLARE_TOKEN};
use reqwest::Method;
use serde_json::{Value, json};

async fn cf(method: Method, url: &str, body: Option<Value>) -> (u16, Value) {
    call(method, url, CLOUDFLARE_TOKEN, body.as_ref()).await
}

#[tokio::test]
async fn zones_and_records_in_cloudflares_envelope() {
    let mut cfg = config();
    cfg.cloudflare_zones = vec!["codetesters.uk".into(), "example.com".into()];
    let sim = start(cfg).await;
    let base = sim.cloudflare_url().to_owned();

    let (status, zones) = cf(Method::GET, &format!("{base}/zones?name=codetesters.uk"), None).await;
    assert_eq!(status, 200);
    assert_eq!(zones["success"], true);
    assert_eq!(zones["result_info"]["total_count"], 1);
    let zone = zones["result"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(zone.len(), 32);
    let records = format!("{base}/zones/{zone}/dns_records");

    for i in 0..12 {
        let (status, r) = cf(
            Method::POST,
            &records,
            Some(
                json!({"type": "A", "name": "www", "content": format!("203.0.113.{i}"), "ttl": 60,
                "proxied": false, "comment": "flotilla:www"}),
            ),
        )
        .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            r["result"]["name"], "www.codetesters.uk",
            "names are completed to FQDNs"
        );
        assert_eq!(r["result"]["proxiable"], true);
    }
    let (_, page) = cf(
        Method::GET,
        &format!("{records}?type=A&name=www.codetesters.uk&per_page=5&page=3"),
        None,
    )
    .await;
    assert_eq!(
        page["result_info"],
        json!({"page": 3, "per_page": 5, "count": 2, "total_count": 12, "total_pages": 3})
    );
    let (status, dup) = cf(
        Method::POST,
        &records,
        Some(json!({"type": "A", "name": "www", "content": "203.0.113.0", "ttl": 60})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(dup["success"], false);
    assert_eq!(dup["errors"][0]["code"], 81058);
    let (status, cname) = cf(
        Method::POST,
        &records,
        Some(json!({"type": "CNAME", "name": "www", "content": "x.example.net"})),
    )
    .await;
    assert_eq!((status, cname["errors"][0]["code"].clone()), (400, json!(81053)));
    let (status, bad) = cf(
        Method::POST,
        &records,
        Some(json!({"type": "A", "name": "api", "content": "nope"})),
    )
    .await;
    assert_eq!((status, bad["errors"][0]["code"].clone()), (400, json!(9005)));
    let (status, ttl) = cf(
        Method::POST,
        &records,
        Some(json!({"type": "A", "name": "api", "content": "203.0.113.1", "ttl": 5})),
    )
    .await;
    assert_eq!(status, 400, "{ttl}");

    let (_, first) = cf(
        Method::GET,
        &format!("{records}?name=www.codetesters.uk&content=203.0.113.0"),
        None,
    )
    .await;
    let id = first["result"][0]["id"].as_str().unwrap().to_owned();
    let (status, patched) = cf(
        Method::PATCH,
        &format!("{records}/{id}"),
        Some(json!({"content": "198.51.100.1", "proxied": true})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["result"]["ttl"], 1, "proxied records have automatic TTL");
    assert_eq!(
        patched["result"]["comment"], "flotilla:www",
        "PATCH keeps what it does not name"
    );
    let (status, deleted) = cf(Method::DELETE, &format!("{records}/{id}"), None).await;
    assert_eq!((status, deleted["result"]["id"].clone()), (200, json!(id)));
    let (status, gone) = cf(Method::GET, &format!("{records}/{id}"), None).await;
    assert_eq!((status, gone["errors"][0]["code"].clone()), (404, json!(81044)));
    sim.shutdown().await;
}

#[tokio::test]
async fn batches_apply_in_order_all_or_nothing() {
    let sim = start(config()).await;
    let base = sim.cloudflare_url().to_owned();
    let (_, zones) = cf(Method::GET, &format!("{base}/zones?name=example.com"), None).await;
    let zone = zones["result"][0]["id"].as_str().unwrap().to_owned();
    let records = format!("{base}/zones/{zone}/dns_records");
    let (_, a) = cf(
        Method::POST,
        &records,
        Some(json!({"type": "A", "name": "a", "content": "192.0.2.1"})),
    )
    .await;
    let (_, b) = cf(
        Method::POST,
        &records,
        Some(json!({"type": "A", "name": "b", "content": "192.0.2.2"})),
    )
    .await;
    let (a, b) = (a["result"]["id"].clone(), b["result"]["id"].clone());

    // The delete frees the name before the post takes it again: order matters.
    let (status, res) = cf(
        Method::POST,
        &format!("{records}/batch"),
        Some(json!({
            "deletes": [{"id": a}],
            "patches": [{"id": b, "content": "192.0.2.22"}],
            "posts": [{"type": "A", "name": "a", "content": "192.0.2.1"}, {"type": "A", "name": "c", "content": "192.0.2.3"}],
        })),
    )
    .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["result"]["deletes"][0]["id"], a);
    assert_eq!(res["result"]["patches"][0]["content"], "192.0.2.22");
    assert_eq!(res["result"]["posts"].as_array().unwrap().len(), 2);

    // One bad change and nothing happens.
    let (status, res) = cf(
        Method::POST,
        &format!("{records}/batch"),
        Some(json!({
            "deletes": [{"id": b}],
            "posts": [{"type": "A", "name": "d", "content": "not-an-address"}],
        })),
    )
    .await;
    assert_eq!(status, 400, "{res}");
    let (_, all) = cf(Method::GET, &records, None).await;
    assert_eq!(all["result_info"]["total_count"], 3, "b is still there");
    sim.shutdown().await;
}

#[tokio::test]
async fn tokens_and_legacy_keys_are_checked() {
    let sim = start(config()).await;
    let base = sim.cloudflare_url().to_owned();
    let (status, body) = call(Method::GET, &format!("{base}/zones"), "bad-token", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["success"], false);
    assert_eq!(body["errors"][0]["code"], 10000);
    let r = http()
        .get(format!("{base}/zones"))
        .header("X-Auth-Email", CLOUDFLARE_EMAIL)
        .header("X-Auth-Key", CLOUDFLARE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await.0, 200);
    let r = http()
        .get(format!("{base}/zones"))
        .header("X-Auth-Email", CLOUDFLARE_EMAIL)
        .header("X-Auth-Key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await.0, 401);
    let (status, v) = cf(Method::GET, &format!("{base}/user/tokens/verify"), None).await;
    assert_eq!((status, v["result"]["status"].clone()), (200, json!("active")));
    let counters = sim.counters().provider(flotilla_cloudsim::Provider::Cloudflare);
    assert_eq!(counters.auth_failures, 2);
    assert_eq!(counters.credentials["legacy"].requests, 1);
    sim.shutdown().await;
}
