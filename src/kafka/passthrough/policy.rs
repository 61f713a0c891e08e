//! Requests the pass-through answers itself instead of forwarding, because what they would do
//! to the cluster breaks what the Kinesis side keeps: CreatePartitions on a stream whose keys
//! route by MD5 hash ranges (its shards change through SplitShard / UpdateShardCount), and
//! Produce to a stream still being migrated from Kinesis (its source is its only writer).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, ProduceRequest, ProduceResponse,
    RequestHeader,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::protocol::kafka::frame;

/// Why a topic's partitions must not be added to from Kafka, or `None` when they may.
pub type TopicPolicy = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The local answer (framed) to a CreatePartitions request naming a topic `policy` refuses;
/// `None` to forward it. A request naming a refused topic is answered whole: the other
/// topics in it get INVALID_REQUEST and are not changed, since splitting one admin request
/// across a local and a forwarded answer could half-apply it.
pub fn refuse_create_partitions(
    frame: &Bytes,
    version: i16,
    correlation_id: i32,
    policy: &TopicPolicy,
) -> Result<Option<Bytes>, String> {
    let mut b = frame.clone();
    RequestHeader::decode(
        &mut b,
        ApiKey::CreatePartitions.request_header_version(version),
    )
    .map_err(|e| format!("bad CreatePartitions header: {e}"))?;
    let request = CreatePartitionsRequest::decode(&mut b, version)
        .map_err(|e| format!("bad CreatePartitions request: {e}"))?;
    let refusals: Vec<Option<String>> = request.topics.iter().map(|t| policy(&t.name)).collect();
    if refusals.iter().all(Option::is_none) {
        return Ok(None);
    }
    let results = request
        .topics
        .into_iter()
        .zip(refusals)
        .map(|(t, why)| {
            let (code, message) = match why {
                Some(why) => (ResponseError::PolicyViolation.code(), why),
                None => (
                    ResponseError::InvalidRequest.code(),
                    format!(
                        "Topic {} not changed: the same request named a stream whose partitions cannot be added to; send it on its own.",
                        t.name.as_str()
                    ),
                ),
            };
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
        })
        .collect();
    let response = CreatePartitionsResponse::default().with_results(results);
    frame::encode_response(ApiKey::CreatePartitions, version, correlation_id, &response).map(Some)
}

