//! Requests under a prefix: every topic name a client sends becomes the cluster's. The
//! header is kept as the client sent it, so correlation ids and client ids are unchanged.
//! Two kinds are answered by strait instead: config changes to anything but topics (they
//! would change the cluster for everyone), and regex subscriptions that could match outside
//! the prefix.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::super::rewrite::EncodeAt;
use super::{classic, Namespace, TOPIC_RESOURCE};
use crate::protocol::kafka::frame;

/// What becomes of a request under a prefix. Both hold a whole frame, length prefix included.
#[derive(Debug)]
pub enum Renamed {
    /// For the broker, with the cluster's topic names.
    Forward(Bytes),
    /// strait's own answer for the client; nothing goes to the broker.
    Answer(Bytes),
}

const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
const POLICY_VIOLATION: i16 = ResponseError::PolicyViolation.code();
const INVALID_REGULAR_EXPRESSION: i16 = ResponseError::InvalidRegularExpression.code();

/// The request frame (without length prefix) renamed for the cluster, or strait's answer;
/// an error for a request that cannot be decoded (the connection closes, as a broker closes
/// it).
pub fn to_cluster(
    key: ApiKey,
    version: i16,
    frame: &Bytes,
    ns: &Namespace,
) -> Result<Renamed, String> {
    let mut b = frame.clone();
    let header_version = key.request_header_version(version);
    let header = RequestHeader::decode(&mut b, header_version)
        .map_err(|e| format!("bad {key:?} request header: {e}"))?;
    macro_rules! rewrite {
        ($t:ty, |$r:ident| $body:expr) => {{
            let mut $r = <$t>::decode(&mut b, version)
                .map_err(|e| format!("bad {key:?} v{version} request: {e}"))?;
            $body;
            frame::framed(|buf| {
                header
                    .encode(buf, header_version)
                    .map_err(|e| format!("encode {key:?} header: {e}"))?;
                $r.encode(buf, version)
                    .map_err(|e| format!("encode {key:?} v{version}: {e}"))
            })
            .map(Renamed::Forward)
        }};
    }
    let answer = |response: &dyn EncodeAt| -> Result<Renamed, String> {
        response
            .encode_at(key, version, header.correlation_id)
            .map(Renamed::Answer)
    };
    // AlterConfigs and IncrementalAlterConfigs: the same resources, different response types.
    macro_rules! topic_configs_only {
        ($r:ident, $response:ident, $module:ident) => {{
            let names = $r
                .resources
                .iter()
                .map(|c| (c.resource_type, &c.resource_name));
            if let Some(results) = refuse_cluster_configs(names) {
                let responses = results
                    .map(|(code, message, resource_type, resource_name)| {
                        $module::AlterConfigsResourceResponse::default()
                            .with_error_code(code)
                            .with_error_message(Some(message))
                            .with_resource_type(resource_type)
                            .with_resource_name(resource_name)
                    })
                    .collect();
                return answer(&$response::default().with_responses(responses));
            }
            $r.resources
                .iter_mut()
                .for_each(|c| ns.to_cluster(&mut c.resource_name));
        }};
    }
    let name = |n: &mut TopicName| ns.topic_to_cluster(n);
    match key {
        ApiKey::Produce => rewrite!(ProduceRequest, |r| r
            .topic_data
            .iter_mut()
            .for_each(|t| name(&mut t.name))),
        ApiKey::Fetch => rewrite!(FetchRequest, |r| {
            r.topics.iter_mut().for_each(|t| name(&mut t.topic));
            r.forgotten_topics_data
                .iter_mut()
                .for_each(|t| name(&mut t.topic));
        }),
        ApiKey::ListOffsets => rewrite!(ListOffsetsRequest, |r| r
            .topics
            .iter_mut()
            .for_each(|t| name(&mut t.name))),
        ApiKey::Metadata => rewrite!(MetadataRequest, |r| r
            .topics
            .iter_mut()
            .flatten()
            .filter_map(|t| t.name.as_mut())
            .for_each(name)),
        ApiKey::OffsetCommit => rewrite!(OffsetCommitRequest, |r| r
            .topics
            .iter_mut()
            .for_each(|t| name(&mut t.name))),
        ApiKey::OffsetFetch => rewrite!(OffsetFetchRequest, |r| {
            r.topics
                .iter_mut()
                .flatten()
                .for_each(|t| name(&mut t.name));
            r.groups
                .iter_mut()
                .flat_map(|g| g.topics.iter_mut().flatten())
                .for_each(|t| name(&mut t.name));
        }),
        ApiKey::TxnOffsetCommit => rewrite!(TxnOffsetCommitRequest, |r| r
            .topics
            .iter_mut()
            .for_each(|t| name(&mut t.name))),
        ApiKey::AddPartitionsToTxn => rewrite!(AddPartitionsToTxnRequest, |r| {
            r.v3_and_below_topics
                .iter_mut()
                .for_each(|t| name(&mut t.name));
            r.transactions
                .iter_mut()
                .flat_map(|x| x.topics.iter_mut())
                .for_each(|t| name(&mut t.name));
        }),
        ApiKey::OffsetForLeaderEpoch => rewrite!(OffsetForLeaderEpochRequest, |r| r
            .topics
            .iter_mut()
            .for_each(|t| name(&mut t.topic))),
        ApiKey::CreateTopics => rewrite!(CreateTopicsRequest, |r| r
            .topics
            .iter_mut()
            .for_each(|t| name(&mut t.name))),
        ApiKey::DeleteTopics => rewrite!(DeleteTopicsRequest, |r| {
            r.topic_names.iter_mut().for_each(name);
            r.topics
                .iter_mut()
                .filter_map(|t| t.name.as_mut())
                .for_each(name);
        }),
        ApiKey::CreatePartitions => rewrite!(CreatePartitionsRequest, |r| r
            .topics
            .iter_mut()
            .for_each(|t| name(&mut t.name))),
        ApiKey::DeleteRecords => rewrite!(DeleteRecordsRequest, |r| r
            .topics
            .iter_mut()
            .for_each(|t| name(&mut t.name))),
        ApiKey::DescribeConfigs => rewrite!(DescribeConfigsRequest, |r| r
            .resources
            .iter_mut()
            .filter(|c| c.resource_type == TOPIC_RESOURCE)
            .for_each(|c| ns.to_cluster(&mut c.resource_name))),
        ApiKey::AlterConfigs => rewrite!(AlterConfigsRequest, |r| {
            topic_configs_only!(r, AlterConfigsResponse, alter_configs_response)
        }),
        ApiKey::IncrementalAlterConfigs => rewrite!(IncrementalAlterConfigsRequest, |r| {
            topic_configs_only!(
                r,
                IncrementalAlterConfigsResponse,
                incremental_alter_configs_response
            )
        }),
        ApiKey::OffsetDelete => rewrite!(OffsetDeleteRequest, |r| r
            .topics
            .iter_mut()
            .for_each(|t| name(&mut t.name))),
        ApiKey::DescribeProducers => rewrite!(DescribeProducersRequest, |r| r
            .topics
            .iter_mut()
            .for_each(|t| name(&mut t.name))),
        ApiKey::DescribeTopicPartitions => rewrite!(DescribeTopicPartitionsRequest, |r| {
            r.topics.iter_mut().for_each(|t| name(&mut t.name));
            match r.cursor.as_mut() {
                Some(c) => name(&mut c.topic_name),
                // Listing every topic: start where the prefix's topics start (the broker
                // lists names at or after the cursor's), so a first page of other topics
                // cannot end the listing early.
                None if r.topics.is_empty() => {
                    r.cursor = Some(
                        describe_topic_partitions_request::Cursor::default()
                            .with_topic_name(ns.start()),
                    )
                }
                None => {}
            }
        }),
        ApiKey::SyncGroup => rewrite!(SyncGroupRequest, |r| {
            if classic::may_be_consumer(r.protocol_type.as_ref()) {
                for a in &mut r.assignments {
                    if let Some(renamed) = classic::assignment_to_cluster(&a.assignment, ns) {
                        a.assignment = renamed;
                    }
                }
            }
        }),
        ApiKey::JoinGroup => rewrite!(JoinGroupRequest, |r| {
            if r.protocol_type.as_str() == classic::CONSUMER {
                for p in &mut r.protocols {
                    if let Some(m) = classic::subscription_to_cluster(&p.metadata, ns) {
                        p.metadata = m;
                    }
                }
            }
        }),
        ApiKey::ConsumerGroupHeartbeat => rewrite!(ConsumerGroupHeartbeatRequest, |r| {
            r.subscribed_topic_names.iter_mut().flatten().for_each(name);
            if let Some(regex) = r.subscribed_topic_regex.as_mut() {
                if let Err(why) = ns.regex_to_cluster(regex) {
                    let message = format!(
                        "The regular expression {:?} is not valid here: {why}.",
                        regex.as_str()
                    );
                    return answer(
                        &ConsumerGroupHeartbeatResponse::default()
                            .with_error_code(INVALID_REGULAR_EXPRESSION)
                            .with_error_message(Some(StrBytes::from_string(message))),
                    );
                }
            }
        }),
        other => Err(format!("{other:?} names no topics to rewrite")),
    }
}

