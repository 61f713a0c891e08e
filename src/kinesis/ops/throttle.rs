//! `kinesis.throttling: aws`: the limits Amazon Kinesis enforces, for testing clients that
//! must live with them (no emulator throttles). Per shard, as ProvisionedThroughputExceeded-
//! Exception: 5 GetRecords calls a second, and 2 MiB a second read by them (a call that
//! returned N bytes leaves the shard's reads refused for N / 2 MiB seconds, so 10 MiB for
//! 5 s, as AWS documents); 5 GetShardIterator calls a second; 1,000 records or 1 MiB a second
//! written (the entry's error in a PutRecords answer). Each enhanced fan-out subscription is
//! paced to 2 MiB a second (`subscribe.rs`). The rates of the control-plane operations, per
//! account or per stream as AWS sets them, and UpdateShardCount's 10 scalings a rolling day
//! per stream, as LimitExceededException. Off by default: strait's own backends have no such
//! limits.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::kinesis::error::ApiError;

const READS_PER_SEC: usize = 5;
/// Read by GetRecords, per shard; also what each enhanced fan-out consumer gets per shard.
pub const READ_BYTES_PER_SEC: usize = 2 << 20;
const ITERATORS_PER_SEC: usize = 5;
const WRITE_RECORDS_PER_SEC: u32 = 1000;
const WRITE_BYTES_PER_SEC: usize = 1 << 20;
const SECOND: Duration = Duration::from_secs(1);

/// Control-plane operations and the calls a second AWS allows each account (the API
/// reference, per operation).
const CONTROL_PLANE: &[(&str, usize)] = &[
    ("AddTagsToStream", 5),
    ("CreateStream", 5),
    ("DeleteStream", 5),
    ("DescribeLimits", 1),
    ("DescribeStream", 10),
    ("DescribeStreamSummary", 20),
    ("ListStreams", 5),
    ("ListTagsForStream", 5),
    ("MergeShards", 5),
    ("RegisterStreamConsumer", 5),
    ("RemoveTagsFromStream", 5),
    ("SplitShard", 5),
    ("UpdateShardCount", 10),
];

/// Control-plane operations AWS limits per stream, and the calls a second each stream gets.
const PER_STREAM: &[(&str, usize)] = &[
    ("DeregisterStreamConsumer", 5),
    ("DescribeStreamConsumer", 20),
    ("ListShards", 1000),
    ("ListStreamConsumers", 5),
];

/// UpdateShardCount scalings a stream may make in a rolling day.
const SCALINGS_PER_DAY: usize = 10;
const DAY: Duration = Duration::from_secs(24 * 3600);

type ShardKey = (String, u32);

