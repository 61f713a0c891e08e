//! The responses the pass-through must change: every broker address a client could connect
//! to is replaced by strait's own (one port per broker), ApiVersions is narrowed to what
//! both strait and the cluster serve, and under a topic prefix topic names are the client's
//! (see `namespace`). Everything else travels as bytes.

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, DescribeClusterResponse, FetchResponse, FindCoordinatorResponse,
    MetadataResponse, ProduceResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::namespace::{self, Namespace};
use crate::backend::kafka::cluster::join_host_port;
use crate::protocol::kafka::frame;

/// Where strait serves each broker, and what it learns of the real ones.
pub trait Addresses {
    /// strait's advertised host and port for broker `node`.
    fn advertise(&self, node: i32) -> (StrBytes, i32);
    /// A broker's real address, seen in a response.
    fn learn(&self, node: i32, real: String);
    /// The range strait forwards for `key` at this cluster (strait's table ∩ the cluster's).
    fn forwarded_versions(&self, key: i16) -> Option<(i16, i16)>;
    /// A topic's id and its name as clients see it, from a Metadata answer.
    fn learn_topic(&self, id: uuid::Uuid, name: &str);
}

/// Whether a response of `key` at `version` may need rewriting.
pub fn needs_rewrite(key: ApiKey, version: i16, ns: Option<&Namespace>) -> bool {
    if ns.is_some() && namespace::handling(key).is_some_and(|h| h.response) {
        return true;
    }
    match key {
        ApiKey::Metadata
        | ApiKey::FindCoordinator
        | ApiKey::DescribeCluster
        | ApiKey::ApiVersions => true,
        // KIP-951: leader hints with broker endpoints on NOT_LEADER_OR_FOLLOWER.
        ApiKey::Produce => version >= 10,
        ApiKey::Fetch => version >= 16,
        _ => false,
    }
}

/// What to send the client in place of a response.
#[derive(Debug, PartialEq, Eq)]
pub enum Rewritten {
    /// The broker's frame as it is (nothing to change), so it is not copied.
    Same,
    /// A new frame, length prefix included.
    New(Bytes),
}

/// Rewrites one response frame (without length prefix).
pub fn rewrite(
    key: ApiKey,
    version: i16,
    frame: Bytes,
    addrs: &dyn Addresses,
    ns: Option<&Namespace>,
) -> Result<Rewritten, String> {
    let (correlation, mut body) = frame::response_body(key, version, frame.clone())?;
    macro_rules! decode {
        ($t:ty) => {
            <$t>::decode(&mut body, version)
                .map_err(|e| format!("bad {key:?} v{version} response: {e}"))?
        };
    }
    let out = |r: &dyn EncodeAt| r.encode_at(key, version, correlation).map(Rewritten::New);
    // KIP-951 leader hints come only with NOT_LEADER_OR_FOLLOWER: most responses have none
    // and go on as they came (unless topic names must change).
    macro_rules! leader_hints {
        ($t:ty, $topics:path) => {{
            let mut r = decode!($t);
            if r.node_endpoints.is_empty() && ns.is_none() {
                return Ok(Rewritten::Same);
            }
            for n in &mut r.node_endpoints {
                relocate(addrs, n.node_id.0, &mut n.host, &mut n.port);
            }
            if let Some(ns) = ns {
                $topics(&mut r, ns);
            }
            out(&r)
        }};
    }
    match key {
        ApiKey::Metadata => {
            let mut r = decode!(MetadataResponse);
            for b in &mut r.brokers {
                relocate(addrs, b.node_id.0, &mut b.host, &mut b.port);
            }
            if let Some(ns) = ns {
                namespace::responses::metadata(&mut r, ns);
            }
            for t in &r.topics {
                if let Some(name) = &t.name {
                    addrs.learn_topic(t.topic_id, name);
                }
            }
            out(&r)
        }
        ApiKey::DescribeCluster => {
            let mut r = decode!(DescribeClusterResponse);
            for b in &mut r.brokers {
                relocate(addrs, b.broker_id.0, &mut b.host, &mut b.port);
            }
            out(&r)
        }
        ApiKey::FindCoordinator => {
            let mut r = decode!(FindCoordinatorResponse);
            if version < 4 {
                if r.error_code == 0 {
                    relocate(addrs, r.node_id.0, &mut r.host, &mut r.port);
                }
            } else {
                for c in r.coordinators.iter_mut().filter(|c| c.error_code == 0) {
                    relocate(addrs, c.node_id.0, &mut c.host, &mut c.port);
                }
            }
            out(&r)
        }
        ApiKey::ApiVersions => {
            let r = match ApiVersionsResponse::decode(&mut body, version) {
                Ok(r) => r,
                // A broker answers an ApiVersions version it does not know in v0.
                Err(_) => {
                    let (_, mut v0) = frame::response_body(key, 0, frame)?;
                    let r = ApiVersionsResponse::decode(&mut v0, 0)
                        .map_err(|e| format!("bad ApiVersions response: {e}"))?;
                    return narrow_versions(r, addrs)
                        .encode_at(key, 0, correlation)
                        .map(Rewritten::New);
                }
            };
            out(&narrow_versions(r, addrs))
        }
        ApiKey::Produce => leader_hints!(ProduceResponse, namespace::responses::produce),
        ApiKey::Fetch => leader_hints!(FetchResponse, namespace::responses::fetch),
        _ => match ns {
            Some(ns) if namespace::handling(key).is_some_and(|h| h.response) => {
                namespace::responses::to_client(key, version, correlation, body, ns)
                    .map(Rewritten::New)
            }
            _ => Ok(Rewritten::Same),
        },
    }
}

