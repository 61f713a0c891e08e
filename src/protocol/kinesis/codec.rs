//! The two wire encodings of the Kinesis API: JSON 1.1 and CBOR 1.1 (reference §1.11).
//! Owns body decoding and encoding, and the two shapes whose encoding differs: blobs (base64
//! in JSON, byte strings in CBOR) and timestamps (float seconds in JSON, tag 1 + integer
//! milliseconds in CBOR, as the Java SDK writes them).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A body that does not decode as the operation's input shape (AWS answers
/// SerializationException with this message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Json,
    Cbor,
}

impl Protocol {
    /// The protocol a Content-Type names; `application/json` is accepted as JSON 1.1.
    pub fn from_content_type(ct: &str) -> Option<Protocol> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/x-amz-json-1.1" | "application/x-amz-json-1.0" | "application/json" => {
                Some(Protocol::Json)
            }
            "application/x-amz-cbor-1.1" | "application/cbor" => Some(Protocol::Cbor),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.1",
            Protocol::Cbor => "application/x-amz-cbor-1.1",
        }
    }
}

pub fn decode<T: DeserializeOwned>(protocol: Protocol, body: &[u8]) -> Result<T, DecodeError> {
    match protocol {
        Protocol::Json => {
            let body = if body.iter().all(|b| b.is_ascii_whitespace()) {
                &b"{}"[..]
            } else {
                body
            };
            serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))
        }
        Protocol::Cbor => {
            if body.is_empty() {
                return ciborium::from_reader(&[0xa0u8][..]).map_err(cbor_error);
            }
            ciborium::from_reader(body).map_err(cbor_error)
        }
    }
}

/// ciborium shows its errors with their Rust names (`Semantic(Some(3), "…")`); a client is
/// told what is wrong and where.
fn cbor_error<E>(e: ciborium::de::Error<E>) -> DecodeError {
    use ciborium::de::Error;
    DecodeError(match e {
        Error::Io(_) => "the CBOR body ends before its value does".into(),
        Error::Syntax(at) => format!("malformed CBOR at byte {at}"),
        Error::Semantic(Some(at), why) => format!("{why} (CBOR byte {at})"),
        Error::Semantic(None, why) => why,
        Error::RecursionLimitExceeded => "the CBOR body nests too deeply".into(),
    })
}

pub fn encode<T: Serialize>(protocol: Protocol, value: &T) -> Bytes {
    match protocol {
        Protocol::Json => Bytes::from(serde_json::to_vec(value).expect("responses serialise")),
        Protocol::Cbor => {
            let mut out = Vec::with_capacity(256);
            ciborium::into_writer(value, &mut out).expect("responses serialise");
            Bytes::from(out)
        }
    }
}

/// A binary value (record Data).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Bytes);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a base64 string or a byte string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob, E> {
                STANDARD
                    .decode(v)
                    .map(|b| Blob(Bytes::from(b)))
                    .map_err(|_| E::custom("Base64 encoded value expected for a blob member"))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(Bytes::from(v)))
            }
        }
        d.deserialize_any(BlobVisitor)
    }
}

/// A point in time, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_f64(self.0 as f64 / 1000.0)
        } else {
            ciborium::tag::Required::<i64, 1>(self.0).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            // JSON: epoch seconds, possibly fractional.
            let secs = f64::deserialize(d)?;
            return seconds_to_ms(secs).ok_or_else(|| de::Error::custom("timestamp out of range"));
        }
        // CBOR: tag 1 with integer milliseconds (Java SDK), or float seconds (RFC 8949).
        let v = ciborium::Value::deserialize(d)?;
        let inner = match v {
            ciborium::Value::Tag(_, inner) => *inner,
            other => other,
        };
        match inner {
            ciborium::Value::Integer(i) => i64::try_from(i128::from(i))
                .map(Timestamp)
                .map_err(|_| de::Error::custom("timestamp out of range")),
            ciborium::Value::Float(f) => {
                seconds_to_ms(f).ok_or_else(|| de::Error::custom("timestamp out of range"))
            }
            _ => Err(de::Error::custom("expected a timestamp")),
        }
    }
}

fn seconds_to_ms(secs: f64) -> Option<Timestamp> {
    let ms = (secs * 1000.0).round();
    (ms.is_finite() && ms.abs() < 1e17).then_some(Timestamp(ms as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Shape {
        data: Blob,
        at: Timestamp,
    }

    fn sample() -> Shape {
        Shape {
            data: Blob(Bytes::from_static(b"hi\x00")),
            at: Timestamp(1_700_000_000_123),
        }
    }

    #[test]
    fn cbor_errors_say_what_and_where_without_rust_names() {
        for bad in [&b"\xa1"[..], b"\xff\xff", b"\x01", b"\xa1\x64Data\x01"] {
            let e = decode::<Shape>(Protocol::Cbor, bad).unwrap_err().0;
            assert!(
                !e.contains("Semantic") && !e.contains("Syntax") && !e.contains("Io("),
                "{bad:?}: {e}"
            );
            assert!(!e.is_empty());
        }
    }

    #[test]
    fn json_uses_base64_and_float_seconds() {
        let out = encode(Protocol::Json, &sample());
        assert_eq!(&out[..], br#"{"Data":"aGkA","At":1700000000.123}"#);
        let back: Shape = decode(Protocol::Json, &out).unwrap();
        assert_eq!(back, sample());
        let ints: Shape = decode(Protocol::Json, br#"{"Data":"","At":1700000000}"#).unwrap();
        assert_eq!(ints.at, Timestamp(1_700_000_000_000));
    }

    #[test]
    fn cbor_uses_byte_strings_and_tag1_millis() {
        let out = encode(Protocol::Cbor, &sample());
        // map(2) "Data" bytes(3) … "At" tag(1) uint64
        let golden: &[u8] = &[
            0xa2, 0x64, b'D', b'a', b't', b'a', 0x43, b'h', b'i', 0x00, 0x62, b'A', b't', 0xc1,
            0x1b, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b,
        ];
        assert_eq!(&out[..], golden);
        let back: Shape = decode(Protocol::Cbor, &out).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn bad_bodies_are_decode_errors() {
        let e = decode::<Shape>(Protocol::Json, b"{nope").unwrap_err();
        assert!(e.0.contains("key must be a string"), "{e:?}");
        let e = decode::<Shape>(Protocol::Json, br#"{"Data":"@@@","At":1}"#).unwrap_err();
        assert!(!e.0.is_empty());
        let e = decode::<Shape>(Protocol::Cbor, &[0xff, 0x00]).unwrap_err();
        assert!(!e.0.is_empty());
    }
}
