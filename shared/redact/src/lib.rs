//! Scrubbing credentials out of text that is about to be logged, published on the bus or carried in an
//! error: error messages, provider answers, URLs, echoed request headers.
//!
//! [`redact`] replaces, with [`REDACTED`]:
//! - URL user-info (`nats://user:pass@host` → `nats://<redacted>@host`);
//! - the values of JSON-ish keys that name a secret (`"password":"…"`, `"token": "…"`, `"secret":…`,
//!   `"api_key"`, `"access_key"`, `"secret_key"`, `"db_password"`, `"Authorization"` …), quoted or not;
//! - `Authorization:` / `Proxy-Authorization:` / `Cookie:` header values, whatever their scheme, to the end
//!   of the line (the scheme word, when there is one, is kept);
//! - `X-Auth-Key`, `X-Auth-Email`, `X-Auth-Token` (Cloudflare's legacy authentication), `X-Amz-Security-Token`
//!   and `X-Api-Key` header values;
//! - the whole parameter list of an `EXO2-HMAC-SHA256 credential=…,signature=…` (Exoscale) or
//!   `AWS4-HMAC-SHA256 Credential=…, Signature=…` authorization;
//! - `Bearer …` and `Basic …` credentials wherever they appear;
//! - secret-looking parameters: `token=`, `api_key=`, `password=`, `signature=`, `credential=`,
//!   `X-Amz-Security-Token=` … after `?`, `&`, `;`, `,`, `(`, whitespace or at the start;
//! - `password: …`, `secret: …`, `api_key: …` … (unquoted keys, as in `Debug` output and YAML).
//!
//! Redaction is idempotent: redacting redacted text changes nothing.
//!
//! **It fails closed.** The patterns are compiled once; if any of them could not be compiled, [`redact`]
//! and [`redact_and_truncate`] return [`UNAVAILABLE`] instead of the text — a message is lost rather than a
//! credential leaked. [`check`] tells whether redaction is available (for a start-up check).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What a credential is replaced by.
pub const REDACTED: &str = "<redacted>";

/// What [`redact`] returns, whatever its input, when redaction is unavailable (a pattern failed to
/// compile).
pub const UNAVAILABLE: &str = "<redacted: redaction unavailable>";

/// Marks the end of a text [`redact_and_truncate`] cut short.
const TRUNCATED: &str = "… (truncated)";

/// Why redaction is unavailable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedactError {
    /// A pattern did not compile.
    #[error("redaction rule {rule} does not compile: {source}")]
    Pattern {
        /// The rule's name.
        rule: &'static str,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
}

/// A rule as written: a name (for errors and tests), a regex and what a match becomes.
struct Spec {
    name: &'static str,
    pattern: &'static str,
    replacement: &'static str,
}

/// A compiled rule.
struct Rule {
    re: Regex,
    replacement: &'static str,
}

/// The compiled rule set, or why there is none.
type Rules = Result<Vec<Rule>, RedactError>;

/// Key-name components that mark a JSON-ish value as secret: a key matches when one of its `_`/`-`/`.`
/// separated parts is one of these (`"db_password"`, `"x-auth-key"`, `"client_secret"`), not when it merely
/// contains one (`"passenger"`).
macro_rules! secret_key_words {
    () => {
        "password|passwd|pwd|pass|passphrase|token|secret|api_?key|apikey|access_?key|secret_?key|\
         private_?key|client_?secret|credentials?|signature|authorization|cookie|auth[_-]?(?:key|email|token)"
    };
}

