//! `backend.kafka.topic_prefix` on the pass-through: Kafka clients see topic "x" where the
//! cluster holds "<prefix>x", and never see topics outside the prefix. Every request that
//! names topics is decoded, prefixed and re-encoded (`requests`), every response that names
//! them is stripped and filtered (`responses`). Only the APIs listed in `handling` are
//! forwarded under a prefix: the ones producers, consumers, transactions, groups and topic
//! admin use. Cluster-operator APIs (ACLs, quotas, users, tokens, features, reassignments,
//! log dirs, leader elections) would expose or change what lies outside the prefix, so they
//! are not offered; operators use the cluster directly for those.

pub mod classic;
mod regex;
pub mod requests;
pub mod responses;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Message, StrBytes};

/// The topics one strait deployment may see: those starting with `prefix`.
#[derive(Debug, Clone)]
pub struct Namespace {
    prefix: String,
}

/// How a forwarded API's frames are treated under a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handling {
    /// The request names topics: decoded and prefixed.
    pub request: bool,
    /// The response names topics: decoded, stripped and filtered.
    pub response: bool,
}

const NEITHER: Handling = Handling {
    request: false,
    response: false,
};
const BOTH: Handling = Handling {
    request: true,
    response: true,
};
const REQUEST: Handling = Handling {
    request: true,
    response: false,
};
const RESPONSE: Handling = Handling {
    request: false,
    response: true,
};

/// What the pass-through does with `key` under a prefix; `None`: not forwarded at all.
pub fn handling(key: ApiKey) -> Option<Handling> {
    use ApiKey::*;
    Some(match key {
        Produce
        | Fetch
        | ListOffsets
        | Metadata
        | OffsetCommit
        | OffsetFetch
        | TxnOffsetCommit
        | AddPartitionsToTxn
        | OffsetForLeaderEpoch
        | CreateTopics
        | DeleteTopics
        | CreatePartitions
        | DeleteRecords
        | DescribeConfigs
        | AlterConfigs
        | IncrementalAlterConfigs
        | OffsetDelete
        | DescribeProducers
        | DescribeTopicPartitions
        | JoinGroup
        | SyncGroup => BOTH,
        // Assignments come back as topic ids, which clients resolve through Metadata.
        ConsumerGroupHeartbeat => REQUEST,
        ConsumerGroupDescribe | DescribeTransactions | DescribeGroups => RESPONSE,
        ApiVersions
        | FindCoordinator
        | Heartbeat
        | LeaveGroup
        | ListGroups
        | DeleteGroups
        | SaslHandshake
        | SaslAuthenticate
        | InitProducerId
        | AddOffsetsToTxn
        | EndTxn
        | ListTransactions
        | DescribeCluster
        | GetTelemetrySubscriptions
        | PushTelemetry => NEITHER,
        _ => return None,
    })
}

