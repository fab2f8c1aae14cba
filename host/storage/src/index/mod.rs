//! Sparse per-segment indexes: the offset index (relative offset -> file position) and the time
//! index (max timestamp so far -> relative offset). Entry layouts in docs/FORMAT.md.
//!
//! Both are caches of information in the segment file: a missing, corrupt or stale index is
//! rebuilt from the segment. The entry for the segment's first batch (position 0) is implicit, so
//! every stored entry has a non-zero second field (offset index: position; time index: relative
//! offset); the first all-zero slot marks the end of the entries, which lets a preallocated,
//! zero-filled file be reopened after a crash without a separate length field.
//!
//! Files are preallocated (`index_max_bytes`) while their segment is active and trimmed to their
//! entries when it is sealed. On a real file system they are memory-mapped (memmap2); other
//! [`StorageFile`]s get a buffered copy with write-through.

use crate::io::StorageFile;
use memmap2::{MmapMut, MmapOptions};
use std::io;
use std::sync::Arc;

/// Offset index entry: relative offset u32, position u32.
pub const OFFSET_ENTRY: usize = 8;
/// Time index entry: timestamp i64, relative offset u32.
pub const TIME_ENTRY: usize = 12;

#[derive(Debug)]
enum Buf {
    Map(MmapMut),
    Mem(Vec<u8>),
}

impl Buf {
    fn bytes(&self) -> &[u8] {
        match self {
            Buf::Map(m) => m,
            Buf::Mem(v) => v,
        }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Buf::Map(m) => m,
            Buf::Mem(v) => v,
        }
    }
}

/// A file of fixed-size entries, mapped or buffered.
#[derive(Debug)]
pub(crate) struct IndexFile {
    file: Arc<dyn StorageFile>,
    buf: Buf,
    entry_size: usize,
    entries: usize,
}

fn load(file: &Arc<dyn StorageFile>, len: u64) -> io::Result<Buf> {
    if len == 0 {
        return Ok(Buf::Mem(Vec::new()));
    }
    let len_usize = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidData)?;
    if let Some(std_file) = file.as_std_file() {
        // SAFETY: the index file lives in the partition directory, which one broker process
        // owns; this struct is the only writer of the file while it is mapped, and it drops the
        // map before changing the file's length (`trim`, `grow`), so the mapping never refers
        // past the end of the file.
        let map = unsafe { MmapOptions::new().len(len_usize).map_mut(std_file)? };
        Ok(Buf::Map(map))
    } else {
        let mut v = vec![0u8; len_usize];
        file.read_at(&mut v, 0)?;
        Ok(Buf::Mem(v))
    }
}

