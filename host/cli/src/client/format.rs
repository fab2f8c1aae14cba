//! Pure parts of `produce` and `consume`: line splitting, header flags, start positions, the
//! JSON record shape (both directions) and the output format language. No IO here, so it
//! is unit-tested directly.
//!
//! The JSON record shape is proto3 JSON of `distlog.v1.StoredRecord` with the proto field
//! names kept (`timestamp_ms`), plus `topic` and `partition`: bytes are standard base64 in
//! the field named after them (`key`, `value`, header `value`), an absent key or value is
//! `null`, an empty one `""`; integers are JSON numbers (proto3 JSON parsers accept them for
//! `int64`). `consume --format json` prints it and `produce --format json` reads it back.

use std::fmt::Write as _;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::timefmt::{self, TimeFormat};

/// One record as the CLI sees it, independent of the protobuf type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
    /// Slices of the fetched message (no copy per record); `None` is a null key.
    pub key: Option<bytes::Bytes>,
    /// `None` is a null value (a tombstone).
    pub value: Option<bytes::Bytes>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Splits one input line (without its delimiter) into key and value at the first
/// occurrence of `separator`. A line without the separator is a record without a key.
pub fn split_line(line: &[u8], separator: Option<&[u8]>) -> (Option<Vec<u8>>, Vec<u8>) {
    let Some(sep) = separator.filter(|s| !s.is_empty()) else {
        return (None, line.to_vec());
    };
    match find(line, sep) {
        Some(at) => (Some(line[..at].to_vec()), line[at + sep.len()..].to_vec()),
        None => (None, line.to_vec()),
    }
}

/// The position of the first occurrence of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a `-H key=value` flag.
pub fn parse_header(flag: &str) -> Result<(String, Vec<u8>)> {
    match flag.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.as_bytes().to_vec())),
        _ => bail!("header {flag:?} is not KEY=VALUE"),
    }
}

/// Turns `\t`, `\n`, `\r`, `\\` and `\0` escapes into bytes (shells pass them literally).
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Start positions
// ---------------------------------------------------------------------------------------

/// Where `consume` starts reading one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records appended from now on.
    Latest,
    /// This offset (out of range: the reset rule applies).
    Offset(u64),
    /// The last N records: the log end minus N, not before the log start.
    LastN(u64),
    /// The first record whose timestamp is at or after this many ms since the Unix epoch.
    Timestamp(i64),
    /// The first record at or after this many ms before now.
    Ago(u64),
}

impl FromStr for Position {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let expected = "expected earliest, latest, an offset, -N (the last N records), \
                        @MILLIS, an RFC 3339 time or a duration ago such as 10m";
        Ok(match s {
            "earliest" | "beginning" | "start" => Self::Earliest,
            "latest" | "end" => Self::Latest,
            _ if s.starts_with('@') => {
                let ms = s[1..]
                    .parse::<i64>()
                    .with_context(|| format!("{s:?}: expected @MILLIS since the Unix epoch"))?;
                Self::Timestamp(ms)
            }
            _ if s.starts_with('-') => {
                let n = s[1..]
                    .parse::<u64>()
                    .with_context(|| format!("{s:?}: expected -N, the last N records"))?;
                Self::LastN(n)
            }
            _ if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => Self::Offset(
                s.parse()
                    .with_context(|| format!("{s:?}: offset too large"))?,
            ),
            _ if timefmt::looks_like_date(s) => Self::Timestamp(timefmt::parse_rfc3339(s)?),
            _ if timefmt::looks_like_duration(s) => Self::Ago(timefmt::parse_duration(s)?),
            _ => bail!("{s:?}: {expected}"),
        })
    }
}

/// `consume --from`: one position for every partition, and/or `PARTITION:POSITION` items,
/// comma-separated (`latest`, `0:15,1:earliest`, `-10,2:0`). With only per-partition items,
/// only those partitions are read; a bare item is the position of every other partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartAt {
    pub default: Option<Position>,
    pub partitions: Vec<(u32, Position)>,
}

impl StartAt {
    /// The position of `partition`, or `None` when it is not to be read.
    pub fn of(&self, partition: u32) -> Option<Position> {
        self.partitions
            .iter()
            .find(|(p, _)| *p == partition)
            .map(|(_, at)| *at)
            .or(self.default)
    }
}

