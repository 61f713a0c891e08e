//! SubscribeToShard (reference §1.10, §4c): validates the request, takes the subscription
//! lease, and runs the push loop that turns log reads into event-stream messages. Events
//! are pushed as soon as records are appended (the loop waits on the core's append signal,
//! not a timer); a bounded channel of one message hands them to the HTTP body, so a slow
//! reader holds the loop back instead of growing memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::consumers::parse_consumer_arn;
use super::event_cache::{CachedEvent, EventKey};
use super::records::{child_shard, iterator_start, record_out, ChildShard, RecordOut};
use super::Ctx;
use crate::core::catalog::shard_id;
use crate::core::error::CoreError;
use crate::core::fanout::{ConsumerStatus, Revoked, SubscriptionLease};
use crate::core::{now_ms, Span};
use crate::kinesis::codec::{self, Protocol, Timestamp};
use crate::kinesis::error::ApiError;
use crate::kinesis::eventstream;
use crate::kinesis::validate::{self, required};

/// An event with no records is still sent this often, so consumers can checkpoint and
/// see MillisBehindLatest while a shard is idle.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Limits of one SubscribeToShardEvent.
const MAX_EVENT_RECORDS: usize = 10_000;
const MAX_EVENT_BYTES: usize = 1 << 20;

