//! `distlog group list|describe|lag|offsets|commit|reset|delete`.
//!
//! A group here is the set of offsets committed under its name (over gRPC, the CLI or a
//! Kafka client's OffsetCommit). `describe` and `lag` compare each commit with its
//! partition's log; `reset` moves the commits of one topic (kafka-consumer-groups
//! `--reset-offsets`, rpk `group seek`), executing unless `--dry-run`.

use anyhow::{Result, bail};
use clap::{ArgGroup, Args, Subcommand};
use distlog_server::proto::{
    CommitOffsetsRequest, CommittedOffset, DeleteGroupRequest, DescribeGroupRequest,
    DescribeGroupResponse, Empty, FetchOffsetsRequest, ListGroupsRequest, ResetOffsetsRequest,
    ResetSpec, reset_spec::Spec,
};
use serde_json::json;

use super::{Conn, status, timefmt};
use crate::output::{Table, emit};

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// List groups that have committed offsets.
    #[command(visible_alias = "ls")]
    List,
    /// Show a group's commits against each partition's log: committed offset, log start
    /// and end, lag. A group without commits shows none (not an error).
    Describe {
        group: String,
        /// Only this topic.
        #[arg(long, short = 't')]
        topic: Option<String>,
    },
    /// Show a group's lag per partition and in total.
    Lag {
        group: String,
        /// Only this topic.
        #[arg(long, short = 't')]
        topic: Option<String>,
    },
    /// Show a group's committed offsets, with their metadata and commit times.
    Offsets {
        group: String,
        /// Only this topic.
        #[arg(long, short = 't')]
        topic: Option<String>,
    },
    /// Commit a group's offset for one partition (the next offset to consume, at most the
    /// partition's log end).
    Commit {
        group: String,
        topic: String,
        partition: u32,
        offset: i64,
        /// Free-form metadata stored with the offset.
        #[arg(long, short = 'm', default_value = "")]
        metadata: String,
    },
    /// Move a group's offsets in one topic (admin call), like kafka-consumer-groups
    /// --reset-offsets. Executes unless --dry-run; targets are clamped to each partition's
    /// log.
    Reset(ResetArgs),
    /// Delete every committed offset of one or more groups (admin call).
    #[command(visible_alias = "rm")]
    Delete {
        #[arg(required = true, value_name = "GROUP")]
        groups: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["to", "shift_by"])))]
pub struct ResetArgs {
    group: String,
    /// Topic whose offsets move.
    #[arg(long, short = 't')]
    topic: String,
    /// Only these partitions (comma-separated or repeated); default every partition.
    #[arg(long, short = 'p', value_delimiter = ',', value_name = "N")]
    partitions: Vec<u32>,
    /// Where to: `earliest`, `latest`, an offset, an RFC 3339 time (the first record at or
    /// after it, e.g. `2024-05-01T12:00:00Z`) or a duration ago (`1h`, `30m`, `2d`).
    #[arg(long, value_name = "WHERE", allow_hyphen_values = true)]
    to: Option<String>,
    /// Shift each committed offset by N (negative: back).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Print the plan; commit nothing.
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the plan (the default; accepted for kafka-consumer-groups habits).
    #[arg(long)]
    execute: bool,
}

/// The reset target of `--to` / `--shift-by`.
fn reset_spec(to: Option<&str>, shift_by: Option<i64>) -> Result<Spec> {
    if let Some(n) = shift_by {
        return Ok(Spec::ShiftBy(n));
    }
    let Some(to) = to.map(str::trim) else {
        bail!("give --to or --shift-by");
    };
    Ok(match to {
        "earliest" | "beginning" | "start" => Spec::Earliest(Empty {}),
        "latest" | "end" => Spec::Latest(Empty {}),
        _ if to.bytes().all(|b| b.is_ascii_digit()) && !to.is_empty() => {
            Spec::Offset(to.parse().map_err(|_| {
                anyhow::anyhow!("--to {to:?}: offset too large (at most {})", i64::MAX)
            })?)
        }
        _ if timefmt::looks_like_date(to) => Spec::TimestampMs(
            timefmt::parse_rfc3339(to).map_err(|e| anyhow::anyhow!("--to {to:?}: {e:#}"))?,
        ),
        _ if timefmt::looks_like_duration(to) => {
            let ago =
                timefmt::parse_duration(to).map_err(|e| anyhow::anyhow!("--to {to:?}: {e:#}"))?;
            Spec::TimestampMs(
                timefmt::now_ms().saturating_sub(i64::try_from(ago).unwrap_or(i64::MAX)),
            )
        }
        _ => bail!(
            "--to {to:?}: expected earliest, latest, an offset (digits), an RFC 3339 time \
             (2024-05-01T12:00:00Z) or a duration ago (1h, 30m, 2d)"
        ),
    })
}