#[derive(Default)]
pub struct Throttle {
    on: bool,
    reads: Mutex<HashMap<ShardKey, VecDeque<Instant>>>,
    /// When each shard's GetRecords may read again, after the bytes it read.
    read_until: Mutex<HashMap<ShardKey, Instant>>,
    iterators: Mutex<HashMap<ShardKey, VecDeque<Instant>>>,
    control: Mutex<HashMap<&'static str, VecDeque<Instant>>>,
    per_stream: Mutex<HashMap<(&'static str, String), VecDeque<Instant>>>,
    /// Each stream's UpdateShardCount scalings of the last day.
    scalings: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// (window start, records, bytes) of the current one-second window.
    writes: Mutex<HashMap<ShardKey, (Instant, u32, usize)>>,
}

impl Throttle {
    pub fn new(on: bool) -> Throttle {
        Throttle {
            on,
            ..Default::default()
        }
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    /// One GetRecords call on a shard that read `bytes`; refused past five calls in the last
    /// second, or while the bytes of earlier calls exceed 2 MiB a second.
    pub fn read(&self, stream: &str, partition: u32, bytes: usize) -> Result<(), ApiError> {
        if !self.on {
            return Ok(());
        }
        let now = Instant::now();
        let key = (stream.to_string(), partition);
        if self.read_until.lock().get(&key).is_some_and(|t| now < *t) {
            return Err(ApiError::provisioned_throughput_exceeded(format!(
                "Rate exceeded for shard {} in stream {stream} under account. (2 MiB a second read by GetRecords, kinesis.throttling: aws)",
                crate::core::catalog::shard_id(partition)
            )));
        }
        if !take_call(&mut self.reads.lock(), key.clone(), now, READS_PER_SEC) {
            return Err(ApiError::provisioned_throughput_exceeded(format!(
                "Rate exceeded for shard {} in stream {stream} under account. (5 GetRecords calls a second, kinesis.throttling: aws)",
                crate::core::catalog::shard_id(partition)
            )));
        }
        let busy = Duration::from_secs_f64(bytes as f64 / READ_BYTES_PER_SEC as f64);
        // Concurrent reads add up: a small one must not cut a large one's hold short.
        let mut until = self.read_until.lock();
        let from = until.get(&key).copied().unwrap_or(now).max(now);
        until.insert(key, from + busy);
        Ok(())
    }

    /// One GetShardIterator call on a shard; refused past five in the last second.
    pub fn iterator(&self, stream: &str, partition: u32) -> Result<(), ApiError> {
        if !self.on {
            return Ok(());
        }
        let key = (stream.to_string(), partition);
        if take_call(
            &mut self.iterators.lock(),
            key,
            Instant::now(),
            ITERATORS_PER_SEC,
        ) {
            return Ok(());
        }
        Err(ApiError::provisioned_throughput_exceeded(format!(
            "Rate exceeded for shard {} in stream {stream} under account. (5 GetShardIterator calls a second, kinesis.throttling: aws)",
            crate::core::catalog::shard_id(partition)
        )))
    }

    /// One call of a control-plane operation; refused past its rate for the account.
    pub fn control_plane(&self, operation: &'static str) -> Result<(), ApiError> {
        self.within_rate(
            CONTROL_PLANE,
            &self.control,
            operation,
            operation,
            "under account",
        )
    }

    /// One call of a control-plane operation AWS limits per stream, on `stream`.
    pub fn per_stream(&self, operation: &'static str, stream: &str) -> Result<(), ApiError> {
        // Off: no key or message made on every ListShards.
        if !self.on {
            return Ok(());
        }
        let key = (operation, stream.to_string());
        let scope = format!("on stream {stream}, per stream");
        self.within_rate(PER_STREAM, &self.per_stream, operation, key, &scope)
    }

    /// Counts a call of `operation` under `key` against its rate in `rates` (operations not
    /// listed there are not limited).
    fn within_rate<K: std::hash::Hash + Eq>(
        &self,
        rates: &[(&str, usize)],
        calls: &Mutex<HashMap<K, VecDeque<Instant>>>,
        operation: &str,
        key: K,
        scope: &str,
    ) -> Result<(), ApiError> {
        if !self.on {
            return Ok(());
        }
        let Some((_, per_sec)) = rates.iter().find(|(op, _)| *op == operation) else {
            return Ok(());
        };
        if take_call(&mut calls.lock(), key, Instant::now(), *per_sec) {
            return Ok(());
        }
        Err(ApiError::limit_exceeded(format!(
            "Rate exceeded for {operation} {scope}: {per_sec} calls a second (kinesis.throttling: aws)"
        )))
    }

    /// Refuses an UpdateShardCount on a stream that has scaled 10 times in the last day,
    /// else counts it (`unscaled` takes the count back if the scaling then fails).
    pub fn may_scale(&self, stream: &str) -> Result<(), ApiError> {
        if !self.on {
            return Ok(());
        }
        let now = Instant::now();
        let mut scalings = self.scalings.lock();
        let done = scalings.entry(stream.to_string()).or_default();
        while done.front().is_some_and(|t| now.duration_since(*t) >= DAY) {
            done.pop_front();
        }
        if done.len() >= SCALINGS_PER_DAY {
            return Err(ApiError::limit_exceeded(format!(
                "UpdateShardCount has been called {SCALINGS_PER_DAY} times on stream {stream} in the last 24 hours, the most a stream may scale in a rolling day (kinesis.throttling: aws)"
            )));
        }
        done.push_back(now);
        Ok(())
    }

    /// Takes back the count of a scaling `may_scale` let through that was not made.
    pub fn unscaled(&self, stream: &str) {
        if self.on {
            if let Some(done) = self.scalings.lock().get_mut(stream) {
                done.pop_back();
            }
        }
    }

    /// One record written to a shard: false when the shard's second is full.
    pub fn write(&self, stream: &str, partition: u32, bytes: usize) -> bool {
        if !self.on {
            return true;
        }
        let now = Instant::now();
        let mut writes = self.writes.lock();
        let w = writes
            .entry((stream.to_string(), partition))
            .or_insert((now, 0, 0));
        if now.duration_since(w.0) >= SECOND {
            *w = (now, 0, 0);
        }
        if w.1 + 1 > WRITE_RECORDS_PER_SEC || w.2 + bytes > WRITE_BYTES_PER_SEC {
            return false;
        }
        w.1 += 1;
        w.2 += bytes;
        true
    }
}

/// Counts a call at `now` under `key` unless `per_sec` were made in the last second.
fn take_call<K: std::hash::Hash + Eq>(
    calls: &mut HashMap<K, VecDeque<Instant>>,
    key: K,
    now: Instant,
    per_sec: usize,
) -> bool {
    let calls = calls.entry(key).or_default();
    while calls
        .front()
        .is_some_and(|t| now.duration_since(*t) >= SECOND)
    {
        calls.pop_front();
    }
    if calls.len() >= per_sec {
        return false;
    }
    calls.push_back(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_stream_rates_and_ten_scalings_a_day() {
        let t = Throttle::new(true);
        for _ in 0..5 {
            t.per_stream("ListStreamConsumers", "a").unwrap();
        }
        let e = t.per_stream("ListStreamConsumers", "a").unwrap_err();
        assert_eq!(e.code, "LimitExceededException");
        t.per_stream("ListStreamConsumers", "b").unwrap();
        for _ in 0..10 {
            t.may_scale("a").unwrap();
        }
        assert_eq!(t.may_scale("a").unwrap_err().code, "LimitExceededException");
        t.unscaled("a");
        t.may_scale("a").unwrap();
        t.may_scale("b").unwrap();
        let off = Throttle::new(false);
        for _ in 0..20 {
            off.may_scale("a").unwrap();
        }
    }

    #[test]
    fn five_reads_a_second_per_shard() {
        let t = Throttle::new(true);
        for _ in 0..5 {
            t.read("s", 0, 0).unwrap();
        }
        assert_eq!(
            t.read("s", 0, 0).unwrap_err().code,
            "ProvisionedThroughputExceededException"
        );
        t.read("s", 1, 0).unwrap();
        assert!(Throttle::new(false).read("s", 0, 0).is_ok());
    }

    #[test]
    fn reads_pay_for_their_bytes_at_two_mebibytes_a_second() {
        let t = Throttle::new(true);
        t.read("s", 0, 1 << 20).unwrap();
        let e = t.read("s", 0, 0).unwrap_err();
        assert!(e.message.contains("2 MiB"), "{}", e.message);
        std::thread::sleep(Duration::from_millis(550));
        t.read("s", 0, 0).unwrap();
        t.read("s", 1, 0).unwrap();
    }

    #[test]
    fn control_plane_rates_per_operation() {
        let t = Throttle::new(true);
        t.control_plane("DescribeLimits").unwrap();
        assert_eq!(
            t.control_plane("DescribeLimits").unwrap_err().code,
            "LimitExceededException"
        );
        for _ in 0..5 {
            t.control_plane("ListStreams").unwrap();
        }
        assert!(t.control_plane("ListStreams").is_err());
        for _ in 0..100 {
            t.control_plane("PutRecords").unwrap();
        }
        for _ in 0..5 {
            t.iterator("s", 0).unwrap();
        }
        assert!(t.iterator("s", 0).is_err());
        t.iterator("s", 1).unwrap();
    }

    #[test]
    fn a_thousand_records_or_a_mebibyte_a_second_per_shard() {
        let t = Throttle::new(true);
        assert!((0..1000).all(|_| t.write("s", 0, 10)));
        assert!(!t.write("s", 0, 10));
        assert!(t.write("s", 1, 1 << 20));
        assert!(!t.write("s", 1, 1));
    }
}
