//! [`Storage`] over a real directory.

use super::{DirLock, OpenMode, Storage, StorageFile};

/// Name of the lock file [`FsStorage`] creates in its directory.
pub const LOCK_NAME: &str = "distlog.lock";
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A real directory on a real file system. Uses `pread`/`pwrite` (`std::os::unix::fs::FileExt`),
/// so reads and writes never share a cursor.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Uses `root` as the directory, creating it (and its parents) if missing.
    pub fn create(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// The directory this storage lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid file name {name:?}"),
            ));
        }
        Ok(self.root.join(name))
    }
}

#[derive(Debug)]
struct FsFile {
    file: File,
}

impl FsFile {
    /// Rewrites `[0, len)` with its own contents (zeros past the end and in holes), which makes
    /// the file system allocate every block of it. The fallback of [`StorageFile::allocate`].
    /// Cost: reads and writes `len` bytes, 64 KiB at a time.
    fn write_back(&self, len: u64) -> io::Result<()> {
        const CHUNK: u64 = 64 << 10;
        let old_len = self.len()?;
        let mut buf = vec![0u8; CHUNK as usize];
        let mut pos = 0;
        while pos < len {
            let n = CHUNK.min(len - pos);
            let chunk = &mut buf[..n as usize];
            chunk.fill(0);
            if pos < old_len {
                let have = n.min(old_len - pos) as usize;
                self.read_at(&mut chunk[..have], pos)?;
            }
            self.write_at(chunk, pos)?;
            pos += n;
        }
        Ok(())
    }
}

impl StorageFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    /// `fallocate(fd, 0, 0, len)`: the blocks are reserved (ext4, xfs: as unwritten extents;
    /// tmpfs: as pages), so a mapped page of the range can always be written. File systems
    /// without `fallocate` (`EOPNOTSUPP`) get the range written instead.
    fn allocate(&self, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        match rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
                self.write_back(len)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn as_std_file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

impl Storage for FsStorage {
    fn open(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let path = self.path(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(mode == OpenMode::Create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(FsFile { file }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from)?, self.path(to)?)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(name)?)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.root)?.sync_all()
    }

    /// `flock(LOCK_EX | LOCK_NB)` on `distlog.lock` in the directory, which then holds the
    /// holder's pid (for the error message of the next one). The kernel releases the lock when
    /// the process dies, so a crash never leaves a stale lock.
    fn lock(&self) -> io::Result<Option<DirLock>> {
        use std::io::{Read, Seek, Write};
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path(LOCK_NAME)?)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("locked by process {}", holder.trim()),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // The pid only serves the next holder's error message: a log opens on a full disk even
        // when it cannot be written (overwriting before truncating reuses the old pid's block).
        let pid = std::process::id().to_string();
        let written = file
            .rewind()
            .and_then(|()| file.write_all(pid.as_bytes()))
            .and_then(|()| file.set_len(pid.len() as u64));
        if let Err(e) = written {
            tracing::warn!(error = %e, lock = %self.root.join(LOCK_NAME).display(), "cannot record the pid in the lock file");
        }
        Ok(Some(DirLock::new(file)))
    }
}
