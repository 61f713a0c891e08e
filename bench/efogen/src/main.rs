//! Enhanced fan-out client for the strait benchmark (bench/efo.sh).
//!
//! Speaks awsJson1.1 over h2c (HTTP/2 with prior knowledge, as the KCL uses HTTP/2) or plain
//! HTTP/1.1 (`--proto http1`), with a syntactically valid but unsigned SigV4 `Authorization`
//! header. SubscribeToShard responses (`application/vnd.amazon.eventstream`) are decoded here:
//! prelude (total length, headers length, prelude CRC), headers, payload, message CRC; both CRCs
//! are checked.
//!
//! Modes:
//!
//!   efogen latency   registers a consumer, subscribes to shard 0 from LATEST and, once the
//!                    `initial-response` arrived, prints {"kind":"ready"} on stdout. Then either
//!                    sends `--rate` PutRecord/s for `--duration` s itself, or (with
//!                    `--external N`) waits for N records someone else writes (bench/efo.sh
//!                    produces them through Kafka). Every record's data starts with
//!                    `efo <unix-nanos:020> <index:010> ` written just before the send; the
//!                    receive time minus that stamp is the end-to-end latency. Checks: every
//!                    index exactly once.
//!
//!   efogen fanout    registers `--consumers` consumers on an existing (preloaded) stream, then
//!                    all of them SubscribeToShard(TRIM_HORIZON) on shard 0 at the same moment,
//!                    each over its own connection, and read until `--expect` records,
//!                    resubscribing with AFTER_SEQUENCE_NUMBER <ContinuationSequenceNumber>
//!                    whenever a subscription ends. Checks: exact count, sequence numbers
//!                    strictly increasing (so no duplicates), data length.
//!
//! Output: JSON lines on stdout (the last is `"kind":"result"`); progress on stderr. Exit status
//! 0 only when the checks passed.

use std::borrow::Cow;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const USAGE: &str = "\
efogen: enhanced fan-out (SubscribeToShard) client, loopback only

common:
  --endpoint URL        http://127.0.0.1:4567 (default)
  --proto P             h2c (default) or http1, for every request incl. SubscribeToShard
  --stream NAME         stream name (required)
  --timeout S           give up after S seconds (default 300)
  --window BYTES        HTTP/2 initial stream window (default 1048576, as the AWS SDK's Netty client)
  --quiet               no progress on stderr

efogen latency [common] [--create-shards N] [--rate R] [--duration S] [--record-size B]
               [--external N] [--consumer NAME] [--drain S]
  --create-shards N     create the stream with N shards first (default: it exists)
  --rate R              PutRecord calls per second (default 200)
  --duration S          seconds of puts (default 20)
  --record-size B       bytes per record (default 100, at least 48)
  --external N          send nothing; wait for N records written by another producer
  --drain S             after the last put, wait at most S s for missing records (default 10)

efogen fanout [common] --consumers N --expect M [--record-size B]
";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Proto {
    H2c,
    Http1,
}

#[derive(Clone, Debug)]
struct Opts {
    mode: String,
    endpoint: String,
    proto: Proto,
    stream: String,
    timeout: f64,
    window: u32,
    quiet: bool,
    create_shards: Option<u32>,
    rate: f64,
    duration: f64,
    record_size: usize,
    external: Option<u64>,
    consumer: Option<String>,
    drain: f64,
    consumers: usize,
    expect: u64,
}

