//! Kinesis sequence numbers: the v2 layout (56 digits, 186 bits) carrying a partition and offset.
//! Owns encoding, decoding and ordering. Does not know which stream a number belongs to; the
//! caller checks the shard.
//!
//! Layout, most significant first (reference §4b):
//! `v=2 (4) | shard create secs (36) | partition & 0xF (4) | offset (64) | marker (8) |
//!  record secs (36) | partition (32) | v=2 (4)`.

use std::fmt;

/// What a sequence number points at: a record, or the position just before an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// `pos(X)`: sorts after record X−1 and before record X.
    Position = 0,
    /// `rec(X)`: the record at offset X.
    Record = 1,
}

/// A decoded sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqNo {
    pub partition: u32,
    pub offset: u64,
    pub marker: Marker,
    pub shard_create_secs: u64,
    pub record_secs: u64,
}

const MASK36: u64 = (1 << 36) - 1;

/// A 192-bit unsigned integer as three little-endian u64 limbs, enough for 186 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct U192([u64; 3]);

impl U192 {
    fn to_decimal(self) -> String {
        let mut limbs = self.0;
        let mut chunks = Vec::with_capacity(4);
        const BASE: u128 = 10_000_000_000_000_000_000; // 10^19
        while limbs != [0, 0, 0] {
            let mut rem: u128 = 0;
            for limb in limbs.iter_mut().rev() {
                let cur = (rem << 64) | *limb as u128;
                *limb = (cur / BASE) as u64;
                rem = cur % BASE;
            }
            chunks.push(rem as u64);
        }
        let mut out = String::with_capacity(57);
        match chunks.pop() {
            None => out.push('0'),
            Some(top) => out.push_str(&top.to_string()),
        }
        for c in chunks.iter().rev() {
            out.push_str(&format!("{c:019}"));
        }
        out
    }

    fn from_decimal(s: &str) -> Option<U192> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut limbs = [0u64; 3];
        for b in s.bytes() {
            let mut carry = (b - b'0') as u128;
            for limb in limbs.iter_mut() {
                let cur = *limb as u128 * 10 + carry;
                *limb = cur as u64;
                carry = cur >> 64;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(U192(limbs))
    }

    fn bit_length(self) -> u32 {
        for (i, limb) in self.0.iter().enumerate().rev() {
            if *limb != 0 {
                return 64 * i as u32 + 64 - limb.leading_zeros();
            }
        }
        0
    }
}

impl SeqNo {
    pub fn record(partition: u32, offset: u64, shard_create_secs: u64, record_secs: u64) -> Self {
        SeqNo {
            partition,
            offset,
            marker: Marker::Record,
            shard_create_secs,
            record_secs,
        }
    }

    pub fn position(partition: u32, offset: u64, shard_create_secs: u64) -> Self {
        SeqNo {
            partition,
            offset,
            marker: Marker::Position,
            shard_create_secs,
            record_secs: 0,
        }
    }

    fn to_u192(self) -> U192 {
        let low: u128 = 2
            | (self.partition as u128) << 4
            | ((self.record_secs & MASK36) as u128) << 36
            | (self.marker as u128) << 72
            | ((self.offset & ((1 << 48) - 1)) as u128) << 80;
        let high: u64 = (self.offset >> 48)
            | ((self.partition & 0xf) as u64) << 16
            | (self.shard_create_secs & MASK36) << 20
            | 2 << 56;
        U192([low as u64, (low >> 64) as u64, high])
    }

    /// Parses a decimal sequence number. `None` unless it has the v2 shape strait writes.
    pub fn parse(s: &str) -> Option<SeqNo> {
        let n = U192::from_decimal(s)?;
        if n.bit_length() != 186 {
            return None;
        }
        let [l0, l1, high] = n.0;
        let low = (l1 as u128) << 64 | l0 as u128;
        if low & 0xf != 2 || (high >> 56) & 0xf != 2 {
            return None;
        }
        let partition = ((low >> 4) & 0xffff_ffff) as u32;
        let marker = match (low >> 72) & 0xff {
            0 => Marker::Position,
            1 => Marker::Record,
            _ => return None,
        };
        if (high >> 16) & 0xf != (partition & 0xf) as u64 {
            return None;
        }
        Some(SeqNo {
            partition,
            offset: ((low >> 80) as u64) | (high & 0xffff) << 48,
            marker,
            shard_create_secs: (high >> 20) & MASK36,
            record_secs: ((low >> 36) as u64) & MASK36,
        })
    }

