//! The Kinesis pass-through (`backend.type: kinesis`): each request a client sends goes to the
//! upstream Kinesis, re-signed with strait's credentials, and the upstream's answer comes back
//! as it was sent: status, error type and body, event streams relayed frame by frame as they
//! arrive. Counted per operation like the local API, and per stream (records and bytes in and
//! out, read by `traffic.rs` from the bodies as they pass). Decides nothing about the
//! operations themselves: the upstream does.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;

use super::error::ApiError;
use super::ops;
use super::server::{check_head, content_protocol, error_response, Body, ReqBody, TARGET_PREFIX};
use super::traffic::{self, Iterators};
use crate::backend::kinesis::upstream::Upstream;
use crate::protocol::kinesis::codec::Protocol;
use crate::protocol::kinesis::eventstream;

pub struct Forwarder {
    upstream: Arc<Upstream>,
    iterators: Iterators,
}

impl Forwarder {
    pub fn new(upstream: Arc<Upstream>) -> Forwarder {
        Forwarder {
            upstream,
            iterators: Iterators::default(),
        }
    }

    /// The stream an iterator the upstream handed out (through strait, lately) reads.
    pub fn iterator_stream(&self, iterator: &str) -> Option<Arc<str>> {
        self.iterators.stream(iterator)
    }
}

/// The most of an answer read whole to count it (GetRecords: 10 MiB of data in base64 with
/// up to 10,000 partition keys).
const MAX_COUNTED_ANSWER: usize = 24 << 20;

/// Response headers that describe one hop's connection, not the answer.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

pub async fn handle(
    fwd: Arc<Forwarder>,
    max_body: usize,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    Ok(handle_parts(fwd, parts, ReqBody::Unread(body, max_body)).await)
}

/// `handle`, for a request already taken apart.
pub async fn handle_parts(
    fwd: Arc<Forwarder>,
    parts: http::request::Parts,
    body: ReqBody,
) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    // Only for strait's own errors; the upstream answers in the client's protocol itself.
    let protocol = content_protocol(&parts.headers).unwrap_or(Protocol::Json);
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let op = target.strip_prefix(TARGET_PREFIX).unwrap_or("");
    let at = ops::find(op);
    let operation = at.map_or("unknown", |i| ops::OPERATIONS[i].name);
    let metric = ops::request_metric(at);
    let started = std::time::Instant::now();
    let result = forward(&fwd, &parts, body, op, protocol).await;
    metric.observe(started.elapsed());
    let answered = match result {
        Ok((answer, _)) if answer.status().as_u16() >= 400 => {
            let code = answer
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(':').next().unwrap_or(v).to_string())
                .unwrap_or_else(|| format!("HTTP{}", answer.status().as_u16()));
            crate::observe::metrics().error("kinesis", operation, &code);
            Ok(relay(answer, None))
        }
        Ok((answer, sent)) => count(&fwd, op, protocol, sent, answer).await,
        Err(e) => Err(e),
    };
    answered.unwrap_or_else(|e| {
        crate::observe::metrics().error("kinesis", operation, e.code);
        error_response(protocol, &e, &request_id)
    })
}

