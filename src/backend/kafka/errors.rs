//! Kafka error codes in strait's own requests: which are worth retrying on the leader, and
//! how the rest become storage errors (one place, so every Kinesis operation on the Kafka
//! backend reports a refusal the same way).

use kafka_protocol::error::ResponseError;

use crate::backend::{Refusal, StorageError};

pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
// The catalog's transactions (`fence.rs`).
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const PRODUCER_FENCED: i16 = 90;
const INVALID_TOPIC: i16 = 17;
const POLICY_VIOLATION: i16 = 44;
const INVALID_CONFIG: i16 = 40;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// Why a request to the cluster did not succeed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The connection failed or the broker answered with a retriable code (leader moved,
    /// not enough replicas, timed out): worth trying again after a metadata refresh.
    Retriable(String),
    /// An answer that retrying will not change.
    Fatal { code: i16, message: String },
}

impl Failure {
    pub fn into_storage(self, topic: &str) -> StorageError {
        match self {
            Failure::Retriable(why) => StorageError::Unavailable(format!(
                "Kafka cluster did not answer for {topic}: {why}"
            )),
            Failure::Fatal { code, message } => refusal(code, Some(&message), "request", topic),
        }
    }
}

/// Ok for code 0; the failure class otherwise. A just-created topic's partitions are
/// briefly unknown to brokers, so UNKNOWN_TOPIC_OR_PARTITION is retried too.
pub fn check(code: i16, api: &str, topic: &str) -> Result<(), Failure> {
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code);
    let text = error.map_or_else(|| format!("error code {code}"), |e| format!("{e:?}: {e}"));
    let message = format!("{api} on {topic}: {text}");
    if code == UNKNOWN_TOPIC_OR_PARTITION || error.is_some_and(|e| e.is_retriable()) {
        Err(Failure::Retriable(message))
    } else {
        Err(Failure::Fatal { code, message })
    }
}

/// A refusal the client can act on becomes InvalidArgument or LimitExceeded; the rest are
/// storage failures (InternalFailure on the Kinesis side).
pub fn refusal(code: i16, message: Option<&str>, api: &str, topic: &str) -> StorageError {
    let name =
        ResponseError::try_from_code(code).map_or_else(|| code.to_string(), |e| format!("{e:?}"));
    let detail = message.unwrap_or("");
    let said = format!("The Kafka cluster refused {api} for topic {topic} ({name}). {detail}");
    let (class, message) = match code {
        INVALID_TOPIC | POLICY_VIOLATION | INVALID_CONFIG | INVALID_PARTITIONS => {
            (Refusal::InvalidArgument, said.trim_end().to_string())
        }
        INVALID_REPLICATION_FACTOR => (Refusal::LimitExceeded, said.trim_end().to_string()),
        TOPIC_AUTHORIZATION_FAILED | CLUSTER_AUTHORIZATION_FAILED => (
            Refusal::InvalidArgument,
            format!("strait's Kafka principal is not allowed to {api} topic {topic} ({name})."),
        ),
        _ => (Refusal::Failed, said.trim_end().to_string()),
    };
    StorageError::Refused {
        code,
        class,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_moves_retry_and_refusals_do_not() {
        assert!(check(0, "Produce", "t").is_ok());
        // NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT.
        for code in [6, 19, 7, UNKNOWN_TOPIC_OR_PARTITION] {
            assert!(
                matches!(check(code, "Produce", "t"), Err(Failure::Retriable(_))),
                "{code}"
            );
        }
        // MESSAGE_TOO_LARGE, OUT_OF_ORDER_SEQUENCE_NUMBER.
        for code in [10, 45] {
            assert!(
                matches!(check(code, "Produce", "t"), Err(Failure::Fatal { .. })),
                "{code}"
            );
        }
        assert!(matches!(
            refusal(INVALID_TOPIC, Some("bad name"), "CreateTopics", ".."),
            StorageError::Refused { class: Refusal::InvalidArgument, message: m, .. } if m.contains("InvalidTopicException") && m.contains("bad name")
        ));
    }
}
