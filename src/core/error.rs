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
