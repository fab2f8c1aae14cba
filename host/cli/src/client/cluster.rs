//! `distlog cluster info|health` (rpk `cluster info` / `cluster health`): the broker's
//! version, listeners, uptime and status. One broker is the whole cluster today.

use anyhow::Result;
use clap::Subcommand;
use distlog_server::proto::{BrokerStatus, DescribeClusterRequest, DescribeClusterResponse};
use serde_json::json;

use super::{Conn, status, timefmt};
use crate::output::{Table, emit};

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// The broker's version, node id, listeners (gRPC, Kafka, metrics), uptime, status and
    /// counts.
    Info,
    /// Whether the broker is serving; exits 1 when it is degraded or stopping, printing why.
    Health,
}

fn status_name(s: i32) -> &'static str {
    match BrokerStatus::try_from(s) {
        Ok(BrokerStatus::Serving) => "serving",
        Ok(BrokerStatus::Degraded) => "degraded",
        Ok(BrokerStatus::Stopping) => "stopping",
        _ => "unknown",
    }
}

/// `93784512` ms → `1d 2h 3m 4s`.
fn uptime(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

fn info_json(c: &DescribeClusterResponse) -> serde_json::Value {
    json!({
        "version": c.version,
        "node_id": c.node_id,
        "status": status_name(c.status),
        "healthy": c.status == BrokerStatus::Serving as i32,
        "problems": c.problems,
        "started_at_ms": c.started_at_ms,
        "uptime_ms": c.uptime_ms,
        "listeners": c.listeners.iter().map(|l| json!({
            "name": l.name,
            "address": l.address,
            "advertised": (!l.advertised.is_empty()).then_some(&l.advertised),
            "tls": l.tls,
        })).collect::<Vec<_>>(),
        "topics": c.topics,
        "partitions": c.partitions,
        "groups": c.groups,
        "data_dir": c.data_dir,
    })
}

pub async fn run(conn: &Conn, cmd: ClusterCmd) -> Result<()> {
    let c = conn
        .cluster()
        .describe_cluster(conn.request(DescribeClusterRequest {})?)
        .await
        .map_err(status("describe cluster"))?
        .into_inner();
    match cmd {
        ClusterCmd::Info => emit(conn.output, &info_json(&c), || {
            let mut out = String::new();
            let mut summary = Table::new(["BROKER", "VERSION", "STATUS", "UPTIME", "STARTED"]);
            summary.row([
                c.node_id.to_string(),
                c.version.clone(),
                status_name(c.status).to_owned(),
                uptime(c.uptime_ms),
                timefmt::format_rfc3339(c.started_at_ms),
            ]);
            out.push_str(&summary.render());
            out.push('\n');
            let mut listeners = Table::new(["LISTENER", "ADDRESS", "ADVERTISED", "TLS"]);
            for l in &c.listeners {
                listeners.row([
                    l.name.clone(),
                    l.address.clone(),
                    if l.advertised.is_empty() {
                        "-".to_owned()
                    } else {
                        l.advertised.clone()
                    },
                    l.tls.to_string(),
                ]);
            }
            out.push_str(&listeners.render());
            out.push_str(&format!(
                "\ntopics {}, partitions {}, groups {}; data in {}\n",
                c.topics, c.partitions, c.groups, c.data_dir
            ));
            for p in &c.problems {
                out.push_str(&format!("problem: {p}\n"));
            }
            out
        }),
        ClusterCmd::Health => {
            let healthy = c.status == BrokerStatus::Serving as i32;
            let value = json!({
                "healthy": healthy,
                "status": status_name(c.status),
                "problems": c.problems,
                "version": c.version,
                "uptime_ms": c.uptime_ms,
            });
            emit(conn.output, &value, || {
                let mut out = format!(
                    "Healthy: {healthy}\nStatus: {}\nVersion: {}\nUptime: {}\n",
                    status_name(c.status),
                    c.version,
                    uptime(c.uptime_ms)
                );
                for p in &c.problems {
                    out.push_str(&format!("Problem: {p}\n"));
                }
                out
            })?;
            if healthy {
                Ok(())
            } else {
                Err(crate::output::Quiet(1).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_a_duration() {
        assert_eq!(uptime(4_999), "4s");
        assert_eq!(uptime(62_000), "1m 2s");
        assert_eq!(uptime(3_723_000), "1h 2m 3s");
        assert_eq!(uptime(93_784_512), "1d 2h 3m 4s");
        assert_eq!(uptime(-5), "0s");
    }
}
