//! Deserializers for configuration lists, which arrive as arrays from a file and as comma-separated
//! strings from the environment (`FLOTILLA__NATS__URLS=nats://a:4222,nats://b:4222`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<String>),
    Joined(String),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::Joined(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// A list of strings, or one comma-separated string.
pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(OneOrMany::deserialize(d)?.into_vec())
}

/// A list of durations (`"1s"`, `"500ms"`), or one comma-separated string of them.
pub(crate) fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    OneOrMany::deserialize(d)?
        .into_vec()
        .iter()
        .map(|s| humantime::parse_duration(s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}"))))
        .collect()
}
