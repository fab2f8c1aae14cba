//! Durable consumer-group offsets: an append-only file of commits, replayed at open.
//!
//! File `groups/offsets.log`, one commit request per line: `<crc32c as 8 hex digits> <json>\n`,
//! the CRC over the JSON bytes. A commit is written with one `write` and made durable with
//! `fdatasync` before it is acknowledged, so a line is either whole or a torn tail. Replay
//! stops at the first line that is incomplete or fails its CRC and truncates the file there
//! (only an unacknowledged commit can be lost). When the file holds many more lines than live
//! entries it is rewritten: temporary file, fsync, rename, fsync of the directory.

use crate::BrokerError;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "offsets.log";
const TMP_NAME: &str = "offsets.log.tmp";
/// Rewrite when the file has this many more lines than live entries.
const COMPACT_SLACK: usize = 10_000;

/// One committed position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Offset of the next record the group will consume.
    pub offset: u64,
    /// Client metadata.
    pub metadata: String,
    /// When the broker stored the commit (ms since the Unix epoch).
    pub committed_at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    group: String,
    offsets: Vec<CommittedOffset>,
}

type GroupMap = BTreeMap<String, BTreeMap<(String, u32), CommittedOffset>>;

#[derive(Debug)]
struct State {
    file: File,
    groups: GroupMap,
    lines: usize,
}

/// The consumer-group offset store. `Send + Sync`; commits are serialized (one fsync each).
#[derive(Debug)]
pub struct GroupStore {
    dir: PathBuf,
    state: Mutex<State>,
}

impl GroupStore {
    /// Opens (creating if needed) the store in `dir`, replaying and repairing the file.
    /// Cost: reads the whole file once.
    pub fn open(dir: &Path) -> Result<Self, BrokerError> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::io("create", dir, e))?;
        let path = dir.join(FILE_NAME);
        let _ = std::fs::remove_file(dir.join(TMP_NAME));
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| BrokerError::io("open", &path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| BrokerError::io("read", &path, e))?;
        let (groups, lines, valid_len) = replay(&data);
        if valid_len < data.len() {
            tracing::warn!(
                path = %path.display(),
                dropped = data.len() - valid_len,
                "truncating torn tail of the group offsets file"
            );
            file.set_len(valid_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| BrokerError::io("truncate", &path, e))?;
        }
        let store = Self {
            dir: dir.to_owned(),
            state: Mutex::new(State {
                file,
                groups,
                lines,
            }),
        };
        store.maybe_compact(&mut store.state.lock())?;
        Ok(store)
    }

    /// Stores `offsets` for `group` durably (one write and one fdatasync) and returns once
    /// they would survive a crash.
    pub fn commit(&self, group: &str, offsets: Vec<CommittedOffset>) -> Result<(), BrokerError> {
        let line = Line {
            group: group.to_owned(),
            offsets,
        };
        let bytes = encode_line(&line)?;
        let mut state = self.state.lock();
        let path = self.dir.join(FILE_NAME);
        state
            .file
            .write_all(&bytes)
            .and_then(|()| state.file.sync_data())
            .map_err(|e| BrokerError::io("append", &path, e))?;
        state.lines += 1;
        let entries = state.groups.entry(group.to_owned()).or_default();
        for o in line.offsets {
            entries.insert((o.topic.clone(), o.partition), o);
        }
        self.maybe_compact(&mut state)
    }

    /// The offsets `group` committed, sorted by topic and partition; only `topic`'s when
    /// given. `GroupNotFound` when the group never committed.
    pub fn fetch(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        let state = self.state.lock();
        let entries = state
            .groups
            .get(group)
            .ok_or_else(|| BrokerError::GroupNotFound(group.to_owned()))?;
        Ok(entries
            .values()
            .filter(|o| topic.is_none_or(|t| o.topic == t))
            .cloned()
            .collect())
    }

    /// Every group name, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.state.lock().groups.keys().cloned().collect()
    }

    /// Syncs the file (commits are already synced; this is for shutdown symmetry).
    pub fn sync(&self) -> Result<(), BrokerError> {
        let state = self.state.lock();
        state
            .file
            .sync_all()
            .map_err(|e| BrokerError::io("sync", self.dir.join(FILE_NAME), e))
    }

    /// Forgets every offset committed for `topic` (it was deleted; a topic created later
    /// under the same name starts with no committed offsets, as in Kafka). Groups left with
    /// no offsets are forgotten too. Durable on return: the file is rewritten atomically when
    /// anything was removed. Returns how many offsets were removed.
    pub fn forget_topic(&self, topic: &str) -> Result<usize, BrokerError> {
        let mut state = self.state.lock();
        let mut removed = 0;
        state.groups.retain(|_, entries| {
            let before = entries.len();
            entries.retain(|(t, _), _| t != topic);
            removed += before - entries.len();
            !entries.is_empty()
        });
        if removed > 0 {
            self.rewrite(&mut state)?;
        }
        Ok(removed)
    }

    fn maybe_compact(&self, state: &mut State) -> Result<(), BrokerError> {
        let live: usize = state.groups.len();
        if state.lines <= live + COMPACT_SLACK {
            return Ok(());
        }
        self.rewrite(state)
    }

    /// Replaces the file with one line per live group (temp file, fsync, rename, directory
    /// fsync).
    fn rewrite(&self, state: &mut State) -> Result<(), BrokerError> {
        let tmp = self.dir.join(TMP_NAME);
        let path = self.dir.join(FILE_NAME);
        let mut buf = Vec::new();
        for (group, entries) in &state.groups {
            buf.extend_from_slice(&encode_line(&Line {
                group: group.clone(),
                offsets: entries.values().cloned().collect(),
            })?);
        }
        let write = || -> std::io::Result<File> {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()?;
            OpenOptions::new().read(true).append(true).open(&path)
        };
        state.file = write().map_err(|e| BrokerError::io("rewrite", &path, e))?;
        state.lines = state.groups.len();
        Ok(())
    }
}

