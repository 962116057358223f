//! The fuzz targets of Flotilla, as plain functions of the input bytes: one per kind of outside input a
//! service or the CLI reads.
//!
//! - [`proto`]: a bus message, of every kind `flotilla-proto` defines, in either encoding, with or without
//!   its headers ([`flotilla_proto::decode`], [`flotilla_proto::decode_value`],
//!   [`flotilla_proto::AnyEvent::decode`]).
//! - [`template`]: one to four toolkit templates imported together ([`flotilla_spec::import_templates`],
//!   [`flotilla_spec::Template::parse`]).
//! - [`spec_toml`]: a deployment spec and a secrets file in TOML ([`flotilla_spec::Deployment::from_toml`],
//!   [`flotilla_spec::SecretsFile::from_toml`], [`flotilla_spec::Secrets::from_toml`]).
//! - [`provider_answers`]: an answer of a provider API, successful or failed, read by the adapter's own
//!   readers (each adapter's hidden `answers` module).
//!
//! Each function returns normally for every input; a panic is a bug, either in the code under test or in an
//! oracle this crate checks where a parse succeeds: a decoded message encodes again in both encodings and
//! decodes to an encoding-stable value, and an imported or parsed spec written back to TOML reads back
//! equal. cargo-fuzz drives them from `fuzz/` (see `fuzz/README.md`); the tests of this crate run every
//! file of the committed corpus `fuzz/corpus/<target>/` and random and mutated bytes through them.

use std::fmt::Debug;

use flotilla_proto::{
    AnyEvent, EncodeError, Encoding, Message, decode, decode_any_kind, decode_value, encode,
};
use flotilla_spec::{Deployment, Secrets, SecretsFile, Template, TemplateSource, import_templates};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// A fuzz target: takes any bytes, returns for all of them, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target by the name of its cargo-fuzz target (`fuzz/fuzz_targets/<name>.rs`) and corpus directory
/// (`fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("proto", proto),
    ("template", template),
    ("spec_toml", spec_toml),
    ("provider_answers", provider_answers),
];

/// Decodes a payload claimed to be of kind `M`, and checks what decodes.
type ProtoCheck = fn(Option<&str>, Option<&str>, &[u8]);

macro_rules! kinds {
    ($($t:ident),+ $(,)?) => {
        /// Every message kind, with the check of a payload claimed to be of that kind.
        const KINDS: &[(&str, ProtoCheck)] = &[$((<flotilla_proto::$t as Message>::KIND, check::<flotilla_proto::$t>)),+];
    };
}

kinds!(
    ApplyRegion,
    DestroyRegion,
    MachineChanged,
    RegionApplied,
    CreateMachines,
    DestroyMachine,
    ReplaceMachine,
    ReconcileRegion,
    DbaasReady,
    ListMachines,
    Fleet,
    ShowPlan,
    PlanView,
    CommandRejected,
    ServiceStatusRequest,
    ServiceStatus,
    DesiredDeployment,
    AcceptDeployment,
    WithdrawRegions,
    Accepted,
    MachineRecord,
    ScaleRegion,
    PauseScaling,
    ResumeScaling,
    ProtectMachine,
    MachineHealth,
    ScalingActivity,
    ExplainScaling,
    ScalingStatus,
    ScalingState,
    SetSchedule,
    SetTargetTracking,
    MachineMetric,
    ShowRecords,
    RecordsView,
    FailoverAuthenticator,
    ReconcileRecords,
    RecordsChanged,
    DnsAlarm,
    AuthenticatorMoved,
    HandOver,
    Adopt,
    OwnershipChanged,
    ReconcileFirewalls,
    ShowFirewalls,
    FirewallsView,
    WhyAllowed,
    AllowVerdict,
    ShowMachineRules,
    RuleSet,
    AllowListChanged,
    FirewallChanged,
    ReconcileSync,
    TakeBackup,
    RestoreBackup,
    SyncApplied,
    BackupWritten,
    BucketStamp,
    SyncPasses,
    ShowSync,
    SyncView,
    SyncDryRun,
    SyncDryRunView,
);

/// The kinds [`proto`] decodes, in the order its first input byte picks them (`byte % len`).
pub fn proto_kinds() -> Vec<&'static str> {
    KINDS.iter().map(|(kind, _)| *kind).collect()
}

/// The `Content-Type` a [`proto`] input's second byte gives (its two low bits): none (the encoding is
/// detected), JSON, MessagePack, or JSON with parameters.
pub fn proto_content_type(flags: u8) -> Option<&'static str> {
    match flags & 0b11 {
        0 => None,
        1 => Some("application/json"),
        2 => Some("application/msgpack"),
        _ => Some("Application/JSON; charset=utf-8"),
    }
}

