//! The Kafka wire protocol around the kafka-protocol crate: framing (one reader, one writer),
//! the table of served API versions and their names, the RecordBatch v2 format, and what a
//! produced batch must satisfy.

pub mod consumer_protocol;
pub mod frame;
pub mod record_batch;
pub mod records;
pub mod validate;
pub mod versions;
