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
use super::passthrough::{self, Forwarder};
use super::server::{self, error_response, Body, ReqBody};
use super::traffic::{self, Names};
use crate::core::iterator::IteratorError;
use crate::migrate::routes::{Route, Routes};
use crate::protocol::kinesis::codec::Protocol;

pub struct Split {
    pub local: Arc<Ctx>,
    pub source: Arc<Forwarder>,
    pub routes: Arc<Routes>,
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
            let (route, guard) = split.routes.write(&stream, core).await;
            _in_flight = guard;
            route == Route::Source
        }
        Names::Stream(stream) => split.routes.route(&stream, core) == Route::Source,
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
        passthrough::handle_parts(split.source.clone(), parts, body).await
    } else {
        server::handle_parts(split.local.clone(), parts, body).await
    })
}
