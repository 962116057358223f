//! The two wire encodings and the typed errors of decoding.
//!
//! MessagePack is written and read in serde's *human-readable* mode, so ids and timestamps are strings in
//! both encodings (a UUID is `"0190…"`, not 16 raw bytes): a message converted from JSON, or written by
//! another language's MessagePack library, decodes the same.

use crate::Message;

/// Header that names the kind of message in the payload, e.g. `provisioner.apply.v1`.
pub const KIND_HEADER: &str = "Flotilla-Kind";
/// Standard content-type header; `application/json` selects JSON, anything else (or nothing) MessagePack.
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";

/// A payload encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// MessagePack with named fields (the default on the bus).
    #[default]
    MessagePack,
    /// JSON, for operators publishing by hand.
    Json,
}

impl Encoding {
    /// The `Content-Type` value for this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::MessagePack => "application/msgpack",
            Encoding::Json => "application/json",
        }
    }

    /// The encoding a `Content-Type` header selects: JSON for `application/json` (parameters such as
    /// `; charset=utf-8` allowed), MessagePack otherwise.
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        match content_type {
            Some(ct)
                if ct
                    .split(';')
                    .next()
                    .map(str::trim)
                    .is_some_and(|m| m.eq_ignore_ascii_case("application/json")) =>
            {
                Encoding::Json
            }
            _ => Encoding::MessagePack,
        }
    }

    /// The encoding of a payload: what its `Content-Type` says when there is one; without one, JSON when
    /// the payload starts (after whitespace) with `{` or `[`, MessagePack otherwise. A Flotilla message in
    /// MessagePack always starts with a map marker, never with those bytes, so `nats pub` of hand-written
    /// JSON works without a header.
    pub fn detect(content_type: Option<&str>, payload: &[u8]) -> Self {
        if content_type.is_some() {
            return Self::from_content_type(content_type);
        }
        match payload.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{' | b'[') => Encoding::Json,
            _ => Encoding::MessagePack,
        }
    }
}

/// Why a message could not be encoded. Only a bug in a message type can cause it.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// MessagePack encoding failed.
    #[error("cannot encode {kind} as MessagePack: {source}")]
    MessagePack {
        /// The message kind.
        kind: &'static str,
        /// The underlying error.
        source: rmp_serde::encode::Error,
    },
    /// JSON encoding failed.
    #[error("cannot encode {kind} as JSON: {source}")]
    Json {
        /// The message kind.
        kind: &'static str,
        /// The underlying error.
        source: serde_json::Error,
    },
}

/// Why a payload could not be decoded into the expected message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message carried no kind header.
    #[error("message has no {KIND_HEADER} header (expected {expected})")]
    MissingKind {
        /// The kind the reader expected.
        expected: String,
    },
    /// The kind header names a kind the reader does not handle.
    #[error("unknown message kind {found:?} (expected {expected})")]
    UnknownKind {
        /// What the header said.
        found: String,
        /// What the reader handles.
        expected: String,
    },
    /// The payload does not match the message type.
    #[error("invalid {kind} ({encoding}) at `{path}`: {message}")]
    Invalid {
        /// The message kind being decoded.
        kind: &'static str,
        /// `json` or `msgpack`.
        encoding: &'static str,
        /// Path of the offending field, `.` for the top level.
        path: String,
        /// What was wrong there (missing field, wrong type …).
        message: String,
    },
}

/// Encodes `msg` in `encoding`.
pub fn encode<M: Message>(msg: &M, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    match encoding {
        Encoding::MessagePack => {
            let mut buf = Vec::new();
            let mut ser = rmp_serde::Serializer::new(&mut buf)
                .with_struct_map()
                .with_human_readable();
            msg.serialize(&mut ser)
                .map_err(|source| EncodeError::MessagePack {
                    kind: M::KIND,
                    source,
                })?;
            Ok(buf)
        }
        Encoding::Json => serde_json::to_vec(msg).map_err(|source| EncodeError::Json {
            kind: M::KIND,
            source,
        }),
    }
}

