//! Every operation the simulator serves, held against the provider's published OpenAPI document — not only
//! the ones the adapters use today. Each operation of the document is sent to the simulator with a body
//! made from the document's request schema; for every one the simulator serves, that body broken in each
//! way the document refuses (a field left out, a field of the wrong JSON type) must be refused by the
//! simulator with a validation error in the provider's own shape. (The contract suite does the same with
//! the adapters' own requests, and their query parameters.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flotilla_cloudsim::{Provider, SimConfig, Simulator};
use flotilla_conformance::{Fill, examples::UUID};
use flotilla_integration_tests::free_port;
use support::fidelity::Judge;

/// `template` with every `{parameter}` filled with a well-formed id that names nothing.
fn filled(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                out.push_str(UUID);
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Walks every operation of `provider`'s document through the simulator; returns the operations it serves.
async fn every_operation_served_is_judged_alike(provider: Provider) -> Vec<String> {
    let sim = Simulator::start(SimConfig {
        health_port: free_port(),
        // Hundreds of requests in a few seconds: no rate limit, so every answer is the operation's own.
        rate_limits: std::collections::BTreeMap::new(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let judge = Judge::new(&sim, provider);
    let mut served = Vec::new();
    let mut judged = 0;
    let mut disagreements = Vec::new();
    for (method, template) in judge.spec.operations() {
        // DigitalOcean's paths carry `/v2` (its server has no path); those without it are other hosts'
        // (`/v1/chat/completions` of its inference API, a pre-signed `/<upload_url>`).
        let relative = match template.strip_prefix("/v2") {
            Some(r) => r.to_owned(),
            None if provider == Provider::DigitalOcean => continue,
            None => template.clone(),
        };
        let path = filled(&relative);
        let body = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
            judge
                .spec
                .request(&method, &format!("/v2{path}"), Fill::RequiredOnly)
                .unwrap_or_else(|e| panic!("{method} {template}: {e}"))
        } else {
            None
        };
        let Some(status) = judge.serves(&method, &path, body.as_ref()).await else {
            continue;
        };
        served.push(format!("{method} {template} ({status})"));
        let v = judge
            .broken_variants(&method, &format!("{}{path}", judge.base), &[], body.as_ref())
            .await;
        judged += v.judged;
        disagreements.extend(v.disagreements);
    }
    sim.shutdown().await;
    println!("{provider:?}: the simulator serves\n  {}", served.join("\n  "));
    assert!(judged > 0, "{provider:?}: nothing to break");
    assert!(
        disagreements.is_empty(),
        "{provider:?}: the simulator accepts what the published API refuses:\n{}",
        disagreements.join("\n")
    );
    served
}

#[tokio::test]
async fn digitalocean_simulator_refuses_what_the_document_refuses() {
    let served = every_operation_served_is_judged_alike(Provider::DigitalOcean).await;
    assert!(served.len() >= 20, "{served:?}");
}

#[tokio::test]
async fn vultr_simulator_refuses_what_the_document_refuses() {
    let served = every_operation_served_is_judged_alike(Provider::Vultr).await;
    assert!(served.len() >= 20, "{served:?}");
}

#[tokio::test]
async fn exoscale_simulator_refuses_what_the_document_refuses() {
    let served = every_operation_served_is_judged_alike(Provider::Exoscale).await;
    assert!(served.len() >= 20, "{served:?}");
}
