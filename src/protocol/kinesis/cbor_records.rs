//! Direct CBOR for the record traffic of a Kinesis client: the PutRecords request written,
//! and the answers it reads most read (the records of a SubscribeToShardEvent or GetRecords
//! answer, PutRecords' result entries). Through serde, ciborium spent about a sixth of
//! strait's CPU on them when strait reads a stream by enhanced fan-out; here record data is
//! sliced from the body, not copied, and field names are compared as bytes. Anything outside
//! those shapes (indefinite lengths, a field of an unexpected type, child shards) gives
//! `None`, and the caller decodes through serde, which says what is wrong.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

use super::codec::{Blob, Timestamp};
use super::shapes::{
    GetRecordsOutput, PutRecordsOutput, PutRecordsRequestEntry, PutRecordsResultEntry, Record,
};

/// Items nest no deeper than this in the shapes read here; deeper ones are someone else's.
const MAX_DEPTH: u32 = 16;
/// Entries reserved for ahead of reading them (PutRecords answers hold at most 500).
const PREALLOCATED: usize = 1024;

/// The fields of a SubscribeToShardEvent or GetRecords answer read here.
#[derive(Debug, Default, PartialEq)]
pub struct RecordsPage {
    pub records: Vec<Record>,
    pub continuation_sequence_number: Option<String>,
    pub next_shard_iterator: Option<String>,
    pub millis_behind_latest: i64,
}

impl From<RecordsPage> for GetRecordsOutput {
    fn from(page: RecordsPage) -> Self {
        GetRecordsOutput {
            records: page.records,
            next_shard_iterator: page.next_shard_iterator,
            millis_behind_latest: page.millis_behind_latest,
            child_shards: Vec::new(),
        }
    }
}

/// A SubscribeToShardEvent or GetRecords answer, unless it names child shards (a shard's
/// last page, read through serde) or strays from the shape.
pub fn records_page(body: &Bytes) -> Option<RecordsPage> {
    let mut r = Reader { buf: body, at: 0 };
    let mut page = RecordsPage::default();
    for _ in 0..r.map_len()? {
        match r.text()? {
            "Records" => {
                let n = r.array_len()?;
                // A count is only a claim until its records are read.
                page.records.reserve(n.min(PREALLOCATED));
                for _ in 0..n {
                    page.records.push(record(&mut r, body)?);
                }
            }
            "ContinuationSequenceNumber" => {
                page.continuation_sequence_number = r.optional(|r| r.text().map(str::to_string))?
            }
            "NextShardIterator" => {
                page.next_shard_iterator = r.optional(|r| r.text().map(str::to_string))?
            }
            "MillisBehindLatest" => page.millis_behind_latest = r.int()?,
            "ChildShards" => {
                if r.array_len()? != 0 {
                    return None;
                }
            }
            _ => r.skip(0)?,
        }
    }
    r.done().then_some(page)
}

fn record(r: &mut Reader, body: &Bytes) -> Option<Record> {
    let mut out = Record::default();
    for _ in 0..r.map_len()? {
        match r.text()? {
            "SequenceNumber" => out.sequence_number = r.text()?.to_string(),
            "ApproximateArrivalTimestamp" => out.approximate_arrival_timestamp = r.timestamp()?,
            "Data" => out.data = Blob(body.slice(r.bytes()?)),
            "PartitionKey" => out.partition_key = r.text()?.to_string(),
            "EncryptionType" => {
                out.encryption_type = r.optional(|r| r.text().map(|t| Cow::Owned(t.into())))?
            }
            _ => r.skip(0)?,
        }
    }
    Some(out)
}

/// A PutRecords request body, as serde writes `PutRecordsInput` (members in its order, absent
/// ones left out).
pub fn put_records_input(stream: &str, entries: &[&PutRecordsRequestEntry]) -> Bytes {
    let size: usize = entries
        .iter()
        .map(|e| {
            48 + e.data.as_ref().map_or(0, |d| d.0.len())
                + e.partition_key.as_ref().map_or(0, String::len)
                + e.explicit_hash_key.as_ref().map_or(0, String::len)
        })
        .sum();
    let mut out = Vec::with_capacity(size + stream.len() + 32);
    head(&mut out, 5, 2);
    text(&mut out, "StreamName");
    text(&mut out, stream);
    text(&mut out, "Records");
    head(&mut out, 4, entries.len() as u64);
    for e in entries {
        let fields = [
            e.data.is_some(),
            e.explicit_hash_key.is_some(),
            e.partition_key.is_some(),
        ];
        head(&mut out, 5, fields.iter().filter(|f| **f).count() as u64);
        if let Some(Blob(data)) = &e.data {
            text(&mut out, "Data");
            head(&mut out, 2, data.len() as u64);
            out.extend_from_slice(data);
        }
        if let Some(h) = &e.explicit_hash_key {
            text(&mut out, "ExplicitHashKey");
            text(&mut out, h);
        }
        if let Some(k) = &e.partition_key {
            text(&mut out, "PartitionKey");
            text(&mut out, k);
        }
    }
    Bytes::from(out)
}

