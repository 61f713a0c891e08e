//! A `Log` layer that times every call into the backend and counts failures, so both
//! backends report `strait_backend_request_duration_seconds` the same way. The metric
//! handles are resolved once, when the log is wrapped, not looked up per call.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use prometheus::{Histogram, IntCounter};

use super::layered::{Layered, LogLayer, Operation};
use super::{Log, StorageResult};

pub struct Metered {
    /// Indexed by `Operation as usize` (`Operation::ALL` is in declaration order): each
    /// operation's timer and failure counter.
    handles: Vec<(Histogram, IntCounter)>,
}

pub struct MeteredLog;

impl MeteredLog {
    pub fn wrap(backend: &'static str, inner: Arc<dyn Log>) -> Arc<dyn Log> {
        let m = crate::observe::metrics();
        let handles = Operation::ALL
            .iter()
            .enumerate()
            .map(|(i, &op)| {
                debug_assert_eq!(op as usize, i);
                let labels = [backend, op.as_str()];
                (
                    m.backend_seconds.with_label_values(&labels),
                    m.backend_errors.with_label_values(&labels),
                )
            })
            .collect();
        Layered::wrap(Metered { handles }, inner)
    }
}

impl LogLayer for Metered {
    fn around<T: Send, F: Future<Output = StorageResult<T>> + Send>(
        &self,
        operation: Operation,
        call: F,
    ) -> impl Future<Output = StorageResult<T>> + Send {
        let (seconds, errors) = &self.handles[operation as usize];
        async move {
            let started = Instant::now();
            let out = call.await;
            seconds.observe(started.elapsed().as_secs_f64());
            if out.is_err() {
                errors.inc();
            }
            out
        }
    }
}
