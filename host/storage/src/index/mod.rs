//! Sparse per-segment indexes: the offset index (relative offset -> file position) and the time
//! index (max timestamp so far -> relative offset). Entry layouts in docs/FORMAT.md.
//!
//! Both are caches of information in the segment file: a missing, corrupt or stale index is
//! rebuilt from the segment. The entry for the segment's first batch (position 0) is implicit, so
//! every stored entry has a non-zero second field (offset index: position; time index: relative
//! offset); the first all-zero slot marks the end of the entries, which lets a preallocated,
//! zero-filled file be reopened after a crash without a separate length field.
//!
//! Files grow while their segment is active, up to `index_max_bytes`: a new index allocates
//! `GROWTH_START` bytes and doubles its allocation whenever it fills, so an idle partition
//! holds 64 KiB per index on disk, not `index_max_bytes`; a sealed segment's index is trimmed to
//! its entries. On a real file system they are memory-mapped (memmap2), but only
//! once [`StorageFile::allocate`] has reserved the mapped range: a page the file system cannot
//! place would otherwise raise SIGBUS on the first touch (a sparse file on a full disk or
//! tmpfs). Other [`StorageFile`]s get a buffered copy with write-through.
//!
//! Invariant, kept by every operation whatever fails: the buffer holds at least `entries`
//! slots, and those slots are the entries (the first `entries` slots of the file, or, after a
//! failed write-through, what the file should hold). An operation that cannot remap the file
//! (full disk, IO error) leaves a copy of the entries in memory, a *degraded* index: lookups
//! keep working, and it takes no new entries (it reports itself full, so an active segment
//! rolls). Indexes are caches, so losing capacity never loses data; a read then walks more
//! batch headers. Hence opening, trimming and growing an index log a warning and go on, and
//! only `create` (a new segment: a full disk must fail the roll), `push` and `truncate` (whose
//! writes through to a buffered file can fail) return IO errors.

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
    /// Bytes the buffer may grow to (by [`reserve`](Self::reserve) when a push finds it full);
    /// the index is full only at this size.
    limit: usize,
}

/// The allocation of a new active index, doubled each time it fills up to its limit.
pub(crate) const GROWTH_START: u64 = 64 << 10;

/// Number of leading slots of `bytes` that are not all zero.
fn count_entries(bytes: &[u8], entry_size: usize) -> usize {
    bytes
        .chunks_exact(entry_size)
        .position(|e| e.iter().all(|&b| b == 0))
        .unwrap_or(bytes.len() / entry_size)
}

/// The entries (leading non-zero slots) of the first `len` bytes of `file`, read 64 KiB at a
/// time, so a large preallocated file costs only the reads of its entries.
fn read_entries(file: &dyn StorageFile, len: u64, entry_size: usize) -> io::Result<Vec<u8>> {
    let chunk = (64 << 10) / entry_size * entry_size;
    let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidData)?;
    let mut out = Vec::new();
    while out.len() < len {
        let at = out.len();
        let n = chunk.min(len - at);
        out.resize(at + n, 0);
        file.read_at(&mut out[at..], at as u64)?;
        let found = count_entries(&out[at..], entry_size);
        if found * entry_size < n {
            out.truncate(at + found * entry_size);
            break;
        }
    }
    Ok(out)
}

/// The entries read, or none (with a warning) when the file could not be read: an index is a
/// cache, and an empty one only makes reads walk from the segment start.
fn or_degraded(read: io::Result<Vec<u8>>) -> Vec<u8> {
    read.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read an index file; going on without its entries");
        Vec::new()
    })
}

