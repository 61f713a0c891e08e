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
use super::server::{self, error_response, Body, ReqBody};
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

pub struct Split {
    pub local: Arc<Ctx>,
    pub source: ForwardParts,
    pub routes: Arc<dyn StreamRoutes>,
}

pub async fn handle(
    split: Arc<Split>,
    max_body: usize,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let protocol = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Protocol::from_content_type)
        .unwrap_or(Protocol::Json);
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
        .unwrap_or("");
    let core = &split.local.core;
    let mut _in_flight = None;
    let to_source = match traffic::names(protocol, &body) {
        Names::Stream(stream) if matches!(op, "PutRecord" | "PutRecords") => {
            let (to_source, guard) = split.routes.write(&stream, core).await;
            _in_flight = guard;
            to_source
        }
        Names::Stream(stream) => split.routes.to_source(&stream, core),
        Names::Iterator(it) => {
            let now = crate::clock::now_ms();
            // strait's own iterators, expired ones too, are answered here.
            matches!(core.signer().verify(&it, now), Err(IteratorError::Invalid))
        }
        Names::PageToken(token) => core.signer().open(&token).is_none(),
        Names::Nothing => false,
    };
    let body = ReqBody::Read(body);
    Ok(if to_source {
        (split.source)(parts, body).await
    } else {
        server::handle_parts(split.local.clone(), parts, body).await
    })
}
