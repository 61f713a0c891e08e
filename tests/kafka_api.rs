//! The real binary over the Kafka protocol: frames built with the kafka-protocol crate, checked
//! for the answers Apache Kafka gives, including to bad input.

mod common;

use bytes::{Buf, BufMut, BytesMut};
use common::kafka::{batch, produce, Conn};
use common::Server;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde_json::json;

fn fetch(c: &mut Conn, topic: &str, partition: i32, offset: i64) -> (i16, i64, usize) {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &req);
    let p = &resp.responses[0].partitions[0];
    (
        p.error_code,
        p.high_watermark,
        p.records.as_ref().map_or(0, |r| r.len()),
    )
}

#[test]
fn api_versions_and_downgrade() {
    let s = Server::start();
    let mut c = Conn::open(s.kafka_port);
    let resp: ApiVersionsResponse = c.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("t"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    assert_eq!(resp.error_code, 0);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 11));
    assert!(!resp
        .api_keys
        .iter()
        .any(|k| k.api_key == 71 || k.api_key == 72));
    // An unknown ApiVersions version gets a v0 answer with UNSUPPORTED_VERSION.
    let mut frame = BytesMut::new();
    frame.put_i32(8);
    frame.put_i16(18);
    frame.put_i16(99);
    frame.put_i32(7);
    c.send_raw(&frame);
    let mut resp = c.recv_raw().unwrap();
    assert_eq!(resp.get_i32(), 7);
    let v0 = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(v0.error_code, 35);
    assert!(!v0.api_keys.is_empty());
}

#[test]
fn malformed_frames_close_the_connection() {
    let s = Server::start();
    for frame in [
        // Unknown API key 999.
        {
            let mut f = BytesMut::new();
            f.put_i32(10);
            f.put_i16(999);
            f.put_i16(0);
            f.put_i32(1);
            f.put_i16(-1);
            f
        },
        // Larger than kafka.max_frame_bytes.
        {
            let mut f = BytesMut::new();
            f.put_i32(200 << 20);
            f
        },
        // Negative length.
        {
            let mut f = BytesMut::new();
            f.put_i32(-5);
            f
        },
        // A Metadata request cut short.
        {
            let mut f = BytesMut::new();
            f.put_i32(9);
            f.put_i16(3);
            f.put_i16(9);
            f.put_i32(1);
            f.put_u8(0xff);
            f
        },
    ] {
        let mut c = Conn::open(s.kafka_port);
        c.send_raw(&frame);
        assert!(c.recv_raw().is_none(), "expected a close after {frame:?}");
    }
    // The server is still there.
    let mut c = Conn::open(s.kafka_port);
    let _: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
}

#[test]
fn huge_counts_in_small_requests_do_not_take_the_server_down() {
    let s = Server::start();
    // Metadata v1 whose topic array claims 2^31−1 entries in a 14-byte frame.
    let mut c = Conn::open(s.kafka_port);
    let mut f = BytesMut::new();
    f.put_i32(14);
    f.put_i16(3);
    f.put_i16(1);
    f.put_i32(1);
    f.put_i16(-1);
    f.put_i32(i32::MAX);
    c.send_raw(&f);
    assert!(
        c.recv_raw().is_none(),
        "an undecodable request closes the connection"
    );
    // A produced batch whose record count is huge but whose CRC is right is refused.
    let mut c = Conn::open(s.kafka_port);
    let mut b = BytesMut::from(&batch(&[("k", "v")], None)[..]);
    b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    b[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    s.ok(
        "CreateStream",
        json!({"StreamName": "huge", "ShardCount": 1}),
    );
    // INVALID_RECORD, as Kafka answers a count its batch cannot hold.
    assert_eq!(produce(&mut c, "huge", 0, b.freeze()).0, 87);
    let _: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
}

#[test]
fn topics_and_streams_are_one_namespace() {
    let s = Server::start();
    s.ok(
        "CreateStream",
        json!({"StreamName": "from-kinesis", "ShardCount": 2}),
    );
    let mut c = Conn::open(s.kafka_port);
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(
            ["from-kinesis", "from-kafka"]
                .iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str(n))))
                })
                .collect(),
        ));
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req);
    assert_eq!(resp.topics.len(), 2);
    assert_eq!(resp.topics[0].partitions.len(), 2);
    assert_eq!(
        resp.topics[1].partitions.len(),
        4,
        "auto-created with the default count"
    );
    assert!(!resp.topics[1].topic_id.is_nil());
    let again: MetadataResponse = c.call(ApiKey::Metadata, 12, &req);
    assert_eq!(
        again.topics[1].topic_id, resp.topics[1].topic_id,
        "topic ids are stable"
    );
    let listed = s.ok("ListStreams", json!({}));
    assert_eq!(listed["StreamNames"], json!(["from-kafka", "from-kinesis"]));
}

#[test]
fn produce_checks_crc_and_deduplicates_retries() {
    let s = Server::start();
    s.ok("CreateStream", json!({"StreamName": "p", "ShardCount": 1}));
    let mut c = Conn::open(s.kafka_port);
    let good = batch(&[("k", "v1"), ("k", "v2")], None);
    assert_eq!(produce(&mut c, "p", 0, good.clone()), (0, 0));
    // One flipped byte in the records: CORRUPT_MESSAGE, nothing appended.
    let mut bad = BytesMut::from(&good[..]);
    let n = bad.len();
    bad[n - 1] ^= 0x55;
    assert_eq!(produce(&mut c, "p", 0, bad.freeze()).0, 2);
    assert_eq!(fetch(&mut c, "p", 0, 0).1, 2);
    // Unknown partition.
    assert_eq!(produce(&mut c, "p", 9, good.clone()).0, 3);
    // An idempotent batch sent twice is stored once, at its first offset.
    let idem = batch(&[("k", "a"), ("k", "b"), ("k", "c")], Some((4242, 0, 0)));
    assert_eq!(produce(&mut c, "p", 0, idem.clone()), (0, 2));
    assert_eq!(produce(&mut c, "p", 0, idem), (0, 2));
    assert_eq!(fetch(&mut c, "p", 0, 0).1, 5);
    // A gap in the sequence is refused.
    let gap = batch(&[("k", "x")], Some((4242, 0, 10)));
    assert_eq!(produce(&mut c, "p", 0, gap).0, 45);
    // Reading past the end is OFFSET_OUT_OF_RANGE; at the end is empty.
    assert_eq!(fetch(&mut c, "p", 0, 6).0, 1);
    let (code, hw, bytes) = fetch(&mut c, "p", 0, 5);
    assert_eq!((code, hw, bytes), (0, 5, 0));
    // Kinesis reads the Kafka records too.
    let it = s.ok(
        "GetShardIterator",
        json!({"StreamName": "p", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    let got = s.ok("GetRecords", json!({"ShardIterator": it["ShardIterator"]}));
    assert_eq!(got["Records"].as_array().unwrap().len(), 5);
    assert_eq!(got["Records"][0]["PartitionKey"], "k");
}
