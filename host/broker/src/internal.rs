//! Internal logs (`<data_dir>/internal/<name>/`): the storage coordinators persist through
//! (consumer-group offsets, producer-id blocks), read back whole at open.

use crate::BrokerError;
use crate::config::TopicConfig;
use crate::error::read_error;
use distlog_storage::Log;
use distlog_storage::batch::{Compression, RecordIter, RecordRef};

/// The topic configuration of an internal log: `entries` over the defaults (never the
/// broker's topic defaults, which are for user topics).
pub(crate) fn config(entries: &[(&str, &str)]) -> Result<TopicConfig, BrokerError> {
    let entries = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    TopicConfig::resolve(&Default::default(), &entries)
}

/// Calls `f` with every record of the internal log `name` at or after its start, in offset
/// order. A batch that does not decode is an error (storage already checked its CRC: it is
/// damage, not a torn tail), and internal logs are never compressed.
/// Cost: one pass over the log, 1 MiB per read.
pub(crate) fn for_each_record(
    log: &Log,
    name: &str,
    mut f: impl FnMut(&RecordRef<'_>) -> Result<(), BrokerError>,
) -> Result<(), BrokerError> {
    let corrupt = |message: String| BrokerError::Corrupt {
        topic: name.to_owned(),
        partition: 0,
        message,
    };
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let fetched = log
            .read(offset, 1 << 20)
            .map_err(|e| read_error(name, 0, e))?;
        if fetched.batch_count == 0 {
            break;
        }
        for view in fetched.batches() {
            if !matches!(view.header().compression(), Compression::None) {
                return Err(corrupt(format!(
                    "batch at offset {} is compressed",
                    view.base_offset()
                )));
            }
            let records = RecordIter::new(view.payload(), view.header())
                .map_err(|e| corrupt(e.to_string()))?;
            for r in records {
                let r = r.map_err(|e| corrupt(e.to_string()))?;
                if r.offset() >= offset {
                    f(&r)?;
                }
            }
        }
        offset = fetched.next_offset;
    }
    Ok(())
}
