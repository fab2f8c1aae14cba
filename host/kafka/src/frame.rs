//! Response frames: a size prefix, the response header and body encoded by kafka-protocol,
//! and record bytes spliced in by reference.
//!
//! kafka-protocol encodes a fetch response's `records` field with one `put_slice` of a
//! contiguous buffer. To serve stored batches without copying them, a partition's records
//! field is given a *placeholder*: a slice of [`ZEROS`], a zeroed region allocated once that is never
//! read (its pages are never touched, so it costs no memory). [`SpliceBuf`], the buffer the
//! response is encoded into, recognises a placeholder by its address and, instead of copying
//! it, ends the current chunk and inserts the batches the placeholder stands for (each a
//! rewritten 61-byte header and a slice of the storage read). The frame is then a list of
//! chunks written with one vectored write.
//!
//! Invariant: record bytes reach the socket from the buffer the storage read filled; the
//! only bytes this module copies are the ones kafka-protocol encodes (headers, fields).

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use std::ops::Range;

/// The most record bytes one response can splice in (the sum over its partitions).
pub const MAX_SPLICED: usize = 128 << 20;

/// The placeholder region, allocated zeroed on first use and never freed. A zeroed
/// allocation this large is fresh anonymous memory: untouched, it has no resident pages, and
/// nothing reads it (placeholders are recognised, never copied). (An immutable `static`
/// array would be placed in `.rodata` and add its whole size to the binary.)
static ZEROS: std::sync::LazyLock<&'static [u8]> =
    std::sync::LazyLock::new(|| Box::leak(vec![0u8; MAX_SPLICED].into_boxed_slice()));

/// The record chunks of one response, each behind a placeholder of its total length.
#[derive(Debug, Default)]
pub struct Splices {
    /// `(offset in ZEROS, chunks)`, in increasing offset order.
    slots: Vec<(usize, Vec<Bytes>)>,
    used: usize,
    /// The share of the response memory budget the chunks hold, released with the frame.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Splices {
    /// Bytes spliced so far.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether nothing was spliced.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Keeps `permit` (the chunks' share of a memory budget) until the frame is written.
    pub fn hold(&mut self, permit: tokio::sync::OwnedSemaphorePermit) {
        self.permit = Some(permit);
    }

    /// Room left for more record bytes.
    pub fn room(&self) -> usize {
        MAX_SPLICED - self.used
    }

    /// A placeholder standing for `chunks` concatenated, to put in a records field; `None`
    /// when they do not fit in [`room`](Self::room). An empty `chunks` gives an empty,
    /// ordinary `Bytes`.
    pub fn placeholder(&mut self, chunks: Vec<Bytes>) -> Option<Bytes> {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        if len == 0 {
            return Some(Bytes::new());
        }
        if len > self.room() {
            return None;
        }
        let at = self.used;
        self.used += len;
        self.slots.push((at, chunks));
        let zeros: &'static [u8] = *ZEROS;
        Some(Bytes::from_static(&zeros[at..at + len]))
    }

    /// The slot `src` is the placeholder of, if it is one.
    fn take(&mut self, src: &[u8]) -> Option<Vec<Bytes>> {
        let start = (src.as_ptr() as usize).checked_sub(ZEROS.as_ptr() as usize)?;
        if start >= MAX_SPLICED || src.is_empty() {
            return None;
        }
        let i = self
            .slots
            .binary_search_by_key(&start, |(at, _)| *at)
            .ok()?;
        let chunks = std::mem::take(&mut self.slots[i].1);
        let len: usize = chunks.iter().map(Bytes::len).sum();
        (len == src.len()).then_some(chunks)
    }
}

/// The buffer a response is encoded into: copied bytes in `current`, spliced chunks between.
struct SpliceBuf {
    chunks: Vec<Bytes>,
    /// Bytes in `chunks`.
    flushed: usize,
    current: BytesMut,
    splices: Splices,
}

impl SpliceBuf {
    fn new(splices: Splices) -> Self {
        Self {
            chunks: Vec::new(),
            flushed: 0,
            current: BytesMut::with_capacity(256),
            splices,
        }
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            let b = self.current.split().freeze();
            self.flushed += b.len();
            self.chunks.push(b);
        }
    }
}