/// The rules, applied in this order. Each keeps the name of what it redacts and replaces only the value.
const SPECS: &[Spec] = &[
    Spec {
        name: "url_userinfo",
        pattern: r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]+@",
        replacement: "${scheme}<redacted>@",
    },
    Spec {
        name: "json_secret",
        pattern: concat!(
            r#"(?i)(?P<key>["'](?:[a-z0-9]+[_.-])*(?:"#,
            secret_key_words!(),
            r#")(?:[_.-][a-z0-9]+)*["'][ \t]*[:=][ \t]*)(?:"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|[^\s,}\]]+)"#
        ),
        replacement: r#"${key}"<redacted>""#,
    },
    Spec {
        name: "authorization_header",
        pattern: r"(?i)(?P<header>\b(?:proxy-)?(?:authorization|cookie)[ \t]*[:=][ \t]*)(?P<scheme>(?:bearer|basic|digest|negotiate|token|exo2-hmac-sha256|aws4-hmac-sha256)[ \t]+)?[^\r\n]+",
        replacement: "${header}${scheme}<redacted>",
    },
    Spec {
        name: "secret_header",
        pattern: r#"(?i)(?P<header>\b(?:x-auth-key|x-auth-email|x-auth-token|x-amz-security-token|x-api-key)[ \t]*[:=][ \t]*["']?)[^\s"',;&]+"#,
        replacement: "${header}<redacted>",
    },
    Spec {
        name: "signed_scheme",
        pattern: r#"(?i)(?P<scheme>\b(?:exo2|aws4)-hmac-sha256[ \t]+)[^\s,"']+(?:,[ \t]*[^\s,"']+)*"#,
        replacement: "${scheme}<redacted>",
    },
    Spec {
        name: "bearer_basic",
        pattern: r#"(?i)(?P<scheme>\b(?:bearer|basic)[ \t]+)[^\s,"']+"#,
        replacement: "${scheme}<redacted>",
    },
    Spec {
        name: "query_secret",
        pattern: r#"(?i)(?P<key>(?:^|[?&;\s,(])(?:[a-z0-9]+[_.-])*(?:access_?token|refresh_?token|auth_?token|id_?token|token|api_?key|apikey|key|secret|client_?secret|secret_?key|access_?key|password|passwd|pwd|signature|sig|credential|security-token)=["']?)[^&\s"']+"#,
        replacement: "${key}<redacted>",
    },
    Spec {
        name: "unquoted_secret",
        pattern: r#"(?i)(?P<key>\b(?:[a-z0-9]+[_.-])*(?:password|passwd|passphrase|secret|client_?secret|api_?key|secret_?key|access_?key|private_?key|access_?token|auth_?token|refresh_?token)[ \t]*:[ \t]*)(?:"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|[^\s,;)}\]]+)"#,
        replacement: "${key}<redacted>",
    },
];

static RULES: LazyLock<Rules> = LazyLock::new(|| compile(SPECS));

/// A whole key name that names a secret (the key-name rule of `json_secret`, anchored).
static SECRET_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^(?:[a-z0-9]+[_.-])*(?:",
        secret_key_words!(),
        r")(?:[_.-][a-z0-9]+)*$"
    ))
    .ok()
});

/// Compiles `specs`, all or nothing: one bad pattern makes the whole set unavailable.
fn compile(specs: &[Spec]) -> Rules {
    specs
        .iter()
        .map(|spec| {
            Regex::new(spec.pattern)
                .map(|re| Rule {
                    re,
                    replacement: spec.replacement,
                })
                .map_err(|source| RedactError::Pattern {
                    rule: spec.name,
                    source,
                })
        })
        .collect()
}

/// `text` with every credential the module documentation lists replaced by [`REDACTED`]; [`UNAVAILABLE`]
/// when redaction is unavailable.
pub fn redact(text: &str) -> String {
    redact_with(&RULES, text)
}

/// [`redact`], then cut to at most `max` bytes (on a character boundary), marking the cut.
pub fn redact_and_truncate(text: &str, max: usize) -> String {
    truncate(redact_with(&RULES, text), max)
}

/// Whether redaction is available: `Err` names the pattern that did not compile. When it is not, [`redact`]
/// returns [`UNAVAILABLE`] for every text.
pub fn check() -> Result<(), RedactError> {
    match &*RULES {
        Ok(_) => Ok(()),
        Err(e) => Err(e.clone()),
    }
}

/// Whether a field or key called `name` holds a secret by its name (`password`, `db_password`, `api_key`,
/// `X-Auth-Key`, `client_secret` …: the names whose JSON values [`redact`] replaces). For callers that build
/// messages from a value and the name of its field (a parse error quoting the value): they should leave the
/// value out when this says so. `true` for every name when redaction is unavailable (fails closed).
pub fn is_secret_key(name: &str) -> bool {
    match &*SECRET_KEY {
        Some(re) => re.is_match(name.trim()),
        None => true,
    }
}

/// [`redact`] with the rule set `rules`: the placeholder when there is none.
fn redact_with(rules: &Rules, text: &str) -> String {
    let Ok(rules) = rules else {
        return UNAVAILABLE.to_owned();
    };
    let mut out = text.to_owned();
    for rule in rules {
        if let Cow::Owned(replaced) = rule.re.replace_all(&out, rule.replacement) {
            out = replaced;
        }
    }
    out
}

