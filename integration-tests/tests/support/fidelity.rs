//! The simulator held against the providers' published OpenAPI documents (`flotilla-conformance`): every
//! request the adapters make conforms, and the simulator refuses what a document refuses.

use std::sync::Arc;

use flotilla_cloud::http::{
    ApiClient, BearerToken, RateLimit, RequestParts, RetryPolicy, Signer, error_for_status,
};
use flotilla_cloud::{CloudError, ProviderKind};
use flotilla_cloudsim::{Provider, RecordedRequest, RunningSim, defaults};
use flotilla_conformance::Spec;
use serde_json::Value;

/// A bare client of a simulated provider, to set up what the adapters only find (zones, databases) and to
/// send requests the adapters never would.
pub fn raw(provider: ProviderKind, url: &str, signer: Arc<dyn Signer>) -> ApiClient {
    fn map(p: ProviderKind, s: reqwest::StatusCode, h: &reqwest::header::HeaderMap, b: &[u8]) -> CloudError {
        error_for_status(p, s, h, String::from_utf8_lossy(b).into_owned(), None)
    }
    ApiClient::new(
        provider,
        url,
        signer,
        RateLimit::per_second(100),
        RetryPolicy::default(),
        map,
    )
    .unwrap()
}

/// The published document of `provider` (DigitalOcean, Vultr, Exoscale).
pub fn spec(provider: Provider) -> Spec {
    let specs = flotilla_conformance::provider_specs(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("shared/provider-specs above the repository");
    match provider {
        Provider::DigitalOcean => Spec::digitalocean(&specs),
        Provider::Vultr => Spec::vultr(&specs),
        Provider::Exoscale => Spec::exoscale(&specs),
        other => panic!("no OpenAPI document for {other:?}"),
    }
    .unwrap()
}

/// Every request made to `provider` since the last call holds against its published OpenAPI document;
/// panics with each violation (operation, field, rule) otherwise. Returns the requests checked.
pub fn assert_conforms(sim: &RunningSim, provider: Provider) -> Vec<RecordedRequest> {
    let spec = spec(provider);
    let requests: Vec<_> = sim
        .take_requests()
        .into_iter()
        .filter(|r| r.provider == provider)
        .collect();
    assert!(!requests.is_empty(), "{provider:?}: no request recorded");
    let mut violations = Vec::new();
    for r in &requests {
        // (Exoscale's zone segment before `/v2` is the endpoint; the document's matching allows it.)
        if let Err(v) = spec.check(&r.method, &r.path, &r.query, r.body.as_ref()) {
            violations.extend(v.into_iter().map(|v| v.to_string()));
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "{provider:?}: requests that break the published API:\n{}",
        violations.join("\n")
    );
    requests
}

/// One provider's simulator and published document, side by side.
pub struct Judge {
    /// The provider.
    pub provider: Provider,
    /// Its published document.
    pub spec: Spec,
    client: ApiClient,
    signer: Arc<dyn Signer>,
    /// The simulator's address of the API, without the path (`http://127.0.0.1:PORT`).
    origin: String,
    /// The path the API is under: `/v2`, or `/ch-gva-2/v2` (an Exoscale zone's endpoint).
    pub base: String,
}

/// A request the document refuses, and what the simulator answered where it did not refuse it too.
pub struct Verdicts {
    /// Broken requests sent (those the document refuses).
    pub judged: usize,
    /// Each one the simulator did not refuse with a validation error.
    pub disagreements: Vec<String>,
}

impl Judge {
    /// The judge of `provider` on `sim`.
    pub fn new(sim: &RunningSim, provider: Provider) -> Self {
        let (kind, url, signer, base): (_, String, Arc<dyn Signer>, _) = match provider {
            Provider::DigitalOcean => (
                ProviderKind::DigitalOcean,
                sim.digitalocean_url().to_owned(),
                Arc::new(BearerToken::new(
                    ProviderKind::DigitalOcean,
                    defaults::DIGITALOCEAN_TOKEN,
                )),
                "/v2",
            ),
            Provider::Vultr => (
                ProviderKind::Vultr,
                sim.vultr_url().to_owned(),
                Arc::new(BearerToken::new(ProviderKind::Vultr, defaults::VULTR_TOKEN)),
                "/v2",
            ),
            Provider::Exoscale => (
                ProviderKind::Exoscale,
                sim.exoscale_zone_url("ch-gva-2"),
                Arc::new(flotilla_exoscale::ExoscaleSigner::new(
                    defaults::EXOSCALE_KEY,
                    defaults::EXOSCALE_SECRET,
                )),
                "/ch-gva-2/v2",
            ),
            other => panic!("no OpenAPI document for {other:?}"),
        };
        let parsed = reqwest::Url::parse(&url).unwrap();
        let origin = format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap(),
            parsed.port_or_known_default().unwrap()
        );
        Self {
            provider,
            spec: spec(provider),
            client: raw(kind, &url, signer.clone()),
            signer,
            origin,
            base: base.to_owned(),
        }
    }

    /// `request` sent again broken in every way its document refuses — each body field left out, each of
    /// the wrong JSON type; each query parameter left out, or given a value that is not a number — must be
    /// refused by the simulator with a validation error in the provider's shape (before it looks anything
    /// up, as the APIs do). Variants the document accepts are not sent: they would change things.
    pub async fn broken_variants(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Verdicts {
        let mut verdicts = Verdicts {
            judged: 0,
            disagreements: Vec::new(),
        };
        let Some(relative) = path.strip_prefix(&self.base) else {
            return verdicts;
        };
        let spec_path = format!("/v2{relative}");
        // What was broken, then the query and the body sent.
        type Variant = (String, Vec<(String, String)>, Option<Value>);
        let mut variants: Vec<Variant> = Vec::new();
        if let Some(Value::Object(fields)) = body {
            for (key, value) in fields {
                let mut missing = fields.clone();
                missing.remove(key);
                variants.push((
                    format!("without {key}"),
                    query.to_vec(),
                    Some(Value::Object(missing)),
                ));
                let wrong = match value {
                    Value::String(_) => serde_json::json!(12345),
                    Value::Number(_) | Value::Bool(_) => serde_json::json!("not-a-number"),
                    Value::Array(_) | Value::Object(_) => serde_json::json!("not-a-structure"),
                    Value::Null => continue,
                };
                let mut retyped = fields.clone();
                retyped.insert(key.clone(), wrong);
                variants.push((
                    format!("with {key} of the wrong type"),
                    query.to_vec(),
                    Some(Value::Object(retyped)),
                ));
            }
        }
        for (i, (key, _)) in query.iter().enumerate() {
            let mut missing = query.to_vec();
            missing.remove(i);
            variants.push((format!("without ?{key}"), missing, body.cloned()));
            let mut retyped = query.to_vec();
            retyped[i].1 = "not-a-number".to_owned();
            variants.push((format!("with ?{key}=not-a-number"), retyped, body.cloned()));
        }
        for (what, query, body) in variants {
            if self.spec.check(method, &spec_path, &query, body.as_ref()).is_ok() {
                continue;
            }
            verdicts.judged += 1;
            let q: Vec<(&str, String)> = query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let answer = self
                .client
                .request(
                    method.parse().unwrap_or(reqwest::Method::POST),
                    relative.trim_start_matches('/'),
                    &q,
                    body.as_ref(),
                    &[],
                )
                .await;
            if !matches!(answer, Err(CloudError::Invalid { .. })) {
                verdicts.disagreements.push(format!(
                    "{method} {relative} {what}: the document refuses it, the simulator answered {answer:?}"
                ));
            }
        }
        verdicts
    }

    /// Whether the simulator serves `method path` (under [`Judge::base`]): anything but its answer to a
    /// route it does not have (`x-flotilla-sim: no-route`) or a method the route does not take (405).
    /// Returns the status when it does.
    pub async fn serves(&self, method: &str, path: &str, body: Option<&Value>) -> Option<u16> {
        let method: reqwest::Method = method.parse().unwrap();
        let full = format!("{}{path}", self.base);
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let headers = self
            .signer
            .sign(&RequestParts {
                method: &method,
                path: &full,
                query: &[],
                body: &bytes,
            })
            .unwrap();
        let mut request = reqwest::Client::new().request(method, format!("{}{full}", self.origin));
        for (k, v) in headers {
            request = request.header(k, v);
        }
        if body.is_some() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let answer = request.send().await.unwrap();
        let unrouted = answer
            .headers()
            .get("x-flotilla-sim")
            .is_some_and(|v| v == "no-route");
        let status = answer.status().as_u16();
        (!unrouted && status != 405).then_some(status)
    }
}

/// The simulator refuses what the published API refuses: each request the adapters made, broken as
/// [`Judge::broken_variants`] breaks it, is refused by the simulator whenever the provider's document
/// refuses it.
pub async fn assert_simulator_refuses_like_the_document(
    sim: &RunningSim,
    provider: Provider,
    requests: &[RecordedRequest],
) {
    let judge = Judge::new(sim, provider);
    let mut judged = 0;
    let mut disagreements = Vec::new();
    for r in requests {
        let body = r.body.as_ref().filter(|b| b.is_object());
        let v = judge.broken_variants(&r.method, &r.path, &r.query, body).await;
        judged += v.judged;
        disagreements.extend(v.disagreements);
    }
    disagreements.sort();
    disagreements.dedup();
    assert!(judged > 0, "{provider:?}: no request to break");
    assert!(
        disagreements.is_empty(),
        "{provider:?}: the simulator accepts what the published API refuses:\n{}",
        disagreements.join("\n")
    );
}
