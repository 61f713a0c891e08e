//! strait as an AWS client (Kinesis in CBOR or JSON, and DynamoDB for KCL lease tables and
//! state, in JSON): typed calls over a signed upstream connection, and the answers'
//! exceptions as an error the Kinesis `Log` can sort (retry, refuse, not found). The shapes come from `protocol::kinesis`; the
//! few stream-admin shapes only a client needs are here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::upstream::{Upstream, UpstreamError};
use crate::backend::{Refusal, StorageError};
use crate::protocol::kinesis::cbor_records::RecordsPage;
use crate::protocol::kinesis::codec::{self, Protocol, Timestamp};

/// The largest answer read: GetRecords returns at most 10 MiB of data, which base64 and
/// 10,000 partition keys of up to 256 characters take to about 17 MiB of JSON.
const MAX_ANSWER_BYTES: usize = 24 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The upstream answered with an exception.
    #[error("{op}: {code}: {message}")]
    Exception {
        op: &'static str,
        code: String,
        message: String,
        status: u16,
    },
    #[error("{op}: {source}")]
    Upstream {
        op: &'static str,
        #[source]
        source: UpstreamError,
    },
    /// An answer that is not what the operation returns.
    #[error("{op}: unreadable answer from the upstream: {why}")]
    Garbled { op: &'static str, why: String },
}

impl CallError {
    /// The exception's name, without the namespace some services put before `#`.
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Exception { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code() == Some(code)
    }

    /// Worth asking again after a pause: throttling, a server fault, or no answer.
    /// LimitExceededException is a rate on record and read calls, but a quota (shards,
    /// consumers) on the calls that create things.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Exception {
                op, code, status, ..
            } => {
                let quota = matches!(
                    *op,
                    "CreateStream" | "RegisterStreamConsumer" | "UpdateShardCount"
                );
                *status >= 500
                    || (code == "LimitExceededException" && !quota)
                    || matches!(
                        code.as_str(),
                        "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "KMSThrottlingException"
                    )
            }
            CallError::Upstream { .. } => true,
            CallError::Garbled { .. } => false,
        }
    }
}

#[derive(Deserialize)]
struct ExceptionBody {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(alias = "Message", default)]
    message: String,
}

/// An exception document in `protocol`; anything else as its first 200 bytes of text.
fn exception(protocol: Protocol, body: &[u8]) -> ExceptionBody {
    codec::decode(protocol, body).unwrap_or(ExceptionBody {
        kind: String::new(),
        message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    })
}

/// The message of an exception document in `protocol` (an event stream's exception event).
pub fn exception_message(protocol: Protocol, body: &[u8]) -> String {
    exception(protocol, body).message
}

/// What an AWS client encodes its calls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Json,
    Cbor,
    /// CBOR, unless the upstream answers it with an error in anything else before it has
    /// answered once in CBOR (moto answers CBOR with an HTML 500): then JSON for good.
    CborOrJson,
}

/// One AWS JSON-or-CBOR protocol: its operations' target prefix and encodings.
pub struct AwsClient {
    upstream: Arc<Upstream>,
    target_prefix: &'static str,
    json_content_type: &'static str,
    /// Calls go out in CBOR while this holds.
    cbor: AtomicBool,
    /// Whether an error answer that is not CBOR turns `cbor` off: with `Wire::CborOrJson`,
    /// until the upstream has answered once in CBOR. After that such an answer is a proxy's
    /// or a load balancer's (AWS's front end answers a 503 in JSON whatever was sent), not
    /// an upstream without CBOR.
    fallback: AtomicBool,
    /// `Wire::CborOrJson`: a CBOR answer that cannot be read also turns `cbor` off, whenever
    /// it comes (kinesalite cuts CBOR answers off at 16 KiB; JSON is whole).
    auto: bool,
}

/// strait's Kinesis client.
pub type KinesisClient = AwsClient;

impl AwsClient {
    pub fn new(upstream: Arc<Upstream>, wire: Wire) -> AwsClient {
        AwsClient {
            upstream,
            target_prefix: "Kinesis_20131202",
            json_content_type: "application/x-amz-json-1.1",
            cbor: AtomicBool::new(wire != Wire::Json),
            fallback: AtomicBool::new(wire == Wire::CborOrJson),
            auto: wire == Wire::CborOrJson,
        }
    }

