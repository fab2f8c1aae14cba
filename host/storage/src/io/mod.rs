//! Positional disk IO behind two small traits.
//!
//! Every byte the storage crate reads or writes goes through [`Storage`] (one directory: open,
//! rename, remove, list, sync the directory) and [`StorageFile`] (one file: `len`, `read_at`,
//! `write_at`, `set_len`, `sync`). Three implementations ship with the crate:
//!
//! - [`FsStorage`]: real files in a real directory (`pread`/`pwrite`, `fsync`).
//! - [`MemStorage`]: files in memory, with an optional byte quota that fails writes with
//!   `ErrorKind::StorageFull` (ENOSPC) once exceeded.
//! - [`sim::CrashStorage`]: an in-memory directory that keeps a *durable* image (what the last
//!   `sync`/`sync_dir` made durable) next to the *live* one, and can produce the image a power
//!   loss would leave behind, optionally with a write cut in half.
//!
//! A memory-mapped file turns a write the file system cannot place (a full disk, a sparse page
//! on a full tmpfs) into SIGBUS instead of an error; so nothing is mapped before
//! [`StorageFile::allocate`] has reserved its space.
//!
//! Whole small files (checkpoints, metadata) are replaced with [`replace`] (a [`Storage`]
//! directory) or [`replace_file`] (a path): temporary file, fsync, rename, directory fsync.
//!
//! Correctness rules every implementation follows (the log relies on them):
//! 1. `write_at` either writes the whole buffer or returns an error; after an error any prefix of
//!    the buffer may have reached the file.
//! 2. `sync` makes the file's contents and length durable; it does not make the file's *name*
//!    durable: a newly created or renamed file survives a crash only after `sync_dir`.
//! 3. `rename` replaces the destination atomically.
//! 4. A file removed while an `Arc<dyn StorageFile>` to it is alive stays readable through that
//!    handle (POSIX unlink semantics); its space is released when the last handle drops.

mod fs;
mod mem;
mod replace;
pub mod sim;

pub use fs::{FsStorage, LOCK_NAME};
pub use mem::MemStorage;
pub(crate) use replace::replace_with_failpoint;
pub use replace::{read_whole, replace, replace_file, temp_name};

use std::fmt::Debug;
use std::io;
use std::sync::Arc;

/// How [`Storage::open`] treats a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenMode {
    /// Open an existing file; fail with `NotFound` if there is none.
    Existing,
    /// Open the file, creating it empty if it does not exist.
    Create,
}

/// One file, addressed by position. All methods take `&self` and may be called concurrently;
/// concurrent writes to overlapping ranges are the caller's problem (the log never does that).
pub trait StorageFile: Send + Sync + Debug {
    /// Current length in bytes. Cost: one `fstat`.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `buf` from `offset`; fails with `UnexpectedEof` if the file is shorter.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, extending the file if needed. Not durable until
    /// [`sync`](Self::sync).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Extends the file (with zeros) to at least `len` bytes and reserves the disk space of all
    /// of `[0, len)`, so that later writes inside it, through `write_at` or a memory map, cannot
    /// fail for lack of space. A full disk fails here, up front, with
    /// `ErrorKind::StorageFull`; the file may then have grown by part of the request. Never
    /// shrinks the file or changes its contents.
    ///
    /// Cost: one `fallocate` on a real file (nothing to do for space already allocated); where
    /// the file system has no `fallocate`, the range is read and written back (zeros where
    /// nothing was written). The default extends with [`set_len`](Self::set_len), which is
    /// right for implementations that hold every byte they report (in memory).
    fn allocate(&self, len: u64) -> io::Result<()> {
        if len > self.len()? {
            self.set_len(len)
        } else {
            Ok(())
        }
    }
    /// Makes contents and length durable (`fsync`). Expensive (milliseconds): call it once per
    /// group of writes, never per record.
    fn sync(&self) -> io::Result<()>;
    /// The underlying OS file, when there is one, so index files can be memory-mapped.
    /// In-memory implementations return `None` and indexes fall back to buffered IO.
    fn as_std_file(&self) -> Option<&std::fs::File> {
        None
    }
}

/// One directory of files (a partition's directory). File names are plain names, no separators.
pub trait Storage: Send + Sync + Debug {
    /// Opens (or creates, per `mode`) the file `name`.
    fn open(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// Atomically renames `from` to `to`, replacing `to`. Durable only after [`sync_dir`](Self::sync_dir).
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes `name`. Open handles keep working (see the module docs, rule 4).
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Names of all files in the directory, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Makes creations, renames and removals durable (`fsync` of the directory). Expensive.
    fn sync_dir(&self) -> io::Result<()>;
    /// Takes an exclusive lock on the directory, held until the returned guard drops, so that
    /// two logs (in one process or two) never open the same directory at once. Fails with
    /// `ErrorKind::WouldBlock` when another holder has it. The default takes no lock.
    /// Cost: one open and one `flock` ([`FsStorage`]), an atomic swap ([`MemStorage`]).
    fn lock(&self) -> io::Result<Option<DirLock>> {
        Ok(None)
    }
}

/// An exclusive lock on a directory (see [`Storage::lock`]); released when dropped.
#[derive(Debug)]
pub struct DirLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    /// A locked file (`flock`), released when it closes.
    File(#[allow(dead_code, reason = "held for its Drop")] std::fs::File),
    /// An in-memory directory's flag, cleared on drop.
    Flag(Arc<std::sync::atomic::AtomicBool>),
}

impl DirLock {
    /// Wraps an open, locked file.
    pub fn new(file: std::fs::File) -> Self {
        Self {
            held: Held::File(file),
        }
    }

    /// A lock that is a flag set by its taker (an in-memory directory).
    pub(crate) fn flag(flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self {
            held: Held::Flag(flag),
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if let Held::Flag(flag) = &self.held {
            flag.store(false, std::sync::atomic::Ordering::Release);
        }
    }
}

/// Whether an IO error means the device is out of space (ENOSPC or a quota).
pub fn is_no_space(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}
