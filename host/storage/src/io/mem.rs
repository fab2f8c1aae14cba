//! [`Storage`] in memory, with an optional byte quota to simulate a full disk.

use super::{DirLock, OpenMode, Storage, StorageFile};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes in use and the limit, shared by every file of one [`MemStorage`].
#[derive(Debug)]
struct Quota {
    limit: AtomicU64,
    used: AtomicU64,
}

impl Quota {
    /// Reserves up to `want` bytes; returns how many were granted.
    fn reserve(&self, want: u64) -> u64 {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let limit = self.limit.load(Ordering::Relaxed);
            let grant = want.min(limit.saturating_sub(used));
            match self.used.compare_exchange_weak(
                used,
                used + grant,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return grant,
                Err(now) => used = now,
            }
        }
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

fn no_space() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "no space left on device (quota)",
    )
}

/// A directory held in memory. Cheap to clone (clones share the files). Writes beyond the quota
/// (see [`set_quota`](Self::set_quota)) write what fits and then fail with
/// `ErrorKind::StorageFull`, like a real full disk. `sync` and `sync_dir` do nothing.
#[derive(Debug, Clone)]
pub struct MemStorage {
    files: Arc<Mutex<HashMap<String, Arc<MemFile>>>>,
    quota: Arc<Quota>,
    /// Held by the [`DirLock`] of [`Storage::lock`].
    locked: Arc<AtomicBool>,
}

impl Default for MemStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStorage {
    /// An empty directory without a quota.
    pub fn new() -> Self {
        Self {
            files: Arc::default(),
            locked: Arc::default(),
            quota: Arc::new(Quota {
                limit: AtomicU64::new(u64::MAX),
                used: AtomicU64::new(0),
            }),
        }
    }

    /// Limits the total bytes of all files (including removed files still open) to `bytes`.
    /// `u64::MAX` removes the limit.
    pub fn set_quota(&self, bytes: u64) {
        self.quota.limit.store(bytes, Ordering::Relaxed);
    }

    /// Total bytes currently held by this directory's files.
    pub fn used_bytes(&self) -> u64 {
        self.quota.used.load(Ordering::Relaxed)
    }

    /// A directory whose files hold `files` (name, contents); used to build crash images.
    pub fn from_files(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let storage = Self::new();
        {
            let mut map = storage.files.lock();
            for (name, data) in files {
                storage.quota.reserve(data.len() as u64);
                map.insert(
                    name,
                    Arc::new(MemFile {
                        data: RwLock::new(data),
                        quota: storage.quota.clone(),
                    }),
                );
            }
        }
        storage
    }

    /// A copy of one file's contents, if it exists (for tests that corrupt files).
    pub fn read_file(&self, name: &str) -> Option<Vec<u8>> {
        self.files.lock().get(name).map(|f| f.data.read().clone())
    }

    /// Replaces one file's contents (for tests that corrupt files).
    pub fn write_file(&self, name: &str, data: Vec<u8>) {
        let file = Arc::new(MemFile {
            data: RwLock::new(Vec::new()),
            quota: self.quota.clone(),
        });
        self.quota.reserve(data.len() as u64);
        *file.data.write() = data;
        self.files.lock().insert(name.to_owned(), file);
    }
}

#[derive(Debug)]
struct MemFile {
    data: RwLock<Vec<u8>>,
    quota: Arc<Quota>,
}

impl Drop for MemFile {
    fn drop(&mut self) {
        self.quota.release(self.data.get_mut().len() as u64);
    }
}

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.read().len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let data = self.data.read();
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|&end| end <= data.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut data = self.data.write();
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start + buf.len();
        let growth = end.saturating_sub(data.len()) as u64;
        let granted = self.quota.reserve(growth);
        if granted < growth {
            // Write what fits, like a short write on a full disk, then fail.
            let fits_end = data.len() + granted as usize;
            if fits_end > start {
                data.resize(fits_end, 0);
                let n = fits_end - start;
                data[start..fits_end].copy_from_slice(&buf[..n]);
            } else {
                self.quota.release(granted);
            }
            return Err(no_space());
        }
        if end > data.len() {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut data = self.data.write();
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        if len > data.len() {
            let growth = (len - data.len()) as u64;
            let granted = self.quota.reserve(growth);
            if granted < growth {
                // Extension is all or nothing: give back the part that was granted.
                self.quota.release(granted);
                return Err(no_space());
            }
        } else {
            self.quota.release((data.len() - len) as u64);
        }
        data.resize(len, 0);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

impl Storage for MemStorage {
    /// An in-process lock shared by the clones of this directory, with the same contract as a
    /// real directory's: a second log on it fails (or, opened by this process, waits for the
    /// first to go) instead of writing beside it.
    fn lock(&self) -> io::Result<Option<DirLock>> {
        if self.locked.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("locked by process {}", std::process::id()),
            ));
        }
        Ok(Some(DirLock::flag(self.locked.clone())))
    }

    fn open(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut files = self.files.lock();
        if let Some(file) = files.get(name) {
            return Ok(file.clone());
        }
        match mode {
            OpenMode::Existing => Err(io::ErrorKind::NotFound.into()),
            OpenMode::Create => {
                let file = Arc::new(MemFile {
                    data: RwLock::new(Vec::new()),
                    quota: self.quota.clone(),
                });
                files.insert(name.to_owned(), file.clone());
                Ok(file)
            }
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.files.lock();
        let file = files.remove(from).ok_or(io::ErrorKind::NotFound)?;
        files.insert(to.to_owned(), file);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.files
            .lock()
            .remove(name)
            .map(drop)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.files.lock().keys().cloned().collect())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_lock_is_shared_by_clones_and_released_on_drop() {
        let storage = MemStorage::new();
        let held = storage.lock().unwrap();
        assert!(held.is_some());
        let clone = storage.clone();
        let err = clone.lock().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // Another directory is not locked.
        assert!(MemStorage::new().lock().unwrap().is_some());
        drop(held);
        assert!(clone.lock().unwrap().is_some());
    }
}
