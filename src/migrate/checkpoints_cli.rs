//! `strait migrate checkpoints`: hands a KCL application's positions to a Kafka consumer
//! group (or back, `--reverse`). The CLI reads and writes the lease table in DynamoDB with the
//! credentials and region of `migration.source`; a running replica (its admin port) resolves
//! checkpoints to offsets and commits them (`checkpoints.rs`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::checkpoints::{GroupPositions, ShardPosition};
use super::cli::{admin_url, request};
use crate::backend::kinesis::client::AwsClient;
use crate::backend::kinesis::kcl_leases::{
    create_lease, scan_leases, write_checkpoint, LeaseTable, NewLease,
};
use crate::backend::kinesis::upstream::Upstream;
use crate::config::Config;
use crate::protocol::kinesis::shard_ids::parse_shard_id;

/// What `strait migrate checkpoints` was asked.
pub struct CheckpointsArgs<'a> {
    pub config: &'a Path,
    pub admin: Option<&'a str>,
    pub lease_table: &'a str,
    pub stream: &'a str,
    pub group: &'a str,
    pub dynamodb_endpoint: Option<&'a str>,
    pub reverse: bool,
}

pub fn checkpoints(args: &CheckpointsArgs<'_>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strait migrate checkpoints: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = runtime.block_on(async {
        if args.reverse {
            to_lease_table(args).await
        } else {
            to_group(args).await
        }
    });
    match done {
        Ok(positions) => {
            print_table(&positions);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("strait migrate checkpoints: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The lease table's checkpoints on the stream, committed as the group's offsets.
async fn to_group(args: &CheckpointsArgs<'_>) -> Result<GroupPositions, String> {
    let admin = admin_url(args.config, args.admin)?;
    let dynamodb = dynamodb(args).await?;
    let leases = scan_leases(&dynamodb, &table(args), args.stream)
        .await
        .map_err(|e| format!("reading lease table {}: {e}", args.lease_table))?;
    if leases.is_empty() {
        return Err(format!(
            "lease table {} holds no lease of stream {}",
            args.lease_table, args.stream
        ));
    }
    let doc = GroupPositions {
        group: args.group.to_string(),
        shards: leases
            .into_iter()
            .map(|l| ShardPosition {
                shard_id: crate::protocol::kinesis::shard_ids::shard_id(l.partition),
                checkpoint: l.checkpoint,
                sub_sequence_number: l.sub,
                offset: None,
                parent_shard_ids: Vec::new(),
                hash_key_range: None,
            })
            .collect(),
    };
    let body = serde_json::to_vec(&doc).expect("serialises");
    let answer = request(&admin, "POST", &path(args), &body)?;
    answered(answer)
}

/// The group's offsets on the stream, written as the lease table's checkpoints: into each
/// shard's lease, or a new lease (keyed by shard id, as a single-stream KCL application keys
/// them) where the table has none.
async fn to_lease_table(args: &CheckpointsArgs<'_>) -> Result<GroupPositions, String> {
    let admin = admin_url(args.config, args.admin)?;
    let positions = answered(request(&admin, "GET", &path(args), b"")?)?;
    if positions.shards.is_empty() {
        return Err(format!(
            "group {} has no committed offset on {}",
            args.group, args.stream
        ));
    }
    let dynamodb = dynamodb(args).await?;
    let leases = scan_leases(&dynamodb, &table(args), args.stream)
        .await
        .map_err(|e| format!("reading lease table {}: {e}", args.lease_table))?;
    for p in &positions.shards {
        let partition = parse_shard_id(&p.shard_id)
            .ok_or_else(|| format!("the replica answered a bad shard id {:?}", p.shard_id))?;
        let fail = |e| format!("writing {}'s checkpoint: {e}", p.shard_id);
        let (cp, sub) = (p.checkpoint.as_str(), p.sub_sequence_number);
        let written = match leases.iter().find(|l| l.partition == partition) {
            Some(l) => write_checkpoint(&dynamodb, args.lease_table, &l.key, cp, sub, false)
                .await
                .map_err(fail)?,
            None => {
                let lease = NewLease {
                    key: &p.shard_id,
                    checkpoint: cp,
                    sub,
                    parents: &p.parent_shard_ids,
                    hash_key_range: p.hash_key_range.as_ref(),
                };
                create_lease(&dynamodb, args.lease_table, &lease)
                    .await
                    .map_err(fail)?
            }
        };
        if !written {
            return Err(format!(
                "{}'s lease changed while it was written (made or removed by a KCL worker): run again",
                p.shard_id
            ));
        }
    }
    Ok(positions)
}

async fn dynamodb(args: &CheckpointsArgs<'_>) -> Result<AwsClient, String> {
    let c = Config::load(Some(args.config), std::env::vars()).map_err(|e| e.to_string())?;
    let k = c.migration.source.client_config();
    let upstream = Upstream::new(&k)?;
    upstream.credentials_ready().await?;
    let url = args
        .dynamodb_endpoint
        .map_or_else(|| k.dynamodb_url(), str::to_string);
    let dynamodb = upstream.sibling("--dynamodb-endpoint", &url, "dynamodb")?;
    Ok(AwsClient::dynamodb(Arc::new(dynamodb)))
}

fn table(args: &CheckpointsArgs<'_>) -> LeaseTable {
    LeaseTable {
        table: args.lease_table.to_string(),
        stream: Some(args.stream.to_string()),
    }
}

fn path(args: &CheckpointsArgs<'_>) -> String {
    format!(
        "/migration/{}/checkpoints?group={}",
        args.stream,
        query_escape(args.group)
    )
}

fn answered((status, body): (u16, String)) -> Result<GroupPositions, String> {
    if status != 200 {
        let why = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}: {}", body.trim()));
        return Err(why);
    }
    serde_json::from_str(&body).map_err(|e| format!("the replica answered something else: {e}"))
}

fn print_table(p: &GroupPositions) {
    println!(
        "{:<22} {:>58} {:>5} {:>14}",
        "shard", "checkpoint", "sub", "group offset"
    );
    for s in &p.shards {
        let offset = s.offset.map_or("-".to_string(), |o| o.to_string());
        println!(
            "{:<22} {:>58} {:>5} {:>14}",
            s.shard_id, s.checkpoint, s.sub_sequence_number, offset
        );
    }
}

/// Escapes a query value: unreserved characters as they are, the rest `%XX`.
fn query_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_ids_are_escaped_for_the_query() {
        assert_eq!(super::query_escape("kcl app/1+x"), "kcl%20app%2F1%2Bx");
    }
}
