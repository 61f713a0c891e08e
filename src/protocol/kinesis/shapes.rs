//! Request and response shapes of the Kinesis operations strait both serves and calls as a
//! client: record traffic (PutRecord, PutRecords, GetShardIterator, GetRecords) and shard
//! listing (ListShards). Fields are public and every shape encodes and decodes both ways,
//! so a server reads what a client writes with the same types; absent members are left out
//! of the encoding, as the AWS SDKs leave them out.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::codec::{Blob, Timestamp};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutRecordInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Blob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explicit_hash_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number_for_ordering: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutRecordOutput {
    pub shard_id: String,
    pub sequence_number: String,
    pub encryption_type: Cow<'static, str>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutRecordsRequestEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Blob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explicit_hash_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutRecordsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<PutRecordsRequestEntry>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutRecordsResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutRecordsOutput {
    pub failed_record_count: usize,
    pub records: Vec<PutRecordsResultEntry>,
    pub encryption_type: Cow<'static, str>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetShardIteratorInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_iterator_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetShardIteratorOutput {
    pub shard_iterator: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetRecordsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_iterator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Record {
    pub sequence_number: String,
    pub approximate_arrival_timestamp: Timestamp,
    pub data: Blob,
    pub partition_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<Cow<'static, str>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChildShard {
    pub shard_id: String,
    pub parent_shards: Vec<String>,
    pub hash_key_range: HashKeyRange,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetRecordsOutput {
    pub records: Vec<Record>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_shard_iterator: Option<String>,
    pub millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub child_shards: Vec<ChildShard>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HashKeyRange {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SequenceNumberRange {
    pub starting_sequence_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Shard {
    pub shard_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    pub hash_key_range: HashKeyRange,
    pub sequence_number_range: SequenceNumberRange,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ShardFilter {
    #[serde(rename = "Type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListShardsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_filter: Option<ShardFilter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_creation_timestamp: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListShardsOutput {
    pub shards: Vec<Shard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kinesis::codec::{decode, encode, Protocol};
    use bytes::Bytes;

    /// A client's PutRecords is the AWS API reference's example, and a server reads it back.
    #[test]
    fn put_records_request_as_aws_documents_it() {
        let request = PutRecordsInput {
            stream_name: Some("exampleStreamName".into()),
            records: Some(vec![
                PutRecordsRequestEntry {
                    data: Some(Blob(Bytes::from_static(b"_<data>_0"))),
                    partition_key: Some("partitionKey1".into()),
                    ..Default::default()
                },
                PutRecordsRequestEntry {
                    data: Some(Blob(Bytes::from_static(b"_<data>_1"))),
                    partition_key: Some("partitionKey2".into()),
                    explicit_hash_key: Some("42".into()),
                },
            ]),
            ..Default::default()
        };
        let json = encode(Protocol::Json, &request);
        let want = serde_json::json!({
            "StreamName": "exampleStreamName",
            "Records": [
                {"Data": "XzxkYXRhPl8w", "PartitionKey": "partitionKey1"},
                {"Data": "XzxkYXRhPl8x", "PartitionKey": "partitionKey2", "ExplicitHashKey": "42"}
            ]
        });
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
            want
        );
        for protocol in [Protocol::Json, Protocol::Cbor] {
            let back: PutRecordsInput = decode(protocol, &encode(protocol, &request)).unwrap();
            assert_eq!(back, request);
        }
    }

    /// AWS's GetRecords example answer decodes (no ChildShards member, float-second times).
    #[test]
    fn get_records_answer_as_aws_documents_it() {
        let body = br#"{"MillisBehindLatest": 2100, "NextShardIterator": "AAAAAAAAAAHsW8zCWf9164uy8Epue6WS3w6wmj4a4USt+CNvMd6uXQ+HL5vAJMznqqC0DLKsIjuoiTi1BpT6nW0LN2M2D56zM5H8anHm30Gbri9ua+qaGgj+3XTyvbhpERfrezgLHbPB/rIcVpykJbaSj5tmcXYRmFnqZBEyHwtZYFmh6hvWVFkIwLuMZLMrpWhG5r5hzkE=", "Records": [{"Data": "XzxkYXRhPl8w", "PartitionKey": "partitionKey", "ApproximateArrivalTimestamp": 1.441215410867E9, "SequenceNumber": "21269319989652663814458848515492872193"}]}"#;
        let out: GetRecordsOutput = decode(Protocol::Json, body).unwrap();
        assert_eq!(out.millis_behind_latest, 2100);
        assert!(out.child_shards.is_empty());
        let r = &out.records[0];
        assert_eq!(&r.data.0[..], b"_<data>_0");
        assert_eq!(
            r.approximate_arrival_timestamp,
            Timestamp(1_441_215_410_867)
        );
        assert_eq!(r.sequence_number, "21269319989652663814458848515492872193");
        assert_eq!(r.encryption_type, None);
        // What strait answers decodes into the same shape.
        let again: GetRecordsOutput =
            decode(Protocol::Cbor, &encode(Protocol::Cbor, &out)).unwrap();
        assert_eq!(again, out);
    }
}
