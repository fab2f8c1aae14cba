//! The files of compaction and deletion, and how opening a log finishes or discards what a
//! crash interrupted. The protocol is in docs/FORMAT.md ("Compaction and deletion").
//!
//! Invariants (each step is durable before the next starts):
//! 1. A `.cleaned` file is never the only copy of anything: its sources are untouched until the
//!    swap commits. Opening a log deletes every `.cleaned` file.
//! 2. A group's swap *commits* when `{base}.log.swap` is durable. Before that, its manifest
//!    `{base}.sources.swap` and its indexes `{base}.index.swap`, `{base}.timeindex.swap` are
//!    already durable. Opening a log completes every committed swap (removes the sources the
//!    manifest names, renames the `.swap` files over the segment's files) and deletes every
//!    other `.swap` file.
//! 3. A segment being deleted is first renamed to `.deleted` (its `.log` first, oldest segment
//!    first); the renames are made durable before the files are removed. Opening a log removes
//!    every `.deleted` file and never renames one back, so a deleted segment never returns.

use crate::io::{OpenMode, Storage};
use crate::segment::{index_name, log_name, parse_name, time_index_name};
use std::collections::BTreeSet;
use std::io;

/// Suffix of a file a cleaner is writing (not yet committed).
pub const CLEANED: &str = ".cleaned";
/// Suffix of a file of a swap (committed once the `.log.swap` is durable).
pub const SWAP: &str = ".swap";
/// Suffix of a file being deleted.
pub const DELETED: &str = ".deleted";
/// File name of the cleaner checkpoint.
pub const CLEANER_CHECKPOINT_NAME: &str = "cleaner-offset.checkpoint";
const MANIFEST_MAGIC: &[u8; 4] = b"DLSW";
const CLEANER_MAGIC: &[u8; 4] = b"DLCO";
const VERSION: u16 = 1;

/// `{base:020}.sources`: the manifest of a cleaned group (before its suffix).
pub fn manifest_name(base: u64) -> String {
    format!("{base:020}.sources")
}

/// The three file names of segment `base`, `.log` first.
pub fn segment_names(base: u64) -> [String; 3] {
    [log_name(base), index_name(base), time_index_name(base)]
}

pub(crate) fn remove_if_exists(storage: &dyn Storage, name: &str) -> io::Result<bool> {
    match storage.remove(name) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn rename_if_exists(storage: &dyn Storage, from: &str, to: &str) -> io::Result<bool> {
    match storage.rename(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Encodes a manifest: magic, version, count (u32), source base offsets (u64 each), CRC32C of
/// everything before it; little-endian.
pub(crate) fn encode_manifest(sources: &[u64]) -> Vec<u8> {
    let mut b = Vec::with_capacity(10 + 8 * sources.len() + 4);
    b.extend_from_slice(MANIFEST_MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&(sources.len() as u32).to_le_bytes());
    for s in sources {
        b.extend_from_slice(&s.to_le_bytes());
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode_manifest(b: &[u8]) -> Option<Vec<u64>> {
    let (body, crc) = b.split_at_checked(b.len().checked_sub(4)?)?;
    if crc32c::crc32c(body).to_le_bytes() != crc
        || body.get(..4)? != MANIFEST_MAGIC
        || body.get(4..6)? != VERSION.to_le_bytes()
    {
        return None;
    }
    let count = u32::from_le_bytes(body.get(6..10)?.try_into().ok()?) as usize;
    let rest = body.get(10..)?;
    if rest.len() != count.checked_mul(8)? {
        return None;
    }
    rest.chunks_exact(8)
        .map(|c| c.try_into().ok().map(u64::from_le_bytes))
        .collect()
}

/// Writes `bytes` to a new file `name` (replacing any) and syncs it. Not durable by name until
/// the directory is synced.
pub(crate) fn write_new(storage: &dyn Storage, name: &str, bytes: &[u8]) -> io::Result<()> {
    let file = storage.open(name, OpenMode::Create)?;
    file.set_len(0)?;
    file.write_at(bytes, 0)?;
    file.sync()
}

/// What [`finish_pending`] did.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// Base offsets of segments replaced by a completed swap: their checkpoint entries (if any)
    /// describe the old contents and must not be trusted.
    pub(crate) swapped: BTreeSet<u64>,
    /// Whether anything was changed.
    pub(crate) changed: bool,
}

/// Completes committed swaps and discards every other leftover of compaction and deletion
/// (see the module docs). Idempotent: a crash while it runs is finished by the next open.
/// Cost: a directory listing, plus a few renames and directory syncs when there are leftovers.
pub(crate) fn finish_pending(storage: &dyn Storage) -> io::Result<Finished> {
    let names = storage.list()?;
    let mut done = Finished::default();
    for name in names.iter().filter(|n| n.ends_with(CLEANED)) {
        tracing::warn!(file = %name, "removing unfinished compaction output");
        remove_if_exists(storage, name)?;
        done.changed = true;
    }
    let committed: Vec<u64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(SWAP))
        .filter_map(parse_name)
        .filter(|(_, ext)| *ext == "log")
        .map(|(base, _)| base)
        .collect();
    for &base in &committed {
        let manifest = manifest_name(base) + SWAP;
        let sources = crate::io::read_whole(storage, &manifest)?
            .and_then(|b| decode_manifest(&b))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{manifest} is missing or corrupt, but {base:020}.log.swap exists"),
                )
            })?;
        tracing::warn!(
            segment = base,
            ?sources,
            "completing an interrupted compaction swap"
        );
        for &s in sources.iter().filter(|&&s| s != base) {
            for name in segment_names(s) {
                remove_if_exists(storage, &name)?;
            }
        }
        storage.sync_dir()?;
        for name in [index_name(base), time_index_name(base)] {
            if !rename_if_exists(storage, &format!("{name}{SWAP}"), &name)? {
                // Recovery rebuilds a missing index from the segment.
                remove_if_exists(storage, &name)?;
            }
        }
        storage.rename(&format!("{}{SWAP}", log_name(base)), &log_name(base))?;
        storage.sync_dir()?;
        done.swapped.insert(base);
        done.changed = true;
    }
    for name in storage.list()? {
        if name.ends_with(SWAP) || name.ends_with(DELETED) {
            remove_if_exists(storage, &name)?;
            done.changed = true;
        }
    }
    if done.changed {
        storage.sync_dir()?;
    }
    Ok(done)
}

