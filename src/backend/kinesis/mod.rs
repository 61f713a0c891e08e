//! Amazon Kinesis as a backend: the upstream connection the Kinesis pass-through forwards
//! through (`upstream.rs`), strait's own Kinesis client on it (`client.rs`), and the `Log`
//! that shows Kafka clients Kinesis streams as topics (`log.rs`, with each partition's combined writes in `appender.rs`, its reader
//! and offset index in `tail.rs`, strait's own enhanced fan-out in `fanout.rs` (its consumers of replicas gone for good
//! deregistered by `consumer_sweep.rs`) and the shard ⇄
//! partition mapping in `shards.rs`; which streams are topics in `filter.rs`; Kafka groups tied to KCL lease tables in
//! `kcl_leases.rs`; state replicas share, in a DynamoDB table, in `state.rs`, with the offset
//! index there in `shared_index.rs` and metadata documents in `shared_meta.rs`).

pub mod appender;
pub mod client;
pub mod consumer_sweep;
pub mod fanout;
pub mod filter;
pub mod kcl_leases;
pub mod log;
pub mod replicas;
pub mod shards;
pub mod shared_index;
pub mod shared_meta;
pub mod state;
pub mod tail;
pub mod upstream;
