//! Kafka framing for both directions: the front end's server, strait's own requests to a
//! cluster and the pass-through proxy all read length-prefixed frames, peek at request
//! headers, and encode typed requests and responses here.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads one frame's payload (without its length prefix). `Ok(None)` is a clean end of
/// stream between frames. Memory grows with the bytes that arrive, not the length claimed.
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max_bytes: usize,
) -> std::io::Result<Option<Bytes>> {
    let len = match rd.read_i32().await {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    read_payload(rd, len, 4, max_bytes).await.map(Some)
}

/// Reads the payload of a frame whose length prefix `len` has been read: the one place a
/// frame's bytes are taken off a connection, by the server and by strait's own client. A
/// length outside `min_bytes..=max_bytes` is refused before anything is allocated, and a
/// header announcing 100 MiB followed by silence costs at most 1 MiB.
pub async fn read_payload<R: AsyncRead + Unpin>(
    rd: &mut R,
    len: i32,
    min_bytes: usize,
    max_bytes: usize,
) -> std::io::Result<Bytes> {
    if len < min_bytes as i32 || len as usize > max_bytes {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes outside {min_bytes}..={max_bytes}"),
        ));
    }
    let mut frame = Vec::with_capacity((len as usize).min(1 << 20));
    rd.take(len as u64).read_to_end(&mut frame).await?;
    if frame.len() != len as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("short frame: {} of {len} bytes", frame.len()),
        ));
    }
    Ok(Bytes::from(frame))
}

/// The fixed start of every request header: API key, version and correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestStart {
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
}

pub fn request_start(frame: &[u8]) -> Option<RequestStart> {
    let mut b = frame.get(..8)?;
    Some(RequestStart {
        api_key: b.get_i16(),
        version: b.get_i16(),
        correlation_id: b.get_i32(),
    })
}

/// A request frame decoded for serving: its header and typed body.
#[derive(Debug)]
pub struct DecodedRequest {
    pub key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub request: RequestKind,
}

/// Why a request frame is not served.
#[derive(Debug, PartialEq, Eq)]
pub enum Unserved {
    /// ApiVersions at a version strait does not serve: Kafka answers it (UNSUPPORTED_VERSION
    /// with the table) so the client can pick another.
    ApiVersionsUnsupported { correlation_id: i32 },
    /// Anything else Kafka closes the connection over, and why.
    Close(String),
}

/// Decodes a request frame (without its length prefix) as strait's server does: an API and
/// version it serves, then the header and the body. The one decoder untrusted request bytes
/// meet, so the fuzz target `kafka_request` drives exactly this.
pub fn decode_request(mut frame: Bytes) -> Result<DecodedRequest, Unserved> {
    let Some(start) = request_start(&frame) else {
        return Err(Unserved::Close(format!(
            "a request frame of {} bytes is shorter than its header",
            frame.len()
        )));
    };
    let key = ApiKey::try_from(start.api_key)
        .map_err(|_| Unserved::Close(format!("unknown API key {}", start.api_key)))?;
    let Some((min, max)) = super::versions::served(key) else {
        return Err(Unserved::Close(format!("{key:?} is not served")));
    };
    let version = start.version;
    if version < min || version > max {
        if key == ApiKey::ApiVersions {
            return Err(Unserved::ApiVersionsUnsupported {
                correlation_id: start.correlation_id,
            });
        }
        return Err(Unserved::Close(format!(
            "{key:?} v{version} is not served ({min}..={max})"
        )));
    }
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| Unserved::Close(format!("bad {key:?} header: {e}")))?;
    let request = RequestKind::decode(key, &mut frame, version)
        .map_err(|e| Unserved::Close(format!("bad {key:?} v{version} request: {e}")))?;
    Ok(DecodedRequest {
        key,
        version,
        header,
        request,
    })
}

/// Whether a Produce request expects an answer: Kafka sends none for `acks = 0`.
/// `frame` is the whole request, header included. `None` when it cannot be parsed.
pub fn produce_expects_response(frame: &Bytes, version: i16) -> Option<bool> {
    let mut b = frame.clone();
    RequestHeader::decode(&mut b, ApiKey::Produce.request_header_version(version)).ok()?;
    // transactional_id: a nullable string, compact from v9.
    if version >= 9 {
        let len = read_unsigned_varint(&mut b)? as usize;
        // 0 is null; n is n-1 bytes.
        b.advance_checked(len.saturating_sub(1))?;
    } else {
        if b.remaining() < 2 {
            return None;
        }
        let len = b.get_i16();
        if len > 0 {
            b.advance_checked(len as usize)?;
        }
    }
    if b.remaining() < 2 {
        return None;
    }
    Some(b.get_i16() != 0)
}

trait AdvanceChecked {
    fn advance_checked(&mut self, n: usize) -> Option<()>;
}

impl AdvanceChecked for Bytes {
    fn advance_checked(&mut self, n: usize) -> Option<()> {
        if self.remaining() < n {
            return None;
        }
        self.advance(n);
        Some(())
    }
}