/// One broker address in a response: remembered as the broker's, replaced by strait's port
/// for it. Node ids below 0 (errors, no coordinator) are left alone.
fn relocate(addrs: &dyn Addresses, node: i32, host: &mut StrBytes, port: &mut i32) {
    if node < 0 {
        return;
    }
    addrs.learn(node, join_host_port(host, *port));
    (*host, *port) = addrs.advertise(node);
}

fn narrow_versions(mut r: ApiVersionsResponse, addrs: &dyn Addresses) -> ApiVersionsResponse {
    r.api_keys
        .retain_mut(|k| match addrs.forwarded_versions(k.api_key) {
            Some((min, max)) => {
                k.min_version = k.min_version.max(min);
                k.max_version = k.max_version.min(max);
                k.min_version <= k.max_version
            }
            None => false,
        });
    r
}

/// Object-safe encoding under a response header.
pub(super) trait EncodeAt {
    fn encode_at(&self, key: ApiKey, version: i16, correlation: i32) -> Result<Bytes, String>;
}

impl<T: Encodable> EncodeAt for T {
    fn encode_at(&self, key: ApiKey, version: i16, correlation: i32) -> Result<Bytes, String> {
        frame::encode_response(key, version, correlation, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::BrokerId;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(i32, String)>>, Mutex<Vec<(uuid::Uuid, String)>>);

    impl Addresses for Seen {
        fn advertise(&self, node: i32) -> (StrBytes, i32) {
            (StrBytes::from_static_str("strait.local"), 19_000 + node)
        }
        fn learn(&self, node: i32, real: String) {
            self.0.lock().push((node, real));
        }
        fn forwarded_versions(&self, key: i16) -> Option<(i16, i16)> {
            match key {
                0 => Some((3, 9)),
                1 => None,
                _ => Some((0, 100)),
            }
        }
        fn learn_topic(&self, id: uuid::Uuid, name: &str) {
            self.1.lock().push((id, name.to_string()));
        }
    }

    fn frame_of<T: Encodable>(key: ApiKey, version: i16, r: &T) -> Bytes {
        frame::encode_response(key, version, 42, r)
            .unwrap()
            .slice(4..)
    }

    fn decoded<T: Decodable>(key: ApiKey, version: i16, out: Rewritten) -> T {
        let Rewritten::New(framed) = out else {
            panic!("expected a rewritten frame")
        };
        let (corr, mut body) = frame::response_body(key, version, framed.slice(4..)).unwrap();
        assert_eq!(corr, 42);
        T::decode(&mut body, version).unwrap()
    }

    #[test]
    fn metadata_brokers_become_strait_ports() {
        for version in [1, 9, 12] {
            let r = MetadataResponse::default().with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("b1.internal"))
                    .with_port(9092),
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("::1"))
                    .with_port(9093),
            ]);
            let seen = Seen::default();
            let out = rewrite(
                ApiKey::Metadata,
                version,
                frame_of(ApiKey::Metadata, version, &r),
                &seen,
                None,
            )
            .unwrap();
            let back: MetadataResponse = decoded(ApiKey::Metadata, version, out);
            let got: Vec<_> = back
                .brokers
                .iter()
                .map(|b| (b.node_id.0, b.host.to_string(), b.port))
                .collect();
            assert_eq!(
                got,
                vec![
                    (1, "strait.local".into(), 19_001),
                    (2, "strait.local".into(), 19_002)
                ]
            );
            assert_eq!(
                *seen.0.lock(),
                vec![(1, "b1.internal:9092".into()), (2, "[::1]:9093".into())]
            );
        }
    }

    #[test]
    fn metadata_teaches_topic_ids_under_the_names_clients_see() {
        use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
        use kafka_protocol::messages::TopicName;
        let id = uuid::Uuid::from_u128(0xfeed);
        let r = MetadataResponse::default().with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("team-a.orders"))))
            .with_topic_id(id)]);
        let ns = Namespace::new("team-a.");
        let seen = Seen::default();
        rewrite(
            ApiKey::Metadata,
            12,
            frame_of(ApiKey::Metadata, 12, &r),
            &seen,
            ns.as_ref(),
        )
        .unwrap();
        assert_eq!(*seen.1.lock(), vec![(id, "orders".to_string())]);
    }

    #[test]
    fn coordinators_are_rewritten_in_both_shapes() {
        let old = FindCoordinatorResponse::default()
            .with_node_id(BrokerId(3))
            .with_host(StrBytes::from_static_str("b3"))
            .with_port(9092);
        let out = rewrite(
            ApiKey::FindCoordinator,
            3,
            frame_of(ApiKey::FindCoordinator, 3, &old),
            &Seen::default(),
            None,
        )
        .unwrap();
        let back: FindCoordinatorResponse = decoded(ApiKey::FindCoordinator, 3, out);
        assert_eq!((back.host.as_str(), back.port), ("strait.local", 19_003));

        let new = FindCoordinatorResponse::default().with_coordinators(vec![
            Coordinator::default()
                .with_node_id(BrokerId(4))
                .with_host(StrBytes::from_static_str("b4"))
                .with_port(9092),
            // An error answer has no usable node and stays as it is.
            Coordinator::default()
                .with_node_id(BrokerId(-1))
                .with_error_code(15),
        ]);
        let out = rewrite(
            ApiKey::FindCoordinator,
            4,
            frame_of(ApiKey::FindCoordinator, 4, &new),
            &Seen::default(),
            None,
        )
        .unwrap();
        let back: FindCoordinatorResponse = decoded(ApiKey::FindCoordinator, 4, out);
        assert_eq!(back.coordinators[0].port, 19_004);
        assert_eq!(back.coordinators[1].node_id.0, -1);
        assert_eq!(back.coordinators[1].port, 0);
    }

    #[test]
    fn api_versions_are_the_intersection() {
        let r = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(0)
                .with_min_version(0)
                .with_max_version(12),
            ApiVersion::default()
                .with_api_key(1)
                .with_min_version(0)
                .with_max_version(17),
            ApiVersion::default()
                .with_api_key(3)
                .with_min_version(0)
                .with_max_version(13),
        ]);
        let out = rewrite(
            ApiKey::ApiVersions,
            3,
            frame_of(ApiKey::ApiVersions, 3, &r),
            &Seen::default(),
            None,
        )
        .unwrap();
        let back: ApiVersionsResponse = decoded(ApiKey::ApiVersions, 3, out);
        let got: Vec<_> = back
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        assert_eq!(got, vec![(0, 3, 9), (3, 0, 13)]);
    }

    #[test]
    fn produce_without_leader_hints_travels_unchanged() {
        let r = ProduceResponse::default().with_throttle_time_ms(5);
        let frame = frame_of(ApiKey::Produce, 11, &r);
        let out = rewrite(ApiKey::Produce, 11, frame, &Seen::default(), None).unwrap();
        assert_eq!(out, Rewritten::Same);
    }

    #[test]
    fn a_garbled_response_is_an_error_not_a_panic() {
        let frame = Bytes::from_static(&[0, 0, 0, 42, 0xff, 0xff, 0xff]);
        for key in [
            ApiKey::Metadata,
            ApiKey::FindCoordinator,
            ApiKey::DescribeCluster,
        ] {
            assert!(rewrite(
                key,
                12.min(key.valid_versions().max),
                frame.clone(),
                &Seen::default(),
                None
            )
            .is_err());
        }
    }
}
