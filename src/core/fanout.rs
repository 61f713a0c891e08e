//! Enhanced fan-out (reference §4c): consumer registrations, kept in the stream's catalog
//! document, and the lease each (consumer, shard) subscription holds so a second subscriber
//! within five seconds is refused and a later one takes over. The read side of a
//! subscription is `Core::read_span` in `data.rs`; the push loop belongs to the front end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::error::{CoreError, CoreResult};
use super::now_ms;
use super::service::Core;

/// How long a new registration reports CREATING.
pub const TRANSITION_MS: i64 = 200;
/// How long a deregistered consumer reports DELETING. At least a second, so a new
/// registration of the same name never gets the old ARN (ARNs carry whole seconds).
pub const DELETING_MS: i64 = 1_000;
/// A second subscription to one (consumer, shard) within this window is refused.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(5);

/// One registered consumer, persisted with its stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Consumer {
    pub name: String,
    pub created_ms: i64,
    /// Set by deregistration; the consumer is gone once `TRANSITION_MS` have passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStatus {
    Creating,
    Active,
    Deleting,
}

impl ConsumerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerStatus::Creating => "CREATING",
            ConsumerStatus::Active => "ACTIVE",
            ConsumerStatus::Deleting => "DELETING",
        }
    }
}

impl Consumer {
    pub fn created_secs(&self) -> i64 {
        self.created_ms / 1000
    }

    /// `None` once a deregistered consumer has finished deleting.
    pub fn status(&self, now: i64) -> Option<ConsumerStatus> {
        match self.deleting_ms {
            Some(d) if now - d >= DELETING_MS => None,
            Some(_) => Some(ConsumerStatus::Deleting),
            None if now - self.created_ms < TRANSITION_MS => Some(ConsumerStatus::Creating),
            None => Some(ConsumerStatus::Active),
        }
    }
}

/// Why a subscription ended early; sent to the old holder of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Held,
    TakenOver,
    /// The consumer was deregistered or its stream deleted.
    Gone,
}

struct Lease {
    id: u64,
    started: Instant,
    revoke: watch::Sender<Revoked>,
}

type LeaseKey = (String, String, u32);

/// Who holds each (stream, consumer, partition) subscription.
#[derive(Default)]
pub struct Subscriptions {
    leases: Mutex<HashMap<LeaseKey, Lease>>,
    next_id: AtomicU64,
}

/// Held for the life of one subscription; `revoked` changes to `TakenOver` when a newer
/// subscription replaces it. Dropping it frees the lease unless it was taken over.
pub struct SubscriptionLease {
    owner: Arc<Core>,
    key: LeaseKey,
    id: u64,
    pub revoked: watch::Receiver<Revoked>,
}

impl Drop for SubscriptionLease {
    fn drop(&mut self) {
        let mut leases = self.owner.subscriptions.leases.lock();
        if leases.get(&self.key).is_some_and(|l| l.id == self.id) {
            leases.remove(&self.key);
        }
    }
}

impl Core {
    /// The consumer as registered now, if it exists and has not finished deleting.
    pub fn consumer(&self, stream: &str, name: &str) -> CoreResult<Consumer> {
        let s = self.stream(stream)?;
        let now = now_ms();
        s.consumers
            .iter()
            .find(|c| c.name == name && c.status(now).is_some())
            .cloned()
            .ok_or_else(|| CoreError::ConsumerNotFound {
                stream: stream.to_string(),
                consumer: name.to_string(),
                account: self.account_id.clone(),
            })
    }

    /// The stream's consumers that still exist, in registration order.
    pub fn consumers(&self, stream: &str) -> CoreResult<Vec<Consumer>> {
        let s = self.stream(stream)?;
        let now = now_ms();
        Ok(s.consumers
            .iter()
            .filter(|c| c.status(now).is_some())
            .cloned()
            .collect())
    }

    pub async fn register_consumer(
        &self,
        stream: &str,
        name: &str,
        limit: u32,
        tags: std::collections::BTreeMap<String, String>,
    ) -> CoreResult<Consumer> {
        let account = self.account_id.clone();
        self.update_stream::<_, CoreError>(stream, |s| {
            let now = now_ms();
            s.consumers.retain(|c| c.status(now).is_some());
            if s.consumers.iter().any(|c| c.name == name) {
                return Err(CoreError::ConsumerExists {
                    stream: stream.to_string(),
                    consumer: name.to_string(),
                    account,
                });
            }
            if s.consumers.len() >= limit as usize {
                return Err(CoreError::LimitExceeded(format!(
                    "Stream {stream} under account {account} already has {} registered consumers, the limit.",
                    s.consumers.len()
                )));
            }
            let c = Consumer {
                name: name.to_string(),
                created_ms: now,
                deleting_ms: None,
                tags,
            };
            s.consumers.push(c.clone());
            Ok(c)
        })
        .await
    }

