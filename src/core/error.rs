//! The core's one error type. Variants say what went wrong in domain terms and carry the
//! offending values; each front end maps them to its protocol's errors in one place.

use std::sync::Arc;

use thiserror::Error;

use crate::backend::{Refusal as StorageRefusal, StorageError};
pub use crate::protocol::kafka::validate::Refusal;

#[derive(Debug, Clone, Error)]
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
    /// The stream takes no writes here for now (a migration's source is its only writer).
    #[error("{0}")]
    WritesHeld(String),
    /// A record batch that fails its CRC or framing checks.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    /// A produced batch whose CRC holds but whose records Kafka's rules refuse.
    #[error("{0}")]
    BatchRefused(Refusal),
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
    /// Another strait replica changed the catalog at the same moment; nothing was written.
    #[error("Another strait replica changed the stream catalog at the same moment, so this change was not made; try again. ({0})")]
    ConcurrentChange(String),
    /// Stream deletion refused while consumers are registered.
    #[error("Stream {stream} under account {account} has registered consumers; set EnforceConsumerDeletion to delete it with them.")]
    HasConsumers { stream: String, account: String },
    /// Storage failed; the request may be retried. Never used for bad input. Shared, so one
    /// failed append can answer every record it carried.
    #[error("storage failure: {0}")]
    Storage(#[source] Arc<StorageError>),
    /// strait's own state did not hold together (a corrupt catalog document, a stream with no
    /// open shard); the request may be retried.
    #[error("internal failure: {0}")]
    Internal(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    /// A stored batch whose records do not decode.
    pub fn undecodable(why: String) -> Self {
        CoreError::Internal(format!("a stored record batch does not decode: {why}"))
    }
}

/// The one place storage errors become core errors: a cluster's refusal the client can act on
/// keeps its meaning, everything else is a storage failure with its cause kept.
impl From<StorageError> for CoreError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Refused {
                class: StorageRefusal::InvalidArgument,
                message,
                ..
            } => CoreError::InvalidArgument(message),
            StorageError::Refused {
                class: StorageRefusal::LimitExceeded,
                message,
                ..
            } => CoreError::LimitExceeded(message),
            StorageError::Refused {
                class: StorageRefusal::InvalidRecord,
                message,
                ..
            } => CoreError::BatchRefused(Refusal::InvalidRecord(message)),
            StorageError::Refused {
                class: StorageRefusal::TooLarge,
                message,
                ..
            } => CoreError::BatchRefused(Refusal::TooLarge(message)),
            StorageError::Refused {
                class: StorageRefusal::Policy,
                message,
                ..
            } => CoreError::Policy(message),
            StorageError::CorruptBatch(m) => CoreError::CorruptBatch(m),
            StorageError::Fenced(m) => CoreError::ConcurrentChange(m),
            other => CoreError::Storage(Arc::new(other)),
        }
    }
}
