//! What the Kinesis pass-through's bodies carry, for the per-stream record and byte counters
//! (`strait_records_in_total` and the rest) that the other backends keep: lean shapes that
//! read stream names, record counts and sizes from the bodies strait forwards as they are,
//! never the data itself. A GetRecords request names no stream (only an opaque iterator), so
//! the iterators the upstream hands out are remembered with the stream they belong to.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

use crate::protocol::kinesis::codec::{self, Protocol};

/// A blob's decoded length: counted from base64 text (JSON) or a byte string (CBOR).
#[derive(Default)]
struct BlobLen(u64);

impl<'de> Deserialize<'de> for BlobLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LenVisitor;
        impl Visitor<'_> for LenVisitor {
            type Value = BlobLen;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a base64 string or a byte string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BlobLen, E> {
                let pad = v.bytes().rev().take_while(|b| *b == b'=').count().min(2);
                Ok(BlobLen((v.len() / 4 * 3).saturating_sub(pad) as u64))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<BlobLen, E> {
                Ok(BlobLen(v.len() as u64))
            }
        }
        d.deserialize_any(LenVisitor)
    }
}

/// A record as the counters see it: its data and partition key bytes (what the other
/// backends count as a record's key and value).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Sized {
    data: BlobLen,
    partition_key: String,
}

impl Sized {
    fn bytes(&self) -> u64 {
        self.data.0 + self.partition_key.len() as u64
    }
}

/// A request body as the counters see it: the stream it names and the records it writes.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RequestBody {
    #[serde(rename = "StreamName")]
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    #[serde(rename = "ShardIterator")]
    shard_iterator: Option<String>,
    /// ListShards's paging token, which stands for the stream it lists.
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
    /// PutRecords's entries.
    #[serde(rename = "Records")]
    records: Vec<Sized>,
    /// PutRecord's one record.
    #[serde(rename = "Data")]
    data: BlobLen,
    #[serde(rename = "PartitionKey")]
    partition_key: String,
}

