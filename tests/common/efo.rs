//! Enhanced fan-out on the wire, for tests: a consumer registered and ACTIVE, SubscribeToShard
//! over HTTP/1.1 (chunked), and its event-stream messages decoded with strait's decoder.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strait::protocol::kinesis::eventstream::{decode, Message};

use super::Server;

pub fn setup(s: &Server, stream: &str, shards: u32, consumer: &str) -> String {
    s.ok(
        "CreateStream",
        json!({"StreamName": stream, "ShardCount": shards}),
    );
    let arn = s.ok("DescribeStreamSummary", json!({"StreamName": stream}))
        ["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .unwrap()
        .to_string();
    let c = s.ok(
        "RegisterStreamConsumer",
        json!({"StreamARN": arn, "ConsumerName": consumer}),
    );
    let carn = c["Consumer"]["ConsumerARN"].as_str().unwrap().to_string();
    assert_eq!(c["Consumer"]["ConsumerStatus"], "CREATING");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let d = s.ok("DescribeStreamConsumer", json!({"ConsumerARN": carn}));
        if d["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE" {
            break;
        }
        assert!(Instant::now() < deadline, "consumer never became ACTIVE");
        std::thread::sleep(Duration::from_millis(50));
    }
    carn
}

/// Opens a subscription; returns the connection positioned after the response head, and the
/// status line's code.
pub fn subscribe(s: &Server, content_type: &str, body: &[u8]) -> (u16, TcpStream, Vec<u8>) {
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Amz-Target: Kinesis_20131202.SubscribeToShard\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).unwrap();
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, c, buf)
}

/// Reads a chunked body to its end and decodes the event-stream messages in it.
pub fn read_messages(mut c: TcpStream) -> Vec<Message> {
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let body = dechunk(&raw);
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let (m, used) = decode(&body[at..]).expect("well-formed event-stream message");
        out.push(m);
        at += used;
    }
    out
}

/// The bytes of a chunked HTTP/1.1 body, up to its last chunk.
pub fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut rest = raw;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    body
}

pub fn events(messages: &[Message]) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m.header(":event-type") == Some("SubscribeToShardEvent"))
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect()
}

pub fn sub_body(carn: &str, shard: &str, kind: &str) -> Vec<u8> {
    json!({"ConsumerARN": carn, "ShardId": shard, "StartingPosition": {"Type": kind}})
        .to_string()
        .into_bytes()
}
