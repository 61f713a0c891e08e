//! The validator against batches written by Kafka's own encoder (every codec) and against the
//! red-team's hand-made ones.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;

use super::*;
use crate::protocol::kafka::record_batch::{reseal, CheckedBatch};

const NOW: i64 = 1_700_000_000_000;

fn limits() -> Limits {
    Limits {
        max_record_bytes: 1 << 20,
        max_decompressed_bytes: 64 << 20,
        now_ms: NOW,
        max_future_ms: 3_600_000,
    }
}

fn kafka_record(i: i64, key: &[u8], value: Vec<u8>) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        sequence: i as i32,
        timestamp: NOW + i,
        key: Some(Bytes::copy_from_slice(key)),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
        delete_horizon: false,
    }
}

/// A batch as Kafka's encoder writes it.
fn encoded(compression: Compression, records: &[Record]) -> CheckedBatch {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
    CheckedBatch::check(buf).unwrap()
}

fn zigzag_varint(v: i64) -> Vec<u8> {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        if z & !0x7f == 0 {
            out.push(z as u8);
            return out;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// One uncompressed record, length first, as a producer writes it.
fn raw_record(offset_delta: i64, ts_delta: i64, key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend(zigzag_varint(ts_delta));
    body.extend(zigzag_varint(offset_delta));
    match key {
        Some(k) => {
            body.extend(zigzag_varint(k.len() as i64));
            body.extend(k);
        }
        None => body.extend(zigzag_varint(-1)),
    }
    body.extend(zigzag_varint(value.len() as i64));
    body.extend(value);
    body.extend(zigzag_varint(0));
    let mut out = zigzag_varint(body.len() as i64);
    out.extend(body);
    out
}

/// A batch around hand-made record bytes, with a valid CRC: what the red team sent.
fn hand_made(attributes: i16, count: i32, records: &[u8]) -> CheckedBatch {
    try_hand_made(attributes, count, records).unwrap()
}

fn try_hand_made(
    attributes: i16,
    count: i32,
    records: &[u8],
) -> Result<CheckedBatch, crate::protocol::kafka::record_batch::BatchError> {
    let mut b = Vec::new();
    b.extend(0i64.to_be_bytes());
    b.extend(((HEADER_LEN - 12 + records.len()) as i32).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.push(2);
    b.extend([0u8; 4]); // CRC, below
    b.extend(attributes.to_be_bytes());
    b.extend((count - 1).to_be_bytes());
    b.extend(NOW.to_be_bytes());
    b.extend(NOW.to_be_bytes());
    b.extend((-1i64).to_be_bytes());
    b.extend((-1i16).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.extend(count.to_be_bytes());
    b.extend(records);
    reseal(&mut b);
    CheckedBatch::check(BytesMut::from(&b[..]))
}

fn keys(batch: &CheckedBatch, limits: &Limits) -> Result<Vec<Vec<u8>>, Refusal> {
    let mut out = Vec::new();
    validate::<()>(batch, limits, |r| {
        out.push(r.key.unwrap_or_default().to_vec());
        Ok(())
    })
    .map_err(|e| match e {
        Stop::Refused(r) => r,
        Stop::Visitor(()) => unreachable!(),
    })?;
    Ok(out)
}

fn refusal(batch: &CheckedBatch, limits: &Limits) -> Refusal {
    keys(batch, limits).expect_err("the batch should be refused")
}

#[test]
fn every_codec_kafka_writes_is_accepted_and_seen_once() {
    let records: Vec<Record> = (0..50)
        .map(|i| kafka_record(i, format!("key-{i}").as_bytes(), vec![i as u8; 300]))
        .collect();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = encoded(compression, &records);
        let seen = keys(&batch, &limits()).unwrap();
        let want: Vec<Vec<u8>> = (0..50).map(|i| format!("key-{i}").into_bytes()).collect();
        assert_eq!(seen, want, "{compression:?}");
        let v = validate::<()>(&batch, &limits(), |_| Ok(())).unwrap();
        assert_eq!(v.max_timestamp, NOW + 49, "{compression:?}");
    }
}

#[test]
fn snappy_without_the_xerial_header_is_accepted() {
    let records = [
        raw_record(0, 0, Some(b"k"), b"v"),
        raw_record(1, 0, None, b"w"),
    ]
    .concat();
    let raw = snap::raw::Encoder::new().compress_vec(&records).unwrap();
    assert_eq!(keys(&hand_made(2, 2, &raw), &limits()).unwrap().len(), 2);
}

#[test]
fn red_team_batches_are_refused() {
    // Long enough that the header's own room check lets a count of 2 through.
    let one = raw_record(0, 0, Some(b"k"), b"value value value value");
    // Garbage after a gzip flag.
    let garbage = hand_made(1, 1, b"this is not gzip at all, not even close");
    assert!(
        matches!(refusal(&garbage, &limits()), Refusal::InvalidRecord(m) if m.contains("gzip"))
    );
    // A record length of 2^30.
    let mut huge = zigzag_varint(1 << 30);
    huge.extend(&one[1..]);
    assert!(
        matches!(refusal(&hand_made(0, 1, &huge), &limits()), Refusal::InvalidRecord(m) if m.contains("declares"))
    );
    // A count that disagrees with the records, both ways.
    assert!(matches!(
        refusal(&hand_made(0, 2, &one), &limits()),
        Refusal::InvalidRecord(_)
    ));
    let two = [one.clone(), raw_record(1, 0, None, b"x")].concat();
    assert!(
        matches!(refusal(&hand_made(0, 1, &two), &limits()), Refusal::InvalidRecord(m) if m.contains("follow"))
    );
    // Unknown codecs.
    for codec in 5..8 {
        assert!(matches!(
            refusal(&hand_made(codec, 1, &one), &limits()),
            Refusal::UnsupportedCompression(_)
        ));
    }
    // A control batch sent by a client.
    assert!(
        matches!(refusal(&hand_made(1 << 5, 1, &one), &limits()), Refusal::InvalidRecord(m) if m.contains("control"))
    );
}

#[test]
fn record_fields_must_add_up() {
    // An offset delta a producer would not write.
    let wrong_delta = [raw_record(0, 0, None, b"a"), raw_record(0, 0, None, b"b")].concat();
    assert!(
        matches!(refusal(&hand_made(0, 2, &wrong_delta), &limits()), Refusal::InvalidRecord(m) if m.contains("offset delta"))
    );
    // A record whose length covers one byte more than its fields.
    let mut long = raw_record(0, 0, None, b"abc");
    long[0] = zigzag_varint((long.len() - 1 + 1) as i64)[0];
    long.push(0);
    assert!(
        matches!(refusal(&hand_made(0, 1, &long), &limits()), Refusal::InvalidRecord(m) if m.contains("after its last field"))
    );
    // A key length of −2, and a varint that never ends.
    let mut bad_key = raw_record(0, 0, None, b"abc");
    bad_key[4] = zigzag_varint(-2)[0];
    assert!(matches!(
        refusal(&hand_made(0, 1, &bad_key), &limits()),
        Refusal::InvalidRecord(_)
    ));
    let endless = [vec![10u8, 0], vec![0xff; 9]].concat();
    assert!(matches!(
        refusal(&hand_made(0, 1, &endless), &limits()),
        Refusal::InvalidRecord(_)
    ));
}

#[test]
fn a_gzip_bomb_is_refused_before_it_is_inflated() {
    // One 16 MiB record of zeros: about 16 KB of gzip.
    let bomb = encoded(
        Compression::Gzip,
        &[kafka_record(0, b"k", vec![0; 16 << 20])],
    );
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    assert!(
        matches!(refusal(&bomb, &limits()), Refusal::TooLarge(m) if m.contains("maximum record size"))
    );
    // Many records each within the record size, together above the decompressed bound.
    let many: Vec<Record> = (0..64)
        .map(|i| kafka_record(i, b"k", vec![0; 512 << 10]))
        .collect();
    let small_bound = Limits {
        max_decompressed_bytes: 8 << 20,
        ..limits()
    };
    let batch = encoded(Compression::Gzip, &many);
    assert!(
        matches!(refusal(&batch, &small_bound), Refusal::TooLarge(m) if m.contains("decompresses"))
    );
    // The same through snappy and lz4.
    for compression in [Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let batch = encoded(compression, &many);
        assert!(
            matches!(refusal(&batch, &small_bound), Refusal::TooLarge(_)),
            "{compression:?}"
        );
    }
}

#[test]
fn a_snappy_preamble_that_lies_is_refused_before_allocating() {
    // A varint preamble declaring 60 MiB, then a few bytes: raw snappy, no xerial header.
    let mut lie = Vec::new();
    let mut n: u64 = 60 << 20;
    while n >= 0x80 {
        lie.push((n as u8) | 0x80);
        n >>= 7;
    }
    lie.push(n as u8);
    lie.extend([0u8; 8]);
    assert!(
        matches!(refusal(&hand_made(2, 1, &lie), &limits()), Refusal::InvalidRecord(m) if m.contains("more than snappy can hold"))
    );
}

#[test]
fn a_record_above_the_stream_record_size_is_too_large() {
    let small = Limits {
        max_record_bytes: 1000,
        ..limits()
    };
    let at_limit = hand_made(0, 1, &raw_record(0, 0, Some(b"k"), &[7; 999]));
    assert!(keys(&at_limit, &small).is_ok());
    let above = hand_made(0, 1, &raw_record(0, 0, Some(b"k"), &[7; 1000]));
    assert!(matches!(refusal(&above, &small), Refusal::TooLarge(_)));
}

#[test]
fn timestamps_ahead_of_the_clock_are_refused_unless_unset() {
    let ahead = hand_made(0, 1, &raw_record(0, 3_600_001, None, b"a"));
    assert!(matches!(
        refusal(&ahead, &limits()),
        Refusal::InvalidTimestamp(_)
    ));
    let just = hand_made(0, 1, &raw_record(0, 3_600_000, None, b"a"));
    assert!(keys(&just, &limits()).is_ok());
    // A client's LogAppendTime bit does not get its records past the check: the topic is
    // CreateTime, and the batch is stored as such.
    let append_time = hand_made(1 << 3, 1, &raw_record(0, 3_600_001, None, b"a"));
    assert!(matches!(
        refusal(&append_time, &limits()),
        Refusal::InvalidTimestamp(_)
    ));
}

#[test]
fn a_visitor_can_stop_validation() {
    let batch = encoded(Compression::Lz4, &[kafka_record(0, b"bad", vec![1])]);
    let got = validate(&batch, &limits(), |r| {
        if r.key == Some(&b"bad"[..]) {
            Err("key")
        } else {
            Ok(())
        }
    });
    assert!(matches!(got, Err(Stop::Visitor("key"))));
}

proptest! {
    /// Whatever the records region holds, under any codec: an answer, never a panic.
    #[test]
    fn arbitrary_records_never_panic(
        codec in 0i16..8,
        count in 1i32..20,
        records in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        // Headers the header parser already refuses never reach the validator.
        if let Ok(batch) = try_hand_made(codec, count, &records) {
            let _ = validate::<()>(&batch, &limits(), |_| Ok(()));
        }
    }

    /// A valid batch with one byte changed (CRC made to hold again): still never a panic.
    #[test]
    fn mutated_batches_never_panic(
        compression in 0usize..5,
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let c = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd][compression];
        let records: Vec<Record> = (0..5).map(|i| kafka_record(i, b"key", vec![i as u8; 40])).collect();
        let good = encoded(c, &records);
        let mut bytes = good.to_vec();
        let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
        bytes[i] ^= xor;
        reseal(&mut bytes);
        let batch = CheckedBatch::check(BytesMut::from(&bytes[..])).unwrap();
        let _ = validate::<()>(&batch, &limits(), |_| Ok(()));
    }
}

/// Found by the fuzz target `kafka_record_batch`: Kafka takes any header key bytes, but
/// strait's readers decode keys as UTF-8, so such a batch would be stored and then unreadable.
#[test]
fn a_header_key_that_is_not_utf8_is_refused() {
    let record = |key: &[u8]| {
        let mut body = vec![0u8];
        body.extend(zigzag_varint(0));
        body.extend(zigzag_varint(0));
        body.extend(zigzag_varint(-1));
        body.extend(zigzag_varint(1));
        body.push(b'v');
        body.extend(zigzag_varint(1));
        body.extend(zigzag_varint(key.len() as i64));
        body.extend(key);
        body.extend(zigzag_varint(-1));
        let mut out = zigzag_varint(body.len() as i64);
        out.extend(body);
        out
    };
    assert!(keys(&hand_made(0, 1, &record(b"trace-id")), &limits()).is_ok());
    let refused = refusal(&hand_made(0, 1, &record(b"\xdbmpty")), &limits());
    assert_eq!(
        refused,
        Refusal::InvalidRecord("record 0 has a header key that is not UTF-8".into())
    );
}

/// Found in review of the fuzz targets: a base timestamp near i64::MIN with a negative delta
/// passed (the sum saturated), and a debug build's reader then overflowed adding them.
#[test]
fn a_timestamp_that_overflows_is_refused() {
    let batch = hand_made(0, 1, &raw_record(0, -10, Some(b"k"), b"v"));
    let mut bytes = batch.into_bytes();
    bytes[27..35].copy_from_slice(&(i64::MIN + 5).to_be_bytes());
    bytes[35..43].copy_from_slice(&(i64::MIN + 5).to_be_bytes());
    reseal(&mut bytes);
    let batch = CheckedBatch::check(bytes).unwrap();
    match refusal(&batch, &limits()) {
        Refusal::InvalidTimestamp(msg) => assert!(msg.contains("overflows"), "{msg}"),
        other => panic!("expected INVALID_TIMESTAMP, got {other:?}"),
    }
}
