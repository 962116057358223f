//! Every answer of the Linode API this adapter reads, each read by the adapter's own parser and conversion:
//! the entry of the fuzz target and its smoke test (`flotilla-fuzzing`). Not an API for callers.

use flotilla_cloud::http::parse_json;
use flotilla_cloud::{CloudError, ProviderKind, Result, Zone};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::compute::to_machine;
use crate::database::to_database;
use crate::dns::to_record;
use crate::network::{to_firewall, to_vpc};
use crate::wire::{Database, Device, Domain, Firewall, Instance, InstanceIps, Page, Record, Vpc};

const P: ProviderKind = ProviderKind::Linode;

/// Reads one answer body as the adapter does; how many neutral values it gave.
type Reader = fn(&[u8]) -> Result<usize>;

/// The answers, by name: the body type the adapter parses and the conversion it applies.
const READERS: &[(&str, Reader)] = &[
    ("instance", |b| {
        parse_json::<Instance>(P, b).map(|i| one(to_machine(i, None)))
    }),
    ("instance-ips", |b| {
        // `get_machine` reads the instance, then its addresses: here an instance with nothing else known.
        let instance = Instance {
            id: 1,
            label: String::new(),
            status: String::new(),
            region: String::new(),
            plan: String::new(),
            ipv4: Vec::new(),
            tags: Vec::new(),
            created: None,
        };
        parse_json::<InstanceIps>(P, b).map(|ips| one(to_machine(instance, Some(ips))))
    }),
    ("instances", |b| {
        parse_json::<Page<Instance>>(P, b).map(|p| each(p.data, |i| to_machine(i, None)))
    }),
    ("vpc", |b| parse_json::<Vpc>(P, b).map(|v| one(to_vpc(v)))),
    ("vpcs", |b| {
        parse_json::<Page<Vpc>>(P, b).map(|p| each(p.data, to_vpc))
    }),
    ("firewall", |b| {
        parse_json::<Firewall>(P, b).map(|f| one(to_firewall(f)))
    }),
    ("firewalls", |b| {
        parse_json::<Page<Firewall>>(P, b).map(|p| each(p.data, to_firewall))
    }),
    ("firewall-devices", |b| {
        parse_json::<Page<Device>>(P, b).map(|p| each(p.data, |d| d.entity.linode_id()))
    }),
    ("database", |b| {
        parse_json::<Database>(P, b).map(|d| one(to_database(d)))
    }),
    ("databases", |b| {
        parse_json::<Page<Database>>(P, b).map(|p| each(p.data, to_database))
    }),
    ("domains", |b| {
        parse_json::<Page<Domain>>(P, b).map(|p| p.data.len())
    }),
    ("record", |b| {
        parse_json::<Record>(P, b).map(|r| one(to_record(&zone(), r)))
    }),
    ("records", |b| {
        let zone = zone();
        parse_json::<Page<Record>>(P, b).map(|p| each(p.data, |r| to_record(&zone, r)))
    }),
];

/// One value read.
fn one<T>(_value: T) -> usize {
    1
}

/// Every item converted; how many.
fn each<T, U>(items: Vec<T>, convert: impl Fn(T) -> U) -> usize {
    items.into_iter().map(convert).collect::<Vec<U>>().len()
}

/// The zone records are read in.
fn zone() -> Zone {
    Zone {
        id: "1".into(),
        name: "example.com".into(),
    }
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
            message: format!("no Linode answer {name:?}"),
        }),
    }
}

/// A failed answer as the adapter maps it.
pub fn read_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CloudError {
    crate::error::map_error(P, status, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_reads_an_empty_object_or_says_what_is_missing() {
        for name in names() {
            if let Err(e) = read(name, b"{}") {
                assert!(!e.to_string().contains("no Linode answer"), "{name}: {e}");
            }
        }
        assert!(read("nothing", b"{}").is_err());
    }
}
