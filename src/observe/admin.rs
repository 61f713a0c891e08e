//! The admin listener: `GET /metrics` (Prometheus text format), `/healthz` (liveness: the
//! process serves HTTP) and `/readyz` (readiness: the catalog is loaded and every listener is
//! bound; not ready again once shutdown begins), and `/migration` (the mirrors' status, as
//! JSON, when `migration.streams` is set).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::listener::{Closing, Connections};

/// What the admin port asks of a running migration (`migrate/`), which is started after the
/// listener and handed in through `MigrationSlot`.
#[async_trait::async_trait]
pub trait MigrationAdmin: Send + Sync {
    /// The status document (`{"streams": [...]}`).
    fn status(&self) -> serde_json::Value;
    /// Runs `action` (`cutover`, `rollback`) on `stream`: the stream's status entry, or why not.
    async fn act(
        &self,
        stream: &str,
        action: &str,
        timeout: std::time::Duration,
    ) -> Result<serde_json::Value, String>;
    /// `group`'s positions on `stream` as KCL checkpoints; with `set` (a checkpoints
    /// document), first commits the offsets those checkpoints resolve to.
    async fn checkpoints(
        &self,
        stream: &str,
        group: &str,
        set: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, String>;
}

/// The migration, once it has started (the admin listener comes up before it).
pub type MigrationSlot = Arc<std::sync::OnceLock<Arc<dyn MigrationAdmin>>>;

/// Whether strait is ready to take traffic: its listeners serve, and its backend (when it
/// is a remote one) answers.
pub struct Readiness {
    serving: AtomicBool,
    backend: AtomicBool,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            serving: AtomicBool::new(false),
            backend: AtomicBool::new(true),
        }
    }
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.serving.store(ready, Ordering::SeqCst);
        self.publish();
    }

    /// Reported by the Kafka backend's reachability probe.
    pub fn set_backend(&self, reachable: bool) {
        self.backend.store(reachable, Ordering::SeqCst);
        self.publish();
    }

    fn publish(&self) {
        super::metrics().ready.set(i64::from(self.get()));
    }

    pub fn get(&self) -> bool {
        self.serving.load(Ordering::SeqCst) && self.backend.load(Ordering::SeqCst)
    }

    fn why_not(&self) -> &'static str {
        if !self.backend.load(Ordering::SeqCst) {
            "not ready: the Kafka cluster is unreachable\n"
        } else {
            "not ready\n"
        }
    }
}

pub async fn serve(
    listener: TcpListener,
    ready: Arc<Readiness>,
    migration: MigrationSlot,
    closing: Closing,
) {
    // Admin connections are not drained: probes are short, and /readyz must keep answering
    // "not ready" while the other listeners drain.
    let conns = Arc::new(Connections::default());
    let shutdown = crate::listener::closed(closing);
    crate::listener::accept_until(listener, "admin", conns, shutdown, move |stream, _peer| {
        let ready = ready.clone();
        let migration = migration.clone();
        async move {
            let limits = crate::listener::limits();
            let activity = Arc::new(crate::listener::Activity::default());
            let requests = activity.clone();
            let svc = tower::service_fn(move |req| {
                let in_flight = requests.start();
                let answered = answer(ready.clone(), migration.clone(), req);
                async move {
                    answered
                        .await
                        .map(|r| r.map(|b| crate::listener::Tracked::new(b, in_flight)))
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.read);
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = activity.idle_for(limits.idle) => {
                    crate::observe::metrics().connection_closed("admin", "idle");
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
    })
    .await;
}

async fn answer(
    ready: Arc<Readiness>,
    migration: MigrationSlot,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r
    };
    if req.uri().path().ends_with("/checkpoints") && req.uri().path().starts_with("/migration/") {
        return Ok(migration_checkpoints(migration, req).await);
    }
    if req.method() == Method::POST {
        return Ok(migration_action(migration, req).await);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"));
    }
    Ok(match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(super::metrics().scrape().await)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/migration" => match migration.get() {
            Some(m) => {
                let doc = serde_json::to_vec(&m.status()).expect("status serialises");
                let mut r = Response::new(Full::new(Bytes::from(doc)));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                r
            }
            None => text(
                StatusCode::NOT_FOUND,
                "no migration: migration.streams is empty, or the backend is not open yet\n",
            ),
        },
        "/readyz" if ready.get() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, ready.why_not()),
        path if path.starts_with("/migration/") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz, /readyz or /migration\n",
        ),
    })
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// The largest checkpoints document taken (a lease per shard, a few hundred bytes each).
const MAX_CHECKPOINTS_BODY: usize = 4 << 20;