/// Counts a successful answer's records against its stream and hands it on: answers that
/// carry counts are read whole first (they are small, or at most a GetRecords page), event
/// streams are counted frame by frame as they are relayed.
async fn count(
    fwd: &Forwarder,
    op: &str,
    protocol: Protocol,
    sent: traffic::Request,
    answer: Response<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let m = crate::observe::metrics();
    if let traffic::Request::Subscribe { stream } = sent {
        return Ok(relay(answer, Some((stream, protocol))));
    }
    if sent == traffic::Request::Other {
        return Ok(relay(answer, None));
    }
    let (mut parts, body) = answer.into_parts();
    let whole = Limited::new(body, MAX_COUNTED_ANSWER)
        .collect()
        .await
        .map_err(|e| ApiError::internal(format!("the Kinesis upstream's answer broke off: {e}")))?
        .to_bytes();
    match sent {
        traffic::Request::Put { stream, sizes } => {
            let c = traffic::written(op, protocol, &sizes, &whole);
            m.written("kinesis", &stream, c.records, c.bytes);
        }
        traffic::Request::Iterator { stream } => {
            if let Some(it) = traffic::iterator(protocol, &whole) {
                fwd.iterators.remember(it, stream.into());
            }
        }
        traffic::Request::Read { iterator } => {
            let (c, next) = traffic::read(protocol, &whole);
            if let Some(stream) = fwd.iterators.stream(&iterator) {
                m.read("kinesis", &stream, c.records, c.bytes);
                if let Some(next) = next {
                    fwd.iterators.remember(next, stream);
                }
            }
        }
        traffic::Request::Subscribe { .. } | traffic::Request::Other => {}
    }
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Full::new(whole).boxed_unsync()))
}

async fn forward(
    fwd: &Forwarder,
    parts: &http::request::Parts,
    body: ReqBody,
    op: &str,
    protocol: Protocol,
) -> Result<(Response<Incoming>, traffic::Request), ApiError> {
    if parts.method != Method::POST {
        return Err(ApiError::unknown_operation(format!(
            "Method {} is not supported; the Kinesis API takes POST /.",
            parts.method
        )));
    }
    check_head(parts)?;
    // Whole, because the signature covers the body's hash.
    let (body, _held) = body.read().await?;
    let sent = traffic::request(op, protocol, &body);
    let answer = fwd.upstream.send(&parts.headers, body).await.map_err(|e| {
        tracing::warn!(error = %e, "Kinesis upstream");
        // A 500 InternalFailure: what the SDKs retry.
        ApiError::internal(e.to_string())
    })?;
    Ok((answer, sent))
}

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// The upstream's answer as the client's: its status and headers, and its body streamed
/// frame by frame (an event stream keeps flowing; a broken upstream ends it). With a stream
/// named, the body is a SubscribeToShard event stream whose records are counted as they pass.
fn relay(answer: Response<Incoming>, events_of: Option<(String, Protocol)>) -> Response<Body> {
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let counter = events_of.map(|(stream, protocol)| EventCounter {
        stream,
        protocol,
        pending: BytesMut::new(),
        broken: false,
    });
    let frames = futures_util::stream::unfold(Some((body, counter)), |state| async move {
        let (mut body, mut counter) = state?;
        match body.frame().await? {
            Ok(frame) => {
                if let (Some(c), Some(data)) = (counter.as_mut(), frame.data_ref()) {
                    c.feed(data);
                }
                Some((Ok(frame), Some((body, counter))))
            }
            Err(e) => {
                tracing::debug!(error = %e, "the Kinesis upstream's answer broke off");
                None
            }
        }
    });
    Response::from_parts(parts, StreamBody::new(frames).boxed_unsync())
}

/// Reads the event-stream messages out of a relayed SubscribeToShard answer, however its
/// chunks cut them, and counts each event's records.
struct EventCounter {
    stream: String,
    protocol: Protocol,
    pending: BytesMut,
    /// The stream stopped decoding: nothing after it is counted.
    broken: bool,
}

impl EventCounter {
    fn feed(&mut self, data: &Bytes) {
        if self.broken {
            return;
        }
        self.pending.extend_from_slice(data);
        loop {
            match eventstream::decode(&self.pending) {
                Ok((message, used)) => {
                    let _ = self.pending.split_to(used);
                    if message.header(":event-type") == Some("SubscribeToShardEvent") {
                        let c = traffic::event(self.protocol, &message.payload);
                        crate::observe::metrics().read("kinesis", &self.stream, c.records, c.bytes);
                    }
                }
                Err(eventstream::DecodeError::Incomplete) => return,
                // The client sees the same bytes and judges them; counting stops here.
                Err(eventstream::DecodeError::Invalid(_)) => {
                    self.pending = BytesMut::new();
                    self.broken = true;
                    return;
                }
            }
        }
    }
}