    /// DynamoDB, for KCL lease tables: JSON only.
    pub fn dynamodb(upstream: Arc<Upstream>) -> AwsClient {
        AwsClient {
            upstream,
            target_prefix: "DynamoDB_20120810",
            json_content_type: "application/x-amz-json-1.0",
            cbor: AtomicBool::new(false),
            fallback: AtomicBool::new(false),
            auto: false,
        }
    }

    /// The encoding the next call goes out in.
    pub fn protocol(&self) -> Protocol {
        if self.cbor.load(Ordering::Relaxed) {
            Protocol::Cbor
        } else {
            Protocol::Json
        }
    }

    /// Calls one operation and decodes its answer.
    pub async fn call<I: Serialize, O: DeserializeOwned>(
        &self,
        op: &'static str,
        input: &I,
    ) -> Result<O, CallError> {
        self.call_fast(op, input, |_| None).await
    }

    /// As `call`, reading a CBOR answer with `fast` first (`cbor_records`), and through serde
    /// when `fast` does not take it.
    pub async fn call_fast<I: Serialize, O: DeserializeOwned>(
        &self,
        op: &'static str,
        input: &I,
        fast: impl FnOnce(&Bytes) -> Option<O>,
    ) -> Result<O, CallError> {
        self.call_encoded(op, |p| codec::encode(p, input), fast)
            .await
    }

    /// As `call_fast`, with the request body written by `encode` in the encoding asked.
    pub async fn call_encoded<O: DeserializeOwned>(
        &self,
        op: &'static str,
        encode: impl Fn(Protocol) -> Bytes,
        fast: impl FnOnce(&Bytes) -> Option<O>,
    ) -> Result<O, CallError> {
        let (body, protocol) = self.open_encoded(op, encode).await?;
        let bytes = self.collect(op, body).await?;
        if protocol == Protocol::Cbor {
            if let Some(out) = fast(&bytes) {
                return Ok(out);
            }
        }
        // Operations without output answer an empty body (or an empty map).
        codec::decode(protocol, &bytes).map_err(|e| {
            if protocol == Protocol::Cbor && self.auto && self.cbor.swap(false, Ordering::Relaxed) {
                tracing::warn!(
                    endpoint = %self.upstream.endpoint(),
                    op,
                    error = %e.0,
                    "the upstream's CBOR answer cannot be read; strait calls it in JSON from now on"
                );
            }
            CallError::Garbled { op, why: e.0 }
        })
    }

    /// Calls one operation and leaves a successful answer's body, and the encoding it is in,
    /// to the caller to stream (SubscribeToShard's event stream); an exception is read and
    /// returned as the error.
    pub async fn open<I: Serialize>(
        &self,
        op: &'static str,
        input: &I,
    ) -> Result<(Incoming, Protocol), CallError> {
        self.open_encoded(op, |p| codec::encode(p, input)).await
    }

    async fn open_encoded(
        &self,
        op: &'static str,
        encode: impl Fn(Protocol) -> Bytes,
    ) -> Result<(Incoming, Protocol), CallError> {
        loop {
            let sent = self.protocol();
            let body = encode(sent);
            let mut headers = HeaderMap::new();
            let content_type = match sent {
                Protocol::Cbor => sent.content_type(),
                Protocol::Json => self.json_content_type,
            };
            headers.insert("content-type", HeaderValue::from_static(content_type));
            let target = HeaderValue::from_str(&format!("{}.{op}", self.target_prefix))
                .expect("operation names are ASCII");
            headers.insert("x-amz-target", target);
            let answer = self
                .upstream
                .send(&headers, body)
                .await
                .map_err(|source| CallError::Upstream { op, source })?;
            let status = answer.status().as_u16();
            let answered = answer
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(Protocol::from_content_type);
            if answered == Some(Protocol::Cbor) {
                self.fallback.store(false, Ordering::Relaxed);
            }
            if sent == Protocol::Cbor
                && status >= 300
                && answered != Some(sent)
                && self.fallback.load(Ordering::Relaxed)
            {
                if self.cbor.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        endpoint = %self.upstream.endpoint(),
                        op,
                        status,
                        "the upstream does not answer CBOR; strait calls it in JSON from now on"
                    );
                }
                continue;
            }
            let protocol = answered.unwrap_or(sent);
            if status < 300 {
                return Ok((answer.into_body(), protocol));
            }
            let bytes = self.collect(op, answer.into_body()).await?;
            let e = exception(protocol, &bytes);
            let code = match e.kind.rsplit_once('#') {
                Some((_, name)) => name.to_string(),
                None if e.kind.is_empty() => format!("HTTP {status}"),
                None => e.kind,
            };
            return Err(CallError::Exception {
                op,
                code,
                message: e.message,
                status,
            });
        }
    }

    async fn collect(&self, op: &'static str, body: Incoming) -> Result<Bytes, CallError> {
        Ok(Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| CallError::Upstream {
                op,
                source: UpstreamError::Unreachable {
                    endpoint: self.upstream.endpoint(),
                    why: format!("the answer broke off: {e}"),
                },
            })?
            .to_bytes())
    }
}

