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
use super::records::{child_shard, iterator_start, record_out};
use super::Ctx;
use crate::core::catalog::shard_id;
use crate::core::error::CoreError;
use crate::core::fanout::{ConsumerStatus, Revoked, SubscriptionLease};
use crate::core::{now_ms, Span};
use crate::kinesis::error::ApiError;
use crate::kinesis::validate::{self, required};
use crate::protocol::kinesis::codec::{self, Protocol, Timestamp};
use crate::protocol::kinesis::eventstream;
use crate::protocol::kinesis::shapes::{ChildShard, Record as RecordOut};

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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    child_shards: Vec<ChildShard>,
    /// Last, so a shared event's encoding can end with a fresh value (see `split_millis`).
    millis_behind_latest: i64,
}

/// An event encoded with MillisBehindLatest 0, cut just before that 0, so each send can
/// append its own value. `None` if the encoding does not end the expected way.
fn split_millis(protocol: Protocol, payload: &Bytes) -> Option<Bytes> {
    let tail: &[u8] = match protocol {
        Protocol::Json => b"0}",
        // The last value of a definite-length map: unsigned 0.
        Protocol::Cbor => &[0x00],
    };
    payload
        .ends_with(tail)
        .then(|| payload.slice(..payload.len() - tail.len()))
}

