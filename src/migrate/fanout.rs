//! The mirror reading its source by enhanced fan-out (`migration.source.read: fan-out`): a
//! stream consumer registered on the source (`migration.source.consumer_name`), and one
//! SubscribeToShard per shard from just after the partition's newest copied record. Kinesis
//! pushes records within about 70 ms of a write and gives the consumer its own 2 MiB/s per
//! shard, so the mirror takes nothing from the source's other readers' five GetRecords calls
//! a second. A subscription ends every five minutes and is made again from where the copy
//! stands.
//!
//! Pushes with nothing new come only every few seconds, too seldom for a cutover's drain to
//! wait for: the drain asks instead (`probe`), with GetRecords after the newest copied record.

use std::time::Instant;

use super::mirror::{Copied, Copier, StreamMirror};
use super::records::batches;
use crate::backend::kinesis::client::{KinesisClient, StartingPosition, SubscribeToShardInput};
use crate::backend::kinesis::fanout::{Consumers, EventReader};
use crate::protocol::kinesis::shapes::{
    GetRecordsInput, GetRecordsOutput, GetShardIteratorInput, GetShardIteratorOutput,
};

/// One subscription: copies what it pushes until Kinesis ends it (`Copied::Again`: the
/// caller subscribes again), the shard ends, or a stop.
/// A subscription ending sooner than this is treated as a failure (with its pause), so a
/// source that ends every subscription at once is not asked again in a tight loop.
const SHORTEST_SUBSCRIPTION: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) async fn copy_pushed(
    c: &Copier,
    consumers: &std::sync::Arc<Consumers>,
    partition: u32,
    shard_id: &str,
    resume: Option<String>,
    attempt: &mut usize,
) -> Result<Copied, String> {
    let (m, client, core) = (&*c.m, &*c.client, &*c.core);
    let stream = m.name.as_str();
    let mut stop = m.stop.subscribe();
    let mut closing = c.closing.clone();
    // Registering may wait up to a minute for the consumer to be ACTIVE, and subscribing a
    // while: a stop (a cutover holding writes) or shutdown does not wait for either.
    let arn = tokio::select! {
        a = consumers.arn(stream) => a.map_err(|e| {
            let hint = if e.to_string().contains("UnknownOperation") {
                " (the source serves no enhanced fan-out: set migration.source.read: polling)"
            } else {
                ""
            };
            format!("registering the mirror's stream consumer on the source: {e}{hint}")
        })?,
        _ = stop.wait_for(|s| *s) => return Ok(Copied::Stopped),
        _ = closing.wait_for(|c| *c) => return Ok(Copied::Stopped),
    };
    let starting_position = StartingPosition::after(resume);
    let input = SubscribeToShardInput {
        consumer_arn: &arn,
        shard_id,
        starting_position,
    };
    let opened = tokio::select! {
        o = client.open("SubscribeToShard", &input) => o,
        _ = stop.wait_for(|s| *s) => return Ok(Copied::Stopped),
        _ = closing.wait_for(|c| *c) => return Ok(Copied::Stopped),
    };
    let subscribed = Instant::now();
    let (body, protocol) = opened.map_err(|e| {
        if e.is("ResourceNotFoundException") {
            // The consumer was deregistered behind strait's back: register it again.
            let consumers = consumers.clone();
            let stream = stream.to_string();
            tokio::spawn(async move { consumers.forget(&stream).await });
        }
        format!("SubscribeToShard: {e}")
    })?;
    let mut events = EventReader::new(body, protocol);
    let mut delivered = false;
    loop {
        if c.done() {
            return Ok(Copied::Stopped);
        }
        let started = Instant::now();
        let event = tokio::select! {
            e = events.next() => e.map_err(|e| e.to_string())?,
            _ = stop.wait_for(|s| *s) => return Ok(Copied::Stopped),
            _ = closing.wait_for(|c| *c) => return Ok(Copied::Stopped),
        };
        let Some(event) = event else {
            // Kinesis ends a subscription every five minutes: subscribe again. One that
            // ended at once, or brought nothing, is not normal: wait as after a failure.
            if !delivered || subscribed.elapsed() < SHORTEST_SUBSCRIPTION {
                return Err("the subscription ended before it delivered anything".into());
            }
            return Ok(Copied::Again);
        };
        delivered = true;
        for b in batches(&event.records) {
            if *m.stop.borrow() {
                return Ok(Copied::Stopped);
            }
            core.log()
                .append(stream, partition, b.batch)
                .await
                .map_err(|e| format!("appending to partition {partition}: {e}"))?;
            m.appended(partition, b.source_records as u64, b.last_sequence_number);
        }
        core.append_signal().notify_waiters();
        *attempt = 0;
        let ended = !event.child_shards.is_empty() && event.continuation_sequence_number.is_none();
        let n = event.records.len() as u64;
        m.read(partition, n, event.millis_behind_latest, started, ended);
        if ended {
            tracing::info!(stream, shard_id, "source shard closed and fully mirrored");
            return Ok(Copied::Ended);
        }
    }
}

/// For a cutover's drain: each open shard read once with GetRecords after its newest copied
/// record; one that answers nothing, at the source's newest, counts as drained from the
/// moment the read began. Records it finds are left for the subscription to push.
pub(super) async fn probe(m: &StreamMirror, client: &KinesisClient) -> Result<(), String> {
    for (partition, shard_id, last) in m.open_shards() {
        let started = Instant::now();
        let (kind, at) = match &last {
            Some(seq) => ("AFTER_SEQUENCE_NUMBER", Some(seq.as_str())),
            None => ("TRIM_HORIZON", None),
        };
        let it: Result<GetShardIteratorOutput, _> = client
            .call(
                "GetShardIterator",
                &GetShardIteratorInput {
                    stream_name: Some(m.name.clone()),
                    shard_id: Some(shard_id),
                    shard_iterator_type: Some(kind.into()),
                    starting_sequence_number: at.map(str::to_string),
                    ..Default::default()
                },
            )
            .await;
        let it = match it {
            Ok(it) => it,
            // Over the source's five a second: not known this time.
            Err(e)
                if e.is("ProvisionedThroughputExceededException")
                    || e.is("LimitExceededException") =>
            {
                continue
            }
            Err(e) => return Err(format!("GetShardIterator: {e}")),
        };
        let page: Result<GetRecordsOutput, _> = client
            .call(
                "GetRecords",
                &GetRecordsInput {
                    shard_iterator: Some(it.shard_iterator),
                    limit: Some(1),
                    stream_arn: None,
                },
            )
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e)
                if e.is("ProvisionedThroughputExceededException")
                    || e.is("LimitExceededException") =>
            {
                continue
            }
            Err(e) => return Err(format!("GetRecords: {e}")),
        };
        if page.records.is_empty() && page.millis_behind_latest == 0 {
            m.probed_empty(partition, started);
        }
    }
    Ok(())
}
