//! Enhanced fan-out consumers: RegisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers, DeregisterStreamConsumer, and the consumer ARN format
//! `…:stream/<name>/consumer/<consumer>:<creation epoch secs>`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{paging, Ctx};
use crate::core::fanout::Consumer;
use crate::core::now_ms;
use crate::kinesis::error::ApiError;
use crate::kinesis::validate::{self, int_range, required, stream_name_from_arn};
use crate::protocol::kinesis::codec::Timestamp;

/// A parsed consumer ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerArn {
    pub stream: String,
    pub consumer: String,
    pub created_secs: i64,
}

const ARN_PATTERN: &str = "Member must satisfy regular expression pattern: ^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+";

pub fn parse_consumer_arn(arn: &str, member: &str) -> Result<ConsumerArn, ApiError> {
    let bad = || ApiError::constraint(arn, member, ARN_PATTERN);
    if arn.is_empty() || arn.len() > 2048 {
        return Err(bad());
    }
    let (stream_arn, rest) = arn.split_once("/consumer/").ok_or_else(bad)?;
    let stream = stream_name_from_arn(stream_arn).map_err(|_| bad())?;
    let (consumer, secs) = rest.rsplit_once(':').ok_or_else(bad)?;
    if validate::name(consumer, member).is_err()
        || secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let created_secs = secs.parse().map_err(|_| bad())?;
    Ok(ConsumerArn {
        stream,
        consumer: consumer.to_string(),
        created_secs,
    })
}

impl Ctx {
    pub fn consumer_arn(&self, stream: &str, c: &Consumer) -> String {
        format!(
            "{}/consumer/{}:{}",
            self.stream_arn(stream),
            c.name,
            c.created_secs()
        )
    }

    /// The registered consumer an ARN names; a stale ARN (an older registration of the same
    /// name) is not found.
    pub fn resolve_consumer_arn(&self, arn: &ConsumerArn) -> Result<Consumer, ApiError> {
        let c = self.core.consumer(&arn.stream, &arn.consumer)?;
        if c.created_secs() != arn.created_secs {
            return Err(ApiError::resource_not_found(format!(
                "Consumer {} under stream {} under account {} not found.",
                arn.consumer,
                arn.stream,
                self.core.account_id()
            )));
        }
        Ok(c)
    }
}