fn read_unsigned_varint(b: &mut Bytes) -> Option<u32> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        if !b.has_remaining() {
            return None;
        }
        let byte = b.get_u8();
        value |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// One frame: what `body` writes, behind its length prefix.
pub fn framed(body: impl FnOnce(&mut BytesMut) -> Result<(), String>) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    body(&mut buf)?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Encodes a request with its length prefix.
pub fn encode_request<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    request: &R,
) -> Result<Bytes, String> {
    framed(|buf| {
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
            .encode(buf, key.request_header_version(version))
            .map_err(|e| format!("encode {key:?} header: {e}"))?;
        request
            .encode(buf, version)
            .map_err(|e| format!("encode {key:?} v{version}: {e}"))
    })
}

/// Splits a response frame into its correlation id and body, for a request of `key` at
/// `version` (ApiVersions responses always use header v0).
/// A request frame's body, after its header; None if the header does not decode.
pub fn request_body(key: ApiKey, version: i16, mut frame: Bytes) -> Option<Bytes> {
    RequestHeader::decode(&mut frame, key.request_header_version(version)).ok()?;
    Some(frame)
}

pub fn response_body(key: ApiKey, version: i16, mut frame: Bytes) -> Result<(i32, Bytes), String> {
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .map_err(|e| format!("bad {key:?} response header: {e}"))?;
    Ok((header.correlation_id, frame))
}

/// Encodes a response body under a header, with its length prefix.
pub fn encode_response<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> Result<Bytes, String> {
    framed(|buf| {
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(buf, key.response_header_version(version))
            .map_err(|e| format!("encode {key:?} response header: {e}"))?;
        response
            .encode(buf, version)
            .map_err(|e| format!("encode {key:?} v{version} response: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ProduceRequest, TransactionalId};

    fn produce(version: i16, acks: i16, txn: Option<&str>) -> Bytes {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000)
            .with_transactional_id(txn.map(|t| TransactionalId(StrBytes::from_string(t.into()))));
        let framed = encode_request(ApiKey::Produce, version, 7, "c", &req).unwrap();
        framed.slice(4..)
    }

    #[test]
    fn acks_are_found_in_every_produce_version() {
        for version in 3..=13 {
            for txn in [None, Some("tx-1")] {
                for acks in [-1, 0, 1] {
                    let frame = produce(version, acks, txn);
                    assert_eq!(
                        produce_expects_response(&frame, version),
                        Some(acks != 0),
                        "v{version} {txn:?} acks={acks}"
                    );
                    let start = request_start(&frame).unwrap();
                    assert_eq!((start.api_key, start.version), (0, version));
                    assert_eq!(start.correlation_id, 7);
                }
            }
        }
    }

    #[test]
    fn requests_decode_or_are_refused_whole_never_half() {
        let frame = produce(9, 1, None);
        let decoded = decode_request(frame.clone()).unwrap();
        assert_eq!((decoded.key, decoded.version), (ApiKey::Produce, 9));
        assert_eq!(decoded.header.correlation_id, 7);
        // Every prefix of a good request, down to nothing, is refused with a reason (the
        // server reads at least 8 bytes, but the decoder does not rely on it).
        for cut in 0..frame.len() {
            assert!(matches!(
                decode_request(frame.slice(..cut)),
                Err(Unserved::Close(_))
            ));
        }
        let api_versions_v99 = Bytes::from_static(&[0, 18, 0, 99, 0, 0, 0, 5]);
        assert_eq!(
            decode_request(api_versions_v99).unwrap_err(),
            Unserved::ApiVersionsUnsupported { correlation_id: 5 }
        );
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 18, 0, 99])),
            Err(Unserved::Close(_))
        ));
        let unknown_key = Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            decode_request(unknown_key).unwrap_err(),
            Unserved::Close("unknown API key 32512".into())
        );
    }

    #[test]
    fn truncated_produce_is_not_parsed() {
        let frame = produce(9, 1, Some("tx"));
        for cut in 0..frame.len() - 2 {
            let short = frame.slice(..cut);
            // Either unparseable or, past the acks field, the right answer.
            if let Some(v) = produce_expects_response(&short, 9) {
                assert!(v);
            }
        }
    }

    #[tokio::test]
    async fn frames_are_read_whole_and_bounded() {
        let mut data: &[u8] = &[0, 0, 0, 4, 1, 2, 3, 4, 0, 0, 0, 9, 1];
        assert_eq!(
            read_frame(&mut data, 100).await.unwrap().unwrap(),
            Bytes::from_static(&[1, 2, 3, 4])[..]
        );
        assert!(read_frame(&mut data, 100).await.is_err(), "short frame");
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 100).await.unwrap().is_none());
        let mut big: &[u8] = &[0, 0, 1, 0];
        assert!(read_frame(&mut big, 100).await.is_err());
    }
}
