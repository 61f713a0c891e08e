//! The Kafka wire protocol around the kafka-protocol crate: framing (one reader, one writer),
//! the table of served API versions and their names, and the RecordBatch v2 format.

pub mod frame;
pub mod record_batch;
pub mod records;
pub mod versions;