    pub async fn deregister_consumer(&self, stream: &str, name: &str) -> CoreResult<Consumer> {
        let account = self.account_id.clone();
        let out = self
            .update_stream::<_, CoreError>(stream, |s| {
                let now = now_ms();
                s.consumers.retain(|c| c.status(now).is_some());
                let c = s
                    .consumers
                    .iter_mut()
                    .find(|c| c.name == name && c.deleting_ms.is_none())
                    .ok_or_else(|| CoreError::ConsumerNotFound {
                        stream: stream.to_string(),
                        consumer: name.to_string(),
                        account,
                    })?;
                c.deleting_ms = Some(now);
                Ok(c.clone())
            })
            .await?;
        self.revoke_consumer_leases(stream, name);
        Ok(out)
    }

    fn revoke_consumer_leases(&self, stream: &str, consumer: &str) {
        let mut leases = self.subscriptions.leases.lock();
        leases.retain(|(s, c, _), lease| {
            let keep = !(s == stream && c == consumer);
            if !keep {
                let _ = lease.revoke.send(Revoked::Gone);
            }
            keep
        });
    }

    /// Takes the subscription lease of (stream, consumer, partition): refused within five
    /// seconds of the current holder's start, otherwise the holder is told it was taken over.
    pub fn subscribe_lease(
        self: &Arc<Self>,
        stream: &str,
        registered: &Consumer,
        partition: u32,
    ) -> CoreResult<SubscriptionLease> {
        let consumer = registered.name.as_str();
        let key = (stream.to_string(), consumer.to_string(), partition);
        let mut leases = self.subscriptions.leases.lock();
        // Checked under the lease lock: a deregistration revokes leases under it after
        // marking the consumer, so a subscription either sees DELETING here or is revoked.
        let current = self.consumer(stream, consumer)?;
        if current.created_ms != registered.created_ms || current.deleting_ms.is_some() {
            return Err(CoreError::ConsumerNotFound {
                stream: stream.to_string(),
                consumer: consumer.to_string(),
                account: self.account_id.clone(),
            });
        }
        if let Some(old) = leases.get(&key) {
            let age = old.started.elapsed();
            if age < TAKEOVER_AFTER {
                return Err(CoreError::SubscriptionInUse {
                    consumer: consumer.to_string(),
                    shard: super::catalog::shard_id(partition),
                    age_ms: age.as_millis() as u64,
                });
            }
            let _ = old.revoke.send(Revoked::TakenOver);
        }
        let id = self.subscriptions.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(Revoked::Held);
        leases.insert(
            key.clone(),
            Lease {
                id,
                started: Instant::now(),
                revoke: tx,
            },
        );
        Ok(SubscriptionLease {
            owner: self.clone(),
            key,
            id,
            revoked: rx,
        })
    }

    /// Ends every subscription of a stream that is being deleted.
    pub(super) fn revoke_stream_leases(&self, stream: &str) {
        let mut leases = self.subscriptions.leases.lock();
        leases.retain(|(s, _, _), lease| {
            if s == stream {
                let _ = lease.revoke.send(Revoked::Gone);
            }
            s != stream
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_creation_and_deletion() {
        let c = Consumer {
            name: "c".into(),
            created_ms: 1_000,
            deleting_ms: None,
            tags: Default::default(),
        };
        assert_eq!(c.status(1_000), Some(ConsumerStatus::Creating));
        assert_eq!(
            c.status(1_000 + TRANSITION_MS),
            Some(ConsumerStatus::Active)
        );
        let d = Consumer {
            deleting_ms: Some(5_000),
            ..c
        };
        assert_eq!(d.status(5_000), Some(ConsumerStatus::Deleting));
        assert_eq!(
            d.status(5_000 + TRANSITION_MS),
            Some(ConsumerStatus::Deleting)
        );
        assert_eq!(d.status(5_000 + DELETING_MS), None);
    }
}
