//! The Kinesis pass-through (`backend.type: kinesis`): each request a client sends goes to the
//! upstream Kinesis, re-signed with strait's credentials, and the upstream's answer comes back
//! as it was sent: status, error type and body, event streams relayed frame by frame as they
//! arrive. Counted per operation like the local API. Decides nothing about the operations
//! themselves: the upstream does.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;

use super::error::ApiError;
use super::ops;
use super::server::{check_head, error_response, read_body, Body, TARGET_PREFIX};
use crate::backend::kinesis::upstream::Upstream;
use crate::protocol::kinesis::codec::Protocol;

pub struct Forwarder {
    pub upstream: std::sync::Arc<Upstream>,
}

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
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    // Only for strait's own errors; the upstream answers in the client's protocol itself.
    let protocol = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Protocol::from_content_type)
        .unwrap_or(Protocol::Json);
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let metric = ops::request_metric(target.strip_prefix(TARGET_PREFIX).and_then(ops::find));
    let started = std::time::Instant::now();
    let result = forward(&fwd, max_body, &parts, body).await;
    metric.observe(started.elapsed());
    Ok(match result {
        Ok(answer) => {
            if answer.status().as_u16() >= 400 {
                let code = answer
                    .headers()
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(':').next().unwrap_or(v).to_string())
                    .unwrap_or_else(|| format!("HTTP{}", answer.status().as_u16()));
                crate::observe::metrics().error("kinesis", &code);
            }
            relay(answer)
        }
        Err(e) => {
            crate::observe::metrics().error("kinesis", e.code);
            error_response(protocol, &e, &request_id)
        }
    })
}

async fn forward(
    fwd: &Forwarder,
    max_body: usize,
    parts: &http::request::Parts,
    body: Incoming,
) -> Result<Response<Incoming>, ApiError> {
    if parts.method != Method::POST {
        return Err(ApiError::unknown_operation(format!(
            "Method {} is not supported; the Kinesis API takes POST /.",
            parts.method
        )));
    }
    check_head(parts)?;
    // Whole, because the signature covers the body's hash.
    let (body, _held) = read_body(body, max_body).await?;
    fwd.upstream.send(&parts.headers, body).await.map_err(|e| {
        tracing::warn!(error = %e, "Kinesis upstream");
        // A 500 InternalFailure: what the SDKs retry.
        ApiError::internal(e.to_string())
    })
}

/// The upstream's answer as the client's: its status and headers, and its body streamed
/// frame by frame (an event stream keeps flowing; a broken upstream ends it).
fn relay(answer: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = answer.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    let frames = futures_util::stream::unfold(Some(body), |body| async move {
        let mut body = body?;
        match body.frame().await? {
            Ok(frame) => Some((Ok(frame), Some(body))),
            Err(e) => {
                tracing::debug!(error = %e, "the Kinesis upstream's answer broke off");
                None
            }
        }
    });
    Response::from_parts(parts, StreamBody::new(frames).boxed_unsync())
}
