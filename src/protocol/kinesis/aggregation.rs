//! KPL aggregated records (reference §1.12, §4g): magic `F3 89 9A C2`, a protobuf
//! `AggregatedRecord`, and the MD5 of the protobuf bytes. Parsed the way KCL's
//! `AggregatorUtil.deaggregate` accepts them; anything that does not pass every check is not
//! an aggregate and is stored as the plain record it then is.

use bytes::Bytes;
use md5::{Digest, Md5};

pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;
/// Split records may take at most this many times the aggregate's own size: the key table
/// lets a small aggregate name one long key from many records, and each copy costs memory.
const MAX_EXPANSION: usize = 16;

/// One user record inside an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<u128>,
    pub data: Bytes,
}

/// The user records of `data`, or `None` when it is not a well-formed aggregate.
pub fn split(data: &Bytes) -> Option<Vec<UserRecord>> {
    if data.len() <= MAGIC.len() + DIGEST_LEN || data[..4] != MAGIC {
        return None;
    }
    let body = &data[MAGIC.len()..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    let offset = MAGIC.len();
    let mut keys = Vec::new();
    let mut hashes = Vec::new();
    let mut raw_records = Vec::new();
    let mut r = Reader { buf: body, pos: 0 };
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (0, _) => return None,
            (1, LEN) => {
                let key = String::from_utf8(r.bytes()?.to_vec()).ok()?;
                // The same rule as a PutRecords partition key.
                if !(1..=256).contains(&key.chars().count()) {
                    return None;
                }
                keys.push(key);
            }
            (2, LEN) => {
                let s = std::str::from_utf8(r.bytes()?).ok()?;
                hashes.push(parse_hash(s)?);
            }
            (3, LEN) => {
                let len = r.bytes()?.len();
                raw_records.push((offset + r.pos - len, len));
            }
            _ => r.skip(wire)?,
        }
    }
    if raw_records.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(raw_records.len());
    let mut expanded = 0usize;
    for (at, len) in raw_records {
        let mut rec = Reader {
            buf: &data[at..at + len],
            pos: 0,
        };
        let (mut pk, mut ehk, mut value) = (None, None, None);
        while !rec.done() {
            let (field, wire) = rec.key()?;
            match (field, wire) {
                (0, _) => return None,
                (1, VARINT) => pk = Some(rec.varint()?),
                (2, VARINT) => ehk = Some(rec.varint()?),
                (3, LEN) => {
                    let v = rec.bytes()?;
                    let start = at + rec.pos - v.len();
                    value = Some(data.slice(start..start + v.len()));
                }
                _ => rec.skip(wire)?,
            }
        }
        let key = keys.get(usize::try_from(pk?).ok()?)?;
        expanded += key.len() + len;
        if expanded > data.len().saturating_mul(MAX_EXPANSION) {
            return None;
        }
        let partition_key = key.clone();
        let explicit_hash_key = match ehk {
            Some(i) => Some(*hashes.get(usize::try_from(i).ok()?)?),
            None => None,
        };
        out.push(UserRecord {
            partition_key,
            explicit_hash_key,
            data: value?,
        });
    }
    Some(out)
}

