//! The `application/vnd.amazon.eventstream` framing SubscribeToShard answers in (reference
//! §1.10): a prelude (total and header lengths, CRC), typed headers, the payload and a CRC of
//! the whole message. Only the header types strait writes are encoded; the decoder reads every
//! type (strait's own enhanced fan-out reads an upstream's events with it, and so do tests).

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// A header value of the kinds strait sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    String(String),
    Other(u8, Vec<u8>),
}

const TYPE_STRING: u8 = 7;
const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;

/// Encodes one message. Header names are at most 255 bytes and values at most `i16::MAX`,
/// which holds for the fixed names and short values used here.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut h = BytesMut::new();
    for (name, value) in headers {
        debug_assert!(name.len() <= 255 && value.len() <= i16::MAX as usize);
        h.put_u8(name.len() as u8);
        h.put_slice(name.as_bytes());
        h.put_u8(TYPE_STRING);
        h.put_u16(value.len() as u16);
        h.put_slice(value.as_bytes());
    }
    let total = PRELUDE_LEN + h.len() + payload.len() + CRC_LEN;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(total as u32);
    out.put_u32(h.len() as u32);
    let prelude_crc = crc32fast::hash(&out[..8]);
    out.put_u32(prelude_crc);
    out.put_slice(&h);
    out.put_slice(payload);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    out.freeze()
}

