//! The per-partition codec table: `u16` id -> (codec plugin name, sha256 digest of the plugin).
//!
//! Compressed batches name their codec by id (`codec_ref`), so a batch written today still
//! decodes after the codec plugin is hot-reloaded tomorrow: the id pins the exact plugin version.
//! The table is an append-only file of CRC-protected records (docs/FORMAT.md, "Codec table
//! file"); a record is synced before the id is returned, hence before any batch references it.
//! Id 0 means "uncompressed" and is never assigned.

use super::Log;
use super::error::CodecError;
use crate::io::{OpenMode, Storage, StorageFile};
use parking_lot::Mutex;
use std::io;
use std::sync::Arc;

/// File name of the codec table.
pub const CODEC_TABLE_NAME: &str = "codecs.table";

/// One codec table entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodecEntry {
    /// Id referenced by batches (`codec_ref`), from 1.
    pub id: u16,
    /// Codec plugin name.
    pub name: String,
    /// sha256 of the plugin component.
    pub digest: [u8; 32],
}

#[derive(Debug)]
struct Inner {
    file: Option<Arc<dyn StorageFile>>,
    entries: Vec<CodecEntry>,
    len: u64,
}

/// The table; cheap lookups under a mutex, registration syncs the file.
#[derive(Debug)]
pub(crate) struct CodecTable {
    storage: Arc<dyn Storage>,
    inner: Mutex<Inner>,
}

fn encode(e: &CodecEntry) -> Vec<u8> {
    let name = e.name.as_bytes();
    let body_len = 2 + 32 + 2 + name.len();
    let mut body = Vec::with_capacity(body_len);
    body.extend_from_slice(&e.id.to_le_bytes());
    body.extend_from_slice(&e.digest);
    body.extend_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend_from_slice(name);
    let mut rec = Vec::with_capacity(8 + body_len);
    rec.extend_from_slice(&(body_len as u32).to_le_bytes());
    rec.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    rec.extend_from_slice(&body);
    rec
}

/// Decodes records until the first invalid one; returns entries and the valid length.
pub(crate) fn decode(bytes: &[u8]) -> (Vec<CodecEntry>, u64) {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= 8 {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if len < 36 || crc32c::crc32c(body) != crc {
            break;
        }
        let id = u16::from_le_bytes([body[0], body[1]]);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&body[2..34]);
        let name_len = u16::from_le_bytes([body[34], body[35]]) as usize;
        let Some(name) = body
            .get(36..36 + name_len)
            .filter(|_| 36 + name_len == len)
            .and_then(|n| std::str::from_utf8(n).ok())
        else {
            break;
        };
        if usize::from(id) != entries.len() + 1 {
            break;
        }
        entries.push(CodecEntry {
            id,
            name: name.to_owned(),
            digest,
        });
        pos += 8 + len;
    }
    (entries, pos as u64)
}

impl CodecTable {
    /// Loads the table; a torn last record (crash during registration) is dropped and truncated.
    pub(crate) fn open(storage: Arc<dyn Storage>) -> Result<Self, CodecError> {
        let (file, entries, len) = match storage.open(CODEC_TABLE_NAME, OpenMode::Existing) {
            Ok(file) => {
                let size = usize::try_from(file.len()?)
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
                let mut bytes = vec![0u8; size];
                file.read_at(&mut bytes, 0)?;
                let (entries, valid) = decode(&bytes);
                if valid < size as u64 {
                    tracing::warn!(
                        dropped = size as u64 - valid,
                        "codec table has an invalid tail; truncating"
                    );
                    file.set_len(valid)?;
                    file.sync()?;
                }
                (Some(file), entries, valid)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (None, Vec::new(), 0),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            storage,
            inner: Mutex::new(Inner { file, entries, len }),
        })
    }

    /// Returns the id of (name, digest), appending and syncing a new record if it is new.
    /// Idempotent. Cost: one or two fsyncs for a new codec, a scan of the table otherwise.
    pub(crate) fn register(&self, name: &str, digest: [u8; 32]) -> Result<u16, CodecError> {
        if name.is_empty() || name.len() > 255 {
            return Err(CodecError::InvalidName(name.to_owned()));
        }
        let mut inner = self.inner.lock();
        if let Some(e) = inner
            .entries
            .iter()
            .find(|e| e.name == name && e.digest == digest)
        {
            return Ok(e.id);
        }
        let id = u16::try_from(inner.entries.len() + 1).map_err(|_| CodecError::Full)?;
        let entry = CodecEntry {
            id,
            name: name.to_owned(),
            digest,
        };
        let created = inner.file.is_none();
        let file = match &inner.file {
            Some(f) => f.clone(),
            None => self.storage.open(CODEC_TABLE_NAME, OpenMode::Create)?,
        };
        let rec = encode(&entry);
        let at = inner.len;
        let written = file.write_at(&rec, at).and_then(|()| file.sync());
        if let Err(e) = written {
            let _ = file.set_len(at);
            return Err(e.into());
        }
        if created {
            self.storage.sync_dir()?;
        }
        inner.file = Some(file);
        inner.len = at + rec.len() as u64;
        inner.entries.push(entry);
        Ok(id)
    }

    pub(crate) fn get(&self, id: u16) -> Option<CodecEntry> {
        let inner = self.inner.lock();
        id.checked_sub(1)
            .and_then(|i| inner.entries.get(usize::from(i)))
            .cloned()
    }

    pub(crate) fn all(&self) -> Vec<CodecEntry> {
        self.inner.lock().entries.clone()
    }

    pub(crate) fn contains(&self, id: u16) -> bool {
        id != 0 && usize::from(id) <= self.inner.lock().entries.len()
    }
}

impl Log {
    /// Registers a codec plugin version in this log's codec table and returns its id (for
    /// `codec_ref`). Idempotent; a new entry is synced before the id is returned.
    pub fn register_codec(&self, name: &str, digest: [u8; 32]) -> Result<u16, CodecError> {
        self.codecs.register(name, digest)
    }

    /// The codec table entry for `id`.
    pub fn codec(&self, id: u16) -> Option<CodecEntry> {
        self.codecs.get(id)
    }

    /// All codec table entries, by id.
    pub fn codecs(&self) -> Vec<CodecEntry> {
        self.codecs.all()
    }
}
