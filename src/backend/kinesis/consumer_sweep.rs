//! Stream consumers of replicas gone for good (`read: fan-out` with `state.type: dynamodb`).
//! Each replica registers its own consumer, `<consumer_name>-<node id>`; AWS bills every
//! registered consumer by the shard-hour and allows 20 a stream, so the consumer of a replica
//! whose registration in the state table ended more than `GONE_FOR` ago is deregistered. A
//! replica restarting under its configured node id is back well within that, and a derived
//! id is not handed out again before it (`replicas.rs`). A consumer whose node id the table
//! never held is not strait's and is left alone.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::{storage_error, KinesisClient};
use super::state::StateTable;
use crate::backend::StorageResult;

/// How long a replica's registration must have ended before its consumers are deregistered.
pub const GONE_FOR: Duration = Duration::from_secs(3_600);
/// How often each stream strait reads by fan-out is swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

pub struct ConsumerSweep {
    /// `backend.kinesis.consumer_name`, without a node id.
    pub base: String,
    pub table: Arc<StateTable>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput<'a> {
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    stream_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ListOutput {
    consumers: Vec<Listed>,
    next_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Listed {
    consumer_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeregisterInput<'a> {
    #[serde(rename = "StreamARN")]
    stream_arn: &'a str,
    consumer_name: &'a str,
}

#[derive(Deserialize, Default)]
struct Empty {}

impl ConsumerSweep {
    /// Deregisters the consumers on `stream_arn` of replicas gone for good; returns their
    /// names.
    pub async fn run(
        &self,
        client: &KinesisClient,
        stream_arn: &str,
    ) -> StorageResult<Vec<String>> {
        let gone = super::replicas::gone_for_good(&self.table, GONE_FOR).await?;
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // A NextToken carries the stream itself: the two are not sent together.
            let input = ListInput {
                stream_arn: token.is_none().then_some(stream_arn),
                next_token: token.as_deref(),
            };
            let page: ListOutput = client
                .call("ListStreamConsumers", &input)
                .await
                .map_err(storage_error)?;
            names.extend(page.consumers.into_iter().map(|c| c.consumer_name));
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        let mut deregistered = Vec::new();
        for name in names {
            if !node_of(&self.base, &name).is_some_and(|id| gone.contains(&id)) {
                continue;
            }
            let input = DeregisterInput {
                stream_arn,
                consumer_name: &name,
            };
            match client
                .call::<_, Empty>("DeregisterStreamConsumer", &input)
                .await
            {
                Ok(_) => {
                    tracing::info!(consumer = %name, stream = %stream_arn, "deregistered the stream consumer of a replica gone for good");
                    deregistered.push(name);
                }
                Err(e) if e.is("ResourceNotFoundException") || e.is("ResourceInUseException") => {}
                Err(e) => return Err(storage_error(e)),
            }
        }
        Ok(deregistered)
    }
}

/// The node id in `name` when it is `<base>-<digits>`.
fn node_of(base: &str, name: &str) -> Option<i32> {
    let id = name.strip_prefix(base)?.strip_prefix('-')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_the_base_and_a_node_id_count() {
        let sweep = node_of;
        assert_eq!(sweep("strait", "strait-7"), Some(7));
        assert_eq!(sweep("strait", "strait-007"), Some(7));
        assert_eq!(sweep("strait", "strait"), None);
        assert_eq!(sweep("strait", "strait-"), None);
        assert_eq!(sweep("strait", "strait-7a"), None);
        assert_eq!(sweep("strait", "strait-+7"), None);
        assert_eq!(sweep("strait", "straits-7"), None);
        assert_eq!(sweep("strait", "other-7"), None);
    }
}
