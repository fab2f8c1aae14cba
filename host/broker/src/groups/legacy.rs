//! The side file earlier versions kept group commits in, read once to migrate it onto the
//! internal offsets log (see [`super::store`]); nothing writes it any more.
//!
//! File `groups/offsets.log`, one commit request per line: `<crc32c as 8 hex digits> <json>\n`,
//! the CRC over the JSON bytes. Replay keeps every intact line, wherever it is: a damaged line
//! is skipped, and when a torn line runs into the next one (a write that failed halfway, then
//! another commit appended) the intact record inside it is found by its CRC. An incomplete
//! last line is a torn tail (never acknowledged) and is ignored.

use super::store::CommittedOffset;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The side file, under `<data_dir>/groups/`.
pub(crate) const FILE_NAME: &str = "offsets.log";
/// The temporary file its rewrites used.
pub(crate) const TMP_NAME: &str = "offsets.log.tmp";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Line {
    pub group: String,
    pub offsets: Vec<CommittedOffset>,
}

/// Group -> (topic, partition) -> latest commit.
pub(crate) type GroupMap = BTreeMap<String, BTreeMap<(String, u32), CommittedOffset>>;

/// What [`replay`] found.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub groups: GroupMap,
    /// Bytes of damaged lines before the tail (skipped).
    pub damaged: usize,
    /// Bytes of the torn tail (an incomplete last line).
    pub torn_tail: usize,
}

/// Replays every intact record, in file order (a later commit of a key wins).
pub(crate) fn replay(data: &[u8]) -> Replayed {
    let mut out = Replayed {
        groups: GroupMap::new(),
        damaged: 0,
        torn_tail: 0,
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
        }
        pos += nl + 1;
    }
    out.torn_tail = data.len() - pos;
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

/// One line in the side file's format (tests write old files with it).
#[cfg(test)]
pub(crate) fn encode_line(line: &Line) -> Vec<u8> {
    let json = serde_json::to_vec(line).expect("json");
    let mut out = format!("{:08x} ", crc32c::crc32c(&json)).into_bytes();
    out.extend_from_slice(&json);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(group: &str, topic: &str, offset: u64) -> Vec<u8> {
        encode_line(&Line {
            group: group.into(),
            offsets: vec![CommittedOffset {
                topic: topic.into(),
                partition: 0,
                offset,
                metadata: String::new(),
                committed_at_ms: 1,
            }],
        })
    }

    /// Guards the replay: a torn line that a later commit was appended to costs no commit
    /// after it, and a torn tail is ignored.
    #[test]
    fn intact_records_survive_torn_lines_and_tails() {
        let mut data = line("g", "t", 5);
        data.extend_from_slice(b"0badc0de {\"group\":\"g\",\"offsets\":[{\"top");
        data.extend(line("g", "u", 6));
        data.extend(line("g", "t", 8));
        data.extend_from_slice(b"0000abcd {\"group\":\"g\",\"off");
        let r = replay(&data);
        let g = &r.groups["g"];
        assert_eq!(g[&("t".to_owned(), 0)].offset, 8);
        assert_eq!(g[&("u".to_owned(), 0)].offset, 6);
        assert!(r.damaged > 0);
        assert_eq!(r.torn_tail, 26);
    }
}
