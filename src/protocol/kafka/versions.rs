//! The Kafka API versions strait serves: one table, from which ApiVersions is answered and
//! requests are admitted. A test compares the crate's versions with a reviewed snapshot, so a
//! kafka-protocol upgrade that offers new versions fails until someone reviews them.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;

/// (API, lowest served, highest served). Everything else is refused.
pub const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
];

/// APIs the Kafka-backend pass-through never forwards: controller and quorum APIs (brokers
/// do not serve them to clients), and share groups (KIP-932, a preview in Kafka 4.x) whose
/// fetch responses carry broker addresses strait does not rewrite. Every other API the
/// crate knows is forwarded at the versions both the crate and the cluster serve.
pub const PASSTHROUGH_DENIED: &[ApiKey] = &[
    ApiKey::Vote,
    ApiKey::BeginQuorumEpoch,
    ApiKey::EndQuorumEpoch,
    ApiKey::DescribeQuorum,
    ApiKey::Envelope,
    ApiKey::FetchSnapshot,
    ApiKey::BrokerRegistration,
    ApiKey::BrokerHeartbeat,
    ApiKey::UnregisterBroker,
    ApiKey::ControllerRegistration,
    ApiKey::AddRaftVoter,
    ApiKey::RemoveRaftVoter,
    ApiKey::UpdateRaftVoter,
    ApiKey::ShareGroupHeartbeat,
    ApiKey::ShareGroupDescribe,
    ApiKey::ShareFetch,
    ApiKey::ShareAcknowledge,
    ApiKey::InitializeShareGroupState,
    ApiKey::ReadShareGroupState,
    ApiKey::WriteShareGroupState,
    ApiKey::DeleteShareGroupState,
    ApiKey::ReadShareGroupStateSummary,
    ApiKey::DescribeShareGroupOffsets,
    ApiKey::AlterShareGroupOffsets,
    ApiKey::DeleteShareGroupOffsets,
];

/// Also not forwarded when strait logs in to the cluster itself: the connection already runs
/// as strait's principal, so clients must not authenticate again (SASL), mint credentials in
/// its name (delegation tokens, SCRAM credentials) or change what it may do (ACLs).
pub const PASSTHROUGH_DENIED_WHEN_LOGGED_IN: &[ApiKey] = &[
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::CreateDelegationToken,
    ApiKey::RenewDelegationToken,
    ApiKey::ExpireDelegationToken,
    ApiKey::DescribeDelegationToken,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
];

/// The range of `key` the pass-through may forward, before intersecting with the cluster.
pub fn passthrough(key: ApiKey) -> Option<(i16, i16)> {
    if PASSTHROUGH_DENIED.contains(&key) {
        return None;
    }
    let v = key.valid_versions();
    // SaslHandshake v0 sends the tokens that follow without Kafka framing, which a
    // frame-by-frame proxy cannot carry; clients since Kafka 1.0 use v1.
    let min = if key == ApiKey::SaslHandshake {
        v.min.max(1)
    } else {
        v.min
    };
    Some((min, v.max))
}

/// The API's name as a metric label (a fixed set: the crate's keys).
pub fn api_name(key: i16) -> &'static str {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static NAMES: OnceLock<HashMap<i16, String>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            ApiKey::iter()
                .map(|k| (k as i16, format!("{k:?}")))
                .collect()
        })
        .get(&key)
        .map_or("unknown", String::as_str)
}

/// The served range of `key`, if strait serves it.
pub fn served(key: ApiKey) -> Option<(i16, i16)> {
    SERVED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// The served table as ApiVersions lists it.
pub fn api_versions_list() -> Vec<ApiVersion> {
    SERVED
        .iter()
        .map(|(k, min, max)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What kafka-protocol offered when the table above was last reviewed: `key:min-max`.
    const REVIEWED_CRATE_VERSIONS: &str = include_str!("crate_versions.txt");

    fn crate_versions() -> String {
        ApiKey::iter()
            .map(|k| {
                let v = k.valid_versions();
                format!("{}:{}-{}\n", k as i16, v.min, v.max)
            })
            .collect()
    }

    #[test]
    fn crate_versions_are_reviewed() {
        assert_eq!(
            crate_versions(),
            REVIEWED_CRATE_VERSIONS,
            "kafka-protocol's versions changed: review src/protocol/kafka/versions.rs against them, then update crate_versions.txt"
        );
    }

    #[test]
    fn served_versions_exist_in_the_crate() {
        for (key, min, max) in SERVED {
            let v = key.valid_versions();
            assert!(v.min <= *min && *max <= v.max, "{key:?} {min}-{max}");
        }
    }

    /// docs/compatibility.md lists every served API with its range.
    #[test]
    fn compatibility_doc_matches_the_table() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/compatibility.md"),
        )
        .unwrap();
        for (key, min, max) in SERVED {
            let range = if min == max {
                format!("{min}")
            } else {
                format!("{min}–{max}")
            };
            let row = format!("| {} | {key:?} | {range} |", *key as i16);
            assert!(doc.contains(&row), "docs/compatibility.md lacks `{row}`");
        }
    }

    #[test]
    fn the_pass_through_never_forwards_unframed_sasl() {
        assert_eq!(passthrough(ApiKey::SaslHandshake).map(|v| v.0), Some(1));
        assert!(passthrough(ApiKey::ShareFetch).is_none());
        assert!(passthrough(ApiKey::DescribeQuorum).is_none());
        assert!(PASSTHROUGH_DENIED_WHEN_LOGGED_IN.contains(&ApiKey::CreateDelegationToken));
    }

    #[test]
    fn telemetry_is_not_advertised() {
        assert!(served(ApiKey::GetTelemetrySubscriptions).is_none());
        assert!(served(ApiKey::PushTelemetry).is_none());
    }
}
