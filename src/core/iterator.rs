//! Shard iterators: stateless, HMAC-signed tokens naming a stream, a partition and an offset.
//! Owns the token format, signing and expiry. Does not check that the stream still exists;
//! the caller does, using the stream's creation time carried in the token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Kinesis's iterator lifetime: 5 minutes.
pub const ITERATOR_TTL_MS: i64 = 300_000;
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;

/// A position a shard iterator points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorPosition {
    pub stream: String,
    /// The stream's creation time: an iterator of a deleted-and-recreated stream is refused.
    pub stream_created_ms: i64,
    pub partition: u32,
    pub offset: u64,
    pub issued_ms: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum IteratorError {
    /// Not a token this server signed, or altered.
    Invalid,
    /// Older than the lifetime.
    Expired { age_ms: i64 },
}

/// Signs and verifies iterator tokens with one secret key.
pub struct IteratorSigner {
    key: Vec<u8>,
}

impl IteratorSigner {
    pub fn new(key: Vec<u8>) -> Self {
        IteratorSigner { key }
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    pub fn sign(&self, pos: &IteratorPosition) -> String {
        let mut buf = Vec::with_capacity(40 + pos.stream.len());
        buf.push(VERSION);
        buf.extend_from_slice(&pos.issued_ms.to_be_bytes());
        buf.extend_from_slice(&pos.stream_created_ms.to_be_bytes());
        buf.extend_from_slice(&pos.partition.to_be_bytes());
        buf.extend_from_slice(&pos.offset.to_be_bytes());
        buf.extend_from_slice(pos.stream.as_bytes());
        let tag = self.tag(&buf);
        buf.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(buf)
    }

    pub fn verify(&self, token: &str, now_ms: i64) -> Result<IteratorPosition, IteratorError> {
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| IteratorError::Invalid)?;
        const FIXED: usize = 1 + 8 + 8 + 4 + 8;
        if raw.len() < FIXED + TAG_LEN || raw[0] != VERSION {
            return Err(IteratorError::Invalid);
        }
        let (payload, tag) = raw.split_at(raw.len() - TAG_LEN);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(payload);
        mac.verify_truncated_left(tag)
            .map_err(|_| IteratorError::Invalid)?;
        let be64 = |at: usize| i64::from_be_bytes(payload[at..at + 8].try_into().unwrap());
        let issued_ms = be64(1);
        let stream = std::str::from_utf8(&payload[FIXED..])
            .map_err(|_| IteratorError::Invalid)?
            .to_string();
        let pos = IteratorPosition {
            stream,
            stream_created_ms: be64(9),
            partition: u32::from_be_bytes(payload[17..21].try_into().unwrap()),
            offset: be64(21) as u64,
            issued_ms,
        };
        let age_ms = now_ms - issued_ms;
        if age_ms > ITERATOR_TTL_MS {
            return Err(IteratorError::Expired { age_ms });
        }
        Ok(pos)
    }
}

impl IteratorSigner {
    /// Seals an opaque paging token (ListShards and ListStreams NextToken) with the same key.
    /// The first byte keeps tokens and iterators apart.
    pub fn seal(&self, payload: &[u8]) -> String {
        let mut buf = Vec::with_capacity(payload.len() + 1 + TAG_LEN);
        buf.push(0xfe);
        buf.extend_from_slice(payload);
        let tag = self.tag(&buf);
        buf.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// Opens a token from `seal`; `None` when it is foreign or altered.
    pub fn open(&self, token: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() < 1 + TAG_LEN || raw[0] != 0xfe {
            return None;
        }
        let (payload, tag) = raw.split_at(raw.len() - TAG_LEN);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(payload);
        mac.verify_truncated_left(tag).ok()?;
        Some(payload[1..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(issued_ms: i64) -> IteratorPosition {
        IteratorPosition {
            stream: "orders.v1".into(),
            stream_created_ms: 1_700_000_000_000,
            partition: 7,
            offset: 123_456,
            issued_ms,
        }
    }

    #[test]
    fn round_trip_and_length() {
        let s = IteratorSigner::new(b"k".to_vec());
        let t = s.sign(&pos(1000));
        assert_eq!(s.verify(&t, 1000 + ITERATOR_TTL_MS).unwrap(), pos(1000));
        // The longest stream name still fits the API's 512-character limit.
        let mut long = pos(0);
        long.stream = "a".repeat(128);
        assert!(s.sign(&long).len() <= 512);
    }

    #[test]
    fn expired_after_five_minutes() {
        let s = IteratorSigner::new(b"k".to_vec());
        let t = s.sign(&pos(1000));
        assert_eq!(
            s.verify(&t, 1001 + ITERATOR_TTL_MS),
            Err(IteratorError::Expired {
                age_ms: ITERATOR_TTL_MS + 1
            })
        );
    }

    #[test]
    fn tampering_and_foreign_keys_are_refused() {
        let s = IteratorSigner::new(b"k".to_vec());
        let t = s.sign(&pos(1000));
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[20] ^= 1; // the partition
        let forged = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(s.verify(&forged, 1000), Err(IteratorError::Invalid));
        assert_eq!(
            IteratorSigner::new(b"other".to_vec()).verify(&t, 1000),
            Err(IteratorError::Invalid)
        );
        assert_eq!(s.verify("not a token!", 1000), Err(IteratorError::Invalid));
        assert_eq!(s.verify("", 1000), Err(IteratorError::Invalid));
    }

    #[test]
    fn sealed_tokens_round_trip_and_are_not_iterators() {
        let s = IteratorSigner::new(b"k".to_vec());
        let t = s.seal(b"stream|3");
        assert_eq!(s.open(&t).unwrap(), b"stream|3");
        assert_eq!(s.verify(&t, 0), Err(IteratorError::Invalid));
        assert!(s.open(&s.sign(&pos(1))).is_none());
    }
}
