//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs and
//! IncrementalAlterConfigs (`retention.ms` ⇄ retention hours; the key hash is read-only).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::{str_bytes, topic_name, valid_topic_name};
use crate::core::catalog::{Stream, StreamMode};
use crate::core::error::CoreError;
use crate::core::topic_id;
use crate::kafka::error::{self, NONE};
use crate::kafka::KafkaCtx;

const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
const HOUR_MS: i64 = 3_600_000;
/// The CreateTopics config that picks a Kinesis stream's capacity mode.
const STREAM_MODE: &str = "kinesis.stream.mode";
/// The shards an ON_DEMAND stream starts with (Kinesis's default write capacity of 4 MiB/s).
const ON_DEMAND_PARTITIONS: i32 = 4;

fn retention_hours_from_ms(ms: i64) -> Option<u32> {
    if ms < 0 {
        return Some(crate::core::MAX_RETENTION_HOURS);
    }
    let hours = (ms + HOUR_MS - 1) / HOUR_MS;
    u32::try_from(hours.max(1)).ok()
}

pub async fn create_topics(ctx: &KafkaCtx, r: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::new();
    for t in r.topics {
        let name = t.name.0.to_string();
        let out = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let fail = |code: ResponseError, msg: String| {
            out.clone()
                .with_error_code(error::of(code))
                .with_error_message(Some(str_bytes(&msg)))
        };
        if !valid_topic_name(&name) {
            results.push(fail(
                ResponseError::InvalidTopicException,
                format!("Topic name {name:?} is not valid: 1-128 characters of [a-zA-Z0-9._-]"),
            ));
            continue;
        }
        if !matches!(t.replication_factor, -1 | 1) {
            results.push(fail(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Replication factor {} is larger than the 1 available broker.",
                    t.replication_factor
                ),
            ));
            continue;
        }
        let mut retention = None;
        let mut mode = StreamMode::Provisioned;
        let mut bad_config = None;
        for c in &t.configs {
            match (&*c.name, c.value.as_deref()) {
                (STREAM_MODE, Some(v)) => match v {
                    "PROVISIONED" => mode = StreamMode::Provisioned,
                    "ON_DEMAND" => mode = StreamMode::OnDemand,
                    _ => {
                        bad_config = Some(format!(
                            "Invalid value {v} for {STREAM_MODE}: PROVISIONED or ON_DEMAND"
                        ))
                    }
                },
                ("retention.ms", Some(v)) => {
                    match v.parse::<i64>().ok().and_then(retention_hours_from_ms) {
                        Some(h) => retention = Some(h),
                        None => bad_config = Some(format!("Invalid value {v} for retention.ms")),
                    }
                }
                ("cleanup.policy", Some(v)) if v != "delete" => {
                    bad_config = Some(format!(
                        "cleanup.policy={v} is not supported; streams are delete-only"
                    ))
                }
                _ => {}
            }
        }
        if let Some(msg) = bad_config {
            results.push(fail(ResponseError::InvalidConfig, msg));
            continue;
        }
        let partitions = match (t.num_partitions, mode) {
            (-1, StreamMode::OnDemand) => ON_DEMAND_PARTITIONS,
            (-1, StreamMode::Provisioned) => ctx.default_partitions as i32,
            (n, _) => n,
        };
        if mode == StreamMode::OnDemand && partitions != ON_DEMAND_PARTITIONS {
            results.push(fail(
                ResponseError::InvalidPartitions,
                format!("An ON_DEMAND stream starts with {ON_DEMAND_PARTITIONS} shards and Kinesis scales it; leave the partition count unset (-1); got {partitions}."),
            ));
            continue;
        }
        if !t.assignments.is_empty() || partitions < 1 {
            results.push(fail(
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be at least 1; got {partitions}."),
            ));
            continue;
        }
        if ctx.core.stream(&name).is_ok() {
            results.push(fail(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
            continue;
        }
        if r.validate_only {
            results.push(
                out.with_num_partitions(partitions)
                    .with_replication_factor(1),
            );
            continue;
        }
        let created = ctx.core.create_topic(&name, partitions as u32, mode).await;
        if let (Ok(()), Some(hours)) = (&created, retention) {
            let _ = ctx
                .core
                .update_stream::<_, CoreError>(&name, |s| {
                    s.retention_hours = hours;
                    Ok(())
                })
                .await;
        }
        results.push(match created.and_then(|_| ctx.core.stream(&name)) {
            Ok(s) => out
                .with_error_code(NONE)
                .with_topic_id(topic_id(&s))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
            Err(e) => out
                .with_error_code(error::code(&e))
                .with_error_message(Some(str_bytes(&e.to_string()))),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(
    ctx: &KafkaCtx,
    r: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        r.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        r.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::new();
    for (name, id) in targets {
        let name = name.or_else(|| {
            ctx.core
                .streams()
                .iter()
                .find(|s| topic_id(s) == id)
                .map(|s| s.name.clone())
        });
        let Some(name) = name else {
            responses.push(
                DeletableTopicResult::default()
                    .with_topic_id(id)
                    .with_error_code(error::of(ResponseError::UnknownTopicId)),
            );
            continue;
        };
        let tid = ctx.core.stream(&name).map(|s| topic_id(&s)).unwrap_or(id);
        let code = match ctx.core.delete_stream(&name, false).await {
            Ok(()) => NONE,
            Err(e) => error::code(&e),
        };
        responses.push(
            DeletableTopicResult::default()
                .with_name(Some(topic_name(&name)))
                .with_topic_id(tid)
                .with_error_code(code),
        );
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    ctx: &KafkaCtx,
    r: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::new();
    for t in r.topics {
        let name = t.name.0.to_string();
        let res = if t.count < 1 {
            Err((
                error::of(ResponseError::InvalidPartitions),
                format!("partition count {} must be positive", t.count),
            ))
        } else {
            // A stream made outside strait a moment ago is adopted first.
            let found = ctx.core.found_stream(&name).await.map(|_| ());
            let done = match found {
                Ok(()) if !r.validate_only => ctx.core.add_partitions(&name, t.count as u32).await,
                other => other,
            };
            done.map_err(|e| {
                let code = match &e {
                    CoreError::InvalidArgument(_) => error::of(ResponseError::InvalidPartitions),
                    other => error::code(other),
                };
                (code, e.to_string())
            })
        };
        results.push(match res {
            Ok(()) => CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(NONE),
            Err((code, message)) => CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// The configs strait reports for a topic: (name, value, read-only).
fn topic_configs(s: &Stream) -> Vec<(&'static str, String, bool)> {
    vec![
        (
            "retention.ms",
            (s.retention_hours as i64 * HOUR_MS).to_string(),
            false,
        ),
        ("cleanup.policy", "delete".into(), true),
        (
            "max.message.bytes",
            (s.max_record_kib as i64 * 1024).to_string(),
            true,
        ),
        ("message.timestamp.type", "CreateTime".into(), true),
        ("kinesis.key.hash", s.key_hash.as_str().into(), true),
        (STREAM_MODE, s.mode.as_str().into(), true),
    ]
}

pub async fn describe_configs(
    ctx: &KafkaCtx,
    r: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(r.resources.len());
    for res in r.resources {
        results.push({
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let configs: Vec<(&'static str, String, bool)> = match res.resource_type {
                // Described: retention and capacity mode as the backend has them now.
                TOPIC_RESOURCE => match ctx.core.described(&res.resource_name).await {
                    Ok(s) => topic_configs(&s),
                    Err(e) => {
                        results.push(
                            base.with_error_code(error::code(&e))
                                .with_error_message(Some(str_bytes(&e.to_string()))),
                        );
                        continue;
                    }
                },
                BROKER_RESOURCE => vec![
                    (
                        "auto.create.topics.enable",
                        ctx.auto_create_topics.to_string(),
                        true,
                    ),
                    ("num.partitions", ctx.default_partitions.to_string(), true),
                ],
                _ => {
                    results.push(
                        base.with_error_code(error::of(ResponseError::InvalidRequest))
                            .with_error_message(Some(str_bytes("unsupported resource type"))),
                    );
                    continue;
                }
            };
            let wanted = res.configuration_keys.as_ref();
            base.with_error_code(NONE).with_configs(
                configs
                    .into_iter()
                    .filter(|(k, _, _)| wanted.is_none_or(|w| w.iter().any(|x| &**x == *k)))
                    .map(|(k, v, ro)| {
                        DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(&v)))
                            .with_read_only(ro)
                            .with_config_source(if ro { 5 } else { 1 })
                    })
                    .collect(),
            )
        });
    }
    DescribeConfigsResponse::default().with_results(results)
}

pub async fn incremental_alter_configs(
    ctx: &KafkaCtx,
    r: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for res in r.resources {
        let out = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        if res.resource_type != TOPIC_RESOURCE {
            responses.push(out.with_error_code(error::of(ResponseError::InvalidRequest)));
            continue;
        }
        let mut hours = None;
        let mut bad = None;
        for c in &res.configs {
            // 0 SET, 1 DELETE (back to the default of 24 hours).
            match (&*c.name, c.config_operation, c.value.as_deref()) {
                ("retention.ms", 0, Some(v)) => {
                    match v.parse::<i64>().ok().and_then(retention_hours_from_ms) {
                        Some(h) => hours = Some(h),
                        None => bad = Some(format!("Invalid value {v} for retention.ms")),
                    }
                }
                ("retention.ms", 1, _) => hours = Some(crate::core::MIN_RETENTION_HOURS),
                (name, _, _) => {
                    bad = Some(format!("Config {name} cannot be changed through strait"))
                }
            }
        }
        if let Some(msg) = bad {
            responses.push(
                out.with_error_code(error::of(ResponseError::InvalidConfig))
                    .with_error_message(Some(str_bytes(&msg))),
            );
            continue;
        }
        let result = match (hours, r.validate_only) {
            (Some(h), false) => {
                ctx.core
                    .update_stream::<_, CoreError>(&res.resource_name, |s| {
                        s.retention_hours = h;
                        Ok(())
                    })
                    .await
            }
            _ => ctx.core.stream(&res.resource_name).map(|_| ()),
        };
        responses.push(match result {
            Ok(()) => out.with_error_code(NONE),
            Err(e) => out.with_error_code(error::code(&e)),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
