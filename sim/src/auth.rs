//! Credential checks: bearer tokens (Linode, DigitalOcean, Vultr, Cloudflare), Cloudflare's legacy
//! e-mail + key, and Exoscale's `EXO2-HMAC-SHA256` request signatures.

use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Provider, SimConfig};
use crate::error::ApiError;

/// The name of the credential a request carries, or the provider's refusal.
pub(crate) fn bearer(
    config: &SimConfig,
    provider: Provider,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let refuse = || ApiError::unauthorized(provider, "");
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refuse)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(refuse)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(refuse());
    }
    config
        .credentials
        .tokens(provider)
        .iter()
        .find(|t| t.token == token.trim())
        .map(|t| t.name.clone())
        .ok_or_else(refuse)
}

/// Cloudflare: a bearer token or `X-Auth-Email` + `X-Auth-Key`.
pub(crate) fn cloudflare(config: &SimConfig, headers: &HeaderMap) -> Result<String, ApiError> {
    let email = headers.get("x-auth-email").and_then(|v| v.to_str().ok());
    let key = headers.get("x-auth-key").and_then(|v| v.to_str().ok());
    if let (Some(email), Some(key)) = (email, key) {
        return config
            .credentials
            .cloudflare_keys
            .iter()
            .find(|k| k.email.eq_ignore_ascii_case(email.trim()) && k.key == key.trim())
            .map(|k| k.name.clone())
            .ok_or_else(|| ApiError::unauthorized(Provider::Cloudflare, ""));
    }
    bearer(config, Provider::Cloudflare, headers)
}

/// The parts of an Exoscale request the signature covers.
pub(crate) struct SignedParts<'a> {
    pub method: &'a Method,
    /// The path as sent (percent-encoded, with `/v2` and any zone prefix).
    pub path: &'a str,
    /// The raw query string.
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

/// The names (sorted) and concatenated values of the query parameters that occur exactly once, as
/// Exoscale's clients sign them.
fn signed_query(query: Option<&str>) -> (Vec<String>, String) {
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    if let Some(q) = query {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            seen.entry(k.into_owned()).or_default().push(v.into_owned());
        }
    }
    let mut names = Vec::new();
    let mut values = String::new();
    for (name, vals) in seen {
        if let [only] = vals.as_slice() {
            values.push_str(only);
            names.push(name);
        }
    }
    (names, values)
}

/// The signature (base64) of a request, as `EXO2-HMAC-SHA256` computes it.
#[cfg(test)]
pub(crate) fn exoscale_signature(secret: &str, parts: &SignedParts<'_>, expires: i64) -> Option<String> {
    let mac = mac(secret, parts, expires)?;
    Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// The HMAC over the signed message: `"<METHOD> <path>"`, body, query values, (no headers), expires.
fn mac(secret: &str, parts: &SignedParts<'_>, expires: i64) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    let (_, values) = signed_query(parts.query);
    mac.update(format!("{} {}\n", parts.method, parts.path).as_bytes());
    mac.update(parts.body);
    mac.update(format!("\n{values}\n\n{expires}").as_bytes());
    Some(mac)
}

/// Verifies an Exoscale request signature; the key's name, or 403 `{"message":…}`.
pub(crate) fn exoscale(
    config: &SimConfig,
    parts: &SignedParts<'_>,
    headers: &HeaderMap,
    now: i64,
) -> Result<String, ApiError> {
    let refuse = |m: &str| ApiError::unauthorized(Provider::Exoscale, m);
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refuse("Missing authentication"))?;
    let pragmas = value
        .trim()
        .strip_prefix("EXO2-HMAC-SHA256 ")
        .ok_or_else(|| refuse("Unsupported authentication scheme"))?;
    let (mut credential, mut expires, mut signature, mut signed_args) = (None, None, None, None);
    for pragma in pragmas.split(',') {
        match pragma.trim().split_once('=') {
            Some(("credential", v)) => credential = Some(v),
            Some(("expires", v)) => expires = Some(v),
            Some(("signature", v)) => signature = Some(v),
            Some(("signed-query-args", v)) => signed_args = Some(v),
            _ => return Err(refuse("Malformed authorization header")),
        }
    }
    let (Some(credential), Some(expires), Some(signature)) = (credential, expires, signature) else {
        return Err(refuse("Malformed authorization header"));
    };
    let key = config
        .credentials
        .exoscale
        .iter()
        .find(|k| k.key == credential)
        .ok_or_else(|| refuse("Invalid API key"))?;
    let expires: i64 = expires
        .parse()
        .map_err(|_| refuse("Malformed authorization header"))?;
    if expires < now {
        return Err(refuse("Request has expired"));
    }
    let (names, _) = signed_query(parts.query);
    let listed: Vec<&str> = signed_args
        .map(|a| a.split(';').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if listed != names.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(refuse("Invalid request signature"));
    }
    let given = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| refuse("Invalid request signature"))?;
    mac(&key.secret, parts, expires)
        .ok_or_else(|| refuse("Invalid request signature"))?
        .verify_slice(&given)
        .map_err(|_| refuse("Invalid request signature"))?;
    Ok(key.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn sign(config: &SimConfig, parts: &SignedParts<'_>, expires: i64) -> HeaderMap {
        let key = &config.credentials.exoscale[0];
        let sig = exoscale_signature(&key.secret, parts, expires).unwrap();
        let (names, _) = signed_query(parts.query);
        let mut value = format!("EXO2-HMAC-SHA256 credential={}", key.key);
        if !names.is_empty() {
            value.push_str(&format!(",signed-query-args={}", names.join(";")));
        }
        value.push_str(&format!(",expires={expires},signature={sig}"));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        h
    }

    #[test]
    fn exoscale_signatures_verify_and_tampering_fails() {
        let config = SimConfig::default();
        let parts = SignedParts {
            method: &Method::POST,
            path: "/v2/instance",
            query: Some("b=2&a=1&multi=x&multi=y"),
            body: br#"{"name":"x"}"#,
        };
        let headers = sign(&config, &parts, 1_000_600);
        assert_eq!(exoscale(&config, &parts, &headers, 1_000_000).unwrap(), "default");
        // Expired.
        assert!(exoscale(&config, &parts, &headers, 1_000_601).is_err());
        // Another body.
        let tampered = SignedParts {
            body: br#"{"name":"y"}"#,
            ..parts
        };
        let e = exoscale(&config, &tampered, &headers, 1_000_000).unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert_eq!(e.body()["message"], "Invalid request signature");
    }

    #[test]
    fn bearer_tokens_are_checked() {
        let config = SimConfig::default();
        let mut h = HeaderMap::new();
        assert!(bearer(&config, Provider::Linode, &h).is_err());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sim-linode-token"),
        );
        assert_eq!(bearer(&config, Provider::Linode, &h).unwrap(), "default");
        assert!(bearer(&config, Provider::Vultr, &h).is_err());
    }
}
