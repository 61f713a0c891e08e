//! The embedded log's gauges, set when Prometheus scrapes rather than on every write:
//! `strait_log_size_bytes` and `strait_log_segments`, summed per stream label, and
//! `strait_log_open_files`.

use std::collections::HashMap;
use std::sync::Arc;

use super::EmbeddedLog;

/// `strait_log_size_bytes` and `strait_log_segments` from the embedded log's segment files.
pub fn watch_disk_usage(log: Arc<EmbeddedLog>) {
    crate::observe::metrics().on_scrape(Box::new(move || {
        let log = log.clone();
        Box::pin(async move {
            let m = crate::observe::metrics();
            let mut by_label: HashMap<String, (u64, u64)> = HashMap::new();
            for (topic, bytes, segments) in log.disk_usage() {
                let e = by_label
                    .entry(m.stream_label(&topic).to_string())
                    .or_default();
                e.0 += bytes;
                e.1 += segments;
            }
            m.log_open_files.set(log.open_files() as i64);
            m.log_bytes.reset();
            m.log_segments.reset();
            for (label, (bytes, segments)) in by_label {
                m.log_bytes.with_label_values(&[&label]).set(bytes as i64);
                m.log_segments
                    .with_label_values(&[&label])
                    .set(segments as i64);
            }
        })
    }));
}
