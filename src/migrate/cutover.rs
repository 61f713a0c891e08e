//! Cutting a mirrored stream over to the backend: refused while the mirror lags more than
//! `max_cutover_lag_records`; otherwise the stream's writes are held (those already on their
//! way to the source answered first), the mirror drains past every sequence number the
//! source gave those writes and to the source's newest record (with the children of any
//! shard that ended being copied), stops, and the catalog records where the source's records end. Then the stream is
//! served here and the held writes go on, to the backend. A failure or timeout before the
//! catalog is written leaves the stream as it was, mirroring, with the reason as `last_error`.
//!
//! The drain is bounded by the cutover's timeout; stopping the copy loops is not (a loop ends
//! at its next step), so a timed-out cutover never leaves a loop running beside a new one.

use std::time::{Duration, Instant};

use crate::backend::kinesis::client::{DescribeStreamSummaryOutput, StreamNameInput};
use crate::backend::kinesis::shards::list_shards;

use super::mirror::{Phase, StreamMirror};
use super::Migration;
use crate::core::origin::OriginEnd;
use crate::core::seqno::SeqNo;

/// How often a drain wakes copy loops sleeping until their next poll: a shard's readers share
/// five GetRecords calls a second on Kinesis.
const DRAIN_WAKE: Duration = Duration::from_millis(200);
/// When a fan-out mirror's drain probes the source, from the start of the hold (then every
/// `DRAIN_WAKE`).
const PROBE_AFTER_MS: [u64; 4] = [0, 50, 150, 350];

pub(super) async fn run(
    mig: &Migration,
    m: &StreamMirror,
    timeout: Duration,
) -> Result<(), String> {
    {
        // Read before the phase is locked: the status reads the phase too.
        let st = m.status(mig.caught_up_lag_records);
        let mut phase = m.phase.lock();
        match *phase {
            Phase::CutOver => return Ok(()),
            Phase::CuttingOver => return Err(format!("a cutover of {} is under way", m.name)),
            Phase::Mirroring => {}
        }
        if st.shards.is_empty() {
            return Err(format!(
                "the mirror of {} has not started: {}",
                m.name,
                st.last_error.as_deref().unwrap_or("no shard read yet")
            ));
        }
        if st.lag_records > mig.max_cutover_lag_records {
            return Err(format!(
                "the mirror of {} lags {} records, above max_cutover_lag_records ({})",
                m.name, st.lag_records, mig.max_cutover_lag_records
            ));
        }
        *phase = Phase::CuttingOver;
    }
    let held = Instant::now();
    let drained = match tokio::time::timeout(timeout, drain(mig, m)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the mirror of {} did not drain within {} s",
            m.name,
            timeout.as_secs()
        )),
    };
    let outcome = match drained {
        Ok(()) => {
            m.stop().await;
            let recorded = record(mig, m).await;
            if recorded.is_err() {
                mig.spawn_mirror_of(m);
            }
            recorded
        }
        Err(e) => Err(e),
    };
    let hold_ms = held.elapsed().as_millis() as u64;
    match outcome {
        Ok(()) => {
            mig.core.release_writes(&m.name);
            *m.phase.lock() = Phase::CutOver;
            mig.routes.release(&m.name);
            m.set_hold_ms(hold_ms);
            tracing::info!(stream = %m.name, hold_ms, "stream cut over: served by the backend from now on");
            if let Some(consumers) = mig.fanout.clone() {
                // The source's stream consumer costs while registered; nothing reads it now.
                let stream = m.name.clone();
                tokio::spawn(async move {
                    if let Err(e) = consumers.deregister(&stream).await {
                        tracing::warn!(%stream, error = %e, "could not deregister the mirror's stream consumer on the source; deregister it by hand");
                    }
                });
            }
            Ok(())
        }
        Err(e) => {
            *m.phase.lock() = Phase::Mirroring;
            mig.routes.release(&m.name);
            m.failed(format!("cutover: {e}"));
            Err(e)
        }
    }
}

/// Holds writes, then waits until every shard's mirror has copied each sequence number the
/// source gave a write through strait (Kinesis may show a record to readers a moment after
/// acknowledging it) and then found nothing new.
async fn drain(mig: &Migration, m: &StreamMirror) -> Result<(), String> {
    mig.routes.hold(&m.name).await;
    let written = mig.routes.written(&m.name);
    let drain_from = Instant::now();
    let mut woken = Instant::now() - DRAIN_WAKE;
    // A probe of a fan-out mirror (a GetShardIterator per shard, five a second allowed) soon
    // after the hold begins, when the last pushes have most likely landed, then less often.
    let mut probes = PROBE_AFTER_MS
        .iter()
        .map(|ms| drain_from + Duration::from_millis(*ms));
    let mut next_probe = probes.next();
    loop {
        if m.drained_since(drain_from, &written) {
            if source_settled(mig, m).await? {
                return Ok(());
            }
            // A reshard under way at the source: its new shards come to the mirror shortly.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        match &mig.fanout {
            // Pushes with nothing new are seconds apart: ask.
            Some(_) if next_probe.is_none_or(|t| Instant::now() >= t) => {
                super::fanout::probe(m, &mig.client).await?;
                next_probe = probes.next().or(Some(Instant::now() + DRAIN_WAKE));
            }
            Some(_) => {}
            None if woken.elapsed() >= DRAIN_WAKE => {
                m.wake();
                woken = Instant::now();
            }
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether the source is not in the middle of a reshard this mirror has not followed: the
/// stream is ACTIVE (a SplitShard or UpdateShardCount acknowledged before the hold leaves
/// it UPDATING until its shards change) and every shard it lists is one the mirror copies.
async fn source_settled(mig: &Migration, m: &StreamMirror) -> Result<bool, String> {
    let summary: DescribeStreamSummaryOutput = match mig
        .client
        .call(
            "DescribeStreamSummary",
            &StreamNameInput {
                stream_name: &m.name,
            },
        )
        .await
    {
        Ok(s) => s,
        // A passing failure: not known this time, asked again.
        Err(e) if e.is_transient() => return Ok(false),
        Err(e) => return Err(format!("DescribeStreamSummary on the source: {e}")),
    };
    if summary.stream_description_summary.stream_status != "ACTIVE" {
        return Ok(false);
    }
    let listed = match list_shards(&mig.client, &m.name).await {
        Ok(l) => l,
        Err(e) if e.is_transient() => return Ok(false),
        Err(e) => return Err(format!("listing the source's shards: {e}")),
    };
    Ok(listed.iter().all(|s| m.copies(&s.shard_id)))
}

/// Records in the catalog where each shard's source records end (the mirror has stopped).
async fn record(mig: &Migration, m: &StreamMirror) -> Result<(), String> {
    let log = mig.core.log();
    let mut ends = Vec::new();
    for (partition, newest) in m.newest_origins() {
        let end = log
            .offsets(&m.name, partition)
            .await
            .map_err(|e| format!("reading partition {partition}'s end: {e}"))?
            .high_watermark;
        let origin_created_secs = newest
            .as_deref()
            .and_then(SeqNo::parse)
            .map(|q| q.shard_create_secs);
        ends.push(OriginEnd {
            partition,
            end,
            origin_created_secs,
        });
    }
    mig.core
        .cut_over(&m.name, &ends)
        .await
        .map_err(|e| format!("recording the cutover in the catalog: {e}"))
}
