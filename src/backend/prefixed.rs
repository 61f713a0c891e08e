//! A `Log` layer that keeps a backend's streams in one namespace of its topics
//! (`backend.kafka.topic_prefix`): stream "x" is topic "<prefix>x", and topics without the
//! prefix are not streams at all.

use std::borrow::Cow;
use std::sync::Arc;

use super::layered::{Layered, LogLayer};
use super::Log;

pub struct Prefixed {
    prefix: String,
}

pub struct PrefixedLog;

impl PrefixedLog {
    /// `inner` itself when the prefix is empty, so the common case adds nothing.
    pub fn wrap(prefix: &str, inner: Arc<dyn Log>) -> Arc<dyn Log> {
        if prefix.is_empty() {
            return inner;
        }
        Layered::wrap(
            Prefixed {
                prefix: prefix.to_string(),
            },
            inner,
        )
    }
}

impl LogLayer for Prefixed {
    fn inward<'a>(&self, stream: &'a str) -> Cow<'a, str> {
        Cow::Owned(format!("{}{stream}", self.prefix))
    }

    fn outward(&self, topic: String) -> Option<String> {
        let stream = topic.strip_prefix(&self.prefix)?;
        (!stream.is_empty()).then(|| stream.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::EmbeddedLog;
    use crate::backend::NewTopic;

    #[tokio::test]
    async fn streams_live_under_the_prefix_and_other_topics_are_not_streams() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Arc<dyn Log> = EmbeddedLog::open(dir.path(), Default::default()).unwrap();
        raw.create_partitions("other", 0..1, NewTopic::default())
            .await
            .unwrap();
        raw.create_partitions("team-a.", 0..1, NewTopic::default())
            .await
            .unwrap();
        let log = PrefixedLog::wrap("team-a.", raw.clone());
        log.create_partitions("orders", 0..3, NewTopic::default())
            .await
            .unwrap();
        let mut raw_topics = raw.topics().await.unwrap();
        raw_topics.sort();
        assert!(raw_topics.contains(&("team-a.orders".to_string(), 3)));
        // Neither a topic outside the namespace nor the bare prefix is a stream.
        assert_eq!(log.topics().await.unwrap(), vec![("orders".to_string(), 3)]);
        log.delete_topic("orders").await.unwrap();
        assert!(log.topics().await.unwrap().is_empty());
        assert!(raw
            .topics()
            .await
            .unwrap()
            .iter()
            .any(|(t, _)| t == "other"));
    }

    #[test]
    fn an_empty_prefix_is_the_log_itself() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Arc<dyn Log> = EmbeddedLog::open(dir.path(), Default::default()).unwrap();
        assert!(Arc::ptr_eq(&PrefixedLog::wrap("", raw.clone()), &raw));
    }
}
