//! A directory that remembers what was made durable, for crash tests.
//!
//! [`CrashStorage`] keeps, per file, the *durable* contents (as of its last `sync`) and the list
//! of writes and truncations issued since; and, per directory, the *durable* set of names (as of
//! the last `sync_dir`) next to the live one. [`CrashStorage::crash_image`] returns the directory
//! a power loss would leave behind, as a [`MemStorage`] to reopen the log on:
//!
//! - [`Crash::DropUnsynced`]: only what was synced survives.
//! - [`Crash::Torn`]: for each file, a pseudo-random prefix of the unsynced operations survives,
//!   the last of them cut at a pseudo-random byte (a torn write).
//! - [`Crash::KeepAll`]: everything written survives (a process crash, not a power loss).
//!
//! [`CrashStorage::fail_after`] makes every mutating operation fail once a budget is spent, to
//! stop the log in the middle of a roll, a checkpoint or a group commit.
//!
//! [`CrashStorage::fail_next_sync`] models Linux's fsync failure ("fsyncgate"): the next file
//! sync fails with an IO error *and* the writes it should have made durable are lost to the
//! durable image (the kernel marked the pages clean), while the live image still shows them
//! (the page cache keeps them); later syncs succeed, making only later writes durable. A log
//! that retries its fsync and then trusts the range has a hole in its durable image.

use super::{MemStorage, OpenMode, Storage, StorageFile};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Which image [`CrashStorage::crash_image`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Crash {
    /// Only synced data and synced directory entries survive.
    DropUnsynced,
    /// Synced data plus a random prefix of each file's unsynced operations, the last one torn.
    Torn {
        /// Seed for the pseudo-random choices.
        seed: u64,
    },
    /// Everything written survives; directory entries too.
    KeepAll,
}

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

fn apply(image: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
        Op::SetLen(len) => image.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default)]
struct FileState {
    durable: Vec<u8>,
    live: Vec<u8>,
    pending: Vec<Op>,
}

#[derive(Debug)]
struct SimFile {
    state: Mutex<FileState>,
    power: Arc<Power>,
    faults: Arc<SyncFaults>,
}

/// File syncs still to fail (each failing one drops its pending writes from the durable image).
#[derive(Debug, Default)]
struct SyncFaults(std::sync::atomic::AtomicU64);

