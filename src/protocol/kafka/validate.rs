//! What a produced RecordBatch must satisfy before it is stored, as Kafka's log validator
//! checks it: every record decodes (through any codec), lengths and counts agree with the
//! header, offset deltas run 0..n, timestamps are in bounds, and no client writes a control
//! batch. Decompression streams one record at a time and is bounded, so a small compressed
//! batch cannot make strait hold what it inflates to. Knows nothing of streams: the caller
//! passes the limits and sees each record once (the core checks keys there, with no second
//! decode).

use std::io::{self, BufRead, BufReader, Read};

use super::record_batch::{CheckedBatch, HEADER_LEN};

/// Why a produced batch is refused. Each kind is one Kafka error code; the front end maps them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// INVALID_RECORD: the batch is whole and its CRC holds, but its records are not what the
    /// header declares, or not what Kafka lets a client write.
    #[error("{0}")]
    InvalidRecord(String),
    /// MESSAGE_TOO_LARGE: a record above the stream's record size, or a batch that inflates
    /// beyond what strait decompresses.
    #[error("{0}")]
    TooLarge(String),
    /// INVALID_TIMESTAMP
    #[error("{0}")]
    InvalidTimestamp(String),
    /// UNSUPPORTED_COMPRESSION_TYPE: a codec Kafka does not define.
    #[error("{0}")]
    UnsupportedCompression(String),
}

/// What the validator holds a batch to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest key plus value of one record: what a Kinesis reader gets as PartitionKey and
    /// Data (the stream's MaxRecordSizeInKiB).
    pub max_record_bytes: usize,
    /// Largest total a compressed batch may inflate to.
    pub max_decompressed_bytes: usize,
    pub now_ms: i64,
    /// Kafka's `message.timestamp.after.max.ms`: how far ahead of the clock a CreateTime
    /// record may be.
    pub max_future_ms: i64,
}

/// Key and value headers, framing and field lengths: what a record holds beyond its key and
/// value, allowed on top of `max_record_bytes` before a compressed record is read at all.
const RECORD_HEADROOM: usize = 64 * 1024;

/// One record as the validator sees it.
#[derive(Debug)]
pub struct RecordView<'a> {
    pub index: usize,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// What validation learned: the header's max timestamp (and timestamp type) may be wrong, as
/// Kafka tolerates and rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validated {
    pub max_timestamp: i64,
}

/// Validation stopped: by a refusal, or by the caller's own check of a record.
#[derive(Debug)]
pub enum Stop<E> {
    Refused(Refusal),
    Visitor(E),
}

impl<E> From<Refusal> for Stop<E> {
    fn from(r: Refusal) -> Self {
        Stop::Refused(r)
    }
}

fn invalid(msg: String) -> Refusal {
    Refusal::InvalidRecord(msg)
}

/// A refusal carried through `io::Read` (the snappy reader's), or the decoder's own error.
fn from_io(e: io::Error, what: impl FnOnce() -> String) -> Refusal {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Refusal>())
    {
        Some(r) => r.clone(),
        None => invalid(format!("{}: {e}", what())),
    }
}

