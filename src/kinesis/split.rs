//! The Kinesis API during a migration (`migration.streams`): a request for a stream still
//! served by its Kinesis source is forwarded there (the pass-through, re-signed with
//! strait's credentials for the source); every other request is the core's. The body is read
//! once here to find the stream it names. A GetRecords names only an iterator, and a ListShards
//! continuation only a paging token: what strait did not sign itself came from the source.
//! Writes wait while the stream is being cut over (`migrate/routes.rs`).

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::ops::Ctx;
use super::server::{self, content_protocol, error_response, Body, ReqBody};
use super::traffic::{self, Names};
use crate::core::iterator::IteratorError;
use crate::core::Core;
use crate::protocol::kinesis::codec::Protocol;

/// Which streams the source serves and whether a write must wait (`migrate/routes.rs`).
#[async_trait::async_trait]
pub trait StreamRoutes: Send + Sync {
    /// Whether a request for `stream` (not a write) goes to the source.
    fn to_source(&self, stream: &str, core: &Core) -> bool;
    /// Where a write to `stream` goes, once no cutover holds it (true: the source), and a
    /// guard to hold until the source has answered it.
    async fn write(&self, stream: &str, core: &Core) -> (bool, Option<Box<dyn Send>>);
    /// The source answered a write to `stream` with these (shard id, sequence number).
    fn written(&self, stream: &str, positions: Vec<(String, String)>);
}

/// The pass-through to the source, for a request already taken apart: handed in by whoever
/// starts the listener, so this module does not depend on it.
pub type ForwardParts = Arc<
    dyn Fn(
            http::request::Parts,
            ReqBody,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>>
        + Send
        + Sync,
>;

/// The stream an iterator the source handed out through strait reads, if strait saw it.
pub type SourceIterators = Arc<dyn Fn(&str) -> Option<Arc<str>> + Send + Sync>;

pub struct Split {
    pub local: Arc<Ctx>,
    pub source: ForwardParts,
    pub routes: Arc<dyn StreamRoutes>,
    pub source_iterators: SourceIterators,
}

pub async fn handle(
    split: Arc<Split>,
    max_body: usize,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let protocol = content_protocol(&parts.headers).unwrap_or(Protocol::Json);
    let (body, _held) = match ReqBody::Unread(body, max_body).read().await {
        Ok(read) => read,
        Err(e) => {
            let id = uuid::Uuid::new_v4().to_string();
            return Ok(error_response(protocol, &e, &id));
        }
    };
    let op = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(super::server::TARGET_PREFIX))
        .unwrap_or("")
        .to_string();
    let op = op.as_str();
    let core = &split.local.core;
    let mut in_flight = None;
    let mut written_to = None;
    let to_source = match traffic::names(protocol, &body) {
        // Reshards are held through a cutover like writes: one the source took after the
        // drain would leave a shard here that no longer takes writes there.
        Names::Stream(stream)
            if matches!(
                op,
                "PutRecord" | "PutRecords" | "SplitShard" | "MergeShards" | "UpdateShardCount"
            ) =>
        {
            let (to_source, guard) = split.routes.write(&stream, core).await;
            in_flight = guard;
            if to_source && op.starts_with("Put") {
                written_to = Some(stream);
            }
            to_source
        }
        Names::Stream(stream) => split.routes.to_source(&stream, core),
        Names::Iterator(it) => {
            let now = crate::clock::now_ms();
            // strait's own iterators, expired ones too, are answered here.
            let foreign = matches!(core.signer().verify(&it, now), Err(IteratorError::Invalid));
            match (split.source_iterators)(&it) {
                // A reader still on the source of a stream since cut over would see nothing
                // new there for ever: told its iterator expired, a KCL worker or SDK poller
                // asks again from its last sequence number, which resolves here.
                Some(stream) if foreign && !split.routes.to_source(&stream, core) => {
                    let e = super::error::ApiError::expired_iterator(format!(
                        "Iterator expired: stream {stream} has been cut over from its source; get a new iterator (sequence numbers from the source are valid here)."
                    ));
                    let id = uuid::Uuid::new_v4().to_string();
                    return Ok(error_response(protocol, &e, &id));
                }
                _ => foreign,
            }
        }
        Names::PageToken(token) => core.signer().open(&token).is_none(),
        Names::Nothing => false,
    };
    let body = ReqBody::Read(body);
    if !to_source {
        return Ok(server::handle_parts(split.local.clone(), parts, body).await);
    }
    let answer = (split.source)(parts, body).await;
    let Some(stream) = written_to.filter(|_| answer.status().is_success()) else {
        return Ok(answer);
    };
    // A cutover drains the mirror past what the source acknowledged (`migrate/cutover.rs`).
    // The answer was read whole by the pass-through to count it, so this copies nothing.
    let (head, body) = answer.into_parts();
    let bytes = match http_body_util::BodyExt::collect(body).await {
        Ok(b) => b.to_bytes(),
        Err(never) => match never {},
    };
    let answered = content_protocol(&head.headers).unwrap_or(protocol);
    split
        .routes
        .written(&stream, traffic::positions(op, answered, &bytes));
    drop(in_flight);
    let body = http_body_util::BodyExt::boxed_unsync(http_body_util::Full::new(bytes));
    Ok(Response::from_parts(head, body))
}