/// Loads `[0, len)` of `file` (`len` a multiple of `entry_size`): a mapping of the whole range
/// when the file is a real one and the range can be allocated; a full buffered copy for other
/// files; and, when allocating or mapping fails, a degraded copy of the entries only. Fails
/// only when the file cannot be read.
fn load(file: &Arc<dyn StorageFile>, len: u64, entry_size: usize) -> io::Result<Buf> {
    if len == 0 {
        return Ok(Buf::Mem(Vec::new()));
    }
    let len_usize = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidData)?;
    let Some(std_file) = file.as_std_file() else {
        let mut v = vec![0u8; len_usize];
        file.read_at(&mut v, 0)?;
        return Ok(Buf::Mem(v));
    };
    // Only allocated space is mapped (see the module docs); for space allocated before, this
    // is one cheap syscall.
    let error = match file.allocate(len) {
        // SAFETY: the index file lives in the partition directory, which one broker process
        // owns (`Storage::lock`); this struct is the only writer of the file while it is
        // mapped, and it drops the map before changing the file's length (`trim`, `reserve`),
        // so the mapping never refers past the end of the file; its range is allocated, so no
        // access to it can fault for lack of space.
        Ok(()) => match unsafe { MmapOptions::new().len(len_usize).map_mut(std_file) } {
            Ok(map) => return Ok(Buf::Map(map)),
            Err(e) => e,
        },
        Err(e) => e,
    };
    tracing::warn!(
        error = %error,
        "index file cannot be allocated or mapped; keeping its entries in memory, it takes no new ones"
    );
    Ok(Buf::Mem(read_entries(file.as_ref(), len, entry_size)?))
}

impl IndexFile {
    /// Opens an index file. With `capacity` set, the file is first extended (zero-filled and
    /// allocated, see [`StorageFile::allocate`]) to that many bytes (rounded down to whole
    /// entries), for an active segment. Counts the leading non-zero entries; does not validate
    /// them (see [`OffsetIndex::validate`]).
    ///
    /// Nothing but a failed `fstat` fails the open: when the file cannot be allocated (a full
    /// disk), mapped or read, the index is degraded (the entries that could be read, no room for
    /// more; see the module docs) and a warning says why. New segments use
    /// [`create`](Self::create), which fails on a full disk instead.
    pub(crate) fn open(
        file: Arc<dyn StorageFile>,
        entry_size: usize,
        capacity: Option<u64>,
    ) -> io::Result<Self> {
        let es = entry_size as u64;
        let len = file.len()?;
        let mut len = len - len % es;
        let limit = capacity.map_or(len, |cap| (cap - cap % es).max(len));
        if let Some(cap) = capacity {
            let cap = cap - cap % es;
            // Only the first step of the growth is allocated now (see `GROWTH_START`).
            let first = cap.min(GROWTH_START.max(len));
            let first = first - first % es;
            if first > len {
                match file.allocate(first) {
                    Ok(()) => len = first,
                    Err(e) => {
                        tracing::warn!(
                            error = %e,
                            "cannot preallocate an index file; it keeps its entries and takes no new ones"
                        );
                        // Give back what a partial allocation took (shrinking needs no space).
                        if file.len()? > len {
                            let _ = file.set_len(len);
                        }
                        let found = read_entries(file.as_ref(), len, entry_size);
                        let buf = Buf::Mem(or_degraded(found));
                        return Ok(Self::with(file, buf, entry_size, None));
                    }
                }
            }
        }
        let buf = match load(&file, len, entry_size) {
            Ok(buf) => buf,
            Err(e) => Buf::Mem(or_degraded(Err(e))),
        };
        let mut index = Self::with(file, buf, entry_size, None);
        if matches!(index.buf, Buf::Map(_)) || index.buf.bytes().len() as u64 == len {
            index.limit = usize::try_from(limit).unwrap_or(usize::MAX);
        }
        Ok(index)
    }

    /// Creates the empty index of a new segment with `capacity` bytes (rounded down to whole
    /// entries) preallocated. Unlike [`open`](Self::open), a full disk fails it (with
    /// `ErrorKind::StorageFull`), and the file is left empty. Cost: one `ftruncate`, one
    /// `fallocate` and a map.
    pub(crate) fn create(
        file: Arc<dyn StorageFile>,
        entry_size: usize,
        capacity: u64,
    ) -> io::Result<Self> {
        let es = entry_size as u64;
        let cap = capacity - capacity % es;
        let first = cap.min(GROWTH_START);
        let first = first - first % es;
        file.set_len(0)?;
        if let Err(e) = file.allocate(first) {
            let _ = file.set_len(0);
            return Err(e);
        }
        let buf = load(&file, first, entry_size)?;
        let mut index = Self::with(file, buf, entry_size, Some(0));
        index.limit = usize::try_from(cap).unwrap_or(usize::MAX);
        Ok(index)
    }