/// Checks every record of a produced batch (its CRC already checked), calling `visit` for each.
pub fn validate<E>(
    batch: &CheckedBatch,
    limits: &Limits,
    mut visit: impl FnMut(&RecordView<'_>) -> Result<(), E>,
) -> Result<Validated, Stop<E>> {
    let h = *batch.header();
    if h.is_control() {
        return Err(invalid("clients may not write control batches".into()).into());
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(invalid(format!(
            "producer {} sent base sequence {}",
            h.producer_id, h.base_sequence
        ))
        .into());
    }
    let records = &batch[HEADER_LEN..h.total_len];
    let count = h.record_count as usize;
    let mut max_timestamp = -1i64;
    let mut each = |index: usize, body: &[u8]| -> Result<(), Stop<E>> {
        let r = parse_record(index, body)?;
        if r.offset_delta != index as i64 {
            return Err(invalid(format!(
                "record {index} has offset delta {}; a producer writes {index}",
                r.offset_delta
            ))
            .into());
        }
        let size = r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len);
        if size > limits.max_record_bytes {
            return Err(Refusal::TooLarge(format!(
                "record {index} has {size} bytes of key and value, above the stream's maximum record size of {} bytes",
                limits.max_record_bytes
            ))
            .into());
        }
        // strait's rule: a sum outside i64 is refused. Kafka's Java wraps it (and so does the
        // readers' decoder, for batches strait did not validate), leaving a timestamp no
        // reader can make sense of.
        let Some(timestamp) = h.base_timestamp.checked_add(r.timestamp_delta) else {
            return Err(Refusal::InvalidTimestamp(format!(
                "record {index}'s timestamp delta {} overflows the base timestamp {}",
                r.timestamp_delta, h.base_timestamp
            ))
            .into());
        };
        // Every record is judged as CreateTime, whatever the batch's timestamp-type bit says:
        // strait's topics are CreateTime, and the caller stores the batch as such.
        if timestamp != -1 && timestamp.saturating_sub(limits.now_ms) > limits.max_future_ms {
            return Err(Refusal::InvalidTimestamp(format!(
                "record {index} has timestamp {timestamp}, more than {} ms after the broker's clock ({})",
                limits.max_future_ms, limits.now_ms
            ))
            .into());
        }
        max_timestamp = max_timestamp.max(timestamp);
        visit(&RecordView {
            index,
            timestamp,
            key: r.key,
            value: r.value,
        })
        .map_err(Stop::Visitor)
    };
    match h.attributes & 0x7 {
        0 => walk_slice(records, count, &mut each)?,
        codec => {
            let reader = inflate(codec, records, limits)?;
            walk_stream(reader, count, limits, &mut each)?;
        }
    }
    Ok(Validated { max_timestamp })
}

fn codec_name(codec: i16) -> &'static str {
    match codec {
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => "unknown",
    }
}

/// A reader of the decompressed records.
fn inflate<'a>(
    codec: i16,
    data: &'a [u8],
    limits: &Limits,
) -> Result<Box<dyn BufRead + 'a>, Refusal> {
    let corrupt = |e: io::Error| {
        from_io(e, || {
            format!("{} data does not decompress", codec_name(codec))
        })
    };
    Ok(match codec {
        1 => Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(data))),
        2 => Box::new(BufReader::new(XerialSnappy::new(
            data,
            limits.max_decompressed_bytes,
        )?)),
        3 => Box::new(BufReader::new(lz4::Decoder::new(data).map_err(corrupt)?)),
        4 => {
            let mut d = zstd::stream::read::Decoder::with_buffer(data).map_err(corrupt)?;
            // The window is the decoder's memory; Kafka producers use far less than 16 MiB.
            d.window_log_max(24).map_err(corrupt)?;
            Box::new(BufReader::new(d))
        }
        other => {
            return Err(Refusal::UnsupportedCompression(format!(
                "unknown compression codec {other}"
            )))
        }
    })
}

/// Uncompressed records: each body is a slice of the batch, no copy.
fn walk_slice<E>(
    mut rest: &[u8],
    count: usize,
    each: &mut impl FnMut(usize, &[u8]) -> Result<(), Stop<E>>,
) -> Result<(), Stop<E>> {
    for index in 0..count {
        let mut cursor = Cursor { buf: rest, index };
        let len = cursor.varint()?;
        let rest_now = cursor.buf;
        if len < 0 || len as usize > rest_now.len() {
            return Err(invalid(format!(
                "record {index} declares {len} bytes but {} remain in the batch",
                rest_now.len()
            ))
            .into());
        }
        let (body, after) = rest_now.split_at(len as usize);
        each(index, body)?;
        rest = after;
    }
    if !rest.is_empty() {
        return Err(invalid(format!(
            "{} bytes follow the last of the {count} records the header declares",
            rest.len()
        ))
        .into());
    }
    Ok(())
}