/// Encodes user records as one aggregate, the way the KPL writes them: the partition key
/// and explicit hash key tables (each value once), then the records, then the MD5 of the
/// protobuf bytes. A record's sub-sequence number is its index.
pub fn aggregate(records: &[UserRecord]) -> Bytes {
    let mut keys: Vec<&str> = Vec::new();
    let mut hashes: Vec<u128> = Vec::new();
    let index_of = |table_len: usize, found: Option<usize>| found.unwrap_or(table_len) as u64;
    let mut entries = Vec::with_capacity(records.len());
    for r in records {
        let pk = index_of(keys.len(), keys.iter().position(|k| *k == r.partition_key));
        if pk as usize == keys.len() {
            keys.push(&r.partition_key);
        }
        let ehk = r.explicit_hash_key.map(|h| {
            let i = index_of(hashes.len(), hashes.iter().position(|x| *x == h));
            if i as usize == hashes.len() {
                hashes.push(h);
            }
            i
        });
        entries.push((pk, ehk, &r.data));
    }
    let size: usize = records.iter().map(|r| r.data.len() + 16).sum::<usize>()
        + keys.iter().map(|k| k.len() + 4).sum::<usize>();
    let mut body = Vec::with_capacity(size + hashes.len() * 44);
    for k in &keys {
        put_field_bytes(1, k.as_bytes(), &mut body);
    }
    for h in &hashes {
        put_field_bytes(2, h.to_string().as_bytes(), &mut body);
    }
    let mut one = Vec::new();
    for (pk, ehk, data) in entries {
        one.clear();
        put_varint(u64::from(1u8 << 3), &mut one);
        put_varint(pk, &mut one);
        if let Some(e) = ehk {
            put_varint(u64::from(2u8 << 3), &mut one);
            put_varint(e, &mut one);
        }
        put_field_bytes(3, data, &mut one);
        put_field_bytes(3, &one, &mut body);
    }
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    Bytes::from(out)
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_field_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    put_varint(field << 3 | u64::from(LEN), out);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn parse_hash(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// A bounds-checked protobuf reader: every read returns `None` past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return None;
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        Some((k >> 3, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(len)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            VARINT => {
                self.varint()?;
            }
            I64 => self.advance(8)?,
            LEN => {
                self.bytes()?;
            }
            I32 => self.advance(4)?,
            _ => return None,
        }
        Some(())
    }

    fn advance(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        if end > self.buf.len() {
            return None;
        }
        self.pos = end;
        Some(())
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Builds an aggregate as the KPL does: key tables, then records.
    pub fn aggregate_by_hand(
        keys: &[&str],
        hashes: &[&str],
        records: &[(u64, Option<u64>, &[u8])],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        for k in keys {
            put_field_bytes(1, k.as_bytes(), &mut body);
        }
        for h in hashes {
            put_field_bytes(2, h.as_bytes(), &mut body);
        }
        for (pk, ehk, data) in records {
            let mut r = Vec::new();
            put_varint(1 << 3, &mut r);
            put_varint(*pk, &mut r);
            if let Some(e) = ehk {
                put_varint(2 << 3, &mut r);
                put_varint(*e, &mut r);
            }
            put_field_bytes(3, data, &mut r);
            put_field_bytes(3, &r, &mut body);
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&Md5::digest(&body));
        out
    }

    /// Keys "a", "b" and one hash key "1"; records ("a", data1), ("b", ehk "1", data2) and
    /// an empty record. The real KPL's aggregates are checked by the interop suite.
    #[test]
    fn splits_an_aggregate() {
        let agg = aggregate_by_hand(
            &["a", "b"],
            &["1"],
            &[(0, None, b"data1"), (1, Some(0), b"data2"), (0, None, b"")],
        );
        let recs = split(&Bytes::from(agg)).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].partition_key, "a");
        assert_eq!(recs[0].data.as_ref(), b"data1");
        assert_eq!(recs[0].explicit_hash_key, None);
        assert_eq!(recs[1].partition_key, "b");
        assert_eq!(recs[1].explicit_hash_key, Some(1));
        assert_eq!(recs[2].data.as_ref(), b"");
    }

    #[test]
    fn aggregates_encode_as_the_kpl_does_and_split_back() {
        let users = vec![
            UserRecord {
                partition_key: "a".into(),
                explicit_hash_key: None,
                data: Bytes::from_static(b"data1"),
            },
            UserRecord {
                partition_key: "b".into(),
                explicit_hash_key: Some(1),
                data: Bytes::from_static(b"data2"),
            },
            UserRecord {
                partition_key: "a".into(),
                explicit_hash_key: None,
                data: Bytes::new(),
            },
        ];
        // The same bytes as the hand-built KPL layout: keys once each, the hash table, records.
        let by_hand = aggregate_by_hand(
            &["a", "b"],
            &["1"],
            &[(0, None, b"data1"), (1, Some(0), b"data2"), (0, None, b"")],
        );
        let encoded = super::aggregate(&users);
        assert_eq!(encoded.as_ref(), by_hand.as_slice());
        assert_eq!(split(&encoded).unwrap(), users);
    }

    #[test]
    fn malformed_aggregates_are_plain_records() {
        let good = aggregate_by_hand(&["a"], &[], &[(0, None, b"x")]);
        assert!(split(&Bytes::from(good.clone())).is_some());
        // Bad MD5.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(split(&Bytes::from(bad)).is_none());
        // No magic, or too short.
        assert!(split(&Bytes::from_static(b"plain data")).is_none());
        assert!(split(&Bytes::from(MAGIC.to_vec())).is_none());
        // Index past the key table; EHK index with no EHK table; not a decimal EHK.
        for agg in [
            aggregate_by_hand(&["a"], &[], &[(1, None, b"x")]),
            aggregate_by_hand(&["a"], &[], &[(0, Some(0), b"x")]),
            aggregate_by_hand(&["a"], &["12x"], &[(0, Some(0), b"x")]),
            aggregate_by_hand(&["a"], &[], &[]),
            aggregate_by_hand(&[""], &[], &[(0, None, b"x")]),
            aggregate_by_hand(&[&"k".repeat(257)], &[], &[(0, None, b"x")]),
        ] {
            assert!(split(&Bytes::from(agg)).is_none());
        }
        // A truncated protobuf with a valid MD5 of the truncated bytes.
        let mut body = good[4..good.len() - 16].to_vec();
        body.truncate(body.len() - 1);
        let mut t = MAGIC.to_vec();
        t.extend_from_slice(&body);
        t.extend_from_slice(&Md5::digest(&body));
        assert!(split(&Bytes::from(t)).is_none());
    }

    /// One long key named by many tiny records would multiply memory; such an aggregate is
    /// stored as the plain record it then is.
    #[test]
    fn expansion_is_bounded() {
        let key = "k".repeat(256);
        let many: Vec<(u64, Option<u64>, &[u8])> =
            (0..2_000).map(|_| (0, None, &b""[..])).collect();
        assert!(split(&Bytes::from(aggregate_by_hand(&[&key], &[], &many))).is_none());
        let few: Vec<(u64, Option<u64>, &[u8])> = (0..20).map(|_| (0, None, &b"xx"[..])).collect();
        assert_eq!(
            split(&Bytes::from(aggregate_by_hand(&[&key], &[], &few)))
                .unwrap()
                .len(),
            20
        );
    }

    proptest::proptest! {
        /// Arbitrary bytes behind the magic never panic, with or without a matching MD5.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut t = MAGIC.to_vec();
            t.extend_from_slice(&body);
            t.extend_from_slice(&Md5::digest(&body));
            let _ = split(&Bytes::from(t));
        }
    }
}
