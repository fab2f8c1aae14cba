//! Times on the command line: RFC 3339 timestamps, durations such as `10m` or `1h30m`, and
//! the `--time-format` renderings of a record timestamp. Pure functions (UTC only, no
//! time-zone database), unit-tested here.

use anyhow::{Result, bail};

/// Milliseconds per day.
const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Renders milliseconds since the Unix epoch as RFC 3339 in UTC with milliseconds,
/// `2024-05-01T12:00:00.250Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let (h, rest) = (in_day / 3_600_000, in_day % 3_600_000);
    let (min, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Whether `text` looks like an RFC 3339 date or date-time (starts `YYYY-MM-DD`).
pub fn looks_like_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// Parses an RFC 3339 date-time, `2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`
/// (`t`, `z` and a space for `T` are accepted, as RFC 3339 allows), or a bare date
/// `2024-05-01` (midnight UTC), into milliseconds since the Unix epoch. Fractions below a
/// millisecond are dropped.
pub fn parse_rfc3339(text: &str) -> Result<i64> {
    let bad = || {
        anyhow::anyhow!(
            "{text:?} is not an RFC 3339 time (expected e.g. 2024-05-01T12:00:00Z, \
             2024-05-01T14:00:00.250+02:00 or 2024-05-01)"
        )
    };
    if !looks_like_date(text) {
        return Err(bad());
    }
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let year = num(&text[0..4])?;
    let month = num(&text[5..7])?;
    let day = num(&text[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        bail!("{text:?}: no such date");
    }
    let mut ms = days_from_civil(year, month, day) * DAY_MS;
    let rest = &text[10..];
    if rest.is_empty() {
        return Ok(ms);
    }
    let rest = rest
        .strip_prefix(['T', 't', ' '])
        .ok_or_else(bad)?
        .as_bytes();
    if rest.len() < 8 || rest[2] != b':' || rest[5] != b':' {
        return Err(bad());
    }
    let field = |s: &[u8]| -> Result<i64> {
        if s.iter().all(u8::is_ascii_digit) {
            num(std::str::from_utf8(s).map_err(|_| bad())?)
        } else {
            Err(bad())
        }
    };
    let (h, min, s) = (
        field(&rest[0..2])?,
        field(&rest[3..5])?,
        field(&rest[6..8])?,
    );
    // 60 is a leap second: RFC 3339 allows it; it lands on the next second.
    if h > 23 || min > 59 || s > 60 {
        bail!("{text:?}: no such time of day");
    }
    ms += (h * 3600 + min * 60 + s) * 1000;
    let mut rest = &rest[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        let mut milli = 0i64;
        for (i, c) in frac[..digits].iter().take(3).enumerate() {
            milli += i64::from(c - b'0') * [100, 10, 1][i];
        }
        ms += milli;
        rest = &frac[digits..];
    }
    match rest {
        b"Z" | b"z" => Ok(ms),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let offset = (field(&[*h1, *h2])? * 60 + field(&[*m1, *m2])?) * 60_000;
            Ok(if *sign == b'+' {
                ms - offset
            } else {
                ms + offset
            })
        }
        _ => Err(bad()),
    }
}

/// Parses a duration: one or more `<number><unit>` parts, units `ms`, `s`, `m`, `h`, `d`,
/// `w` (`500ms`, `30s`, `10m`, `1h30m`, `2d`), into milliseconds.
pub fn parse_duration(text: &str) -> Result<u64> {
    let bad = || {
        anyhow::anyhow!(
            "{text:?} is not a duration (expected <number><unit> parts with units ms, s, m, h, \
             d, w, e.g. 30s, 10m, 1h30m, 2d)"
        )
    };
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => DAY_MS as u64,
            "w" => 7 * DAY_MS as u64,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Whether `text` looks like a duration (digits followed by a unit letter).
pub fn looks_like_duration(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && text[digits..].starts_with(|c: char| c.is_ascii_alphabetic())
}

/// Parses a point in time given as milliseconds since the Unix epoch or RFC 3339.
pub fn parse_time(text: &str) -> Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if looks_like_date(text) {
        return parse_rfc3339(text);
    }
    bail!(
        "{text:?} is not a time (expected milliseconds since the Unix epoch or RFC 3339, e.g. \
         2024-05-01T12:00:00Z)"
    )
}

/// How `consume` renders a record timestamp in templates (`%t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TimeFormat {
    /// Milliseconds since the Unix epoch: `1714564800250`.
    #[default]
    UnixMs,
    /// Whole seconds since the Unix epoch: `1714564800`.
    Unix,
    /// RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.250Z`.
    Rfc3339,
}

impl TimeFormat {
    /// Renders `ms` (milliseconds since the Unix epoch).
    pub fn render(self, ms: i64) -> String {
        match self {
            Self::UnixMs => ms.to_string(),
            Self::Unix => ms.div_euclid(1000).to_string(),
            Self::Rfc3339 => format_rfc3339(ms),
        }
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_honours_offsets() -> Result<()> {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z")?, 0);
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.250Z")?,
            1_714_564_800_250
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T14:00:00.250+02:00")?,
            1_714_564_800_250
        );
        assert_eq!(
            parse_rfc3339("2024-05-01t11:00:00.25-01:00")?,
            1_714_564_800_250
        );
        assert_eq!(parse_rfc3339("2024-05-01")?, 1_714_521_600_000);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z")?, -1);
        assert_eq!(
            format_rfc3339(1_714_564_800_250),
            "2024-05-01T12:00:00.250Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        for ms in [0, 951_782_400_000, 4_107_542_400_123, 1_709_164_800_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms))?, ms);
        }
        for bad in [
            "2024-02-30",
            "2023-02-29T00:00:00Z",
            "2024-05-01T25:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00Z",
            "2024-05-01T12:00:00.Z",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z")?, 1_709_164_800_000);
        Ok(())
    }

    #[test]
    fn durations() -> Result<()> {
        assert_eq!(parse_duration("500ms")?, 500);
        assert_eq!(parse_duration("10m")?, 600_000);
        assert_eq!(parse_duration("1h30m")?, 5_400_000);
        assert_eq!(parse_duration("2d")?, 172_800_000);
        assert_eq!(parse_duration("1w")?, 604_800_000);
        for bad in ["", "10", "m", "10y", "1h 30m", "-5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(
            looks_like_duration("10m") && !looks_like_duration("10") && !looks_like_duration("m")
        );
        Ok(())
    }

    #[test]
    fn time_formats() {
        assert_eq!(
            TimeFormat::UnixMs.render(1_714_564_800_250),
            "1714564800250"
        );
        assert_eq!(TimeFormat::Unix.render(1_714_564_800_250), "1714564800");
        assert_eq!(
            TimeFormat::Rfc3339.render(1_714_564_800_250),
            "2024-05-01T12:00:00.250Z"
        );
    }
}