fn encode_line(line: &Line) -> Result<Vec<u8>, BrokerError> {
    let json = serde_json::to_vec(line).map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
    let mut out = format!("{:08x} ", crc32c::crc32c(&json)).into_bytes();
    out.extend_from_slice(&json);
    out.push(b'\n');
    Ok(out)
}

/// Replays whole, valid lines; returns the map, the line count and the valid prefix length.
fn replay(data: &[u8]) -> (GroupMap, usize, usize) {
    let mut groups = GroupMap::new();
    let mut pos = 0;
    let mut lines = 0;
    while pos < data.len() {
        let Some(nl) = data[pos..].iter().position(|&b| b == b'\n') else {
            break;
        };
        let line = &data[pos..pos + nl];
        let Some(parsed) = parse_line(line) else {
            break;
        };
        let entries = groups.entry(parsed.group).or_default();
        for o in parsed.offsets {
            entries.insert((o.topic.clone(), o.partition), o);
        }
        lines += 1;
        pos += nl + 1;
    }
    (groups, lines, pos)
}

fn parse_line(line: &[u8]) -> Option<Line> {
    let crc_hex = std::str::from_utf8(line.get(..8)?).ok()?;
    let crc = u32::from_str_radix(crc_hex, 16).ok()?;
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let json = line.get(9..)?;
    if crc32c::crc32c(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(store: &GroupStore, group: &str, topic: &str, offset: u64) {
        store
            .commit(
                group,
                vec![CommittedOffset {
                    topic: topic.into(),
                    partition: 0,
                    offset,
                    metadata: String::new(),
                    committed_at_ms: 1,
                }],
            )
            .expect("commit");
    }

    #[test]
    fn survives_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = GroupStore::open(dir.path()).expect("open");
            commit(&store, "g", "t", 5);
            commit(&store, "g", "t", 7);
            commit(&store, "h", "u", 1);
        }
        // A torn, unacknowledged commit at the end.
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"0000abcd {\"group\":\"g\",\"off")
            .expect("write");
        drop(f);
        let store = GroupStore::open(dir.path()).expect("reopen");
        let got = store.fetch("g", None).expect("fetch");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].offset, 7);
        assert_eq!(store.groups(), vec!["g".to_owned(), "h".to_owned()]);
        assert!(matches!(
            store.fetch("nope", None),
            Err(BrokerError::GroupNotFound(_))
        ));
        commit(&store, "g", "t", 9);
        drop(store);
        let store = GroupStore::open(dir.path()).expect("reopen");
        assert_eq!(store.fetch("g", Some("t")).expect("fetch")[0].offset, 9);
    }

    #[test]
    fn a_deleted_topics_offsets_are_forgotten_durably() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = GroupStore::open(dir.path()).expect("open");
            commit(&store, "g", "t", 5);
            commit(&store, "g", "u", 6);
            commit(&store, "h", "t", 1);
            assert_eq!(store.forget_topic("t").expect("forget"), 2);
            assert_eq!(store.forget_topic("t").expect("forget again"), 0);
        }
        let store = GroupStore::open(dir.path()).expect("reopen");
        let got = store.fetch("g", None).expect("fetch");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].topic, "u");
        // A group with nothing left is gone.
        assert_eq!(store.groups(), vec!["g".to_owned()]);
        assert!(matches!(
            store.fetch("h", None),
            Err(BrokerError::GroupNotFound(_))
        ));
    }
}
