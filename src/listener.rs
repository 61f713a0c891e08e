//! The accept loop the listeners share: accept until shutdown, TCP_NODELAY, one task per
//! connection, each counted in a `Connections` so shutdown can wait for them to finish. A
//! failed accept (e.g. out of file descriptors) is logged and retried after a pause rather
//! than spinning. The `limits` section applies here: connections beyond
//! `max_connections` are closed at once, and `activity.rs` tells when a connection has been
//! idle too long.

mod activity;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

pub use activity::{Activity, Tracked};

/// The process's limits on client connections (`limits`), set once at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub idle: Duration,
    pub read: Duration,
    pub max_inflight_bytes: usize,
}

static LIMITS: OnceLock<Limits> = OnceLock::new();
/// Permits are bytes of requests being read or answered, across every connection.
static INFLIGHT: OnceLock<Arc<tokio::sync::Semaphore>> = OnceLock::new();

/// Bytes of one request held against `limits.max_inflight_bytes`, given back on drop.
pub struct HeldBytes {
    _permit: tokio::sync::OwnedSemaphorePermit,
    n: u32,
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        crate::observe::metrics()
            .inflight_bytes
            .sub(i64::from(self.n));
    }
}

/// Waits until `n` more request bytes fit under `limits.max_inflight_bytes` (a request
/// larger than the whole budget waits for all of it), and holds them.
pub async fn hold_bytes(n: usize) -> HeldBytes {
    let budget = limits().max_inflight_bytes;
    let sem = INFLIGHT
        .get_or_init(|| Arc::new(tokio::sync::Semaphore::new(budget)))
        .clone();
    let n = n.clamp(1, budget) as u32;
    let permit = sem
        .acquire_many_owned(n)
        .await
        .expect("the in-flight budget is never closed");
    crate::observe::metrics().inflight_bytes.add(i64::from(n));
    HeldBytes { _permit: permit, n }
}

/// `backend.embedded.max_open_files`, lowered to a quarter of the open-file limit `nofile`
/// (with a warning when it was set higher than the default allows).
pub fn fit_open_files(max_open_files: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return max_open_files;
    };
    let room = (nofile / 4).max(1) as usize;
    if max_open_files > room {
        tracing::info!(
            open_file_limit = nofile,
            configured = max_open_files,
            max_open_files = room,
            "backend.embedded.max_open_files fitted to a quarter of the open-file limit"
        );
        return room;
    }
    max_open_files
}

/// Sets the limits from the configuration, with `max_connections` clamped so `listeners`
/// listeners at their cap stay below the open-file limit `nofile`, leaving room for `files`
/// segment files and 256 more (upstream connections, metadata files).
pub fn set_limits(
    c: &crate::config::LimitsConfig,
    listeners: usize,
    files: usize,
    nofile: Option<u64>,
) {
    let mut max = c.max_connections;
    if let Some(nofile) = nofile {
        let reserved = 256 + files as u64;
        let room = (nofile.saturating_sub(reserved) / listeners.max(1) as u64).max(1) as usize;
        if max > room {
            // The default means "as many as fit": only a value someone chose earns a warning.
            if max == crate::config::LimitsConfig::default().max_connections {
                tracing::info!(
                    open_file_limit = nofile,
                    max_connections = room,
                    "limits.max_connections fitted to the open-file limit"
                );
            } else {
                tracing::warn!(
                    configured = max,
                    open_file_limit = nofile,
                    clamped = room,
                    "limits.max_connections is above what the open-file limit allows; clamped"
                );
            }
            max = room;
        }
    }
    let _ = LIMITS.set(Limits {
        max_connections: max,
        idle: Duration::from_secs(c.idle_timeout_secs),
        read: Duration::from_secs(c.request_read_timeout_secs),
        max_inflight_bytes: c.max_inflight_bytes,
    });
}

/// The limits in force (the defaults until `set_limits`).
pub fn limits() -> Limits {
    *LIMITS.get_or_init(|| {
        let d = crate::config::LimitsConfig::default();
        Limits {
            max_connections: d.max_connections,
            idle: Duration::from_secs(d.idle_timeout_secs),
            read: Duration::from_secs(d.request_read_timeout_secs),
            max_inflight_bytes: d.max_inflight_bytes,
        }
    })
}

/// The soft open-file limit of this process (Linux: /proc/self/limits).
pub fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Live connections of the listeners, for draining at shutdown.
#[derive(Default)]
pub struct Connections {
    live: AtomicUsize,
    idle: Notify,
}

struct Live(Arc<Connections>);

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Connections {
    fn enter(self: &Arc<Self>) -> Live {
        self.live.fetch_add(1, Ordering::SeqCst);
        Live(self.clone())
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until every connection has ended, or `grace` has passed; true if all ended.
    pub async fn drained(&self, grace: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.live() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(grace, wait).await.is_ok()
    }
}

pub async fn accept_until<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    conns: Arc<Connections>,
    shutdown: impl Future<Output = ()>,
    on_connection: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // This listener's own connections, against limits.max_connections.
    let mine = Arc::new(Connections::default());
    accept_counted(listener, what, conns, mine, shutdown, on_connection).await
}

/// `accept_until` for one of several sockets that together are one listener (the Kafka
/// pass-through's bootstrap and per-broker ports): `mine` counts the connections of them
/// all against limits.max_connections.
pub async fn accept_counted<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    conns: Arc<Connections>,
    mine: Arc<Connections>,
    shutdown: impl Future<Output = ()>,
    on_connection: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if mine.live() >= limits().max_connections {
            crate::observe::metrics().connection_closed(what, "refused");
            tracing::debug!(listener = what, %peer, "over limits.max_connections; closed");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let live = (conns.enter(), mine.enter());
        let served = on_connection(stream, peer);
        tokio::spawn(async move {
            served.await;
            drop(live);
        });
    }
}

/// Turns true when shutdown begins.
pub type Closing = tokio::sync::watch::Receiver<bool>;

/// Resolves once shutdown has begun.
pub async fn closed(mut closing: Closing) {
    let _ = closing.wait_for(|c| *c).await;
}