/// An event message (`:message-type event`).
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    encode(
        &[
            (":event-type", event_type),
            (":content-type", content_type),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// A modelled exception message (`:message-type exception`), with the error document.
pub fn exception(exception_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    encode(
        &[
            (":exception-type", exception_type),
            (":content-type", content_type),
            (":message-type", "exception"),
        ],
        payload,
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes are needed.
    Incomplete,
    Invalid(&'static str),
}

/// Decodes the message at the start of `buf`, returning it and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    let (headers, payload, total) = parse(buf)?;
    let payload = Bytes::copy_from_slice(&buf[payload]);
    Ok((Message { headers, payload }, total))
}

/// Takes the message at the start of `buf` off it, its payload a view of the bytes taken
/// (no copy); `Incomplete` leaves `buf` as it was.
pub fn split(buf: &mut BytesMut) -> Result<Message, DecodeError> {
    let (headers, payload, total) = parse(buf)?;
    let whole = buf.split_to(total).freeze();
    Ok(Message {
        headers,
        payload: whole.slice(payload),
    })
}

type Headers = Vec<(String, HeaderValue)>;

/// A message's headers, where its payload lies, and its length.
fn parse(buf: &[u8]) -> Result<(Headers, Range<usize>, usize), DecodeError> {
    if buf.len() < PRELUDE_LEN {
        return Err(DecodeError::Incomplete);
    }
    let total = u32::from_be_bytes(buf[0..4].try_into().unwrap()) as usize;
    let headers_len = u32::from_be_bytes(buf[4..8].try_into().unwrap()) as usize;
    let prelude_crc = u32::from_be_bytes(buf[8..12].try_into().unwrap());
    if crc32fast::hash(&buf[..8]) != prelude_crc {
        return Err(DecodeError::Invalid("prelude CRC mismatch"));
    }
    if total < PRELUDE_LEN + CRC_LEN + headers_len {
        return Err(DecodeError::Invalid("lengths disagree"));
    }
    if buf.len() < total {
        return Err(DecodeError::Incomplete);
    }
    let crc = u32::from_be_bytes(buf[total - 4..total].try_into().unwrap());
    if crc32fast::hash(&buf[..total - 4]) != crc {
        return Err(DecodeError::Invalid("message CRC mismatch"));
    }
    let mut h = &buf[PRELUDE_LEN..PRELUDE_LEN + headers_len];
    let mut headers = Vec::new();
    let take = |h: &mut &[u8], n: usize| -> Result<Vec<u8>, DecodeError> {
        if h.len() < n {
            return Err(DecodeError::Invalid("header runs past its section"));
        }
        let (a, b) = h.split_at(n);
        *h = b;
        Ok(a.to_vec())
    };
    while !h.is_empty() {
        let name_len = take(&mut h, 1)?[0] as usize;
        let name = String::from_utf8(take(&mut h, name_len)?)
            .map_err(|_| DecodeError::Invalid("header name is not UTF-8"))?;
        let kind = take(&mut h, 1)?[0];
        let value = match kind {
            0 | 1 => HeaderValue::Other(kind, Vec::new()),
            2 => HeaderValue::Other(kind, take(&mut h, 1)?),
            3 => HeaderValue::Other(kind, take(&mut h, 2)?),
            4 => HeaderValue::Other(kind, take(&mut h, 4)?),
            5 | 8 => HeaderValue::Other(kind, take(&mut h, 8)?),
            9 => HeaderValue::Other(kind, take(&mut h, 16)?),
            6 | 7 => {
                let len = take(&mut h, 2)?;
                let v = take(&mut h, u16::from_be_bytes([len[0], len[1]]) as usize)?;
                if kind == 6 {
                    HeaderValue::Other(6, v)
                } else {
                    HeaderValue::String(
                        String::from_utf8(v)
                            .map_err(|_| DecodeError::Invalid("string header is not UTF-8"))?,
                    )
                }
            }
            _ => return Err(DecodeError::Invalid("unknown header type")),
        };
        headers.push((name, value));
    }
    Ok((headers, PRELUDE_LEN + headers_len..total - 4, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_takes_one_whole_message_and_leaves_the_rest() {
        let first = event(
            "SubscribeToShardEvent",
            "application/x-amz-cbor-1.1",
            b"\xa0",
        );
        let second = event("SubscribeToShardEvent", "application/json", b"{}");
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&first);
        buf.extend_from_slice(&second[..10]);
        let m = split(&mut buf).unwrap();
        assert_eq!(&m.payload[..], b"\xa0");
        assert_eq!(
            m.header(":content-type"),
            Some("application/x-amz-cbor-1.1")
        );
        assert_eq!(&buf[..], &second[..10]);
        assert_eq!(split(&mut buf), Err(DecodeError::Incomplete));
        assert_eq!(buf.len(), 10);
        buf.extend_from_slice(&second[10..]);
        assert_eq!(&split(&mut buf).unwrap().payload[..], b"{}");
        assert!(buf.is_empty());
    }

    /// The empty message from the AWS event-stream test suite (awslabs/aws-c-event-stream
    /// `empty_message`): 16 bytes, prelude CRC 0x05c248eb, message CRC 0x7d98c8ff.
    #[test]
    fn golden_empty_message() {
        let m = encode(&[], &[]);
        assert_eq!(
            m.as_ref(),
            &[
                0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98,
                0xc8, 0xff
            ]
        );
    }

    /// Header `event-type` = "hello" with payload `{'foo':'bar'}`, framed independently with
    /// Python's zlib.crc32 (see the test body for the recipe).
    #[test]
    fn golden_one_string_header() {
        let m = encode(&[("event-type", "hello")], b"{'foo':'bar'}");
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "000000300000001340bd26310a6576656e742d7479706507000568656c6c6f7b27666f6f273a27626172277d144994d7"
        );
        let (back, used) = decode(&m).unwrap();
        assert_eq!(used, m.len());
        assert_eq!(back.header("event-type"), Some("hello"));
        assert_eq!(back.payload.as_ref(), b"{'foo':'bar'}");
    }

    #[test]
    fn round_trip_and_corruption() {
        let m = event("SubscribeToShardEvent", "application/json", b"{}");
        let (back, used) = decode(&m).unwrap();
        assert_eq!(used, m.len());
        assert_eq!(back.header(":message-type"), Some("event"));
        assert_eq!(back.header(":event-type"), Some("SubscribeToShardEvent"));
        assert_eq!(decode(&m[..m.len() - 1]), Err(DecodeError::Incomplete));
        let mut bad = m.to_vec();
        let n = bad.len();
        bad[n - 6] ^= 1;
        assert_eq!(
            decode(&bad),
            Err(DecodeError::Invalid("message CRC mismatch"))
        );
        bad[1] ^= 1;
        assert_eq!(
            decode(&bad),
            Err(DecodeError::Invalid("prelude CRC mismatch"))
        );
    }
}