/// Renames segment `base`'s files to `.deleted`, `.log` first: once that rename is done the
/// segment is deleted (an index without its `.log` is removed on open). Returns the new names.
/// Not durable until the directory is synced.
pub(crate) fn rename_to_deleted(storage: &dyn Storage, base: u64) -> io::Result<Vec<String>> {
    crate::failpoint::hit("delete::rename")?;
    let mut renamed = Vec::with_capacity(3);
    for (i, name) in segment_names(base).into_iter().enumerate() {
        let to = format!("{name}{DELETED}");
        match rename_if_exists(storage, &name, &to) {
            Ok(true) => renamed.push(to),
            Ok(false) => {}
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "renaming index of a deleted segment failed")
            }
        }
    }
    Ok(renamed)
}

/// Deletes the files of the segments `bases` crash-safely: renames each segment's files to
/// `.deleted` (oldest segment first, see [`rename_to_deleted`]), syncs the directory, then
/// removes them. A crash before the directory sync leaves the segments in place or a prefix
/// of them deleted; after it, all of them are deleted. Cost: one directory sync plus two
/// metadata operations per file.
pub(crate) fn delete_segments(storage: &dyn Storage, bases: &[u64]) -> io::Result<()> {
    let mut sorted = bases.to_vec();
    sorted.sort_unstable();
    let mut renamed = Vec::with_capacity(sorted.len() * 3);
    for base in sorted {
        renamed.extend(rename_to_deleted(storage, base)?);
    }
    if renamed.is_empty() {
        return Ok(());
    }
    storage.sync_dir()?;
    for name in renamed {
        remove_if_exists(storage, &name)?;
    }
    Ok(())
}

/// Removes the files of cleaned segment `base` whose swap did not commit (`.cleaned`, and the
/// `.swap` files renamed before the commit point). Best effort: errors are logged, and the next
/// open removes whatever is left.
pub(crate) fn discard_uncommitted(storage: &dyn Storage, base: u64) {
    let [log, index, time_index] = segment_names(base);
    for name in [&log, &index, &time_index, &manifest_name(base)] {
        for suffix in [CLEANED, SWAP] {
            if suffix == SWAP && *name == log {
                // `.log.swap` is the commit: never removed here.
                continue;
            }
            let file = format!("{name}{suffix}");
            if let Err(e) = remove_if_exists(storage, &file) {
                tracing::warn!(file = %file, error = %e, "removing unfinished compaction output failed");
            }
        }
    }
}

/// A committed swap: the cleaned segment `base` replaces the segments `sources` (`base` first).
#[derive(Debug, Clone)]
pub(crate) struct PendingSwap {
    pub(crate) base: u64,
    pub(crate) sources: Vec<u64>,
    /// Whether the cleaned segment stays (false: it is empty and not the log's first).
    pub(crate) keep: bool,
}

