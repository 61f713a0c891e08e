//! The consumer protocol's embedded messages (a member's subscription, its assignment), as
//! they travel inside JoinGroup, SyncGroup and DescribeGroups: a version, then the message.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::{Decodable, Encodable, Message};

/// The message and its version; `None` unless the bytes are exactly this message (bytes left
/// over mean another message or version: better untouched than cut short).
pub fn decode<M: Decodable + Message>(bytes: &Bytes) -> Option<(i16, M)> {
    let mut b = bytes.clone();
    if b.remaining() < 2 {
        return None;
    }
    let version = b.get_i16();
    if !(M::VERSIONS.min..=M::VERSIONS.max).contains(&version) {
        return None;
    }
    let m = M::decode(&mut b, version).ok()?;
    b.is_empty().then_some((version, m))
}

pub fn encode<M: Encodable>(version: i16, m: &M) -> Option<Bytes> {
    let mut out = BytesMut::new();
    out.put_i16(version);
    m.encode(&mut out, version).ok()?;
    Some(out.freeze())
}

/// Decodes `bytes`, lets `change` edit the message (false: leave the bytes as they are) and
/// encodes it again at the same version; `None` when nothing changed.
pub fn rewrite<M: Decodable + Encodable + Message>(
    bytes: &Bytes,
    change: impl FnOnce(&mut M) -> bool,
) -> Option<Bytes> {
    let (version, mut m) = decode::<M>(bytes)?;
    if !change(&mut m) {
        return None;
    }
    encode(version, &m)
}
