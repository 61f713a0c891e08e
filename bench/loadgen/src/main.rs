//! Kinesis Data Streams load generator for the strait benchmark.
//!
//! Speaks the awsJson1.1 protocol over plain HTTP/1.1 (keep-alive, one hyper-util legacy client
//! with a pool of up to `--connections` connections). Requests carry a syntactically valid but
//! unsigned SigV4 `Authorization` header; the servers under test do not verify signatures.
//!
//! Phases:
//!   1. CreateStream (`--shards`) and poll DescribeStreamSummary until ACTIVE
//!      (skipped with `--skip-create`).
//!   2. Put: `--connections` concurrent workers send PutRecords of `--batch` records of
//!      `--record-size` random bytes with random partition keys until `--records` records have
//!      been accepted (records reported failed through FailedRecordCount are re-sent).
//!      With `--steps K` the put phase is cut into K equal steps and one JSON line is printed
//!      per step.
//!   3. Get (skipped with `--skip-get`): every shard is read in parallel from TRIM_HORIZON with
//!      GetRecords (`--get-limit`) until an empty, caught-up response. The count read must equal
//!      the count put (plus `--expect-existing` for a stream that already held records), each
//!      record's decoded data must be `--record-size` bytes, and sequence numbers must be
//!      strictly increasing per shard.
//!
//! With `--server-pid PID` the CPU time (utime+stime of PID and all its descendants) is sampled
//! around each phase and reported.
//!
//! Output: JSON lines on stdout (`"kind":"step"` per put step, then one `"kind":"result"`).
//! Progress and errors go to stderr. Exit status 0 only when the verification passed.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

const USAGE: &str = "\
loadgen: Kinesis load generator (JSON 1.1, HTTP/1.1, loopback only)

  --endpoint URL        http://127.0.0.1:4567 (default)
  --stream NAME         stream name (default loadgen-<unix-millis>)
  --shards N            shards to create (default 4)
  --records N           records to put (default 1000000)
  --connections N       concurrent PutRecords workers / connections (default 16)
  --record-size N       bytes of random data per record (default 100)
  --batch N             records per PutRecords (default 500, max 500)
  --get-limit N         GetRecords Limit (default 10000)
  --get-connections N   maximum shards read concurrently (default: all shards)
  --steps K             split the put phase into K steps, one JSON line each (default 1)
  --skip-create         use an existing ACTIVE stream
  --skip-get            do not read back
  --expect-existing N   records already in the stream before this run (for the get check)
  --server-pid PID      sample CPU time of PID and its descendants per phase
  --seed N              RNG seed (default: time based)
  --quiet               no progress on stderr
";

#[derive(Clone, Debug)]
struct Opts {
    endpoint: String,
    stream: String,
    shards: u32,
    records: u64,
    connections: usize,
    record_size: usize,
    batch: usize,
    get_limit: u32,
    get_connections: usize,
    steps: u64,
    skip_create: bool,
    skip_get: bool,
    expect_existing: u64,
    server_pid: Option<u32>,
    seed: u64,
    quiet: bool,
}

fn parse_opts() -> Res<Opts> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let mut o = Opts {
        endpoint: "http://127.0.0.1:4567".into(),
        stream: format!("loadgen-{now_ms}"),
        shards: 4,
        records: 1_000_000,
        connections: 16,
        record_size: 100,
        batch: 500,
        get_limit: 10_000,
        get_connections: 0,
        steps: 1,
        skip_create: false,
        skip_get: false,
        expect_existing: 0,
        server_pid: None,
        seed: now_ms ^ 0x9E37_79B9_7F4A_7C15,
        quiet: false,
    };
    let mut args = std::env::args().skip(1);
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
            "--stream" => o.stream = val("--stream")?,
            "--shards" => o.shards = val("--shards")?.parse()?,
            "--records" => o.records = val("--records")?.parse()?,
            "--connections" => o.connections = val("--connections")?.parse()?,
            "--record-size" => o.record_size = val("--record-size")?.parse()?,
            "--batch" => o.batch = val("--batch")?.parse()?,
            "--get-limit" => o.get_limit = val("--get-limit")?.parse()?,
            "--get-connections" => o.get_connections = val("--get-connections")?.parse()?,
            "--steps" => o.steps = val("--steps")?.parse()?,
            "--expect-existing" => o.expect_existing = val("--expect-existing")?.parse()?,
            "--server-pid" => o.server_pid = Some(val("--server-pid")?.parse()?),
            "--seed" => o.seed = val("--seed")?.parse()?,
            "--skip-create" => o.skip_create = true,
            "--skip-get" => o.skip_get = true,
            "--quiet" => o.quiet = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if o.batch == 0 || o.batch > 500 {
        return Err("--batch must be 1..=500".into());
    }
    if o.connections == 0 || o.shards == 0 || o.steps == 0 || o.record_size == 0 {
        return Err("--connections, --shards, --steps and --record-size must be > 0".into());
    }
    if !o.endpoint.contains("://") {
        o.endpoint = format!("http://{}", o.endpoint);
    }
    let uri: Uri = o.endpoint.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err("only plain http:// endpoints are supported".into());
    }
    match uri.host() {
        Some("127.0.0.1") | Some("localhost") | Some("[::1]") | Some("::1") => {}
        other => return Err(format!("refusing non-loopback endpoint host {other:?}").into()),
    }
    Ok(o)
}

