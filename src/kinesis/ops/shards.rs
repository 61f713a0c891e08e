//! ListShards: shard listing with every ShardFilter type and sealed NextToken paging.

use std::sync::Arc;

use super::paging;
use super::shapes::shard_out;
use super::Ctx;
use crate::core::catalog::{parse_shard_id, Shard, Stream};
use crate::core::now_ms;
use crate::core::retention_ms;
use crate::kinesis::error::ApiError;
use crate::kinesis::validate::{self, int_range, resolve_stream};
use crate::protocol::kinesis::shapes::{ListShardsInput, ListShardsOutput, ShardFilter};

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    AfterShardId(u32),
    AtTrimHorizon,
    FromTrimHorizon,
    AtLatest,
    AtTimestamp(i64),
    FromTimestamp(i64),
}

impl Filter {
    fn parse(f: &ShardFilter) -> Result<Filter, ApiError> {
        let kind = validate::required(f.kind.as_deref(), "shardFilter.type")?;
        let ts = || {
            f.timestamp.map(|t| t.0).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "Timestamp is required for ShardFilter type {kind}."
                ))
            })
        };
        Ok(match kind {
            "AFTER_SHARD_ID" => {
                let id = f.shard_id.as_deref().ok_or_else(|| {
                    ApiError::invalid_argument("ShardId is required for ShardFilter type AFTER_SHARD_ID.")
                })?;
                validate::name(id, "shardFilter.shardId")?;
                Filter::AfterShardId(parse_shard_id(id).unwrap_or(0))
            }
            "AT_TRIM_HORIZON" => Filter::AtTrimHorizon,
            "FROM_TRIM_HORIZON" => Filter::FromTrimHorizon,
            "AT_LATEST" => Filter::AtLatest,
            "AT_TIMESTAMP" => Filter::AtTimestamp(ts()?),
            "FROM_TIMESTAMP" => Filter::FromTimestamp(ts()?),
            other => {
                return Err(ApiError::constraint(
                    other,
                    "shardFilter.type",
                    "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]",
                ))
            }
        })
    }

    fn encode(&self) -> String {
        match self {
            Filter::AfterShardId(p) => format!("after:{p}"),
            Filter::AtTrimHorizon => "at-trim".into(),
            Filter::FromTrimHorizon => "from-trim".into(),
            Filter::AtLatest => "latest".into(),
            Filter::AtTimestamp(t) => format!("at:{t}"),
            Filter::FromTimestamp(t) => format!("from:{t}"),
        }
    }

    fn decode(s: &str) -> Option<Filter> {
        let (k, v) = s.split_once(':').unwrap_or((s, ""));
        Some(match k {
            "after" => Filter::AfterShardId(v.parse().ok()?),
            "at-trim" => Filter::AtTrimHorizon,
            "from-trim" => Filter::FromTrimHorizon,
            "latest" => Filter::AtLatest,
            "at" => Filter::AtTimestamp(v.parse().ok()?),
            "from" => Filter::FromTimestamp(v.parse().ok()?),
            _ => return None,
        })
    }

    fn admits(&self, s: &Stream, shard: &Shard, now: i64) -> bool {
        let horizon = (now - retention_ms(s.retention_hours)).max(s.created_ms);
        let alive = |sh: &Shard| {
            sh.closed_ms
                .is_none_or(|c| c > now - retention_ms(s.retention_hours))
        };
        match self {
            Filter::AfterShardId(p) => shard.partition > *p && alive(shard),
            Filter::AtTrimHorizon => {
                shard.open_at(horizon) || (shard.parents.is_empty() && alive(shard))
            }
            Filter::FromTrimHorizon => alive(shard),
            Filter::AtLatest => shard.is_open(),
            Filter::AtTimestamp(t) => shard.open_at((*t).max(s.created_ms)),
            Filter::FromTimestamp(t) => {
                let t = (*t).max(s.created_ms);
                shard.closed_ms.is_none_or(|c| c > t)
            }
        }
    }
}

pub async fn list_shards(ctx: Arc<Ctx>, i: ListShardsInput) -> Result<ListShardsOutput, ApiError> {
    let max = int_range(i.max_results.unwrap_or(1000), "maxResults", 1, 10_000)?.min(1000) as usize;
    let (name, filter, after) = match &i.next_token {
        Some(token) => {
            validate::token(token, "nextToken")?;
            if i.stream_name.is_some() || i.stream_arn.is_some() {
                return Err(ApiError::invalid_argument(
                    "NextToken and StreamName cannot be provided together.",
                ));
            }
            if i.exclusive_start_shard_id.is_some() || i.shard_filter.is_some() {
                return Err(ApiError::invalid_argument(
                    "NextToken cannot be provided together with ExclusiveStartShardId or ShardFilter.",
                ));
            }
            open_token(&ctx, token)?
        }
        None => {
            let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
            let filter = match &i.shard_filter {
                Some(f) => Filter::parse(f)?,
                None => Filter::FromTrimHorizon,
            };
            let after = match &i.exclusive_start_shard_id {
                Some(id) => {
                    if i.shard_filter.is_some() {
                        return Err(ApiError::invalid_argument(
                            "ExclusiveStartShardId and ShardFilter cannot be provided together.",
                        ));
                    }
                    validate::name(id, "exclusiveStartShardId")?;
                    parse_shard_id(id).map(|p| p as i64).unwrap_or(-1)
                }
                None => -1,
            };
            (name, filter, after)
        }
    };
    ctx.throttle.per_stream("ListShards", &name)?;
    let s = ctx.core.found_stream(&name).await?;
    let now = now_ms();
    let mut rest = s
        .shards
        .iter()
        .filter(|sh| sh.partition as i64 > after && filter.admits(&s, sh, now));
    let page: Vec<&Shard> = rest.by_ref().take(max).collect();
    let more = rest.next().is_some();
    let next_token = match page.last() {
        Some(last) if more => Some(seal_token(&ctx, &name, &filter, last.partition)),
        _ => None,
    };
    Ok(ListShardsOutput {
        shards: page.into_iter().map(shard_out).collect(),
        next_token,
    })
}

fn seal_token(ctx: &Ctx, stream: &str, filter: &Filter, last: u32) -> String {
    paging::seal(
        ctx,
        "shards",
        &[&filter.encode(), &last.to_string(), stream],
    )
}

fn open_token(ctx: &Ctx, token: &str) -> Result<(String, Filter, i64), ApiError> {
    let invalid = || ApiError::invalid_argument(format!("Invalid NextToken: {token}"));
    let fields = paging::open(ctx, "shards", 3, token)?;
    let filter = Filter::decode(&fields[0]).ok_or_else(invalid)?;
    let last: i64 = fields[1].parse().map_err(|_| invalid())?;
    Ok((fields[2].clone(), filter, last))
}
