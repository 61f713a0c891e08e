//! The Kinesis API during a migration (`migration.streams`): a request for a stream still
//! served by its Kinesis source is forwarded there (the pass-through, re-signed with
//! strait's credentials for the source); every other request is the core's. The body is read
//! once here to find the stream it names. A GetRecords names only an iterator, and a ListShards
//! continuation only a paging token: what strait did not sign itself came from the source.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::ops::Ctx;
use super::passthrough::{self, Forwarder};
use super::server::{self, error_response, Body, ReqBody};
use super::traffic::{self, Names};
use crate::core::iterator::IteratorError;
use crate::protocol::kinesis::codec::Protocol;

/// Whether a stream is served by the migration's source.
pub type FromSource = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub struct Split {
    pub local: Arc<Ctx>,
    pub source: Arc<Forwarder>,
    pub from_source: FromSource,
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
    let to_source = match traffic::names(protocol, &body) {
        Names::Stream(stream) => (split.from_source)(&stream),
        Names::Iterator(it) => {
            let now = crate::clock::now_ms();
            // strait's own iterators, expired ones too, are answered here.
            matches!(
                split.local.core.signer().verify(&it, now),
                Err(IteratorError::Invalid)
            )
        }
        Names::PageToken(token) => split.local.core.signer().open(&token).is_none(),
        Names::Nothing => false,
    };
    let body = ReqBody::Read(body);
    Ok(if to_source {
        passthrough::handle_parts(split.source.clone(), parts, body).await
    } else {
        server::handle_parts(split.local.clone(), parts, body).await
    })
}
