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

/// The largest encoded message, in bytes, in either encoding: [`decode`] and [`decode_any_kind`] refuse a
/// longer payload before parsing a byte of it ([`DecodeError::TooLarge`]), and [`encode`] refuses to make one
/// ([`EncodeError::TooLarge`]), so a service never sends what another would refuse.
///
/// NATS carries up to its `max_payload` (1 MiB by default); this is half of that, and far above any real
/// command: an `ApplyRegion` carrying a deployment of 20 regions with every field filled (three datastores,
/// eight mounted directories and six extra ports per region, the DBaaS, email and repository settings) is
/// 45,480 bytes in JSON and 37,531 in MessagePack, an eleventh of the limit; its desired state in the KV
/// bucket is the same size. The largest answer is bigger: the machines of the scale goal (20 regions of 50
/// webservers, 1,100 machines with the other roles) are 267,810 bytes in JSON and 231,790 in MessagePack:
/// a limit of 256 KiB would refuse them in JSON, this one leaves room for about twice as many. Measured by
/// `the_largest_real_messages_fit_the_size_limit_with_a_wide_margin` in
/// `integration-tests/tests/bad_input.rs`.
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024;

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
    /// Its short name in error messages: `json` or `msgpack`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::MessagePack => "msgpack",
            Encoding::Json => "json",
        }
    }

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

/// Why a message could not be encoded: a bug in a message type, or a message over [`MAX_MESSAGE_BYTES`].
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message is longer than [`MAX_MESSAGE_BYTES`]: no reader would take it.
    #[error(
        "cannot send a {kind} of {size} bytes ({encoding}): it is over the {limit}-byte limit of a message"
    )]
    TooLarge {
        /// The message kind.
        kind: &'static str,
        /// `json` or `msgpack`.
        encoding: &'static str,
        /// Its encoded size.
        size: usize,
        /// [`MAX_MESSAGE_BYTES`].
        limit: usize,
    },
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
    /// The payload is longer than [`MAX_MESSAGE_BYTES`]; it was not parsed.
    #[error("a {kind} of {size} bytes is over the {limit}-byte limit of a message")]
    TooLarge {
        /// The message kind being decoded.
        kind: &'static str,
        /// The payload's size.
        size: usize,
        /// [`MAX_MESSAGE_BYTES`].
        limit: usize,
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

/// Encodes `msg` in `encoding`; refuses a result longer than [`MAX_MESSAGE_BYTES`].
pub fn encode<M: Message>(msg: &M, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    let bytes = encode_unchecked(msg, encoding)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(EncodeError::TooLarge {
            kind: M::KIND,
            encoding: encoding.name(),
            size: bytes.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    Ok(bytes)
}

fn encode_unchecked<M: Message>(msg: &M, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
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
/// fixes the type). A payload longer than [`MAX_MESSAGE_BYTES`] is refused unread.
pub fn decode_any_kind<M: Message>(encoding: Encoding, payload: &[u8]) -> Result<M, DecodeError> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge {
            kind: M::KIND,
            size: payload.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
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
    use crate::{CommandMeta, PauseScaling};

    /// A pause whose reason is `len` bytes long.
    fn pause(len: usize) -> PauseScaling {
        PauseScaling {
            meta: CommandMeta::new("ops:test"),
            deployment: "shop".into(),
            region: "gb-lon".into(),
            reason: "x".repeat(len),
        }
    }

    #[test]
    fn a_message_of_exactly_the_limit_is_read_and_one_byte_more_is_refused_unread() {
        let short = encode(&pause(0), Encoding::Json).unwrap().len();
        let at_limit = encode(&pause(MAX_MESSAGE_BYTES - short), Encoding::Json).unwrap();
        assert_eq!(at_limit.len(), MAX_MESSAGE_BYTES);
        let read: PauseScaling = decode(Some(PauseScaling::KIND), None, &at_limit).unwrap();
        assert_eq!(read.reason.len(), MAX_MESSAGE_BYTES - short);

        // One byte more (whitespace JSON allows) is refused without being parsed, in either encoding.
        let mut over = at_limit.clone();
        over.push(b' ');
        let e = decode::<PauseScaling>(Some(PauseScaling::KIND), None, &over).unwrap_err();
        assert_eq!(
            e,
            DecodeError::TooLarge {
                kind: PauseScaling::KIND,
                size: MAX_MESSAGE_BYTES + 1,
                limit: MAX_MESSAGE_BYTES
            }
        );
        assert_eq!(
            e.to_string(),
            format!(
                "a autoscaler.pause.v1 of {} bytes is over the {MAX_MESSAGE_BYTES}-byte limit of a message",
                MAX_MESSAGE_BYTES + 1
            )
        );
        let garbage = vec![0xc1; MAX_MESSAGE_BYTES + 1];
        for encoding in [Encoding::MessagePack, Encoding::Json] {
            let e = decode_any_kind::<PauseScaling>(encoding, &garbage).unwrap_err();
            assert!(matches!(e, DecodeError::TooLarge { .. }), "{encoding:?}: {e}");
        }
        // The kind is still checked first: a body of another kind is refused as such, whatever its size.
        let e = decode::<PauseScaling>(Some("autoscaler.resume.v1"), None, &garbage).unwrap_err();
        assert!(matches!(e, DecodeError::UnknownKind { .. }), "{e}");
    }

    #[test]
    fn the_encoder_refuses_what_the_decoder_would_refuse() {
        for encoding in [Encoding::MessagePack, Encoding::Json] {
            let e = encode(&pause(MAX_MESSAGE_BYTES), encoding).unwrap_err();
            let EncodeError::TooLarge {
                kind, size, limit, ..
            } = &e
            else {
                panic!("{encoding:?}: {e}");
            };
            assert_eq!((*kind, *limit), (PauseScaling::KIND, MAX_MESSAGE_BYTES));
            assert!(*size > MAX_MESSAGE_BYTES, "{size}");
            let text = e.to_string();
            assert!(
                text.contains("autoscaler.pause.v1")
                    && text.contains(&format!("{size} bytes"))
                    && text.contains(&format!("{MAX_MESSAGE_BYTES}-byte limit")),
                "{text}"
            );
            // Anything the encoder makes, the decoder reads.
            let fits = encode(&pause(MAX_MESSAGE_BYTES / 2), encoding).unwrap();
            let back: PauseScaling = decode_any_kind(encoding, &fits).unwrap();
            assert_eq!(back.reason.len(), MAX_MESSAGE_BYTES / 2);
        }
    }

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