fn parse_opts() -> Res<Opts> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or_else(|| format!("mode missing\n{USAGE}"))?;
    if mode == "-h" || mode == "--help" {
        print!("{USAGE}");
        std::process::exit(0);
    }
    if mode != "latency" && mode != "fanout" {
        return Err(format!("unknown mode {mode}\n{USAGE}").into());
    }
    let mut o = Opts {
        mode,
        endpoint: "http://127.0.0.1:4567".into(),
        proto: Proto::H2c,
        stream: String::new(),
        timeout: 300.0,
        window: 1 << 20,
        quiet: false,
        create_shards: None,
        rate: 200.0,
        duration: 20.0,
        record_size: 100,
        external: None,
        consumer: None,
        drain: 10.0,
        consumers: 1,
        expect: 0,
    };
    while let Some(a) = args.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = |name: &str| -> Res<String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            args.next().ok_or_else(|| format!("{name} needs a value").into())
        };
        match key.as_str() {
            "--endpoint" => o.endpoint = val("--endpoint")?,
            "--proto" => {
                o.proto = match val("--proto")?.as_str() {
                    "h2c" => Proto::H2c,
                    "http1" => Proto::Http1,
                    p => return Err(format!("unknown --proto {p}").into()),
                }
            }
            "--stream" => o.stream = val("--stream")?,
            "--timeout" => o.timeout = val("--timeout")?.parse()?,
            "--window" => o.window = val("--window")?.parse()?,
            "--quiet" => o.quiet = true,
            "--create-shards" => o.create_shards = Some(val("--create-shards")?.parse()?),
            "--rate" => o.rate = val("--rate")?.parse()?,
            "--duration" => o.duration = val("--duration")?.parse()?,
            "--record-size" => o.record_size = val("--record-size")?.parse()?,
            "--external" => o.external = Some(val("--external")?.parse()?),
            "--consumer" => o.consumer = Some(val("--consumer")?),
            "--drain" => o.drain = val("--drain")?.parse()?,
            "--consumers" => o.consumers = val("--consumers")?.parse()?,
            "--expect" => o.expect = val("--expect")?.parse()?,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if o.stream.is_empty() {
        return Err("--stream is required".into());
    }
    if o.record_size < 48 {
        return Err("--record-size must be at least 48".into());
    }
    if o.mode == "fanout" && (o.consumers == 0 || o.expect == 0) {
        return Err("fanout needs --consumers N and --expect M (> 0)".into());
    }
    if !o.endpoint.contains("://") {
        o.endpoint = format!("http://{}", o.endpoint);
    }
    let uri: Uri = o.endpoint.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err("only plain http:// endpoints are supported (h2c or HTTP/1.1)".into());
    }
    match uri.host() {
        Some("127.0.0.1") | Some("localhost") | Some("[::1]") | Some("::1") => {}
        other => return Err(format!("refusing non-loopback endpoint host {other:?}").into()),
    }
    Ok(o)
}

// ------------------------------------------------------------------------------------------
// helpers

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// `YYYYMMDDTHHMMSSZ` for X-Amz-Date.
fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", sod / 3600, (sod / 60) % 60, sod % 60)
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Some(sorted[idx.min(sorted.len() - 1)])
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Decimal sequence numbers without leading zeros: longer is larger, else lexicographic.
fn seq_gt(a: &str, b: &str) -> bool {
    a.len() > b.len() || (a.len() == b.len() && a > b)
}

macro_rules! say {
    ($o:expr, $($t:tt)*) => { if !$o.quiet { eprintln!("[efogen] {}", format!($($t)*)); } };
}

// ------------------------------------------------------------------------------------------
// Kinesis client

struct Kinesis {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    authorization: String,
    date: String,
}

#[derive(Debug)]
enum CallError {
    Aws { status: StatusCode, typ: String, message: String },
    Transport(BoxError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Aws { status, typ, message } => write!(f, "HTTP {status} {typ}: {message}"),
            CallError::Transport(e) => write!(f, "transport error: {e:?}"),
        }
    }
}
impl std::error::Error for CallError {}

impl CallError {
    fn typ(&self) -> &str {
        match self {
            CallError::Aws { typ, .. } => typ,
            CallError::Transport(_) => "",
        }
    }
}

