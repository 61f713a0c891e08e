//! Interop checks of a Kinesis endpoint (strait) with the AWS SDK for Rust (`aws-sdk-kinesis`).
//!
//! Usage: STRAIT_ENDPOINT=http://127.0.0.1:4567 strait-interop-rust-sdk
//!
//! Prints `PASS <check>` / `FAIL <check>: <detail>` per check and a final line `N passed, N failed`;
//! exits 1 if any check failed. A FAIL line is followed by the last request/response the SDK exchanged
//! (captured by an interceptor), so server bugs can be reported with their wire detail.
//!
//! RUST_SDK_INTEROP_TRACE=1 prints every request/response pair.
//!
//! The SDK runs with retries disabled so that a server error is never hidden by a successful retry.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis as kinesis;
use kinesis::client::Waiters;
use kinesis::config::http::HttpResponse;
use kinesis::config::interceptors::{AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef};
use kinesis::config::retry::RetryConfig;
use kinesis::config::timeout::TimeoutConfig;
use kinesis::config::{BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use kinesis::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use kinesis::primitives::{Blob, DateTime};
use kinesis::types::{
    ChildShard, PutRecordsRequestEntry, ScalingType, Shard, ShardIteratorType, StreamStatus,
};
use kinesis::Client;
use md5::{Digest, Md5};

const MAX_HASH: u128 = u128::MAX; // 2^128 - 1
const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";

// ---------------------------------------------------------------------------------------------
// Wire capture: the last request body and the last response (status + body) seen by the SDK.

#[derive(Default, Debug)]
struct Exchange {
    target: String,
    request: String,
    response: String,
    /// Transfer-Encoding and Content-Type of the last response (how an event stream was framed).
    transfer_encoding: String,
    content_type: String,
}

#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Exchange>>);

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let head: String = s.chars().take(n).collect();
        format!("{head}...[{} chars total]", s.chars().count())
    }
}

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "strait-interop-capture"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = ctx.request();
        let mut ex = self.0.lock().unwrap();
        ex.target = req.headers().get("x-amz-target").unwrap_or("?").to_string();
        let ct = req.headers().get("content-type").unwrap_or("?").to_string();
        let body = match req.body().bytes() {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => "<streaming body>".to_string(),
        };
        ex.request = format!("POST {} [{}; {}] {}", req.uri(), ex.target, ct, clip(&body, 1500));
        ex.response = "<no response>".to_string();
        ex.transfer_encoding.clear();
        ex.content_type.clear();
        Ok(())
    }
    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let resp = ctx.response();
        let body = match resp.body().bytes() {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => "<streaming body>".to_string(),
        };
        let ct = resp.headers().get("content-type").unwrap_or("?").to_string();
        let mut ex = self.0.lock().unwrap();
        ex.transfer_encoding = resp.headers().get("transfer-encoding").unwrap_or("").to_string();
        ex.content_type = ct.clone();
        ex.response = format!("HTTP {} [{}] {}", resp.status().as_u16(), ct, clip(&body, 1500));
        if std::env::var_os("RUST_SDK_INTEROP_TRACE").is_some() {
            println!("     > {}\n     < {}", ex.request, ex.response);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Check bookkeeping.

struct Suite {
    client: Client,
    capture: Capture,
    passed: u32,
    failed: u32,
}

impl Suite {
    fn pass(&mut self, name: &str) {
        self.passed += 1;
        println!("PASS {name}");
    }
    fn fail(&mut self, name: &str, detail: impl AsRef<str>) {
        self.failed += 1;
        println!("FAIL {name}: {}", detail.as_ref());
        let ex = self.capture.0.lock().unwrap();
        if !ex.request.is_empty() {
            println!("     last request : {}", ex.request);
            println!("     last response: {}", ex.response);
        }
    }
    /// Records a check from a list of problems (empty = pass).
    fn check(&mut self, name: &str, problems: Vec<String>) {
        if problems.is_empty() {
            self.pass(name);
        } else {
            self.fail(name, problems.join("; "));
        }
    }
}

/// Collects mismatches: `expect!(probs, cond, "fmt", args)`.
macro_rules! expect {
    ($p:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond { $p.push(format!($($fmt)+)); }
    };
}

fn err_detail<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let mut s = match e.as_service_error() {
        // Service errors: the modeled/unmodeled code and message (the raw body follows).
        Some(se) => format!("service error code={:?} message={:?} ({})", se.code(), se.message(), se),
        // Dispatch, timeout, response (deserialization) and construction failures: full chain.
        None => format!("{}", DisplayErrorContext(e)),
    };
    if let Some(r) = e.raw_response() {
        let body = r.body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_else(|| "<streaming>".into());
        let _ = write!(s, " | raw response: HTTP {} body={}", r.status().as_u16(), clip(&body, 800));
    }
    s
}

