//! Reading a partition directory without opening its log: for offline tools (`distlog plugin
//! replay`) that must never write to a data directory, and may run while a broker serves it.
//!
//! [`ReadOnlyLog`] opens every file read-only, takes no directory lock, runs no recovery and
//! writes no checkpoint. It sees each segment's valid prefix: batches are framed and
//! CRC-checked from the start of the file, and the scan of a segment stops at the first
//! batch that is torn or damaged (what a recovery would truncate). Offsets are not checked
//! against the log's checkpoint or high watermark: a batch being written by a live broker is
//! seen once it is whole.

use crate::batch::{BatchLimits, BatchView, HEADER_LEN};
use crate::log::CodecEntry;
use crate::log::codecs::{CODEC_TABLE_NAME, decode};
use crate::segment::frame::Frame;
use crate::segment::{SegmentInfo, parse_name};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A partition directory opened for reading only.
#[derive(Debug, Clone)]
pub struct ReadOnlyLog {
    dir: PathBuf,
    bases: Vec<u64>,
    codecs: Vec<CodecEntry>,
}

impl ReadOnlyLog {
    /// Lists the segments of the partition directory `dir` and reads its codec table.
    /// `NotFound` if `dir` does not exist. Cost: one directory listing and one read of the
    /// codec table; no segment is read yet.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str()
                && let Some((base, "log")) = parse_name(name)
                && entry.file_type()?.is_file()
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let codecs = match std::fs::read(dir.join(CODEC_TABLE_NAME)) {
            Ok(bytes) => decode(&bytes).0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Self { dir, bases, codecs })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Base offsets of the segments, oldest first (the last one is the active segment).
    pub fn segment_bases(&self) -> &[u64] {
        &self.bases
    }

    /// The codec table: what compressed batches' `codec_ref` names.
    pub fn codecs(&self) -> &[CodecEntry] {
        &self.codecs
    }

    /// The codec table entry `codec_ref` names, if any.
    pub fn codec(&self, codec_ref: u16) -> Option<&CodecEntry> {
        self.codecs.iter().find(|e| e.id == codec_ref)
    }

    /// Calls `f` with every whole, CRC-valid batch of the segment at `base`, in order, and
    /// returns the segment's descriptor (its valid prefix; `active` for the last segment).
    /// Stops at the first torn or damaged batch. Cost: one read of each batch and a CRC pass.
    pub fn scan_segment(
        &self,
        base: u64,
        mut f: impl FnMut(BatchView<'_>) -> io::Result<()>,
    ) -> io::Result<SegmentInfo> {
        let file = File::open(self.dir.join(crate::segment::log_name(base)))?;
        let len = file.metadata()?.len();
        let mut info = SegmentInfo {
            base_offset: base,
            last_offset: base.wrapping_sub(1),
            size_bytes: 0,
            first_timestamp: -1,
            max_timestamp: -1,
            record_count: 0,
            active: self.bases.last() == Some(&base),
        };
        let mut pos = 0u64;
        let mut head = [0u8; HEADER_LEN];
        let mut buf = Vec::new();
        while pos + HEADER_LEN as u64 <= len {
            file.read_exact_at(&mut head, pos)?;
            let limits = BatchLimits::UNLIMITED;
            let Ok(frame) = Frame::parse(&head, limits.max_batch_length) else {
                break;
            };
            let total = frame.total_len();
            let Ok(size) = usize::try_from(total) else {
                break;
            };
            if pos + total > len {
                break;
            }
            buf.resize(size, 0);
            file.read_exact_at(&mut buf, pos)?;
            let Ok(view) = BatchView::parse_with_limits(&buf, &limits) else {
                break;
            };
            if info.first_timestamp == -1 {
                info.first_timestamp = frame.first_timestamp;
            }
            info.max_timestamp = info.max_timestamp.max(frame.max_timestamp);
            info.record_count += u64::from(frame.record_count);
            info.last_offset = frame.last_offset();
            f(view)?;
            pos += total;
        }
        info.size_bytes = pos;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Record};
    use crate::{Log, LogConfig};

    fn batch(values: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for v in values {
            b.push(&Record::new(1_700_000_000_000, v.as_bytes()).with_key(*v))
                .unwrap();
        }
        b.finish().unwrap()
    }

    #[test]
    fn reads_what_the_log_wrote_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open_dir(dir.path(), LogConfig::default()).unwrap();
        for values in [&["a", "b"][..], &["c"], &["d", "e", "f"]] {
            log.append(&mut batch(values)).unwrap();
        }
        let expected = log.segments();
        log.close().unwrap();
        drop(log);

        let ro = ReadOnlyLog::open(dir.path()).unwrap();
        assert_eq!(ro.segment_bases(), &[0]);
        let mut keys = Vec::new();
        let info = ro
            .scan_segment(0, |view| {
                for r in view.decode_records().unwrap() {
                    keys.push(String::from_utf8(r.key.unwrap()).unwrap());
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(keys, ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(info, expected[0]);

        // A torn last batch (a crash mid-write) is not seen; nothing is repaired on disk.
        let file = dir.path().join(crate::segment::log_name(0));
        let len = std::fs::metadata(&file).unwrap().len();
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(&batch(&["g"])[..20]);
        std::fs::write(&file, &bytes).unwrap();
        let info = ro.scan_segment(0, |_| Ok(())).unwrap();
        assert_eq!(info.size_bytes, len);
        assert_eq!(info.record_count, 6);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), len + 20);
    }
}