/// An item's head in its shortest form, as ciborium writes it.
fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let major = major << 5;
    match arg {
        0..=23 => out.push(major | arg as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A PutRecords answer, unless it strays from the shape.
pub fn put_records_output(body: &[u8]) -> Option<PutRecordsOutput> {
    let mut r = Reader { buf: body, at: 0 };
    let mut out = PutRecordsOutput::default();
    for _ in 0..r.map_len()? {
        match r.text()? {
            "FailedRecordCount" => out.failed_record_count = usize::try_from(r.int()?).ok()?,
            "Records" => {
                let n = r.array_len()?;
                out.records.reserve(n.min(PREALLOCATED));
                for _ in 0..n {
                    out.records.push(result_entry(&mut r)?);
                }
            }
            "EncryptionType" => {
                out.encryption_type = r
                    .optional(|r| r.text().map(|t| Cow::Owned(t.into())))?
                    .unwrap_or_default()
            }
            _ => r.skip(0)?,
        }
    }
    r.done().then_some(out)
}

fn result_entry(r: &mut Reader) -> Option<PutRecordsResultEntry> {
    let mut out = PutRecordsResultEntry::default();
    for _ in 0..r.map_len()? {
        let text = |r: &mut Reader| r.optional(|r| r.text().map(str::to_string));
        match r.text()? {
            "SequenceNumber" => out.sequence_number = text(r)?,
            "ShardId" => out.shard_id = text(r)?,
            "ErrorCode" => out.error_code = text(r)?.map(Cow::Owned),
            "ErrorMessage" => out.error_message = text(r)?,
            _ => r.skip(0)?,
        }
    }
    Some(out)
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.at == self.buf.len()
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.at).copied()
    }

    /// An item's major type and argument; indefinite lengths are not read here.
    fn head(&mut self) -> Option<(u8, u64)> {
        let first = self.byte()?;
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => info as u64,
            24..=27 => {
                let n = 1usize << (info - 24);
                let bytes = self.buf.get(self.at..self.at + n)?;
                self.at += n;
                bytes.iter().fold(0u64, |v, b| (v << 8) | *b as u64)
            }
            _ => return None,
        };
        Some((major, arg))
    }

    fn len_of(&mut self, major: u8) -> Option<usize> {
        match self.head()? {
            (m, n) if m == major => usize::try_from(n).ok(),
            _ => None,
        }
    }

    fn map_len(&mut self) -> Option<usize> {
        self.len_of(5)
    }

    fn array_len(&mut self) -> Option<usize> {
        self.len_of(4)
    }

    fn span(&mut self, major: u8) -> Option<Range<usize>> {
        let n = self.len_of(major)?;
        let end = self.at.checked_add(n).filter(|e| *e <= self.buf.len())?;
        let span = self.at..end;
        self.at = end;
        Some(span)
    }

    fn text(&mut self) -> Option<&'a str> {
        let span = self.span(3)?;
        std::str::from_utf8(&self.buf[span]).ok()
    }

    fn bytes(&mut self) -> Option<Range<usize>> {
        self.span(2)
    }

    fn int(&mut self) -> Option<i64> {
        match self.head()? {
            (0, n) => i64::try_from(n).ok(),
            (1, n) => i64::try_from(n).ok().map(|n| -1 - n),
            _ => None,
        }
    }

    /// Tag 1 and integer milliseconds, as the AWS SDKs write and read them; float seconds
    /// are left to serde's reading of `Timestamp`.
    fn timestamp(&mut self) -> Option<Timestamp> {
        if self.peek()? == 0xc1 {
            self.at += 1;
        }
        self.int().map(Timestamp)
    }

    /// CBOR null (or undefined) as `None`.
    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if matches!(self.peek()?, 0xf6 | 0xf7) {
            self.at += 1;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// Passes over one whole item of any kind.
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (major, arg) = self.head()?;
        match major {
            0 | 1 | 7 => {}
            2 | 3 => {
                let end = self
                    .at
                    .checked_add(usize::try_from(arg).ok()?)
                    .filter(|e| *e <= self.buf.len())?;
                self.at = end;
            }
            4 => {
                for _ in 0..arg {
                    self.skip(depth + 1)?;
                }
            }
            5 => {
                for _ in 0..arg {
                    self.skip(depth + 1)?;
                    self.skip(depth + 1)?;
                }
            }
            _ => self.skip(depth + 1)?, // a tag and its item
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kinesis::codec::{self, Protocol};
    use crate::protocol::kinesis::shapes::ChildShard;

    fn sample_records() -> Vec<Record> {
        (0..3)
            .map(|i| Record {
                sequence_number: format!("4963{i:052}"),
                approximate_arrival_timestamp: Timestamp(1_700_000_000_123 + i),
                data: Blob(Bytes::from(vec![i as u8, 0xff, 0, b'x'])),
                partition_key: format!("key-{i}"),
                encryption_type: (i == 1).then_some(Cow::Borrowed("NONE")),
            })
            .collect()
    }

    #[test]
    fn a_records_page_reads_as_serde_reads_it() {
        let answer = GetRecordsOutput {
            records: sample_records(),
            next_shard_iterator: Some("AAAA".into()),
            millis_behind_latest: 42,
            child_shards: Vec::new(),
        };
        let body = codec::encode(Protocol::Cbor, &answer);
        let page = records_page(&body).expect("the shape");
        assert_eq!(page.records, answer.records);
        assert_eq!(page.next_shard_iterator.as_deref(), Some("AAAA"));
        assert_eq!(page.millis_behind_latest, 42);
        // Data is a view of the body, not a copy.
        let data = &page.records[0].data.0;
        let inside = body.as_ptr_range();
        assert!(inside.contains(&data.as_ptr()));
    }

    #[test]
    fn an_event_with_a_continuation_and_unknown_fields() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Event {
            records: Vec<Record>,
            continuation_sequence_number: String,
            millis_behind_latest: i64,
            child_shards: Vec<ChildShard>,
            // Fields a newer service may add are passed over.
            future_field: std::collections::BTreeMap<String, Vec<i64>>,
            future_null: Option<u8>,
        }
        let body = codec::encode(
            Protocol::Cbor,
            &Event {
                records: sample_records(),
                continuation_sequence_number: "49".into(),
                millis_behind_latest: 0,
                child_shards: Vec::new(),
                future_field: [("a".to_string(), vec![-5, 1 << 40])].into(),
                future_null: None,
            },
        );
        let page = records_page(&body).expect("the shape");
        assert_eq!(page.records, sample_records());
        assert_eq!(page.continuation_sequence_number.as_deref(), Some("49"));
    }

    #[test]
    fn child_shards_and_strays_are_left_to_serde() {
        let with_children = GetRecordsOutput {
            child_shards: vec![ChildShard::default()],
            ..Default::default()
        };
        let body = codec::encode(Protocol::Cbor, &with_children);
        assert_eq!(records_page(&body), None);
        let whole = codec::encode(
            Protocol::Cbor,
            &GetRecordsOutput {
                records: sample_records(),
                ..Default::default()
            },
        );
        assert!(records_page(&whole).is_some());
        // JSON, a truncated body, a count the body cannot hold, an indefinite map.
        for bad in [
            &b"{\"Records\":[]}"[..],
            &whole[..whole.len() - 1],
            &[
                0xa1, 0x67, b'R', b'e', b'c', b'o', b'r', b'd', b's', 0x9a, 0xff, 0xff, 0xff, 0xff,
            ],
            &[0xbf, 0xff],
        ] {
            assert_eq!(records_page(&Bytes::copy_from_slice(bad)), None, "{bad:?}");
        }
        // Nesting deeper than the reader goes.
        let mut deep = vec![0xa1, 0x61, b'X'];
        deep.extend(std::iter::repeat_n(0x81, 40));
        deep.push(0x00);
        assert_eq!(records_page(&Bytes::from(deep)), None);
    }

    #[test]
    fn a_put_records_request_is_written_as_serde_writes_it() {
        let sizes = [0usize, 1, 23, 24, 255, 256, 65_535, 65_536];
        let entries: Vec<PutRecordsRequestEntry> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| PutRecordsRequestEntry {
                data: Some(Blob(Bytes::from(vec![i as u8; *n]))),
                partition_key: (i != 3).then(|| "k".repeat(i * 40)),
                explicit_hash_key: (i % 2 == 0).then(|| format!("{}", u128::MAX >> i)),
            })
            .chain([PutRecordsRequestEntry::default()])
            .collect();
        for stream in ["s", &"long-stream-name".repeat(8)] {
            let serde = codec::encode(
                Protocol::Cbor,
                &crate::protocol::kinesis::shapes::PutRecordsInput {
                    stream_name: Some(stream.into()),
                    records: Some(entries.clone()),
                    ..Default::default()
                },
            );
            let refs: Vec<&PutRecordsRequestEntry> = entries.iter().collect();
            assert_eq!(put_records_input(stream, &refs), serde);
        }
    }

    #[test]
    fn put_records_results_read_as_serde_reads_them() {
        let answer = PutRecordsOutput {
            failed_record_count: 1,
            records: vec![
                PutRecordsResultEntry {
                    sequence_number: Some("4960".into()),
                    shard_id: Some("shardId-000000000000".into()),
                    ..Default::default()
                },
                PutRecordsResultEntry {
                    error_code: Some(Cow::Borrowed("ProvisionedThroughputExceededException")),
                    error_message: Some("Rate exceeded".into()),
                    ..Default::default()
                },
            ],
            encryption_type: Cow::Borrowed("KMS"),
        };
        let body = codec::encode(Protocol::Cbor, &answer);
        assert_eq!(put_records_output(&body), Some(answer));
        assert_eq!(put_records_output(&body[..body.len() - 2]), None);
    }
}
