//! Every answer of the Vultr API this adapter reads, each read by the adapter's own parser and conversion:
//! the entry of the fuzz target and its smoke test (`flotilla-fuzzing`). Not an API for callers.

use flotilla_cloud::http::parse_json;
use flotilla_cloud::{CloudError, ManagedDatabase, Result, Vpc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::client::{PROVIDER as P, Page, split_page};
use crate::rules::{group, read as read_rule};
use crate::wire::{
    DatabaseEnvelope, DatabasePage, DomainEnvelope, FirewallGroupEnvelope, FirewallGroupPage,
    InstanceEnvelope, InstancePage, RecordEnvelope, RecordPage, RuleEnvelope, RulePage, VpcEnvelope, VpcPage,
};

/// Reads one answer body as the adapter does; how many neutral values it gave.
type Reader = fn(&[u8]) -> Result<usize>;

/// The zone records are read in.
const ZONE: &str = "example.com";

/// The answers, by name: the body type the adapter parses and the conversion it applies.
const READERS: &[(&str, Reader)] = &[
    ("instance", |b| {
        parse_json::<InstanceEnvelope>(P, b).map(|e| one(e.instance.into_machine()))
    }),
    ("instances", |b| page::<InstancePage, _>(b, |i| i.into_machine())),
    ("vpc", |b| {
        parse_json::<VpcEnvelope>(P, b).map(|e| one(Vpc::from(e.vpc)))
    }),
    ("vpcs", |b| page::<VpcPage, _>(b, Vpc::from)),
    ("firewall-group", |b| {
        parse_json::<FirewallGroupEnvelope>(P, b).map(one)
    }),
    ("firewall-groups", |b| page::<FirewallGroupPage, _>(b, |g| g)),
    ("firewall-rule", |b| {
        parse_json::<RuleEnvelope>(P, b).map(|e| group(read_rule(&e.firewall_rule)).len())
    }),
    ("firewall-rules", |b| {
        let (rules, _cursor) = split_page(parse_json::<RulePage>(P, b)?);
        Ok(group(rules.iter().filter_map(read_rule)).len())
    }),
    ("database", |b| {
        parse_json::<DatabaseEnvelope>(P, b).map(|e| one(ManagedDatabase::from(e.database)))
    }),
    ("databases", |b| page::<DatabasePage, _>(b, ManagedDatabase::from)),
    ("domain", |b| parse_json::<DomainEnvelope>(P, b).map(one)),
    ("record", |b| {
        parse_json::<RecordEnvelope>(P, b).map(|e| one(e.record.into_record(ZONE)))
    }),
    ("records", |b| page::<RecordPage, _>(b, |r| r.into_record(ZONE))),
];

/// One value read.
fn one<T>(_value: T) -> usize {
    1
}

/// A page read as the adapter's list does (its items converted, its cursor taken).
fn page<L: Page, U>(body: &[u8], convert: impl Fn(L::Item) -> U) -> Result<usize> {
    let (items, _cursor) = split_page(parse_json::<L>(P, body)?);
    Ok(items.into_iter().map(convert).collect::<Vec<U>>().len())
}

/// The names of the answers [`read`] knows.
pub fn names() -> Vec<&'static str> {
    READERS.iter().map(|(name, _)| *name).collect()
}

/// Reads `body` as the successful answer `name` (one of [`names`]) the way the adapter does: parsed, then
/// converted to the neutral model; how many values (machines, records …) it held. An unknown name is
/// [`CloudError::Invalid`].
pub fn read(name: &str, body: &[u8]) -> Result<usize> {
    match READERS.iter().find(|(n, _)| *n == name) {
        Some((_, reader)) => reader(body),
        None => Err(CloudError::Invalid {
            provider: P,
            field: None,
            message: format!("no Vultr answer {name:?}"),
        }),
    }
}

/// A failed answer as the adapter maps it.
pub fn read_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CloudError {
    crate::client::map_error(P, status, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_reads_an_empty_object_or_says_what_is_missing() {
        for name in names() {
            if let Err(e) = read(name, b"{}") {
                assert!(!e.to_string().contains("no Vultr answer"), "{name}: {e}");
            }
        }
        assert!(read("nothing", b"{}").is_err());
    }
}
