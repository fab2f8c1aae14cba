//! Producer ids for idempotent producers (what Kafka's InitProducerId hands out).
//!
//! Ids are handed out from blocks of [`BLOCK`]. Before the first id of a block is handed out,
//! the block's end is appended to the internal compacted log
//! `<data_dir>/internal/__producer_ids/` and synced; at open the broker continues after the
//! last end recorded. A crash therefore skips at most the rest of a block and never hands out
//! an id twice, which is what a producer id must guarantee: two producers with one id would
//! fence each other's sequences. Coordinator state persists only through storage.
//!
//! Invariant: every id returned is below a block end that is durable on the log.

use crate::BrokerError;
use crate::config::BrokerConfig;
use crate::error::append_error;
use distlog_storage::batch::{BatchBuilder, Record};
use distlog_storage::{Log, LogThreads};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The internal log's name.
pub const PRODUCER_IDS_LOG: &str = "__producer_ids";
/// Ids per persisted block.
pub const BLOCK: i64 = 1000;
const KEY: &[u8] = b"block-end";

/// The allocator.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    log: Arc<Log>,
    /// `(next id, end of the durable block)`.
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub(crate) fn dir(data_dir: &Path) -> PathBuf {
        data_dir.join("internal").join(PRODUCER_IDS_LOG)
    }

    /// Opens (creating if needed) the log and continues after the last block it records.
    /// Cost: one read of the log's last batch.
    pub(crate) fn open(
        threads: &Arc<LogThreads>,
        data_dir: &Path,
        broker: &BrokerConfig,
    ) -> Result<Self, BrokerError> {
        let dir = Self::dir(data_dir);
        std::fs::create_dir_all(&dir).map_err(|e| BrokerError::io("create", &dir, e))?;
        let config = crate::internal::config(&[
            ("cleanup.policy", "compact"),
            ("flush.policy", "batch"),
            ("segment.bytes", "1048576"),
        ])?;
        let log = crate::topics::topic::open_log(threads, &dir, config.log_config(broker))?;
        let end = last_end(&log)?;
        Ok(Self {
            log,
            state: Mutex::new((end, end)),
        })
    }

    /// A producer id never handed out before (by this broker, across restarts).
    /// Cost: none, except once per [`BLOCK`] ids one append and one fsync.
    pub(crate) fn next(&self) -> Result<i64, BrokerError> {
        let mut state = self.state.lock();
        if state.0 >= state.1 {
            let end = state.1.checked_add(BLOCK).ok_or_else(|| {
                BrokerError::FailedPrecondition("producer ids are exhausted".into())
            })?;
            let mut builder = BatchBuilder::new();
            builder
                .push(&Record {
                    timestamp: crate::now_ms(),
                    key: Some(KEY.to_vec()),
                    value: Some(end.to_le_bytes().to_vec()),
                    headers: Vec::new(),
                })
                .map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
            let mut batch = builder
                .finish()
                .map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
            self.log
                .append(&mut batch)
                .map_err(|e| append_error(PRODUCER_IDS_LOG, 0, e))?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }

    /// Closes the log (at broker close): every block end is already synced.
    pub(crate) fn close(&self) -> Result<(), BrokerError> {
        self.log.close().map_err(|e| BrokerError::Storage {
            topic: PRODUCER_IDS_LOG.to_owned(),
            partition: 0,
            message: e.to_string(),
        })
    }
}

/// The end of the last block recorded (0 for an empty log).
fn last_end(log: &Log) -> Result<i64, BrokerError> {
    let mut end = 0i64;
    crate::internal::for_each_record(log, PRODUCER_IDS_LOG, |r| {
        let Some(v) = r.value().and_then(|v| <[u8; 8]>::try_from(v).ok()) else {
            return Err(BrokerError::Corrupt {
                topic: PRODUCER_IDS_LOG.to_owned(),
                partition: 0,
                message: format!("record at offset {} is not a block end", r.offset()),
            });
        };
        end = end.max(i64::from_le_bytes(v));
        Ok(())
    })?;
    Ok(end)
}

#[cfg(test)]
mod tests {
    //! Ids are unique across reopen and crash: a reopened allocator starts after the last
    //! durable block end, whatever it handed out before.
    use super::*;

    fn open(dir: &Path) -> ProducerIds {
        let threads = LogThreads::start().expect("threads");
        ProducerIds::open(&threads, dir, &BrokerConfig::new(dir)).expect("open")
    }

    #[test]
    fn ids_are_never_handed_out_twice_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..3 {
            let ids = open(dir.path());
            let n = if round == 1 { BLOCK as usize + 5 } else { 3 };
            for _ in 0..n {
                assert!(seen.insert(ids.next().unwrap()), "an id came back");
            }
            // Round 0 closes cleanly; the others are dropped as a crash would leave them.
            if round == 0 {
                ids.close().unwrap();
            }
        }
        // Each reopen skips to the next block.
        assert_eq!(seen.first(), Some(&0));
        assert!(seen.contains(&BLOCK));
        assert!(seen.contains(&(3 * BLOCK)));
    }
}