/// The event messages of one subscription, in order; the body ends when the sender does.
pub struct EventStream {
    pub messages: mpsc::Receiver<Bytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartingPosition {
    #[serde(rename = "Type")]
    kind: Option<String>,
    sequence_number: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeInput {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_id: Option<String>,
    starting_position: Option<StartingPosition>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeToShardEvent {
    records: Vec<RecordOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    continuation_sequence_number: Option<String>,
    millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    child_shards: Vec<ChildShard>,
}

#[derive(Serialize)]
struct ExceptionBody<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct Empty {}

/// The content type of event payloads: the request's own encoding.
fn event_content_type(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Json => "application/json",
        Protocol::Cbor => "application/cbor",
    }
}

pub async fn subscribe_to_shard(
    ctx: Arc<Ctx>,
    protocol: Protocol,
    body: Bytes,
) -> Result<EventStream, ApiError> {
    let i: SubscribeInput = codec::decode(protocol, &body)?;
    let arn = required(i.consumer_arn, "consumerARN")?;
    let shard = required(i.shard_id, "shardId")?;
    let position = required(i.starting_position, "startingPosition")?;
    let kind = required(position.kind, "startingPosition.type")?;
    let arn = parse_consumer_arn(&arn, "consumerARN")?;
    validate::name(&shard, "shardId")?;
    let consumer = ctx.resolve_consumer_arn(&arn)?;
    if consumer.status(now_ms()) != Some(ConsumerStatus::Active) {
        return Err(ApiError::resource_in_use(format!(
            "Consumer {} under stream {} is not ACTIVE.",
            arn.consumer, arn.stream
        )));
    }
    let stream = arn.stream.clone();
    let partition = validate::shard_id(&shard, "shardId").map_err(|_| {
        ApiError::resource_not_found(format!(
            "Shard {shard} in stream {stream} under account {} does not exist",
            ctx.core.account_id()
        ))
    })?;
    let start = iterator_start(
        &ctx,
        &stream,
        &shard,
        &kind,
        position.sequence_number.as_deref(),
        position.timestamp,
    )?;
    let offset = ctx.core.start_offset(&stream, partition, start)?;
    let lease = ctx
        .core
        .subscribe_lease(&stream, &arn.consumer, partition)?;
    let (tx, rx) = mpsc::channel(1);
    let sub = Subscription {
        ctx: ctx.clone(),
        protocol,
        stream,
        partition,
        offset,
        lease,
        tx,
        deadline: Instant::now() + ctx.subscription_lifetime,
        consumer: arn.consumer.clone(),
        shadow: None,
    };
    tracing::debug!(consumer = %arn.consumer, shard = %shard_id(partition), offset, "subscribed");
    tokio::spawn(sub.run());
    Ok(EventStream { messages: rx })
}

struct Subscription {
    ctx: Arc<Ctx>,
    protocol: Protocol,
    stream: String,
    partition: u32,
    offset: i64,
    lease: SubscriptionLease,
    tx: mpsc::Sender<Bytes>,
    deadline: Instant,
    consumer: String,
    /// When the shadow group last recorded this subscription, and at which offset.
    shadow: Option<(Instant, i64)>,
}

/// The shadow group is written at most this often per subscription.
const SHADOW_EVERY: Duration = Duration::from_secs(1);

/// Why the push loop stopped.
enum End {
    /// Lifetime over, shard read to its end, or the client went away.
    Clean,
    /// Tell the client why before ending.
    Exception(&'static str, String),
}

impl Subscription {
    async fn run(mut self) {
        let end = self.push().await;
        self.record_position(true);
        if let End::Exception(kind, message) = end {
            let payload = codec::encode(self.protocol, &ExceptionBody { message: &message });
            let msg = eventstream::exception(kind, event_content_type(self.protocol), &payload);
            // Best effort: a reader that stopped reading does not hold this task.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.tx.send(msg)).await;
        }
    }

    /// Sends one message, unless the subscription is revoked or its lifetime ends first.
    async fn send(&mut self, msg: Bytes) -> Result<(), End> {
        tokio::select! {
            sent = self.tx.send(msg) => sent.map_err(|_| End::Clean),
            _ = self.lease.revoked.changed() => Err(self.revoked()),
            _ = tokio::time::sleep_until(self.deadline) => Err(End::Clean),
        }
    }

    fn revoked(&self) -> End {
        match *self.lease.revoked.borrow() {
            Revoked::TakenOver => End::Exception(
                "ResourceInUseException",
                format!(
                    "Another subscription to {} took over this one.",
                    shard_id(self.partition)
                ),
            ),
            Revoked::Gone => End::Exception(
                "ResourceNotFoundException",
                format!(
                    "Consumer {} or stream {} no longer exists.",
                    self.consumer, self.stream
                ),
            ),
            Revoked::Held => End::Clean,
        }
    }

    async fn push(&mut self) -> End {
        let content_type = event_content_type(self.protocol);
        let initial = codec::encode(self.protocol, &Empty {});
        if let Err(end) = self
            .send(eventstream::event(
                "initial-response",
                content_type,
                &initial,
            ))
            .await
        {
            return end;
        }
        let mut last_event: Option<Instant> = None;
        loop {
            if let Some(hit) = self.cached() {
                if let Err(end) = self.send(hit.message).await {
                    return end;
                }
                self.offset = hit.next_offset;
                last_event = Some(Instant::now());
                self.record_position(false);
                continue;
            }
            let core = self.ctx.core.clone();
            // Armed before reading, so an append between the read and the wait wakes us.
            let appended = core.append_signal().notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let span = match self.read().await {
                Ok(span) => span,
                Err(e) => {
                    let e = ApiError::from(e);
                    let kind = match e.code {
                        "ResourceNotFoundException" => "ResourceNotFoundException",
                        _ => "InternalFailureException",
                    };
                    return End::Exception(kind, e.message);
                }
            };
            let start = self.offset;
            self.offset = span.next_offset;
            let due = last_event.is_none_or(|t| t.elapsed() >= HEARTBEAT);
            let more = span.millis_behind_latest > 0 || span.records.len() >= MAX_EVENT_RECORDS;
            if !span.records.is_empty() || span.shard_ended || due {
                let ended = span.shard_ended;
                let shareable = !span.records.is_empty() && !ended;
                let msg = self.event(span);
                if shareable {
                    if let Some(key) = self.key(start) {
                        self.ctx.events.insert(
                            key,
                            CachedEvent {
                                message: msg.clone(),
                                next_offset: self.offset,
                            },
                        );
                    }
                }
                if let Err(end) = self.send(msg).await {
                    return end;
                }
                last_event = Some(Instant::now());
                self.record_position(false);
                if ended {
                    return End::Clean;
                }
                if more {
                    continue;
                }
            }
            let heartbeat = last_event.map_or(Instant::now(), |t| t + HEARTBEAT);
            tokio::select! {
                _ = &mut appended => {}
                _ = tokio::time::sleep_until(heartbeat.min(self.deadline)) => {}
                _ = self.lease.revoked.changed() => return self.revoked(),
                // The client went away: free the lease now, not at the next heartbeat.
                _ = self.tx.closed() => return End::Clean,
            }
            if Instant::now() >= self.deadline {
                return End::Clean;
            }
        }
    }

    /// Mirrors the position into `kinesis-efo.<consumer>` (off the runtime: it writes a file).
    fn record_position(&mut self, force: bool) {
        let due = match self.shadow {
            None => true,
            Some((at, offset)) => offset != self.offset && (force || at.elapsed() >= SHADOW_EVERY),
        };
        if !due {
            return;
        }
        self.shadow = Some((Instant::now(), self.offset));
        let groups = self.ctx.groups.clone();
        let (consumer, stream) = (self.consumer.clone(), self.stream.clone());
        let (partition, offset) = (self.partition, self.offset);
        tokio::task::spawn_blocking(move || {
            groups.commit_shadow(&consumer, &stream, partition, offset)
        });
    }

    fn key(&self, offset: i64) -> Option<EventKey> {
        let s = self.ctx.core.stream(&self.stream).ok()?;
        Some(EventKey {
            stream: self.stream.clone(),
            stream_created_ms: s.created_ms,
            partition: self.partition,
            offset,
            protocol: self.protocol,
        })
    }

    /// An event another consumer already built from this offset, while the offset is still
    /// retained.
    fn cached(&self) -> Option<CachedEvent> {
        let hit = self.ctx.events.get(&self.key(self.offset)?)?;
        let offsets = self
            .ctx
            .core
            .partition_offsets(&self.stream, self.partition)
            .ok()?;
        (self.offset >= offsets.log_start).then_some(hit)
    }

    async fn read(&self) -> Result<Span, CoreError> {
        let core = self.ctx.core.clone();
        let (stream, partition, offset) = (self.stream.clone(), self.partition, self.offset);
        tokio::task::spawn_blocking(move || {
            let s = core.stream(&stream)?;
            core.read_span(&s, partition, offset, MAX_EVENT_RECORDS, MAX_EVENT_BYTES)
        })
        .await
        .map_err(|e| CoreError::Storage(format!("subscription read failed: {e}")))?
    }

    fn event(&self, span: Span) -> Bytes {
        let encryption = self
            .ctx
            .core
            .stream(&self.stream)
            .ok()
            .and_then(|s| s.encryption_key.as_ref().map(|_| "KMS"));
        let continuation = (!span.shard_ended).then(|| span.continuation(self.partition));
        let event = SubscribeToShardEvent {
            child_shards: span.child_shards.iter().map(child_shard).collect(),
            continuation_sequence_number: continuation,
            millis_behind_latest: span.millis_behind_latest,
            records: span
                .records
                .into_iter()
                .map(|r| record_out(r, encryption))
                .collect(),
        };
        let payload = codec::encode(self.protocol, &event);
        eventstream::event(
            "SubscribeToShardEvent",
            event_content_type(self.protocol),
            &payload,
        )
    }
}
