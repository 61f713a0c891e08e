//! The Kinesis HTTP listener: HTTP/1.1 and h2c (prior knowledge) on one port through hyper's
//! auto builder. Owns request framing (method, target, content type, body limit), dispatch
//! through the operations table, and turning results and errors into responses.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::auth;
use super::error::ApiError;
use super::ops::{self, Ctx, EventStream, Handler};
use crate::listener::{Activity, Closing, Connections, HeldBytes, Tracked};
use crate::protocol::kinesis::codec::{self, Protocol};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What a request produced: one encoded body or an event stream.
enum Answer {
    Body(Bytes),
    Events(EventStream),
}

pub(super) const TARGET_PREFIX: &str = "Kinesis_20131202.";
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// Answers one request with a body limit: the pass-through's entry point, handed in by whoever
/// starts the listener, so the server does not depend on it.
pub type Forward = Arc<
    dyn Fn(
            usize,
            Request<Incoming>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>,
        > + Send
        + Sync,
>;

/// Who answers the requests: strait's own operations over the core, or the upstream Kinesis
/// through the pass-through.
#[derive(Clone)]
pub enum Api {
    Local(Arc<Ctx>),
    Forward(Forward),
    /// Streams being migrated from a Kinesis source go there, the rest to the core.
    Split(Arc<super::split::Split>),
}

/// A request body: as it arrives, or already read whole by a router that looked into it
/// (which then holds its bytes against the in-flight limit).
pub enum ReqBody {
    Unread(Incoming, usize),
    Read(Bytes),
}

impl ReqBody {
    pub async fn read(self) -> Result<(Bytes, Option<HeldBytes>), ApiError> {
        match self {
            ReqBody::Unread(body, max_body) => {
                let (b, held) = read_body(body, max_body).await?;
                Ok((b, Some(held)))
            }
            ReqBody::Read(b) => Ok((b, None)),
        }
    }
}

/// Serves plain HTTP/1.1, h2c with prior knowledge and, with `tls` set, TLS (ALPN h2 or
/// http/1.1) on one port. hyper's auto builder tells HTTP/2 from HTTP/1.1 by the preface,
/// so h2 works over TLS whatever ALPN said.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    max_body: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
    conns: Arc<Connections>,
    closing: Closing,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let shutdown = crate::listener::closed(closing.clone());
    crate::listener::accept_until(listener, "kinesis", conns, shutdown, move |stream, peer| {
        let api = api.clone();
        let acceptor = acceptor.clone();
        let closing = closing.clone();
        async move {
            let _open = crate::observe::metrics::ConnectionGuard::new("kinesis");
            let limits = crate::listener::limits();
            let activity = Arc::new(Activity::default());
            let requests = activity.clone();
            let svc = tower::service_fn(move |req| {
                let api = api.clone();
                // In flight until its answer, an event stream included, has been sent.
                let in_flight = requests.start();
                async move {
                    let answer = match api {
                        Api::Local(ctx) => handle(ctx, max_body, req).await,
                        Api::Forward(forward) => forward(max_body, req).await,
                        Api::Split(split) => super::split::handle(split, max_body, req).await,
                    };
                    answer.map(|r| r.map(|b| Tracked::new(b, in_flight).boxed_unsync()))
                }
            });
            let svc = TowerToHyperService::new(svc);
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // An HTTP/1.1 request head must arrive within limits.request_read_timeout_secs;
            // idle HTTP/2 connections are pinged (and closed when idle, below).
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(60)));
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, open(stream, acceptor)).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "no TLS handshake or first byte in time");
                    return;
                }
            };
            // Once shutdown begins a connection finishes what is in flight (HTTP/1.1: the
            // current response, then close; HTTP/2: GOAWAY, open streams run to their end).
            // A connection with no request in flight for limits.idle_timeout_secs is closed
            // the same way.
            macro_rules! until_drained {
                ($io:expr) => {{
                    let conn = builder.serve_connection(TokioIo::new($io), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        served = conn.as_mut() => served,
                        _ = crate::listener::closed(closing) => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                        _ = activity.idle_for(limits.idle) => {
                            crate::observe::metrics().connection_closed("kinesis", "idle");
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    }
                }};
            }
            let served = match conn {
                Conn::Tls(tls) => until_drained!(tls),
                Conn::Plain(tcp) => until_drained!(tcp),
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
    })
    .await;
}

/// A new connection must send its first byte, and a TLS client finish its handshake, in time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Tells a TLS ClientHello from plain HTTP by the first byte (left in the socket), and
/// completes the handshake for TLS.
async fn open(
    stream: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<Conn> {
    let Some(acceptor) = acceptor else {
        return Ok(Conn::Plain(stream));
    };
    let mut first = [0u8; 1];
    // Ok(0) is a closed connection: hyper sees the EOF on the plain path.
    if stream.peek(&mut first).await? == 1 && first[0] == super::tls::HANDSHAKE_RECORD {
        Ok(Conn::Tls(Box::new(acceptor.accept(stream).await?)))
    } else {
        Ok(Conn::Plain(stream))
    }
}

pub async fn handle(
    ctx: Arc<Ctx>,
    max_body: usize,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    Ok(handle_parts(ctx, parts, ReqBody::Unread(body, max_body)).await)
}

/// `handle`, for a request already taken apart.
pub(super) async fn handle_parts(
    ctx: Arc<Ctx>,
    parts: http::request::Parts,
    body: ReqBody,
) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let protocol = match content_type {
        None => Protocol::Json,
        Some(ct) => match Protocol::from_content_type(ct) {
            Some(p) => p,
            None => {
                let e = ApiError::serialization(format!("Unsupported Content-Type: {ct}"));
                return error_response(Protocol::Json, &e, &request_id);
            }
        },
    };
    let started = std::time::Instant::now();
    // Looked up once: the operation label comes from the table, so unknown targets share one.
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let at = target.strip_prefix(TARGET_PREFIX).and_then(ops::find);
    let metric = ops::request_metric(at);
    let result = dispatch(ctx, &parts, body, protocol, target, at).await;
    metric.observe(started.elapsed());
    if let Err(e) = &result {
        let operation = at.map_or("unknown", |i| ops::OPERATIONS[i].name);
        crate::observe::metrics().error("kinesis", operation, e.code);
    }
    match result {
        Ok(Answer::Body(bytes)) => {
            let mut resp = Response::new(Full::new(bytes).boxed_unsync());
            decorate(&mut resp, protocol.content_type(), &request_id);
            resp
        }
        Ok(Answer::Events(events)) => {
            let frames = futures_util::stream::unfold(events.messages, |mut rx| async move {
                let msg = rx.recv().await?;
                Some((Ok(http_body::Frame::data(msg)), rx))
            });
            let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
            decorate(&mut resp, EVENT_STREAM, &request_id);
            resp
        }
        Err(e) => error_response(protocol, &e, &request_id),
    }
}

