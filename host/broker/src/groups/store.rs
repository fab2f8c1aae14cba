//! Durable consumer-group offsets: an append-only file of commits, replayed at open.
//!
//! File `groups/offsets.log`, one commit request per line: `<crc32c as 8 hex digits> <json>\n`,
//! the CRC over the JSON bytes. A commit is written with one `write` and made durable with
//! `fdatasync` before it is acknowledged. When the file holds many more lines than live
//! entries it is rewritten: temporary file, fsync, rename, fsync of the directory.
//!
//! Failures: a write or sync that fails may leave any prefix of its line in the file (a torn
//! line, without its newline). The store never appends after it: the failure is latched, and
//! the next commit (or `sync`) first rewrites the file from the acknowledged state, atomically;
//! until that rewrite succeeds every commit fails. Replay at open keeps every intact line,
//! wherever it is: a damaged line is skipped, and when a torn line runs into the next one (a
//! file written by a version that appended after a torn write) the intact record inside it is
//! found by its CRC. A torn tail is cut off; any other damage makes the open rewrite the file.
//! So an acknowledged commit is lost only if its own bytes are damaged.

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
    /// A write or sync failed: the file may end in a torn line, and its contents may differ
    /// from `groups`. Cleared by a successful [`GroupStore::rewrite`].
    failed: bool,
    /// Test hook: the next append writes only this many bytes, then fails.
    #[cfg(test)]
    tear_next: Option<usize>,
}

impl State {
    /// Appends `bytes` and makes them durable; any error latches `failed`.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.tear_next.take() {
            self.failed = true;
            self.file.write_all(&bytes[..n.min(bytes.len())])?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected torn write",
            ));
        }
        let result = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        if result.is_err() {
            self.failed = true;
        }
        result
    }
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
        let replayed = replay(&data);
        if replayed.damaged > 0 {
            tracing::warn!(
                path = %path.display(),
                damaged_bytes = replayed.damaged,
                "skipped damaged records of the group offsets file; rewriting it"
            );
        } else if replayed.tail < data.len() {
            tracing::warn!(
                path = %path.display(),
                dropped = data.len() - replayed.tail,
                "truncating torn tail of the group offsets file"
            );
            file.set_len(replayed.tail as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| BrokerError::io("truncate", &path, e))?;
        }
        let store = Self {
            dir: dir.to_owned(),
            state: Mutex::new(State {
                file,
                groups: replayed.groups,
                lines: replayed.lines,
                failed: false,
                #[cfg(test)]
                tear_next: None,
            }),
        };
        {
            let mut state = store.state.lock();
            if replayed.damaged > 0 {
                store.rewrite(&mut state)?;
            } else {
                store.maybe_compact(&mut state)?;
            }
        }
        Ok(store)
    }

    /// Stores `offsets` for `group` durably (one write and one fdatasync) and returns once
    /// they would survive a crash. After a failed commit, the next one first rewrites the
    /// whole file (see the module documentation); an error leaves the offsets uncommitted.
    pub fn commit(&self, group: &str, offsets: Vec<CommittedOffset>) -> Result<(), BrokerError> {
        let line = Line {
            group: group.to_owned(),
            offsets,
        };
        let bytes = encode_line(&line)?;
        let mut state = self.state.lock();
        let path = self.dir.join(FILE_NAME);
        if state.failed {
            self.rewrite(&mut state)?;
        }
        state
            .append(&bytes)
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

    /// Syncs the file (commits are already synced; this is for shutdown symmetry), first
    /// rewriting it if a commit failed since it was last written whole.
    pub fn sync(&self) -> Result<(), BrokerError> {
        let mut state = self.state.lock();
        if state.failed {
            return self.rewrite(&mut state);
        }
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
        match write() {
            Ok(file) => {
                state.file = file;
                state.lines = state.groups.len();
                state.failed = false;
                Ok(())
            }
            Err(e) => {
                // The file may no longer hold what `groups` does (a forgotten topic): the next
                // commit rewrites it again.
                state.failed = true;
                Err(BrokerError::io("rewrite", &path, e))
            }
        }
    }
}

fn encode_line(line: &Line) -> Result<Vec<u8>, BrokerError> {
    let json = serde_json::to_vec(line).map_err(|e| BrokerError::InvalidArgument(e.to_string()))?;
    let mut out = format!("{:08x} ", crc32c::crc32c(&json)).into_bytes();
    out.extend_from_slice(&json);
    out.push(b'\n');
    Ok(out)
}

/// What [`replay`] found.
struct Replayed {
    groups: GroupMap,
    /// Intact records.
    lines: usize,
    /// Length of the file up to its torn tail (an incomplete last line).
    tail: usize,
    /// Bytes of damaged lines before the tail (skipped).
    damaged: usize,
}

