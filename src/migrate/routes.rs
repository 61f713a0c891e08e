//! Who serves a migrated stream's Kinesis clients on this replica: its source until it is cut
//! over (the catalog says so), strait after. During a cutover its writes are held here, and
//! the cutover waits for writes already on their way to the source before it drains the
//! mirror.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::core::Core;

/// How long a write waits for a cutover to finish before it goes where the stream is served
/// then (the cutover has a timeout of its own, after which writes go to the source again).
const WRITE_WAIT: Duration = Duration::from_secs(3700);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Source,
    Local,
}

pub struct Routes {
    streams: BTreeSet<String>,
    state: Mutex<HashMap<String, Flow>>,
    changed: Notify,
    /// Per migrated stream, per shard: the largest sequence number the source gave a write
    /// through strait.
    written: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

#[derive(Default)]
struct Flow {
    holding: bool,
    in_flight: usize,
}

impl Routes {
    pub fn new(streams: &[String]) -> Routes {
        Routes {
            streams: streams.iter().cloned().collect(),
            state: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Where a request for `stream` (not a write) goes.
    pub fn route(&self, stream: &str, core: &Core) -> Route {
        let cut_over = core.stream(stream).is_ok_and(|s| s.cut_over_ms.is_some());
        if self.streams.contains(stream) && !cut_over {
            Route::Source
        } else {
            Route::Local
        }
    }

    /// Where a write to `stream` goes, once no cutover holds it; a write to the source is
    /// counted until the guard drops, so a cutover waits for it.
    pub async fn write(self: &Arc<Self>, stream: &str, core: &Core) -> (Route, Option<InFlight>) {
        if !self.streams.contains(stream) {
            return (Route::Local, None);
        }
        let deadline = tokio::time::Instant::now() + WRITE_WAIT;
        loop {
            let changed = self.changed.notified();
            {
                let mut state = self.state.lock();
                let flow = state.entry(stream.to_string()).or_default();
                if !flow.holding || tokio::time::Instant::now() >= deadline {
                    let route = self.route(stream, core);
                    if route == Route::Local {
                        return (route, None);
                    }
                    flow.in_flight += 1;
                    let guard = InFlight {
                        routes: self.clone(),
                        stream: stream.to_string(),
                    };
                    return (route, Some(guard));
                }
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }

    /// Notes the sequence numbers the source gave a write to `stream`, per shard the largest.
    pub fn note_written(&self, stream: &str, positions: Vec<(String, String)>) {
        if !self.streams.contains(stream) || positions.is_empty() {
            return;
        }
        let mut written = self.written.lock();
        let shards = written.entry(stream.to_string()).or_default();
        for (shard, seq) in positions {
            let newer = shards.get(&shard).is_none_or(|have| {
                crate::protocol::kinesis::sequence::cmp_sequence_numbers(&seq, have)
                    == std::cmp::Ordering::Greater
            });
            if newer {
                shards.insert(shard, seq);
            }
        }
    }

    /// Per shard of `stream`, the largest sequence number the source gave a write through
    /// strait.
    pub fn written(&self, stream: &str) -> BTreeMap<String, String> {
        self.written.lock().get(stream).cloned().unwrap_or_default()
    }

    /// Holds new writes to `stream` and returns once those already sent to the source have
    /// been answered.
    pub async fn hold(&self, stream: &str) {
        self.state
            .lock()
            .entry(stream.to_string())
            .or_default()
            .holding = true;
        loop {
            let changed = self.changed.notified();
            if self
                .state
                .lock()
                .get(stream)
                .is_none_or(|f| f.in_flight == 0)
            {
                return;
            }
            changed.await;
        }
    }

    /// Lets held writes go (where the catalog now says the stream is served).
    pub fn release(&self, stream: &str) {
        if let Some(f) = self.state.lock().get_mut(stream) {
            f.holding = false;
        }
        self.changed.notify_waiters();
    }
}

/// A write on its way to the source.
pub struct InFlight {
    routes: Arc<Routes>,
    stream: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(f) = self.routes.state.lock().get_mut(&self.stream) {
            f.in_flight = f.in_flight.saturating_sub(1);
        }
        self.routes.changed.notify_waiters();
    }
}