impl FromStr for StartAt {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut default = None;
        let mut partitions: Vec<(u32, Position)> = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            // `P:POS`: digits before the first colon (an RFC 3339 time has a `-` first).
            match item.split_once(':') {
                Some((p, at)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    let p: u32 = p
                        .parse()
                        .with_context(|| format!("{item:?}: partition too large"))?;
                    if partitions.iter().any(|(q, _)| *q == p) {
                        bail!("--from names partition {p} twice");
                    }
                    partitions.push((p, at.parse()?));
                }
                _ => {
                    if default.is_some() {
                        bail!(
                            "--from {s:?} has two positions for every partition; give one, \
                             and PARTITION:POSITION items for the others"
                        );
                    }
                    default = Some(item.parse()?);
                }
            }
        }
        Ok(Self {
            default,
            partitions,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Base64 (standard alphabet, padded, as proto3 JSON writes bytes)
// ---------------------------------------------------------------------------------------

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes base64 as proto3 JSON parsers do: the standard or the URL-safe alphabet, with or
/// without padding.
pub fn base64_decode(text: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    let decoded = if text.contains(['-', '_']) {
        URL_SAFE.decode(text)
    } else {
        STANDARD.decode(text)
    };
    decoded.map_err(|e| anyhow::anyhow!("{text:?} is not base64: {e}"))
}

// ---------------------------------------------------------------------------------------
// The JSON record shape
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct JsonHeaderOut {
    key: String,
    value: String,
}

#[derive(Serialize)]
struct JsonRecordOut<'a> {
    topic: &'a str,
    partition: u32,
    offset: u64,
    timestamp_ms: i64,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<JsonHeaderOut>,
}

/// Appends `record` as one JSON line (the shape in the module docs).
pub fn write_json(record: &Record, out: &mut Vec<u8>) -> Result<()> {
    let json = JsonRecordOut {
        topic: &record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp_ms: record.timestamp_ms,
        key: record.key.as_deref().map(base64_encode),
        value: record.value.as_deref().map(base64_encode),
        headers: record
            .headers
            .iter()
            .map(|(key, value)| JsonHeaderOut {
                key: key.clone(),
                value: base64_encode(value),
            })
            .collect(),
    };
    serde_json::to_writer(&mut *out, &json)?;
    out.push(b'\n');
    Ok(())
}

/// A JSON `int64`: a number or a string of digits, as proto3 JSON accepts.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Number(i64),
    Text(String),
}

