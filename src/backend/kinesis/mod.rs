//! Amazon Kinesis as a backend. Today: the upstream connection the Kinesis pass-through
//! forwards through (`upstream.rs`). The `Log` over Kinesis that Kafka clients need (offsets,
//! the state store) is the next step of the same issue.

pub mod upstream;
