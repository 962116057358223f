//! The legacy global API key (`X-Auth-Email` + `X-Auth-Key`). API tokens use
//! [`flotilla_cloud::http::BearerToken`].

use flotilla_cloud::http::{CredentialFingerprint, RequestParts, Signer};
use flotilla_cloud::{CloudError, ProviderKind, Result};
use flotilla_spec::Secret;
use reqwest::header::{HeaderName, HeaderValue};

/// Sends the account email and global API key. `Debug` shows neither.
#[derive(Clone)]
pub struct GlobalKeySigner {
    email: String,
    key: Secret,
}

impl GlobalKeySigner {
    /// A signer for the global key of the account `email`.
    pub fn new(email: impl Into<String>, key: impl Into<Secret>) -> Self {
        Self {
            email: email.into(),
            key: key.into(),
        }
    }
}

impl std::fmt::Debug for GlobalKeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalKeySigner")
            .field("email", &"<redacted>")
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Signer for GlobalKeySigner {
    fn sign(&self, _request: &RequestParts<'_>) -> Result<Vec<(HeaderName, HeaderValue)>> {
        let invalid = |what: &str| CloudError::Auth {
            provider: ProviderKind::Cloudflare,
            message: format!("the {what} holds characters that cannot go in a header"),
        };
        let mut email = HeaderValue::from_str(&self.email).map_err(|_| invalid("account email"))?;
        email.set_sensitive(true);
        let mut key = HeaderValue::from_str(self.key.expose()).map_err(|_| invalid("global API key"))?;
        key.set_sensitive(true);
        Ok(vec![
            (HeaderName::from_static("x-auth-email"), email),
            (HeaderName::from_static("x-auth-key"), key),
        ])
    }

    /// The email and key: adapters of one global key share its rate budget.
    fn fingerprint(&self) -> Option<CredentialFingerprint> {
        Some(CredentialFingerprint::of(&[&self.email, self.key.expose()]))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Method;

    use super::*;

    #[test]
    fn sends_both_headers_as_sensitive() {
        let s = GlobalKeySigner::new("ops@example.com", "global-456");
        let parts = RequestParts {
            method: &Method::GET,
            path: "/client/v4/zones",
            query: &[],
            body: &[],
        };
        let headers = s.sign(&parts).unwrap();
        assert_eq!(headers[0].0.as_str(), "x-auth-email");
        assert_eq!(headers[1].1.to_str().unwrap(), "global-456");
        assert!(headers.iter().all(|(_, v)| v.is_sensitive()));
        assert!(!format!("{s:?}").contains("global-456"));
    }
}