impl Kinesis {
    /// One client = one connection pool; with h2c every request multiplexes over one connection.
    fn new(o: &Opts) -> Res<Self> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let mut b = Client::builder(TokioExecutor::new());
        b.pool_idle_timeout(Duration::from_secs(600));
        if o.proto == Proto::H2c {
            b.http2_only(true)
                .http2_initial_stream_window_size(o.window)
                .http2_initial_connection_window_size(o.window.saturating_mul(4))
                .http2_max_frame_size(Some(1 << 20));
        } else {
            b.pool_max_idle_per_host(64);
        }
        let client = b.build(http);
        let date = amz_date(SystemTime::now());
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKID/{}/us-east-1/kinesis/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
            &date[..8],
            "0".repeat(64)
        );
        Ok(Kinesis { client, uri: o.endpoint.parse()?, authorization, date })
    }

    async fn send(&self, op: &str, body: Bytes) -> Result<Response<Incoming>, CallError> {
        let req = Request::post(self.uri.clone())
            .header("x-amz-target", format!("Kinesis_20131202.{op}"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-date", &self.date)
            .header("authorization", &self.authorization)
            .body(Full::new(body))
            .map_err(|e| CallError::Transport(e.into()))?;
        let resp = self.client.request(req).await.map_err(|e| CallError::Transport(e.into()))?;
        if resp.status() == StatusCode::OK {
            return Ok(resp);
        }
        let status = resp.status();
        let hdr_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(':').next().unwrap_or(s).to_string());
        let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let typ = v
            .get("__type")
            .and_then(|t| t.as_str())
            .map(|s| s.rsplit('#').next().unwrap_or(s).to_string())
            .or(hdr_type)
            .unwrap_or_else(|| "?".into());
        let message = v
            .get("message")
            .or_else(|| v.get("Message"))
            .and_then(|m| m.as_str())
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned());
        Err(CallError::Aws { status, typ, message })
    }

    async fn call(&self, op: &str, body: Value) -> Result<Value, CallError> {
        let resp = self.send(op, Bytes::from(body.to_string())).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Transport(e.into()))?
            .to_bytes();
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::Transport(e.into()))
    }

    async fn put_record(&self, stream: &str, key: &str, data: &[u8]) -> Result<(), CallError> {
        let body = format!(
            "{{\"StreamName\":{},\"PartitionKey\":\"{}\",\"Data\":\"{}\"}}",
            Value::String(stream.into()),
            key,
            B64.encode(data)
        );
        let resp = self.send("PutRecord", Bytes::from(body)).await?;
        resp.into_body().collect().await.map_err(|e| CallError::Transport(e.into()))?;
        Ok(())
    }
}

async fn create_stream(k: &Kinesis, o: &Opts, shards: u32) -> Res<()> {
    match k.call("CreateStream", json!({"StreamName": o.stream, "ShardCount": shards})).await {
        Ok(_) => {}
        Err(e) if e.typ().contains("ResourceInUse") => {}
        Err(e) => return Err(format!("CreateStream: {e}").into()),
    }
    Ok(())
}

