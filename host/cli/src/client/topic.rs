//! `distlog topic create|list|describe|delete|alter|add-partitions`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clap::Subcommand;
use distlog_server::proto::{
    AddPartitionsRequest, AlterTopicConfigRequest, ConfigSource, CreateTopicRequest,
    DeleteTopicRequest, DescribeTopicRequest, ListTopicsRequest, TopicDescription,
};
use serde_json::json;

use super::{Conn, parse_pairs, status};
use crate::output::{Table, emit};

#[derive(Debug, Subcommand)]
pub enum TopicCmd {
    /// Create a topic (admin call).
    Create {
        name: String,
        /// Number of partitions; without it, the broker's `broker.default_partitions`.
        #[arg(long, short = 'p', value_name = "N")]
        partitions: Option<u32>,
        /// Topic configuration, KEY=VALUE (repeatable), e.g. `-c retention.ms=3600000`.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// List topics.
    #[command(visible_alias = "ls")]
    List,
    /// Show a topic's configuration (each value's source: default, broker or topic) and,
    /// per partition, offsets, record count, segments and bytes.
    Describe {
        name: String,
        /// Also list every segment.
        #[arg(long, short = 'S')]
        segments: bool,
    },
    /// Delete one or more topics and all their data (admin call). Each is deleted on its
    /// own; the command fails if any could not be.
    #[command(visible_alias = "rm")]
    Delete {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Change a topic's configuration (admin call).
    Alter {
        name: String,
        /// Key to set, KEY=VALUE (repeatable).
        #[arg(long = "set", short = 's', value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Key to reset to the broker default (repeatable).
        #[arg(long = "reset", short = 'r', value_name = "KEY")]
        reset: Vec<String>,
        /// Only validate; show what the configuration would become.
        #[arg(long)]
        validate_only: bool,
    },
    /// Grow a topic to a total partition count (admin call; counts only grow). Records
    /// routed by key afterwards use the new count, so a key's partition may change.
    AddPartitions {
        name: String,
        /// The partition count wanted, larger than the current one.
        #[arg(long, short = 'n', value_name = "N")]
        total: u32,
        /// Only check that the topic could grow.
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
                // 0 asks the broker for its default.
                partitions: partitions.unwrap_or(0),
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
        TopicCmd::Delete { names } => {
            let mut deleted = Vec::new();
            let mut failed = Vec::new();
            for name in names {
                match client
                    .delete_topic(conn.request(DeleteTopicRequest { name: name.clone() })?)
                    .await
                {
                    Ok(_) => deleted.push(name),
                    Err(e) => failed.push((name, status("delete topic")(e))),
                }
            }
            let value = json!({
                "deleted": deleted,
                "failed": failed
                    .iter()
                    .map(|(n, e)| json!({"name": n, "error": format!("{e:#}")}))
                    .collect::<Vec<_>>(),
            });
            emit(conn.output, &value, || {
                deleted
                    .iter()
                    .map(|n| format!("deleted topic {n}\n"))
                    .collect()
            })?;
            match failed.len() {
                0 => Ok(()),
                1 => Err(failed.remove(0).1),
                n => {
                    let names: Vec<_> = failed.iter().map(|(n, _)| n.as_str()).collect();
                    for (_, e) in &failed {
                        eprintln!("error: {e:#}");
                    }
                    anyhow::bail!("{n} topics were not deleted: {}", names.join(", "))
                }
            }
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
        TopicCmd::AddPartitions {
            name,
            total,
            validate_only,
        } => {
            let response = client
                .add_partitions(conn.request(AddPartitionsRequest {
                    name: name.clone(),
                    total,
                    validate_only,
                })?)
                .await
                .map_err(status("add partitions"))?
                .into_inner();
            let before = response.topic.as_ref().map_or(0, |t| t.partitions.len());
            let count = response.partition_count;
            let value = json!({
                "name": name,
                "partitions": count,
                "validate_only": validate_only,
            });
            emit(conn.output, &value, || {
                if validate_only {
                    format!("topic {name} can grow from {before} to {count} partitions\n")
                } else {
                    format!("topic {name} now has {count} partitions\n")
                }
            })
        }
    }
}

fn source_name(source: i32) -> &'static str {
    match ConfigSource::try_from(source) {
        Ok(ConfigSource::Topic) => "topic",
        Ok(ConfigSource::Broker) => "broker",
        Ok(ConfigSource::Default) => "default",
        _ => "unknown",
    }
}

fn describe_json(topic: &TopicDescription) -> serde_json::Value {
    let config: BTreeMap<_, _> = topic.config.iter().collect();
    json!({
        "name": topic.name,
        "created_at_ms": topic.created_at_ms,
        "config": config,
        "config_entries": topic.config_entries.iter().map(|e| json!({
            "name": e.name,
            "value": e.value,
            "source": source_name(e.source),
            "default": ConfigSource::try_from(e.source) != Ok(ConfigSource::Topic),
        })).collect::<Vec<_>>(),
        "partitions": topic.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "log_start_offset": p.log_start_offset,
            "log_end_offset": p.log_end_offset,
            "record_count": p.record_count,
            "size_bytes": p.size_bytes,
            "segments": p.segments.iter().map(|s| json!({
                "base_offset": s.base_offset,
                "end_offset": s.end_offset,
                "record_count": s.record_count,
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
            p.record_count.to_string(),
            p.segments.len().to_string(),
            p.size_bytes.to_string(),
        ]);
    }
    out.push_str(&table.render());
    if segments {
        let mut table = Table::new([
            "PARTITION",
            "BASE",
            "END",
            "RECORDS",
            "BYTES",
            "MAX_TS_MS",
            "ACTIVE",
        ]);
        for p in &topic.partitions {
            for s in &p.segments {
                table.row([
                    p.partition.to_string(),
                    s.base_offset.to_string(),
                    s.end_offset.to_string(),
                    s.record_count.to_string(),
                    s.size_bytes.to_string(),
                    s.max_timestamp_ms.to_string(),
                    s.active.to_string(),
                ]);
            }
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    if !topic.config_entries.is_empty() {
        // As `rpk topic describe` / kafka-configs: the value and where it comes from; only
        // `topic` is an override of this topic.
        let mut table = Table::new(["KEY", "VALUE", "SOURCE"]);
        for e in &topic.config_entries {
            table.row([e.name.as_str(), e.value.as_str(), source_name(e.source)]);
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    out
}
