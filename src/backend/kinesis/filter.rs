//! Which of the account's streams Kafka clients see as topics (`backend.kinesis.streams`):
//! every one when the list is empty, else those named, with `prefix*` entries matching by
//! prefix. Kinesis clients on the pass-through are not filtered: IAM decides for them.

#[derive(Debug, Clone, Default)]
pub struct StreamFilter {
    names: Vec<String>,
    prefixes: Vec<String>,
}

impl StreamFilter {
    /// Entries are checked by the config (`stream_filter_entry_error`): non-empty, `*` only
    /// at the end.
    pub fn new(entries: &[String]) -> StreamFilter {
        let mut filter = StreamFilter::default();
        for e in entries {
            match e.strip_suffix('*') {
                Some(prefix) => filter.prefixes.push(prefix.to_string()),
                None => filter.names.push(e.clone()),
            }
        }
        filter
    }

    pub fn admits(&self, stream: &str) -> bool {
        (self.names.is_empty() && self.prefixes.is_empty())
            || self.names.iter().any(|n| n == stream)
            || self.prefixes.iter().any(|p| stream.starts_with(p.as_str()))
    }

    /// What a refusal says the filter is.
    pub fn describe(&self) -> String {
        let mut all: Vec<String> = self.names.clone();
        all.extend(self.prefixes.iter().map(|p| format!("{p}*")));
        all.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_admits_every_stream_and_entries_admit_names_or_prefixes() {
        assert!(StreamFilter::new(&[]).admits("anything"));
        let f = StreamFilter::new(&["orders".into(), "team-a.*".into()]);
        assert!(f.admits("orders"));
        assert!(!f.admits("orders-2"));
        assert!(f.admits("team-a.clicks"));
        assert!(f.admits("team-a."));
        assert!(!f.admits("team-b.clicks"));
        assert_eq!(f.describe(), "orders, team-a.*");
        // A lone star is the prefix "" and admits everything.
        assert!(StreamFilter::new(&["*".into()]).admits("x"));
    }
}