    /// Assembles an index over `buf`; `entries` defaults to the leading non-zero slots, and is
    /// never more than the buffer holds.
    fn with(
        file: Arc<dyn StorageFile>,
        buf: Buf,
        entry_size: usize,
        entries: Option<usize>,
    ) -> Self {
        let found = entries.unwrap_or_else(|| count_entries(buf.bytes(), entry_size));
        let limit = buf.bytes().len();
        let mut index = Self {
            file,
            buf,
            entry_size,
            entries: 0,
            limit,
        };
        index.entries = found.min(index.capacity());
        index
    }

    /// Replaces the buffer, keeping the invariant (a buffer shorter than the entries would be
    /// a bug of the caller; the entries are clamped rather than read out of range).
    fn set_buf(&mut self, buf: Buf) {
        self.buf = buf;
        debug_assert!(self.entries <= self.capacity(), "index buffer lost entries");
        self.entries = self.entries.min(self.capacity());
    }

    /// A degraded buffer: a copy of the entries, nothing more. Taken before the map is
    /// dropped to change the file's length, so the index stays whole whatever fails next.
    fn copy_entries(&self) -> Buf {
        Buf::Mem(self.buf.bytes()[..self.entries * self.entry_size].to_vec())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    fn capacity(&self) -> usize {
        self.buf.bytes().len() / self.entry_size
    }

    /// Full: no free slot, and no room to grow (at the limit, or degraded).
    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity() && self.buf.bytes().len() >= self.limit
    }