/// Compressed records: each body is read into one reused buffer, bounded before it is read.
fn walk_stream<E>(
    mut reader: Box<dyn BufRead + '_>,
    count: usize,
    limits: &Limits,
    each: &mut impl FnMut(usize, &[u8]) -> Result<(), Stop<E>>,
) -> Result<(), Stop<E>> {
    let max_body = limits.max_record_bytes + RECORD_HEADROOM;
    let mut body = Vec::new();
    let mut total = 0usize;
    let ended = |index: usize, e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            invalid(format!(
                "the compressed data ends in record {index} of the {count} the header declares"
            ))
        } else {
            from_io(e, || "the compressed data does not decompress".into())
        }
    };
    for index in 0..count {
        let len = read_varint(&mut reader, index).map_err(|e| match e {
            ReadVarint::Io(e) => ended(index, e),
            ReadVarint::Bad(r) => r,
        })?;
        if len < 0 {
            return Err(invalid(format!("record {index} declares {len} bytes")).into());
        }
        let len = len as usize;
        if len > max_body {
            return Err(Refusal::TooLarge(format!(
                "record {index} is {len} bytes, above the stream's maximum record size of {} bytes",
                limits.max_record_bytes
            ))
            .into());
        }
        total += len;
        if total > limits.max_decompressed_bytes {
            return Err(Refusal::TooLarge(format!(
                "the batch decompresses to more than {} bytes",
                limits.max_decompressed_bytes
            ))
            .into());
        }
        body.resize(len, 0);
        reader.read_exact(&mut body).map_err(|e| ended(index, e))?;
        each(index, &body)?;
    }
    let mut one = [0u8; 1];
    match reader.read(&mut one) {
        Ok(0) => Ok(()),
        Ok(_) => Err(invalid(format!(
            "the compressed data holds more than the {count} records the header declares"
        ))
        .into()),
        Err(e) => Err(from_io(e, || "the compressed data does not decompress".into()).into()),
    }
}

enum ReadVarint {
    Io(io::Error),
    Bad(Refusal),
}

/// A zig-zag varint read byte by byte from a stream.
fn read_varint(r: &mut impl BufRead, index: usize) -> Result<i64, ReadVarint> {
    let mut raw = 0u64;
    for shift in (0..35).step_by(7) {
        let mut b = [0u8; 1];
        r.read_exact(&mut b).map_err(ReadVarint::Io)?;
        raw |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(zigzag(raw));
        }
    }
    Err(ReadVarint::Bad(invalid(format!(
        "record {index}'s length is a varint longer than 5 bytes"
    ))))
}

fn zigzag(raw: u64) -> i64 {
    (raw >> 1) as i64 ^ -((raw & 1) as i64)
}

struct Record<'a> {
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// One record's body (after its length), as Kafka's `DefaultRecord.readFrom` reads it.
fn parse_record(index: usize, body: &[u8]) -> Result<Record<'_>, Refusal> {
    let mut c = Cursor { buf: body, index };
    c.bytes(1)?; // attributes: unused in v2
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let key = c.nullable("key")?;
    let value = c.nullable("value")?;
    let headers = c.varint()?;
    if headers < 0 || headers as usize > c.buf.len() {
        return Err(invalid(format!(
            "record {index} declares {headers} headers"
        )));
    }
    for _ in 0..headers {
        let key_len = c.varint()?;
        if key_len < 0 {
            return Err(invalid(format!(
                "record {index} has a header with a negative key length"
            )));
        }
        // Kafka reads header keys as Java strings (any bytes, replaced when malformed); strait's
        // readers decode them as UTF-8, so a key that is not would make the batch unreadable.
        let key = c.bytes(key_len as usize)?;
        if std::str::from_utf8(key).is_err() {
            return Err(invalid(format!(
                "record {index} has a header key that is not UTF-8"
            )));
        }
        c.nullable("header value")?;
    }
    if !c.buf.is_empty() {
        return Err(invalid(format!(
            "record {index} has {} bytes after its last field",
            c.buf.len()
        )));
    }
    Ok(Record {
        timestamp_delta,
        offset_delta,
        key,
        value,
    })
}

/// Reads record fields from a slice; every short read is the record's fault.
struct Cursor<'a> {
    buf: &'a [u8],
    index: usize,
}

