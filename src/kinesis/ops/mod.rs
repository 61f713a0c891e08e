//! The Kinesis operations table: every operation of the API model, its status in strait, and
//! its handler. The router dispatches from it and `docs/compatibility.md` is checked against
//! it. Handlers live in the sibling modules, grouped by what they touch.

mod consumers;
pub mod event_cache;
mod paging;
mod records;
mod reshard;
mod settings;
mod shapes;
mod shards;
mod streams;
mod subscribe;
mod tags;
pub mod throttle;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ApiError;
use crate::core::Core;
use crate::observe::metrics::RequestMetric;
use crate::protocol::kinesis::codec::{self, Protocol};

/// What a handler gets: the core and the identity the ARNs are built from.
pub struct Ctx {
    pub core: Arc<Core>,
    /// Shadow groups showing EFO positions to Kafka tools; `None` on the Kafka backend,
    /// where Kafka tools see the cluster's own groups.
    pub groups: Option<Arc<crate::core::groups::GroupCoordinator>>,
    pub region: String,
    pub max_consumers_per_stream: u32,
    pub subscription_lifetime: std::time::Duration,
    /// Encoded events shared by the consumers of one shard.
    pub events: event_cache::EventCache,
    /// Turns true at shutdown: subscriptions end cleanly.
    pub closing: crate::listener::Closing,
    /// Kinesis's per-shard limits, when `kinesis.throttling: aws` asks for them.
    pub throttle: throttle::Throttle,
}

impl Ctx {
    /// The context a Kinesis listener serves `core` with, under `config`.
    pub fn new(
        core: Arc<Core>,
        groups: Option<Arc<crate::core::groups::GroupCoordinator>>,
        config: &crate::config::Config,
        closing: crate::listener::Closing,
    ) -> Ctx {
        Ctx {
            core,
            groups,
            region: config.region.clone(),
            max_consumers_per_stream: config.kinesis.max_consumers_per_stream,
            subscription_lifetime: std::time::Duration::from_secs(
                config.kinesis.subscription_lifetime_secs,
            ),
            events: event_cache::EventCache::new(32 << 20),
            closing,
            throttle: throttle::Throttle::new(
                config.kinesis.throttling == crate::config::Throttling::Aws,
            ),
        }
    }

    /// A context over `core` with the default configuration and no shadow groups that never
    /// closes: for running handlers without a listener (the fuzz target `kinesis_request`).
    pub fn detached(core: Arc<Core>) -> Ctx {
        static NEVER_CLOSES: std::sync::OnceLock<tokio::sync::watch::Sender<bool>> =
            std::sync::OnceLock::new();
        let closing = NEVER_CLOSES
            .get_or_init(|| tokio::sync::watch::channel(false).0)
            .subscribe();
        Ctx::new(core, None, &crate::config::Config::default(), closing)
    }

    pub fn stream_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.region,
            self.core.account_id()
        )
    }
}

pub use subscribe::EventStream;

pub type Reply = Pin<Box<dyn Future<Output = Result<Bytes, ApiError>> + Send>>;
pub type StreamReply = Pin<Box<dyn Future<Output = Result<EventStream, ApiError>> + Send>>;

/// How an operation answers: one encoded body, or an event stream (SubscribeToShard).
#[derive(Clone, Copy)]
pub enum Handler {
    Unary(fn(Arc<Ctx>, Protocol, Bytes) -> Reply),
    Stream(fn(Arc<Ctx>, Protocol, Bytes) -> StreamReply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Supported,
    /// Works, with the limits the note states.
    Partial,
    NotSupported,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Supported => "supported",
            Status::Partial => "partial",
            Status::NotSupported => "not supported",
        }
    }
}

pub struct Operation {
    pub name: &'static str,
    pub status: Status,
    pub note: &'static str,
    pub handler: Option<Handler>,
}

/// Decodes the input, runs the operation, encodes the output in the request's protocol.
async fn run<I, O, F, Fut>(
    ctx: Arc<Ctx>,
    protocol: Protocol,
    body: Bytes,
    f: F,
) -> Result<Bytes, ApiError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(Arc<Ctx>, I) -> Fut,
    Fut: Future<Output = Result<O, ApiError>>,
{
    let input: I = codec::decode(protocol, &body)?;
    let output = f(ctx, input).await?;
    Ok(codec::encode(protocol, &output))
}

