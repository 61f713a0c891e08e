//! strait's own enhanced fan-out (`backend.kinesis.read: fan-out`): one stream consumer
//! registered per stream under `backend.kinesis.consumer_name`, and one SubscribeToShard per
//! partition in use, whose pushed records fill the partition's offset index as they arrive.
//! Kinesis pushes within about 70 ms of a write and gives each consumer its own 2 MiB/s per
//! shard, so strait's reading costs the stream's GetRecords readers nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::client::DescribeStreamSummaryOutput;
use super::client::{exception_message, storage_error};
use super::client::{
    ConsumerDescription, DescribeStreamConsumerInput, DescribeStreamConsumerOutput, KinesisClient,
    RegisterStreamConsumerInput, StartingPosition, StreamNameInput, SubscribeToShardEvent,
    SubscribeToShardInput,
};
use super::consumer_sweep::{ConsumerSweep, SWEEP_EVERY};
use super::tail::Tail;
use crate::backend::{StorageError, StorageResult};
use crate::protocol::kinesis::cbor_records;
use crate::protocol::kinesis::codec::{self, Protocol};
use crate::protocol::kinesis::eventstream::{self, DecodeError};

/// How long a registered consumer may take to become ACTIVE.
const ACTIVE_WAIT: Duration = Duration::from_secs(60);
/// The largest event-stream message read (a SubscribeToShardEvent carries at most about
/// 10 MiB of records, base64 in JSON).
const MAX_MESSAGE_BYTES: usize = 32 << 20;
/// Pauses before subscribing again after a failure (Kinesis refuses a second subscription
/// within 5 s of the last one with ResourceInUseException).
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// The consumer ARN strait reads each stream with.
pub struct Consumers {
    client: Arc<KinesisClient>,
    name: String,
    arns: tokio::sync::Mutex<HashMap<String, String>>,
    /// Replicas sharing state: the consumers of those gone for good are deregistered.
    sweep: Option<Arc<ConsumerSweep>>,
    /// Streams with a sweep running.
    sweeping: parking_lot::Mutex<HashSet<String>>,
}

impl Consumers {
    pub fn new(
        client: Arc<KinesisClient>,
        name: String,
        sweep: Option<ConsumerSweep>,
    ) -> Arc<Consumers> {
        Arc::new(Consumers {
            client,
            name,
            arns: tokio::sync::Mutex::new(HashMap::new()),
            sweep: sweep.map(Arc::new),
            sweeping: parking_lot::Mutex::new(HashSet::new()),
        })
    }

