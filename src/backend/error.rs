//! The storage layer's own error. A backend says what failed in its terms (local I/O, a
//! cluster's refusal with its error code, no answer, a corrupt batch) and keeps the cause;
//! the core turns it into its own error in one place (`core::error`).

use std::io;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    /// Local I/O failed (a segment, an fsync, a metadata file).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The cluster refused a request with an error code that retrying will not change.
    #[error("{message}")]
    Refused {
        /// The cluster's error code (Kafka's, on the Kafka backend).
        code: i16,
        class: Refusal,
        message: String,
    },
    /// The backend could not complete the call: no answer in time, a closed connection, an
    /// answer that made no sense. The call may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// A record batch that fails its CRC or framing checks.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    /// Another replica took the catalog fence during this change, which was not written;
    /// the change may be tried again from the catalog as it now is.
    #[error("{0}")]
    Fenced(String),
}

/// What a refusal means to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request named something the cluster will not accept (a topic name, a config).
    InvalidArgument,
    /// A limit of the cluster (replication factor, partitions).
    LimitExceeded,
    /// A record the backend cannot store as it is (a key Kinesis cannot take as a
    /// partition key): INVALID_RECORD to a Kafka producer.
    InvalidRecord,
    /// A record larger than the backend stores: MESSAGE_TOO_LARGE to a Kafka producer.
    TooLarge,
    /// A topic asked to be made that is already there (made outside strait).
    Exists,
    /// Something strait is configured not to do (a topic outside the streams it shows):
    /// POLICY_VIOLATION to a Kafka client.
    Policy,
    /// Anything else: a storage failure to the client.
    Failed,
}

pub type StorageResult<T> = Result<T, StorageError>;

impl StorageError {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<io::Error> for StorageError {
    fn from(source: io::Error) -> Self {
        StorageError::io("I/O", source)
    }
}