impl SyncFaults {
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Remaining budget of mutating operations; negative means unlimited.
#[derive(Debug)]
struct Power(AtomicI64);

impl Power {
    fn spend(&self) -> io::Result<()> {
        let mut left = self.0.load(Ordering::SeqCst);
        loop {
            if left < 0 {
                return Ok(());
            }
            if left == 0 {
                return Err(io::Error::other("simulated power loss"));
            }
            match self
                .0
                .compare_exchange(left, left - 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(now) => left = now,
            }
        }
    }
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().live.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let state = self.state.lock();
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|&end| end <= state.live.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&state.live[start..end]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.power.spend()?;
        let mut state = self.state.lock();
        let op = Op::Write {
            offset,
            data: buf.to_vec(),
        };
        apply(&mut state.live, &op);
        state.pending.push(op);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.power.spend()?;
        let mut state = self.state.lock();
        let op = Op::SetLen(len);
        apply(&mut state.live, &op);
        state.pending.push(op);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.power.spend()?;
        let mut state = self.state.lock();
        let pending = std::mem::take(&mut state.pending);
        if self.faults.take() {
            // The writeback failed: these writes never reach the durable image, and the
            // error is reported once.
            return Err(io::Error::other("simulated fsync failure (writes lost)"));
        }
        for op in &pending {
            apply(&mut state.durable, op);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct DirState {
    live: HashMap<String, Arc<SimFile>>,
    durable: HashMap<String, Arc<SimFile>>,
}

/// An in-memory directory with a durable and a live image; see the module docs.
#[derive(Debug, Clone)]
pub struct CrashStorage {
    dir: Arc<Mutex<DirState>>,
    power: Arc<Power>,
    faults: Arc<SyncFaults>,
}

impl Default for CrashStorage {
    fn default() -> Self {
        Self::new()
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl CrashStorage {
    /// An empty directory with unlimited power.
    pub fn new() -> Self {
        Self {
            dir: Arc::default(),
            power: Arc::new(Power(AtomicI64::new(-1))),
            faults: Arc::default(),
        }
    }

    /// A directory holding `files`, all durable (names and contents), with unlimited power.
    pub fn from_files(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let sim = Self::new();
        {
            let mut dir = sim.dir.lock();
            for (name, data) in files {
                let file = Arc::new(SimFile {
                    state: Mutex::new(FileState {
                        durable: data.clone(),
                        live: data,
                        pending: Vec::new(),
                    }),
                    power: sim.power.clone(),
                    faults: sim.faults.clone(),
                });
                dir.live.insert(name.clone(), file.clone());
                dir.durable.insert(name, file);
            }
        }
        sim
    }

    /// A directory holding a copy of every file of `image` (for instance a
    /// [`crash_image`](Self::crash_image)), all durable: to run the next step of a crash test
    /// from a crashed state.
    pub fn from_image(image: &MemStorage) -> Self {
        let names = image.list().unwrap_or_default();
        Self::from_files(
            names
                .into_iter()
                .filter_map(|n| image.read_file(&n).map(|d| (n, d))),
        )
    }

    /// After `ops` more mutating operations (write, set_len, sync, create, rename, remove,
    /// sync_dir) every further one fails, as if the power went out. `None` restores power.
    pub fn fail_after(&self, ops: Option<u64>) {
        let budget = ops.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        self.power.0.store(budget, Ordering::SeqCst);
    }

    /// Makes the next `n` file syncs (of any file) fail the way Linux fails them: the error is
    /// returned once, the writes that sync covered are lost from the durable image but stay
    /// visible in the live one, and later syncs succeed (see the module docs).
    pub fn fail_next_sync(&self, n: u64) {
        self.faults.0.store(n, Ordering::SeqCst);
    }

    /// The directory a crash of the given kind would leave behind.
    pub fn crash_image(&self, crash: Crash) -> MemStorage {
        let dir = self.dir.lock();
        let names = match crash {
            Crash::KeepAll => &dir.live,
            Crash::DropUnsynced | Crash::Torn { .. } => &dir.durable,
        };
        let mut rng = match crash {
            Crash::Torn { seed } => seed,
            _ => 0,
        };
        let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(names.len());
        let mut sorted: Vec<_> = names.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (name, file) in sorted {
            let state = file.state.lock();
            let data = match crash {
                Crash::KeepAll => state.live.clone(),
                Crash::DropUnsynced => state.durable.clone(),
                Crash::Torn { .. } => {
                    let mut image = state.durable.clone();
                    let n = state.pending.len();
                    if n > 0 {
                        let keep = (splitmix(&mut rng) % (n as u64 + 1)) as usize;
                        for op in &state.pending[..keep] {
                            apply(&mut image, op);
                        }
                        if keep < n
                            && let Op::Write { offset, data } = &state.pending[keep]
                        {
                            let cut = (splitmix(&mut rng) % (data.len() as u64 + 1)) as usize;
                            apply(
                                &mut image,
                                &Op::Write {
                                    offset: *offset,
                                    data: data[..cut].to_vec(),
                                },
                            );
                        }
                    }
                    image
                }
            };
            files.push((name.clone(), data));
        }
        MemStorage::from_files(files)
    }
}

impl Storage for CrashStorage {
    fn open(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut dir = self.dir.lock();
        if let Some(file) = dir.live.get(name) {
            return Ok(file.clone());
        }
        match mode {
            OpenMode::Existing => Err(io::ErrorKind::NotFound.into()),
            OpenMode::Create => {
                self.power.spend()?;
                let file = Arc::new(SimFile {
                    state: Mutex::default(),
                    power: self.power.clone(),
                    faults: self.faults.clone(),
                });
                dir.live.insert(name.to_owned(), file.clone());
                Ok(file)
            }
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.power.spend()?;
        let mut dir = self.dir.lock();
        let file = dir.live.remove(from).ok_or(io::ErrorKind::NotFound)?;
        dir.live.insert(to.to_owned(), file);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.power.spend()?;
        self.dir
            .lock()
            .live
            .remove(name)
            .map(drop)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.dir.lock().live.keys().cloned().collect())
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.power.spend()?;
        let mut dir = self.dir.lock();
        dir.durable = dir.live.clone();
        Ok(())
    }
}
