//! Requests under a prefix: every topic name a client sends becomes the cluster's. The
//! header is kept as the client sent it, so correlation ids and client ids are unchanged.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::{Namespace, TOPIC_RESOURCE};
use crate::backend::kafka::wire;

/// The request frame (without length prefix) re-encoded with the cluster's topic names,
/// framed; an error for a request that cannot be decoded (the connection closes, as a
/// broker closes it).
pub fn to_cluster(
    key: ApiKey,
    version: i16,
    frame: &Bytes,
    ns: &Namespace,
) -> Result<Bytes, String> {
    let mut b = frame.clone();
    let header_version = key.request_header_version(version);
    let header = RequestHeader::decode(&mut b, header_version)
        .map_err(|e| format!("bad {key:?} request header: {e}"))?;
    macro_rules! rewrite {
        ($t:ty, |$r:ident| $body:expr) => {{
            let mut $r = <$t>::decode(&mut b, version)
                .map_err(|e| format!("bad {key:?} v{version} request: {e}"))?;
            $body;
            wire::framed(|buf| {
                header
                    .encode(buf, header_version)
                    .map_err(|e| format!("encode {key:?} header: {e}"))?;
                $r.encode(buf, version)
                    .map_err(|e| format!("encode {key:?} v{version}: {e}"))
            })
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
        ApiKey::AlterConfigs => rewrite!(AlterConfigsRequest, |r| r
            .resources
            .iter_mut()
            .filter(|c| c.resource_type == TOPIC_RESOURCE)
            .for_each(|c| ns.to_cluster(&mut c.resource_name))),
        ApiKey::IncrementalAlterConfigs => rewrite!(IncrementalAlterConfigsRequest, |r| r
            .resources
            .iter_mut()
            .filter(|c| c.resource_type == TOPIC_RESOURCE)
            .for_each(|c| ns.to_cluster(&mut c.resource_name))),
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
            if let Some(c) = r.cursor.as_mut() {
                name(&mut c.topic_name);
            }
        }),
        ApiKey::ConsumerGroupHeartbeat => rewrite!(ConsumerGroupHeartbeatRequest, |r| {
            r.subscribed_topic_names.iter_mut().flatten().for_each(name);
            if let Some(regex) = r.subscribed_topic_regex.as_mut() {
                ns.regex_to_cluster(regex);
            }
        }),
        other => Err(format!("{other:?} names no topics to rewrite")),
    }
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
        let frame = wire::encode_request(key, version, 77, "app-1", req)
            .unwrap()
            .slice(4..);
        let out = to_cluster(key, version, &frame, &ns()).unwrap();
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

    #[test]
    fn every_api_marked_as_naming_topics_in_requests_is_rewritten() {
        for key in ApiKey::iter() {
            if !super::super::handling(key).is_some_and(|h| h.request) {
                continue;
            }
            let version = super::super::codec_versions(key).1;
            // A header and no body: the API's decoder runs (and fails), never the fallback.
            let frame = wire::framed(|buf| {
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
            wire::encode_request(ApiKey::Produce, 9, 1, "c", &ProduceRequest::default())
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