// ------------------------------------------------------------------------------------------
// small helpers

/// xorshift64*: fast, good enough for payloads and partition keys.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` for X-Amz-Date.
fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil_from_days (H. Hinnant)
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
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// CPU seconds (utime+stime) of `pid` and all its live descendants.
fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tck = if tck > 0 { tck as f64 } else { 100.0 };
    // (pid, ppid, ticks) of every process
    let mut procs: Vec<(u32, u32, u64)> = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(rp) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[rp + 2..].split_whitespace().collect();
        // after ")": state(0) ppid(1) ... utime(11) stime(12)
        if f.len() < 13 {
            continue;
        }
        let ppid = f[1].parse().unwrap_or(0);
        let ticks = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        procs.push((p, ppid, ticks));
    }
    if !procs.iter().any(|&(p, _, _)| p == pid) {
        return None;
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for &(p, pp, _) in &procs {
            if pp == parent && !tree.contains(&p) {
                tree.push(p);
            }
        }
        i += 1;
    }
    let ticks: u64 = procs
        .iter()
        .filter(|(p, _, _)| tree.contains(p))
        .map(|&(_, _, t)| t)
        .sum();
    Some(ticks as f64 / tck)
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
    /// AWS-shaped error response.
    Aws { status: StatusCode, typ: String, message: String },
    Transport(BoxError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Aws { status, typ, message } => write!(f, "HTTP {status} {typ}: {message}"),
            CallError::Transport(e) => write!(f, "transport error: {e}"),
        }
    }
}
impl std::error::Error for CallError {}

impl CallError {
    fn is_throttle(&self) -> bool {
        matches!(self, CallError::Aws { typ, .. }
            if typ.contains("ProvisionedThroughputExceeded") || typ.contains("LimitExceeded")
                || typ.contains("Throttling"))
    }
    fn typ(&self) -> &str {
        match self {
            CallError::Aws { typ, .. } => typ,
            CallError::Transport(_) => "",
        }
    }
}