/// Carries out a committed swap on disk: syncs the directory (making the commit durable),
/// deletes the other sources (durably), renames the `.swap` files over the segment's files,
/// syncs the directory, removes the manifest.
/// Idempotent: a retry after a failure finishes the job. Cost: two or three directory syncs.
pub(crate) fn complete_swap(storage: &dyn Storage, swap: &PendingSwap) -> io::Result<()> {
    let base = swap.base;
    crate::failpoint::hit("compaction::swap")?;
    // Makes the commit (the `.log.swap` rename) durable.
    storage.sync_dir()?;
    // The sources' removal is durable before the swap file takes the segment's name: the
    // other way round, a crash could bring a source back next to its replacement.
    let others: Vec<u64> = swap
        .sources
        .iter()
        .copied()
        .filter(|&s| s != base)
        .collect();
    delete_segments(storage, &others)?;
    for name in [index_name(base), time_index_name(base)] {
        rename_if_exists(storage, &format!("{name}{SWAP}"), &name)?;
    }
    crate::failpoint::hit("compaction::rename_log")?;
    rename_if_exists(
        storage,
        &format!("{}{SWAP}", log_name(base)),
        &log_name(base),
    )?;
    storage.sync_dir()?;
    crate::failpoint::hit("compaction::swapped")?;
    remove_if_exists(storage, &format!("{}{SWAP}", manifest_name(base)))?;
    if !swap.keep {
        delete_segments(storage, &[base])?;
    }
    Ok(())
}

/// The cleaner checkpoint's two offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// The log is clean below this (the compaction planner's dirty range starts here).
    pub(crate) cleaned_up_to: u64,
    /// Offsets may have gaps below this (compaction removed batches); at and above it every
    /// batch's offsets continue the previous batch exactly. Raised *before* a pass swaps any
    /// segment, so a crash mid-pass never leaves a gapped segment above it.
    pub(crate) gaps_below: u64,
}

const CLEANER_VERSION: u16 = 2;

/// Reads the cleaner checkpoint. None: both offsets 0 (never compacted). Unusable: cleaned up
/// to 0 (the whole log counts as dirty; cleaning it again is safe) and gaps anywhere (offset
/// checks fall back to "increasing", which never mistakes a compacted segment for damage).
/// Version 1 files (one offset) read as `gaps_below = cleaned_up_to`.
pub(crate) fn read_cleaner_offset(storage: &dyn Storage) -> io::Result<CleanerCheckpoint> {
    let Some(b) = crate::io::read_whole(storage, CLEANER_CHECKPOINT_NAME)? else {
        return Ok(CleanerCheckpoint {
            cleaned_up_to: 0,
            gaps_below: 0,
        });
    };
    let parsed = (|| {
        let (body, crc) = b.split_at_checked(b.len().checked_sub(4)?)?;
        if crc32c::crc32c(body).to_le_bytes() != crc || body.get(..4)? != CLEANER_MAGIC {
            return None;
        }
        let version = u16::from_le_bytes(body.get(4..6)?.try_into().ok()?);
        let first = u64::from_le_bytes(body.get(6..14)?.try_into().ok()?);
        match (version, body.len()) {
            (1, 14) => Some(CleanerCheckpoint {
                cleaned_up_to: first,
                gaps_below: first,
            }),
            (CLEANER_VERSION, 22) => Some(CleanerCheckpoint {
                cleaned_up_to: first,
                gaps_below: u64::from_le_bytes(body.get(14..22)?.try_into().ok()?),
            }),
            _ => None,
        }
    })();
    Ok(parsed.unwrap_or_else(|| {
        tracing::warn!("ignoring unusable cleaner checkpoint; the whole log counts as dirty");
        CleanerCheckpoint {
            cleaned_up_to: 0,
            gaps_below: u64::MAX,
        }
    }))
}

/// Writes the cleaner checkpoint atomically ([`crate::io::replace`]): magic
/// `DLCO`, version 2, `cleaned_up_to` u64, `gaps_below` u64, CRC32C; little-endian. Cost: two
/// fsyncs.
pub(crate) fn write_cleaner_offset(storage: &dyn Storage, c: CleanerCheckpoint) -> io::Result<()> {
    let mut b = Vec::with_capacity(26);
    b.extend_from_slice(CLEANER_MAGIC);
    b.extend_from_slice(&CLEANER_VERSION.to_le_bytes());
    b.extend_from_slice(&c.cleaned_up_to.to_le_bytes());
    b.extend_from_slice(&c.gaps_below.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    crate::io::replace(storage, CLEANER_CHECKPOINT_NAME, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_rejects_damage() {
        let b = encode_manifest(&[5, 10, 20]);
        assert_eq!(decode_manifest(&b), Some(vec![5, 10, 20]));
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 1;
            assert_eq!(decode_manifest(&d), None);
            assert_eq!(decode_manifest(&b[..i]), None);
        }
    }
}
