//! Responses under a prefix: every topic name becomes the client's, and topics outside the
//! prefix (listed when a client asked for all topics, or for all of a group's offsets) are
//! left out, as if the cluster held only the prefix's topics.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::{classic, Namespace, TOPIC_RESOURCE};
use crate::protocol::kafka::frame;

/// Keeps the entries whose name is inside the prefix, renamed to the client's.
fn keep<T>(items: &mut Vec<T>, ns: &Namespace, name: impl Fn(&mut T) -> &mut TopicName) {
    items.retain_mut(|t| ns.topic_to_client(name(t)));
}

pub fn metadata(r: &mut MetadataResponse, ns: &Namespace) {
    r.topics.retain_mut(|t| match t.name.as_mut() {
        Some(n) => ns.topic_to_client(n),
        None => true,
    });
}

pub fn produce(r: &mut ProduceResponse, ns: &Namespace) {
    keep(&mut r.responses, ns, |t| &mut t.name);
}

pub fn fetch(r: &mut FetchResponse, ns: &Namespace) {
    keep(&mut r.responses, ns, |t| &mut t.topic);
}

/// A response of an API `super::handling` marks as naming topics, other than the three
/// above (which `rewrite` also changes for broker addresses), re-encoded for the client.
pub fn to_client(
    key: ApiKey,
    version: i16,
    correlation: i32,
    mut body: Bytes,
    ns: &Namespace,
) -> Result<Bytes, String> {
    macro_rules! rewrite {
        ($t:ty, |$r:ident| $change:expr) => {{
            let mut $r = <$t>::decode(&mut body, version)
                .map_err(|e| format!("bad {key:?} v{version} response: {e}"))?;
            $change;
            frame::encode_response(key, version, correlation, &$r)
        }};
    }
    match key {
        ApiKey::ListOffsets => {
            rewrite!(ListOffsetsResponse, |r| keep(&mut r.topics, ns, |t| &mut t
                .name))
        }
        ApiKey::OffsetCommit => rewrite!(OffsetCommitResponse, |r| keep(&mut r.topics, ns, |t| {
            &mut t.name
        })),
        ApiKey::OffsetFetch => rewrite!(OffsetFetchResponse, |r| {
            keep(&mut r.topics, ns, |t| &mut t.name);
            for g in &mut r.groups {
                keep(&mut g.topics, ns, |t| &mut t.name);
            }
        }),
        ApiKey::TxnOffsetCommit => {
            rewrite!(TxnOffsetCommitResponse, |r| keep(&mut r.topics, ns, |t| {
                &mut t.name
            }))
        }
        ApiKey::AddPartitionsToTxn => rewrite!(AddPartitionsToTxnResponse, |r| {
            keep(&mut r.results_by_topic_v3_and_below, ns, |t| &mut t.name);
            for x in &mut r.results_by_transaction {
                keep(&mut x.topic_results, ns, |t| &mut t.name);
            }
        }),
        ApiKey::OffsetForLeaderEpoch => rewrite!(OffsetForLeaderEpochResponse, |r| keep(
            &mut r.topics,
            ns,
            |t| &mut t.topic
        )),
        ApiKey::CreateTopics => rewrite!(CreateTopicsResponse, |r| keep(&mut r.topics, ns, |t| {
            &mut t.name
        })),
        ApiKey::DeleteTopics => {
            rewrite!(DeleteTopicsResponse, |r| r.responses.retain_mut(
                |t| match t.name.as_mut() {
                    Some(n) => ns.topic_to_client(n),
                    None => true,
                }
            ))
        }
        ApiKey::CreatePartitions => rewrite!(CreatePartitionsResponse, |r| keep(
            &mut r.results,
            ns,
            |t| &mut t.name
        )),
        ApiKey::DeleteRecords => {
            rewrite!(DeleteRecordsResponse, |r| keep(&mut r.topics, ns, |t| {
                &mut t.name
            }))
        }
        ApiKey::DescribeConfigs => {
            rewrite!(DescribeConfigsResponse, |r| r
                .results
                .retain_mut(
                    |c| c.resource_type != TOPIC_RESOURCE || ns.to_client(&mut c.resource_name)
                ))
        }
        ApiKey::AlterConfigs => rewrite!(AlterConfigsResponse, |r| r
            .responses
            .retain_mut(
                |c| c.resource_type != TOPIC_RESOURCE || ns.to_client(&mut c.resource_name)
            )),
        ApiKey::IncrementalAlterConfigs => {
            rewrite!(IncrementalAlterConfigsResponse, |r| r.responses.retain_mut(
                |c| c.resource_type != TOPIC_RESOURCE || ns.to_client(&mut c.resource_name)
            ))
        }
        ApiKey::OffsetDelete => rewrite!(OffsetDeleteResponse, |r| keep(&mut r.topics, ns, |t| {
            &mut t.name
        })),
        ApiKey::DescribeProducers => rewrite!(DescribeProducersResponse, |r| keep(
            &mut r.topics,
            ns,
            |t| &mut t.name
        )),
        ApiKey::DescribeTopicPartitions => rewrite!(DescribeTopicPartitionsResponse, |r| {
            r.topics.retain_mut(|t| match t.name.as_mut() {
                Some(n) => ns.topic_to_client(n),
                None => true,
            });
            // A page that ends outside the prefix ends the listing: what follows is not
            // the client's.
            if let Some(c) = r.next_cursor.as_mut() {
                if !ns.topic_to_client(&mut c.topic_name) {
                    r.next_cursor = None;
                }
            }
        }),
        ApiKey::ConsumerGroupDescribe => rewrite!(ConsumerGroupDescribeResponse, |r| {
            for m in r.groups.iter_mut().flat_map(|g| g.members.iter_mut()) {
                keep(&mut m.subscribed_topic_names, ns, |t| t);
                if let Some(regex) = m.subscribed_topic_regex.as_mut() {
                    ns.regex_to_client(regex);
                }
                for a in [&mut m.assignment, &mut m.target_assignment] {
                    keep(&mut a.topic_partitions, ns, |t| &mut t.topic_name);
                }
            }
        }),
        // The subscriptions the leader assigns from, in the client's names. Before v7 the
        // response has no protocol type; `subscription_to_client` then changes only bytes
        // that decode whole as a subscription of the prefix's topics.
        ApiKey::JoinGroup => rewrite!(JoinGroupResponse, |r| {
            if classic::may_be_consumer(r.protocol_type.as_ref()) {
                for m in &mut r.members {
                    if let Some(md) = classic::subscription_to_client(&m.metadata, ns) {
                        m.metadata = md;
                    }
                }
            }
        }),
        ApiKey::SyncGroup => rewrite!(SyncGroupResponse, |r| {
            if classic::may_be_consumer(r.protocol_type.as_ref()) {
                if let Some(a) = classic::assignment_to_client(&r.assignment, ns) {
                    r.assignment = a;
                }
            }
        }),
        ApiKey::DescribeGroups => rewrite!(DescribeGroupsResponse, |r| {
            let consumer = r
                .groups
                .iter_mut()
                .filter(|g| g.protocol_type.as_str() == classic::CONSUMER);
            for m in consumer.flat_map(|g| g.members.iter_mut()) {
                if let Some(md) = classic::subscription_to_client(&m.member_metadata, ns) {
                    m.member_metadata = md;
                }
                if let Some(a) = classic::assignment_to_client(&m.member_assignment, ns) {
                    m.member_assignment = a;
                }
            }
        }),
        ApiKey::DescribeTransactions => rewrite!(DescribeTransactionsResponse, |r| {
            for s in &mut r.transaction_states {
                keep(&mut s.topics, ns, |t| &mut t.topic);
            }
        }),
        other => Err(format!("{other:?} names no topics to rewrite")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponseTopics,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn ns() -> Namespace {
        Namespace::new("team-a.").unwrap()
    }

    fn topic(n: &str) -> TopicName {
        TopicName(StrBytes::from_string(n.to_string()))
    }

    #[test]
    fn metadata_shows_only_the_prefix_s_topics_under_their_client_names() {
        let mut r = MetadataResponse::default().with_topics(
            [
                "team-a.orders",
                "team-b.orders",
                "__consumer_offsets",
                "team-a.__strait_meta",
            ]
            .into_iter()
            .map(|n| MetadataResponseTopic::default().with_name(Some(topic(n))))
            .collect(),
        );
        metadata(&mut r, &ns());
        let names: Vec<_> = r
            .topics
            .iter()
            .map(|t| t.name.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["orders", "__strait_meta"]);
    }

    fn round_trip<R: Encodable + Decodable>(key: ApiKey, version: i16, r: &R) -> R {
        let body = frame::encode_response(key, version, 5, r)
            .unwrap()
            .slice(4..);
        let (_, body) = frame::response_body(key, version, body).unwrap();
        let out = to_client(key, version, 5, body, &ns()).unwrap();
        let (corr, mut b) = frame::response_body(key, version, out.slice(4..)).unwrap();
        assert_eq!(corr, 5);
        R::decode(&mut b, version).unwrap()
    }

    #[test]
    fn a_group_s_offsets_outside_the_prefix_are_left_out() {
        let r =
            OffsetFetchResponse::default().with_groups(vec![OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(vec![
                    OffsetFetchResponseTopics::default().with_name(topic("team-a.orders")),
                    OffsetFetchResponseTopics::default().with_name(topic("payments")),
                ])]);
        let got = round_trip(ApiKey::OffsetFetch, 8, &r);
        let names: Vec<_> = got.groups[0]
            .topics
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(names, vec!["orders"]);
    }

    #[test]
    fn every_api_marked_as_naming_topics_in_responses_is_rewritten() {
        for key in ApiKey::iter() {
            let Some(h) = super::super::handling(key) else {
                continue;
            };
            let in_rewrite_rs = matches!(key, ApiKey::Metadata | ApiKey::Produce | ApiKey::Fetch);
            if !h.response || in_rewrite_rs {
                continue;
            }
            let version = super::super::codec_versions(key).1;
            let err = to_client(key, version, 1, Bytes::new(), &ns()).unwrap_err();
            assert!(!err.contains("names no topics"), "{key:?}: {err}");
        }
    }
}