/// The payload of a split event with `millis` as its MillisBehindLatest.
fn with_millis(protocol: Protocol, prefix: &[u8], millis: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 12);
    out.extend_from_slice(prefix);
    let millis = millis.max(0) as u64;
    match protocol {
        Protocol::Json => {
            out.extend_from_slice(millis.to_string().as_bytes());
            out.push(b'}');
        }
        Protocol::Cbor => match millis {
            0..=23 => out.push(millis as u8),
            24..=0xff => out.extend_from_slice(&[0x18, millis as u8]),
            0x100..=0xffff => {
                out.push(0x19);
                out.extend_from_slice(&(millis as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0x1a);
                out.extend_from_slice(&(millis as u32).to_be_bytes());
            }
            _ => {
                out.push(0x1b);
                out.extend_from_slice(&millis.to_be_bytes());
            }
        },
    }
    out
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
        "SubscribeToShard",
        &stream,
        &shard,
        &kind,
        position.sequence_number.as_deref(),
        position.timestamp,
    )?;
    let stream_created_ms = ctx.core.stream(&stream)?.created_ms;
    let offset = ctx.core.start_offset(&stream, partition, start).await?;
    let lease = ctx.core.subscribe_lease(&stream, &consumer, partition)?;
    let (tx, rx) = mpsc::channel(1);
    let lag = crate::observe::metrics().efo_lag(&stream, &arn.consumer);
    let sub = Subscription {
        ctx: ctx.clone(),
        protocol,
        stream,
        stream_created_ms,
        partition,
        offset,
        lease,
        tx,
        deadline: Instant::now() + ctx.subscription_lifetime,
        paced: Instant::now(),
        consumer: arn.consumer.clone(),
        lag,
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
    /// The incarnation subscribed to: a stream deleted and re-created under the same name
    /// ends the subscription rather than continuing into the new one.
    stream_created_ms: i64,
    partition: u32,
    offset: i64,
    lease: SubscriptionLease,
    tx: mpsc::Sender<Bytes>,
    deadline: Instant,
    /// With `kinesis.throttling: aws`, when the bytes sent so far have had their time at
    /// 2 MiB a second (each consumer's share per shard on AWS).
    paced: Instant,
    consumer: String,
    /// This subscription's share of `strait_efo_consumer_millis_behind_latest`.
    lag: crate::observe::metrics::EfoLag,
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
        let gauge = &crate::observe::metrics().efo_subscriptions;
        gauge.inc();
        let end = self.push().await;
        gauge.dec();
        // A subscription that was taken over leaves the position to its successor.
        if *self.lease.revoked.borrow() == Revoked::Held {
            self.record_position(true);
        }
        if let End::Exception(kind, message) = end {
            let payload = codec::encode(self.protocol, &ExceptionBody { message: &message });
            let msg = eventstream::exception(kind, event_content_type(self.protocol), &payload);
            // Best effort: a reader that stopped reading does not hold this task.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.tx.send(msg)).await;
        }
    }

    /// Sends one message, unless the subscription is revoked or its lifetime ends first.
    async fn send(&mut self, msg: Bytes) -> Result<(), End> {
        let not_before = self.pace(msg.len());
        let tx = &self.tx;
        let paced_send = async move {
            tokio::time::sleep_until(not_before).await;
            tx.send(msg).await
        };
        tokio::select! {
            sent = paced_send => sent.map_err(|_| End::Clean),
            _ = crate::listener::closed(self.ctx.closing.clone()) => Err(End::Clean),
            _ = self.lease.revoked.changed() => Err(self.revoked()),
            _ = tokio::time::sleep_until(self.deadline) => Err(End::Clean),
        }
    }

    /// When a message of `bytes` may go: at once, unless throttling paces this consumer to
    /// 2 MiB a second.
    fn pace(&mut self, bytes: usize) -> Instant {
        if !self.ctx.throttle.is_on() {
            return Instant::now();
        }
        let start = self.paced.max(Instant::now());
        let per_sec = super::throttle::READ_BYTES_PER_SEC as f64;
        self.paced = start + Duration::from_secs_f64(bytes as f64 / per_sec);
        start
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
            if let Some((hit, millis)) = self.cached().await {
                let payload = with_millis(self.protocol, &hit.payload_prefix, millis);
                let msg = eventstream::event("SubscribeToShardEvent", content_type, &payload);
                self.lag.sending(millis);
                if let Err(end) = self.send(msg).await {
                    return end;
                }
                self.lag.sent();
                self.offset = hit.next_offset;
                crate::observe::metrics().read("kinesis", &self.stream, hit.records, hit.bytes);
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
            let (start, next) = (self.offset, span.next_offset);
            let due = last_event.is_none_or(|t| t.elapsed() >= HEARTBEAT);
            // An event cut by its size limits leaves records behind: send on at once.
            let more = !span.caught_up;
            if !span.records.is_empty() || span.shard_ended || due {
                let ended = span.shard_ended;
                let msg = self.event(span, start, next);
                if let Err(end) = self.send(msg).await {
                    return end;
                }
                self.lag.sent();
                // Only what was handed on counts as read (the shadow group records it).
                self.offset = next;
                last_event = Some(Instant::now());
                self.record_position(false);
                if ended {
                    return End::Clean;
                }
                if more {
                    continue;
                }
            } else {
                self.offset = next;
            }
            let heartbeat = last_event.map_or(Instant::now(), |t| t + HEARTBEAT);
            tokio::select! {
                _ = &mut appended => {}
                _ = tokio::time::sleep_until(heartbeat.min(self.deadline)) => {}
                _ = self.lease.revoked.changed() => return self.revoked(),
                // The client went away: free the lease now, not at the next heartbeat.
                _ = self.tx.closed() => return End::Clean,
                // Shutdown: a clean end of stream, so clients resubscribe elsewhere.
                _ = crate::listener::closed(self.ctx.closing.clone()) => return End::Clean,
            }
            if Instant::now() >= self.deadline {
                return End::Clean;
            }
        }
    }

    /// Mirrors the position into `kinesis-efo.<consumer>`. Written in place (it is a small
    /// file, at most once a second), so one subscription's commits land in order.
    fn record_position(&mut self, force: bool) {
        let due = match self.shadow {
            None => true,
            Some((at, offset)) => offset != self.offset && (force || at.elapsed() >= SHADOW_EVERY),
        };
        if !due {
            return;
        }
        self.shadow = Some((Instant::now(), self.offset));
        let Some(groups) = &self.ctx.groups else {
            return;
        };
        let commit =
            || groups.commit_shadow(&self.consumer, &self.stream, self.partition, self.offset);
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(commit),
            _ => commit(),
        }
    }

    fn key(&self, offset: i64, encrypted: bool) -> EventKey {
        EventKey {
            stream: self.stream.clone(),
            stream_created_ms: self.stream_created_ms,
            partition: self.partition,
            offset,
            protocol: self.protocol,
            encrypted,
        }
    }

    /// The stream as this subscription knows it: gone once deleted, even if re-created.
    fn current_stream(&self) -> Result<Arc<crate::core::catalog::Stream>, CoreError> {
        let s = self.ctx.core.stream(&self.stream)?;
        if s.created_ms != self.stream_created_ms {
            return Err(CoreError::StreamNotFound {
                stream: self.stream.clone(),
                account: self.ctx.core.account_id().to_string(),
            });
        }
        Ok(s)
    }

    /// An event another consumer already built from this offset, while the offset is still
    /// retained, with the MillisBehindLatest it has now.
    async fn cached(&self) -> Option<(CachedEvent, i64)> {
        let s = self.current_stream().ok()?;
        let hit = self
            .ctx
            .events
            .get(&self.key(self.offset, s.encryption_key.is_some()))?;
        let offsets = self
            .ctx
            .core
            .partition_offsets(&self.stream, self.partition)
            .await
            .ok()?;
        if self.offset < offsets.log_start {
            return None;
        }
        let millis = if hit.next_offset >= offsets.high_watermark {
            0
        } else {
            self.ctx
                .core
                .newest_arrival(&self.stream, self.partition, &offsets)
                .await
                .ok()?
                .map_or(0, |latest| (latest - hit.last_arrival_ms).max(0))
        };
        Some((hit, millis))
    }

    async fn read(&self) -> Result<Span, CoreError> {
        let s = self.current_stream()?;
        self.ctx
            .core
            .read_span(
                &s,
                self.partition,
                self.offset,
                MAX_EVENT_RECORDS,
                MAX_EVENT_BYTES,
            )
            .await
    }

    /// Encodes an event read from `start`. Events with records on an open shard are shared
    /// with the other consumers of the shard through the event cache.
    fn event(&self, span: Span, start: i64, next: i64) -> Bytes {
        let encryption = self
            .current_stream()
            .ok()
            .and_then(|s| s.encryption_key.as_ref().map(|_| "KMS"));
        let shareable = !span.records.is_empty() && !span.shard_ended;
        let millis = span.millis_behind_latest;
        let records = span.records.len() as u64;
        let bytes: u64 = span
            .records
            .iter()
            .map(|r| (r.data.len() + r.partition_key.len()) as u64)
            .sum();
        crate::observe::metrics().read("kinesis", &self.stream, records, bytes);
        self.lag.sending(millis);
        let continuation = (!span.shard_ended).then(|| span.continuation(self.partition));
        let mut event = SubscribeToShardEvent {
            child_shards: span.child_shards.iter().map(child_shard).collect(),
            continuation_sequence_number: continuation,
            millis_behind_latest: if shareable { 0 } else { millis },
            records: span
                .records
                .into_iter()
                .map(|r| record_out(r, encryption))
                .collect(),
        };
        let mut payload = codec::encode(self.protocol, &event);
        if shareable {
            let Some(prefix) = split_millis(self.protocol, &payload) else {
                event.millis_behind_latest = millis;
                let payload = codec::encode(self.protocol, &event);
                return eventstream::event(
                    "SubscribeToShardEvent",
                    event_content_type(self.protocol),
                    &payload,
                );
            };
            payload = Bytes::from(with_millis(self.protocol, &prefix, millis));
            if let Some(last) = span.last_arrival_ms {
                self.ctx.events.insert(
                    self.key(start, encryption.is_some()),
                    CachedEvent {
                        payload_prefix: prefix,
                        next_offset: next,
                        last_arrival_ms: last,
                        records,
                        bytes,
                    },
                );
            }
        }
        eventstream::event(
            "SubscribeToShardEvent",
            event_content_type(self.protocol),
            &payload,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A split event with a spliced MillisBehindLatest encodes exactly as a whole one.
    #[test]
    fn spliced_millis_match_whole_encodings() {
        for protocol in [Protocol::Json, Protocol::Cbor] {
            for millis in [0i64, 7, 23, 24, 255, 256, 65_535, 65_536, 4_294_967_296] {
                let event = |m| SubscribeToShardEvent {
                    records: Vec::new(),
                    continuation_sequence_number: Some("49".into()),
                    child_shards: Vec::new(),
                    millis_behind_latest: m,
                };
                let whole = codec::encode(protocol, &event(millis));
                let prefix = split_millis(protocol, &codec::encode(protocol, &event(0))).unwrap();
                assert_eq!(
                    with_millis(protocol, &prefix, millis),
                    whole.to_vec(),
                    "{protocol:?} {millis}"
                );
            }
        }
    }
}
