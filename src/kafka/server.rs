//! The Kafka listener and connection loop. Each connection is one task that reads
//! length-prefixed frames, answers them in order (pipelined requests wait their turn, as in
//! Kafka), and closes where Kafka closes: oversized frames, unknown APIs, undecodable requests.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiVersionsResponse, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use super::{handlers, KafkaCtx};
use crate::listener::{Closing, Connections};
use crate::protocol::kafka::frame::{self, Unserved};
use crate::protocol::kafka::versions;

/// Serves until `closing`; then each connection finishes the request it is handling and
/// closes (the caller waits for `conns` to drain).
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<KafkaCtx>,
    conns: Arc<Connections>,
    closing: Closing,
) {
    let shutdown = crate::listener::closed(closing.clone());
    crate::listener::accept_until(listener, "kafka", conns, shutdown, move |stream, peer| {
        let ctx = ctx.clone();
        let closing = closing.clone();
        async move {
            let _open = crate::observe::metrics::ConnectionGuard::new("kafka");
            if let Err(reason) = connection(stream, ctx, closing).await {
                // A response that cannot be encoded is our bug, not the client's.
                if reason.starts_with("encode") {
                    tracing::error!(%peer, %reason, "kafka connection closed");
                } else {
                    tracing::debug!(%peer, %reason, "kafka connection closed");
                }
            }
        }
    })
    .await;
}

/// Why a connection was closed.
type Closed = String;

async fn connection(stream: TcpStream, ctx: Arc<KafkaCtx>, closing: Closing) -> Result<(), Closed> {
    let client = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let limits = crate::listener::limits();
    loop {
        // Between requests is where a closing connection stops: a request already being
        // read is answered first. It is also where a connection is idle (Kafka's
        // connections.max.idle.ms).
        if *closing.borrow() {
            return Ok(());
        }
        let len = tokio::select! {
            len = rd.read_i32() => match len {
                Ok(n) => n,
                Err(_) => return Ok(()),
            },
            _ = crate::listener::closed(closing.clone()), if rd.buffer().is_empty() => return Ok(()),
            _ = tokio::time::sleep(limits.idle) => {
                crate::observe::metrics().connection_closed("kafka", "idle");
                return Ok(());
            }
        };
        // Its bytes count against limits.max_inflight_bytes until it is answered: when the
        // process holds too much, reading waits here. (A length out of bounds is refused by
        // read_payload right after, holding next to nothing.)
        let held = crate::listener::hold_bytes(if len > 0 && len as usize <= ctx.max_frame_bytes {
            len as usize
        } else {
            1
        })
        .await;
        // A request has at least its API key, version and correlation id; it must arrive
        // whole within limits.request_read_timeout_secs.
        let read = frame::read_payload(&mut rd, len, 8, ctx.max_frame_bytes);
        let frame = match tokio::time::timeout(limits.read, read).await {
            Ok(frame) => frame.map_err(|e| format!("reading a frame: {e}"))?,
            Err(_) => {
                crate::observe::metrics().connection_closed("kafka", "read_timeout");
                return Err(format!(
                    "a {len}-byte frame did not arrive within {} s",
                    limits.read.as_secs()
                ));
            }
        };
        let Some(out) = respond(&ctx, &client, frame).await? else {
            continue;
        };
        wr.write_all(&out).await.map_err(|e| e.to_string())?;
        // Flush unless the client has already pipelined another request.
        if rd.buffer().is_empty() {
            wr.flush().await.map_err(|e| e.to_string())?;
        }
        drop(held);
    }
}

/// Handles one frame; `Ok(None)` when no response is due (acks=0 produce).
async fn respond(ctx: &KafkaCtx, client: &str, frame: Bytes) -> Result<Option<Bytes>, Closed> {
    let frame::DecodedRequest {
        key,
        version,
        header,
        request,
    } = match frame::decode_request(frame) {
        Ok(decoded) => decoded,
        Err(Unserved::ApiVersionsUnsupported { correlation_id }) => {
            return Ok(Some(unsupported_api_versions(correlation_id)))
        }
        Err(Unserved::Close(why)) => return Err(why),
    };
    let client_id = header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let conn = handlers::Conn {
        client_id,
        client_host: client.to_string(),
    };
    let started = std::time::Instant::now();
    let response = handlers::handle(ctx, &conn, request, version).await;
    super::request_metric(key).observe(started.elapsed());
    let Some(response) = response else {
        return Ok(None);
    };
    Ok(Some(encode(
        header.correlation_id,
        key.response_header_version(version),
        &response,
        version,
    )?))
}

fn encode(
    correlation_id: i32,
    header_version: i16,
    response: &ResponseKind,
    version: i16,
) -> Result<Bytes, Closed> {
    frame::framed(|buf| {
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(buf, header_version)
            .map_err(|e| format!("encode header: {e}"))?;
        response
            .encode(buf, version)
            .map_err(|e| format!("encode response: {e}"))
    })
}

/// An ApiVersions v0 response with UNSUPPORTED_VERSION and the served table, so the client
/// retries at a version both sides know.
fn unsupported_api_versions(correlation_id: i32) -> Bytes {
    let response = ApiVersionsResponse::default()
        .with_error_code(35)
        .with_api_keys(versions::api_versions_list());
    encode(correlation_id, 0, &ResponseKind::ApiVersions(response), 0)
        .expect("ApiVersions v0 always encodes")
}