impl Kinesis {
    fn new(endpoint: &str, pool: usize) -> Res<Self> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(120))
            .build(http);
        let date = amz_date(SystemTime::now());
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDLOADGEN000000000/{}/us-east-1/kinesis/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
            &date[..8],
            "0".repeat(64)
        );
        Ok(Kinesis { client, uri: endpoint.parse()?, authorization, date })
    }

    async fn call(&self, op: &str, body: Bytes) -> Result<Bytes, CallError> {
        let req = Request::post(self.uri.clone())
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("Kinesis_20131202.{op}"))
            .header("x-amz-date", &self.date)
            .header("authorization", &self.authorization)
            .body(Full::new(body))
            .map_err(|e| CallError::Transport(e.into()))?;
        let resp = self.client.request(req).await.map_err(|e| CallError::Transport(e.into()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Transport(e.into()))?
            .to_bytes();
        if status.is_success() {
            return Ok(bytes);
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let typ = v
            .get("__type")
            .and_then(Value::as_str)
            .unwrap_or("<no __type>")
            .rsplit('#')
            .next()
            .unwrap_or("")
            .to_string();
        let message = v
            .get("message")
            .or_else(|| v.get("Message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned());
        Err(CallError::Aws { status, typ, message })
    }

    async fn call_json(&self, op: &str, body: Value) -> Result<Value, CallError> {
        let b = self.call(op, Bytes::from(body.to_string())).await?;
        if b.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&b).map_err(|e| CallError::Transport(e.into()))
    }

    /// Retries throttling errors with exponential backoff (up to ~60 s in total).
    async fn call_retry(&self, op: &str, body: Bytes) -> Result<(Bytes, u32), CallError> {
        let mut delay = Duration::from_millis(20);
        let mut throttles = 0u32;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.call(op, body.clone()).await {
                Ok(b) => return Ok((b, throttles)),
                Err(e) if e.is_throttle() && Instant::now() < deadline => {
                    throttles += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(1000));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// phase 1: create

async fn create_stream(k: &Kinesis, o: &Opts) -> Res<f64> {
    let t0 = Instant::now();
    k.call_json("CreateStream", json!({"StreamName": o.stream, "ShardCount": o.shards}))
        .await
        .map_err(|e| format!("CreateStream {}: {e}", o.stream))?;
    wait_active(k, &o.stream).await?;
    Ok(t0.elapsed().as_secs_f64())
}

async fn wait_active(k: &Kinesis, stream: &str) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut use_summary = true;
    loop {
        let (op, path) = if use_summary {
            ("DescribeStreamSummary", "StreamDescriptionSummary")
        } else {
            ("DescribeStream", "StreamDescription")
        };
        match k.call_json(op, json!({"StreamName": stream})).await {
            Ok(v) => {
                let status = v[path]["StreamStatus"].as_str().unwrap_or("");
                if status == "ACTIVE" {
                    return Ok(());
                }
            }
            Err(e) if use_summary && (e.typ().contains("UnknownOperation") || e.typ().contains("InvalidAction")) => {
                use_summary = false;
                continue;
            }
            Err(e) if e.typ().contains("ResourceNotFound") || e.is_throttle() => {}
            Err(e) => return Err(format!("{op}: {e}").into()),
        }
        if Instant::now() > deadline {
            return Err(format!("stream {stream} not ACTIVE after 120 s").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------------------------------------
// phase 2: put

#[derive(Deserialize)]
struct PutRecordsOut {
    #[serde(rename = "FailedRecordCount", default)]
    failed: u64,
    #[serde(rename = "Records", default)]
    _records: IgnoredAny,
}

struct PutShared {
    target: u64,
    claimed: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    throttled: AtomicU64,
}

impl PutShared {
    /// Claims up to `batch` records of the remaining target; 0 when nothing is left.
    fn claim(&self, batch: u64) -> u64 {
        let mut cur = self.claimed.load(Ordering::Relaxed);
        loop {
            let n = batch.min(self.target.saturating_sub(cur));
            if n == 0 {
                return 0;
            }
            match self.claimed.compare_exchange_weak(cur, cur + n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return n,
                Err(c) => cur = c,
            }
        }
    }
}

fn build_put_body(stream: &str, n: u64, size: usize, rng: &mut Rng, raw: &mut Vec<u8>, out: &mut String) {
    out.clear();
    out.push_str("{\"StreamName\":");
    out.push_str(&serde_json::to_string(stream).unwrap());
    out.push_str(",\"Records\":[");
    raw.resize(size, 0);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        rng.fill(raw);
        out.push_str("{\"Data\":\"");
        base64::engine::general_purpose::STANDARD.encode_string(&raw[..], out);
        let pk = rng.next();
        let _ = write!(out, "\",\"PartitionKey\":\"{pk:016x}\"}}");
    }
    out.push_str("]}");
}

async fn put_worker(k: Arc<Kinesis>, o: Arc<Opts>, sh: Arc<PutShared>, id: u64) -> Res<Vec<f64>> {
    let mut rng = Rng::new(o.seed.wrapping_add(id.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let mut raw = Vec::with_capacity(o.record_size);
    let mut body = String::with_capacity(o.batch * (o.record_size * 4 / 3 + 64));
    let mut lat_ms = Vec::new();
    loop {
        let n = sh.claim(o.batch as u64);
        if n == 0 {
            return Ok(lat_ms);
        }
        build_put_body(&o.stream, n, o.record_size, &mut rng, &mut raw, &mut body);
        let t = Instant::now();
        let res = k.call_retry("PutRecords", Bytes::copy_from_slice(body.as_bytes())).await;
        let (resp, throttles) = match res {
            Ok(r) => r,
            Err(e) => return Err(format!("PutRecords: {e}").into()),
        };
        lat_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        sh.requests.fetch_add(1, Ordering::Relaxed);
        sh.throttled.fetch_add(throttles as u64, Ordering::Relaxed);
        let out: PutRecordsOut =
            serde_json::from_slice(&resp).map_err(|e| format!("PutRecords response: {e}"))?;
        let failed = out.failed.min(n);
        sh.ok.fetch_add(n - failed, Ordering::Relaxed);
        if failed > 0 {
            sh.failed.fetch_add(failed, Ordering::Relaxed);
            // give the failed records back so they are sent again
            sh.claimed.fetch_sub(failed, Ordering::Relaxed);
        }
    }
}

struct PutResult {
    ok: u64,
    failed: u64,
    requests: u64,
    throttled: u64,
    elapsed: f64,
    lat_ms: Vec<f64>,
}

async fn put_phase(k: &Arc<Kinesis>, o: &Arc<Opts>, records: u64, seed_off: u64) -> Res<PutResult> {
    let sh = Arc::new(PutShared {
        target: records,
        claimed: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
    });
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for id in 0..o.connections as u64 {
        handles.push(tokio::spawn(put_worker(k.clone(), o.clone(), sh.clone(), seed_off * 1_000_003 + id)));
    }
    let progress = if o.quiet {
        None
    } else {
        let sh = sh.clone();
        Some(tokio::spawn(async move {
            let mut last = 0u64;
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let ok = sh.ok.load(Ordering::Relaxed);
                eprintln!(
                    "loadgen: put {ok}/{} ({:.0} rec/s over the last 5 s, {:.1} s elapsed)",
                    sh.target,
                    (ok - last) as f64 / 5.0,
                    t0.elapsed().as_secs_f64()
                );
                last = ok;
            }
        }))
    };
    let mut lat_ms = Vec::new();
    let mut first_err = None;
    for h in handles {
        match h.await {
            Ok(Ok(l)) => lat_ms.extend(l),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(e.into());
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(PutResult {
        ok: sh.ok.load(Ordering::Relaxed),
        failed: sh.failed.load(Ordering::Relaxed),
        requests: sh.requests.load(Ordering::Relaxed),
        throttled: sh.throttled.load(Ordering::Relaxed),
        elapsed,
        lat_ms,
    })
}

// ------------------------------------------------------------------------------------------
// phase 3: get

#[derive(Deserialize)]
struct GetRecordsOut<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<RecordOut<'a>>,
    #[serde(rename = "NextShardIterator", default)]
    next: Option<String>,
    #[serde(rename = "MillisBehindLatest", default)]
    behind: Option<u64>,
}

#[derive(Deserialize)]
struct RecordOut<'a> {
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "SequenceNumber", borrow)]
    seq: Cow<'a, str>,
}

#[derive(Default, Debug)]
struct ShardRead {
    records: u64,
    bad_size: u64,
    order_violations: u64,
    requests: u64,
    throttled: u64,
}

/// Compares two decimal sequence numbers numerically.
fn seq_gt(a: &str, b: &str) -> bool {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    (a.len(), a) > (b.len(), b)
}

async fn read_shard(k: Arc<Kinesis>, o: Arc<Opts>, shard: String) -> Res<ShardRead> {
    let it = k
        .call_json(
            "GetShardIterator",
            json!({"StreamName": o.stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await
        .map_err(|e| format!("GetShardIterator {shard}: {e}"))?;
    let mut iter = it["ShardIterator"]
        .as_str()
        .ok_or_else(|| format!("GetShardIterator {shard}: no ShardIterator"))?
        .to_string();
    let mut r = ShardRead::default();
    let mut last_seq = String::new();
    let mut buf = Vec::with_capacity(o.record_size + 8);
    loop {
        let body = json!({"ShardIterator": iter, "Limit": o.get_limit}).to_string();
        let (resp, throttles) = k
            .call_retry("GetRecords", Bytes::from(body))
            .await
            .map_err(|e| format!("GetRecords {shard}: {e}"))?;
        r.requests += 1;
        r.throttled += throttles as u64;
        let out: GetRecordsOut =
            serde_json::from_slice(&resp).map_err(|e| format!("GetRecords {shard} response: {e}"))?;
        let n = out.records.len() as u64;
        for rec in &out.records {
            buf.clear();
            let ok = base64::engine::general_purpose::STANDARD.decode_vec(rec.data.as_bytes(), &mut buf).is_ok();
            if !ok || buf.len() != o.record_size {
                r.bad_size += 1;
            }
            if !last_seq.is_empty() && !seq_gt(&rec.seq, &last_seq) {
                r.order_violations += 1;
            }
            last_seq.clear();
            last_seq.push_str(&rec.seq);
        }
        r.records += n;
        let caught_up = out.behind.unwrap_or(0) == 0;
        match out.next {
            None => break, // closed shard, fully read
            Some(next) => iter = next,
        }
        if n == 0 && caught_up {
            break;
        }
    }
    Ok(r)
}

async fn list_shards(k: &Kinesis, stream: &str) -> Res<Vec<String>> {
    let mut shards = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let body = match &next {
            Some(t) => json!({"NextToken": t}),
            None => json!({"StreamName": stream}),
        };
        match k.call_json("ListShards", body).await {
            Ok(v) => {
                for s in v["Shards"].as_array().into_iter().flatten() {
                    if let Some(id) = s["ShardId"].as_str() {
                        shards.push(id.to_string());
                    }
                }
                next = v["NextToken"].as_str().map(str::to_string);
                if next.is_none() {
                    return Ok(shards);
                }
            }
            Err(e) if shards.is_empty() && (e.typ().contains("UnknownOperation") || e.typ().contains("InvalidAction")) => {
                // old emulator: DescribeStream with paging
                let mut start: Option<String> = None;
                loop {
                    let mut b = json!({"StreamName": stream});
                    if let Some(s) = &start {
                        b["ExclusiveStartShardId"] = json!(s);
                    }
                    let v = k.call_json("DescribeStream", b).await.map_err(|e| format!("DescribeStream: {e}"))?;
                    let d = &v["StreamDescription"];
                    for s in d["Shards"].as_array().into_iter().flatten() {
                        if let Some(id) = s["ShardId"].as_str() {
                            shards.push(id.to_string());
                        }
                    }
                    if d["HasMoreShards"].as_bool() != Some(true) {
                        return Ok(shards);
                    }
                    start = shards.last().cloned();
                }
            }
            Err(e) => return Err(format!("ListShards: {e}").into()),
        }
    }
}

struct GetResult {
    shards: usize,
    read: ShardRead,
    elapsed: f64,
}

async fn get_phase(k: &Arc<Kinesis>, o: &Arc<Opts>) -> Res<GetResult> {
    let t0 = Instant::now();
    let shards = list_shards(k, &o.stream).await?;
    let limit = if o.get_connections == 0 { shards.len().max(1) } else { o.get_connections };
    let sem = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut handles = Vec::new();
    for s in &shards {
        let (k, o, s, sem) = (k.clone(), o.clone(), s.clone(), sem.clone());
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            read_shard(k, o, s).await
        }));
    }
    let mut total = ShardRead::default();
    for h in handles {
        let r = h.await??;
        total.records += r.records;
        total.bad_size += r.bad_size;
        total.order_violations += r.order_violations;
        total.requests += r.requests;
        total.throttled += r.throttled;
    }
    Ok(GetResult { shards: shards.len(), read: total, elapsed: t0.elapsed().as_secs_f64() })
}

// ------------------------------------------------------------------------------------------

async fn run(o: Opts) -> Res<bool> {
    let o = Arc::new(o);
    let pool = o.connections.max(o.get_connections).max(o.shards as usize) + 2;
    let k = Arc::new(Kinesis::new(&o.endpoint, pool)?);
    let cpu = |o: &Opts| o.server_pid.and_then(tree_cpu_seconds);
    let say = |m: String| {
        if !o.quiet {
            eprintln!("loadgen: {m}");
        }
    };

    let mut create_elapsed = None;
    if !o.skip_create {
        say(format!("creating stream {} with {} shards at {}", o.stream, o.shards, o.endpoint));
        create_elapsed = Some(create_stream(&k, &o).await?);
    } else {
        wait_active(&k, &o.stream).await?;
    }

    // put, in steps
    let steps = o.steps;
    let mut put = PutResult { ok: 0, failed: 0, requests: 0, throttled: 0, elapsed: 0.0, lat_ms: Vec::new() };
    let mut put_cpu = 0.0f64;
    let mut cpu_known = o.server_pid.is_some();
    let mut done = 0u64;
    say(format!(
        "put phase: {} records of {} bytes, batch {}, {} connections",
        o.records, o.record_size, o.batch, o.connections
    ));
    for step in 0..steps {
        let target = o.records * (step + 1) / steps - done;
        if target == 0 {
            continue;
        }
        let c0 = cpu(&o);
        let r = put_phase(&k, &o, target, step).await?;
        let c1 = cpu(&o);
        let step_cpu = match (c0, c1) {
            (Some(a), Some(b)) => Some(b - a),
            _ => {
                cpu_known = false;
                None
            }
        };
        put_cpu += step_cpu.unwrap_or(0.0);
        done += r.ok;
        if steps > 1 {
            let mut lat = r.lat_ms.clone();
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let line = json!({
                "kind": "step",
                "step": step + 1,
                "steps": steps,
                "stream_records_before": o.expect_existing + done - r.ok,
                "stream_records_after": o.expect_existing + done,
                "records_put": r.ok,
                "put_elapsed_s": round3(r.elapsed),
                "put_records_per_s": round3(r.ok as f64 / r.elapsed),
                "put_latency_ms_p50": round3(percentile(&lat, 50.0)),
                "put_latency_ms_p99": round3(percentile(&lat, 99.0)),
                "server_cpu_s": step_cpu.map(round3),
                "server_cpu_us_per_record": step_cpu.map(|c| round3(c * 1e6 / r.ok.max(1) as f64)),
            });
            println!("{line}");
        }
        put.ok += r.ok;
        put.failed += r.failed;
        put.requests += r.requests;
        put.throttled += r.throttled;
        put.elapsed += r.elapsed;
        put.lat_ms.extend(r.lat_ms);
    }
    put.lat_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    say(format!("put {} records in {:.2} s ({:.0} rec/s)", put.ok, put.elapsed, put.ok as f64 / put.elapsed));

    let mut result = json!({
        "kind": "result",
        "endpoint": o.endpoint,
        "stream": o.stream,
        "shards": o.shards,
        "connections": o.connections,
        "record_size": o.record_size,
        "batch": o.batch,
        "records_requested": o.records,
        "create_elapsed_s": create_elapsed.map(round3),
        "records_put": put.ok,
        "put_failed_records": put.failed,
        "put_requests": put.requests,
        "put_throttled": put.throttled,
        "put_elapsed_s": round3(put.elapsed),
        "put_records_per_s": round3(put.ok as f64 / put.elapsed),
        "put_mb_per_s": round3(put.ok as f64 * o.record_size as f64 / put.elapsed / 1e6),
        "put_latency_ms_p50": round3(percentile(&put.lat_ms, 50.0)),
        "put_latency_ms_p99": round3(percentile(&put.lat_ms, 99.0)),
        "put_latency_ms_max": round3(put.lat_ms.last().copied().unwrap_or(0.0)),
        "put_server_cpu_s": if cpu_known { Some(round3(put_cpu)) } else { None },
    });

    let mut verified = put.ok == o.records;
    if !o.skip_get {
        say(format!("get phase: reading every shard from TRIM_HORIZON, Limit {}", o.get_limit));
        let c0 = cpu(&o);
        let g = get_phase(&k, &o).await?;
        let c1 = cpu(&o);
        let expected = o.expect_existing + put.ok;
        let ok = g.read.records == expected && g.read.bad_size == 0 && g.read.order_violations == 0;
        verified &= ok;
        say(format!(
            "read {} records (expected {expected}) from {} shards in {:.2} s ({:.0} rec/s){}",
            g.read.records,
            g.shards,
            g.elapsed,
            g.read.records as f64 / g.elapsed,
            if ok { "" } else { "  VERIFICATION FAILED" }
        ));
        let m = result.as_object_mut().unwrap();
        m.insert("records_expected".into(), json!(expected));
        m.insert("records_read".into(), json!(g.read.records));
        m.insert("get_requests".into(), json!(g.read.requests));
        m.insert("get_throttled".into(), json!(g.read.throttled));
        m.insert("get_elapsed_s".into(), json!(round3(g.elapsed)));
        m.insert("get_records_per_s".into(), json!(round3(g.read.records as f64 / g.elapsed)));
        m.insert("bad_size_records".into(), json!(g.read.bad_size));
        m.insert("order_violations".into(), json!(g.read.order_violations));
        m.insert(
            "get_server_cpu_s".into(),
            json!(match (c0, c1) {
                (Some(a), Some(b)) => Some(round3(b - a)),
                _ => None,
            }),
        );
    }
    result["verified"] = json!(verified);
    println!("{result}");
    Ok(verified)
}

fn main() -> ExitCode {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(o)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: verification failed");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("loadgen: error: {e}");
            ExitCode::from(3)
        }
    }
}
