//! `strait_consumer_group_lag_records` for the coordinator's groups, computed on scrape.

use std::collections::HashMap;
use std::sync::Arc;

use super::GroupCoordinator;
use crate::backend::Log;
use crate::core::Core;

/// `strait_consumer_group_lag_records`: for each group, the records between its committed
/// offsets and the high watermarks of those partitions. Reads the log directly (not through
/// the metered wrapper, so scrapes do not show as backend calls), once per partition per
/// scrape; partitions of streams that no longer exist do not count.
pub fn watch_group_lag(groups: Arc<GroupCoordinator>, core: Arc<Core>, log: Arc<dyn Log>) {
    crate::observe::metrics().on_scrape(Box::new(move || {
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
            crate::observe::metrics().set_group_lags(lags);
        })
    }));
}
