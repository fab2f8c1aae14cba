//! `distlog group list|offsets|commit`.

use anyhow::Result;
use clap::Subcommand;
use distlog_server::proto::{
    CommitOffsetsRequest, CommittedOffset, FetchOffsetsRequest, ListGroupsRequest,
};
use serde_json::json;

use super::{Conn, status};
use crate::output::{Table, emit};

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// List groups that have committed offsets.
    List,
    /// Show a group's committed offsets.
    Offsets {
        group: String,
        /// Only this topic.
        #[arg(long, short = 't')]
        topic: Option<String>,
    },
    /// Commit a group's offset for one partition (the next offset to consume).
    Commit {
        group: String,
        topic: String,
        partition: u32,
        offset: i64,
        /// Free-form metadata stored with the offset.
        #[arg(long, default_value = "")]
        metadata: String,
    },
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
    }
}