/// The storage error for an upstream call that failed.
pub fn storage_error(e: CallError) -> StorageError {
    if e.is_transient() {
        return StorageError::Unavailable(e.to_string());
    }
    let class = match e.code() {
        Some("InvalidArgumentException" | "ValidationException") => Refusal::InvalidArgument,
        Some("LimitExceededException") => Refusal::LimitExceeded,
        _ => Refusal::Failed,
    };
    StorageError::Refused {
        code: if e.is("ResourceNotFoundException") {
            3
        } else {
            -1
        },
        class,
        message: e.to_string(),
    }
}

/// A stream's creation time as text, the same whichever encoding the upstream answered in:
/// the JSON number as the upstream wrote it (seconds with a fraction; stored state keys hold
/// that text), or CBOR's milliseconds written as JSON would write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationTime(pub String);

impl<'de> Deserialize<'de> for CreationTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return Ok(CreationTime(match serde_json::Value::deserialize(d)? {
                serde_json::Value::String(s) => s,
                v => v.to_string(),
            }));
        }
        let Timestamp(ms) = Timestamp::deserialize(d)?;
        Ok(CreationTime(
            serde_json::Value::from(ms as f64 / 1000.0).to_string(),
        ))
    }
}

/// The answer of an operation that returns nothing.
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamNameInput<'a> {
    pub stream_name: &'a str,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_stream_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListStreamsOutput {
    pub stream_names: Vec<String>,
    pub has_more_streams: bool,
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamInput<'a> {
    pub stream_name: &'a str,
    /// Absent for an ON_DEMAND stream: Kinesis decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_mode_details: Option<StreamModeDetails>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StreamModeDetails {
    pub stream_mode: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetentionInput<'a> {
    pub stream_name: &'a str,
    pub retention_period_hours: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StreamSummary {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub stream_status: String,
    pub retention_period_hours: u32,
    pub open_shard_count: u32,
    /// Absent from older emulators: provisioned.
    pub stream_mode_details: Option<StreamModeDetails>,
    /// It tells a stream from one made again under its name.
    pub stream_creation_timestamp: Option<CreationTime>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeStreamSummaryOutput {
    pub stream_description_summary: StreamSummary,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterStreamConsumerInput<'a> {
    #[serde(rename = "StreamARN")]
    pub stream_arn: &'a str,
    pub consumer_name: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamConsumerInput<'a> {
    #[serde(rename = "StreamARN")]
    pub stream_arn: &'a str,
    pub consumer_name: &'a str,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsumerDescription {
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    pub consumer_status: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeStreamConsumerOutput {
    pub consumer_description: ConsumerDescription,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartingPosition {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
}

impl StartingPosition {
    /// Just after `seq`, or the shard's oldest record when there is none.
    pub fn after(seq: Option<String>) -> StartingPosition {
        match seq {
            Some(seq) => StartingPosition {
                kind: "AFTER_SEQUENCE_NUMBER",
                sequence_number: Some(seq),
            },
            None => StartingPosition {
                kind: "TRIM_HORIZON",
                sequence_number: None,
            },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeToShardInput<'a> {
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: &'a str,
    pub shard_id: &'a str,
    pub starting_position: StartingPosition,
}

impl From<RecordsPage> for SubscribeToShardEvent {
    fn from(page: RecordsPage) -> Self {
        SubscribeToShardEvent {
            records: page.records,
            continuation_sequence_number: page.continuation_sequence_number,
            millis_behind_latest: page.millis_behind_latest,
            child_shards: Vec::new(),
        }
    }
}

/// One SubscribeToShardEvent's payload.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SubscribeToShardEvent {
    pub records: Vec<crate::protocol::kinesis::shapes::Record>,
    pub continuation_sequence_number: Option<String>,
    pub millis_behind_latest: i64,
    pub child_shards: Vec<crate::protocol::kinesis::shapes::ChildShard>,
}
