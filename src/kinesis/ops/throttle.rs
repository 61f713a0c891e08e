//! `kinesis.throttling: aws`: the per-shard limits Amazon Kinesis enforces, for testing
//! clients that must live with them (no emulator throttles): 5 GetRecords calls a second
//! (ProvisionedThroughputExceededException), and 1,000 records or 1 MiB a second written
//! (the entry's ProvisionedThroughputExceededException in a PutRecords answer). Off by
//! default: strait's own backends have no such limits.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::kinesis::error::ApiError;

const READS_PER_SEC: usize = 5;
const WRITE_RECORDS_PER_SEC: u32 = 1000;
const WRITE_BYTES_PER_SEC: usize = 1 << 20;
const SECOND: Duration = Duration::from_secs(1);

type ShardKey = (String, u32);

#[derive(Default)]
pub struct Throttle {
    on: bool,
    reads: Mutex<HashMap<ShardKey, VecDeque<Instant>>>,
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

    /// One GetRecords call on a shard; refused past five in the last second.
    pub fn read(&self, stream: &str, partition: u32) -> Result<(), ApiError> {
        if !self.on {
            return Ok(());
        }
        let now = Instant::now();
        let mut reads = self.reads.lock();
        let calls = reads.entry((stream.to_string(), partition)).or_default();
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= SECOND)
        {
            calls.pop_front();
        }
        if calls.len() >= READS_PER_SEC {
            return Err(ApiError::provisioned_throughput_exceeded(format!(
                "Rate exceeded for shard {} in stream {stream} under account. (5 GetRecords calls a second, kinesis.throttling: aws)",
                crate::core::catalog::shard_id(partition)
            )));
        }
        calls.push_back(now);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_reads_a_second_per_shard() {
        let t = Throttle::new(true);
        for _ in 0..5 {
            t.read("s", 0).unwrap();
        }
        assert_eq!(
            t.read("s", 0).unwrap_err().code,
            "ProvisionedThroughputExceededException"
        );
        t.read("s", 1).unwrap();
        assert!(Throttle::new(false).read("s", 0).is_ok());
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
