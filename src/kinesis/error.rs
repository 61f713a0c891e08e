//! Kinesis errors: an exception name, a message and an HTTP status. `From<CoreError>` is the
//! one place where core errors become Kinesis exceptions.

use serde::Serialize;

use crate::core::error::CoreError;
use crate::protocol::kinesis::codec::DecodeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
}

impl ApiError {
    fn client(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            status: 400,
        }
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::client("InvalidArgumentException", message)
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::client("ValidationException", message)
    }
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::client("SerializationException", message)
    }
    pub fn unknown_operation(message: impl Into<String>) -> Self {
        Self::client("UnknownOperationException", message)
    }
    pub fn resource_not_found(message: impl Into<String>) -> Self {
        Self::client("ResourceNotFoundException", message)
    }
    pub fn expired_iterator(message: impl Into<String>) -> Self {
        Self::client("ExpiredIteratorException", message)
    }
    pub fn resource_in_use(message: impl Into<String>) -> Self {
        Self::client("ResourceInUseException", message)
    }
    pub fn provisioned_throughput_exceeded(message: impl Into<String>) -> Self {
        Self::client("ProvisionedThroughputExceededException", message)
    }
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::client("LimitExceededException", message)
    }
    /// A request framing strait does not take (a transfer coding other than chunked).
    pub fn not_implemented(message: impl Into<String>) -> Self {
        ApiError {
            code: "NotImplemented",
            message: message.into(),
            status: 501,
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            code: "InternalFailure",
            message: message.into(),
            status: 500,
        }
    }

    /// AWS's "1 validation error detected" form for a member that breaks a constraint.
    pub fn constraint(value: &str, member: &str, constraint: &str) -> Self {
        Self::validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ))
    }

    pub fn missing(member: &str) -> Self {
        Self::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    }

    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            kind: self.code,
            message: &self.message,
        }
    }
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    #[serde(rename = "__type")]
    kind: &'a str,
    message: &'a str,
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        ApiError::serialization(e.0)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::StreamNotFound { .. }
            | CoreError::ShardNotFound { .. }
            | CoreError::ConsumerNotFound { .. } => {
                ApiError::client("ResourceNotFoundException", message)
            }
            CoreError::StreamExists { .. }
            | CoreError::StreamNotActive { .. }
            | CoreError::ConsumerExists { .. }
            | CoreError::SubscriptionInUse { .. }
            | CoreError::HasConsumers { .. }
            | CoreError::ConcurrentChange(_)
            | CoreError::WritesHeld(_) => ApiError::client("ResourceInUseException", message),
            CoreError::ShardClosed { .. } | CoreError::InvalidArgument(_) => {
                ApiError::client("InvalidArgumentException", message)
            }
            CoreError::IteratorExpired { .. } => {
                ApiError::client("ExpiredIteratorException", message)
            }
            CoreError::Validation(_) | CoreError::Policy(_) => {
                ApiError::client("ValidationException", message)
            }
            CoreError::LimitExceeded(_) => ApiError::client("LimitExceededException", message),
            CoreError::CorruptBatch(_)
            | CoreError::BatchRefused(_)
            | CoreError::OffsetOutOfRange { .. }
            | CoreError::ProducerFenced { .. }
            | CoreError::OutOfOrderSequence { .. }
            | CoreError::KeyOutsideRange { .. } => {
                // Kafka-only conditions; a Kinesis request never causes them.
                tracing::error!(error = %message, "unexpected error on a Kinesis path");
                ApiError::internal("Internal Service Failure")
            }
            CoreError::Storage(detail) => {
                tracing::error!(error = %detail, "storage failure");
                ApiError::internal("Internal Service Failure")
            }
            CoreError::Internal(detail) => {
                tracing::error!(error = %detail, "storage failure");
                ApiError::internal("Internal Service Failure")
            }
        }
    }
}