    /// Sweeps `stream`'s consumers now and every `SWEEP_EVERY` while strait reads it.
    fn spawn_sweep(self: &Arc<Self>, stream: &str, stream_arn: String) {
        let Some(sweep) = self.sweep.clone() else {
            return;
        };
        if !self.sweeping.lock().insert(stream.to_string()) {
            return;
        }
        let consumers = Arc::downgrade(self);
        let stream = stream.to_string();
        tokio::spawn(async move {
            loop {
                let Some(c) = consumers.upgrade() else { return };
                if !c.arns.lock().await.contains_key(&stream) {
                    c.sweeping.lock().remove(&stream);
                    return;
                }
                if let Err(e) = sweep.run(&c.client, &stream_arn).await {
                    tracing::warn!(%stream, error = %e, "cannot sweep the stream consumers of replicas gone for good");
                }
                drop(c);
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        });
    }

    /// Registers strait's consumer on `stream` (or finds it registered) and waits until it
    /// is ACTIVE.
    pub async fn arn(self: &Arc<Self>, stream: &str) -> StorageResult<String> {
        let mut arns = self.arns.lock().await;
        if let Some(arn) = arns.get(stream) {
            return Ok(arn.clone());
        }
        let stream_arn = self.stream_arn(stream).await?;
        let registered = self
            .client
            .call::<_, RegisteredOutput>(
                "RegisterStreamConsumer",
                &RegisterStreamConsumerInput {
                    stream_arn: &stream_arn,
                    consumer_name: &self.name,
                },
            )
            .await;
        match registered {
            Ok(_) => {}
            Err(e) if e.is("ResourceInUseException") => {}
            Err(e) => return Err(storage_error(e)),
        }
        let deadline = Instant::now() + ACTIVE_WAIT;
        loop {
            let d: DescribeStreamConsumerOutput = self
                .client
                .call(
                    "DescribeStreamConsumer",
                    &DescribeStreamConsumerInput {
                        stream_arn: &stream_arn,
                        consumer_name: &self.name,
                    },
                )
                .await
                .map_err(storage_error)?;
            let ConsumerDescription {
                consumer_arn,
                consumer_status,
            } = d.consumer_description;
            if consumer_status == "ACTIVE" {
                let first = arns
                    .insert(stream.to_string(), consumer_arn.clone())
                    .is_none();
                drop(arns);
                if first {
                    self.spawn_sweep(stream, stream_arn);
                }
                return Ok(consumer_arn);
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "stream consumer {} on {stream} is still {consumer_status} after {ACTIVE_WAIT:?}",
                    self.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Deregisters strait's consumer on `stream` (a migration's source once cut over: the
    /// consumer costs as long as it is registered). One already gone is no error.
    pub async fn deregister(&self, stream: &str) -> StorageResult<()> {
        self.forget(stream).await;
        let stream_arn = self.stream_arn(stream).await?;
        let input = DescribeStreamConsumerInput {
            stream_arn: &stream_arn,
            consumer_name: &self.name,
        };
        match self
            .client
            .call::<_, RegisteredOutput>("DeregisterStreamConsumer", &input)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn stream_arn(&self, stream: &str) -> StorageResult<String> {
        let summary: DescribeStreamSummaryOutput = self
            .client
            .call(
                "DescribeStreamSummary",
                &StreamNameInput {
                    stream_name: stream,
                },
            )
            .await
            .map_err(storage_error)?;
        Ok(summary.stream_description_summary.stream_arn)
    }

    /// Forgets a deleted stream's consumer.
    pub async fn forget(&self, stream: &str) {
        self.arns.lock().await.remove(stream);
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RegisteredOutput {}

/// Keeps `tail` subscribed to its shard until the shard is read to its end or the tail is
/// dropped (its stream deleted).
pub fn spawn(tail: Weak<Tail>, consumers: Arc<Consumers>, client: Arc<KinesisClient>) {
    tokio::spawn(async move {
        let mut pause = RETRY_FIRST;
        loop {
            let Some(t) = tail.upgrade() else { return };
            if t.ended() {
                return;
            }
            let (stream, shard) = (t.stream().to_string(), t.shard_id().to_string());
            drop(t);
            match subscribe_once(&tail, &consumers, &client, &stream, &shard).await {
                Ok(true) => pause = RETRY_FIRST,
                Ok(false) => {}
                // The stream (or its shard) is gone.
                Err(StorageError::Refused { code: 3, .. }) => {
                    consumers.forget(&stream).await;
                    if let Some(t) = tail.upgrade() {
                        t.stop();
                    }
                    tracing::info!(%stream, %shard, "stream gone; its subscription ends");
                    return;
                }
                Err(e) => {
                    tracing::warn!(%stream, %shard, error = %e, "SubscribeToShard failed; subscribing again");
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    });
}

/// One subscription, from just after the newest indexed record, read until Kinesis ends it
/// (every 5 minutes). Ok(true) when it delivered anything.
async fn subscribe_once(
    tail: &Weak<Tail>,
    consumers: &Arc<Consumers>,
    client: &KinesisClient,
    stream: &str,
    shard: &str,
) -> StorageResult<bool> {
    let arn = consumers.arn(stream).await?;
    let after = match tail.upgrade() {
        Some(t) => t.last_seq(),
        None => return Ok(false),
    };
    let starting_position = StartingPosition::after(after);
    let body = client
        .open(
            "SubscribeToShard",
            &SubscribeToShardInput {
                consumer_arn: &arn,
                shard_id: shard,
                starting_position,
            },
        )
        .await
        .map_err(|e| {
            if e.is("ResourceNotFoundException") {
                // strait's consumer was deregistered: register it again next time.
                StorageError::Unavailable(e.to_string())
            } else {
                storage_error(e)
            }
        });
    let (body, protocol) = match body {
        Ok(b) => b,
        Err(e) => {
            consumers.forget(stream).await;
            return Err(e);
        }
    };
    let mut events = EventReader::new(body, protocol);
    let mut delivered = false;
    while let Some(event) = events.next().await? {
        let Some(t) = tail.upgrade() else {
            return Ok(delivered);
        };
        delivered = true;
        let ended = !event.child_shards.is_empty() && event.continuation_sequence_number.is_none();
        let mut records = event.records;
        if !records.is_empty() && t.needs_start() {
            if !t.claim_start(&records[0]).await? {
                // The stored index started elsewhere: subscribe again after its end, once
                // Kinesis allows this consumer another subscription to the shard (5 s).
                drop(t);
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                return Ok(true);
            }
            records.remove(0);
        }
        t.pushed(records, event.millis_behind_latest == 0, ended)?;
        if ended {
            return Ok(true);
        }
    }
    Ok(delivered)
}

/// The events of one SubscribeToShard answer.
pub struct EventReader {
    body: Incoming,
    buf: BytesMut,
    /// The answer's encoding: an event's own `:content-type` overrides it (whether a CBOR
    /// subscription's events are CBOR is not settled, reference §1.11).
    protocol: Protocol,
}

impl EventReader {
    pub fn new(body: Incoming, protocol: Protocol) -> EventReader {
        EventReader {
            body,
            buf: BytesMut::new(),
            protocol,
        }
    }

    /// The next SubscribeToShardEvent; `None` when the subscription ended.
    pub async fn next(&mut self) -> StorageResult<Option<SubscribeToShardEvent>> {
        loop {
            match eventstream::split(&mut self.buf) {
                Ok(message) => {
                    let kind = message.header(":message-type").unwrap_or("event");
                    let protocol = message
                        .header(":content-type")
                        .and_then(Protocol::from_content_type)
                        .unwrap_or(self.protocol);
                    if kind == "exception" || kind == "error" {
                        let code = message
                            .header(":exception-type")
                            .or_else(|| message.header(":error-code"))
                            .unwrap_or("unknown")
                            .to_string();
                        let mut text = exception_message(protocol, &message.payload);
                        if text.is_empty() {
                            text = message
                                .header(":error-message")
                                .unwrap_or_default()
                                .to_string();
                        }
                        return Err(StorageError::Unavailable(format!(
                            "SubscribeToShard: {code}: {text}"
                        )));
                    }
                    if message.header(":event-type") != Some("SubscribeToShardEvent") {
                        continue;
                    }
                    if protocol == Protocol::Cbor {
                        if let Some(page) = cbor_records::records_page(&message.payload) {
                            return Ok(Some(page.into()));
                        }
                    }
                    return codec::decode(protocol, &message.payload)
                        .map(Some)
                        .map_err(|e| {
                            StorageError::Unavailable(format!(
                                "SubscribeToShard: an event that does not decode: {}",
                                e.0
                            ))
                        });
                }
                Err(DecodeError::Incomplete) => {}
                Err(DecodeError::Invalid(why)) => {
                    return Err(StorageError::Unavailable(format!(
                        "SubscribeToShard: a broken event-stream message: {why}"
                    )))
                }
            }
            if self.buf.len() > MAX_MESSAGE_BYTES {
                return Err(StorageError::Unavailable(
                    "SubscribeToShard: an event-stream message above 32 MiB".into(),
                ));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Err(StorageError::Unavailable(format!(
                        "SubscribeToShard: the event stream broke off: {e}"
                    )))
                }
                // A message cut off by the end of the answer is a broken stream, not an end.
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    return Err(StorageError::Unavailable(format!(
                        "SubscribeToShard: the event stream ended inside a message ({} bytes left)",
                        self.buf.len()
                    )))
                }
            }
        }
    }
}
