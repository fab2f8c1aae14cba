//! One-off timing of a large CreateTopic (not a benchmark with a baseline; see
//! docs/PERFORMANCE.md for those): `cargo run --release -p distlog-broker --example
//! create_topic_timing -- [partitions] [dir]` creates a topic with `partitions` (default 1024)
//! in a fresh data directory (default: a temporary one, on the file system of `$TMPDIR`) and
//! prints how long the create, a reopen of the broker and the delete took.

use distlog_broker::{Broker, BrokerConfig};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let partitions: u32 = args.next().map_or(Ok(1024), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map_or_else(|| tmp.path().to_owned(), Into::into);
    let mut config = BrokerConfig::new(&dir);
    config.plugins.enabled = false;
    config.retention_check_interval_ms = 0;
    let broker = Broker::open(config.clone())?;
    let start = Instant::now();
    broker.create_topic("big", partitions, BTreeMap::new())?;
    let create = start.elapsed();
    broker.close()?;
    drop(broker);
    let start = Instant::now();
    let broker = Broker::open(config)?;
    let reopen = start.elapsed();
    let start = Instant::now();
    broker.delete_topic("big")?;
    let delete = start.elapsed();
    broker.close()?;
    println!(
        "partitions={partitions} create={:.3}s reopen={:.3}s delete={:.3}s",
        create.as_secs_f64(),
        reopen.as_secs_f64(),
        delete.as_secs_f64()
    );
    Ok(())
}