    /// Entry `i`, for `i < len()`.
    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        &self.buf.bytes()[i * self.entry_size..(i + 1) * self.entry_size]
    }

    /// Appends an entry; `Ok(false)` when the preallocated space is full. A failed write
    /// leaves the entry out.
    fn push(&mut self, entry: &[u8]) -> io::Result<bool> {
        if self.entries >= self.capacity() {
            if self.is_full() {
                return Ok(false);
            }
            // Double the allocation, up to the limit.
            let have = self.buf.bytes().len();
            let want = (have.saturating_mul(2))
                .max(GROWTH_START as usize)
                .min(self.limit);
            self.reserve(want as u64)?;
            if self.entries >= self.capacity() {
                // Could not grow (a full disk): full from now on, so the segment rolls.
                self.limit = self.buf.bytes().len();
                return Ok(false);
            }
        }
        let at = self.entries * self.entry_size;
        if let Buf::Mem(_) = self.buf {
            self.file.write_at(entry, at as u64)?;
        }
        self.buf.bytes_mut()[at..at + self.entry_size].copy_from_slice(entry);
        self.entries += 1;
        Ok(true)
    }

    /// Drops entries from `n` on (zero-fills them). The entries are gone from memory even when
    /// zeroing them in the file fails (the error is returned; the file, a cache, then holds
    /// stale entries that the next open's sanity check rejects).
    pub(crate) fn truncate(&mut self, n: usize) -> io::Result<()> {
        if n >= self.entries {
            return Ok(());
        }
        let (from, to) = (n * self.entry_size, self.entries * self.entry_size);
        self.buf.bytes_mut()[from..to].fill(0);
        self.entries = n;
        if let Buf::Mem(_) = self.buf {
            self.file.write_at(&vec![0u8; to - from], from as u64)?;
        }
        Ok(())
    }

    /// Shrinks the file to its entries (on seal). Cost: one `ftruncate` and a remap. Never
    /// loses an entry: if the `ftruncate` or the remap fails, the index keeps a copy of its
    /// entries in memory (the longer file still ends them with a zero slot) and a warning says
    /// why; only a failed `fstat` is returned.
    pub(crate) fn trim(&mut self) -> io::Result<()> {
        let used = self.entries * self.entry_size;
        let len = used as u64;
        if self.buf.bytes().len() == used && self.file.len()? == len {
            return Ok(());
        }
        // The map must go before the file shrinks: a mapped page past the end raises SIGBUS.
        self.set_buf(self.copy_entries());
        if let Err(e) = self.file.set_len(len) {
            tracing::warn!(error = %e, "cannot trim an index file; keeping its entries in memory");
            self.limit = self.buf.bytes().len();
            return Ok(());
        }
        self.reload(len);
        self.limit = self.buf.bytes().len();
        Ok(())
    }

    /// Extends the file (zero-filled, allocated) to at least `capacity` bytes so entries can be
    /// added, and lets it grow that far (a push grows it on demand by the same means). Cost: one
    /// `fallocate`, a remap.
    ///
    /// Best effort: if the file cannot grow (a full disk, an IO error) or be remapped, the index
    /// keeps its entries at its old size (or degraded, full) and a warning says why; fewer
    /// batches then get entries and reads walk further. Only a failed `fstat` is returned.
    pub(crate) fn reserve(&mut self, capacity: u64) -> io::Result<()> {
        let es = self.entry_size as u64;
        let capacity = capacity - capacity % es;
        if (self.buf.bytes().len() as u64) >= capacity {
            self.limit = self
                .limit
                .max(usize::try_from(capacity).unwrap_or(usize::MAX));
            return Ok(());
        }
        let old_len = self.file.len()?;
        self.set_buf(self.copy_entries());
        let len = match self.file.allocate(capacity) {
            Ok(()) => {
                self.limit = self
                    .limit
                    .max(usize::try_from(capacity).unwrap_or(usize::MAX));
                capacity
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot grow an index file; it takes fewer entries");
                // Give back what a partial allocation took (shrinking needs no space).
                if self.file.len()? > old_len {
                    let _ = self.file.set_len(old_len);
                }
                old_len - old_len % es
            }
        };
        self.reload(len);
        Ok(())
    }

    /// Lets the index grow to `limit` bytes, allocating only the first step now (see
    /// [`GROWTH_START`]): for an index that becomes active again at recovery. Best effort, as
    /// [`reserve`](Self::reserve).
    pub(crate) fn allow_growth(&mut self, limit: u64) -> io::Result<()> {
        let es = self.entry_size as u64;
        let limit = limit - limit % es;
        let first = limit.min(GROWTH_START.max(self.buf.bytes().len() as u64));
        self.reserve(first)?;
        if self.buf.bytes().len() as u64 >= first {
            self.limit = self.limit.max(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok(())
    }

    /// Replaces the buffer (a copy of the entries, see [`copy_entries`](Self::copy_entries))
    /// with `[0, len)` of the file, unless that fails or holds fewer entries.
    fn reload(&mut self, len: u64) {
        match load(&self.file, len, self.entry_size) {
            Ok(buf) if buf.bytes().len() >= self.entries * self.entry_size => self.set_buf(buf),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload an index file; keeping its entries in memory");
            }
        }
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

#[cfg(test)]
mod tests {
    //! Every IndexFile operation keeps its invariant when the file fails under it: a failed
    //! resize, allocation or read leaves an index whose lookups stay in range and right.

    use super::*;
    use crate::io::{MemStorage, OpenMode, Storage};
    use parking_lot::Mutex;

    /// A file over a [`MemStorage`] file whose `set_len`, `allocate`, `read_at` and `write_at`
    /// fail with the armed error kind.
    #[derive(Debug, Default)]
    struct Faults {
        set_len: Option<io::ErrorKind>,
        allocate: Option<io::ErrorKind>,
        read: Option<io::ErrorKind>,
        write: Option<io::ErrorKind>,
    }

    #[derive(Debug)]
    struct Faulty {
        inner: Arc<dyn StorageFile>,
        faults: Mutex<Faults>,
    }

    fn fail(kind: Option<io::ErrorKind>) -> io::Result<()> {
        kind.map_or(Ok(()), |k| Err(io::Error::new(k, "injected")))
    }

    impl StorageFile for Faulty {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            fail(self.faults.lock().read)?;
            self.inner.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            fail(self.faults.lock().write)?;
            self.inner.write_at(buf, offset)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            fail(self.faults.lock().set_len)?;
            self.inner.set_len(len)
        }
        fn allocate(&self, len: u64) -> io::Result<()> {
            let f = self.faults.lock();
            fail(f.allocate.or(f.set_len))?;
            drop(f);
            self.inner.allocate(len)
        }
        fn sync(&self) -> io::Result<()> {
            self.inner.sync()
        }
    }

    fn faulty() -> Arc<Faulty> {
        let inner = MemStorage::new()
            .open("0.index", OpenMode::Create)
            .expect("open");
        Arc::new(Faulty {
            inner,
            faults: Mutex::default(),
        })
    }

    /// An offset index with `n` entries (rel 10i, position 100i), `cap` bytes preallocated.
    fn filled(file: &Arc<Faulty>, n: u32, cap: u64) -> OffsetIndex {
        let mut idx =
            OffsetIndex(IndexFile::create(file.clone(), OFFSET_ENTRY, cap).expect("create"));
        for i in 1..=n {
            assert!(idx.push(10 * i, 100 * i).expect("push"));
        }
        idx
    }

    /// Position of the last entry with relative offset <= `rel` (0 if none), searched the way
    /// `Segment::anchor_for` does: only entries below `len()` are touched.
    fn position_for(idx: &OffsetIndex, rel: u32) -> u32 {
        let i = partition_point(idx.0.len(), |i| idx.get(i).0 <= rel);
        if i == 0 { 0 } else { idx.get(i - 1).1 }
    }

    /// Every lookup answers from the entries, whatever state the buffer is in.
    fn check_lookups(idx: &OffsetIndex, n: u32) {
        assert_eq!(idx.0.len(), n as usize);
        assert!(idx.0.len() <= idx.0.capacity());
        for rel in 0..(10 * n + 20) {
            let want = if rel < 10 { 0 } else { 100 * (rel / 10).min(n) };
            assert_eq!(position_for(idx, rel), want, "lookup({rel})");
        }
        assert!(idx.validate(u64::from(100 * n + 1)));
    }

    #[test]
    fn an_active_index_allocates_as_it_fills_up_to_its_limit() {
        let file = faulty();
        let limit = 4 * GROWTH_START;
        let mut idx = filled(&file, 1, limit);
        assert_eq!(
            file.len().unwrap(),
            GROWTH_START,
            "only the first step is allocated"
        );
        let n = (limit / OFFSET_ENTRY as u64) as u32;
        for i in 2..=n {
            assert!(idx.push(10 * i, 100 * i).expect("push"), "entry {i} fits");
            assert!(!idx.0.is_full() || i == n);
        }
        assert_eq!(file.len().unwrap(), limit);
        assert!(idx.0.is_full(), "full at the limit");
        assert!(!idx.push(10 * (n + 1), 100 * (n + 1)).expect("push"));
        check_lookups(&idx, n);
        // A full disk while growing: full from then on, entries intact.
        let file = faulty();
        let mut idx = filled(&file, 1, limit);
        file.faults.lock().allocate = Some(io::ErrorKind::StorageFull);
        let fit = (GROWTH_START / OFFSET_ENTRY as u64) as u32;
        for i in 2..=fit {
            assert!(idx.push(10 * i, 100 * i).expect("push"));
        }
        assert!(!idx.push(10 * (fit + 1), 100 * (fit + 1)).expect("push"));
        assert!(
            idx.0.is_full(),
            "a failed growth makes the index full, so the segment rolls"
        );
        check_lookups(&idx, fit);
    }

    #[test]
    fn failed_trim_keeps_the_entries() {
        for kind in [io::ErrorKind::Other, io::ErrorKind::StorageFull] {
            let file = faulty();
            let mut idx = filled(&file, 5, 400);
            file.faults.lock().set_len = Some(kind);
            idx.0
                .trim()
                .expect("a failed ftruncate only costs disk space");
            check_lookups(&idx, 5);
            assert!(idx.0.is_full(), "a degraded index takes no new entries");
            assert!(!idx.push(60, 600).expect("push"));
            file.faults.lock().set_len = None;
            idx.0.trim().expect("trim once the file works");
            check_lookups(&idx, 5);
            assert_eq!(file.len().unwrap(), 5 * OFFSET_ENTRY as u64);
        }
    }

    #[test]
    fn failed_reload_after_trim_keeps_the_entries() {
        let file = faulty();
        let mut idx = filled(&file, 4, 400);
        file.faults.lock().read = Some(io::ErrorKind::Other);
        idx.0
            .trim()
            .expect("the file was trimmed; only the reload failed");
        check_lookups(&idx, 4);
        assert_eq!(file.len().unwrap(), 4 * OFFSET_ENTRY as u64);
    }

    #[test]
    fn failed_reserve_keeps_the_entries() {
        // Disk full: not an error, the index just cannot grow.
        let file = faulty();
        let mut idx = filled(&file, 3, 400);
        idx.0.trim().unwrap();
        file.faults.lock().allocate = Some(io::ErrorKind::StorageFull);
        idx.0
            .reserve(4096)
            .expect("a full disk only costs capacity");
        check_lookups(&idx, 3);
        assert!(!idx.push(40, 400).expect("push"), "no room was gained");
        // Another IO error: the same.
        file.faults.lock().allocate = Some(io::ErrorKind::Other);
        idx.0
            .reserve(4096)
            .expect("a failed growth only costs capacity");
        check_lookups(&idx, 3);
        // The reload failing too: still whole.
        file.faults.lock().allocate = None;
        file.faults.lock().read = Some(io::ErrorKind::Other);
        idx.0.reserve(4096).expect("grown; only the reload failed");
        check_lookups(&idx, 3);
        file.faults.lock().read = None;
        idx.0.reserve(4096).expect("reserve");
        assert!(idx.push(40, 400).expect("push"));
        check_lookups(&idx, 4);
    }

    #[test]
    fn open_on_a_full_disk_keeps_the_entries_it_finds() {
        let file = faulty();
        let mut idx = filled(&file, 6, 400);
        idx.0.trim().unwrap();
        drop(idx);
        file.faults.lock().allocate = Some(io::ErrorKind::StorageFull);
        let idx = OffsetIndex(
            IndexFile::open(file.clone(), OFFSET_ENTRY, Some(4096)).expect("open degrades"),
        );
        check_lookups(&idx, 6);
        assert!(idx.0.is_full());
        assert_eq!(
            file.len().unwrap(),
            6 * OFFSET_ENTRY as u64,
            "nothing half-allocated"
        );
        // Another IO error: the same.
        file.faults.lock().allocate = Some(io::ErrorKind::Other);
        let idx = OffsetIndex(
            IndexFile::open(file.clone(), OFFSET_ENTRY, Some(4096)).expect("open degrades"),
        );
        check_lookups(&idx, 6);
        // An unreadable file: an empty index, every lookup from the segment start.
        file.faults.lock().allocate = None;
        file.faults.lock().read = Some(io::ErrorKind::Other);
        for capacity in [None, Some(4096)] {
            let idx = OffsetIndex(
                IndexFile::open(file.clone(), OFFSET_ENTRY, capacity).expect("open degrades"),
            );
            check_lookups(&idx, 0);
            assert!(idx.0.is_full());
        }
    }

    #[test]
    fn create_on_a_full_disk_fails_and_leaves_the_file_empty() {
        let file = faulty();
        file.faults.lock().allocate = Some(io::ErrorKind::StorageFull);
        let err = IndexFile::create(file.clone(), OFFSET_ENTRY, 4096).expect_err("no space");
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(file.len().unwrap(), 0);
    }

    #[test]
    fn failed_write_through_keeps_memory_and_entries_in_step() {
        let file = faulty();
        let mut idx = filled(&file, 4, 400);
        file.faults.lock().write = Some(io::ErrorKind::StorageFull);
        assert!(idx.push(50, 500).is_err(), "the entry is left out");
        check_lookups(&idx, 4);
        assert!(idx.0.truncate(2).is_err(), "zeroing the file failed");
        check_lookups(&idx, 2);
        file.faults.lock().write = None;
        assert!(idx.push(30, 300).expect("push"));
        check_lookups(&idx, 3);
    }
}