fn consumer_name(value: &str) -> Result<(), ApiError> {
    validate::name(value, "consumerName")
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerOut {
    consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    consumer_status: &'static str,
    consumer_creation_timestamp: Timestamp,
}

fn consumer_out(ctx: &Ctx, stream: &str, c: &Consumer) -> ConsumerOut {
    ConsumerOut {
        consumer_name: c.name.clone(),
        consumer_arn: ctx.consumer_arn(stream, c),
        consumer_status: c.status(now_ms()).map_or("DELETING", |s| s.as_str()),
        consumer_creation_timestamp: Timestamp(c.created_ms),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    tags: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterOutput {
    consumer: ConsumerOut,
}

pub async fn register_stream_consumer(
    ctx: Arc<Ctx>,
    i: RegisterInput,
) -> Result<RegisterOutput, ApiError> {
    let stream = stream_name_from_arn(&required(i.stream_arn, "streamARN")?)?;
    let name = required(i.consumer_name, "consumerName")?;
    consumer_name(&name)?;
    let tags = i.tags.unwrap_or_default();
    super::tags::check_tags(&tags, 0)?;
    let c = ctx
        .core
        .register_consumer(&stream, &name, ctx.max_consumers_per_stream, tags)
        .await?;
    tracing::info!(%stream, consumer = %name, "consumer registered");
    Ok(RegisterOutput {
        consumer: consumer_out(&ctx, &stream, &c),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerRefInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
}

/// Either ConsumerARN alone, or StreamARN with ConsumerName (as AWS requires).
fn resolve(ctx: &Ctx, i: ConsumerRefInput) -> Result<(String, Consumer), ApiError> {
    match (i.consumer_arn, i.stream_arn, i.consumer_name) {
        (Some(arn), None, None) => {
            let parsed = parse_consumer_arn(&arn, "consumerARN")?;
            let c = ctx.resolve_consumer_arn(&parsed)?;
            Ok((parsed.stream, c))
        }
        (None, Some(stream_arn), Some(name)) => {
            let stream = stream_name_from_arn(&stream_arn)?;
            consumer_name(&name)?;
            let c = ctx.core.consumer(&stream, &name)?;
            Ok((stream, c))
        }
        _ => Err(ApiError::invalid_argument(
            "Either ConsumerARN or both ConsumerName and StreamARN must be provided, but not both.",
        )),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerDescription {
    consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    consumer_status: &'static str,
    consumer_creation_timestamp: Timestamp,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeOutput {
    consumer_description: ConsumerDescription,
}

pub async fn describe_stream_consumer(
    ctx: Arc<Ctx>,
    i: ConsumerRefInput,
) -> Result<DescribeOutput, ApiError> {
    let (stream, c) = resolve(&ctx, i)?;
    ctx.throttle.per_stream("DescribeStreamConsumer", &stream)?;
    let out = consumer_out(&ctx, &stream, &c);
    Ok(DescribeOutput {
        consumer_description: ConsumerDescription {
            consumer_name: out.consumer_name,
            consumer_arn: out.consumer_arn,
            consumer_status: out.consumer_status,
            consumer_creation_timestamp: out.consumer_creation_timestamp,
            stream_arn: ctx.stream_arn(&stream),
        },
    })
}

#[derive(Serialize)]
pub struct Empty {}

pub async fn deregister_stream_consumer(
    ctx: Arc<Ctx>,
    i: ConsumerRefInput,
) -> Result<Empty, ApiError> {
    let (stream, c) = resolve(&ctx, i)?;
    ctx.throttle
        .per_stream("DeregisterStreamConsumer", &stream)?;
    ctx.core.deregister_consumer(&stream, &c.name).await?;
    tracing::info!(%stream, consumer = %c.name, "consumer deregistered");
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    stream_creation_timestamp: Option<Timestamp>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListOutput {
    consumers: Vec<ConsumerOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub async fn list_stream_consumers(ctx: Arc<Ctx>, i: ListInput) -> Result<ListOutput, ApiError> {
    // The token names its stream, so a follow-up call may leave StreamARN out.
    let stream = match (&i.stream_arn, &i.next_token) {
        (Some(arn), _) => stream_name_from_arn(arn)?,
        (None, Some(t)) => {
            validate::token(t, "nextToken")?;
            paging::open(&ctx, "consumers", 2, t)?.swap_remove(1)
        }
        (None, None) => return Err(ApiError::missing("streamARN")),
    };
    let max = int_range(i.max_results.unwrap_or(100), "maxResults", 1, 10_000)? as usize;
    ctx.throttle.per_stream("ListStreamConsumers", &stream)?;
    let s = ctx.core.stream(&stream)?;
    if let Some(ts) = i.stream_creation_timestamp {
        // A timestamp names one incarnation of the stream; another one's consumers are not
        // this caller's.
        if ts.0 / 1000 != s.created_ms / 1000 {
            return Err(ApiError::resource_not_found(format!(
                "Stream {stream} under account {} not found.",
                ctx.core.account_id()
            )));
        }
    }
    let skip = match &i.next_token {
        Some(t) => {
            validate::token(t, "nextToken")?;
            let f = paging::open(&ctx, "consumers", 2, t)?;
            if f[1] != stream {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid NextToken: {t}"
                )));
            }
            f[0].parse::<usize>()
                .map_err(|_| ApiError::invalid_argument(format!("Invalid NextToken: {t}")))?
        }
        None => 0,
    };
    let all = ctx.core.consumers(&stream)?;
    let page: Vec<ConsumerOut> = all
        .iter()
        .skip(skip)
        .take(max)
        .map(|c| consumer_out(&ctx, &stream, c))
        .collect();
    let next = skip + page.len();
    let next_token =
        (next < all.len()).then(|| paging::seal(&ctx, "consumers", &[&next.to_string(), &stream]));
    Ok(ListOutput {
        consumers: page,
        next_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_arns_parse() {
        let a = parse_consumer_arn(
            "arn:aws:kinesis:us-east-1:000000000000:stream/s-1/consumer/app.v2:1700000000",
            "consumerARN",
        )
        .unwrap();
        assert_eq!(a.stream, "s-1");
        assert_eq!(a.consumer, "app.v2");
        assert_eq!(a.created_secs, 1_700_000_000);
        for bad in [
            "",
            "arn:aws:kinesis:us-east-1:000000000000:stream/s-1",
            "arn:aws:kinesis:us-east-1:000000000000:stream/s-1/consumer/c",
            "arn:aws:kinesis:us-east-1:000000000000:stream/s-1/consumer/c:x1",
            "arn:aws:kinesis:us-east-1:000000000000:stream/s-1/consumer/a b:1",
            "arn:aws:sqs:us-east-1:000000000000:stream/s-1/consumer/c:1",
        ] {
            assert_eq!(
                parse_consumer_arn(bad, "consumerARN").unwrap_err().code,
                "ValidationException",
                "{bad}"
            );
        }
    }
}