impl IndexFile {
    /// Opens an index file. With `capacity` set, the file is first extended (zero-filled) to that
    /// many bytes (rounded down to whole entries), for an active segment. Counts the leading
    /// non-zero entries; does not validate them (see [`OffsetIndex::validate`]).
    pub(crate) fn open(
        file: Arc<dyn StorageFile>,
        entry_size: usize,
        capacity: Option<u64>,
    ) -> io::Result<Self> {
        let mut len = file.len()?;
        len -= len % entry_size as u64;
        if let Some(cap) = capacity {
            let cap = cap - cap % entry_size as u64;
            if cap > len {
                file.set_len(cap)?;
                len = cap;
            }
        }
        let buf = load(&file, len)?;
        let entries = buf
            .bytes()
            .chunks_exact(entry_size)
            .position(|e| e.iter().all(|&b| b == 0))
            .unwrap_or(len as usize / entry_size);
        Ok(Self {
            file,
            buf,
            entry_size,
            entries,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    fn capacity(&self) -> usize {
        self.buf.bytes().len() / self.entry_size
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity()
    }

    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        &self.buf.bytes()[i * self.entry_size..(i + 1) * self.entry_size]
    }

    /// Appends an entry; `Ok(false)` when the preallocated space is full.
    fn push(&mut self, entry: &[u8]) -> io::Result<bool> {
        if self.is_full() {
            return Ok(false);
        }
        let at = self.entries * self.entry_size;
        self.buf.bytes_mut()[at..at + self.entry_size].copy_from_slice(entry);
        if let Buf::Mem(_) = self.buf {
            self.file.write_at(entry, at as u64)?;
        }
        self.entries += 1;
        Ok(true)
    }

    /// Drops entries from `n` on (zero-fills them).
    pub(crate) fn truncate(&mut self, n: usize) -> io::Result<()> {
        if n >= self.entries {
            return Ok(());
        }
        let (from, to) = (n * self.entry_size, self.entries * self.entry_size);
        self.buf.bytes_mut()[from..to].fill(0);
        if let Buf::Mem(_) = self.buf {
            self.file.write_at(&vec![0u8; to - from], from as u64)?;
        }
        self.entries = n;
        Ok(())
    }

    /// Shrinks the file to its entries (on seal). Cost: one `ftruncate` and a remap.
    pub(crate) fn trim(&mut self) -> io::Result<()> {
        let len = (self.entries * self.entry_size) as u64;
        self.buf = Buf::Mem(Vec::new());
        self.file.set_len(len)?;
        self.buf = load(&self.file, len)?;
        Ok(())
    }

    /// Extends the file (zero-filled) to at least `capacity` bytes so entries can be added, e.g.
    /// to rebuild a sealed segment's trimmed or missing index. Cost: one `ftruncate`, a remap.
    pub(crate) fn reserve(&mut self, capacity: u64) -> io::Result<()> {
        let capacity = capacity - capacity % self.entry_size as u64;
        if (self.buf.bytes().len() as u64) >= capacity {
            return Ok(());
        }
        self.buf = Buf::Mem(Vec::new());
        self.file.set_len(capacity)?;
        self.buf = load(&self.file, capacity)?;
        Ok(())
    }

    /// Makes the entries durable (msync + fsync). Expensive; done once when a segment is sealed.
    pub(crate) fn sync(&self) -> io::Result<()> {
        if let Buf::Map(m) = &self.buf {
            m.flush()?;
        }
        self.file.sync()
    }
}

/// Relative offset -> file position, one entry per `index_interval_bytes` of batches.
#[derive(Debug)]
pub(crate) struct OffsetIndex(pub(crate) IndexFile);

impl OffsetIndex {
    pub(crate) fn get(&self, i: usize) -> (u32, u32) {
        let e = self.0.entry(i);
        (
            u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
            u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
        )
    }

    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.0.len().checked_sub(1).map(|i| self.get(i))
    }

    /// Appends `(relative offset, position)`; `Ok(false)` when full.
    pub(crate) fn push(&mut self, rel: u32, pos: u32) -> io::Result<bool> {
        let mut e = [0u8; OFFSET_ENTRY];
        e[..4].copy_from_slice(&rel.to_le_bytes());
        e[4..].copy_from_slice(&pos.to_le_bytes());
        self.0.push(&e)
    }

    /// Position of the last indexed batch whose relative offset is <= `rel` (0 if none).
    /// Cost: binary search, O(log entries).
    pub(crate) fn lookup(&self, rel: u32) -> u32 {
        let n = self.0.len();
        let idx = partition_point(n, |i| self.get(i).0 <= rel);
        if idx == 0 { 0 } else { self.get(idx - 1).1 }
    }

    /// Keeps only entries with position < `pos`.
    pub(crate) fn truncate_to_position(&mut self, pos: u64) -> io::Result<()> {
        let n = partition_point(self.0.len(), |i| u64::from(self.get(i).1) < pos);
        self.0.truncate(n)
    }

    /// Cheap sanity check: entries strictly increase in both fields and point below `size`.
    /// Cost: one pass over the mapped entries, no IO.
    pub(crate) fn validate(&self, size: u64) -> bool {
        let mut prev = (0u32, 0u32);
        for i in 0..self.0.len() {
            let (rel, pos) = self.get(i);
            if rel <= prev.0 || pos <= prev.1 || u64::from(pos) >= size {
                return false;
            }
            prev = (rel, pos);
        }
        true
    }
}

/// Max timestamp so far -> relative offset of the batch where that entry was added.
#[derive(Debug)]
pub(crate) struct TimeIndex(pub(crate) IndexFile);

impl TimeIndex {
    pub(crate) fn get(&self, i: usize) -> (i64, u32) {
        let e = self.0.entry(i);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[..8]);
        (
            i64::from_le_bytes(ts),
            u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
        )
    }

    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.0.len().checked_sub(1).map(|i| self.get(i))
    }

    /// Appends `(timestamp, relative offset)`; `Ok(false)` when full.
    pub(crate) fn push(&mut self, ts: i64, rel: u32) -> io::Result<bool> {
        let mut e = [0u8; TIME_ENTRY];
        e[..8].copy_from_slice(&ts.to_le_bytes());
        e[8..].copy_from_slice(&rel.to_le_bytes());
        self.0.push(&e)
    }

    /// Relative offset to start a timestamp search from: that of the last entry whose timestamp
    /// is < `ts` (every batch before it has max timestamp < `ts`), or 0. Binary search.
    pub(crate) fn lookup(&self, ts: i64) -> u32 {
        let idx = partition_point(self.0.len(), |i| self.get(i).0 < ts);
        if idx == 0 { 0 } else { self.get(idx - 1).1 }
    }

    /// Keeps only entries with relative offset < `rel`.
    pub(crate) fn truncate_to_rel(&mut self, rel: u64) -> io::Result<()> {
        let n = partition_point(self.0.len(), |i| u64::from(self.get(i).1) < rel);
        self.0.truncate(n)
    }

    /// Cheap sanity check: timestamps strictly and offsets weakly increasing, offsets below
    /// `next_rel`.
    pub(crate) fn validate(&self, next_rel: u64) -> bool {
        let mut prev: Option<(i64, u32)> = None;
        for i in 0..self.0.len() {
            let (ts, rel) = self.get(i);
            if let Some((pts, prel)) = prev
                && (ts <= pts || rel < prel)
            {
                return false;
            }
            if u64::from(rel) >= next_rel {
                return false;
            }
            prev = Some((ts, rel));
        }
        true
    }
}

/// First index in `0..n` where `pred` is false, given `pred` is true then false.
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
