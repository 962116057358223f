//! Scrubbing credentials out of text that is about to be logged or put on the bus (error messages, URLs).

use std::sync::LazyLock;

use regex::Regex;

static USERINFO: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@").ok());
static QUERY_SECRET: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)(?P<key>[?&;\s](?:access_?token|token|api_?key|key|secret|password|passwd|signature|sig|x-amz-signature|x-amz-credential)=)[^&\s]+").ok()
});
static AUTH_SCHEME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)(?P<scheme>\b(?:bearer|basic|exo2-hmac-sha256)\s+)[^\s,]+").ok());

/// `text` with URL user-info (`nats://user:pass@host` → `nats://<redacted>@host`), secret-looking query
/// parameters and `Bearer …`/`Basic …` credentials replaced by `<redacted>`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(re) = USERINFO.as_ref() {
        out = re.replace_all(&out, "${scheme}<redacted>@").into_owned();
    }
    if let Some(re) = QUERY_SECRET.as_ref() {
        out = re.replace_all(&out, "${key}<redacted>").into_owned();
    }
    if let Some(re) = AUTH_SCHEME.as_ref() {
        out = re.replace_all(&out, "${scheme}<redacted>").into_owned();
    }
    out
}

/// [`redact`], then cut to at most `max` bytes (on a character boundary), marking the cut.
pub fn redact_and_truncate(text: &str, max: usize) -> String {
    let mut out = redact(text);
    if out.len() > max {
        let mut end = max;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str("… (truncated)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_credentials() {
        assert_eq!(
            redact("nats://alice:hunter2@nats.internal:4222"),
            "nats://<redacted>@nats.internal:4222"
        );
        assert_eq!(
            redact("tls://tok3n@h:4222,nats://x:4222"),
            "tls://<redacted>@h:4222,nats://x:4222"
        );
        assert_eq!(
            redact("GET https://api.example.com/v4/x?page=2&token=abc123&b=1 failed"),
            "GET https://api.example.com/v4/x?page=2&token=<redacted>&b=1 failed"
        );
        assert_eq!(
            redact("Authorization: Bearer sk-live-123 rejected"),
            "Authorization: Bearer <redacted> rejected"
        );
        assert_eq!(
            redact("postgres://flotilla:pw@db/x"),
            "postgres://<redacted>@db/x"
        );
        assert_eq!(
            redact("nothing to see at https://example.com/a?page=1"),
            "nothing to see at https://example.com/a?page=1"
        );
    }

    #[test]
    fn truncates_on_a_char_boundary() {
        let s = "é".repeat(100);
        let t = redact_and_truncate(&s, 11);
        assert!(t.starts_with("ééééé") && t.ends_with("(truncated)"), "{t}");
        assert_eq!(redact_and_truncate("short", 100), "short");
    }
}
