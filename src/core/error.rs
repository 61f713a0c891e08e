//! The core's one error type. Variants say what went wrong in domain terms and carry the
//! offending values; each front end maps them to its protocol's errors in one place.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    #[error("Stream {stream} under account {account} not found.")]
    StreamNotFound { stream: String, account: String },
    #[error("Stream {stream} under account {account} already exists.")]
    StreamExists { stream: String, account: String },
    #[error("Stream {stream} under account {account} is {status}, not ACTIVE.")]
    StreamNotActive {
        stream: String,
        account: String,
        status: &'static str,
    },
    #[error("Shard {shard} in stream {stream} under account {account} does not exist")]
    ShardNotFound {
        stream: String,
        shard: String,
        account: String,
    },
    #[error(
        "Shard {shard} in stream {stream} under account {account} is closed and accepts no writes"
    )]
    ShardClosed {
        stream: String,
        shard: String,
        account: String,
    },
    #[error("Iterator expired. The iterator was created {age_ms} ms ago, beyond the tolerated delay of 300000 milliseconds.")]
    IteratorExpired { age_ms: i64 },
    /// A request value the operation cannot accept; the message names it.
    #[error("{0}")]
    InvalidArgument(String),
    /// A value outside a modelled range or mode (AWS's ValidationException).
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// Refused by a stream's design (e.g. growing a kinesis-md5 stream through Kafka).
    #[error("{0}")]
    Policy(String),
    /// A record batch that fails its CRC or framing checks.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    #[error("offset {offset} is outside the range {log_start}..{high_watermark} of partition {partition} of {stream}")]
    OffsetOutOfRange {
        stream: String,
        partition: u32,
        offset: i64,
        log_start: i64,
        high_watermark: i64,
    },
    #[error("producer {producer_id} has been fenced by a newer epoch")]
    ProducerFenced { producer_id: i64 },
    #[error("out of order sequence from producer {producer_id}: got {got}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        got: i32,
        expected: i32,
    },
    #[error(
        "record with key {key:?} hashes outside the range of partition {partition} of {stream}"
    )]
    KeyOutsideRange {
        stream: String,
        partition: u32,
        key: String,
    },
    #[error("Consumer {consumer} under stream {stream} under account {account} not found.")]
    ConsumerNotFound {
        stream: String,
        consumer: String,
        account: String,
    },
    #[error("Consumer {consumer} under stream {stream} under account {account} already exists.")]
    ConsumerExists {
        stream: String,
        consumer: String,
        account: String,
    },
    /// A second subscription to one (consumer, shard) within five seconds of the first.
    #[error("Another active subscription exists for consumer {consumer} on shard {shard}; it started {age_ms} ms ago. Retry after 5 seconds to take it over.")]
    SubscriptionInUse {
        consumer: String,
        shard: String,
        age_ms: u64,
    },
    /// Stream deletion refused while consumers are registered.
    #[error("Stream {stream} under account {account} has registered consumers; set EnforceConsumerDeletion to delete it with them.")]
    HasConsumers { stream: String, account: String },
    /// Storage failed; the request may be retried. Never used for bad input.
    #[error("storage failure: {0}")]
    Storage(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl From<std::io::Error> for CoreError {
    fn from(e: std::io::Error) -> Self {
        CoreError::Storage(e.to_string())
    }
}
