//! The Apache Kafka / Amazon MSK backend: strait stores nothing itself. Kafka clients pass
//! through to the cluster (`crate::kafka::passthrough`); Kinesis clients reach it through
//! the core, with streams as topics (`log`) and the catalog in a compacted topic (`meta`).
//! Also here: the cluster view (brokers, versions, leaders, reachability), connections with
//! TLS and SASL, and the framing both sides share.

mod appender;
pub mod cluster;
pub mod connect;
mod errors;
mod fence;
pub mod group_lag;
pub mod group_offsets;
pub mod log;
pub mod meta;
pub mod msk_iam;
mod producer;
pub mod sasl;