/// `text` cut to at most `max` bytes on a character boundary, with [`TRUNCATED`] appended when cut.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(TRUNCATED);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(rule, input, expected)`: what each rule must redact.
    const REDACTS: &[(&str, &str, &str)] = &[
        (
            "url_userinfo",
            "nats://alice:hunter2@nats.internal:4222",
            "nats://<redacted>@nats.internal:4222",
        ),
        (
            "url_userinfo",
            "tls://tok3n@h:4222,nats://x:4222",
            "tls://<redacted>@h:4222,nats://x:4222",
        ),
        (
            "url_userinfo",
            "postgres://flotilla:pw@db/x",
            "postgres://<redacted>@db/x",
        ),
        (
            "url_userinfo",
            "https://user:p@ss@host/x",
            "https://<redacted>@host/x",
        ),
        (
            "json_secret",
            r#"{"error":"bad token","token":"sk-live-123"}"#,
            r#"{"error":"bad token","token":"<redacted>"}"#,
        ),
        (
            "json_secret",
            r#"{"password": "hunter2", "name": "web-1"}"#,
            r#"{"password": "<redacted>", "name": "web-1"}"#,
        ),
        (
            "json_secret",
            r#"{"secret":12345,"id":7}"#,
            r#"{"secret":"<redacted>","id":7}"#,
        ),
        (
            "json_secret",
            r#"{"api_key":"k1","access_key":"AKIA1","secret_key":"s1"}"#,
            r#"{"api_key":"<redacted>","access_key":"<redacted>","secret_key":"<redacted>"}"#,
        ),
        (
            "json_secret",
            r#"{"root_pass":"a\"b","db_password":"x"}"#,
            r#"{"root_pass":"<redacted>","db_password":"<redacted>"}"#,
        ),
        (
            "json_secret",
            r#"{"Authorization": "Bearer abc", "Host": "api"}"#,
            r#"{"Authorization": "<redacted>", "Host": "api"}"#,
        ),
        // A body cut in the middle of the secret.
        ("json_secret", r#"{"token":"sk-li"#, r#"{"token":"<redacted>""#),
        (
            "authorization_header",
            "Authorization: Bearer sk-live-123 rejected",
            "Authorization: Bearer <redacted>",
        ),
        (
            "authorization_header",
            "authorization: my-custom-scheme 0xdeadbeef\nnext line",
            "authorization: <redacted>\nnext line",
        ),
        (
            "authorization_header",
            "Proxy-Authorization: Basic dXNlcjpwYXNz",
            "Proxy-Authorization: Basic <redacted>",
        ),
        (
            "authorization_header",
            "Cookie: session=abc; other=def",
            "Cookie: <redacted>",
        ),
        (
            "secret_header",
            "unknown X-Auth-Key: abc123 for zone",
            "unknown X-Auth-Key: <redacted> for zone",
        ),
        (
            "secret_header",
            "X-Auth-Email: ops@example.com\nX-Auth-Key: abc123",
            "X-Auth-Email: <redacted>\nX-Auth-Key: <redacted>",
        ),
        (
            "secret_header",
            "x-auth-token:tok9, x-amz-security-token: IQoJb3Jp",
            "x-auth-token:<redacted>, x-amz-security-token: <redacted>",
        ),
        (
            "signed_scheme",
            "signed EXO2-HMAC-SHA256 credential=EXOabc,signed-query-args=a;b,expires=1700000000,signature=c2lnbmF0dXJl rejected",
            "signed EXO2-HMAC-SHA256 <redacted> rejected",
        ),
        (
            "signed_scheme",
            "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abcd",
            "AWS4-HMAC-SHA256 <redacted>",
        ),
        (
            "bearer_basic",
            "sent Bearer sk-live-123, got 401",
            "sent Bearer <redacted>, got 401",
        ),
        ("bearer_basic", "basic dXNlcjpwYXNz", "basic <redacted>"),
        (
            "query_secret",
            "GET https://api.example.com/v4/x?page=2&token=abc123&b=1 failed",
            "GET https://api.example.com/v4/x?page=2&token=<redacted>&b=1 failed",
        ),
        (
            "query_secret",
            "https://b.s3.example/k?X-Amz-Credential=AKIA%2F1&X-Amz-Security-Token=IQoJ&X-Amz-Signature=ff",
            "https://b.s3.example/k?X-Amz-Credential=<redacted>&X-Amz-Security-Token=<redacted>&X-Amz-Signature=<redacted>",
        ),
        (
            "query_secret",
            "credential=EXOabc,signature=xyz",
            "credential=<redacted>",
        ),
        (
            "query_secret",
            "config db_password=\"hunter2\" rejected",
            "config db_password=\"<redacted>\" rejected",
        ),
        (
            "unquoted_secret",
            r#"Config { host: "db", password: "hunter2" }"#,
            r#"Config { host: "db", password: <redacted> }"#,
        ),
        (
            "unquoted_secret",
            "client_secret: abc123",
            "client_secret: <redacted>",
        ),
    ];

    /// `(rule, input)`: texts near each rule that must come out unchanged.
    const UNTOUCHED: &[(&str, &str)] = &[
        ("url_userinfo", "nothing to see at https://example.com/a?page=1"),
        ("url_userinfo", "https://host/users?email=a@b.com"),
        (
            "json_secret",
            r#"{"error":"bad token","name":"passenger","tokens":3}"#,
        ),
        ("json_secret", r#"{"mode":"pass","key":"fl-dep","value":"demo"}"#),
        ("authorization_header", "authorization failed for this account"),
        ("secret_header", "missing X-Auth-Key header"),
        ("signed_scheme", "Exoscale signs with EXO2-HMAC-SHA256."),
        ("bearer_basic", "basically the bearer-less request failed"),
        (
            "query_secret",
            "https://example.com/a?page=2&per_page=500&monkey=3",
        ),
        ("unquoted_secret", "password too short; secretary: Bob"),
    ];

    fn rule(name: &str) -> Rules {
        let spec: Vec<Spec> = SPECS
            .iter()
            .filter(|s| s.name == name)
            .map(|s| Spec {
                name: s.name,
                pattern: s.pattern,
                replacement: s.replacement,
            })
            .collect();
        assert_eq!(spec.len(), 1, "{name}");
        compile(&spec)
    }

    #[test]
    fn every_rule_compiles() {
        assert!(check().is_ok(), "{:?}", check());
        assert!(compile(SPECS).is_ok());
    }

    #[test]
    fn every_rule_has_a_positive_and_an_untouched_case() {
        for spec in SPECS {
            assert!(
                REDACTS.iter().any(|(r, _, _)| *r == spec.name),
                "{} has no case it redacts",
                spec.name
            );
            assert!(
                UNTOUCHED.iter().any(|(r, _)| *r == spec.name),
                "{} has no case it leaves alone",
                spec.name
            );
        }
    }

    #[test]
    fn each_rule_redacts_its_own_cases() {
        for (name, input, expected) in REDACTS {
            let alone = redact_with(&rule(name), input);
            assert_ne!(alone, *input, "rule {name} alone did nothing to {input:?}");
            assert_eq!(redact(input), *expected, "rule {name}, input {input:?}");
        }
    }

    #[test]
    fn texts_without_credentials_are_untouched() {
        for (name, input) in UNTOUCHED {
            assert_eq!(redact_with(&rule(name), input), *input, "rule {name}");
            assert_eq!(redact(input), *input, "all rules, near {name}");
        }
    }

    #[test]
    fn secrets_never_survive() {
        for (_, input, _) in REDACTS {
            let out = redact(input);
            for secret in [
                "hunter2",
                "sk-live-123",
                "sk-li",
                "abc123",
                "ops@example.com",
                "EXOabc",
                "c2lnbmF0dXJl",
                "IQoJ",
                "AKIA",
                "dXNlcjpwYXNz",
                "tok9",
                "0xdeadbeef",
                "12345",
                "xyz",
            ] {
                assert!(!out.contains(secret), "{secret:?} survived in {out:?}");
            }
        }
    }

    #[test]
    fn redaction_is_idempotent() {
        for (_, input, _) in REDACTS {
            let once = redact(input);
            assert_eq!(redact(&once), once, "{input:?}");
        }
    }

    #[test]
    fn secret_key_names() {
        assert!(SECRET_KEY.is_some());
        for name in [
            "password",
            "root_pass",
            "DB_PASSWORD",
            "api_key",
            "X-Auth-Key",
            "client_secret",
            "token",
            "access_token",
        ] {
            assert!(is_secret_key(name), "{name}");
        }
        for name in ["passenger", "tokens", "key", "label", "id", "secretary", ""] {
            assert!(!is_secret_key(name), "{name}");
        }
    }

    #[test]
    fn fails_closed_when_a_pattern_does_not_compile() {
        let broken = [
            Spec {
                name: "good",
                pattern: "token=[^&]+",
                replacement: "token=<redacted>",
            },
            Spec {
                name: "broken",
                pattern: "(unclosed",
                replacement: "",
            },
        ];
        let rules = compile(&broken);
        assert!(
            matches!(&rules, Err(RedactError::Pattern { rule: "broken", .. })),
            "one bad pattern makes the whole set unavailable"
        );
        assert_eq!(redact_with(&rules, "GET /x?token=abc"), UNAVAILABLE);
        assert_eq!(redact_with(&rules, "harmless"), UNAVAILABLE);
        assert_eq!(truncate(redact_with(&rules, "token=abc"), 100), UNAVAILABLE);
        let err = rules.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("broken"), "{err}");
    }

    #[test]
    fn truncates_on_a_char_boundary() {
        let s = "é".repeat(100);
        let t = redact_and_truncate(&s, 11);
        assert!(t.starts_with("ééééé") && t.ends_with("(truncated)"), "{t}");
        assert_eq!(t.len(), 10 + TRUNCATED.len());
        assert_eq!(redact_and_truncate("short", 100), "short");
    }

    #[test]
    fn truncation_never_reveals_what_redaction_hid() {
        let t = redact_and_truncate("x-auth-key: abcdef0123456789 and more text", 20);
        assert!(!t.contains("abcdef"), "{t}");
    }
}