/// Set in a [`proto`] input's second byte: the message comes without its `Flotilla-Kind` header.
pub const PROTO_NO_KIND: u8 = 0b100;

/// A bus message: byte 0 picks the kind ([`proto_kinds`]), byte 1 the headers ([`proto_content_type`],
/// [`PROTO_NO_KIND`]), the rest is the payload.
///
/// The payload is decoded as that kind, as an event by its kind header, and as a value for display. A
/// message that decodes must encode in both encodings, and each encoding must decode again to a message
/// whose encoding is the same bytes: what a service accepts it can forward, store and show.
pub fn proto(data: &[u8]) {
    let [selector, flags, payload @ ..] = data else {
        return;
    };
    let (kind, check) = KINDS[usize::from(*selector) % KINDS.len()];
    let content_type = proto_content_type(*flags);
    let kind_header = (flags & PROTO_NO_KIND == 0).then_some(kind);
    check(kind_header, content_type, payload);
    let typed_event = AnyEvent::decode(kind_header, content_type, payload);
    if let Ok(Some(event)) = typed_event {
        let _ = event.correlation_id();
    }
    let _ = decode_value(content_type, payload).map(|value| value.to_string());
}

/// The check of one kind: see [`proto`].
fn check<M: Message + Debug>(kind: Option<&str>, content_type: Option<&str>, payload: &[u8]) {
    let message = match decode::<M>(kind, content_type, payload) {
        Ok(message) => message,
        Err(e) => {
            // Every error says what it is about.
            assert!(!e.to_string().is_empty(), "an empty decode error for {}", M::KIND);
            return;
        }
    };
    let read_as = Encoding::detect(content_type, payload);
    for encoding in [Encoding::MessagePack, Encoding::Json] {
        if encoding == Encoding::Json && !json_can_carry(&message) {
            continue;
        }
        let bytes = match encode(&message, encoding) {
            Ok(bytes) => bytes,
            // Over the size limit once written out (every defaulted field filled in): refused with an
            // error, which the service reports; not a bug.
            Err(EncodeError::TooLarge { .. }) => continue,
            Err(e) => panic!(
                "{} read from {read_as:?} does not encode as {encoding:?}: {e}",
                M::KIND
            ),
        };
        let again: M = match decode_any_kind(encoding, &bytes) {
            Ok(again) => again,
            Err(e) => panic!(
                "{} read from {read_as:?} encodes as {encoding:?} that does not decode: {e}\n{message:?}",
                M::KIND
            ),
        };
        match encode(&again, encoding) {
            Ok(twice) => assert!(
                twice == bytes,
                "{} read from {read_as:?}: its {encoding:?} encoding changes on a round trip\n{message:?}\n{again:?}",
                M::KIND
            ),
            Err(e) => panic!(
                "{} decoded from its own {encoding:?} does not encode: {e}",
                M::KIND
            ),
        }
    }
}

/// Whether JSON can carry `message`: not when it holds a float that is not finite, which MessagePack can
/// carry and JSON cannot (serde_json writes `null`). The services check those numbers themselves (the
/// autoscaler refuses a target that is not a finite positive number and ignores such a sample).
fn json_can_carry<M: Message>(message: &M) -> bool {
    match encode(message, Encoding::MessagePack) {
        Ok(bytes) => rmp_serde::from_slice::<AllFinite>(&bytes).is_ok_and(|all| all.0),
        Err(_) => true,
    }
}

/// Any MessagePack value, read only to learn whether every float in it is finite.
struct AllFinite(bool);

impl<'de> serde::Deserialize<'de> for AllFinite {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AllFiniteVisitor)
    }
}

/// The visitor of [`AllFinite`]: every value is accepted; floats are looked at, containers walked.
struct AllFiniteVisitor;

