//! What the pass-through counts of the Produce and Fetch traffic it forwards, as the embedded
//! backend counts its own: records and bytes per topic (`strait_records_in/out_total`,
//! `strait_bytes_in/out_total`, protocol `kafka`) and each failed partition's error code
//! (`strait_request_errors_total`). Frames are decoded down to their record batches, whose
//! headers give the record counts; records are never inflated. Bytes are the batches' sizes as
//! sent (compressed), not keys and values.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::Decodable;
use parking_lot::Mutex;
use uuid::Uuid;

use super::namespace::Namespace;
use crate::protocol::kafka::frame;
use crate::protocol::kafka::record_batch::parse_stored_header;

/// Topic names by topic id, learned from the Metadata answers clients get: Fetch from v13 and
/// Produce from v13 name topics by id only. Names are the client's (after any prefix is taken
/// off), so they match the streams'.
#[derive(Default)]
pub struct TopicNames(Mutex<HashMap<Uuid, String>>);

impl TopicNames {
    pub fn learn(&self, id: Uuid, name: &str) {
        if id.is_nil() || name.is_empty() {
            return;
        }
        let mut names = self.0.lock();
        if names.get(&id).map(String::as_str) != Some(name) {
            names.insert(id, name.to_string());
        }
    }

    pub fn name(&self, name: &str, id: Uuid) -> Option<String> {
        if !name.is_empty() {
            return Some(name.to_string());
        }
        self.0.lock().get(&id).cloned()
    }

    /// The client's name of a topic a broker's answer names (by name under any prefix, or by
    /// id); None for a topic outside the prefix.
    fn client_name(&self, name: &str, id: Uuid, ns: Option<&Namespace>) -> Option<String> {
        match ns {
            Some(ns) if !name.is_empty() => {
                let mut name = kafka_protocol::protocol::StrBytes::from_string(name.to_string());
                ns.to_client(&mut name).then(|| name.to_string())
            }
            _ => self.name(name, id),
        }
    }
}

/// One partition's batches in a Produce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    topic: String,
    partition: i32,
    records: u64,
    bytes: u64,
}

/// The records and bytes of every batch in `records` (batches of magic 2; a partial batch
/// at the end, as a Fetch may return, and control batches count nothing).
fn batches(mut records: &[u8]) -> (u64, u64) {
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Ok(h) = parse_stored_header(records) {
        let Some(rest) = records.get(h.total_len..) else {
            break;
        };
        if !h.is_control() {
            count += u64::try_from(h.record_count).unwrap_or(0);
            bytes += h.total_len as u64;
        }
        records = rest;
    }
    (count, bytes)
}

/// The batches a Produce request carries, by topic and partition; None if it does not decode
/// (the broker will say what is wrong with it).
pub fn produce_request(version: i16, frame: &Bytes, names: &TopicNames) -> Option<Vec<Sent>> {
    let mut body = frame::request_body(ApiKey::Produce, version, frame.clone())?;
    let req = ProduceRequest::decode(&mut body, version).ok()?;
    let mut sent = Vec::new();
    for t in &req.topic_data {
        let Some(topic) = names.name(&t.name, t.topic_id) else {
            continue;
        };
        for p in &t.partition_data {
            let (records, bytes) = p.records.as_deref().map(batches).unwrap_or_default();
            sent.push(Sent {
                topic: topic.clone(),
                partition: p.index,
                records,
                bytes,
            });
        }
    }
    Some(sent)
}

/// A Produce request with acks=0 gets no answer: what it sent counts as written.
pub fn unanswered_produce(sent: &[Sent]) {
    let m = crate::observe::metrics();
    for s in sent {
        m.written("kafka", &s.topic, s.records, s.bytes);
    }
}

