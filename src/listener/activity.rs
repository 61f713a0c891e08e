//! When an HTTP connection is idle: no request in flight (a response body still streaming,
//! such as an enhanced fan-out subscription, counts as in flight) for `limits.idle_timeout_secs`.
//! Counted by request rather than by bytes, because HTTP/2 keep-alive pings are bytes too.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// One connection's requests in flight and when the last one ended.
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when a request last ended (or the connection opened).
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }
}

/// A request in flight; dropping it ends the request.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        // The latest end wins when requests end at once.
        a.last_ms
            .fetch_max(a.opened.elapsed().as_millis() as u64, Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let quiet_since =
                self.opened + Duration::from_millis(self.last_ms.load(Ordering::SeqCst));
            let quiet = quiet_since.elapsed();
            let busy = self.in_flight.load(Ordering::SeqCst) > 0;
            if !busy && quiet >= limit {
                return;
            }
            let wait = if busy {
                limit
            } else {
                limit.saturating_sub(quiet)
            };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

/// A response body that keeps its request in flight until it has been sent (or dropped).
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Tracked<B> {
        Tracked {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_with_no_request_in_flight_for_the_limit() {
        let a = Arc::new(Activity::default());
        let limit = Duration::from_secs(10);
        let req = a.start();
        // In flight: not idle however long it takes.
        let idle = tokio::time::timeout(Duration::from_secs(30), a.idle_for(limit)).await;
        assert!(idle.is_err());
        drop(req);
        let t0 = Instant::now();
        a.idle_for(limit).await;
        let waited = t0.elapsed();
        assert!(
            waited >= limit && waited < limit + Duration::from_secs(1),
            "{waited:?}"
        );
    }
}