async fn describe(
    conn: &Conn,
    group: &str,
    topic: Option<String>,
) -> Result<DescribeGroupResponse> {
    Ok(conn
        .groups()
        .describe_group(conn.request(DescribeGroupRequest {
            group: group.to_owned(),
            topic: topic.unwrap_or_default(),
        })?)
        .await
        .map_err(status("describe group"))?
        .into_inner())
}

fn or_unknown(v: i64) -> String {
    if v < 0 { "-".into() } else { v.to_string() }
}

pub async fn run(conn: &Conn, cmd: GroupCmd) -> Result<()> {
    let mut client = conn.groups();
    match cmd {
        GroupCmd::List => {
            let groups = client
                .list_groups(conn.request(ListGroupsRequest {})?)
                .await
                .map_err(status("list groups"))?
                .into_inner()
                .groups;
            emit(conn.output, &groups, || {
                let mut table = Table::new(["GROUP"]);
                for g in &groups {
                    table.row([g]);
                }
                table.render()
            })
        }
        GroupCmd::Describe { group, topic } => {
            let d = describe(conn, &group, topic).await?;
            let value = json!({
                "group": d.group,
                "total_lag": d.total_lag,
                "partitions": d.partitions.iter().map(|p| json!({
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed_offset": p.committed_offset,
                    "log_start_offset": p.log_start_offset,
                    "log_end_offset": p.log_end_offset,
                    "lag": p.lag,
                    "metadata": p.metadata,
                    "committed_at_ms": p.committed_at_ms,
                })).collect::<Vec<_>>(),
            });
            emit(conn.output, &value, || {
                if d.partitions.is_empty() {
                    return format!("group {} has no committed offsets\n", d.group);
                }
                let mut out = format!(
                    "group {}: {} partition(s), total lag {}\n\n",
                    d.group,
                    d.partitions.len(),
                    d.total_lag
                );
                let mut table = Table::new([
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-START-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "COMMITTED-AT",
                    "METADATA",
                ]);
                for p in &d.partitions {
                    table.row([
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.committed_offset.to_string(),
                        or_unknown(p.log_start_offset),
                        or_unknown(p.log_end_offset),
                        p.lag.to_string(),
                        timefmt::format_rfc3339(p.committed_at_ms),
                        p.metadata.clone(),
                    ]);
                }
                out.push_str(&table.render());
                out
            })
        }
        GroupCmd::Lag { group, topic } => {
            let d = describe(conn, &group, topic).await?;
            let value = json!({
                "group": d.group,
                "total_lag": d.total_lag,
                "partitions": d.partitions.iter().map(|p| json!({
                    "topic": p.topic,
                    "partition": p.partition,
                    "lag": p.lag,
                })).collect::<Vec<_>>(),
            });
            emit(conn.output, &value, || {
                let mut table = Table::new(["TOPIC", "PARTITION", "LAG"]);
                for p in &d.partitions {
                    table.row([p.topic.clone(), p.partition.to_string(), p.lag.to_string()]);
                }
                table.row(["TOTAL".to_owned(), String::new(), d.total_lag.to_string()]);
                table.render()
            })
        }
        GroupCmd::Offsets { group, topic } => {
            let offsets = client
                .fetch_offsets(conn.request(FetchOffsetsRequest {
                    group,
                    topic: topic.unwrap_or_default(),
                })?)
                .await
                .map_err(status("fetch offsets"))?
                .into_inner()
                .offsets;
            let value: Vec<_> = offsets
                .iter()
                .map(|o| {
                    json!({
                        "topic": o.topic,
                        "partition": o.partition,
                        "offset": o.offset,
                        "metadata": o.metadata,
                        "committed_at_ms": o.committed_at_ms,
                    })
                })
                .collect();
            emit(conn.output, &value, || {
                let mut table = Table::new([
                    "TOPIC",
                    "PARTITION",
                    "OFFSET",
                    "COMMITTED_AT_MS",
                    "METADATA",
                ]);
                for o in &offsets {
                    table.row([
                        o.topic.clone(),
                        o.partition.to_string(),
                        o.offset.to_string(),
                        o.committed_at_ms.to_string(),
                        o.metadata.clone(),
                    ]);
                }
                table.render()
            })
        }
        GroupCmd::Commit {
            group,
            topic,
            partition,
            offset,
            metadata,
        } => {
            client
                .commit_offsets(conn.request(CommitOffsetsRequest {
                    group: group.clone(),
                    offsets: vec![CommittedOffset {
                        topic: topic.clone(),
                        partition,
                        offset,
                        metadata,
                        committed_at_ms: 0,
                    }],
                })?)
                .await
                .map_err(status("commit offsets"))?;
            emit(
                conn.output,
                &json!({"group": group, "topic": topic, "partition": partition, "offset": offset}),
                || format!("committed {group} {topic}/{partition} at {offset}\n"),
            )
        }
        GroupCmd::Reset(args) => {
            let spec = reset_spec(args.to.as_deref(), args.shift_by)?;
            let response = client
                .reset_offsets(conn.request(ResetOffsetsRequest {
                    group: args.group.clone(),
                    topic: args.topic.clone(),
                    partitions: args.partitions,
                    spec: Some(ResetSpec { spec: Some(spec) }),
                    dry_run: args.dry_run,
                })?)
                .await
                .map_err(status("reset offsets"))?
                .into_inner();
            let value = json!({
                "group": args.group,
                "topic": args.topic,
                "dry_run": response.dry_run,
                "partitions": response.partitions.iter().map(|p| json!({
                    "topic": p.topic,
                    "partition": p.partition,
                    "previous_offset": (p.previous_offset >= 0).then_some(p.previous_offset),
                    "new_offset": p.new_offset,
                })).collect::<Vec<_>>(),
            });
            emit(conn.output, &value, || {
                let mut table = Table::new(["TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"]);
                for p in &response.partitions {
                    table.row([
                        p.topic.clone(),
                        p.partition.to_string(),
                        or_unknown(p.previous_offset),
                        p.new_offset.to_string(),
                    ]);
                }
                let mut out = table.render();
                out.push_str(if response.dry_run {
                    "dry run: nothing committed (run without --dry-run to commit)\n"
                } else {
                    "committed\n"
                });
                out
            })
        }
        GroupCmd::Delete { groups } => {
            let mut deleted = Vec::new();
            let mut failed = Vec::new();
            for group in groups {
                match client
                    .delete_group(conn.request(DeleteGroupRequest {
                        group: group.clone(),
                    })?)
                    .await
                {
                    Ok(r) => deleted.push((group, r.into_inner().offsets_deleted)),
                    Err(e) => failed.push((group, status("delete group")(e))),
                }
            }
            let value = json!({
                "deleted": deleted
                    .iter()
                    .map(|(g, n)| json!({"group": g, "offsets_deleted": n}))
                    .collect::<Vec<_>>(),
                "failed": failed
                    .iter()
                    .map(|(g, e)| json!({"group": g, "error": format!("{e:#}")}))
                    .collect::<Vec<_>>(),
            });
            emit(conn.output, &value, || {
                deleted
                    .iter()
                    .map(|(g, n)| format!("deleted group {g} ({n} committed offset(s))\n"))
                    .collect()
            })?;
            match failed.len() {
                0 => Ok(()),
                1 => Err(failed.remove(0).1),
                n => {
                    for (_, e) in &failed {
                        eprintln!("error: {e:#}");
                    }
                    let names: Vec<_> = failed.iter().map(|(g, _)| g.as_str()).collect();
                    bail!("{n} groups were not deleted: {}", names.join(", "))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_targets_parse() {
        assert_eq!(
            reset_spec(Some("earliest"), None).ok(),
            Some(Spec::Earliest(Empty {}))
        );
        assert_eq!(
            reset_spec(Some("latest"), None).ok(),
            Some(Spec::Latest(Empty {}))
        );
        assert_eq!(reset_spec(Some("42"), None).ok(), Some(Spec::Offset(42)));
        assert_eq!(
            reset_spec(Some("1970-01-01T00:00:01Z"), None).ok(),
            Some(Spec::TimestampMs(1000))
        );
        assert!(matches!(
            reset_spec(Some("1h"), None),
            Ok(Spec::TimestampMs(t)) if t > 0 && t < timefmt::now_ms()
        ));
        assert_eq!(reset_spec(None, Some(-3)).ok(), Some(Spec::ShiftBy(-3)));
        let err = reset_spec(Some("soon"), None).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("earliest, latest")));
        assert!(
            reset_spec(Some("-5"), None).is_err(),
            "a negative offset is refused"
        );
    }
}
