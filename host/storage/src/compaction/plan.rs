//! What the cleaner keeps, decided without IO (the cleaner in `log/clean.rs` carries it out).
//!
//! Two decisions, both pure functions over descriptors:
//!
//! - [`plan`]: which segments a pass reads to build its [`OffsetMap`] (the *dirty* ones, up to a
//!   byte budget) and which segments it rewrites (every inactive segment from the log start to
//!   the end of that dirty range, in [`CleanPlan::groups`] of consecutive segments, each group
//!   rewritten into one segment). The active segment is never part of a plan.
//! - [`decide`]: for one record, keep it or drop it, given the offset map: the latest record
//!   per key is kept; records without a key are always kept; a tombstone is kept until
//!   `delete_retention_ms` after the max timestamp of the segment holding it and dropped
//!   afterwards; the last record of the log is never dropped, so the log end offset never
//!   moves back.

use crate::segment::SegmentInfo;
use std::collections::HashMap;
use std::ops::Range;

/// The latest offset of each key over the dirty range (Kafka's `OffsetMap`, with whole keys
/// rather than hashes, so no collision can drop a live record).
///
/// Cost: one hash map entry per distinct key; memory grows with the distinct keys of the
/// dirty range, which the pass budget ([`plan`]'s `max_dirty_bytes`) bounds.
#[derive(Debug, Default, Clone)]
pub struct OffsetMap {
    latest: HashMap<Box<[u8]>, u64>,
    key_bytes: usize,
}

impl OffsetMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `key` occurs at `offset`; keeps the larger offset if the key is known.
    pub fn insert(&mut self, key: &[u8], offset: u64) {
        if let Some(o) = self.latest.get_mut(key) {
            *o = (*o).max(offset);
        } else {
            self.key_bytes += key.len();
            self.latest.insert(key.into(), offset);
        }
    }

    /// The latest offset recorded for `key`.
    pub fn latest(&self, key: &[u8]) -> Option<u64> {
        self.latest.get(key).copied()
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether no key was recorded.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Bytes of keys held (a memory estimate).
    pub fn key_bytes(&self) -> usize {
        self.key_bytes
    }
}

/// What a pass does, as indexes into the segment list given to [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanPlan {
    /// Segments read to build the offset map (the dirty range of this pass).
    pub map_segments: Range<usize>,
    /// Groups of consecutive segments, from the log start to the end of the dirty range; each
    /// group is rewritten into one segment named by its first segment's base offset.
    pub groups: Vec<Range<usize>>,
    /// The offset up to which the log is clean once the pass completes (the base offset of the
    /// first segment after the dirty range).
    pub cleaned_up_to: u64,
}

fn next_offset(s: &SegmentInfo) -> u64 {
    s.last_offset.wrapping_add(1)
}

/// Chooses the work of one pass over `segments` (oldest first, the last one active), given the
/// offset below which the log was already cleaned. Returns `None` when no inactive segment
/// holds dirty data.
///
/// The dirty range starts at the first inactive segment that ends after `cleaned_up_to` and
/// takes segments while their total size stays within `max_dirty_bytes` (at least one). Groups
/// are formed greedily from the log start: a group takes segments while their total size stays
/// within `max_group_bytes` (at least one) and its offsets span at most `u32::MAX` (the relative
/// offsets of an index). Cost: one pass over the descriptors.
pub fn plan(
    segments: &[SegmentInfo],
    cleaned_up_to: u64,
    max_dirty_bytes: u64,
    max_group_bytes: u64,
) -> Option<CleanPlan> {
    let inactive = segments.len().saturating_sub(1);
    let first_dirty = segments[..inactive]
        .iter()
        .position(|s| next_offset(s) > cleaned_up_to && s.record_count > 0)?;
    let mut end = first_dirty;
    let mut bytes = 0u64;
    while end < inactive {
        let size = segments[end].size_bytes;
        if end > first_dirty && bytes.saturating_add(size) > max_dirty_bytes {
            break;
        }
        bytes = bytes.saturating_add(size);
        end += 1;
    }
    let mut groups = Vec::new();
    let mut start = 0;
    while start < end {
        let base = segments[start].base_offset;
        let mut stop = start + 1;
        let mut size = segments[start].size_bytes;
        while stop < end {
            let s = &segments[stop];
            let span = next_offset(s).saturating_sub(base);
            if size.saturating_add(s.size_bytes) > max_group_bytes || span > u64::from(u32::MAX) {
                break;
            }
            size += s.size_bytes;
            stop += 1;
        }
        groups.push(start..stop);
        start = stop;
    }
    Some(CleanPlan {
        map_segments: first_dirty..end,
        groups,
        cleaned_up_to: segments[end].base_offset,
    })
}

