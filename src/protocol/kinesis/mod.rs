//! The Kinesis Data Streams wire protocol: the JSON 1.1 and CBOR 1.1 body codecs, the
//! `application/vnd.amazon.eventstream` frames of SubscribeToShard, and the KPL aggregate
//! format. SigV4 is in `protocol::aws`, shared with the other AWS services strait talks to.

pub mod aggregation;
pub mod cbor_records;
pub mod codec;
pub mod eventstream;
pub mod sequence;
pub mod shapes;
pub mod shard_ids;
