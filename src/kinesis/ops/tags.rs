//! Stream tags, by stream name (…TagsToStream, ListTagsForStream), and stream or consumer
//! tags by resource ARN (TagResource, UntagResource, ListTagsForResource).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::consumers::{parse_consumer_arn, ConsumerArn};
use super::shapes::Empty;
use super::Ctx;
use crate::config::KeyHash;
use crate::core::catalog::Stream;
use crate::core::error::CoreError;
use crate::core::now_ms;
use crate::kinesis::error::ApiError;
use crate::kinesis::validate::{int_range, required, resolve_stream, stream_name_from_arn};

const MAX_TAGS: usize = 50;

/// The stream tag that picks, at CreateStream, how keys find shards: `kinesis-md5` (Kinesis's
/// hash ranges, the default) or `kafka-murmur2` (as Kafka producers' default partitioner does).
/// Fixed for the stream's life, so TagResource and UntagResource may not change it.
pub const KEY_HASH_TAG: &str = "strait:key-hash";

/// The key hash a CreateStream's tags ask for, or `default`.
pub fn key_hash_from_tags(
    tags: &BTreeMap<String, String>,
    default: KeyHash,
) -> Result<KeyHash, ApiError> {
    match tags.get(KEY_HASH_TAG).map(String::as_str) {
        None => Ok(default),
        Some("kinesis-md5") => Ok(KeyHash::KinesisMd5),
        Some("kafka-murmur2") => Ok(KeyHash::KafkaMurmur2),
        Some(other) => Err(ApiError::invalid_argument(format!(
            "Tag {KEY_HASH_TAG} must be kinesis-md5 or kafka-murmur2, not {other:?}."
        ))),
    }
}

/// The key hash tag changes only with the stream: its records are where the hash put them.
fn key_hash_tag_untouched<'a>(
    resource: &Resource,
    keys: impl IntoIterator<Item = &'a String>,
) -> Result<(), ApiError> {
    if matches!(resource, Resource::Stream(_)) && keys.into_iter().any(|k| k == KEY_HASH_TAG) {
        return Err(ApiError::invalid_argument(format!(
            "Tag {KEY_HASH_TAG} is fixed when the stream is created (CreateStream's Tags): the stream's records are on the shards its key hash chose."
        )));
    }
    Ok(())
}

/// Characters AWS allows in tag keys and values: letters, digits, white space and `_ . : / = + - @ %`.
fn tag_chars_ok(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_alphanumeric()
            || c.is_whitespace()
            || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@' | '%')
    })
}

/// A tag key as the model constrains it (1–128 characters).
fn check_tag_key(k: &str, member: &str) -> Result<(), ApiError> {
    let n = k.chars().count();
    if n == 0 || n > 128 {
        return Err(ApiError::constraint(
            k,
            member,
            "Member must have length between 1 and 128",
        ));
    }
    Ok(())
}

/// Tag rules: keys 1–128 characters, values up to 256 (ValidationException, from the model);
/// AWS's character set and the reserved `aws:` prefix (InvalidArgumentException); at most 50
/// tags on a stream counting `existing`, and at most 200 in one request.
pub fn check_tags(tags: &BTreeMap<String, String>, existing: usize) -> Result<(), ApiError> {
    if tags.len() > 200 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 200 (got {})",
            tags.len()
        )));
    }
    for (k, v) in tags {
        check_tag_key(k, "tags")?;
        if v.chars().count() > 256 {
            return Err(ApiError::constraint(
                v,
                &format!("tags.{k}.member"),
                "Member must have length less than or equal to 256",
            ));
        }
        if !tag_chars_ok(k) || !tag_chars_ok(v) {
            return Err(ApiError::invalid_argument(format!(
                "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @. Offending tag: {k}={v}"
            )));
        }
        if k.starts_with("aws:") {
            return Err(ApiError::invalid_argument(format!(
                "Tag key '{k}' uses the reserved prefix aws:."
            )));
        }
    }
    if existing + tags.len() > MAX_TAGS {
        return Err(ApiError::limit_exceeded(format!(
            "A stream may have at most {MAX_TAGS} tags; this request would make {}.",
            existing + tags.len()
        )));
    }
    Ok(())
}

/// What a tag call names: a stream, or an enhanced fan-out consumer of one.
enum Resource {
    Stream(String),
    Consumer(ConsumerArn),
}

impl Resource {
    fn stream(&self) -> &str {
        match self {
            Resource::Stream(s) => s,
            Resource::Consumer(c) => &c.stream,
        }
    }

    /// The tag map of the resource inside its stream's catalog entry.
    fn tags_in<'a>(
        &self,
        s: &'a mut Stream,
        account: &str,
    ) -> Result<&'a mut BTreeMap<String, String>, CoreError> {
        match self {
            Resource::Stream(_) => Ok(&mut s.tags),
            Resource::Consumer(arn) => {
                let now = now_ms();
                s.consumers
                    .iter_mut()
                    .find(|c| {
                        c.name == arn.consumer
                            && c.created_secs() == arn.created_secs
                            && c.deleting_ms.is_none()
                            && c.status(now).is_some()
                    })
                    .map(|c| &mut c.tags)
                    .ok_or_else(|| CoreError::ConsumerNotFound {
                        stream: arn.stream.clone(),
                        consumer: arn.consumer.clone(),
                        account: account.to_string(),
                    })
            }
        }
    }
}