impl RequestBody {
    fn stream(&self) -> Option<String> {
        self.stream_name.clone().or_else(|| {
            self.stream_arn
                .as_deref()
                .and_then(stream_of_arn)
                .map(str::to_string)
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EntryResult {
    error_code: Option<IgnoredAny>,
    shard_id: Option<String>,
    sequence_number: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PutRecordsOut {
    records: Vec<EntryResult>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IteratorOut {
    shard_iterator: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RecordsOut {
    records: Vec<Sized>,
    next_shard_iterator: Option<String>,
}

/// Records and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub records: u64,
    pub bytes: u64,
}

impl Count {
    fn of<'a>(records: impl Iterator<Item = &'a Sized>) -> Count {
        records.fold(Count::default(), |c, r| Count {
            records: c.records + 1,
            bytes: c.bytes + r.bytes(),
        })
    }
}

/// The stream an ARN names: `arn:aws:kinesis:<region>:<account>:stream/<name>`, with
/// `/consumer/<consumer>:<time>` after it for a stream consumer.
pub fn stream_of_arn(arn: &str) -> Option<&str> {
    let rest = arn.split_once(":stream/")?.1;
    let name = rest.split('/').next().unwrap_or(rest);
    (!name.is_empty()).then_some(name)
}

/// What a request names, for routing it by stream (`split.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    Stream(String),
    /// GetRecords: an iterator, and nothing else.
    Iterator(String),
    /// ListShards's continuation: a paging token, and nothing else.
    PageToken(String),
    Nothing,
}

/// The stream a request acts on (by name, stream ARN or consumer ARN), or what stands for it.
pub fn names(protocol: Protocol, body: &[u8]) -> Names {
    let Ok(b) = codec::decode::<RequestBody>(protocol, body) else {
        return Names::Nothing;
    };
    let consumer = || {
        b.consumer_arn
            .as_deref()
            .and_then(stream_of_arn)
            .map(str::to_string)
    };
    if let Some(stream) = b.stream().or_else(consumer) {
        return Names::Stream(stream);
    }
    match (b.shard_iterator, b.next_token) {
        (Some(it), _) => Names::Iterator(it),
        (None, Some(token)) => Names::PageToken(token),
        (None, None) => Names::Nothing,
    }
}

/// What one forwarded request is, for counting its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A write of `sizes` (one per entry, in order) to `stream`.
    Put { stream: String, sizes: Vec<u64> },
    /// GetShardIterator: the iterator in the answer reads `stream`.
    Iterator { stream: String },
    /// GetRecords with `iterator`.
    Read { iterator: String },
    /// SubscribeToShard: events of `stream`.
    Subscribe { stream: String },
    /// Nothing to count.
    Other,
}

/// Reads what a request's body says about its stream and records; a body that does not
/// decode counts nothing (the upstream answers it with its own error).
pub fn request(op: &str, protocol: Protocol, body: &[u8]) -> Request {
    const COUNTED: &[&str] = &[
        "PutRecord",
        "PutRecords",
        "GetShardIterator",
        "GetRecords",
        "SubscribeToShard",
    ];
    if !COUNTED.contains(&op) {
        return Request::Other;
    }
    let Ok(b) = codec::decode::<RequestBody>(protocol, body) else {
        return Request::Other;
    };
    let (stream, sizes) = match op {
        "PutRecord" => (b.stream(), vec![b.data.0 + b.partition_key.len() as u64]),
        "PutRecords" => (b.stream(), b.records.iter().map(Sized::bytes).collect()),
        "GetShardIterator" => {
            return b
                .stream()
                .map_or(Request::Other, |stream| Request::Iterator { stream })
        }
        "GetRecords" => {
            return b
                .shard_iterator
                .map_or(Request::Other, |iterator| Request::Read { iterator })
        }
        "SubscribeToShard" => {
            return match b.consumer_arn.as_deref().and_then(stream_of_arn) {
                Some(stream) => Request::Subscribe {
                    stream: stream.to_string(),
                },
                None => Request::Other,
            }
        }
        _ => return Request::Other,
    };
    stream.map_or(Request::Other, |stream| Request::Put { stream, sizes })
}

/// The entries a PutRecords answer accepted, of `sizes` sent (PutRecord: the one).
pub fn written(op: &str, protocol: Protocol, sizes: &[u64], answer: &[u8]) -> Count {
    if op == "PutRecord" {
        return Count {
            records: 1,
            bytes: sizes.iter().sum(),
        };
    }
    let Ok(out) = codec::decode::<PutRecordsOut>(protocol, answer) else {
        return Count::default();
    };
    out.records
        .iter()
        .zip(sizes)
        .filter(|(r, _)| r.error_code.is_none())
        .fold(Count::default(), |c, (_, size)| Count {
            records: c.records + 1,
            bytes: c.bytes + size,
        })
}

/// Where a PutRecord or PutRecords answer says its records landed: (shard id, sequence
/// number) of each written record.
pub fn positions(op: &str, protocol: Protocol, answer: &[u8]) -> Vec<(String, String)> {
    if op == "PutRecord" {
        return codec::decode::<EntryResult>(protocol, answer)
            .ok()
            .and_then(|r| r.shard_id.zip(r.sequence_number))
            .into_iter()
            .collect();
    }
    codec::decode::<PutRecordsOut>(protocol, answer)
        .map(|out| {
            out.records
                .into_iter()
                .filter_map(|r| r.shard_id.zip(r.sequence_number))
                .collect()
        })
        .unwrap_or_default()
}

/// GetRecords's answer: what it returned and the iterator to go on with.
pub fn read(protocol: Protocol, answer: &[u8]) -> (Count, Option<String>) {
    match codec::decode::<RecordsOut>(protocol, answer) {
        Ok(out) => (Count::of(out.records.iter()), out.next_shard_iterator),
        Err(_) => (Count::default(), None),
    }
}

/// GetShardIterator's answer: the iterator.
pub fn iterator(protocol: Protocol, answer: &[u8]) -> Option<String> {
    codec::decode::<IteratorOut>(protocol, answer)
        .ok()?
        .shard_iterator
}

/// A SubscribeToShardEvent's payload: its records.
pub fn event(protocol: Protocol, payload: &[u8]) -> Count {
    codec::decode::<RecordsOut>(protocol, payload)
        .map(|out| Count::of(out.records.iter()))
        .unwrap_or_default()
}

/// Which stream each shard iterator the upstream handed out reads. Iterators live five
/// minutes at Kinesis; a reader that has not asked again within that is gone.
pub struct Iterators(moka::sync::Cache<String, Arc<str>>);

impl Default for Iterators {
    fn default() -> Self {
        Iterators(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
        )
    }
}

impl Iterators {
    pub fn remember(&self, iterator: String, stream: Arc<str>) {
        self.0.insert(iterator, stream);
    }

    /// The stream `iterator` reads; `None` for one strait never saw handed out (it was
    /// started before strait was, or through another replica).
    pub fn stream(&self, iterator: &str) -> Option<Arc<str>> {
        self.0.get(iterator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_lengths_from_base64_and_bytes() {
        for (text, len) in [
            ("", 0),
            ("YQ==", 1),
            ("YWI=", 2),
            ("YWJj", 3),
            ("YWJjZA==", 4),
        ] {
            let body = format!(r#"{{"StreamName":"s","Data":"{text}","PartitionKey":"kk"}}"#);
            let Request::Put { sizes, .. } = request("PutRecord", Protocol::Json, body.as_bytes())
            else {
                panic!("{body}")
            };
            assert_eq!(sizes, vec![len + 2], "{text}");
        }
        let mut cbor = Vec::new();
        let value = ciborium::Value::Map(vec![
            ("StreamName".into(), "s".into()),
            ("Data".into(), ciborium::Value::Bytes(vec![1, 2, 3, 4, 5])),
            ("PartitionKey".into(), "k".into()),
        ]);
        ciborium::into_writer(&value, &mut cbor).unwrap();
        assert_eq!(
            request("PutRecord", Protocol::Cbor, &cbor),
            Request::Put {
                stream: "s".into(),
                sizes: vec![6]
            }
        );
    }

    #[test]
    fn put_records_counts_only_accepted_entries() {
        let body = br#"{"StreamARN":"arn:aws:kinesis:us-east-1:1:stream/orders","Records":[
            {"Data":"YWJj","PartitionKey":"a"},{"Data":"YQ==","PartitionKey":"bb"},
            {"Data":"","PartitionKey":"c"}]}"#;
        let Request::Put { stream, sizes } = request("PutRecords", Protocol::Json, body) else {
            panic!()
        };
        assert_eq!(
            (stream.as_str(), sizes.as_slice()),
            ("orders", &[4, 3, 1][..])
        );
        let answer = br#"{"FailedRecordCount":1,"Records":[{"SequenceNumber":"1","ShardId":"s"},
            {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"slow"},
            {"SequenceNumber":"2","ShardId":"s"}]}"#;
        assert_eq!(
            written("PutRecords", Protocol::Json, &sizes, answer),
            Count {
                records: 2,
                bytes: 5
            }
        );
    }

    #[test]
    fn reads_and_events_count_records_and_carry_the_next_iterator() {
        let answer = br#"{"Records":[{"SequenceNumber":"1","Data":"YWJj","PartitionKey":"k",
            "ApproximateArrivalTimestamp":1.5}],"NextShardIterator":"it-2","MillisBehindLatest":0}"#;
        assert_eq!(
            read(Protocol::Json, answer),
            (
                Count {
                    records: 1,
                    bytes: 4
                },
                Some("it-2".to_string())
            )
        );
        assert_eq!(event(Protocol::Json, answer).records, 1);
        assert_eq!(read(Protocol::Json, b"not json"), (Count::default(), None));
    }

    #[test]
    fn streams_from_names_arns_and_consumer_arns() {
        assert_eq!(
            stream_of_arn("arn:aws:kinesis:us-east-1:123:stream/orders/consumer/app:1700000000"),
            Some("orders")
        );
        assert_eq!(stream_of_arn("arn:aws:kinesis:us-east-1:123:stream/"), None);
        assert_eq!(
            request(
                "SubscribeToShard",
                Protocol::Json,
                br#"{"ConsumerARN":"arn:aws:kinesis:r:1:stream/x/consumer/c:1","ShardId":"s"}"#
            ),
            Request::Subscribe { stream: "x".into() }
        );
        assert_eq!(
            request("GetRecords", Protocol::Json, br#"{"ShardIterator":"it"}"#),
            Request::Read {
                iterator: "it".into()
            }
        );
        assert_eq!(
            request("ListShards", Protocol::Json, br#"{"StreamName":"x"}"#),
            Request::Other
        );
    }
}
