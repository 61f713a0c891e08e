//! The Apache Kafka / Amazon MSK backend: strait stores nothing itself. This version carries
//! Kafka clients through to the cluster (`crate::kafka::passthrough`); the pieces here are
//! the cluster view (brokers, versions, reachability) and the framing both sides share.

pub mod cluster;
pub mod connect;
pub mod msk_iam;
pub mod sasl;
pub mod wire;