impl<'de> serde::de::Visitor<'de> for AllFiniteVisitor {
    type Value = AllFinite;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<AllFinite, E> {
        Ok(AllFinite(true))
    }
    fn visit_i64<E>(self, _: i64) -> Result<AllFinite, E> {
        Ok(AllFinite(true))
    }
    fn visit_u64<E>(self, _: u64) -> Result<AllFinite, E> {
        Ok(AllFinite(true))
    }
    fn visit_f32<E>(self, v: f32) -> Result<AllFinite, E> {
        Ok(AllFinite(v.is_finite()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<AllFinite, E> {
        Ok(AllFinite(v.is_finite()))
    }
    fn visit_str<E>(self, _: &str) -> Result<AllFinite, E> {
        Ok(AllFinite(true))
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<AllFinite, E> {
        Ok(AllFinite(true))
    }
    fn visit_unit<E>(self) -> Result<AllFinite, E> {
        Ok(AllFinite(true))
    }
    fn visit_none<E>(self) -> Result<AllFinite, E> {
        Ok(AllFinite(true))
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<AllFinite, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<AllFinite, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<AllFinite, A::Error> {
        let mut all = true;
        while let Some(AllFinite(finite)) = seq.next_element()? {
            all &= finite;
        }
        Ok(AllFinite(all))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AllFinite, A::Error> {
        let mut all = true;
        while let Some((AllFinite(key), AllFinite(value))) = map.next_entry()? {
            all &= key && value;
        }
        Ok(AllFinite(all))
    }
}

/// Separates the templates of one [`template`] input (a form feed, which no template holds).
pub const TEMPLATE_SEPARATOR: char = '\u{c}';

/// Toolkit templates: the input (decoded leniently as UTF-8) split at [`TEMPLATE_SEPARATOR`] into one to
/// four templates, each parsed alone and all imported together.
///
/// An import that succeeds must write a spec that [`Deployment::from_toml`] reads back equal (the same
/// rules hold for both), and a secrets file that [`SecretsFile::from_toml`] reads back equal: what
/// `flotilla template import` writes, `flotilla deploy` and the services read.
pub fn template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let sources: Vec<TemplateSource> = text
        .split(TEMPLATE_SEPARATOR)
        .take(4)
        .enumerate()
        .map(|(i, text)| TemplateSource::new(format!("region-{i}.tmpl"), text))
        .collect();
    for source in &sources {
        let (parsed, diagnostics) = Template::parse(&source.name, &source.text);
        for assignment in parsed.assignments() {
            assert!(
                parsed.get(&assignment.key) == Some(assignment),
                "{}: the effective assignment of {:?} is not the one found by its key",
                source.name,
                assignment.key
            );
        }
        let _ = diagnostics.iter().map(ToString::to_string).count();
    }
    let import = match import_templates(&sources) {
        Ok(import) => import,
        Err(diagnostics) => {
            assert!(
                diagnostics.has_errors(),
                "an import refused without an error:\n{diagnostics}"
            );
            return;
        }
    };
    let spec = match import.deployment.to_toml() {
        Ok(spec) => spec,
        Err(e) => panic!("an imported deployment does not write as TOML: {e}"),
    };
    match Deployment::from_toml(&spec) {
        Ok(back) => assert!(
            back == import.deployment,
            "an imported deployment reads back different from its TOML:\n{spec}"
        ),
        Err(e) => panic!("an imported deployment's TOML does not read back: {e}\n{spec}"),
    }
    let secrets = import.secrets_file();
    secrets_read_back(&secrets);
}

/// A deployment spec and a secrets file: the input (decoded leniently as UTF-8) read as a
/// [`Deployment`], a [`SecretsFile`] and one deployment's [`Secrets`]. Whatever reads must write back
/// to TOML that reads back equal.
pub fn spec_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(deployment) = Deployment::from_toml(&text) {
        match deployment.to_toml() {
            Ok(spec) => match Deployment::from_toml(&spec) {
                Ok(back) => assert!(back == deployment, "a spec reads back different:\n{spec}"),
                Err(e) => panic!("a spec written back does not read: {e}\n{spec}"),
            },
            Err(e) => panic!("a spec that reads does not write: {e}"),
        }
    }
    if let Ok(file) = SecretsFile::from_toml(&text) {
        secrets_read_back(&file);
    }
    if let Ok(secrets) = Secrets::from_toml(&text) {
        match secrets.to_toml() {
            Ok(written) => match Secrets::from_toml(&written) {
                Ok(back) => assert!(back == secrets, "secrets read back different"),
                Err(e) => panic!("secrets written back do not read: {e}"),
            },
            Err(e) => panic!("secrets that read do not write: {e}"),
        }
    }
}

/// A secrets file written and read back equal (the values are never printed).
fn secrets_read_back(file: &SecretsFile) {
    match file.to_toml() {
        Ok(written) => match SecretsFile::from_toml(&written) {
            Ok(back) => assert!(&back == file, "a secrets file reads back different"),
            Err(e) => panic!("a secrets file written back does not read: {e}"),
        },
        Err(e) => panic!("a secrets file that reads does not write: {e}"),
    }
}

/// One provider adapter's answer readers: its answer names, its reader, its error mapper.
struct Provider {
    names: fn() -> Vec<&'static str>,
    read: fn(&str, &[u8]) -> flotilla_cloud::Result<usize>,
    read_error: fn(StatusCode, &HeaderMap, &[u8]) -> flotilla_cloud::CloudError,
}

/// The adapters, in the order a [`provider_answers`] input's first byte picks them.
const PROVIDERS: &[(&str, Provider)] = &[
    (
        "linode",
        Provider {
            names: flotilla_linode::answers::names,
            read: flotilla_linode::answers::read,
            read_error: flotilla_linode::answers::read_error,
        },
    ),
    (
        "digitalocean",
        Provider {
            names: flotilla_digitalocean::answers::names,
            read: flotilla_digitalocean::answers::read,
            read_error: flotilla_digitalocean::answers::read_error,
        },
    ),
    (
        "vultr",
        Provider {
            names: flotilla_vultr::answers::names,
            read: flotilla_vultr::answers::read,
            read_error: flotilla_vultr::answers::read_error,
        },
    ),
    (
        "exoscale",
        Provider {
            names: flotilla_exoscale::answers::names,
            read: flotilla_exoscale::answers::read,
            read_error: flotilla_exoscale::answers::read_error,
        },
    ),
    (
        "cloudflare",
        Provider {
            names: flotilla_cloudflare::answers::names,
            read: flotilla_cloudflare::answers::read,
            read_error: flotilla_cloudflare::answers::read_error,
        },
    ),
];

/// The adapters and their answer names, in the order [`provider_answers`] picks them: byte 0 picks the
/// adapter (`byte % 5`), byte 1 the answer (`byte % (names + 1)`, the last being an error answer).
pub fn provider_answer_names() -> Vec<(&'static str, Vec<&'static str>)> {
    PROVIDERS.iter().map(|(name, p)| (*name, (p.names)())).collect()
}

/// Set in an error answer's flags byte: a `Retry-After` header with the first line of the rest.
pub const ANSWER_RETRY_AFTER: u8 = 0b001;
/// Set in an error answer's flags byte: an `X-Maintenance-Mode` header (Linode's maintenance).
pub const ANSWER_MAINTENANCE: u8 = 0b010;
/// Set in an error answer's flags byte: a `ratelimit-reset` header with the first line of the rest
/// (DigitalOcean's).
pub const ANSWER_RATELIMIT_RESET: u8 = 0b100;

/// An answer of a provider API: byte 0 picks the adapter, byte 1 the answer (see
/// [`provider_answer_names`]); for a successful answer the rest is its body. For an error answer, bytes 2
/// and 3 are the status (`100 + big-endian % 500`), byte 4 the headers ([`ANSWER_RETRY_AFTER`],
/// [`ANSWER_MAINTENANCE`], [`ANSWER_RATELIMIT_RESET`]); a header's value is the first line of the rest,
/// when some header is asked for, and the body what follows it.
pub fn provider_answers(data: &[u8]) {
    let [which, answer, rest @ ..] = data else {
        return;
    };
    let (provider_name, provider) = &PROVIDERS[usize::from(*which) % PROVIDERS.len()];
    let names = (provider.names)();
    let pick = usize::from(*answer) % (names.len() + 1);
    if let Some(name) = names.get(pick) {
        match (provider.read)(name, rest) {
            Ok(_) => {}
            Err(e) => assert!(
                !e.to_string().is_empty(),
                "{provider_name} {name}: an empty error"
            ),
        }
        return;
    }
    let [high, low, flags, rest @ ..] = rest else {
        return;
    };
    let code = 100 + u16::from_be_bytes([*high, *low]) % 500;
    let Ok(status) = StatusCode::from_u16(code) else {
        return;
    };
    let mut headers = HeaderMap::new();
    let body = if flags & (ANSWER_RETRY_AFTER | ANSWER_RATELIMIT_RESET | ANSWER_MAINTENANCE) == 0 {
        rest
    } else {
        let (line, body) = match rest.iter().position(|b| *b == b'\n') {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &[][..]),
        };
        if let Ok(value) = HeaderValue::from_bytes(line) {
            for (bit, name) in [
                (ANSWER_RETRY_AFTER, "retry-after"),
                (ANSWER_MAINTENANCE, "x-maintenance-mode"),
                (ANSWER_RATELIMIT_RESET, "ratelimit-reset"),
            ] {
                if flags & bit != 0 {
                    headers.insert(HeaderName::from_static(name), value.clone());
                }
            }
        }
        body
    };
    let error = (provider.read_error)(status, &headers, body);
    assert!(
        !error.to_string().is_empty(),
        "{provider_name}: an empty error for HTTP {code}"
    );
}