/// The encoding a message's Content-Type names, if it names one strait reads.
pub(super) fn content_protocol(headers: &http::HeaderMap) -> Option<Protocol> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Protocol::from_content_type)
}

/// What every request's head must be before anything runs (the local API and the
/// pass-through alike): one X-Amz-Target, and no transfer coding but chunked.
pub(super) fn check_head(parts: &http::request::Parts) -> Result<(), ApiError> {
    if parts.headers.get_all("x-amz-target").iter().count() > 1 {
        return Err(ApiError::serialization(
            "A request carries one X-Amz-Target header; this one has several.",
        ));
    }
    for value in parts.headers.get_all(http::header::TRANSFER_ENCODING) {
        let codings = value.to_str().unwrap_or("?");
        if codings
            .split(',')
            .map(str::trim)
            .any(|c| !c.eq_ignore_ascii_case("chunked"))
        {
            return Err(ApiError::not_implemented(format!(
                "Transfer-Encoding {codings:?} is not supported; only chunked is."
            )));
        }
    }
    Ok(())
}

async fn dispatch(
    ctx: Arc<Ctx>,
    parts: &http::request::Parts,
    body: ReqBody,
    protocol: Protocol,
    target: &str,
    at: Option<usize>,
) -> Result<Answer, ApiError> {
    if parts.method != Method::POST {
        return Err(ApiError::unknown_operation(format!(
            "Method {} is not supported; the Kinesis API takes POST /.",
            parts.method
        )));
    }
    check_head(parts)?;
    let op = at
        .map(|i| &ops::OPERATIONS[i])
        .ok_or_else(|| ApiError::unknown_operation(format!("Unknown X-Amz-Target: {target:?}")))?;
    let handler = op.handler.ok_or_else(|| {
        ApiError::unknown_operation(format!(
            "{} is not supported by strait: {}",
            op.name, op.note
        ))
    })?;
    let principal = auth::principal(&parts.headers);
    let (body, _held) = body.read().await?;
    // After the body, so the connection stays usable for the client's retry.
    ctx.throttle.control_plane(op.name)?;
    tracing::debug!(op = op.name, ?principal, bytes = body.len(), "request");
    let answer = async move {
        match handler {
            Handler::Unary(f) => f(ctx, protocol, body).await.map(Answer::Body),
            Handler::Stream(f) => f(ctx, protocol, body).await.map(Answer::Events),
        }
    };
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!(op = op.name, "handler panicked");
            Err(ApiError::internal("Internal Service Failure"))
        }
    }
}

/// A request body, whole, refused past `max_body` bytes.
/// The request body, whole, with its bytes held against `limits.max_inflight_bytes` until
/// the caller drops them (when the request has been answered).
pub(super) async fn read_body(
    body: Incoming,
    max_body: usize,
) -> Result<(Bytes, HeldBytes), ApiError> {
    // A declared length over the limit is refused before any of it is read.
    let declared = http_body::Body::size_hint(&body).lower();
    if declared > max_body as u64 {
        return Err(ApiError::serialization(format!(
            "Request body exceeds the limit of {max_body} bytes."
        )));
    }
    // A body of unknown length (chunked, or HTTP/2 without Content-Length) is counted as
    // 1 MiB; Limited still stops it at max_body.
    let size = http_body::Body::size_hint(&body);
    let counted = size.exact().unwrap_or(declared.max(1 << 20)) as usize;
    let held = crate::listener::hold_bytes(counted.min(max_body)).await;
    let read = crate::listener::limits().read;
    let collected = tokio::time::timeout(read, Limited::new(body, max_body).collect())
        .await
        .map_err(|_| {
            crate::observe::metrics().connection_closed("kinesis", "read_timeout");
            ApiError::serialization(format!(
                "The request body did not arrive within {} s.",
                read.as_secs()
            ))
        })?;
    Ok((
        collected
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    ApiError::serialization(format!(
                        "Request body exceeds the limit of {max_body} bytes."
                    ))
                } else {
                    ApiError::serialization(format!("Could not read the request body: {e}"))
                }
            })?
            .to_bytes(),
        held,
    ))
}

fn decorate(resp: &mut Response<Body>, content_type: &'static str, request_id: &str) {
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
}

pub(super) fn error_response(protocol: Protocol, e: &ApiError, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(codec::encode(protocol, &e.body())).boxed_unsync());
    *resp.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    decorate(&mut resp, protocol.content_type(), request_id);
    if let Ok(v) = HeaderValue::from_str(e.code) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}
