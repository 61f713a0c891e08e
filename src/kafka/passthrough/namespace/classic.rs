//! Classic consumer groups under a prefix. Member metadata (protocol type "consumer") is a
//! `ConsumerProtocolSubscription` that the broker reads: its topics decide which committed
//! offsets a live group still needs, and which topics a member brings when a classic group
//! meets the KIP-848 protocol. So the subscriptions and assignments the broker stores carry
//! the cluster's names, and the copies handed back (to the group leader in JoinGroup, to each
//! member in SyncGroup, and in DescribeGroups) carry the client's.
//!
//! Requests before SyncGroup v5, and responses before JoinGroup v7 / SyncGroup v5, do not
//! say the protocol type: there, only bytes that decode whole as a consumer subscription or
//! assignment are changed (and, towards the client, only when every topic is the prefix's).

use bytes::Bytes;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::StrBytes;

use crate::protocol::kafka::consumer_protocol::rewrite as rename;

use super::Namespace;

/// The protocol type of consumer groups (`ConsumerProtocol.PROTOCOL_TYPE`).
pub const CONSUMER: &str = "consumer";

/// Whether frames of a group with this protocol type (`None`: not said) may hold consumer
/// subscriptions and assignments.
pub fn may_be_consumer(protocol_type: Option<&StrBytes>) -> bool {
    protocol_type.is_none_or(|t| t.as_str() == CONSUMER)
}

/// Member metadata with the cluster's topic names; `None` leaves it as it is (a version
/// strait does not know, or bytes that are not a subscription).
pub fn subscription_to_cluster(metadata: &Bytes, ns: &Namespace) -> Option<Bytes> {
    rename(metadata, |s: &mut ConsumerProtocolSubscription| {
        s.topics.iter_mut().for_each(|t| ns.to_cluster(t));
        s.owned_partitions
            .iter_mut()
            .for_each(|p| ns.topic_to_cluster(&mut p.topic));
        true
    })
}

/// Member metadata with the client's topic names; `None` leaves it as it is, also when a
/// topic lies outside the prefix (a member that joined on the cluster directly).
pub fn subscription_to_client(metadata: &Bytes, ns: &Namespace) -> Option<Bytes> {
    rename(metadata, |s: &mut ConsumerProtocolSubscription| {
        let topics = s.topics.iter_mut().all(|t| ns.to_client(t));
        let owned = s
            .owned_partitions
            .iter_mut()
            .all(|p| ns.topic_to_client(&mut p.topic));
        topics && owned
    })
}

/// A member's assignment with the cluster's topic names (as `subscription_to_cluster`).
pub fn assignment_to_cluster(assignment: &Bytes, ns: &Namespace) -> Option<Bytes> {
    rename(assignment, |a: &mut ConsumerProtocolAssignment| {
        a.assigned_partitions
            .iter_mut()
            .for_each(|p| ns.topic_to_cluster(&mut p.topic));
        true
    })
}

/// A member's assignment with the client's topic names (as `subscription_to_client`).
pub fn assignment_to_client(assignment: &Bytes, ns: &Namespace) -> Option<Bytes> {
    rename(assignment, |a: &mut ConsumerProtocolAssignment| {
        a.assigned_partitions
            .iter_mut()
            .all(|p| ns.topic_to_client(&mut p.topic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::Encodable;

    fn subscription(version: i16, topics: &[&str]) -> Bytes {
        let s = ConsumerProtocolSubscription::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| StrBytes::from_string(t.to_string()))
                    .collect(),
            )
            .with_user_data(Some(Bytes::from_static(b"sticky")))
            .with_owned_partitions(if version >= 1 {
                vec![TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_string(topics[0].to_string())))
                    .with_partitions(vec![0, 2])]
            } else {
                vec![]
            });
        let mut out = BytesMut::new();
        out.put_i16(version);
        s.encode(&mut out, version).unwrap();
        out.freeze()
    }

    #[test]
    fn subscriptions_cross_the_prefix_at_every_version() {
        let ns = Namespace::new("team-a.").unwrap();
        for version in 0..=3 {
            let client = subscription(version, &["orders", "pay"]);
            let cluster = subscription_to_cluster(&client, &ns).unwrap();
            assert_eq!(
                cluster,
                subscription(version, &["team-a.orders", "team-a.pay"])
            );
            assert_eq!(subscription_to_client(&cluster, &ns).unwrap(), client);
        }
    }

    #[test]
    fn what_is_not_ours_to_change_stays() {
        let ns = Namespace::new("team-a.").unwrap();
        // A member that joined on the cluster directly, with a topic outside the prefix.
        let foreign = subscription(1, &["payments"]);
        assert!(subscription_to_client(&foreign, &ns).is_none());
        // Other protocols' metadata, and a version from the future.
        assert!(subscription_to_cluster(&Bytes::from_static(b"\x00"), &ns).is_none());
        assert!(subscription_to_cluster(&Bytes::from_static(b"\x00\x09rest"), &ns).is_none());
        let mut trailing = BytesMut::from(&subscription(0, &["orders"])[..]);
        trailing.put_u8(7);
        assert!(subscription_to_cluster(&trailing.freeze(), &ns).is_none());
        // A follower's empty SyncGroup assignment.
        assert!(assignment_to_cluster(&Bytes::new(), &ns).is_none());
    }

    #[test]
    fn assignments_cross_the_prefix() {
        use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as Assigned;
        let ns = Namespace::new("team-a.").unwrap();
        let assignment = |topic: &str| {
            let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
                Assigned::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![1, 3]),
            ]);
            let mut out = BytesMut::new();
            out.put_i16(1);
            a.encode(&mut out, 1).unwrap();
            out.freeze()
        };
        let cluster = assignment_to_cluster(&assignment("orders"), &ns).unwrap();
        assert_eq!(cluster, assignment("team-a.orders"));
        assert_eq!(
            assignment_to_client(&cluster, &ns).unwrap(),
            assignment("orders")
        );
    }
}
