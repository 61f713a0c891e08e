//! The accept loop the listeners share: accept until shutdown, TCP_NODELAY, one task per
//! connection, each counted in a `Connections` so shutdown can wait for them to finish. A
//! failed accept (e.g. out of file descriptors) is logged and retried after a pause rather
//! than spinning.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

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
        let _ = stream.set_nodelay(true);
        let live = conns.enter();
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
