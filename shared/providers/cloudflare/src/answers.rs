//! Every answer of the Cloudflare API this adapter reads, each read by the adapter's own envelope reader
//! and conversion: the entry of the fuzz target and its smoke test (`flotilla-fuzzing`). Not an API for
//! callers.

use flotilla_cloud::{CloudError, DnsRecord, Result};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::P;
use crate::dns::{RECORDS_PER_PAGE, WireRecord, WireZone, ZONES_PER_PAGE, zone_named};
use crate::envelope::{page_of, result_of};

/// Reads one answer body as the adapter does; how many neutral values it gave.
type Reader = fn(&[u8]) -> Result<usize>;

/// The zone looked for (the name the octodns fixtures use).
const ZONE: &str = "unit.tests";

/// The answers, by name: the result type the adapter parses and the conversion it applies.
const READERS: &[(&str, Reader)] = &[
    ("zones", |b| {
        let (zones, _more) = page_of::<WireZone>(P, &HeaderMap::new(), b, 1, ZONES_PER_PAGE)?;
        zone_named(zones, ZONE).map(|zone| usize::from(zone.is_some()))
    }),
    ("records", |b| {
        let (records, _more) = page_of::<WireRecord>(P, &HeaderMap::new(), b, 1, RECORDS_PER_PAGE)?;
        Ok(records.into_iter().map(DnsRecord::from).collect::<Vec<_>>().len())
    }),
    ("record", |b| {
        // `call_for`: an answer without a result is an error.
        match result_of::<WireRecord>(P, &HeaderMap::new(), b)? {
            Some(record) => Ok(usize::from(!DnsRecord::from(record).id.is_empty())),
            None => Err(CloudError::protocol(P, "the answer has no result")),
        }
    }),
    ("any", |b| {
        result_of::<Value>(P, &HeaderMap::new(), b).map(|v| usize::from(v.is_some()))
    }),
];

/// The names of the answers [`read`] knows.
pub fn names() -> Vec<&'static str> {
    READERS.iter().map(|(name, _)| *name).collect()
}

/// Reads `body` as the successful (HTTP 200) answer `name` (one of [`names`]) the way the adapter does:
/// the envelope checked, its result parsed and converted to the neutral model; how many values (records,
/// zones …) it held. An envelope saying `success: false` is its error. An unknown name is
/// [`CloudError::Invalid`].
pub fn read(name: &str, body: &[u8]) -> Result<usize> {
    match READERS.iter().find(|(n, _)| *n == name) {
        Some((_, reader)) => reader(body),
        None => Err(CloudError::Invalid {
            provider: P,
            field: None,
            message: format!("no Cloudflare answer {name:?}"),
        }),
    }
}

/// A failed answer as the adapter maps it.
pub fn read_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CloudError {
    crate::envelope::map_error(P, status, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_reads_an_empty_object_or_says_what_is_missing() {
        for name in names() {
            if let Err(e) = read(name, b"{}") {
                assert!(!e.to_string().contains("no Cloudflare answer"), "{name}: {e}");
            }
        }
        assert!(read("nothing", b"{}").is_err());
    }
}
