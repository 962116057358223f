//! Every answer of the Exoscale API this adapter reads, each read by the adapter's own parser and
//! conversion: the entry of the fuzz target and its smoke test (`flotilla-fuzzing`). Not an API for callers.

use std::collections::HashMap;

use flotilla_cloud::http::parse_json;
use flotilla_cloud::{CloudError, Result, Zone};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::P;
use crate::compute::{add_leases, machine};
use crate::dbaas::database;
use crate::dns::record;
use crate::network::{grouped_rules, vpc};
use crate::operation::{outcome, resource_id};
use crate::wire::{
    DbaasService, DbaasServiceList, DnsDomainList, DnsRecordList, Instance, InstanceList, InstanceTypeList,
    Operation, PrivateNetwork, PrivateNetworkList, SecurityGroup, SecurityGroupList, TemplateList,
};

/// Reads one answer body as the adapter does; how many neutral values it gave.
type Reader = fn(&[u8]) -> Result<usize>;

/// The zone the adapter drives.
const ZONE: &str = "ch-gva-2";

/// The answers, by name: the body type the adapter parses and the conversion it applies.
const READERS: &[(&str, Reader)] = &[
    ("operation", |b| {
        let op = parse_json::<Operation>(P, b)?;
        match outcome(&op) {
            Some(Ok(())) => resource_id(op).map(one),
            Some(Err(e)) => Err(e),
            None => Ok(0),
        }
    }),
    ("instance", |b| {
        parse_json::<Instance>(P, b).map(|i| one(machine(ZONE, i, &HashMap::new())))
    }),
    ("instances", |b| {
        let list = parse_json::<InstanceList>(P, b)?;
        let none = HashMap::new();
        Ok(each(list.instances, |i| machine(ZONE, i, &none)))
    }),
    ("instance-types", |b| {
        parse_json::<InstanceTypeList>(P, b).map(|l| l.instance_types.len())
    }),
    ("templates", |b| {
        parse_json::<TemplateList>(P, b).map(|l| l.templates.len())
    }),
    ("private-network", |b| {
        let network = parse_json::<PrivateNetwork>(P, b)?;
        let mut ips = HashMap::new();
        add_leases(&mut ips, network.leases.clone());
        Ok(one(vpc(ZONE, network)) + ips.len())
    }),
    ("private-networks", |b| {
        parse_json::<PrivateNetworkList>(P, b).map(|l| each(l.private_networks, |n| vpc(ZONE, n)))
    }),
    ("security-group", |b| {
        parse_json::<SecurityGroup>(P, b).map(|g| grouped_rules(&g).len())
    }),
    ("security-groups", |b| {
        parse_json::<SecurityGroupList>(P, b).map(|l| each(l.security_groups, |g| grouped_rules(&g)))
    }),
    ("dbaas-service", |b| {
        parse_json::<DbaasService>(P, b).map(|s| one(database(ZONE, s)))
    }),
    ("dbaas-services", |b| {
        parse_json::<DbaasServiceList>(P, b).map(|l| each(l.dbaas_services, |s| database(ZONE, s)))
    }),
    ("dns-domains", |b| {
        parse_json::<DnsDomainList>(P, b).map(|l| l.dns_domains.len())
    }),
    ("dns-records", |b| {
        let zone = Zone {
            id: "zone".into(),
            name: "example.com".into(),
        };
        parse_json::<DnsRecordList>(P, b).map(|l| each(l.dns_domain_records, |r| record(&zone, r)))
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

/// The names of the answers [`read`] knows.
pub fn names() -> Vec<&'static str> {
    READERS.iter().map(|(name, _)| *name).collect()
}

/// Reads `body` as the successful answer `name` (one of [`names`]) the way the adapter does: parsed, then
/// converted to the neutral model; how many values (machines, records …) it held. An operation that
/// failed is its error. An unknown name is [`CloudError::Invalid`].
pub fn read(name: &str, body: &[u8]) -> Result<usize> {
    match READERS.iter().find(|(n, _)| *n == name) {
        Some((_, reader)) => reader(body),
        None => Err(CloudError::Invalid {
            provider: P,
            field: None,
            message: format!("no Exoscale answer {name:?}"),
        }),
    }
}

/// A failed answer as the adapter maps it.
pub fn read_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CloudError {
    crate::errors::map_error(P, status, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_reads_an_empty_object_or_says_what_is_missing() {
        for name in names() {
            if let Err(e) = read(name, b"{}") {
                assert!(!e.to_string().contains("no Exoscale answer"), "{name}: {e}");
            }
        }
        assert!(read("nothing", b"{}").is_err());
    }
}