/// Per-resource results (code, message, type, name) refusing a config change that names
/// anything but topics, or `None` when it names only topics. The topics in a refused request
/// are not changed either: one admin request is applied whole or not at all.
fn refuse_cluster_configs<'a>(
    resources: impl Iterator<Item = (i8, &'a StrBytes)> + Clone + 'a,
) -> Option<impl Iterator<Item = (i16, StrBytes, i8, StrBytes)> + 'a> {
    if resources.clone().all(|(t, _)| t == TOPIC_RESOURCE) {
        return None;
    }
    Some(resources.map(|(resource_type, name)| {
        let (code, message) = if resource_type == TOPIC_RESOURCE {
            (
                INVALID_REQUEST,
                format!(
                    "Topic {} not changed: the same request changed a resource that is not a topic; send it on its own.",
                    name.as_str()
                ),
            )
        } else {
            (
                POLICY_VIOLATION,
                "strait serves only the topics under its topic_prefix; change broker, group and client configs on the cluster directly.".to_string(),
            )
        };
        (code, StrBytes::from_string(message), resource_type, name.clone())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::StrBytes;

    fn ns() -> Namespace {
        Namespace::new("team-a.").unwrap()
    }

    fn topic(n: &str) -> TopicName {
        TopicName(StrBytes::from_string(n.to_string()))
    }

    /// Encodes `req` as a client would, rewrites it, and decodes what the cluster gets.
    fn through<R: Encodable + Decodable>(key: ApiKey, version: i16, req: &R) -> (RequestHeader, R) {
        let frame = frame::encode_request(key, version, 77, "app-1", req)
            .unwrap()
            .slice(4..);
        let Renamed::Forward(out) = to_cluster(key, version, &frame, &ns()).unwrap() else {
            panic!("answered locally")
        };
        let len = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - 4);
        let mut b = out.slice(4..);
        let header = RequestHeader::decode(&mut b, key.request_header_version(version)).unwrap();
        (header, R::decode(&mut b, version).unwrap())
    }

    #[test]
    fn produce_keeps_header_and_records_and_prefixes_names() {
        for version in [3, 9, 12] {
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic("orders"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(2)
                        .with_records(Some(Bytes::from_static(b"opaque batch")))])]);
            let (header, got) = through(ApiKey::Produce, version, &req);
            assert_eq!(header.correlation_id, 77);
            assert_eq!(header.client_id.as_deref(), Some("app-1"));
            assert_eq!(got.topic_data[0].name.as_str(), "team-a.orders");
            assert_eq!(
                got.topic_data[0].partition_data[0].records.as_deref(),
                Some(&b"opaque batch"[..])
            );
        }
    }

    #[test]
    fn metadata_for_all_topics_stays_all_and_names_are_prefixed() {
        let all = MetadataRequest::default().with_topics(None);
        assert!(through(ApiKey::Metadata, 12, &all).1.topics.is_none());
        let some = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("orders"))),
        ]));
        for version in [1, 9, 12] {
            let got = through(ApiKey::Metadata, version, &some).1;
            let names: Vec<_> = got
                .topics
                .unwrap()
                .iter()
                .map(|t| t.name.as_ref().unwrap().to_string())
                .collect();
            assert_eq!(names, vec!["team-a.orders"]);
        }
    }

    #[test]
    fn only_topic_config_resources_are_prefixed() {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_static_str("orders")),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("1")),
        ]);
        let got = through(ApiKey::DescribeConfigs, 4, &req).1;
        let names: Vec<_> = got
            .resources
            .iter()
            .map(|r| r.resource_name.to_string())
            .collect();
        assert_eq!(names, vec!["team-a.orders", "1"]);
    }

    #[test]
    fn kip_848_subscriptions_are_prefixed_by_name_and_by_regex() {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_subscribed_topic_names(Some(vec![topic("orders")]))
            .with_subscribed_topic_regex(Some(StrBytes::from_static_str("pay.*")));
        let got = through(ApiKey::ConsumerGroupHeartbeat, 1, &req).1;
        assert_eq!(got.group_id.as_str(), "g");
        assert_eq!(
            got.subscribed_topic_names.unwrap()[0].as_str(),
            "team-a.orders"
        );
        assert_eq!(
            got.subscribed_topic_regex.unwrap().as_str(),
            "team-a\\.(?:pay.*)"
        );
    }

    /// strait's own answer to `req`, decoded.
    fn answered<Q: Encodable, A: Decodable>(key: ApiKey, version: i16, req: &Q) -> A {
        let frame = frame::encode_request(key, version, 78, "app-1", req)
            .unwrap()
            .slice(4..);
        let Renamed::Answer(out) = to_cluster(key, version, &frame, &ns()).unwrap() else {
            panic!("forwarded")
        };
        let (correlation, mut body) = frame::response_body(key, version, out.slice(4..)).unwrap();
        assert_eq!(correlation, 78);
        A::decode(&mut body, version).unwrap()
    }

    #[test]
    fn config_changes_beyond_topics_are_answered_by_strait() {
        use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
        let resource = |t: i8, n: &'static str| {
            AlterConfigsResource::default()
                .with_resource_type(t)
                .with_resource_name(StrBytes::from_static_str(n))
        };
        let only_topics = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![resource(TOPIC_RESOURCE, "orders")]);
        let got = through(ApiKey::IncrementalAlterConfigs, 1, &only_topics).1;
        assert_eq!(got.resources[0].resource_name.as_str(), "team-a.orders");
        let mixed = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![resource(TOPIC_RESOURCE, "orders"), resource(4, "")]);
        let r: IncrementalAlterConfigsResponse =
            answered(ApiKey::IncrementalAlterConfigs, 1, &mixed);
        let got: Vec<_> = r
            .responses
            .iter()
            .map(|x| (x.resource_name.to_string(), x.error_code))
            .collect();
        assert_eq!(
            got,
            vec![
                ("orders".to_string(), INVALID_REQUEST),
                (String::new(), POLICY_VIOLATION)
            ]
        );
    }

    #[test]
    fn a_regex_that_could_leave_the_prefix_gets_invalid_regular_expression() {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_subscribed_topic_regex(Some(StrBytes::from_static_str("x)|(.*")));
        let r: ConsumerGroupHeartbeatResponse = answered(ApiKey::ConsumerGroupHeartbeat, 1, &req);
        assert_eq!(r.error_code, INVALID_REGULAR_EXPRESSION);
        assert!(r.error_message.unwrap().contains("x)|(.*"));
    }

    #[test]
    fn listing_every_topic_starts_at_the_prefix() {
        let all = DescribeTopicPartitionsRequest::default().with_response_partition_limit(100);
        let got = through(ApiKey::DescribeTopicPartitions, 0, &all).1;
        assert_eq!(got.cursor.unwrap().topic_name.as_str(), "team-a.");
        assert!(got.topics.is_empty());
    }

    #[test]
    fn consumer_group_subscriptions_reach_the_broker_in_its_names() {
        use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
        let mut sub = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut sub, 0);
        ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("orders")])
            .encode(&mut sub, 0)
            .unwrap();
        let join = |protocol_type: &'static str| {
            JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_protocol_type(StrBytes::from_static_str(protocol_type))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(sub.clone().freeze())])
        };
        let got = through(ApiKey::JoinGroup, 5, &join("consumer")).1;
        let mut md = got.protocols[0].metadata.clone();
        bytes::Buf::advance(&mut md, 2);
        let s = ConsumerProtocolSubscription::decode(&mut md, 0).unwrap();
        assert_eq!(s.topics[0].as_str(), "team-a.orders");
        // Another protocol's metadata (Kafka Connect, say) is not strait's to read.
        let got = through(ApiKey::JoinGroup, 5, &join("connect")).1;
        assert_eq!(got.protocols[0].metadata, sub.freeze());
    }

    #[test]
    fn every_api_marked_as_naming_topics_in_requests_is_rewritten() {
        for key in ApiKey::iter() {
            if !super::super::handling(key).is_some_and(|h| h.request) {
                continue;
            }
            let version = super::super::codec_versions(key).1;
            // A header and no body: the API's decoder runs (and fails), never the fallback.
            let frame = frame::framed(|buf| {
                RequestHeader::default()
                    .with_request_api_key(key as i16)
                    .with_request_api_version(version)
                    .encode(buf, key.request_header_version(version))
                    .map_err(|e| e.to_string())
            })
            .unwrap()
            .slice(4..);
            let err = to_cluster(key, version, &frame, &ns()).unwrap_err();
            assert!(!err.contains("names no topics"), "{key:?}: {err}");
        }
    }

    #[test]
    fn a_garbled_request_is_an_error_not_a_panic() {
        let mut frame =
            frame::encode_request(ApiKey::Produce, 9, 1, "c", &ProduceRequest::default())
                .unwrap()
                .slice(4..)
                .to_vec();
        frame.truncate(frame.len() - 2);
        frame.extend_from_slice(&[0xff; 3]);
        let frame = Bytes::from(frame);
        assert!(to_cluster(ApiKey::Produce, 9, &frame, &ns()).is_err());
        assert!(to_cluster(ApiKey::JoinGroup, 9, &frame, &ns()).is_err());
    }
}