// SAFETY: every method delegates to `current`, a `BytesMut`, whose `BufMut` implementation
// upholds the trait's contract; `put_slice` either delegates or appends owned chunks, which
// does not touch `current`'s uninitialised capacity.
unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut()`, which is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.splices.take(src) {
            Some(chunks) => {
                self.flush();
                for c in chunks {
                    self.flushed += c.len();
                    self.chunks.push(c);
                }
            }
            None => self.current.put_slice(src),
        }
    }
}

impl ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.flushed + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        // Encoders seek only forward over gaps they fill later, within the current chunk.
        let local = offset.saturating_sub(self.flushed);
        self.current.resize(local, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let start = r.start.saturating_sub(self.flushed);
        let end = r.end.saturating_sub(self.flushed);
        &mut self.current[start..end]
    }
}

/// One response on the wire: the 4-byte size prefix and the rest, as chunks.
#[derive(Debug, Default)]
pub struct Frame {
    /// The chunks, size prefix first.
    pub chunks: Vec<Bytes>,
    /// The memory budget share of the spliced chunks, released when the frame is dropped
    /// (after it was written).
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Frame {
    /// Total bytes, prefix included.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// Whether the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The frame as one contiguous buffer (tests and golden frames).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }

    /// Encodes `body` at `version` as the answer to `correlation_id`, splicing `splices` in
    /// where its records fields hold their placeholders.
    pub fn encode<R: Encodable + HeaderVersion>(
        correlation_id: i32,
        version: i16,
        body: &R,
        splices: Splices,
    ) -> anyhow::Result<Self> {
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        let header_version = R::header_version(version);
        // The size prefix comes first, so compute it (placeholders count their full length)
        // rather than patching a copy of the first chunk afterwards.
        let size = header.compute_size(header_version)? + body.compute_size(version)?;
        let size = i32::try_from(size).map_err(|_| {
            anyhow::anyhow!("response of {size} bytes is over the protocol's limit")
        })?;
        let mut splices = splices;
        let permit = splices.permit.take();
        let mut buf = SpliceBuf::new(splices);
        buf.put_i32(size);
        header.encode(&mut buf, header_version)?;
        body.encode(&mut buf, version)?;
        buf.flush();
        anyhow::ensure!(
            buf.flushed == 4 + size as usize,
            "response encoded to {} bytes, sized {size}",
            buf.flushed - 4
        );
        let chunks = buf.chunks;
        Ok(Self { chunks, permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::Decodable;

    fn response(records: Vec<Bytes>) -> FetchResponse {
        FetchResponse::default().with_responses(
            records
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    FetchableTopicResponse::default()
                        .with_topic(kafka_protocol::messages::TopicName(
                            kafka_protocol::protocol::StrBytes::from_static_str("t"),
                        ))
                        .with_partitions(vec![
                            PartitionData::default()
                                .with_partition_index(i as i32)
                                .with_records(Some(r)),
                        ])
                })
                .collect(),
        )
    }

    #[test]
    fn spliced_records_encode_like_copied_ones_without_being_copied() {
        let a = Bytes::from(vec![1u8; 100]);
        let b = Bytes::from(vec![2u8; 7]);
        let c = Bytes::from(vec![3u8; 3000]);
        for version in [4i16, 11, 12] {
            let mut splices = Splices::default();
            let p1 = splices.placeholder(vec![a.clone(), b.clone()]).unwrap();
            let p2 = splices.placeholder(vec![c.clone()]).unwrap();
            let spliced = Frame::encode(9, version, &response(vec![p1, p2]), splices).unwrap();
            // The record chunks are the very buffers given, not copies.
            assert!(spliced.chunks.iter().any(|x| x.as_ptr() == c.as_ptr()));
            assert!(spliced.chunks.iter().any(|x| x.as_ptr() == a.as_ptr()));
            let mut ab = a.to_vec();
            ab.extend_from_slice(&b);
            let copied = Frame::encode(
                9,
                version,
                &response(vec![Bytes::from(ab), c.clone()]),
                Splices::default(),
            )
            .unwrap();
            assert_eq!(spliced.to_vec(), copied.to_vec(), "v{version}");
            let bytes = spliced.to_vec();
            assert_eq!(
                i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
                bytes.len() - 4
            );
            let mut body = Bytes::from(bytes).slice(4..);
            ResponseHeader::decode(&mut body, FetchResponse::header_version(version)).unwrap();
            let decoded = FetchResponse::decode(&mut body, version).unwrap();
            assert_eq!(decoded.responses.len(), 2);
        }
    }

    #[test]
    fn placeholders_do_not_overflow_the_region() {
        let mut s = Splices::default();
        assert!(s.placeholder(vec![Bytes::from(vec![0u8; 10])]).is_some());
        assert_eq!(s.room(), MAX_SPLICED - 10);
        assert_eq!(s.placeholder(vec![]).unwrap().len(), 0);
    }
}
