//! Shared test support: the recorded Cloudflare fixtures and an adapter pointed at a wiremock server.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use flotilla_cloud::http::{RateLimit, RetryPolicy};
use flotilla_cloudflare::{Cloudflare, CloudflareAuth, CloudflareConfig};
use flotilla_spec::Secret;
use serde_json::Value;
use wiremock::MockServer;

pub const TOKEN: &str = "cf-token-123";

/// `/work/shared/provider-specs/cloudflare`, found by walking up from this crate.
pub fn cloudflare_dir() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("shared").join("provider-specs");
        if candidate.is_dir() {
            return candidate.join("cloudflare");
        }
        assert!(
            dir.pop(),
            "no shared/provider-specs above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
}

/// A fixture file, parsed.
pub fn fixture(name: &str) -> Value {
    let path = cloudflare_dir().join("fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `common.yaml`, parsed.
pub fn common_yaml() -> Value {
    let text = std::fs::read_to_string(cloudflare_dir().join("common.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn config(server: &MockServer, auth: CloudflareAuth) -> CloudflareConfig {
    let mut config = CloudflareConfig::new(auth).with_base_url(format!("{}/client/v4", server.uri()));
    config.rate = RateLimit::per_second(1000);
    config.retry = RetryPolicy {
        max_attempts: 2,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(2),
    };
    config
}

/// An adapter with an API token, against `server`.
pub fn adapter(server: &MockServer) -> Cloudflare {
    Cloudflare::new(config(
        server,
        CloudflareAuth::ApiToken {
            account_id: "acc".into(),
            token: Secret::new(TOKEN),
        },
    ))
    .unwrap()
}

/// An adapter with the legacy global key, against `server`.
pub fn legacy_adapter(server: &MockServer) -> Cloudflare {
    Cloudflare::new(config(
        server,
        CloudflareAuth::GlobalKey {
            email: "ops@example.com".into(),
            key: Secret::new("global-456"),
        },
    ))
    .unwrap()
}
