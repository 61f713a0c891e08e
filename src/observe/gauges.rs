//! Gauges computed when Prometheus scrapes rather than kept current on every write: the
//! embedded log's size and segment count, and consumer-group lag. Each is registered as a
//! scrape hook by the backend that can answer it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::embedded::EmbeddedLog;
use crate::backend::Log;
use crate::core::groups::GroupCoordinator;
use crate::core::Core;

/// `strait_log_size_bytes` and `strait_log_segments` from the embedded log's segment files.
pub fn watch_embedded_log(log: Arc<EmbeddedLog>) {
    super::metrics().on_scrape(Box::new(move || {
        let log = log.clone();
        Box::pin(async move {
            let m = super::metrics();
            let mut by_label: HashMap<String, (u64, u64)> = HashMap::new();
            for (topic, bytes, segments) in log.disk_usage() {
                let e = by_label
                    .entry(m.stream_label(&topic).to_string())
                    .or_default();
                e.0 += bytes;
                e.1 += segments;
            }
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

/// `strait_consumer_group_lag_records`: for each group, the records between its committed
/// offsets and the high watermarks of those partitions. Reads the log directly (not through
/// the metered wrapper, so scrapes do not show as backend calls), once per partition per
/// scrape; partitions of streams that no longer exist do not count.
pub fn watch_group_lag(groups: Arc<GroupCoordinator>, core: Arc<Core>, log: Arc<dyn Log>) {
    super::metrics().on_scrape(Box::new(move || {
        let (groups, core, log) = (groups.clone(), core.clone(), log.clone());
        Box::pin(async move {
            let mut watermarks: HashMap<(String, u32), Option<i64>> = HashMap::new();
            let mut lags = Vec::new();
            for (group, _, _) in groups.list() {
                let mut lag = 0;
                for (topic, partition, committed) in groups.committed(&group, None) {
                    let (Some(c), Ok(p)) = (committed, u32::try_from(partition)) else {
                        continue;
                    };
                    let key = (topic, p);
                    if !watermarks.contains_key(&key) {
                        let hw = match core.stream(&key.0) {
                            Ok(_) => log.offsets(&key.0, p).await.ok().map(|o| o.high_watermark),
                            Err(_) => None,
                        };
                        watermarks.insert(key.clone(), hw);
                    }
                    if let Some(hw) = watermarks[&key] {
                        lag += (hw - c.offset).max(0);
                    }
                }
                lags.push((group, lag));
            }
            super::metrics().set_group_lags(lags);
        })
    }));
}