macro_rules! op {
    ($name:literal, $status:ident, $note:literal, $f:path) => {
        Operation {
            name: $name,
            status: Status::$status,
            note: $note,
            handler: Some(Handler::Unary(|ctx, protocol, body| {
                Box::pin(run(ctx, protocol, body, $f))
            })),
        }
    };
    ($name:literal, $note:literal) => {
        Operation {
            name: $name,
            status: Status::NotSupported,
            note: $note,
            handler: None,
        }
    };
}

pub static OPERATIONS: &[Operation] = &[
    op!("AddTagsToStream", Supported, "", tags::add_tags_to_stream),
    op!("CreateStream", Supported, "Streams are ACTIVE at once. Tags, StreamModeDetails and MaxRecordSizeInKiB are honoured; WarmThroughputMiBps is ignored. The tag strait:key-hash (kinesis-md5, the default, or kafka-murmur2) picks how keys find shards, fixed for the stream's life.", streams::create_stream),
    op!("DecreaseStreamRetentionPeriod", Supported, "", settings::decrease_retention),
    op!("DeleteResourcePolicy", "Resource policies are not modelled."),
    op!("DeleteStream", Supported, "Refused with ResourceInUseException while consumers are registered, unless EnforceConsumerDeletion is set.", streams::delete_stream),
    op!("DeregisterStreamConsumer", Supported, "ConsumerARN, or StreamARN with ConsumerName. DELETING for a second (so the name never gets the old ARN back), then gone; open subscriptions end with ResourceNotFoundException.", consumers::deregister_stream_consumer),
    op!("DescribeAccountSettings", "Account settings are not modelled."),
    op!("DescribeLimits", Supported, "Limits come from `streams.shard_limit` and `streams.on_demand_stream_count_limit`.", settings::describe_limits),
    op!("DescribeStream", Supported, "Paging with Limit and ExclusiveStartShardId.", streams::describe_stream),
    op!("DescribeStreamConsumer", Supported, "CREATING for about 200 ms after registration, then ACTIVE.", consumers::describe_stream_consumer),
    op!("DescribeStreamSummary", Supported, "Never returns a StreamId, so SDK endpoint rules keep the custom endpoint.", streams::describe_stream_summary),
    op!("DisableEnhancedMonitoring", Partial, "State is recorded and reported; no CloudWatch metrics are emitted.", settings::disable_monitoring),
    op!("EnableEnhancedMonitoring", Partial, "State is recorded and reported; no CloudWatch metrics are emitted.", settings::enable_monitoring),
    op!("GetRecords", Supported, "Limit, the 10 MiB cap, MillisBehindLatest, and ChildShards at the end of a closed shard. With `kinesis.throttling: aws`, 5 calls and 2 MiB a second per shard (ProvisionedThroughputExceededException).", records::get_records),
    op!("GetResourcePolicy", "Resource policies are not modelled."),
    op!("GetShardIterator", Supported, "All five iterator types. Iterators are signed tokens that expire after 300 s.", records::get_shard_iterator),
    op!("IncreaseStreamRetentionPeriod", Supported, "", settings::increase_retention),
    op!("ListShards", Supported, "Every ShardFilter type and NextToken paging.", shards::list_shards),
    op!("ListStreamConsumers", Supported, "MaxResults, NextToken and StreamCreationTimestamp.", consumers::list_stream_consumers),
    op!("ListStreams", Supported, "StreamNames and StreamSummaries, with Limit, ExclusiveStartStreamName and NextToken.", streams::list_streams),
    op!("ListTagsForResource", Supported, "Stream and consumer ARNs.", tags::list_tags_for_resource),
    op!("ListTagsForStream", Supported, "", tags::list_tags_for_stream),
    op!("MergeShards", Supported, "kinesis-md5 streams: parents close and a child is appended as a new partition.", reshard::merge_shards),
    op!("PutRecord", Supported, "ExplicitHashKey and SequenceNumberForOrdering (order per shard is always strict).", records::put_record),
    op!("PutRecords", Supported, "Up to 500 records and 10 MiB; per-record results in request order.", records::put_records),
    op!("PutResourcePolicy", "Resource policies are not modelled."),
    op!("RegisterStreamConsumer", Supported, "Registrations persist with the stream; `kinesis.max_consumers_per_stream` (default 20) per stream. Tags are stored (TagResource and ListTagsForResource take consumer ARNs).", consumers::register_stream_consumer),
    op!("RemoveTagsFromStream", Supported, "", tags::remove_tags_from_stream),
    op!("SplitShard", Supported, "kinesis-md5 streams: the parent closes and two children are appended as new partitions.", reshard::split_shard),
    op!("StartStreamEncryption", Partial, "The KMS key id is recorded and reported; data is not encrypted by KMS.", settings::start_encryption),
    op!("StopStreamEncryption", Partial, "Recorded state only, as StartStreamEncryption.", settings::stop_encryption),
    Operation {
        name: "SubscribeToShard",
        status: Status::Supported,
        note: "HTTP/2 and HTTP/1.1. Records are pushed as they are appended; the stream ends after `kinesis.subscription_lifetime_secs`; a second subscriber within 5 s is refused, a later one takes over. Event payloads use the request's encoding (JSON or CBOR).",
        handler: Some(Handler::Stream(|ctx, protocol, body| {
            Box::pin(subscribe::subscribe_to_shard(ctx, protocol, body))
        })),
    },
    op!("TagResource", Supported, "Stream and consumer ARNs.", tags::tag_resource),
    op!("UntagResource", Supported, "Stream and consumer ARNs.", tags::untag_resource),
    op!("UpdateAccountSettings", "Account settings are not modelled."),
    op!("UpdateMaxRecordSize", Supported, "1024–10240 KiB, enforced on writes.", settings::update_max_record_size),
    op!("UpdateShardCount", Supported, "UNIFORM_SCALING in one step, as Kinesis builds it from splits and merges: scaling up splits the widest open shards at their midpoints, scaling down merges adjacent pairs, so every child has one or two parents; the target must be between half and double the open shard count (LimitExceededException).", reshard::update_shard_count),
    op!("UpdateStreamMode", Supported, "Recorded; both modes behave alike on the embedded backend.", settings::update_stream_mode),
    op!("UpdateStreamWarmThroughput", "Warm throughput is not modelled."),
];