/// Checks that an SDK call failed with the expected modeled (typed) service error, with a non-empty message.
fn expect_typed_error<T: std::fmt::Debug, E>(
    s: &mut Suite,
    name: &str,
    res: Result<T, SdkError<E, HttpResponse>>,
    want: &str,
    is_want: impl Fn(&E) -> bool,
) where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match res {
        Ok(v) => s.fail(name, format!("expected {want}, call succeeded: {}", clip(&format!("{v:?}"), 300))),
        Err(e) => match e.as_service_error() {
            Some(se) if is_want(se) => {
                let msg = se.message().unwrap_or("");
                if msg.trim().is_empty() {
                    s.fail(name, format!("{want} has an empty message ({})", err_detail(&e)));
                } else {
                    s.pass(name);
                }
            }
            Some(se) => s.fail(
                name,
                format!("expected typed {want}, got service error code={:?}: {}", se.code(), err_detail(&e)),
            ),
            None => s.fail(name, format!("expected typed {want}, got non-service error: {}", err_detail(&e))),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn md5_hash_key(pk: &str) -> u128 {
    let d = Md5::digest(pk.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d);
    u128::from_be_bytes(b)
}

fn is_seqno(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|c| c.is_ascii_digit())
}

/// Numeric comparison of decimal strings (no leading zeros assumed beyond a single "0").
fn seq_lt(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) < (b.len(), b)
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[derive(Clone, Debug)]
struct ShardInfo {
    id: String,
    start: u128,
    end: u128,
    parent: Option<String>,
    adjacent_parent: Option<String>,
    start_seq: String,
    end_seq: Option<String>,
}

fn shard_info(sh: &Shard) -> Result<ShardInfo, String> {
    let hk = sh.hash_key_range().ok_or_else(|| format!("{}: no HashKeyRange", sh.shard_id()))?;
    let start = hk.starting_hash_key().parse::<u128>().map_err(|e| format!("{}: StartingHashKey {:?}: {e}", sh.shard_id(), hk.starting_hash_key()))?;
    let end = hk.ending_hash_key().parse::<u128>().map_err(|e| format!("{}: EndingHashKey {:?}: {e}", sh.shard_id(), hk.ending_hash_key()))?;
    let sr = sh.sequence_number_range().ok_or_else(|| format!("{}: no SequenceNumberRange", sh.shard_id()))?;
    Ok(ShardInfo {
        id: sh.shard_id().to_string(),
        start,
        end,
        parent: sh.parent_shard_id().map(str::to_string),
        adjacent_parent: sh.adjacent_parent_shard_id().map(str::to_string),
        start_seq: sr.starting_sequence_number().to_string(),
        end_seq: sr.ending_sequence_number().map(str::to_string),
    })
}

/// Checks that `shards` (sorted by start) tile [0, 2^128-1] with no gap or overlap.
fn coverage_problems(mut shards: Vec<&ShardInfo>) -> Vec<String> {
    let mut p = vec![];
    shards.sort_by_key(|s| s.start);
    let mut next: u128 = 0;
    let mut done = false;
    for s in &shards {
        if done {
            p.push(format!("{} starts after the range was already covered", s.id));
            continue;
        }
        expect!(p, s.start == next, "{} starts at {} but the previous range ended at {}", s.id, s.start, next.wrapping_sub(1));
        expect!(p, s.end >= s.start, "{} ends ({}) before it starts ({})", s.id, s.end, s.start);
        if s.end == MAX_HASH {
            done = true;
        } else {
            next = s.end + 1;
        }
    }
    expect!(p, done, "the hash ranges do not reach 2^128-1");
    p
}

/// A record we wrote and expect to read back.
#[derive(Clone, Debug)]
struct Written {
    pk: String,
    data: Vec<u8>,
    seq: String,
}

async fn list_shards(s: &Suite, stream: &str) -> Result<Vec<ShardInfo>, String> {
    let mut out = vec![];
    let mut token: Option<String> = None;
    for _ in 0..50 {
        let req = match &token {
            Some(t) => s.client.list_shards().next_token(t),
            None => s.client.list_shards().stream_name(stream),
        };
        let o = req.send().await.map_err(|e| err_detail(&e))?;
        for sh in o.shards() {
            out.push(shard_info(sh)?);
        }
        match o.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(out),
        }
    }
    Err("ListShards: more than 50 pages".into())
}

/// Polls DescribeStreamSummary until the stream is ACTIVE.
async fn wait_active(s: &Suite, stream: &str) -> Result<kinesis::types::StreamDescriptionSummary, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = s.client.describe_stream_summary().stream_name(stream).send().await.map_err(|e| err_detail(&e))?;
        let d = o.stream_description_summary().cloned().ok_or("no StreamDescriptionSummary in the response")?;
        if *d.stream_status() == StreamStatus::Active {
            return Ok(d);
        }
        if Instant::now() > deadline {
            return Err(format!("still {:?} after 60 s", d.stream_status()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn iterator(
    s: &Suite,
    stream: &str,
    shard: &str,
    ty: ShardIteratorType,
    seq: Option<&str>,
    ts: Option<DateTime>,
) -> Result<String, String> {
    let o = s
        .client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ty)
        .set_starting_sequence_number(seq.map(str::to_string))
        .set_timestamp(ts)
        .send()
        .await
        .map_err(|e| err_detail(&e))?;
    o.shard_iterator().map(str::to_string).ok_or_else(|| "GetShardIterator returned no ShardIterator".to_string())
}

struct ReadResult {
    records: Vec<kinesis::types::Record>,
    /// NextShardIterator of the last call (None = the shard is closed and fully read).
    next: Option<String>,
    /// ChildShards of the last response.
    children: Vec<ChildShard>,
    millis_behind: Vec<Option<i64>>,
    calls: usize,
}

/// Reads from `it` until the shard end (NextShardIterator absent) or until caught up
/// (an empty response with MillisBehindLatest == 0, or two empty responses in a row).
async fn read_all(s: &Suite, it: String, limit: Option<i32>) -> Result<ReadResult, String> {
    let mut rr = ReadResult { records: vec![], next: Some(it), children: vec![], millis_behind: vec![], calls: 0 };
    let mut empties = 0;
    while let Some(cur) = rr.next.clone() {
        if rr.calls >= 200 {
            return Err(format!("not caught up after 200 GetRecords calls ({} records)", rr.records.len()));
        }
        let o = s.client.get_records().shard_iterator(&cur).set_limit(limit).send().await.map_err(|e| err_detail(&e))?;
        rr.calls += 1;
        rr.millis_behind.push(o.millis_behind_latest());
        rr.next = o.next_shard_iterator().map(str::to_string);
        rr.children = o.child_shards().to_vec();
        let n = o.records().len();
        rr.records.extend(o.records().iter().cloned());
        if n == 0 {
            empties += 1;
            if o.millis_behind_latest() == Some(0) || empties >= 2 {
                break;
            }
        } else {
            empties = 0;
        }
    }
    Ok(rr)
}

/// Reads a closed shard to its end. STRAIT_CLOSED_SHARD_GRACE_S: strait's Kafka backend ends a
/// closed parent only that long after the split (it waits for writes from replicas that had
/// not yet heard of it), so the read is repeated until then; elsewhere it ends at once.
async fn read_closed(s: &Suite, stream: &str, shard: &str, it: String) -> Result<ReadResult, String> {
    let grace: f64 = std::env::var("STRAIT_CLOSED_SHARD_GRACE_S").ok().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(grace + 1.0);
    let mut rr = read_all(s, it, Some(100)).await?;
    while rr.next.is_some() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let it = iterator(s, stream, shard, ShardIteratorType::TrimHorizon, None, None).await?;
        rr = read_all(s, it, Some(100)).await?;
    }
    Ok(rr)
}

/// Compares records read back with what was written (order, sequence numbers, keys, data, timestamps).
fn compare_records(got: &[kinesis::types::Record], want: &[Written], t_lo: f64, t_hi: f64) -> Vec<String> {
    let mut p = vec![];
    expect!(p, got.len() == want.len(), "read {} records, wrote {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        if p.len() > 8 {
            p.push("...".into());
            break;
        }
        expect!(p, g.sequence_number() == w.seq, "record {i}: SequenceNumber {} != {} from the put", g.sequence_number(), w.seq);
        expect!(p, g.partition_key() == Some(w.pk.as_str()), "record {i}: PartitionKey {:?} != {:?}", g.partition_key(), w.pk);
        expect!(p, g.data().as_ref() == w.data.as_slice(), "record {i} ({}): Data differs ({} bytes read, {} written)", w.seq, g.data().as_ref().len(), w.data.len());
        match g.approximate_arrival_timestamp() {
            None => p.push(format!("record {i}: no ApproximateArrivalTimestamp")),
            Some(ts) => {
                let t = ts.as_secs_f64();
                expect!(p, t >= t_lo - 5.0 && t <= t_hi + 5.0, "record {i}: ApproximateArrivalTimestamp {t} not within [{t_lo}, {t_hi}] +-5 s");
            }
        }
    }
    p
}