/// Decodes a payload that claims to be of `kind` (from [`KIND_HEADER`]) in the encoding
/// [`Encoding::detect`] finds. A kind other than `M::KIND`, or none, is an error: a reader never guesses.
pub fn decode<M: Message>(
    kind: Option<&str>,
    content_type: Option<&str>,
    payload: &[u8],
) -> Result<M, DecodeError> {
    match kind {
        None => Err(DecodeError::MissingKind {
            expected: M::KIND.to_owned(),
        }),
        Some(k) if k != M::KIND => Err(DecodeError::UnknownKind {
            found: k.to_owned(),
            expected: M::KIND.to_owned(),
        }),
        Some(_) => decode_any_kind(Encoding::detect(content_type, payload), payload),
    }
}

/// Decodes a payload as `M` without looking at a kind header (for request/reply bodies whose subject already
/// fixes the type).
pub fn decode_any_kind<M: Message>(encoding: Encoding, payload: &[u8]) -> Result<M, DecodeError> {
    let invalid = |encoding, path: String, message: String| DecodeError::Invalid {
        kind: M::KIND,
        encoding,
        path: if path.is_empty() { ".".to_owned() } else { path },
        message,
    };
    match encoding {
        Encoding::Json => {
            let mut de = serde_json::Deserializer::from_slice(payload);
            let value: M = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| invalid("json", e.path().to_string(), e.inner().to_string()))?;
            de.end().map_err(|e| invalid("json", ".".into(), e.to_string()))?;
            Ok(value)
        }
        Encoding::MessagePack => {
            let mut unread: &[u8] = payload;
            let mut de = rmp_serde::Deserializer::new(&mut unread).with_human_readable();
            let value: M = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| invalid("msgpack", e.path().to_string(), e.inner().to_string()))?;
            drop(de);
            let rest = unread.len();
            if rest > 0 {
                return Err(invalid(
                    "msgpack",
                    ".".into(),
                    format!("{rest} trailing bytes after the message"),
                ));
            }
            Ok(value)
        }
    }
}

/// Any payload of the bus as a JSON value, whatever its kind, for showing it to people (`flotilla events`,
/// `flotilla dlq show`): the encoding from `content_type`, else detected.
pub fn decode_value(content_type: Option<&str>, payload: &[u8]) -> Result<serde_json::Value, DecodeError> {
    let invalid = |encoding, message: String| DecodeError::Invalid {
        kind: "any",
        encoding,
        path: ".".to_owned(),
        message,
    };
    match Encoding::detect(content_type, payload) {
        Encoding::Json => serde_json::from_slice(payload).map_err(|e| invalid("json", e.to_string())),
        Encoding::MessagePack => {
            rmp_serde::from_slice(payload).map_err(|e| invalid("msgpack", e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_payload_reads_as_a_value_in_either_encoding() {
        let value = serde_json::json!({ "deployment": "shop", "n": 3, "tags": ["a"] });
        let packed = rmp_serde::to_vec_named(&value).unwrap();
        assert_eq!(decode_value(Some("application/msgpack"), &packed).unwrap(), value);
        assert_eq!(decode_value(None, &packed).unwrap(), value);
        let text = serde_json::to_vec(&value).unwrap();
        assert_eq!(decode_value(None, &text).unwrap(), value);
        let e = decode_value(Some("application/json"), b"{not json").unwrap_err();
        assert!(e.to_string().contains("json"), "{e}");
    }

    #[test]
    fn detection_without_a_header() {
        assert_eq!(Encoding::detect(None, b"  {\"a\":1}"), Encoding::Json);
        assert_eq!(Encoding::detect(None, b"[1]"), Encoding::Json);
        assert_eq!(Encoding::detect(None, &[0x82, 0xa1]), Encoding::MessagePack);
        assert_eq!(
            Encoding::detect(Some("application/msgpack"), b"{}"),
            Encoding::MessagePack
        );
    }

    #[test]
    fn content_type_selects_encoding() {
        assert_eq!(Encoding::from_content_type(None), Encoding::MessagePack);
        assert_eq!(
            Encoding::from_content_type(Some("application/msgpack")),
            Encoding::MessagePack
        );
        assert_eq!(
            Encoding::from_content_type(Some("application/json")),
            Encoding::Json
        );
        assert_eq!(
            Encoding::from_content_type(Some("Application/JSON; charset=utf-8")),
            Encoding::Json
        );
        assert_eq!(
            Encoding::from_content_type(Some("text/plain")),
            Encoding::MessagePack
        );
    }
}
