use super::file::{decode, encode};
use super::*;
use crate::io::MemStorage;
use crate::io::sim::{Crash, CrashStorage};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn e(epoch: u32, start_offset: u64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

fn cache(entries: &[(u32, u64)]) -> LeaderEpochs {
    LeaderEpochs::from_entries(entries.iter().map(|&(a, b)| e(a, b)).collect()).unwrap()
}

#[test]
fn assign_appends_higher_epochs_and_ignores_the_current_one() {
    let mut c = LeaderEpochs::new();
    assert_eq!(c.assign(1, 0), Ok(true));
    assert_eq!(c.assign(1, 5), Ok(false));
    assert_eq!(c.assign(3, 10), Ok(true));
    assert_eq!(c.assign(3, 12), Ok(false));
    assert_eq!(c.entries(), &[e(1, 0), e(3, 10)]);
    assert_eq!(c.latest(), Some(e(3, 10)));
    assert_eq!(c.latest_epoch(), Some(3));
}

#[test]
fn an_epoch_without_records_is_replaced_by_the_next_one_at_the_same_offset() {
    let mut c = cache(&[(1, 0), (2, 10)]);
    assert_eq!(c.assign(4, 10), Ok(true));
    assert_eq!(c.entries(), &[e(1, 0), e(4, 10)]);
}

#[test]
fn assign_refuses_older_epochs_and_earlier_offsets() {
    let mut c = cache(&[(1, 0), (3, 10)]);
    assert_eq!(
        c.assign(2, 20),
        Err(AssignError::EpochBelowLatest {
            epoch: 2,
            latest: 3
        })
    );
    assert_eq!(
        c.assign(4, 9),
        Err(AssignError::StartBelowLatest {
            epoch: 4,
            start_offset: 9,
            latest: 3,
            latest_start: 10
        })
    );
    assert!(matches!(
        c.assign(3, 9),
        Err(AssignError::StartBelowLatest { .. })
    ));
    assert_eq!(c.entries(), &[e(1, 0), e(3, 10)]);
}

#[test]
fn from_batches_keeps_the_first_batch_of_each_epoch() {
    let c = LeaderEpochs::from_batches([(0, 0), (0, 3), (2, 7), (2, 9), (5, 12)]).unwrap();
    assert_eq!(c.entries(), &[e(0, 0), e(2, 7), e(5, 12)]);
    assert!(matches!(
        LeaderEpochs::from_batches([(2, 0), (1, 3)]),
        Err(AssignError::EpochBelowLatest { .. })
    ));
    assert!(LeaderEpochs::from_batches([]).unwrap().is_empty());
}

#[test]
fn truncate_from_end_forgets_epochs_starting_at_or_after_the_new_end() {
    let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
    assert!(!c.truncate_from_end(25));
    assert!(c.truncate_from_end(20));
    assert_eq!(c.entries(), &[e(1, 0), e(2, 10)]);
    assert!(c.truncate_from_end(5));
    assert_eq!(c.entries(), &[e(1, 0)]);
    assert!(c.truncate_from_end(0));
    assert!(c.is_empty());
}

#[test]
fn truncate_from_start_moves_the_covering_epoch_up_to_the_log_start() {
    let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
    assert!(!c.truncate_from_start(0));
    assert!(c.truncate_from_start(15));
    assert_eq!(c.entries(), &[e(2, 15), e(3, 20)]);
    assert!(!c.truncate_from_start(15));
    assert!(c.truncate_from_start(20));
    assert_eq!(c.entries(), &[e(3, 20)]);
    assert!(c.truncate_from_start(30));
    assert_eq!(c.entries(), &[e(3, 30)]);

    let mut below = cache(&[(4, 100)]);
    assert!(!below.truncate_from_start(50));
    assert_eq!(below.entries(), &[e(4, 100)]);
    assert!(!LeaderEpochs::new().truncate_from_start(7));
}

#[test]
fn end_offset_for_follows_kafka() {
    let c = cache(&[(2, 10), (4, 20), (5, 30)]);
    // The latest epoch ends at the log end.
    assert_eq!(c.end_offset_for(5, 42), Some((5, 42)));
    // A known epoch ends where the next one starts.
    assert_eq!(c.end_offset_for(4, 42), Some((4, 30)));
    assert_eq!(c.end_offset_for(2, 42), Some((2, 20)));
    // An epoch this log skipped: the epoch below it, ending where the one above starts.
    assert_eq!(c.end_offset_for(3, 42), Some((2, 20)));
    // Older than anything known: the requested epoch, ending at the first known start.
    assert_eq!(c.end_offset_for(1, 42), Some((1, 10)));
    assert_eq!(c.end_offset_for(0, 42), Some((0, 10)));
    // Newer than the latest, or nothing known: UNDEFINED.
    assert_eq!(c.end_offset_for(6, 42), None);
    assert_eq!(LeaderEpochs::new().end_offset_for(0, 0), None);
}

#[test]
fn epoch_at_finds_the_covering_entry() {
    let c = cache(&[(2, 10), (4, 20)]);
    assert_eq!(c.epoch_at(9), None);
    assert_eq!(c.epoch_at(10), Some(2));
    assert_eq!(c.epoch_at(19), Some(2));
    assert_eq!(c.epoch_at(20), Some(4));
    assert_eq!(c.epoch_at(u64::MAX), Some(4));
}

#[test]
fn from_entries_rejects_non_increasing_lists() {
    assert_eq!(
        LeaderEpochs::from_entries(vec![e(1, 0), e(1, 5)]),
        Err(Corruption::NotIncreasing { index: 1 })
    );
    assert_eq!(
        LeaderEpochs::from_entries(vec![e(1, 0), e(2, 5), e(3, 5)]),
        Err(Corruption::NotIncreasing { index: 2 })
    );
}

#[test]
fn the_file_layout_is_the_documented_one() {
    let bytes = encode(&[e(7, 0x0102_0304_0506_0708)]);
    let mut expected = Vec::new();
    expected.extend_from_slice(b"DLLE");
    expected.extend_from_slice(&[1, 0]);
    expected.extend_from_slice(&[1, 0, 0, 0]);
    expected.extend_from_slice(&[7, 0, 0, 0]);
    expected.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
    let crc = crc32c::crc32c(&expected);
    expected.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(bytes.len(), 10 + 12 + 4);
}

#[test]
fn load_of_a_missing_file_is_empty_and_write_round_trips() {
    let storage = MemStorage::new();
    assert!(LeaderEpochs::load(&storage).unwrap().is_empty());
    let c = cache(&[(0, 0), (3, 17), (9, 1 << 40)]);
    c.write(&storage).unwrap();
    assert_eq!(LeaderEpochs::load(&storage).unwrap(), c);
    assert!(storage.read_file(LEADER_EPOCHS_TMP_NAME).is_none());
    assert_eq!(
        LEADER_EPOCHS_TMP_NAME,
        crate::io::temp_name(LEADER_EPOCHS_NAME)
    );
    LeaderEpochs::new().write(&storage).unwrap();
    assert!(LeaderEpochs::load(&storage).unwrap().is_empty());
}

#[test]
fn a_damaged_file_is_reported_as_corrupt() {
    let good = encode(&[e(1, 0), e(2, 10)]);
    let load = |bytes: Vec<u8>| {
        let storage = MemStorage::from_files([(LEADER_EPOCHS_NAME.to_owned(), bytes)]);
        LeaderEpochs::load(&storage)
    };
    assert!(load(good.clone()).is_ok());

    let mut flipped = good.clone();
    flipped[12] ^= 0x40;
    assert!(matches!(
        load(flipped),
        Err(LoadError::Corrupt(Corruption::CrcMismatch { .. }))
    ));
    assert!(matches!(
        load(good[..good.len() - 1].to_vec()),
        Err(LoadError::Corrupt(Corruption::CrcMismatch { .. }))
    ));
    assert!(matches!(
        load(vec![0; 5]),
        Err(LoadError::Corrupt(Corruption::TooShort { len: 5 }))
    ));

    // Structurally wrong contents under a valid CRC.
    let resealed = |mut body: Vec<u8>| {
        body.truncate(body.len() - 4);
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    };
    let mut magic = good.clone();
    magic[0] = b'X';
    assert_eq!(decode(&resealed(magic)), Err(Corruption::BadMagic));
    let mut version = good.clone();
    version[4] = 2;
    assert_eq!(
        decode(&resealed(version)),
        Err(Corruption::UnknownVersion(2))
    );
    let mut count = good.clone();
    count[6] = 3;
    assert_eq!(
        decode(&resealed(count)),
        Err(Corruption::LengthMismatch {
            len: good.len() as u64,
            count: 3
        })
    );
    let unordered = encode(&[e(2, 0), e(1, 10)]);
    assert!(matches!(
        load(unordered),
        Err(LoadError::Corrupt(Corruption::NotIncreasing { index: 1 }))
    ));
}

/// A crash at any point of a write leaves the old file or the new one, never a corrupt one.
#[test]
fn a_crash_during_write_leaves_the_old_or_the_new_file() {
    let old = cache(&[(1, 0)]);
    let new = cache(&[(1, 0), (2, 10), (3, 20)]);
    for ops in 0..8 {
        for crash in [
            Crash::DropUnsynced,
            Crash::Torn { seed: ops },
            Crash::KeepAll,
        ] {
            let storage = CrashStorage::new();
            old.write(&storage).unwrap();
            storage.fail_after(Some(ops));
            let written = new.write(&storage).is_ok();
            let image = storage.crash_image(crash);
            let loaded = LeaderEpochs::load(&image).unwrap();
            assert!(
                loaded == old || loaded == new,
                "ops {ops}, {crash:?}: {loaded:?}"
            );
            if written {
                assert_eq!(loaded, new, "a completed write is durable");
            }
        }
    }
}

/// The operations a log performs on its epochs, for the model test.
#[derive(Debug, Clone)]
enum Op {
    /// Append a batch of `records` in the current epoch, or in a later one.
    Append { bump: u32, records: u64 },
    /// A new leader takes over at the log end before writing anything.
    Elect { bump: u32 },
    /// Follower truncation to a point between the log start and end (a fraction of it).
    TruncateEnd { at: f64 },
    /// Retention raising the log start.
    TruncateStart { at: f64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => ((0u32..3), (1u64..5)).prop_map(|(bump, records)| Op::Append { bump, records }),
        1 => (1u32..3).prop_map(|bump| Op::Elect { bump }),
        1 => (0.0..=1.0f64).prop_map(|at| Op::TruncateEnd { at }),
        1 => (0.0..=1.0f64).prop_map(|at| Op::TruncateStart { at }),
    ]
}

/// Kafka's `LeaderEpochFileCache`, transcribed onto a map from epoch to start offset, and the
/// log it describes, one epoch per offset.
#[derive(Debug, Default)]
struct Model {
    epochs: BTreeMap<u32, u64>,
    log_start: u64,
    records: Vec<u32>,
}

impl Model {
    fn log_end(&self) -> u64 {
        self.log_start + self.records.len() as u64
    }

    fn assign(&mut self, epoch: u32, start: u64) {
        let last = self.epochs.iter().next_back().map(|(&e, &s)| (e, s));
        let needed = last.is_none_or(|(e, s)| epoch != e || start < s);
        if needed {
            self.epochs.retain(|&e, &mut s| e < epoch && s < start);
            self.epochs.insert(epoch, start);
        }
    }

    fn truncate_from_end(&mut self, end: u64) {
        self.epochs.retain(|_, &mut s| s < end);
    }

    fn truncate_from_start(&mut self, start: u64) {
        let removed: Vec<u32> = self
            .epochs
            .iter()
            .filter(|&(_, &s)| s <= start)
            .map(|(&e, _)| e)
            .collect();
        for e in &removed {
            self.epochs.remove(e);
        }
        if let Some(&last) = removed.last() {
            self.epochs.insert(last, start);
        }
    }

    fn end_offset_for(&self, requested: u32, log_end: u64) -> Option<(u32, u64)> {
        let latest = self.epochs.keys().next_back().copied();
        if latest == Some(requested) {
            return Some((requested, log_end));
        }
        let (_, &higher) = self.epochs.range(requested + 1..).next()?;
        match self.epochs.range(..=requested).next_back() {
            None => Some((requested, higher)),
            Some((&floor, _)) => Some((floor, higher)),
        }
    }
}

proptest! {
    #[test]
    fn the_cache_behaves_like_kafkas(ops in proptest::collection::vec(op(), 0..40)) {
        let mut model = Model::default();
        let mut cache = LeaderEpochs::new();
        let storage = MemStorage::new();
        for op in ops {
            let current = cache.latest_epoch().unwrap_or(0);
            let end = model.log_end();
            let span = end - model.log_start;
            match op {
                Op::Append { bump, records } => {
                    let epoch = current + bump;
                    prop_assert!(cache.assign(epoch, end).is_ok());
                    model.assign(epoch, end);
                    model.records.extend(std::iter::repeat_n(epoch, records as usize));
                }
                Op::Elect { bump } => {
                    let epoch = current + bump;
                    prop_assert_eq!(cache.assign(epoch, end), Ok(true));
                    model.assign(epoch, end);
                }
                Op::TruncateEnd { at } => {
                    let to = model.log_start + (span as f64 * at) as u64;
                    cache.truncate_from_end(to);
                    model.truncate_from_end(to);
                    model.records.truncate((to - model.log_start) as usize);
                }
                Op::TruncateStart { at } => {
                    let to = model.log_start + (span as f64 * at) as u64;
                    cache.truncate_from_start(to);
                    model.truncate_from_start(to);
                    model.records.drain(..(to - model.log_start) as usize);
                    model.log_start = to;
                }
            }
            let expected: Vec<EpochEntry> =
                model.epochs.iter().map(|(&epoch, &start_offset)| EpochEntry { epoch, start_offset }).collect();
            prop_assert_eq!(cache.entries(), &expected[..]);
            let end = model.log_end();
            let max = cache.latest_epoch().unwrap_or(0);
            for requested in 0..=max + 2 {
                prop_assert_eq!(
                    cache.end_offset_for(requested, end),
                    model.end_offset_for(requested, end),
                    "epoch {}", requested
                );
            }
            for (i, &epoch) in model.records.iter().enumerate() {
                prop_assert_eq!(cache.epoch_at(model.log_start + i as u64), Some(epoch));
            }
            // Rebuilding from the batches gives the same list, less an epoch still without
            // records at the log end.
            let batches = model.records.iter().enumerate().map(|(i, &epoch)| (epoch, model.log_start + i as u64));
            let mut with_records = cache.clone();
            with_records.truncate_from_end(end);
            prop_assert_eq!(LeaderEpochs::from_batches(batches), Ok(with_records));
            cache.write(&storage).unwrap();
            prop_assert_eq!(&LeaderEpochs::load(&storage).unwrap(), &cache);
        }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&bytes);
    }
}
