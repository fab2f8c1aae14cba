//! Producers' compression codecs (Kafka attribute bits 0-2), decoded under a size bound: a
//! batch that would inflate past `max` is refused before it is, so a compression bomb costs
//! at most `max` bytes.

use std::io::Read;

/// Why a compressed records section was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The codec id is not one Kafka defines.
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
    /// The section inflates past the bound.
    #[error("the records inflate past {max} bytes")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// The bytes are not a valid stream of the codec.
    #[error("invalid {codec} data: {detail}")]
    Invalid {
        /// Codec name.
        codec: &'static str,
        /// What the decoder said.
        detail: String,
    },
}

/// The codec name of Kafka compression id `id`.
pub fn name(id: u8) -> &'static str {
    match id {
        0 => "none",
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => "unknown",
    }
}

/// Decodes `input`, compressed with Kafka codec `id` (1 gzip, 2 snappy, 3 lz4, 4 zstd), into
/// at most `max` bytes.
pub fn decompress(id: u8, input: &[u8], max: usize) -> Result<Vec<u8>, DecompressError> {
    let invalid = |codec: &'static str| {
        move |e: &dyn std::fmt::Display| DecompressError::Invalid {
            codec,
            detail: e.to_string(),
        }
    };
    match id {
        1 => read_bounded(flate2::read::MultiGzDecoder::new(input), max, "gzip"),
        2 => snappy(input, max),
        3 => read_bounded(lz4_flex::frame::FrameDecoder::new(input), max, "lz4"),
        4 => {
            let mut out = Vec::new();
            let mut rest = input;
            while !rest.is_empty() {
                let decoder = ruzstd::decoding::StreamingDecoder::new(&mut rest)
                    .map_err(|e| invalid("zstd")(&e))?;
                let room = max.saturating_sub(out.len());
                let part = read_bounded(decoder, room, "zstd")?;
                out.extend_from_slice(&part);
            }
            if out.len() > max {
                return Err(DecompressError::TooLarge { max });
            }
            Ok(out)
        }
        other => Err(DecompressError::UnknownCodec(other)),
    }
}

fn read_bounded(r: impl Read, max: usize, codec: &'static str) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    r.take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Invalid {
            codec,
            detail: e.to_string(),
        })?;
    if out.len() > max {
        return Err(DecompressError::TooLarge { max });
    }
    Ok(out)
}

/// The xerial framing the Java client writes: a magic, two versions, then length-prefixed
/// raw snappy blocks. librdkafka writes one raw block.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

fn snappy(input: &[u8], max: usize) -> Result<Vec<u8>, DecompressError> {
    let bad = |detail: String| DecompressError::Invalid {
        codec: "snappy",
        detail,
    };
    let mut decoder = snap::raw::Decoder::new();
    let mut block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), DecompressError> {
        let len = snap::raw::decompress_len(block).map_err(|e| bad(e.to_string()))?;
        if out.len() + len > max {
            return Err(DecompressError::TooLarge { max });
        }
        let start = out.len();
        out.resize(start + len, 0);
        let n = decoder
            .decompress(block, &mut out[start..])
            .map_err(|e| bad(e.to_string()))?;
        out.truncate(start + n);
        Ok(())
    };
    let mut out = Vec::new();
    if let Some(mut rest) = input.strip_prefix(XERIAL_MAGIC) {
        // Version and compatible version, 4 bytes each.
        rest = rest
            .get(8..)
            .ok_or_else(|| bad("truncated xerial header".into()))?;
        while !rest.is_empty() {
            let len = rest
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| bad("truncated xerial block length".into()))?;
            let data = rest
                .get(4..4 + len)
                .ok_or_else(|| bad("truncated xerial block".into()))?;
            block(data, &mut out)?;
            rest = &rest[4 + len..];
        }
    } else {
        block(input, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips_and_respects_the_bound() {
        let plain = data();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let raw_snappy = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&1u32.to_be_bytes());
        xerial.extend_from_slice(&1u32.to_be_bytes());
        for chunk in plain.chunks(32 << 10) {
            let c = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend_from_slice(&(c.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&c);
        }
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(&plain).unwrap();
        let lz4 = lz4.finish().unwrap();
        let zstd = ruzstd::encoding::compress_to_vec(
            &plain[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (id, input) in [
            (1, &gz),
            (2, &raw_snappy),
            (2, &xerial),
            (3, &lz4),
            (4, &zstd),
        ] {
            assert_eq!(
                decompress(id, input, plain.len()).unwrap(),
                plain,
                "{}",
                name(id)
            );
            assert!(
                matches!(
                    decompress(id, input, plain.len() - 1),
                    Err(DecompressError::TooLarge { .. })
                ),
                "{}",
                name(id)
            );
            assert!(decompress(id, &input[..input.len() / 2], plain.len()).is_err());
        }
        assert!(matches!(
            decompress(5, &gz, 10),
            Err(DecompressError::UnknownCodec(5))
        ));
    }
}