/// Waits for ACTIVE; returns (stream ARN, first shard id).
async fn stream_info(k: &Kinesis, o: &Opts) -> Res<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let arn = loop {
        let v = k.call("DescribeStreamSummary", json!({"StreamName": o.stream})).await?;
        let s = &v["StreamDescriptionSummary"];
        if s["StreamStatus"] == "ACTIVE" {
            break s["StreamARN"].as_str().ok_or("no StreamARN")?.to_string();
        }
        if Instant::now() > deadline {
            return Err("stream not ACTIVE after 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let v = k.call("ListShards", json!({"StreamName": o.stream})).await?;
    let shard = v["Shards"][0]["ShardId"].as_str().ok_or("ListShards: no shard")?.to_string();
    Ok((arn, shard))
}

/// RegisterStreamConsumer, then DescribeStreamConsumer until ACTIVE. Returns the consumer ARN.
async fn register_consumer(k: &Kinesis, stream_arn: &str, name: &str) -> Res<String> {
    let v = k
        .call("RegisterStreamConsumer", json!({"StreamARN": stream_arn, "ConsumerName": name}))
        .await
        .map_err(|e| format!("RegisterStreamConsumer {name}: {e}"))?;
    let arn = v["Consumer"]["ConsumerARN"].as_str().ok_or("no ConsumerARN")?.to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = k
            .call("DescribeStreamConsumer", json!({"ConsumerARN": arn}))
            .await
            .map_err(|e| format!("DescribeStreamConsumer {name}: {e}"))?;
        if d["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE" {
            return Ok(arn);
        }
        if Instant::now() > deadline {
            return Err(format!("consumer {name} not ACTIVE after 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------------------------------------
// event stream

struct Message {
    message_type: String,
    event_type: String,
    exception_type: String,
    payload: Bytes,
}

/// Takes one complete message off the front of `buf`, if there is one.
fn decode_message(buf: &mut BytesMut) -> Res<Option<Message>> {
    if buf.len() < 12 {
        return Ok(None);
    }
    let total = u32::from_be_bytes(buf[0..4].try_into().unwrap()) as usize;
    let hlen = u32::from_be_bytes(buf[4..8].try_into().unwrap()) as usize;
    let pcrc = u32::from_be_bytes(buf[8..12].try_into().unwrap());
    if crc32fast::hash(&buf[0..8]) != pcrc {
        return Err("event stream: prelude CRC mismatch".into());
    }
    if total < 16 + hlen || total > 32 << 20 {
        return Err(format!("event stream: bad lengths total={total} headers={hlen}").into());
    }
    if buf.len() < total {
        return Ok(None);
    }
    let mcrc = u32::from_be_bytes(buf[total - 4..total].try_into().unwrap());
    if crc32fast::hash(&buf[0..total - 4]) != mcrc {
        return Err("event stream: message CRC mismatch".into());
    }
    let mut msg = buf.split_to(total).freeze();
    let mut h = msg.slice(12..12 + hlen);
    let payload = msg.slice(12 + hlen..total - 4);
    msg.clear();
    let (mut message_type, mut event_type, mut exception_type) = (String::new(), String::new(), String::new());
    while h.has_remaining() {
        let nlen = h.get_u8() as usize;
        if h.remaining() < nlen + 1 {
            return Err("event stream: truncated header".into());
        }
        let name = String::from_utf8_lossy(&h.split_to(nlen)).into_owned();
        let typ = h.get_u8();
        let skip = match typ {
            0 | 1 => 0,
            2 => 1,
            3 => 2,
            4 => 4,
            5 | 8 => 8,
            9 => 16,
            6 | 7 => {
                if h.remaining() < 2 {
                    return Err("event stream: truncated header".into());
                }
                let l = h.get_u16() as usize;
                if h.remaining() < l {
                    return Err("event stream: truncated header".into());
                }
                let v = h.split_to(l);
                if typ == 7 {
                    let s = String::from_utf8_lossy(&v).into_owned();
                    match name.as_str() {
                        ":message-type" => message_type = s,
                        ":event-type" => event_type = s,
                        ":exception-type" | ":error-code" => exception_type = s,
                        _ => {}
                    }
                }
                0
            }
            t => return Err(format!("event stream: unknown header type {t}").into()),
        };
        if h.remaining() < skip {
            return Err("event stream: truncated header".into());
        }
        h.advance(skip);
    }
    Ok(Some(Message { message_type, event_type, exception_type, payload }))
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<Rec<'a>>,
    #[serde(rename = "ContinuationSequenceNumber", borrow, default)]
    continuation: Option<Cow<'a, str>>,
    #[serde(rename = "MillisBehindLatest", default)]
    millis_behind: Option<f64>,
}

#[derive(Deserialize)]
struct Rec<'a> {
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "SequenceNumber", borrow)]
    seq: Cow<'a, str>,
}

#[derive(Default, Debug, Clone)]
struct SubStats {
    subscriptions: u64,
    resource_in_use_retries: u64,
    no_initial_response: u64,
    events: u64,
    payload_bytes: u64,
    last_millis_behind: Option<f64>,
}

enum Flow {
    Continue,
    Done,
}

/// Subscribes to `shard` from `start` and calls `on_event` for every SubscribeToShardEvent,
/// resubscribing after the ContinuationSequenceNumber whenever a subscription ends, until
/// `on_event` returns Done or `deadline` passes. `on_ready` runs after the first initial-response.
async fn subscribe_loop<F>(
    k: &Kinesis,
    consumer_arn: &str,
    shard: &str,
    start: Value,
    deadline: Instant,
    mut on_ready: Option<tokio::sync::oneshot::Sender<()>>,
    stats: &mut SubStats,
    mut on_event: F,
) -> Res<()>
where
    F: FnMut(&Event<'_>, Instant) -> Res<Flow>,
{
    let mut position = start;
    let mut continuation: Option<String> = None;
    loop {
        if Instant::now() > deadline {
            return Err("timed out".into());
        }
        if let Some(c) = &continuation {
            position = json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": c});
        }
        let body = json!({"ConsumerARN": consumer_arn, "ShardId": shard, "StartingPosition": position});
        let resp = match tokio::time::timeout_at(
            deadline.into(),
            k.send("SubscribeToShard", Bytes::from(body.to_string())),
        )
        .await
        {
            Err(_) => return Err("timed out".into()),
            Ok(Err(e)) if e.typ().contains("ResourceInUse") || e.typ().contains("LimitExceeded") => {
                stats.resource_in_use_retries += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Ok(Err(e)) => return Err(format!("SubscribeToShard: {e}").into()),
            Ok(Ok(r)) => r,
        };
        stats.subscriptions += 1;
        let mut body = resp.into_body();
        let mut buf = BytesMut::with_capacity(1 << 20);
        let mut got_initial = false;
        'frames: loop {
            let frame = match tokio::time::timeout_at(deadline.into(), body.frame()).await {
                Err(_) => return Err("timed out".into()),
                Ok(None) => break 'frames, // subscription ended
                Ok(Some(Err(e))) => return Err(format!("subscription body: {e:?}").into()),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else { continue };
            let recv_at = Instant::now();
            buf.extend_from_slice(&data);
            while let Some(m) = decode_message(&mut buf)? {
                match (m.message_type.as_str(), m.event_type.as_str()) {
                    ("event", "initial-response") => {
                        got_initial = true;
                        if let Some(tx) = on_ready.take() {
                            let _ = tx.send(());
                        }
                    }
                    ("event", "SubscribeToShardEvent") => {
                        if !got_initial {
                            // kinesis-local sends no initial-response: counted, reported
                            stats.no_initial_response += 1;
                            got_initial = true;
                            if let Some(tx) = on_ready.take() {
                                let _ = tx.send(());
                            }
                        }
                        stats.events += 1;
                        stats.payload_bytes += m.payload.len() as u64;
                        let ev: Event = serde_json::from_slice(&m.payload)
                            .map_err(|e| format!("event payload: {e}"))?;
                        stats.last_millis_behind = ev.millis_behind;
                        if let Some(c) = &ev.continuation {
                            continuation = Some(c.to_string());
                        }
                        if let Flow::Done = on_event(&ev, recv_at)? {
                            return Ok(());
                        }
                    }
                    ("exception", _) | ("error", _) => {
                        let text = String::from_utf8_lossy(&m.payload).into_owned();
                        if m.exception_type.contains("ResourceInUse") {
                            // taken over by another subscriber: retry from the continuation
                            stats.resource_in_use_retries += 1;
                            break 'frames;
                        }
                        return Err(format!("exception event {}: {text}", m.exception_type).into());
                    }
                    (mt, et) => return Err(format!("unexpected message {mt}/{et}").into()),
                }
            }
        }
        if continuation.is_none() && !got_initial {
            return Err("subscription ended without initial-response".into());
        }
    }
}

// ------------------------------------------------------------------------------------------
// latency mode

fn stamp_record(idx: u64, size: usize) -> Vec<u8> {
    let mut s = format!("efo {:020} {:010} ", now_ns(), idx).into_bytes();
    s.resize(size, b'x');
    s
}

/// (timestamp ns, index) from a record's data.
fn parse_stamp(data: &[u8]) -> Option<(u128, u64)> {
    if data.len() < 36 || &data[..4] != b"efo " {
        return None;
    }
    let ts = std::str::from_utf8(&data[4..24]).ok()?.parse().ok()?;
    let idx = std::str::from_utf8(&data[25..35]).ok()?.parse().ok()?;
    Some((ts, idx))
}

async fn run_latency(o: Opts) -> Res<bool> {
    let k = Arc::new(Kinesis::new(&o)?);
    if let Some(n) = o.create_shards {
        create_stream(&k, &o, n).await?;
    }
    let (stream_arn, shard) = stream_info(&k, &o).await?;
    let name = o.consumer.clone().unwrap_or_else(|| format!("efo-lat-{}", now_ns() / 1_000_000));
    let consumer_arn = register_consumer(&k, &stream_arn, &name).await?;
    say!(o, "consumer {consumer_arn} ACTIVE; subscribing to {shard} from LATEST");

    let n: u64 = o.external.unwrap_or((o.rate * o.duration).round() as u64);
    let deadline = Instant::now() + Duration::from_secs_f64(o.timeout);
    // subscriber: its own client, so its own connection
    let sk = Kinesis::new(&o)?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let put_done_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let drain = Duration::from_secs_f64(o.drain);
    let sub = {
        let consumer_arn = consumer_arn.clone();
        let shard = shard.clone();
        let put_done_at = put_done_at.clone();
        let mut done_rx = done_rx.clone();
        tokio::spawn(async move {
            let mut lat_ms: Vec<f64> = Vec::with_capacity(n as usize);
            let mut seen = vec![false; n as usize];
            let (mut dups, mut foreign, mut out_of_range) = (0u64, 0u64, 0u64);
            let mut stats = SubStats::default();
            let mut last_seq: Option<String> = None;
            let mut order_violations = 0u64;
            let fut = subscribe_loop(
                &sk,
                &consumer_arn,
                &shard,
                json!({"Type": "LATEST"}),
                deadline,
                Some(ready_tx),
                &mut stats,
                |ev, _recv_at| {
                    let t = now_ns();
                    for r in &ev.records {
                        if let Some(prev) = &last_seq {
                            if !seq_gt(&r.seq, prev) {
                                order_violations += 1;
                            }
                        }
                        last_seq = Some(r.seq.to_string());
                        let data = B64.decode(r.data.as_bytes()).map_err(|e| format!("base64: {e}"))?;
                        match parse_stamp(&data) {
                            None => foreign += 1,
                            Some((_, idx)) if idx >= n => out_of_range += 1,
                            Some((ts, idx)) => {
                                if seen[idx as usize] {
                                    dups += 1;
                                } else {
                                    seen[idx as usize] = true;
                                    lat_ms.push(t.saturating_sub(ts) as f64 / 1e6);
                                }
                            }
                        }
                    }
                    Ok(if lat_ms.len() as u64 >= n { Flow::Done } else { Flow::Continue })
                },
            );
            // stop early when the puts are done and `drain` has passed
            let stopper = async {
                loop {
                    if *done_rx.borrow() {
                        break;
                    }
                    if done_rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                let at = put_done_at.lock().await.unwrap_or_else(Instant::now);
                tokio::time::sleep_until((at + drain).into()).await;
            };
            let outcome: String = tokio::select! {
                r = fut => match r { Ok(()) => "complete".into(), Err(e) => format!("error: {e}") },
                _ = stopper => "drain timeout".into(),
            };
            (lat_ms, dups, foreign, out_of_range, order_violations, stats, outcome)
        })
    };
    match tokio::time::timeout(Duration::from_secs(60), ready_rx).await {
        Err(_) => return Err("no initial-response within 60 s".into()),
        Ok(Err(_)) => {
            let (.., outcome) = sub.await?;
            return Err(format!("subscriber failed before initial-response: {outcome}").into());
        }
        Ok(Ok(())) => {}
    }
    println!("{}", json!({"kind": "ready", "consumer_arn": consumer_arn, "shard": shard}));

    let mut put_lat: Vec<f64> = Vec::new();
    let mut put_errors = 0u64;
    let mut put_elapsed = 0.0;
    if o.external.is_none() {
        say!(o, "putting {n} records at {} /s", o.rate);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<f64, String>>();
        let start = Instant::now();
        let period = Duration::from_secs_f64(1.0 / o.rate);
        for i in 0..n {
            tokio::time::sleep_until((start + period * i as u32).into()).await;
            let k = k.clone();
            let tx = tx.clone();
            let stream = o.stream.clone();
            let size = o.record_size;
            tokio::spawn(async move {
                let data = stamp_record(i, size);
                let t0 = Instant::now();
                let r = k.put_record(&stream, &format!("pk-{i}"), &data).await;
                let _ = tx.send(r.map(|_| t0.elapsed().as_secs_f64() * 1e3).map_err(|e| e.to_string()));
            });
        }
        drop(tx);
        while let Some(r) = rx.recv().await {
            match r {
                Ok(ms) => put_lat.push(ms),
                Err(e) => {
                    put_errors += 1;
                    if put_errors <= 3 {
                        say!(o, "put failed: {e}");
                    }
                }
            }
        }
        put_elapsed = start.elapsed().as_secs_f64();
        *put_done_at.lock().await = Some(Instant::now());
        let _ = done_tx.send(true);
    } else {
        say!(o, "waiting for {n} records from the external producer");
        // The external producer is done when stdin closes (or never: then the deadline applies).
        let mut line = String::new();
        let stdin = tokio::io::stdin();
        let mut rd = tokio::io::BufReader::new(stdin);
        use tokio::io::AsyncBufReadExt;
        let pending_done = done_tx;
        let put_done_at2 = put_done_at.clone();
        tokio::spawn(async move {
            loop {
                line.clear();
                match rd.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            *put_done_at2.lock().await = Some(Instant::now());
            let _ = pending_done.send(true);
        });
    }
    let (mut lat, dups, foreign, out_of_range, order_violations, stats, outcome) = sub.await?;
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    put_lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let received = lat.len() as u64;
    let verified = received == n && dups == 0 && out_of_range == 0 && order_violations == 0 && put_errors == 0;
    let mean = if lat.is_empty() { None } else { Some(lat.iter().sum::<f64>() / lat.len() as f64) };
    let res = json!({
        "kind": "result", "mode": "latency", "proto": format!("{:?}", o.proto).to_lowercase(),
        "producer": if o.external.is_some() { "external" } else { "PutRecord" },
        "expected": n, "received": received, "missing": n - received.min(n), "duplicates": dups,
        "foreign_records": foreign, "out_of_range": out_of_range, "order_violations": order_violations,
        "outcome": outcome,
        "latency_ms_p50": percentile(&lat, 50.0).map(r3), "latency_ms_p90": percentile(&lat, 90.0).map(r3),
        "latency_ms_p99": percentile(&lat, 99.0).map(r3), "latency_ms_max": lat.last().copied().map(r3),
        "latency_ms_min": lat.first().copied().map(r3), "latency_ms_mean": mean.map(r3),
        "put_errors": put_errors, "put_elapsed_s": r3(put_elapsed),
        "put_latency_ms_p50": percentile(&put_lat, 50.0).map(r3),
        "put_latency_ms_p99": percentile(&put_lat, 99.0).map(r3),
        "subscriptions": stats.subscriptions, "events": stats.events,
        "resource_in_use_retries": stats.resource_in_use_retries,
        "subscriptions_without_initial_response": stats.no_initial_response,
        "verified": verified,
    });
    println!("{res}");
    say!(o, "latency: {received}/{n} received, p50 {:?} ms, p99 {:?} ms, {outcome}",
        percentile(&lat, 50.0).map(r3), percentile(&lat, 99.0).map(r3));
    Ok(verified)
}

// ------------------------------------------------------------------------------------------
// fan-out mode

#[derive(Debug, Default, Clone)]
struct ConsumerResult {
    name: String,
    records: u64,
    over: u64,
    order_violations: u64,
    bad_data_len: u64,
    elapsed_s: f64,
    first_event_s: Option<f64>,
    stats: SubStats,
    error: Option<String>,
}

async fn run_fanout(o: Opts) -> Res<bool> {
    let k = Kinesis::new(&o)?;
    let (stream_arn, shard) = stream_info(&k, &o).await?;
    let tag = now_ns() / 1_000_000;
    let mut consumers = Vec::new();
    for i in 0..o.consumers {
        let name = format!("efo-fan-{tag}-{i}");
        let arn = register_consumer(&k, &stream_arn, &name).await?;
        consumers.push((name, arn));
    }
    say!(o, "{} consumers ACTIVE; all subscribe to {shard} from TRIM_HORIZON, expecting {} records each",
        o.consumers, o.expect);
    // one client (connection) per consumer, connected before the start
    let mut clients = Vec::new();
    for _ in 0..o.consumers {
        let c = Kinesis::new(&o)?;
        // warm the connection so connection setup is not in the measurement
        c.call("DescribeStreamSummary", json!({"StreamName": o.stream})).await?;
        clients.push(c);
    }
    let b64_len = o.record_size.div_ceil(3) * 4;
    let deadline = Instant::now() + Duration::from_secs_f64(o.timeout);
    let expect = o.expect;
    let barrier = Arc::new(tokio::sync::Barrier::new(o.consumers));
    let mut tasks = Vec::new();
    for ((name, arn), c) in consumers.into_iter().zip(clients) {
        let shard = shard.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let t0 = Instant::now();
            let mut r = ConsumerResult { name, ..Default::default() };
            let mut last_seq: Option<String> = None;
            let mut last_record_at = t0;
            let mut stats = SubStats::default();
            let res = subscribe_loop(
                &c,
                &arn,
                &shard,
                json!({"Type": "TRIM_HORIZON"}),
                deadline,
                None,
                &mut stats,
                |ev, recv_at| {
                    if r.first_event_s.is_none() {
                        r.first_event_s = Some(recv_at.duration_since(t0).as_secs_f64());
                    }
                    if ev.records.is_empty() {
                        return Ok(Flow::Continue);
                    }
                    for rec in &ev.records {
                        if rec.data.len() != b64_len {
                            r.bad_data_len += 1;
                        }
                        if let Some(prev) = &last_seq {
                            if !seq_gt(&rec.seq, prev) {
                                r.order_violations += 1;
                            }
                        }
                    }
                    last_seq = Some(ev.records.last().unwrap().seq.to_string());
                    r.records += ev.records.len() as u64;
                    last_record_at = recv_at;
                    if r.records >= expect {
                        r.over = r.records - expect;
                        return Ok(Flow::Done);
                    }
                    Ok(Flow::Continue)
                },
            )
            .await;
            r.elapsed_s = last_record_at.duration_since(t0).as_secs_f64();
            r.stats = stats;
            if let Err(e) = res {
                r.error = Some(e.to_string());
            }
            r
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await?);
    }
    let mut ok = true;
    let mut per = Vec::new();
    let mut rates = Vec::new();
    for r in &results {
        let rate = if r.elapsed_s > 0.0 { r.records as f64 / r.elapsed_s } else { 0.0 };
        let good = r.error.is_none() && r.records == expect && r.over == 0 && r.order_violations == 0
            && r.bad_data_len == 0;
        ok &= good;
        rates.push(rate);
        per.push(json!({
            "name": r.name, "records": r.records, "over": r.over, "order_violations": r.order_violations,
            "bad_data_len": r.bad_data_len, "elapsed_s": r3(r.elapsed_s), "records_per_s": r3(rate),
            "first_event_s": r.first_event_s.map(r3), "subscriptions": r.stats.subscriptions,
            "resource_in_use_retries": r.stats.resource_in_use_retries, "events": r.stats.events,
            "subscriptions_without_initial_response": r.stats.no_initial_response,
            "payload_mb": r3(r.stats.payload_bytes as f64 / 1e6), "error": r.error, "verified": good,
        }));
        if let Some(e) = &r.error {
            say!(o, "{}: {e} after {} records", r.name, r.records);
        }
    }
    let mut sorted = rates.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let wall = results.iter().map(|r| r.elapsed_s).fold(0.0, f64::max);
    let total: u64 = results.iter().map(|r| r.records).sum();
    let res = json!({
        "kind": "result", "mode": "fanout", "proto": format!("{:?}", o.proto).to_lowercase(),
        "consumers": o.consumers, "expect": expect,
        "per_consumer_rps_median": percentile(&sorted, 50.0).map(r3),
        "per_consumer_rps_min": sorted.first().copied().map(r3),
        "per_consumer_rps_max": sorted.last().copied().map(r3),
        "aggregate_rps": if wall > 0.0 { r3(total as f64 / wall) } else { 0.0 },
        "wall_s": r3(wall), "per_consumer": per, "verified": ok,
    });
    println!("{res}");
    say!(o, "fanout x{}: per-consumer median {:?} rec/s, verified={ok}", o.consumers,
        percentile(&sorted, 50.0).map(|x| x.round()));
    Ok(ok)
}

fn main() -> ExitCode {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("efogen: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let r = rt.block_on(async {
        if o.mode == "latency" {
            run_latency(o).await
        } else {
            run_fanout(o).await
        }
    });
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("efogen: verification failed");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("efogen: {e}");
            ExitCode::from(1)
        }
    }
}