fn shard_for(shards: &[ShardInfo], hk: u128) -> Option<String> {
    shards.iter().find(|s| s.end_seq.is_none() && s.start <= hk && hk <= s.end).map(|s| s.id.clone())
}

// ---------------------------------------------------------------------------------------------

struct State {
    arn: String,
    shards: Vec<ShardInfo>,
    written: HashMap<String, Vec<Written>>,
    t_start: f64,
}

impl State {
    fn record_put(&mut self, p: &mut Vec<String>, shard: &str, w: Written, what: &str) {
        let list = self.written.entry(shard.to_string()).or_default();
        if let Some(last) = list.last() {
            expect!(p, seq_lt(&last.seq, &w.seq), "{what}: SequenceNumber {} is not greater than the previous one in {shard} ({})", w.seq, last.seq);
        }
        list.push(w);
    }
}

async fn run(s: &mut Suite) {
    let stream = format!("rust-sdk-interop-{}-{}", std::process::id(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis());
    let mut st = State {
        arn: format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}"),
        shards: vec![],
        written: HashMap::new(),
        t_start: now_secs(),
    };

    // --- CreateStream / waiter / DescribeStreamSummary -------------------------------------------
    match s.client.create_stream().stream_name(&stream).shard_count(2).send().await {
        Ok(_) => s.pass("CreateStream (2 shards)"),
        Err(e) => {
            s.fail("CreateStream (2 shards)", err_detail(&e));
            return; // nothing else can work
        }
    }
    match s.client.wait_until_stream_exists().stream_name(&stream).wait(Duration::from_secs(60)).await {
        Ok(_) => s.pass("waiter StreamExists (DescribeStream)"),
        Err(e) => s.fail("waiter StreamExists (DescribeStream)", format!("{}", DisplayErrorContext(&e))),
    }
    match wait_active(s, &stream).await {
        Err(e) => s.fail("DescribeStreamSummary until ACTIVE", e),
        Ok(d) => {
            let mut p = vec![];
            expect!(p, d.stream_name() == stream, "StreamName {:?}", d.stream_name());
            expect!(p, d.stream_arn() == st.arn, "StreamARN {:?}, expected {:?}", d.stream_arn(), st.arn);
            expect!(p, d.open_shard_count() == 2, "OpenShardCount {}", d.open_shard_count());
            expect!(p, d.retention_period_hours() == 24, "RetentionPeriodHours {}", d.retention_period_hours());
            let created = d.stream_creation_timestamp().as_secs_f64();
            expect!(p, (created - st.t_start).abs() < 60.0, "StreamCreationTimestamp {created} far from now {}", st.t_start);
            if let Some(m) = d.stream_mode_details() {
                expect!(p, m.stream_mode().as_str() == "PROVISIONED", "StreamMode {:?}", m.stream_mode());
            }
            if let Some(enc) = d.encryption_type() {
                expect!(p, enc.as_str() == "NONE", "EncryptionType {enc:?}");
            }
            s.check("DescribeStreamSummary until ACTIVE (name, ARN, 2 open shards, 24 h)", p);
        }
    }
    match s.client.describe_stream_summary().stream_arn(&st.arn).send().await {
        Ok(o) => {
            let name = o.stream_description_summary().map(|d| d.stream_name().to_string());
            let ok = name.as_deref() == Some(stream.as_str());
            s.check("DescribeStreamSummary by StreamARN", if ok { vec![] } else { vec![format!("StreamName {name:?}")] });
        }
        Err(e) => s.fail("DescribeStreamSummary by StreamARN", err_detail(&e)),
    }

    // --- ListStreams ---------------------------------------------------------------------------
    {
        let mut names = vec![];
        let mut summaries = vec![];
        let mut token: Option<String> = None;
        let mut err = None;
        for _ in 0..100 {
            let req = match &token {
                Some(t) => s.client.list_streams().next_token(t),
                None => s.client.list_streams().limit(100),
            };
            match req.send().await {
                Ok(o) => {
                    names.extend(o.stream_names().iter().cloned());
                    summaries.extend(o.stream_summaries().iter().cloned());
                    if o.has_more_streams() {
                        match o.next_token() {
                            Some(t) => token = Some(t.to_string()),
                            None => {
                                err = Some("HasMoreStreams true but no NextToken".to_string());
                                break;
                            }
                        }
                    } else {
                        break;
                    }
                }
                Err(e) => {
                    err = Some(err_detail(&e));
                    break;
                }
            }
        }
        match err {
            Some(e) => s.fail("ListStreams", e),
            None => {
                let mut p = vec![];
                expect!(p, names.contains(&stream), "StreamNames {:?} lack {stream}", names);
                match summaries.iter().find(|x| x.stream_name() == stream) {
                    None => p.push(format!("StreamSummaries lack {stream} ({} summaries)", summaries.len())),
                    Some(x) => {
                        expect!(p, x.stream_arn() == st.arn, "summary StreamARN {:?}", x.stream_arn());
                        expect!(p, *x.stream_status() == StreamStatus::Active, "summary StreamStatus {:?}", x.stream_status());
                    }
                }
                s.check("ListStreams (StreamNames and StreamSummaries)", p);
            }
        }
    }

    // --- ListShards ----------------------------------------------------------------------------
    match list_shards(s, &stream).await {
        Err(e) => {
            s.fail("ListShards", e);
            cleanup(s, &stream).await;
            return;
        }
        Ok(shards) => {
            let mut p = vec![];
            let ids: Vec<&str> = shards.iter().map(|x| x.id.as_str()).collect();
            expect!(p, ids == ["shardId-000000000000", "shardId-000000000001"], "shard ids {ids:?}");
            p.extend(coverage_problems(shards.iter().collect()));
            for sh in &shards {
                expect!(p, is_seqno(&sh.start_seq), "{}: StartingSequenceNumber {:?}", sh.id, sh.start_seq);
                expect!(p, sh.end_seq.is_none(), "{}: open shard has EndingSequenceNumber {:?}", sh.id, sh.end_seq);
                expect!(p, sh.parent.is_none() && sh.adjacent_parent.is_none(), "{}: unexpected parents", sh.id);
            }
            if shards.len() == 2 {
                let half = 1u128 << 127;
                expect!(p, shards[0].end.abs_diff(half - 1) <= 1, "shard 0 EndingHashKey {} is not about 2^127-1 (uniform split)", shards[0].end);
            }
            s.check("ListShards (2 shards, uniform contiguous hash ranges, open)", p);
            st.shards = shards;
        }
    }
    if st.shards.len() < 2 {
        cleanup(s, &stream).await;
        return;
    }
    match s.client.list_shards().stream_arn(&st.arn).send().await {
        Ok(o) => {
            let n = o.shards().len();
            s.check("ListShards by StreamARN", if n == 2 { vec![] } else { vec![format!("{n} shards")] });
        }
        Err(e) => s.fail("ListShards by StreamARN", err_detail(&e)),
    }
    let shard0 = st.shards[0].id.clone();
    let shard_last = st.shards[st.shards.len() - 1].id.clone();

    // --- PutRecord -----------------------------------------------------------------------------
    // Partition-key routing (MD5), binary data round-trip, and ExplicitHashKey at both ends.
    let mut singles: Vec<(String, Vec<u8>, Option<String>)> = vec![
        ("alpha".into(), b"hello from aws-sdk-rust".to_vec(), None),
        ("bravo".into(), (0u8..=255).collect(), None),
        ("charlie".into(), vec![b'c'; 1000], None),
        ("delta".into(), b"{\"json\": true}".to_vec(), None),
    ];
    singles.push(("ehk-zero".into(), b"explicit hash key 0".to_vec(), Some("0".into())));
    singles.push(("ehk-max".into(), b"explicit hash key 2^128-1".to_vec(), Some(MAX_HASH.to_string())));
    for (pk, data, ehk) in singles {
        let name = match &ehk {
            None => format!("PutRecord (PartitionKey {pk:?} routed by MD5)"),
            Some(h) => format!("PutRecord (ExplicitHashKey {h})"),
        };
        let hk = match &ehk {
            Some(h) => h.parse::<u128>().unwrap(),
            None => md5_hash_key(&pk),
        };
        let want_shard = shard_for(&st.shards, hk).unwrap();
        let res = s
            .client
            .put_record()
            .stream_name(&stream)
            .partition_key(&pk)
            .data(Blob::new(data.clone()))
            .set_explicit_hash_key(ehk.clone())
            .send()
            .await;
        match res {
            Err(e) => s.fail(&name, err_detail(&e)),
            Ok(o) => {
                let mut p = vec![];
                expect!(p, o.shard_id() == want_shard, "ShardId {:?}, expected {want_shard} (hash key {hk})", o.shard_id());
                expect!(p, is_seqno(o.sequence_number()), "SequenceNumber {:?} is not a decimal string", o.sequence_number());
                if p.is_empty() {
                    st.record_put(&mut p, o.shard_id(), Written { pk: pk.clone(), data, seq: o.sequence_number().to_string() }, "PutRecord");
                }
                s.check(&name, p);
            }
        }
    }
    {
        let ok0 = st.written.get(&shard0).map_or(0, Vec::len) > 0;
        let ok1 = st.written.get(&shard_last).map_or(0, Vec::len) > 0;
        if !(ok0 && ok1) {
            s.fail("PutRecord reached both shards", format!("records per shard: {:?}", st.written.iter().map(|(k, v)| (k.clone(), v.len())).collect::<Vec<_>>()));
        }
    }

    // --- PutRecords (500) ----------------------------------------------------------------------
    {
        let name = "PutRecords (500 records: per-record results in order, FailedRecordCount 0)";
        let mut entries = vec![];
        let mut plan = vec![]; // (pk, data, expected shard)
        for i in 0..500u32 {
            let pk = format!("pk-{i}-{}", i * 7919 % 1000);
            let data = format!("batch-{i:04}-{}", "x".repeat((i % 50) as usize)).into_bytes();
            // Every 7th entry pins its shard with an ExplicitHashKey (alternating ends of the space).
            let ehk = if i % 7 == 0 { Some(if i % 14 == 0 { "1".to_string() } else { (MAX_HASH - 1).to_string() }) } else { None };
            let hk = ehk.as_ref().map(|h| h.parse::<u128>().unwrap()).unwrap_or_else(|| md5_hash_key(&pk));
            plan.push((pk.clone(), data.clone(), shard_for(&st.shards, hk).unwrap()));
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(pk)
                    .data(Blob::new(data))
                    .set_explicit_hash_key(ehk)
                    .build()
                    .unwrap(),
            );
        }
        match s.client.put_records().stream_name(&stream).set_records(Some(entries)).send().await {
            Err(e) => s.fail(name, err_detail(&e)),
            Ok(o) => {
                let mut p = vec![];
                expect!(p, o.failed_record_count() == Some(0), "FailedRecordCount {:?}", o.failed_record_count());
                expect!(p, o.records().len() == 500, "{} result entries", o.records().len());
                let mut per_shard: HashMap<String, usize> = HashMap::new();
                for (i, (r, (pk, data, want_shard))) in o.records().iter().zip(plan.into_iter()).enumerate() {
                    if p.len() > 8 {
                        p.push("...".into());
                        break;
                    }
                    expect!(p, r.error_code().is_none(), "entry {i}: ErrorCode {:?} {:?}", r.error_code(), r.error_message());
                    expect!(p, r.shard_id() == Some(want_shard.as_str()), "entry {i} (pk {pk}): ShardId {:?}, expected {want_shard}", r.shard_id());
                    match r.sequence_number() {
                        Some(seq) if is_seqno(seq) => {
                            *per_shard.entry(want_shard.clone()).or_default() += 1;
                            st.record_put(&mut p, &want_shard, Written { pk, data, seq: seq.to_string() }, &format!("entry {i}"));
                        }
                        other => p.push(format!("entry {i}: SequenceNumber {other:?}")),
                    }
                }
                expect!(p, per_shard.len() == 2, "the batch reached {} shard(s): {per_shard:?}", per_shard.len());
                s.check(name, p);
            }
        }
    }

    // --- GetShardIterator TRIM_HORIZON + GetRecords: full read-back ----------------------------
    for sh in [shard0.clone(), shard_last.clone()] {
        let name = format!("GetShardIterator TRIM_HORIZON + GetRecords read-back of {sh} (order, seq, key, data, arrival time)");
        let want = st.written.get(&sh).cloned().unwrap_or_default();
        match iterator(s, &stream, &sh, ShardIteratorType::TrimHorizon, None, None).await {
            Err(e) => s.fail(&name, e),
            Ok(it) => match read_all(s, it, None).await {
                Err(e) => s.fail(&name, e),
                Ok(rr) => {
                    let mut p = compare_records(&rr.records, &want, st.t_start, now_secs());
                    expect!(p, rr.next.is_some(), "NextShardIterator missing on an open shard");
                    expect!(p, rr.millis_behind.iter().all(Option::is_some), "MillisBehindLatest missing: {:?}", rr.millis_behind);
                    expect!(p, rr.millis_behind.last() == Some(&Some(0)), "MillisBehindLatest at the end {:?}, expected 0", rr.millis_behind.last());
                    s.check(&name, p);
                }
            },
        }
    }

    // GetRecords Limit.
    {
        let name = "GetRecords Limit=3 returns 3 records and a NextShardIterator that continues";
        let want = st.written.get(&shard0).cloned().unwrap_or_default();
        let res = async {
            let it = iterator(s, &stream, &shard0, ShardIteratorType::TrimHorizon, None, None).await?;
            let a = s.client.get_records().shard_iterator(&it).limit(3).send().await.map_err(|e| err_detail(&e))?;
            let next = a.next_shard_iterator().ok_or("no NextShardIterator")?.to_string();
            let b = s.client.get_records().shard_iterator(&next).limit(2).send().await.map_err(|e| err_detail(&e))?;
            Ok::<_, String>((a.records().to_vec(), b.records().to_vec()))
        }
        .await;
        match res {
            Err(e) => s.fail(name, e),
            Ok((a, b)) => {
                let mut p = vec![];
                expect!(p, a.len() == 3, "first call returned {} records", a.len());
                expect!(p, b.len() == 2, "second call returned {} records", b.len());
                let seqs: Vec<&str> = a.iter().chain(b.iter()).map(|r| r.sequence_number()).collect();
                let wseqs: Vec<&str> = want.iter().take(5).map(|w| w.seq.as_str()).collect();
                expect!(p, seqs == wseqs, "sequence numbers {seqs:?}, expected {wseqs:?}");
                s.check(name, p);
            }
        }
    }

    // --- AT_SEQUENCE_NUMBER / AFTER_SEQUENCE_NUMBER -------------------------------------------
    for sh in [shard0.clone(), shard_last.clone()] {
        let want = st.written.get(&sh).cloned().unwrap_or_default();
        if want.len() < 3 {
            s.fail(&format!("AT/AFTER_SEQUENCE_NUMBER on {sh}"), format!("only {} records written to {sh}", want.len()));
            continue;
        }
        let k = want.len() / 2;
        for (ty, label, expect_idx) in [
            (ShardIteratorType::AtSequenceNumber, "AT_SEQUENCE_NUMBER", k),
            (ShardIteratorType::AfterSequenceNumber, "AFTER_SEQUENCE_NUMBER", k + 1),
        ] {
            let name = format!("GetShardIterator {label} (middle record of {sh}) + GetRecords");
            let res = async {
                let it = iterator(s, &stream, &sh, ty.clone(), Some(&want[k].seq), None).await?;
                let o = s.client.get_records().shard_iterator(&it).limit(2).send().await.map_err(|e| err_detail(&e))?;
                Ok::<_, String>(o.records().to_vec())
            }
            .await;
            match res {
                Err(e) => s.fail(&name, e),
                Ok(recs) => {
                    let mut p = vec![];
                    match recs.first() {
                        None => p.push("no records".into()),
                        Some(r) => {
                            expect!(p, r.sequence_number() == want[expect_idx].seq, "first record {} (data {:?}), expected {}", r.sequence_number(), String::from_utf8_lossy(r.data().as_ref()), want[expect_idx].seq);
                            expect!(p, r.data().as_ref() == want[expect_idx].data.as_slice(), "data differs");
                        }
                    }
                    s.check(&name, p);
                }
            }
        }
        // AFTER the last record: nothing to read yet.
        let name = format!("GetShardIterator AFTER_SEQUENCE_NUMBER (last record of {sh}) + GetRecords is empty");
        let last = &want[want.len() - 1].seq;
        let res = async {
            let it = iterator(s, &stream, &sh, ShardIteratorType::AfterSequenceNumber, Some(last), None).await?;
            let o = s.client.get_records().shard_iterator(&it).send().await.map_err(|e| err_detail(&e))?;
            Ok::<_, String>((o.records().len(), o.next_shard_iterator().is_some()))
        }
        .await;
        match res {
            Err(e) => s.fail(&name, e),
            Ok((n, has_next)) => {
                let mut p = vec![];
                expect!(p, n == 0, "{n} records");
                expect!(p, has_next, "no NextShardIterator");
                s.check(&name, p);
            }
        }
    }

    // --- LATEST --------------------------------------------------------------------------------
    {
        let name = "GetShardIterator LATEST: empty, then sees only a record put afterwards";
        let res = async {
            let it = iterator(s, &stream, &shard0, ShardIteratorType::Latest, None, None).await?;
            let a = s.client.get_records().shard_iterator(&it).send().await.map_err(|e| err_detail(&e))?;
            let n0 = a.records().len();
            let next = a.next_shard_iterator().ok_or("no NextShardIterator from the first GetRecords")?.to_string();
            let data = b"after LATEST".to_vec();
            let put = s
                .client
                .put_record()
                .stream_name(&stream)
                .partition_key("latest")
                .explicit_hash_key("0")
                .data(Blob::new(data.clone()))
                .send()
                .await
                .map_err(|e| format!("PutRecord: {}", err_detail(&e)))?;
            let b = s.client.get_records().shard_iterator(&next).send().await.map_err(|e| err_detail(&e))?;
            Ok::<_, String>((n0, put, b.records().to_vec(), data))
        }
        .await;
        match res {
            Err(e) => s.fail(name, e),
            Ok((n0, put, recs, data)) => {
                let mut p = vec![];
                expect!(p, n0 == 0, "LATEST iterator returned {n0} old records");
                expect!(p, put.shard_id() == shard0, "PutRecord with ExplicitHashKey 0 went to {}", put.shard_id());
                let seqs: Vec<&str> = recs.iter().map(|r| r.sequence_number()).collect();
                expect!(p, seqs == [put.sequence_number()], "read {seqs:?}, expected [{}]", put.sequence_number());
                expect!(p, recs.first().map(|r| r.data().as_ref() == data.as_slice()).unwrap_or(false), "data differs");
                st.record_put(&mut p, put.shard_id(), Written { pk: "latest".into(), data, seq: put.sequence_number().to_string() }, "PutRecord after LATEST");
                s.check(name, p);
            }
        }
    }

    // --- AT_TIMESTAMP ----------------------------------------------------------------------------
    {
        let want = st.written.get(&shard0).cloned().unwrap_or_default();
        let name = "GetShardIterator AT_TIMESTAMP (before the first put) returns the first record";
        let ts = DateTime::from_secs_f64(st.t_start - 30.0);
        let res = async {
            let it = iterator(s, &stream, &shard0, ShardIteratorType::AtTimestamp, None, Some(ts)).await?;
            let o = s.client.get_records().shard_iterator(&it).limit(1).send().await.map_err(|e| err_detail(&e))?;
            Ok::<_, String>(o.records().to_vec())
        }
        .await;
        match res {
            Err(e) => s.fail(name, e),
            Ok(recs) => {
                let got = recs.first().map(|r| r.sequence_number().to_string());
                let exp = want.first().map(|w| w.seq.clone());
                s.check(name, if got == exp && got.is_some() { vec![] } else { vec![format!("first record {got:?}, expected {exp:?}")] });
            }
        }

        let name = "GetShardIterator AT_TIMESTAMP (between puts) returns the first record at/after it";
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let ts = DateTime::from_secs_f64(now_secs());
        tokio::time::sleep(Duration::from_millis(150)).await;
        let data = b"timestamp marker".to_vec();
        let res = async {
            let put = s
                .client
                .put_record()
                .stream_name(&stream)
                .partition_key("ts-marker")
                .explicit_hash_key("0")
                .data(Blob::new(data.clone()))
                .send()
                .await
                .map_err(|e| format!("PutRecord: {}", err_detail(&e)))?;
            let it = iterator(s, &stream, &shard0, ShardIteratorType::AtTimestamp, None, Some(ts)).await?;
            let o = s.client.get_records().shard_iterator(&it).send().await.map_err(|e| err_detail(&e))?;
            Ok::<_, String>((put, o.records().to_vec()))
        }
        .await;
        match res {
            Err(e) => s.fail(name, e),
            Ok((put, recs)) => {
                let mut p = vec![];
                let seqs: Vec<&str> = recs.iter().map(|r| r.sequence_number()).collect();
                expect!(p, seqs == [put.sequence_number()], "read {seqs:?}, expected only [{}] (timestamp {})", put.sequence_number(), ts.as_secs_f64());
                if let Some(r) = recs.first() {
                    let at = r.approximate_arrival_timestamp().map(|t| t.as_secs_f64());
                    expect!(p, at.map_or(false, |a| a >= ts.as_secs_f64() && (a - now_secs()).abs() < 5.0), "ApproximateArrivalTimestamp {at:?} vs iterator timestamp {}", ts.as_secs_f64());
                }
                st.record_put(&mut p, put.shard_id(), Written { pk: "ts-marker".into(), data, seq: put.sequence_number().to_string() }, "PutRecord ts-marker");
                s.check(name, p);
            }
        }
    }

    // --- Tags -----------------------------------------------------------------------------------
    match s.client.add_tags_to_stream().stream_name(&stream).tags("env", "interop").tags("team", "strait").send().await {
        Err(e) => s.fail("AddTagsToStream", err_detail(&e)),
        Ok(_) => {
            s.pass("AddTagsToStream");
            match s.client.list_tags_for_stream().stream_name(&stream).send().await {
                Err(e) => s.fail("ListTagsForStream", err_detail(&e)),
                Ok(o) => {
                    let mut tags: Vec<(String, Option<String>)> = o.tags().iter().map(|t| (t.key().to_string(), t.value().map(str::to_string))).collect();
                    tags.sort();
                    let want = vec![("env".to_string(), Some("interop".to_string())), ("team".to_string(), Some("strait".to_string()))];
                    let mut p = vec![];
                    expect!(p, tags == want, "tags {tags:?}, expected {want:?}");
                    expect!(p, !o.has_more_tags(), "HasMoreTags true");
                    s.check("ListTagsForStream (returns the added tags)", p);
                }
            }
            let res = async {
                s.client.remove_tags_from_stream().stream_name(&stream).tag_keys("env").send().await.map_err(|e| err_detail(&e))?;
                let o = s.client.list_tags_for_stream().stream_name(&stream).send().await.map_err(|e| err_detail(&e))?;
                Ok::<_, String>(o.tags().iter().map(|t| t.key().to_string()).collect::<Vec<_>>())
            }
            .await;
            match res {
                Err(e) => s.fail("RemoveTagsFromStream + ListTagsForStream", e),
                Ok(keys) => s.check("RemoveTagsFromStream + ListTagsForStream", if keys == ["team"] { vec![] } else { vec![format!("keys {keys:?}")] }),
            }
        }
    }

    // --- Retention ------------------------------------------------------------------------------
    for (inc, hours) in [(true, 48), (false, 24)] {
        let name = format!("{}StreamRetentionPeriod to {hours} h (DescribeStreamSummary reflects it)", if inc { "Increase" } else { "Decrease" });
        let r = if inc {
            s.client.increase_stream_retention_period().stream_name(&stream).retention_period_hours(hours).send().await.map(|_| ()).map_err(|e| err_detail(&e))
        } else {
            s.client.decrease_stream_retention_period().stream_name(&stream).retention_period_hours(hours).send().await.map(|_| ()).map_err(|e| err_detail(&e))
        };
        match r {
            Err(e) => s.fail(&name, e),
            Ok(()) => match wait_active(s, &stream).await {
                Err(e) => s.fail(&name, e),
                Ok(d) => s.check(&name, if d.retention_period_hours() == hours { vec![] } else { vec![format!("RetentionPeriodHours {}", d.retention_period_hours())] }),
            },
        }
    }
    {
        let r = s.client.decrease_stream_retention_period().stream_name(&stream).retention_period_hours(12).send().await;
        expect_typed_error(s, "DecreaseStreamRetentionPeriod to 12 h -> InvalidArgumentException", r, "InvalidArgumentException", |e| e.is_invalid_argument_exception());
    }

    // --- SplitShard -----------------------------------------------------------------------------
    let parent = st.shards[0].clone();
    let new_start = parent.start + (parent.end - parent.start + 1) / 2;
    let split_ok = match s
        .client
        .split_shard()
        .stream_name(&stream)
        .shard_to_split(&parent.id)
        .new_starting_hash_key(new_start.to_string())
        .send()
        .await
    {
        Err(e) => {
            s.fail("SplitShard", err_detail(&e));
            false
        }
        Ok(_) => {
            s.pass("SplitShard");
            true
        }
    };
    if split_ok {
        match wait_active(s, &stream).await {
            Err(e) => s.fail("SplitShard: stream ACTIVE again with 3 open shards", e),
            Ok(d) => s.check(
                "SplitShard: stream ACTIVE again with 3 open shards",
                if d.open_shard_count() == 3 { vec![] } else { vec![format!("OpenShardCount {}", d.open_shard_count())] },
            ),
        }
        let mut children: Vec<ShardInfo> = vec![];
        match list_shards(s, &stream).await {
            Err(e) => s.fail("ListShards after SplitShard", e),
            Ok(shards) => {
                let mut p = vec![];
                expect!(p, shards.len() == 4, "{} shards: {:?}", shards.len(), shards.iter().map(|x| &x.id).collect::<Vec<_>>());
                match shards.iter().find(|x| x.id == parent.id) {
                    None => p.push("parent shard missing".into()),
                    Some(ps) => {
                        expect!(p, ps.end_seq.as_deref().map_or(false, is_seqno), "parent EndingSequenceNumber {:?}", ps.end_seq);
                        expect!(p, ps.start == parent.start && ps.end == parent.end, "parent hash range changed");
                    }
                }
                children = shards.iter().filter(|x| x.parent.as_deref() == Some(parent.id.as_str())).cloned().collect();
                children.sort_by_key(|c| c.start);
                expect!(p, children.len() == 2, "{} children of {}", children.len(), parent.id);
                if children.len() == 2 {
                    expect!(p, children[0].start == parent.start && children[0].end == new_start - 1, "child {} range {}..{}", children[0].id, children[0].start, children[0].end);
                    expect!(p, children[1].start == new_start && children[1].end == parent.end, "child {} range {}..{}", children[1].id, children[1].start, children[1].end);
                    for c in &children {
                        expect!(p, c.end_seq.is_none(), "child {} closed", c.id);
                        expect!(p, c.adjacent_parent.is_none(), "child {} has AdjacentParentShardId", c.id);
                    }
                }
                p.extend(coverage_problems(shards.iter().filter(|x| x.end_seq.is_none()).collect()));
                s.check("ListShards after SplitShard (closed parent, 2 children with split ranges)", p);
                st.shards = shards;
            }
        }

        // Read the parent to its end.
        let name = format!("GetRecords on split parent {} to its end (all records, NextShardIterator absent, ChildShards)", parent.id);
        let want = st.written.get(&parent.id).cloned().unwrap_or_default();
        match iterator(s, &stream, &parent.id, ShardIteratorType::TrimHorizon, None, None).await {
            Err(e) => s.fail(&name, e),
            Ok(it) => match read_closed(s, &stream, &parent.id, it).await {
                Err(e) => s.fail(&name, e),
                Ok(rr) => {
                    let mut p = compare_records(&rr.records, &want, st.t_start, now_secs());
                    expect!(p, rr.next.is_none(), "NextShardIterator still present after {} calls (the closed shard never ended)", rr.calls);
                    let mut ids: Vec<String> = rr.children.iter().map(|c| c.shard_id().to_string()).collect();
                    ids.sort();
                    let mut want_ids: Vec<String> = children.iter().map(|c| c.id.clone()).collect();
                    want_ids.sort();
                    expect!(p, !ids.is_empty() && ids == want_ids, "ChildShards {ids:?}, expected {want_ids:?}");
                    for c in &rr.children {
                        expect!(p, c.parent_shards() == [parent.id.clone()], "child {} ParentShards {:?}", c.shard_id(), c.parent_shards());
                        match (c.hash_key_range(), children.iter().find(|x| x.id == c.shard_id())) {
                            (Some(h), Some(x)) => expect!(p, h.starting_hash_key() == x.start.to_string() && h.ending_hash_key() == x.end.to_string(), "child {} HashKeyRange {:?}", c.shard_id(), h),
                            (None, _) => p.push(format!("child {} has no HashKeyRange", c.shard_id())),
                            _ => {}
                        }
                    }
                    s.check(&name, p);
                }
            },
        }

        // New writes go to the child.
        if children.len() == 2 {
            let name = "PutRecord after SplitShard goes to the child shard, readable there";
            let res = async {
                let put = s
                    .client
                    .put_record()
                    .stream_name(&stream)
                    .partition_key("post-split")
                    .explicit_hash_key("0")
                    .data(Blob::new(b"post split".to_vec()))
                    .send()
                    .await
                    .map_err(|e| format!("PutRecord: {}", err_detail(&e)))?;
                let it = iterator(s, &stream, put.shard_id(), ShardIteratorType::TrimHorizon, None, None).await?;
                let o = s.client.get_records().shard_iterator(&it).send().await.map_err(|e| err_detail(&e))?;
                Ok::<_, String>((put, o.records().to_vec()))
            }
            .await;
            match res {
                Err(e) => s.fail(name, e),
                Ok((put, recs)) => {
                    let mut p = vec![];
                    expect!(p, put.shard_id() == children[0].id, "went to {}, expected {}", put.shard_id(), children[0].id);
                    let seqs: Vec<&str> = recs.iter().map(|r| r.sequence_number()).collect();
                    expect!(p, seqs == [put.sequence_number()], "child holds {seqs:?}, expected [{}]", put.sequence_number());
                    if let Some(ps) = st.shards.iter().find(|x| x.id == parent.id).and_then(|x| x.end_seq.clone()) {
                        expect!(p, seq_lt(&ps, put.sequence_number()) || ps == put.sequence_number(), "child SequenceNumber {} is below the parent's EndingSequenceNumber {ps}", put.sequence_number());
                    }
                    s.check(name, p);
                }
            }
        }
    }

    // --- UpdateShardCount ------------------------------------------------------------------------
    {
        let open_before = st.shards.iter().filter(|x| x.end_seq.is_none()).count() as i32;
        match s.client.update_shard_count().stream_name(&stream).target_shard_count(4).scaling_type(ScalingType::UniformScaling).send().await {
            Err(e) => s.fail("UpdateShardCount to 4 (UNIFORM_SCALING)", err_detail(&e)),
            Ok(o) => {
                let mut p = vec![];
                expect!(p, o.current_shard_count() == Some(open_before), "CurrentShardCount {:?}, expected {open_before}", o.current_shard_count());
                expect!(p, o.target_shard_count() == Some(4), "TargetShardCount {:?}", o.target_shard_count());
                expect!(p, o.stream_name() == Some(stream.as_str()), "StreamName {:?}", o.stream_name());
                s.check("UpdateShardCount to 4 (UNIFORM_SCALING)", p);
                match wait_active(s, &stream).await {
                    Err(e) => s.fail("UpdateShardCount: ACTIVE with 4 open shards covering the hash space", e),
                    Ok(d) => {
                        let mut p = vec![];
                        expect!(p, d.open_shard_count() == 4, "OpenShardCount {}", d.open_shard_count());
                        match list_shards(s, &stream).await {
                            Err(e) => p.push(format!("ListShards: {e}")),
                            Ok(shards) => {
                                let open: Vec<&ShardInfo> = shards.iter().filter(|x| x.end_seq.is_none()).collect();
                                expect!(p, open.len() == 4, "{} open shards in ListShards", open.len());
                                p.extend(coverage_problems(open));
                            }
                        }
                        s.check("UpdateShardCount: ACTIVE with 4 open shards covering the hash space", p);
                    }
                }
            }
        }
    }

    // --- Error cases ------------------------------------------------------------------------------
    let unknown = format!("{stream}-does-not-exist");
    {
        let r = s.client.describe_stream_summary().stream_name(&unknown).send().await;
        expect_typed_error(s, "DescribeStreamSummary unknown stream -> ResourceNotFoundException", r, "ResourceNotFoundException", |e| e.is_resource_not_found_exception());
        let r = s.client.put_record().stream_name(&unknown).partition_key("k").data(Blob::new(b"x".to_vec())).send().await;
        expect_typed_error(s, "PutRecord unknown stream -> ResourceNotFoundException", r, "ResourceNotFoundException", |e| e.is_resource_not_found_exception());
        let r = s.client.get_shard_iterator().stream_name(&unknown).shard_id("shardId-000000000000").shard_iterator_type(ShardIteratorType::TrimHorizon).send().await;
        expect_typed_error(s, "GetShardIterator unknown stream -> ResourceNotFoundException", r, "ResourceNotFoundException", |e| e.is_resource_not_found_exception());
        let r = s.client.get_shard_iterator().stream_name(&stream).shard_id("shardId-000000000099").shard_iterator_type(ShardIteratorType::TrimHorizon).send().await;
        expect_typed_error(s, "GetShardIterator unknown shard -> ResourceNotFoundException", r, "ResourceNotFoundException", |e| e.is_resource_not_found_exception());
        let r = s.client.create_stream().stream_name(&stream).shard_count(1).send().await;
        expect_typed_error(s, "CreateStream existing name -> ResourceInUseException", r, "ResourceInUseException", |e| e.is_resource_in_use_exception());
    }
    match iterator(s, &stream, &shard_last, ShardIteratorType::TrimHorizon, None, None).await {
        Err(e) => s.fail("GetRecords tampered iterator -> InvalidArgumentException", format!("could not get an iterator: {e}")),
        Ok(it) => {
            // Flip one character (keeping the same alphabet class) at a quarter, the middle and near the end:
            // whatever the token layout, each must be rejected (not read from some other position).
            let n = it.chars().count();
            for (label, pos) in [("a quarter in", n / 4), ("the middle", n / 2), ("near the end", n.saturating_sub(2))] {
                let mut chars: Vec<char> = it.chars().collect();
                chars[pos] = match chars[pos] {
                    'A' => 'B',
                    'a' => 'b',
                    '0' => '1',
                    c if c.is_ascii_digit() => '0',
                    c if c.is_ascii_lowercase() => 'a',
                    _ => 'A',
                };
                let tampered: String = chars.into_iter().collect();
                let r = s.client.get_records().shard_iterator(&tampered).send().await;
                let name = format!("GetRecords tampered iterator (char {pos} of {n}, {label}, flipped) -> InvalidArgumentException");
                expect_typed_error(s, &name, r, "InvalidArgumentException", |e| e.is_invalid_argument_exception());
            }
            let r = s.client.get_records().shard_iterator("bm90LWFuLWl0ZXJhdG9yLWF0LWFsbA==").send().await;
            expect_typed_error(s, "GetRecords garbage iterator -> InvalidArgumentException", r, "InvalidArgumentException", |e| e.is_invalid_argument_exception());
            // The untampered iterator still works.
            match s.client.get_records().shard_iterator(&it).limit(1).send().await {
                Ok(o) => s.check("GetRecords original iterator still valid", if o.records().len() == 1 { vec![] } else { vec![format!("{} records", o.records().len())] }),
                Err(e) => s.fail("GetRecords original iterator still valid", err_detail(&e)),
            }
        }
    }

    // --- DeleteStream -----------------------------------------------------------------------------
    match s.client.delete_stream().stream_name(&stream).send().await {
        Err(e) => s.fail("DeleteStream", err_detail(&e)),
        Ok(_) => {
            s.pass("DeleteStream");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let r = s.client.describe_stream_summary().stream_name(&stream).send().await;
                let still_deleting = matches!(&r, Ok(o) if o.stream_description_summary().map(|d| *d.stream_status() == StreamStatus::Deleting).unwrap_or(false));
                if still_deleting && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                expect_typed_error(s, "DescribeStreamSummary after DeleteStream -> ResourceNotFoundException", r, "ResourceNotFoundException", |e| e.is_resource_not_found_exception());
                break;
            }
            match s.client.wait_until_stream_not_exists().stream_name(&stream).wait(Duration::from_secs(30)).await {
                Ok(_) => s.pass("waiter StreamNotExists"),
                Err(e) => s.fail("waiter StreamNotExists", format!("{}", DisplayErrorContext(&e))),
            }
            match s.client.list_streams().limit(1000).send().await {
                Ok(o) => s.check("ListStreams after DeleteStream lacks the stream", if o.stream_names().contains(&stream) { vec!["still listed".into()] } else { vec![] }),
                Err(e) => s.fail("ListStreams after DeleteStream lacks the stream", err_detail(&e)),
            }
        }
    }
}

/// Best-effort deletion when the run is aborted early.
async fn cleanup(s: &Suite, stream: &str) {
    let _ = s.client.delete_stream().stream_name(stream).enforce_consumer_deletion(true).send().await;
}

// After the helpers and the expect! macro, which it uses.
mod efo;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let endpoint = std::env::var("STRAIT_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4567".to_string());
    println!("# aws-sdk-kinesis interop against {endpoint}");
    let capture = Capture::default();
    let config = kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("AKIDSTRAITINTEROP", "strait-interop-secret", None, None, "static"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .interceptor(capture.clone())
        .build();
    let mut s = Suite { client: Client::from_conf(config), capture, passed: 0, failed: 0 };
    run(&mut s).await;
    efo::run(&mut s).await;
    println!("{} passed, {} failed", s.passed, s.failed);
    std::process::exit(if s.failed == 0 { 0 } else { 1 });
}