/// What the cleaner knows of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFacts<'a> {
    /// The record's offset.
    pub offset: u64,
    /// Its compaction key, as the key extractor returned it (`None`: no key).
    pub key: Option<&'a [u8]>,
    /// Whether its value is null.
    pub tombstone: bool,
}

/// The parts of a decision that are the same for a whole pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// The log end offset when the pass started: the record at `log_end_offset - 1` is kept.
    pub log_end_offset: u64,
    /// The clock when the pass started, ms.
    pub now_ms: i64,
    /// How long tombstones are kept after their segment's max timestamp, ms.
    pub delete_retention_ms: u64,
}

/// The fate of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Kept at its offset.
    Keep,
    /// Dropped: a later record has the same key.
    Superseded,
    /// Dropped: a tombstone older than the delete retention.
    ExpiredTombstone,
}

impl Verdict {
    /// Whether the record stays.
    pub fn keeps(self) -> bool {
        self == Self::Keep
    }
}

/// Decides the fate of `record`, held by a segment whose max timestamp is
/// `segment_max_timestamp`. See the module docs for the rules. Cost: one hash lookup.
pub fn decide(
    record: &RecordFacts<'_>,
    segment_max_timestamp: i64,
    map: &OffsetMap,
    horizon: &Horizon,
) -> Verdict {
    if record.offset.wrapping_add(1) == horizon.log_end_offset {
        return Verdict::Keep;
    }
    let Some(key) = record.key else {
        return Verdict::Keep;
    };
    if map.latest(key).is_some_and(|latest| latest > record.offset) {
        return Verdict::Superseded;
    }
    let retention = i64::try_from(horizon.delete_retention_ms).unwrap_or(i64::MAX);
    if record.tombstone && segment_max_timestamp.saturating_add(retention) <= horizon.now_ms {
        return Verdict::ExpiredTombstone;
    }
    Verdict::Keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn seg(base: u64, records: u64, size: u64) -> SegmentInfo {
        SegmentInfo {
            base_offset: base,
            last_offset: (base + records).wrapping_sub(1),
            size_bytes: size,
            first_timestamp: 0,
            max_timestamp: 0,
            record_count: records,
            active: false,
        }
    }

    #[test]
    fn plan_never_names_the_active_segment() {
        let segs = [seg(0, 10, 100), seg(10, 10, 100), seg(20, 5, 50)];
        let p = plan(&segs, 0, u64::MAX, u64::MAX).expect("dirty");
        assert_eq!(p.map_segments, 0..2);
        assert_eq!(p.groups, vec![0..2]);
        assert_eq!(p.cleaned_up_to, 20);
        assert_eq!(plan(&segs, 20, u64::MAX, u64::MAX), None);
        assert_eq!(plan(&segs[..1], 0, u64::MAX, u64::MAX), None);
        assert_eq!(plan(&[], 0, u64::MAX, u64::MAX), None);
    }

    #[test]
    fn plan_bounds_the_dirty_range_and_groups_by_size() {
        let segs: Vec<_> = (0..6).map(|i| seg(i * 10, 10, 100)).collect();
        let p = plan(&segs, 10, 250, 200).expect("dirty");
        assert_eq!(p.map_segments, 1..3);
        assert_eq!(p.groups, vec![0..2, 2..3]);
        assert_eq!(p.cleaned_up_to, 30);
        // A budget below one segment still makes progress.
        let p = plan(&segs, 0, 1, 1).expect("dirty");
        assert_eq!(p.map_segments, 0..1);
        assert_eq!(p.groups, vec![0..1]);
    }

    #[derive(Debug, Clone)]
    struct Rec {
        key: Option<u8>,
        tombstone: bool,
    }

    fn records() -> impl Strategy<Value = Vec<Vec<Rec>>> {
        let rec = (prop::option::of(0u8..6), prop::bool::weighted(0.2))
            .prop_map(|(key, tombstone)| Rec { key, tombstone });
        prop::collection::vec(prop::collection::vec(rec, 1..8), 1..6)
    }

    proptest! {
        /// Against a model written the other way round: walk the log backwards remembering the
        /// keys seen; a record is kept if it has no key, or is the last of its key and not an
        /// expired tombstone, or is the very last record.
        #[test]
        fn decide_matches_a_backwards_model(
            segments in records(),
            now in 0i64..40,
            retention in 0u64..20,
        ) {
            // Segment i has max timestamp 10 * i.
            let mut flat = Vec::new();
            for (i, s) in segments.iter().enumerate() {
                for r in s {
                    flat.push((flat.len() as u64, i as i64 * 10, r.clone()));
                }
            }
            let end = flat.len() as u64;
            let mut map = OffsetMap::new();
            for (offset, _, r) in &flat {
                if let Some(k) = r.key {
                    map.insert(&[k], *offset);
                }
            }
            let horizon = Horizon { log_end_offset: end, now_ms: now, delete_retention_ms: retention };
            let kept: BTreeSet<u64> = flat
                .iter()
                .filter(|(offset, max_ts, r)| {
                    let key = r.key.map(|k| [k]);
                    let facts = RecordFacts {
                        offset: *offset,
                        key: key.as_ref().map(|k| &k[..]),
                        tombstone: r.tombstone,
                    };
                    decide(&facts, *max_ts, &map, &horizon).keeps()
                })
                .map(|(o, _, _)| *o)
                .collect();

            let mut seen = BTreeSet::new();
            let mut model = BTreeSet::new();
            for (offset, max_ts, r) in flat.iter().rev() {
                let last_of_key = r.key.is_none_or(|k| seen.insert(k));
                let expired = r.tombstone && max_ts + retention as i64 <= now;
                let keep = *offset + 1 == end
                    || r.key.is_none()
                    || (last_of_key && !expired);
                if keep {
                    model.insert(*offset);
                }
            }
            prop_assert_eq!(kept, model);
        }

        /// Every inactive segment up to the end of the dirty range is in exactly one group, in
        /// order; the map range is inside it; the active segment is never included.
        #[test]
        fn plan_groups_cover_the_cleaned_range(
            sizes in prop::collection::vec((1u64..5, 1u64..300), 1..12),
            cleaned in 0u64..40,
            dirty_budget in 1u64..1000,
            group_budget in 1u64..1000,
        ) {
            let mut segs = Vec::new();
            let mut base = 0;
            for (records, size) in sizes {
                segs.push(seg(base, records, size));
                base += records;
            }
            if let Some(p) = plan(&segs, cleaned, dirty_budget, group_budget) {
                let inactive = segs.len() - 1;
                prop_assert!(p.map_segments.end <= inactive);
                prop_assert!(!p.map_segments.is_empty());
                let mut at = 0;
                for g in &p.groups {
                    prop_assert_eq!(g.start, at);
                    prop_assert!(g.end > g.start);
                    at = g.end;
                }
                prop_assert_eq!(at, p.map_segments.end);
                prop_assert_eq!(p.cleaned_up_to, segs[at].base_offset);
                prop_assert!(segs[p.map_segments.start].last_offset + 1 > cleaned);
            } else {
                let inactive = &segs[..segs.len() - 1];
                prop_assert!(inactive.iter().all(|s| s.last_offset < cleaned));
            }
        }
    }
}