impl Int64 {
    fn get(self, field: &str) -> Result<i64> {
        match self {
            Self::Number(n) => Ok(n),
            Self::Text(s) => s
                .parse()
                .with_context(|| format!("{field}: {s:?} is not an integer")),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHeaderIn {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecordIn {
    key: Option<String>,
    value: Option<String>,
    headers: Option<Vec<JsonHeaderIn>>,
    #[serde(alias = "timestampMs")]
    timestamp_ms: Option<Int64>,
    partition: Option<u32>,
    // Printed by `consume`, assigned by the broker: accepted and ignored, so that a consumed
    // line replays as it is (into any topic).
    #[allow(dead_code)]
    topic: Option<String>,
    #[allow(dead_code)]
    offset: Option<Int64>,
}

/// A record read from a `produce --format json` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: Option<i64>,
    pub partition: Option<u32>,
}

/// Parses one JSON line into a record (the shape in the module docs).
pub fn parse_json_line(line: &[u8]) -> Result<InputRecord> {
    let parsed: JsonRecordIn = serde_json::from_slice(line).context(
        "expected a JSON object with key, value (base64 or null), headers \
         ([{\"key\": NAME, \"value\": BASE64}]), timestamp_ms and partition, all optional",
    )?;
    let bytes = |field: &str, text: Option<String>| {
        text.map(|t| base64_decode(&t).with_context(|| format!("{field}: not base64")))
            .transpose()
    };
    Ok(InputRecord {
        key: bytes("key", parsed.key)?,
        value: bytes("value", parsed.value)?,
        headers: parsed
            .headers
            .unwrap_or_default()
            .into_iter()
            .map(|h| {
                let value = base64_decode(&h.value)
                    .with_context(|| format!("header {:?}: value not base64", h.key))?;
                Ok((h.key, value))
            })
            .collect::<Result<_>>()?,
        timestamp_ms: parsed
            .timestamp_ms
            .map(|t| t.get("timestamp_ms"))
            .transpose()?,
        partition: parsed.partition,
    })
}

// ---------------------------------------------------------------------------------------
// Output formats
// ---------------------------------------------------------------------------------------

/// The `consume --format` language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON object per line (the shape in the module docs).
    Json,
    /// The value bytes and nothing else.
    Raw,
    /// A template: `%k` key, `%v` value, `%K` / `%V` their lengths (-1 when null), `%o`
    /// offset, `%p` partition, `%t` timestamp (per `--time-format`), `%T` topic, `%h`
    /// headers as `k=v,k=v`, `%%` a percent sign; `\t`, `\n`, `\r`, `\0`, `\\` escapes.
    Template(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(Vec<u8>),
    Key,
    Value,
    KeyLen,
    ValueLen,
    Offset,
    Partition,
    Timestamp,
    Topic,
    Headers,
}

impl FromStr for RecordFormat {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "json" => return Ok(Self::Json),
            "raw" => return Ok(Self::Raw),
            _ => {}
        }
        let text = unescape(s);
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                let mut buf = [0u8; 4];
                literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            let piece = match chars.next() {
                Some('%') => {
                    literal.push(b'%');
                    continue;
                }
                Some('k') => Piece::Key,
                Some('v') => Piece::Value,
                Some('K') => Piece::KeyLen,
                Some('V') => Piece::ValueLen,
                Some('o') => Piece::Offset,
                Some('p') => Piece::Partition,
                Some('t') => Piece::Timestamp,
                Some('T') => Piece::Topic,
                Some('h') => Piece::Headers,
                Some(other) => bail!(
                    "unknown format directive %{other} (use %k %v %K %V %o %p %t %T %h %%, or \
                     json or raw)"
                ),
                None => bail!("format ends with a lone %"),
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self::Template(pieces))
    }
}

/// Rendering options of templates (JSON has one fixed representation).
#[derive(Debug, Clone, Default)]
pub struct RenderOpts {
    /// How `%t` renders.
    pub time: TimeFormat,
    /// What `%k` / `%v` (and `raw`) print for a null key or value; empty by default.
    pub null: Vec<u8>,
}

impl RecordFormat {
    /// Appends the rendering of `record` to `out`.
    pub fn render(&self, record: &Record, opts: &RenderOpts, out: &mut Vec<u8>) -> Result<()> {
        let nullable = |bytes: &Option<bytes::Bytes>, out: &mut Vec<u8>| match bytes {
            Some(b) => out.extend_from_slice(b),
            None => out.extend_from_slice(&opts.null),
        };
        let len = |bytes: &Option<bytes::Bytes>| bytes.as_ref().map_or(-1, |b| b.len() as i64);
        match self {
            Self::Raw => nullable(&record.value, out),
            Self::Json => write_json(record, out)?,
            Self::Template(pieces) => {
                for piece in pieces {
                    match piece {
                        Piece::Literal(bytes) => out.extend_from_slice(bytes),
                        Piece::Key => nullable(&record.key, out),
                        Piece::Value => nullable(&record.value, out),
                        Piece::KeyLen => {
                            out.extend_from_slice(len(&record.key).to_string().as_bytes());
                        }
                        Piece::ValueLen => {
                            out.extend_from_slice(len(&record.value).to_string().as_bytes());
                        }
                        Piece::Offset => {
                            out.extend_from_slice(record.offset.to_string().as_bytes());
                        }
                        Piece::Partition => {
                            out.extend_from_slice(record.partition.to_string().as_bytes());
                        }
                        Piece::Timestamp => {
                            out.extend_from_slice(opts.time.render(record.timestamp_ms).as_bytes());
                        }
                        Piece::Topic => out.extend_from_slice(record.topic.as_bytes()),
                        Piece::Headers => {
                            let mut text = String::new();
                            for (i, (k, v)) in record.headers.iter().enumerate() {
                                if i > 0 {
                                    text.push(',');
                                }
                                let _ = write!(text, "{k}={}", String::from_utf8_lossy(v));
                            }
                            out.extend_from_slice(text.as_bytes());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: 1_714_564_800_250,
            key: Some(bytes::Bytes::from_static(b"k1")),
            value: Some(bytes::Bytes::from_static(b"hello")),
            headers: vec![("h".into(), b"x".to_vec())],
        }
    }

    #[test]
    fn splits_at_first_separator() {
        assert_eq!(
            split_line(b"a:b:c", Some(b":")),
            (Some(b"a".to_vec()), b"b:c".to_vec())
        );
        assert_eq!(
            split_line(b":b", Some(b":")),
            (Some(Vec::new()), b"b".to_vec())
        );
        assert_eq!(split_line(b"abc", Some(b":")), (None, b"abc".to_vec()));
        assert_eq!(split_line(b"a:b", None), (None, b"a:b".to_vec()));
    }

    #[test]
    fn parses_start_positions() -> Result<()> {
        let one = |s: &str| s.parse::<Position>();
        assert_eq!(one("earliest")?, Position::Earliest);
        assert_eq!(one("latest")?, Position::Latest);
        assert_eq!(one("17")?, Position::Offset(17));
        assert_eq!(one("-3")?, Position::LastN(3));
        assert_eq!(one("@5")?, Position::Timestamp(5));
        assert_eq!(one("10m")?, Position::Ago(600_000));
        assert_eq!(
            one("2024-05-01T12:00:00.250Z")?,
            Position::Timestamp(1_714_564_800_250)
        );
        for bad in ["@x", "-x", "soon", "", "10q", "2024-13-01"] {
            assert!(one(bad).is_err(), "{bad}");
        }
        let all: StartAt = "0:15,1:earliest,2:-2".parse()?;
        assert_eq!(all.default, None);
        assert_eq!(all.of(0), Some(Position::Offset(15)));
        assert_eq!(all.of(2), Some(Position::LastN(2)));
        assert_eq!(all.of(3), None);
        let mixed: StartAt = "latest,1:2024-05-01T12:00:00Z".parse()?;
        assert_eq!(mixed.of(0), Some(Position::Latest));
        assert_eq!(mixed.of(1), Some(Position::Timestamp(1_714_564_800_000)));
        assert!("0:1,0:2".parse::<StartAt>().is_err());
        assert!("earliest,latest".parse::<StartAt>().is_err());
        assert!("0:nope".parse::<StartAt>().is_err());
        Ok(())
    }

    #[test]
    fn base64_matches_the_standard_alphabet() -> Result<()> {
        for (plain, encoded) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff, 0xfe], "+//+"),
        ] {
            assert_eq!(base64_encode(plain), encoded);
            assert_eq!(base64_decode(encoded)?, plain);
        }
        assert_eq!(base64_decode("-__-")?, [0xfb, 0xff, 0xfe]);
        assert_eq!(base64_decode("Zg")?, b"f");
        for bad in ["Z", "Zg===", "Z!==", "hello"] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all))?, all);
        Ok(())
    }

    #[test]
    fn renders_templates() -> Result<()> {
        let format: RecordFormat = r"%k\t%v %o/%p %h %K/%V %%\n".parse()?;
        let mut out = Vec::new();
        format.render(&record(), &RenderOpts::default(), &mut out)?;
        assert_eq!(out, b"k1\thello 41/2 h=x 2/5 %\n");
        let mut tombstone = record();
        tombstone.key = None;
        tombstone.value = None;
        let opts = RenderOpts {
            time: TimeFormat::Rfc3339,
            null: b"NULL".to_vec(),
        };
        let mut out = Vec::new();
        "%k %v %K %V %t"
            .parse::<RecordFormat>()?
            .render(&tombstone, &opts, &mut out)?;
        assert_eq!(out, b"NULL NULL -1 -1 2024-05-01T12:00:00.250Z");
        assert!("%z".parse::<RecordFormat>().is_err());
        Ok(())
    }

    #[test]
    fn json_is_base64_with_nulls_and_reads_back() -> Result<()> {
        let mut rec = record();
        rec.value = Some(bytes::Bytes::from_static(&[0xff, 0x00]));
        rec.headers = vec![("h".into(), b"1".to_vec()), ("h".into(), Vec::new())];
        let mut out = Vec::new();
        write_json(&rec, &mut out)?;
        let parsed: serde_json::Value = serde_json::from_slice(&out)?;
        assert_eq!(
            parsed,
            serde_json::json!({
                "topic": "orders", "partition": 2, "offset": 41,
                "timestamp_ms": 1_714_564_800_250_i64, "key": "azE=", "value": "/wA=",
                "headers": [{"key": "h", "value": "MQ=="}, {"key": "h", "value": ""}],
            })
        );
        let back = parse_json_line(&out)?;
        assert_eq!(back.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(back.value.as_deref(), Some(&[0xff, 0x00][..]));
        assert_eq!(back.headers, rec.headers);
        assert_eq!(back.timestamp_ms, Some(rec.timestamp_ms));
        assert_eq!(back.partition, Some(2));

        let null = parse_json_line(br#"{"key": null, "value": "", "timestampMs": "7"}"#)?;
        assert_eq!((null.key, null.value), (None, Some(Vec::new())));
        assert_eq!(null.timestamp_ms, Some(7));
        let tombstone = parse_json_line(br#"{"key": "aw=="}"#)?;
        assert_eq!(tombstone.value, None);
        for bad in [
            &br#"{"value": "hello"}"#[..],
            br#"{"vlaue": "aGk="}"#,
            br#"{"headers": {"h": "aGk="}}"#,
            br#"{"headers": [{"key": "h", "value": null}]}"#,
            b"not json",
        ] {
            assert!(
                parse_json_line(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        Ok(())
    }
}