/// The versions of `key` strait can decode and re-encode, for an API whose frames it
/// rewrites: what both its request and response types support. kafka-protocol's
/// `ApiKey::valid_versions` can be wider (OffsetFetch lists v10, its request type stops at
/// v9), and a version strait cannot decode must not be offered.
pub fn codec_versions(key: ApiKey) -> (i16, i16) {
    macro_rules! both {
        ($req:ty, $resp:ty) => {{
            let (a, b) = (<$req as Message>::VERSIONS, <$resp as Message>::VERSIONS);
            (a.min.max(b.min), a.max.min(b.max))
        }};
    }
    use ApiKey::*;
    match key {
        Produce => both!(ProduceRequest, ProduceResponse),
        Fetch => both!(FetchRequest, FetchResponse),
        ListOffsets => both!(ListOffsetsRequest, ListOffsetsResponse),
        Metadata => both!(MetadataRequest, MetadataResponse),
        OffsetCommit => both!(OffsetCommitRequest, OffsetCommitResponse),
        OffsetFetch => both!(OffsetFetchRequest, OffsetFetchResponse),
        TxnOffsetCommit => both!(TxnOffsetCommitRequest, TxnOffsetCommitResponse),
        AddPartitionsToTxn => both!(AddPartitionsToTxnRequest, AddPartitionsToTxnResponse),
        OffsetForLeaderEpoch => both!(OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse),
        CreateTopics => both!(CreateTopicsRequest, CreateTopicsResponse),
        DeleteTopics => both!(DeleteTopicsRequest, DeleteTopicsResponse),
        CreatePartitions => both!(CreatePartitionsRequest, CreatePartitionsResponse),
        DeleteRecords => both!(DeleteRecordsRequest, DeleteRecordsResponse),
        DescribeConfigs => both!(DescribeConfigsRequest, DescribeConfigsResponse),
        AlterConfigs => both!(AlterConfigsRequest, AlterConfigsResponse),
        IncrementalAlterConfigs => {
            both!(
                IncrementalAlterConfigsRequest,
                IncrementalAlterConfigsResponse
            )
        }
        OffsetDelete => both!(OffsetDeleteRequest, OffsetDeleteResponse),
        DescribeProducers => both!(DescribeProducersRequest, DescribeProducersResponse),
        DescribeTopicPartitions => {
            both!(
                DescribeTopicPartitionsRequest,
                DescribeTopicPartitionsResponse
            )
        }
        ConsumerGroupHeartbeat => {
            both!(
                ConsumerGroupHeartbeatRequest,
                ConsumerGroupHeartbeatResponse
            )
        }
        ConsumerGroupDescribe => both!(ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse),
        DescribeTransactions => both!(DescribeTransactionsRequest, DescribeTransactionsResponse),
        JoinGroup => both!(JoinGroupRequest, JoinGroupResponse),
        SyncGroup => both!(SyncGroupRequest, SyncGroupResponse),
        DescribeGroups => both!(DescribeGroupsRequest, DescribeGroupsResponse),
        _ => {
            let v = key.valid_versions();
            (v.min, v.max)
        }
    }
}

/// The versions of `key` offered under a prefix: those strait can decode and re-encode, and
/// none that address topics by id (Produce v13, Fetch v13, DeleteTopics v6), since an id
/// reaches a topic whatever its name, inside the prefix or not. Clients fall back to names.
pub fn offered_versions(key: ApiKey) -> (i16, i16) {
    let (min, max) = codec_versions(key);
    let by_name = match key {
        ApiKey::Produce | ApiKey::Fetch => 12,
        ApiKey::DeleteTopics => 5,
        _ => max,
    };
    (min, max.min(by_name))
}

/// `DescribeConfigs` / `AlterConfigs` resource type of a topic.
pub const TOPIC_RESOURCE: i8 = 2;

impl Namespace {
    /// `None` for an empty prefix: nothing to rewrite.
    pub fn new(prefix: &str) -> Option<Namespace> {
        (!prefix.is_empty()).then(|| Namespace {
            prefix: prefix.to_string(),
        })
    }

    /// A client's name as the cluster's. An empty name is a field the request's version
    /// does not carry (topic ids instead) or a name the broker refuses itself; it stays.
    pub fn to_cluster(&self, name: &mut StrBytes) {
        if !name.is_empty() {
            *name = StrBytes::from_string(format!("{}{}", self.prefix, name.as_str()));
        }
    }

    pub fn topic_to_cluster(&self, name: &mut TopicName) {
        self.to_cluster(&mut name.0);
    }

    /// The cluster's name as the client's; false for a topic outside the prefix (the caller
    /// drops it). Empty names (topic-id versions) pass.
    pub fn to_client(&self, name: &mut StrBytes) -> bool {
        if name.is_empty() {
            return true;
        }
        match name.as_str().strip_prefix(&self.prefix) {
            Some(rest) if !rest.is_empty() => {
                *name = StrBytes::from_string(rest.to_string());
                true
            }
            _ => false,
        }
    }

    pub fn topic_to_client(&self, name: &mut TopicName) -> bool {
        self.to_client(&mut name.0)
    }

    /// A subscription regex (KIP-848) that matches the client's topics only (see `regex`).
    /// An empty one (which clears the regex) stays empty.
    pub fn regex_to_cluster(&self, regex: &mut StrBytes) -> Result<(), String> {
        if regex.is_empty() {
            return Ok(());
        }
        let body = regex::unanchored(regex.as_str())?;
        *regex = StrBytes::from_string(format!("{}(?:{body})", self.escaped()));
        Ok(())
    }

