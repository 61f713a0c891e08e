//! A `Log` layer that times every call into the backend and counts failures, so both
//! backends report `strait_backend_request_duration_seconds` the same way. The metric
//! handles are resolved once, when the log is wrapped, not looked up per call.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prometheus::{Histogram, IntCounter};

use super::layered::{Layered, LogLayer, Operation};
use super::{Log, StorageResult};

pub struct Metered {
    backend: &'static str,
    /// Indexed by `Operation as usize`: each operation's timer and failure counter, resolved
    /// on first use (a series appears once it has something to say) and kept.
    seconds: [OnceLock<Histogram>; Operation::ALL.len()],
    errors: [OnceLock<IntCounter>; Operation::ALL.len()],
}

pub struct MeteredLog;

impl MeteredLog {
    pub fn wrap(backend: &'static str, inner: Arc<dyn Log>) -> Arc<dyn Log> {
        Layered::wrap(
            Metered {
                backend,
                seconds: Default::default(),
                errors: Default::default(),
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
                self.errors[at]
                    .get_or_init(|| m.backend_errors.with_label_values(&labels))
                    .inc();
            }
            out
        }
    }
}
