//! Scrubbing credentials out of text that is about to be logged or put on the bus (error messages, URLs).
//!
//! The rules live in `flotilla-redact`, shared with the cloud adapters; this module keeps the old paths
//! (`flotilla_bus::redact::redact`) working. Redaction fails closed: see [`flotilla_redact`].

pub use flotilla_redact::{redact, redact_and_truncate};