/// Replays every intact record, in file order. A line that fails its CRC or does not parse is
/// skipped, except for the intact record it may end with (a torn line that the next record was
/// appended to); an incomplete last line is the torn tail.
fn replay(data: &[u8]) -> Replayed {
    let mut out = Replayed {
        groups: GroupMap::new(),
        lines: 0,
        tail: 0,
        damaged: 0,
    };
    let mut pos = 0;
    while let Some(nl) = data
        .get(pos..)
        .and_then(|d| d.iter().position(|&b| b == b'\n'))
    {
        let line = &data[pos..pos + nl];
        let parsed = parse_line(line).or_else(|| {
            out.damaged += nl + 1;
            recover_line(line)
        });
        if let Some(parsed) = parsed {
            let entries = out.groups.entry(parsed.group).or_default();
            for o in parsed.offsets {
                entries.insert((o.topic.clone(), o.partition), o);
            }
            out.lines += 1;
        }
        pos += nl + 1;
    }
    out.tail = pos;
    out
}

/// The intact record at the end of a damaged line, if any: a record starts with 8 hex digits
/// and ` {"group":`, and its CRC decides. Cost: one CRC per candidate start.
fn recover_line(line: &[u8]) -> Option<Line> {
    const START: &[u8] = b" {\"group\":";
    // `s`: the space after the CRC; a record at 0 was already tried.
    (9..line.len())
        .filter(|&s| line.get(s..).is_some_and(|r| r.starts_with(START)))
        .find_map(|s| parse_line(line.get(s - 8..)?))
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

    fn offsets(store: &GroupStore, group: &str) -> Vec<(String, u64)> {
        store
            .fetch(group, None)
            .expect("fetch")
            .into_iter()
            .map(|o| (o.topic, o.offset))
            .collect()
    }

    /// Guards the replay: a torn line that a later commit was appended to (what an earlier
    /// version left after a failed write) costs no commit acknowledged after it.
    #[test]
    fn a_torn_line_followed_by_commits_loses_no_acknowledged_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        {
            let store = GroupStore::open(dir.path()).expect("open");
            commit(&store, "g", "t", 5);
            // A write torn by a crash or a full disk, while the store keeps running.
            let mut f = OpenOptions::new().append(true).open(&path).expect("open");
            f.write_all(b"0badc0de {\"group\":\"g\",\"offsets\":[{\"top")
                .expect("write");
            drop(f);
            commit(&store, "g", "u", 6);
            commit(&store, "h", "t", 7);
            commit(&store, "g", "t", 8);
        }
        let store = GroupStore::open(dir.path()).expect("reopen");
        assert_eq!(
            offsets(&store, "g"),
            vec![("t".to_owned(), 8), ("u".to_owned(), 6)]
        );
        assert_eq!(offsets(&store, "h"), vec![("t".to_owned(), 7)]);
        // The open rewrote the file without the damage.
        let data = std::fs::read(&path).expect("read");
        let replayed = replay(&data);
        assert_eq!((replayed.damaged, replayed.tail), (0, data.len()));
        drop(store);
        let store = GroupStore::open(dir.path()).expect("reopen again");
        assert_eq!(offsets(&store, "h"), vec![("t".to_owned(), 7)]);
    }

    /// Guards the writer: after a write fails halfway, nothing is appended after the torn
    /// bytes; the next commit rewrites the file, and every acknowledged commit survives.
    #[test]
    fn a_failed_write_is_never_appended_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        {
            let store = GroupStore::open(dir.path()).expect("open");
            commit(&store, "g", "t", 5);
            store.state.lock().tear_next = Some(20);
            let failed = store.commit(
                "g",
                vec![CommittedOffset {
                    topic: "t".into(),
                    partition: 0,
                    offset: 6,
                    metadata: String::new(),
                    committed_at_ms: 1,
                }],
            );
            assert!(matches!(failed, Err(BrokerError::NoSpace(_))), "{failed:?}");
            // Not acknowledged, not applied.
            assert_eq!(offsets(&store, "g"), vec![("t".to_owned(), 5)]);
            commit(&store, "g", "u", 7);
            commit(&store, "h", "t", 8);
            let data = std::fs::read(&path).expect("read");
            let replayed = replay(&data);
            assert_eq!((replayed.damaged, replayed.tail), (0, data.len()));
            assert_eq!(
                replayed.lines, 3,
                "the rewrite (one line for g), then two commits"
            );
        }
        let store = GroupStore::open(dir.path()).expect("reopen");
        assert_eq!(
            offsets(&store, "g"),
            vec![("t".to_owned(), 5), ("u".to_owned(), 7)]
        );
        assert_eq!(offsets(&store, "h"), vec![("t".to_owned(), 8)]);
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
