//! Kafka error codes: `code` is the one place where core errors become Kafka errors.

use kafka_protocol::error::ResponseError;

use crate::core::error::{CoreError, Refusal};
use crate::core::groups::GroupError;

pub fn code(e: &CoreError) -> i16 {
    let err = match e {
        CoreError::StreamNotFound { .. } | CoreError::ShardNotFound { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        // Kinesis-only conditions; DeleteTopics removes consumers along with the stream.
        CoreError::ConsumerNotFound { .. }
        | CoreError::ConsumerExists { .. }
        | CoreError::SubscriptionInUse { .. }
        | CoreError::HasConsumers { .. } => ResponseError::InvalidRequest,
        // Retriable: the change was not made and may go again.
        CoreError::ConcurrentChange(_) => ResponseError::RequestTimedOut,
        CoreError::StreamExists { .. } => ResponseError::TopicAlreadyExists,
        CoreError::StreamNotActive { .. } => ResponseError::LeaderNotAvailable,
        CoreError::ShardClosed { .. } => ResponseError::PolicyViolation,
        CoreError::IteratorExpired { .. } | CoreError::InvalidArgument(_) => {
            ResponseError::InvalidRequest
        }
        CoreError::Validation(_) => ResponseError::InvalidRequest,
        CoreError::LimitExceeded(_) | CoreError::Policy(_) | CoreError::WritesHeld(_) => {
            ResponseError::PolicyViolation
        }
        CoreError::CorruptBatch(_) => ResponseError::CorruptMessage,
        CoreError::BatchRefused(r) => match r {
            Refusal::InvalidRecord(_) => ResponseError::InvalidRecord,
            Refusal::TooLarge(_) => ResponseError::MessageTooLarge,
            Refusal::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
            Refusal::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
        },
        CoreError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        CoreError::ProducerFenced { .. } => ResponseError::InvalidProducerEpoch,
        CoreError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        CoreError::KeyOutsideRange { .. } => ResponseError::InvalidRecord,
        CoreError::Internal(detail) => {
            // Retriable, as Kafka answers a broker's own storage trouble.
            tracing::error!(error = %detail, "internal failure");
            ResponseError::KafkaStorageError
        }
        CoreError::Storage(detail) => {
            tracing::error!(error = %detail, "storage failure");
            ResponseError::KafkaStorageError
        }
    };
    err.code()
}

/// Group coordinator errors, mapped here beside core errors.
pub fn group_code(e: &GroupError) -> i16 {
    let err = match e {
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::MemberIdRequired(_) => ResponseError::MemberIdRequired,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::ReadOnlyGroup => ResponseError::GroupAuthorizationFailed,
        GroupError::External => ResponseError::RequestTimedOut,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
    };
    err.code()
}

pub const NONE: i16 = 0;

pub fn of(e: ResponseError) -> i16 {
    e.code()
}