    /// The client's regex back (without the start anchors strait removed), when the
    /// cluster's is one strait wrapped.
    pub fn regex_to_client(&self, regex: &mut StrBytes) {
        let inner = regex
            .as_str()
            .strip_prefix(&format!("{}(?:", self.escaped()))
            .and_then(|r| r.strip_suffix(')'))
            .map(str::to_string);
        if let Some(inner) = inner {
            *regex = StrBytes::from_string(inner);
        }
    }

    /// The bare prefix as a topic name: where the prefix's topics start in name order.
    pub fn start(&self) -> TopicName {
        TopicName(StrBytes::from_string(self.prefix.clone()))
    }

    /// The prefix as a regex literal (it holds only letters, digits, '.', '_' and '-').
    fn escaped(&self) -> String {
        self.prefix.replace('.', "\\.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cross_the_prefix_both_ways() {
        let ns = Namespace::new("team-a.").unwrap();
        let mut n = StrBytes::from_static_str("orders");
        ns.to_cluster(&mut n);
        assert_eq!(n.as_str(), "team-a.orders");
        assert!(ns.to_client(&mut n));
        assert_eq!(n.as_str(), "orders");
        for outside in ["orders", "team-b.orders", "team-a."] {
            let mut n = StrBytes::from_string(outside.to_string());
            assert!(!ns.to_client(&mut n), "{outside}");
        }
        let mut empty = StrBytes::default();
        ns.to_cluster(&mut empty);
        assert!(empty.is_empty());
        assert!(ns.to_client(&mut empty));
        assert!(Namespace::new("").is_none());
    }

    #[test]
    fn regexes_match_only_inside_the_prefix_and_come_back_unchanged() {
        let ns = Namespace::new("t.a-").unwrap();
        let mut r = StrBytes::from_static_str("orders|pay.*");
        ns.regex_to_cluster(&mut r).unwrap();
        assert_eq!(r.as_str(), "t\\.a-(?:orders|pay.*)");
        ns.regex_to_client(&mut r);
        assert_eq!(r.as_str(), "orders|pay.*");
        // librdkafka's form for two regex subscriptions: every anchor goes.
        let mut grouped = StrBytes::from_static_str("(^pay.*)|(^ord.*)");
        ns.regex_to_cluster(&mut grouped).unwrap();
        assert_eq!(grouped.as_str(), "t\\.a-(?:(pay.*)|(ord.*))");
        // A regex that would close strait's group is refused, and left as it was.
        let mut escape = StrBytes::from_static_str("x)|(.*");
        assert!(ns.regex_to_cluster(&mut escape).is_err());
        assert_eq!(escape.as_str(), "x)|(.*");
        // A regex strait did not wrap (set by a client going to the cluster directly).
        let mut other = StrBytes::from_static_str("x.*");
        ns.regex_to_client(&mut other);
        assert_eq!(other.as_str(), "x.*");
    }

    #[test]
    fn every_api_is_classified_and_operator_apis_are_not_forwarded() {
        for key in [
            ApiKey::CreateAcls,
            ApiKey::DescribeAcls,
            ApiKey::AlterClientQuotas,
            ApiKey::ElectLeaders,
            ApiKey::DescribeLogDirs,
            ApiKey::AlterPartitionReassignments,
            ApiKey::ListConfigResources,
            ApiKey::UpdateFeatures,
            ApiKey::WriteTxnMarkers,
            ApiKey::CreateDelegationToken,
        ] {
            assert!(handling(key).is_none(), "{key:?}");
        }
        assert_eq!(handling(ApiKey::Produce), Some(BOTH));
        assert_eq!(handling(ApiKey::Heartbeat), Some(NEITHER));
        // The crate lists OffsetFetch v10; its request type decodes only up to v9.
        assert_eq!(ApiKey::OffsetFetch.valid_versions().max, 10);
        assert_eq!(codec_versions(ApiKey::OffsetFetch), (1, 9));
        assert_eq!(offered_versions(ApiKey::Fetch).1, 12);
        assert_eq!(offered_versions(ApiKey::Produce).1, 12);
        assert_eq!(offered_versions(ApiKey::DeleteTopics).1, 5);
        for key in ApiKey::iter() {
            let (min, max) = codec_versions(key);
            assert!(min <= max, "{key:?}: {min}..{max}");
        }
    }
}
