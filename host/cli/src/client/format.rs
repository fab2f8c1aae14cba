//! Pure parts of `produce` and `consume`: line splitting, header flags, start positions and
//! the output format language. No IO here, so it is unit-tested directly.

use std::fmt::Write as _;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// One record as the CLI sees it, independent of the protobuf type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
    /// Slices of the fetched message (no copy per record).
    pub key: Option<bytes::Bytes>,
    pub value: bytes::Bytes,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Splits one input line (without its `\n`) into key and value at the first occurrence of
/// `separator`. A line without the separator is a record without a key.
pub fn split_line(line: &[u8], separator: Option<&[u8]>) -> (Option<Vec<u8>>, Vec<u8>) {
    let Some(sep) = separator.filter(|s| !s.is_empty()) else {
        return (None, line.to_vec());
    };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(at) => (Some(line[..at].to_vec()), line[at + sep.len()..].to_vec()),
        None => (None, line.to_vec()),
    }
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

/// Where `consume` starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    Offset(u64),
    /// First record whose timestamp is at or after this many ms since the Unix epoch.
    Timestamp(i64),
}

impl FromStr for StartAt {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "earliest" | "beginning" => Ok(Self::Earliest),
            "latest" | "end" => Ok(Self::Latest),
            _ => {
                if let Some(ms) = s.strip_prefix('@') {
                    let ms = ms
                        .parse::<i64>()
                        .with_context(|| format!("{s:?}: expected @TIMESTAMP_MS"))?;
                    Ok(Self::Timestamp(ms))
                } else {
                    let offset = s.parse::<u64>().with_context(|| {
                        format!("{s:?}: expected earliest, latest, an offset or @TIMESTAMP_MS")
                    })?;
                    Ok(Self::Offset(offset))
                }
            }
        }
    }
}

/// The `consume --format` language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON object per line.
    Json,
    /// The value bytes and nothing else.
    Raw,
    /// A template: `%k` key, `%v` value, `%o` offset, `%p` partition, `%t` timestamp (ms),
    /// `%T` topic, `%h` headers as `k=v,k=v`, `%%` a percent sign; `\t`, `\n` escapes.
    Template(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(Vec<u8>),
    Key,
    Value,
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
                Some('o') => Piece::Offset,
                Some('p') => Piece::Partition,
                Some('t') => Piece::Timestamp,
                Some('T') => Piece::Topic,
                Some('h') => Piece::Headers,
                Some(other) => bail!(
                    "unknown format directive %{other} (use %k %v %o %p %t %T %h %% or json/raw)"
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

#[derive(Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: u32,
    offset: u64,
    timestamp_ms: i64,
    #[serde(flatten)]
    key: Bytes<'a>,
    #[serde(flatten)]
    value: Bytes<'a>,
    headers: serde_json::Map<String, serde_json::Value>,
}

/// Bytes as `"name": "text"` when UTF-8, else `"name_hex": "…"`; absent keys as `null`.
struct Bytes<'a> {
    name: &'static str,
    bytes: Option<&'a [u8]>,
}

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let name = self.name;
        let mut map = serializer.serialize_map(Some(1))?;
        match self.bytes {
            None => map.serialize_entry(name, &serde_json::Value::Null)?,
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => map.serialize_entry(name, text)?,
                Err(_) => map.serialize_entry(&format!("{name}_hex"), &hex::encode(bytes))?,
            },
        }
        map.end()
    }
}

impl RecordFormat {
    /// Appends the rendering of `record` to `out`.
    pub fn render(&self, record: &Record, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Self::Raw => out.extend_from_slice(&record.value),
            Self::Json => {
                let headers = record
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
                        )
                    })
                    .collect();
                let json = JsonRecord {
                    topic: &record.topic,
                    partition: record.partition,
                    offset: record.offset,
                    timestamp_ms: record.timestamp_ms,
                    key: Bytes {
                        name: "key",
                        bytes: record.key.as_deref(),
                    },
                    value: Bytes {
                        name: "value",
                        bytes: Some(&record.value),
                    },
                    headers,
                };
                serde_json::to_writer(&mut *out, &json)?;
                out.push(b'\n');
            }
            Self::Template(pieces) => {
                for piece in pieces {
                    match piece {
                        Piece::Literal(bytes) => out.extend_from_slice(bytes),
                        Piece::Key => out.extend_from_slice(record.key.as_deref().unwrap_or(&[])),
                        Piece::Value => out.extend_from_slice(&record.value),
                        Piece::Offset => {
                            out.extend_from_slice(record.offset.to_string().as_bytes())
                        }
                        Piece::Partition => {
                            out.extend_from_slice(record.partition.to_string().as_bytes());
                        }
                        Piece::Timestamp => {
                            out.extend_from_slice(record.timestamp_ms.to_string().as_bytes());
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
            timestamp_ms: 1_700_000_000_000,
            key: Some(bytes::Bytes::from_static(b"k1")),
            value: bytes::Bytes::from_static(b"hello"),
            headers: vec![("h".into(), b"x".to_vec())],
        }
    }

    #[test]
    fn splits_at_first_separator() {
        assert_eq!(
            split_line(b"a:b:c", Some(b":")),
            (Some(b"a".to_vec()), b"b:c".to_vec())
        );
        assert_eq!(split_line(b"abc", Some(b":")), (None, b"abc".to_vec()));
        assert_eq!(split_line(b"a:b", None), (None, b"a:b".to_vec()));
    }

    #[test]
    fn parses_start_positions() {
        assert_eq!("earliest".parse::<StartAt>().ok(), Some(StartAt::Earliest));
        assert_eq!("latest".parse::<StartAt>().ok(), Some(StartAt::Latest));
        assert_eq!("17".parse::<StartAt>().ok(), Some(StartAt::Offset(17)));
        assert_eq!("@5".parse::<StartAt>().ok(), Some(StartAt::Timestamp(5)));
        assert!("-3".parse::<StartAt>().is_err());
        assert!("@x".parse::<StartAt>().is_err());
    }

    #[test]
    fn renders_templates() -> Result<()> {
        let format: RecordFormat = r"%k\t%v %o/%p %h %%\n".parse()?;
        let mut out = Vec::new();
        format.render(&record(), &mut out)?;
        assert_eq!(out, b"k1\thello 41/2 h=x %\n");
        assert!("%z".parse::<RecordFormat>().is_err());
        Ok(())
    }

    #[test]
    fn renders_json_with_hex_for_binary() -> Result<()> {
        let mut rec = record();
        rec.value = bytes::Bytes::from_static(&[0xff, 0x00]);
        let mut out = Vec::new();
        RecordFormat::Json.render(&rec, &mut out)?;
        let parsed: serde_json::Value = serde_json::from_slice(&out)?;
        assert_eq!(parsed["value_hex"], "ff00");
        assert_eq!(parsed["key"], "k1");
        assert_eq!(parsed["offset"], 41);
        Ok(())
    }
}