/// A Produce answer: what `sent` holds for the partitions answered without error counts as
/// written; the others count their error.
pub fn produce_response(
    version: i16,
    frame: &Bytes,
    sent: &[Sent],
    names: &TopicNames,
    ns: Option<&Namespace>,
) {
    let Ok((_, mut body)) = frame::response_body(ApiKey::Produce, version, frame.clone()) else {
        return;
    };
    let Ok(resp) = ProduceResponse::decode(&mut body, version) else {
        return;
    };
    let m = crate::observe::metrics();
    for t in &resp.responses {
        let Some(topic) = names.client_name(&t.name, t.topic_id, ns) else {
            continue;
        };
        for p in &t.partition_responses {
            if p.error_code != 0 {
                m.error("kafka", "Produce", &p.error_code.to_string());
                continue;
            }
            let batch = sent
                .iter()
                .find(|s| s.partition == p.index && s.topic == topic);
            if let Some(s) = batch {
                m.written("kafka", &s.topic, s.records, s.bytes);
            }
        }
    }
}

/// A Fetch answer: each partition's batches count as read, or its error is counted.
pub fn fetch_response(version: i16, frame: &Bytes, names: &TopicNames, ns: Option<&Namespace>) {
    let Ok((_, mut body)) = frame::response_body(ApiKey::Fetch, version, frame.clone()) else {
        return;
    };
    let Ok(resp) = FetchResponse::decode(&mut body, version) else {
        return;
    };
    let m = crate::observe::metrics();
    if resp.error_code != 0 {
        m.error("kafka", "Fetch", &resp.error_code.to_string());
    }
    for t in &resp.responses {
        let topic = names.client_name(&t.topic, t.topic_id, ns);
        for p in &t.partitions {
            if p.error_code != 0 {
                m.error("kafka", "Fetch", &p.error_code.to_string());
                continue;
            }
            let (records, bytes) = p.records.as_deref().map(batches).unwrap_or_default();
            if let (Some(topic), true) = (&topic, records > 0) {
                m.read("kafka", topic, records, bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kafka::records::{encode_batch, NewRecord};

    fn batch(n: usize) -> Bytes {
        let records: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Bytes::from_static(b"v"),
                timestamp_ms: 1,
                explicit_hash_key: None,
            })
            .collect();
        encode_batch(&records).freeze()
    }

    #[test]
    fn batches_count_records_and_stop_at_a_partial_one() {
        let (a, b) = (batch(3), batch(5));
        let mut both = [a.as_ref(), b.as_ref()].concat();
        assert_eq!(batches(&both), (8, (a.len() + b.len()) as u64));
        both.extend_from_slice(&a[..a.len() - 1]);
        assert_eq!(batches(&both), (8, (a.len() + b.len()) as u64));
        assert_eq!(batches(&[]), (0, 0));
        assert_eq!(batches(&[0u8; 7]), (0, 0));
    }

    #[test]
    fn names_come_from_the_frame_or_from_what_metadata_said() {
        let names = TopicNames::default();
        let id = Uuid::from_u128(7);
        assert_eq!(names.name("", id), None);
        names.learn(id, "orders");
        assert_eq!(names.name("", id).as_deref(), Some("orders"));
        assert_eq!(names.name("other", id).as_deref(), Some("other"));
        names.learn(Uuid::nil(), "ignored");
        assert_eq!(names.name("", Uuid::nil()), None);
    }

    /// Answers come from the broker, in its names: under a topic prefix they are counted under
    /// the client's (the stream's) name, and topics outside the prefix not at all.
    #[test]
    fn broker_names_are_counted_under_the_clients_names() {
        let names = TopicNames::default();
        let ns = Namespace::new("team-a.");
        let id = Uuid::from_u128(9);
        names.learn(id, "orders");
        let of = |name: &str, id| names.client_name(name, id, ns.as_ref());
        assert_eq!(of("team-a.orders", Uuid::nil()).as_deref(), Some("orders"));
        assert_eq!(of("team-b.orders", Uuid::nil()), None);
        assert_eq!(of("", id).as_deref(), Some("orders"));
        assert_eq!(
            names
                .client_name("team-a.orders", Uuid::nil(), None)
                .as_deref(),
            Some("team-a.orders")
        );
    }
}