async fn add_tags(ctx: &Ctx, stream: &str, tags: BTreeMap<String, String>) -> Result<(), ApiError> {
    add_resource_tags(ctx, &Resource::Stream(stream.to_string()), tags).await
}

async fn add_resource_tags(
    ctx: &Ctx,
    resource: &Resource,
    tags: BTreeMap<String, String>,
) -> Result<(), ApiError> {
    if tags.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    check_tags(&tags, 0)?;
    key_hash_tag_untouched(resource, tags.keys())?;
    let account = ctx.core.account_id().to_string();
    ctx.core
        .update_stream::<_, ApiError>(resource.stream(), |s| {
            let name = s.name.clone();
            let have = resource.tags_in(s, &account)?;
            if have.len() + tags.keys().filter(|k| !have.contains_key(*k)).count() > MAX_TAGS {
                return Err(ApiError::limit_exceeded(format!(
                    "A resource may have at most {MAX_TAGS} tags; this one in stream {name} has {}.",
                    have.len()
                )));
            }
            have.extend(tags);
            Ok(())
        })
        .await?;
    Ok(())
}

async fn remove_tags(ctx: &Ctx, stream: &str, keys: Vec<String>) -> Result<(), ApiError> {
    remove_resource_tags(ctx, &Resource::Stream(stream.to_string()), keys).await
}

async fn remove_resource_tags(
    ctx: &Ctx,
    resource: &Resource,
    keys: Vec<String>,
) -> Result<(), ApiError> {
    if keys.is_empty() || keys.len() > 50 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: Member must have length between 1 and 50 (got {})",
            keys.len()
        )));
    }
    for k in &keys {
        check_tag_key(k, "tagKeys")?;
    }
    key_hash_tag_untouched(resource, &keys)?;
    let account = ctx.core.account_id().to_string();
    ctx.core
        .update_stream::<_, ApiError>(resource.stream(), |s| {
            let have = resource.tags_in(s, &account)?;
            for k in &keys {
                have.remove(k);
            }
            Ok(())
        })
        .await?;
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsToStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

pub async fn add_tags_to_stream(ctx: Arc<Ctx>, i: AddTagsToStreamInput) -> Result<Empty, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    add_tags(&ctx, &name, required(i.tags, "tags")?).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTagsFromStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

pub async fn remove_tags_from_stream(
    ctx: Arc<Ctx>,
    i: RemoveTagsFromStreamInput,
) -> Result<Empty, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    remove_tags(&ctx, &name, required(i.tag_keys, "tagKeys")?).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamOutput {
    tags: Vec<Tag>,
    has_more_tags: bool,
}

pub async fn list_tags_for_stream(
    ctx: Arc<Ctx>,
    i: ListTagsForStreamInput,
) -> Result<ListTagsForStreamOutput, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let limit = int_range(i.limit.unwrap_or(50), "limit", 1, 50)? as usize;
    if let Some(k) = &i.exclusive_start_tag_key {
        check_tag_key(k, "exclusiveStartTagKey")?;
    }
    let s = ctx.core.stream(&name)?;
    let mut rest = s.tags.iter().filter(|(k, _)| {
        i.exclusive_start_tag_key
            .as_deref()
            .is_none_or(|a| k.as_str() > a)
    });
    let tags = rest
        .by_ref()
        .take(limit)
        .map(|(k, v)| Tag {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    Ok(ListTagsForStreamOutput {
        tags,
        has_more_tags: rest.next().is_some(),
    })
}

/// The stream or consumer a resource ARN names.
fn resource(arn: Option<String>) -> Result<Resource, ApiError> {
    let arn = required(arn, "resourceARN")?;
    if arn.contains("/consumer/") {
        return Ok(Resource::Consumer(parse_consumer_arn(&arn, "resourceARN")?));
    }
    Ok(Resource::Stream(stream_name_from_arn(&arn)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

pub async fn tag_resource(ctx: Arc<Ctx>, i: TagResourceInput) -> Result<Empty, ApiError> {
    let r = resource(i.resource_arn)?;
    add_resource_tags(&ctx, &r, required(i.tags, "tags")?).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

pub async fn untag_resource(ctx: Arc<Ctx>, i: UntagResourceInput) -> Result<Empty, ApiError> {
    let r = resource(i.resource_arn)?;
    remove_resource_tags(&ctx, &r, required(i.tag_keys, "tagKeys")?).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    tags: Vec<Tag>,
}

pub async fn list_tags_for_resource(
    ctx: Arc<Ctx>,
    i: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, ApiError> {
    let r = resource(i.resource_arn)?;
    let tags = match &r {
        Resource::Stream(name) => ctx.core.stream(name)?.tags.clone(),
        Resource::Consumer(arn) => ctx.resolve_consumer_arn(arn)?.tags,
    };
    Ok(ListTagsForResourceOutput {
        tags: tags
            .iter()
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    })
}