    /// The first offset an `AT_SEQUENCE_NUMBER` iterator reads.
    pub fn at_offset(&self) -> u64 {
        self.offset
    }

    /// The first offset an `AFTER_SEQUENCE_NUMBER` iterator reads.
    pub fn after_offset(&self) -> u64 {
        match self.marker {
            Marker::Record => self.offset + 1,
            Marker::Position => self.offset,
        }
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_u192().to_decimal())
    }
}

/// Validates the API's `0|([1-9]\d{0,128})` shape for sequence numbers.
pub fn is_decimal_sequence(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 129
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: u64 = 1_700_000_000;

    #[test]
    fn golden_vector_from_reference() {
        // check_mapping.py: encode(3, 42, create, create + 5)
        let s = SeqNo::record(3, 42, CREATE, CREATE + 5).to_string();
        assert_eq!(
            s,
            "49646437577175378652512468275301316187193672399373467698"
        );
        let d = SeqNo::parse(&s).unwrap();
        assert_eq!((d.partition, d.offset, d.marker), (3, 42, Marker::Record));
        assert_eq!(d.shard_create_secs, CREATE);
        assert_eq!(d.record_secs, CREATE + 5);
    }

    #[test]
    fn real_aws_numbers_decode_to_their_shards() {
        // Public AWS sequence numbers (reference §1.4): shard index in bits 4..36.
        let aws = SeqNo::parse("49546986683135544286507457936321625675700192471156785154").unwrap();
        assert_eq!(aws.partition, 0);
        let lambda = SeqNo::parse("49628566489653659107048838082246518393102916603510521906");
        assert_eq!(lambda.unwrap().partition, 3);
    }

    #[test]
    fn shape_and_order() {
        let seqs: Vec<String> = (0..5000u64)
            .step_by(7)
            .map(|o| SeqNo::record(3, o, CREATE, CREATE + o).to_string())
            .collect();
        for w in seqs.windows(2) {
            assert_eq!(w[0].len(), 56);
            let a = U192::from_decimal(&w[0]).unwrap();
            let b = U192::from_decimal(&w[1]).unwrap();
            assert_eq!(a.bit_length(), 186);
            assert!(a.0.iter().rev().cmp(b.0.iter().rev()).is_lt());
        }
        // rec(X−1) < pos(X) < rec(X)
        for x in [1u64, 10, 99] {
            let v = |s: SeqNo| U192::from_decimal(&s.to_string()).unwrap().0;
            let lt = |a: [u64; 3], b: [u64; 3]| a.iter().rev().cmp(b.iter().rev()).is_lt();
            let prev = v(SeqNo::record(3, x - 1, CREATE, CREATE + 999));
            let pos = v(SeqNo::position(3, x, CREATE));
            let rec = v(SeqNo::record(3, x, CREATE, 0));
            assert!(lt(prev, pos) && lt(pos, rec));
        }
    }

    #[test]
    fn at_and_after() {
        let rec = SeqNo::record(1, 10, CREATE, CREATE);
        assert_eq!((rec.at_offset(), rec.after_offset()), (10, 11));
        let pos = SeqNo::position(1, 10, CREATE);
        assert_eq!((pos.at_offset(), pos.after_offset()), (10, 10));
    }

    #[test]
    fn rejects_foreign_shapes() {
        assert!(SeqNo::parse("0").is_none());
        assert!(SeqNo::parse("12345").is_none());
        assert!(SeqNo::parse("abc").is_none());
        assert!(SeqNo::parse(&"9".repeat(60)).is_none());
        assert!(is_decimal_sequence("0"));
        assert!(!is_decimal_sequence("01"));
        assert!(!is_decimal_sequence("1a"));
    }

    proptest::proptest! {
        #[test]
        fn round_trips(p in 0u32.., off in 0u64.., c in 0u64..(1 << 36), r in 0u64..(1 << 36), rec: bool) {
            // partitions must keep the top bit pattern: creation secs > 0 keeps 186 bits
            let c = c | (1 << 35);
            let s = if rec { SeqNo::record(p, off, c, r) } else { SeqNo::position(p, off, c) };
            let d = SeqNo::parse(&s.to_string()).unwrap();
            proptest::prop_assert_eq!(d, s);
        }
    }
}