/// The table index of an operation (the table is sorted, as a test checks).
pub fn find(name: &str) -> Option<usize> {
    OPERATIONS.binary_search_by(|o| o.name.cmp(name)).ok()
}

/// The request metrics of a table entry (`unknown` for no entry), resolved on the entry's
/// first request and kept.
pub fn request_metric(at: Option<usize>) -> &'static RequestMetric {
    static BY_OPERATION: OnceLock<Vec<OnceLock<RequestMetric>>> = OnceLock::new();
    let all =
        BY_OPERATION.get_or_init(|| (0..=OPERATIONS.len()).map(|_| OnceLock::new()).collect());
    let label = at.map_or("unknown", |i| OPERATIONS[i].name);
    all[at.unwrap_or(OPERATIONS.len())]
        .get_or_init(|| crate::observe::metrics().request_metric("kinesis", label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in OPERATIONS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
    }

    /// docs/compatibility.md must list every operation with the status in this table.
    #[test]
    fn compatibility_doc_matches_the_table() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/compatibility.md"),
        )
        .unwrap();
        for op in OPERATIONS {
            // The whole row, note included: the note states what the handler does (the
            // reshard policy, the limits), so a change to either shows here.
            let row = format!("| {} | {} | {} |", op.name, op.status.as_str(), op.note);
            let lines: Vec<&str> = doc
                .lines()
                .filter(|l| l.starts_with(&format!("| {} |", op.name)))
                .collect();
            assert_eq!(
                lines,
                [row.as_str()],
                "docs/compatibility.md's row for {}",
                op.name
            );
            assert_eq!(op.handler.is_some(), op.status != Status::NotSupported);
        }
    }
}
