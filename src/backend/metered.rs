//! A `Log` layer that times every call into the backend and counts failures, so both
//! backends report `strait_backend_request_duration_seconds` the same way. The metric
//! handles are resolved once, not looked up per call; the failure counters when the log is
//! wrapped, so they read 0 (not absent) until the first failure and alerts see it.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prometheus::{Histogram, IntCounter};

use super::layered::{Layered, LogLayer, Operation};
use super::{Log, StorageResult};

pub struct Metered {
    backend: &'static str,
    /// Indexed by `Operation as usize`: each operation's timer, resolved on first use (a
    /// series appears once it has something to say) and kept, and its failure counter.
    seconds: [OnceLock<Histogram>; Operation::ALL.len()],
    errors: Vec<IntCounter>,
}

pub struct MeteredLog;

impl MeteredLog {
    pub fn wrap(backend: &'static str, inner: Arc<dyn Log>) -> Arc<dyn Log> {
        let m = crate::observe::metrics();
        let errors = Operation::ALL
            .iter()
            .map(|o| m.backend_errors.with_label_values(&[backend, o.as_str()]))
            .collect();
        Layered::wrap(
            Metered {
                backend,
                seconds: Default::default(),
                errors,
            },
            inner,
        )
    }
}

impl LogLayer for Metered {
    fn around<T: Send, F: Future<Output = StorageResult<T>> + Send>(
        &self,
        operation: Operation,
        call: F,
    ) -> impl Future<Output = StorageResult<T>> + Send {
        let at = operation as usize;
        let labels = [self.backend, operation.as_str()];
        async move {
            let started = Instant::now();
            let out = call.await;
            let m = crate::observe::metrics();
            self.seconds[at]
                .get_or_init(|| m.backend_seconds.with_label_values(&labels))
                .observe(started.elapsed().as_secs_f64());
            if out.is_err() {
                self.errors[at].inc();
            }
            out
        }
    }
}