impl<'a> Cursor<'a> {
    fn short(&self) -> Refusal {
        invalid(format!("record {} is cut short", self.index))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        if n > self.buf.len() {
            return Err(self.short());
        }
        let (taken, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(taken)
    }

    fn raw_varint(&mut self, max_bytes: usize) -> Result<u64, Refusal> {
        let mut raw = 0u64;
        for i in 0..max_bytes {
            let Some(&b) = self.buf.get(i) else {
                return Err(self.short());
            };
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(raw);
            }
        }
        Err(invalid(format!(
            "record {} has a varint longer than {max_bytes} bytes",
            self.index
        )))
    }

    fn varint(&mut self) -> Result<i64, Refusal> {
        // A varint holds 32 bits; the fifth byte may carry only four of them.
        let v = zigzag(self.raw_varint(5)?);
        i32::try_from(v)
            .map(i64::from)
            .map_err(|_| invalid(format!("record {} has a varint beyond 32 bits", self.index)))
    }

    fn varlong(&mut self) -> Result<i64, Refusal> {
        Ok(zigzag(self.raw_varint(10)?))
    }

    /// A length-prefixed field where −1 means null.
    fn nullable(&mut self, what: &str) -> Result<Option<&'a [u8]>, Refusal> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(invalid(format!(
                "record {} has a {what} length of {n}",
                self.index
            ))),
            n => self.bytes(n as usize).map(Some),
        }
    }
}

/// Kafka's snappy framing (xerial's `SnappyOutputStream`): a 16-byte header, then blocks of a
/// 4-byte length and a raw snappy block. Without the header the data is one raw block, as the
/// Java client also accepts. Each block's size is read from its preamble and bounded before it
/// is decompressed.
struct XerialSnappy<'a> {
    rest: &'a [u8],
    block: Vec<u8>,
    at: usize,
    budget: usize,
    framed: bool,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

impl<'a> XerialSnappy<'a> {
    fn new(data: &'a [u8], budget: usize) -> Result<Self, Refusal> {
        let framed = data.len() >= XERIAL_HEADER_LEN && data.starts_with(XERIAL_MAGIC);
        let mut s = XerialSnappy {
            rest: if framed {
                &data[XERIAL_HEADER_LEN..]
            } else {
                data
            },
            block: Vec::new(),
            at: 0,
            budget,
            framed,
        };
        if !framed {
            let whole = s.rest;
            s.rest = &[];
            s.fill(whole)?;
        }
        Ok(s)
    }

    fn fill(&mut self, compressed: &[u8]) -> Result<(), Refusal> {
        let bad = |e: snap::Error| invalid(format!("snappy data does not decompress: {e}"));
        let len = snap::raw::decompress_len(compressed).map_err(bad)?;
        // A snappy copy of 64 bytes takes 3: no block inflates 32-fold, so a preamble that
        // says more is a lie, refused before anything is allocated for it.
        if len > compressed.len().saturating_mul(32) + 64 {
            return Err(invalid(format!(
                "a snappy block of {} bytes declares {len} bytes, more than snappy can hold",
                compressed.len()
            )));
        }
        if len > self.budget {
            return Err(Refusal::TooLarge(
                "the batch decompresses beyond strait's limit".into(),
            ));
        }
        self.budget -= len;
        self.block.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(bad)?;
        self.at = 0;
        Ok(())
    }
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if !self.framed || self.rest.is_empty() {
                return Ok(0);
            }
            let to_io = |r: Refusal| io::Error::new(io::ErrorKind::InvalidData, r);
            if self.rest.len() < 4 {
                return Err(to_io(invalid("a snappy block length is cut short".into())));
            }
            let n = u32::from_be_bytes(self.rest[..4].try_into().expect("4 bytes")) as usize;
            if n > self.rest.len() - 4 {
                return Err(to_io(invalid(format!(
                    "a snappy block declares {n} bytes but {} remain",
                    self.rest.len() - 4
                ))));
            }
            let compressed = &self.rest[4..4 + n];
            self.rest = &self.rest[4 + n..];
            self.fill(compressed).map_err(to_io)?;
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
