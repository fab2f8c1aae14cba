//! `distlog topic create|list|describe|delete|alter`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clap::Subcommand;
use distlog_server::proto::{
    AlterTopicConfigRequest, CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest,
    ListTopicsRequest, TopicDescription,
};
use serde_json::json;

use super::{Conn, parse_pairs, status};
use crate::output::{Table, emit};

#[derive(Debug, Subcommand)]
pub enum TopicCmd {
    /// Create a topic (admin call).
    Create {
        name: String,
        /// Number of partitions (0 = the broker's default).
        #[arg(long, short = 'p', default_value_t = 1)]
        partitions: u32,
        /// Topic configuration, KEY=VALUE (repeatable), e.g. `-c retention.ms=3600000`.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// List topics.
    List,
    /// Show a topic's configuration and, per partition, offsets, segments and bytes.
    Describe {
        name: String,
        /// Also list every segment.
        #[arg(long)]
        segments: bool,
    },
    /// Delete a topic and all its data (admin call).
    Delete { name: String },
    /// Change a topic's configuration (admin call).
    Alter {
        name: String,
        /// Key to set, KEY=VALUE (repeatable).
        #[arg(long = "set", short = 's', value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Key to reset to the broker default (repeatable).
        #[arg(long = "reset", value_name = "KEY")]
        reset: Vec<String>,
        /// Only validate; show what the configuration would become.
        #[arg(long)]
        validate_only: bool,
    },
}

pub async fn run(conn: &Conn, cmd: TopicCmd) -> Result<()> {
    let mut client = conn.topics();
    match cmd {
        TopicCmd::Create {
            name,
            partitions,
            config,
        } => {
            let request = CreateTopicRequest {
                name: name.clone(),
                partitions,
                config: parse_pairs(&config)?,
            };
            let topic = client
                .create_topic(conn.request(request)?)
                .await
                .map_err(status("create topic"))?
                .into_inner()
                .topic
                .context("broker returned no topic")?;
            let count = topic.partitions.len();
            emit(conn.output, &describe_json(&topic), || {
                format!("created topic {name} with {count} partition(s)\n")
            })
        }
        TopicCmd::List => {
            let topics = client
                .list_topics(conn.request(ListTopicsRequest {})?)
                .await
                .map_err(status("list topics"))?
                .into_inner()
                .topics;
            let value = json!(
                topics
                    .iter()
                    .map(|t| json!({"name": t.name, "partitions": t.partitions}))
                    .collect::<Vec<_>>()
            );
            emit(conn.output, &value, || {
                let mut table = Table::new(["NAME", "PARTITIONS"]);
                for t in &topics {
                    table.row([t.name.clone(), t.partitions.to_string()]);
                }
                table.render()
            })
        }
        TopicCmd::Describe { name, segments } => {
            let topic = client
                .describe_topic(conn.request(DescribeTopicRequest { name })?)
                .await
                .map_err(status("describe topic"))?
                .into_inner()
                .topic
                .context("broker returned no topic")?;
            emit(conn.output, &describe_json(&topic), || {
                describe_table(&topic, segments)
            })
        }
        TopicCmd::Delete { name } => {
            client
                .delete_topic(conn.request(DeleteTopicRequest { name: name.clone() })?)
                .await
                .map_err(status("delete topic"))?;
            emit(conn.output, &json!({"deleted": name}), || {
                format!("deleted topic {name}\n")
            })
        }
        TopicCmd::Alter {
            name,
            set,
            reset,
            validate_only,
        } => {
            let request = AlterTopicConfigRequest {
                name,
                set: parse_pairs(&set)?,
                reset,
                validate_only,
            };
            let config = client
                .alter_topic_config(conn.request(request)?)
                .await
                .map_err(status("alter topic"))?
                .into_inner()
                .config;
            let config: BTreeMap<_, _> = config.into_iter().collect();
            emit(conn.output, &config, || config_table(&config))
        }
    }
}

fn describe_json(topic: &TopicDescription) -> serde_json::Value {
    let config: BTreeMap<_, _> = topic.config.iter().collect();
    json!({
        "name": topic.name,
        "created_at_ms": topic.created_at_ms,
        "config": config,
        "partitions": topic.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "log_start_offset": p.log_start_offset,
            "log_end_offset": p.log_end_offset,
            "size_bytes": p.size_bytes,
            "segments": p.segments.iter().map(|s| json!({
                "base_offset": s.base_offset,
                "end_offset": s.end_offset,
                "size_bytes": s.size_bytes,
                "max_timestamp_ms": s.max_timestamp_ms,
                "active": s.active,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn config_table(config: &BTreeMap<String, String>) -> String {
    let mut table = Table::new(["KEY", "VALUE"]);
    for (k, v) in config {
        table.row([k, v]);
    }
    table.render()
}

fn describe_table(topic: &TopicDescription, segments: bool) -> String {
    let mut out = format!(
        "topic {} ({} partition(s))\n\n",
        topic.name,
        topic.partitions.len()
    );
    let mut table = Table::new(["PARTITION", "START", "END", "RECORDS", "SEGMENTS", "BYTES"]);
    for p in &topic.partitions {
        table.row([
            p.partition.to_string(),
            p.log_start_offset.to_string(),
            p.log_end_offset.to_string(),
            (p.log_end_offset - p.log_start_offset).to_string(),
            p.segments.len().to_string(),
            p.size_bytes.to_string(),
        ]);
    }
    out.push_str(&table.render());
    if segments {
        let mut table = Table::new(["PARTITION", "BASE", "END", "BYTES", "MAX_TS_MS", "ACTIVE"]);
        for p in &topic.partitions {
            for s in &p.segments {
                table.row([
                    p.partition.to_string(),
                    s.base_offset.to_string(),
                    s.end_offset.to_string(),
                    s.size_bytes.to_string(),
                    s.max_timestamp_ms.to_string(),
                    s.active.to_string(),
                ]);
            }
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    let config: BTreeMap<_, _> = topic.config.clone().into_iter().collect();
    if !config.is_empty() {
        out.push('\n');
        out.push_str(&config_table(&config));
    }
    out
}