/// `GET /migration/STREAM/checkpoints?group=G`: the group's offsets as KCL checkpoints;
/// `POST` with a checkpoints document: commits the offsets after them as the group's. 200
/// with the document, or 409 with `{"error": "..."}`.
async fn migration_checkpoints(
    migration: MigrationSlot,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let error =
        |status: StatusCode, e: String| json_response(status, serde_json::json!({ "error": e }));
    let path = req.uri().path().to_string();
    let Some(stream) = path
        .strip_prefix("/migration/")
        .and_then(|p| p.strip_suffix("/checkpoints"))
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .map(str::to_string)
    else {
        return error(
            StatusCode::NOT_FOUND,
            "GET or POST /migration/STREAM/checkpoints?group=GROUP".into(),
        );
    };
    let group = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("group=")))
        .map(percent_decode)
        .unwrap_or_default();
    if group.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the group=GROUP query parameter is required".into(),
        );
    }
    let Some(m) = migration.get().cloned() else {
        return error(
            StatusCode::CONFLICT,
            "no migration: migration.streams is empty, or the backend is not open yet".into(),
        );
    };
    let set = match *req.method() {
        Method::GET => None,
        Method::POST => {
            let body = http_body_util::Limited::new(req.into_body(), MAX_CHECKPOINTS_BODY);
            let bytes = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
            };
            match serde_json::from_slice(&bytes) {
                Ok(doc) => Some(doc),
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("the body is not JSON: {e}"),
                    )
                }
            }
        }
        _ => return error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST".into()),
    };
    match m.checkpoints(&stream, &group, set).await {
        Ok(doc) => json_response(StatusCode::OK, doc),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

/// A query value's `%XX` escapes and `+` decoded (group ids may hold any character).
fn percent_decode(v: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /migration/STREAM/cutover[?timeout=SECS]` (and `.../rollback`): 200 with the
/// stream's status entry, or 409 with `{"error": "..."}`.
async fn migration_action(
    migration: MigrationSlot,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let json = json_response;
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (stream, action) = match parts.as_slice() {
        ["migration", stream, action] => (stream.to_string(), *action),
        _ => {
            let e = serde_json::json!({"error": "POST /migration/STREAM/cutover or /migration/STREAM/rollback"});
            return json(StatusCode::NOT_FOUND, e);
        }
    };
    let Some(m) = migration.get() else {
        let e = serde_json::json!({"error": "no migration: migration.streams is empty, or the backend is not open yet"});
        return json(StatusCode::CONFLICT, e);
    };
    let timeout = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("timeout=")))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(60)
        .clamp(1, 3600);
    if !matches!(action, "cutover" | "rollback") {
        let e =
            serde_json::json!({"error": format!("unknown action {action:?}: cutover or rollback")});
        return json(StatusCode::NOT_FOUND, e);
    }
    match m
        .act(&stream, action, std::time::Duration::from_secs(timeout))
        .await
    {
        Ok(entry) => json(StatusCode::OK, entry),
        Err(e) => json(StatusCode::CONFLICT, serde_json::json!({ "error": e })),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            super::percent_decode("kcl%2Dapp+one%3a%zz"),
            "kcl-app one:%zz"
        );
        assert_eq!(super::percent_decode("g%4"), "g%4");
    }
}