/// What to do with a Produce naming a topic `policy` refuses: `None` to forward it (it names
/// none), `Some(None)` to drop it unanswered (acks=0: the client awaits nothing), or
/// `Some(Some(answer))`. Refused topics get POLICY_VIOLATION with the reason; the other
/// topics of the same request get INVALID_REQUEST and nothing is written, as for
/// CreatePartitions: one request is not split between a local and a forwarded answer.
pub fn refuse_produce(
    frame: &Bytes,
    version: i16,
    correlation_id: i32,
    policy: &TopicPolicy,
    // A topic's name from its id (Produce v13 names topics by id only).
    name_of: &dyn Fn(&str, uuid::Uuid) -> Option<String>,
) -> Result<Option<Option<Bytes>>, String> {
    let mut b = frame.clone();
    RequestHeader::decode(&mut b, ApiKey::Produce.request_header_version(version))
        .map_err(|e| format!("bad Produce header: {e}"))?;
    let request =
        ProduceRequest::decode(&mut b, version).map_err(|e| format!("bad Produce request: {e}"))?;
    // A topic id this process has not seen in a Metadata answer (a client's metadata from
    // before a restart) cannot be checked: UNKNOWN_TOPIC_ID makes the client refresh it.
    let refusals: Vec<Option<(i16, String)>> = request
        .topic_data
        .iter()
        .map(|t| match name_of(t.name.as_str(), t.topic_id) {
            Some(name) => policy(&name).map(|why| (ResponseError::PolicyViolation.code(), why)),
            None => Some((
                ResponseError::UnknownTopicId.code(),
                format!(
                    "Topic id {} is not known here yet; refresh metadata.",
                    t.topic_id
                ),
            )),
        })
        .collect();
    if refusals.iter().all(Option::is_none) {
        return Ok(None);
    }
    if request.acks == 0 {
        return Ok(Some(None));
    }
    let responses = request
        .topic_data
        .into_iter()
        .zip(refusals)
        .map(|(t, why)| {
            let (code, message) = match why {
                Some(refusal) => refusal,
                None => (
                    ResponseError::InvalidRequest.code(),
                    format!(
                        "Nothing written to {}: the same request named a stream still being migrated; send it on its own.",
                        t.name.as_str()
                    ),
                ),
            };
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(Some(StrBytes::from_string(message.clone())))
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(partitions)
        })
        .collect();
    let response = ProduceResponse::default().with_responses(responses);
    frame::encode_response(ApiKey::Produce, version, correlation_id, &response)
        .map(|a| Some(Some(a)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::TopicName;

    fn request(version: i16, topics: &[&str]) -> Bytes {
        let req = CreatePartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatePartitionsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_count(8)
                    })
                    .collect(),
            )
            .with_timeout_ms(1000);
        let framed =
            frame::encode_request(ApiKey::CreatePartitions, version, 9, "t", &req).unwrap();
        framed.slice(4..)
    }

    fn md5_only() -> TopicPolicy {
        Arc::new(|t: &str| (t == "kinesis").then(|| format!("{t} routes by MD5")))
    }

    fn produce_request(version: i16, acks: i16, topics: &[&str]) -> Bytes {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000)
            .with_topic_data(
                topics
                    .iter()
                    .map(|t| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partition_data(vec![PartitionProduceData::default()
                                .with_index(1)
                                .with_records(Some(Bytes::from_static(b"not read")))])
                    })
                    .collect(),
            );
        let framed = frame::encode_request(ApiKey::Produce, version, 7, "t", &req).unwrap();
        framed.slice(4..)
    }

    #[test]
    fn produce_to_a_refused_topic_is_answered_locally() {
        let policy = md5_only();
        for v in [3, 9, 11] {
            let frame = produce_request(v, -1, &["orders"]);
            assert!(
                refuse_produce(&frame, v, 7, &policy, &|n, _| Some(n.to_string()))
                    .unwrap()
                    .is_none()
            );
            let frame = produce_request(v, 0, &["kinesis"]);
            assert_eq!(
                refuse_produce(&frame, v, 7, &policy, &|n, _| Some(n.to_string())).unwrap(),
                Some(None)
            );
            let frame = produce_request(v, 1, &["kinesis", "orders"]);
            let answer = refuse_produce(&frame, v, 7, &policy, &|n, _| Some(n.to_string()))
                .unwrap()
                .unwrap()
                .unwrap();
            let (correlation, mut body) =
                frame::response_body(ApiKey::Produce, v, answer.slice(4..)).unwrap();
            assert_eq!(correlation, 7);
            let resp = ProduceResponse::decode(&mut body, v).unwrap();
            let got: Vec<(String, i32, i16)> = resp
                .responses
                .iter()
                .map(|t| {
                    let p = &t.partition_responses[0];
                    (t.name.to_string(), p.index, p.error_code)
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    ("kinesis".into(), 1, ResponseError::PolicyViolation.code()),
                    ("orders".into(), 1, ResponseError::InvalidRequest.code())
                ]
            );
        }
    }

    /// Produce v13 names topics by id only: the id is resolved to a name first.
    #[test]
    fn produce_by_topic_id_is_refused_too() {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        let id = uuid::Uuid::from_u128(7);
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_topic_id(id)
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from_static(b"x")))])]);
        let frame = frame::encode_request(ApiKey::Produce, 13, 5, "t", &req)
            .unwrap()
            .slice(4..);
        let by_id = |n: &str, i: uuid::Uuid| {
            (i == id)
                .then(|| "kinesis".to_string())
                .or(Some(n.to_string()))
        };
        let answer = refuse_produce(&frame, 13, 5, &md5_only(), &by_id)
            .unwrap()
            .unwrap()
            .unwrap();
        // An id not seen yet: the client is told to refresh its metadata.
        let unknown = refuse_produce(&frame, 13, 5, &md5_only(), &|_, _| None)
            .unwrap()
            .unwrap()
            .unwrap();
        let (_, mut body) = frame::response_body(ApiKey::Produce, 13, unknown.slice(4..)).unwrap();
        let resp = ProduceResponse::decode(&mut body, 13).unwrap();
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code,
            ResponseError::UnknownTopicId.code()
        );
        let (_, mut body) = frame::response_body(ApiKey::Produce, 13, answer.slice(4..)).unwrap();
        let resp = ProduceResponse::decode(&mut body, 13).unwrap();
        assert_eq!(resp.responses[0].topic_id, id);
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code,
            ResponseError::PolicyViolation.code()
        );
    }

    #[test]
    fn requests_without_refused_topics_are_forwarded() {
        for v in 0..=3 {
            let frame = request(v, &["orders", "events"]);
            assert!(refuse_create_partitions(&frame, v, 9, &md5_only())
                .unwrap()
                .is_none());
        }
    }

    #[test]
    fn a_refused_topic_answers_the_whole_request_locally() {
        for v in 0..=3 {
            let frame = request(v, &["kinesis", "orders"]);
            let answer = refuse_create_partitions(&frame, v, 9, &md5_only())
                .unwrap()
                .expect("answered locally");
            let (correlation, mut body) =
                frame::response_body(ApiKey::CreatePartitions, v, answer.slice(4..)).unwrap();
            assert_eq!(correlation, 9);
            let resp = CreatePartitionsResponse::decode(&mut body, v).unwrap();
            let got: Vec<(String, i16)> = resp
                .results
                .iter()
                .map(|r| (r.name.to_string(), r.error_code))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("kinesis".to_string(), ResponseError::PolicyViolation.code()),
                    ("orders".to_string(), ResponseError::InvalidRequest.code())
                ]
            );
            assert!(resp.results[0]
                .error_message
                .as_ref()
                .unwrap()
                .contains("MD5"));
        }
    }
}
