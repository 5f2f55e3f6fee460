//! Durations and memory sizes in Flink's notation.
//!
//! Flink writes a duration as a whole number and an optional unit (`"30 s"`, `"30s"`, `"2min"`,
//! `"1 h"`, `"100 ms"`; a bare `"500"` is milliseconds) and a memory size the same way
//! (`"20 kb"`, `"1mb"`, `"5 MB"`; a bare number is bytes, and `k`/`m`/`g`/`t` are powers of
//! 1024). Units are case-insensitive, blanks around and between the parts are allowed, and
//! fractions and signs are not, exactly as in Flink's `TimeUtils.parseDuration` and
//! `MemorySize.parse`.
//!
//! [`parse_duration`] and [`parse_size`] read them; [`format_duration`] and [`format_size`] write
//! them back in the largest unit that keeps the value exact, so what they print parses again to
//! the same value.

use std::fmt;
use std::time::Duration;

/// What a duration value must look like, for error messages.
pub const DURATION_FORM: &str =
    "a duration such as `30 s`, `2 min`, `100 ms` or `1 h` (a plain number is milliseconds)";
/// What a memory size must look like, for error messages.
pub const SIZE_FORM: &str =
    "a size such as `20 kb`, `1 mb` or `4096` (a plain number is bytes; units are powers of 1024)";

/// Why a duration or size could not be read. The caller adds the key and the expected form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("the value is empty")]
    Empty,
    #[error("negative values are not allowed")]
    Negative,
    #[error("it does not start with a whole number")]
    NotANumber,
    #[error("fractions are not allowed: use a smaller unit, e.g. `1500 ms` for 1.5 s")]
    Fraction,
    #[error("unknown unit `{0}`")]
    UnknownUnit(String),
    #[error("the value is too large")]
    Overflow,
}

/// Duration units: accepted labels (lowercase) and nanoseconds per unit.
const DURATION_UNITS: &[(&[&str], u128)] = &[
    (&["d", "day", "days"], 86_400_000_000_000),
    (&["h", "hour", "hours"], 3_600_000_000_000),
    (&["min", "m", "minute", "minutes"], 60_000_000_000),
    (&["s", "sec", "secs", "second", "seconds"], 1_000_000_000),
    (
        &["ms", "milli", "millis", "millisecond", "milliseconds"],
        1_000_000,
    ),
    (
        &["µs", "us", "micro", "micros", "microsecond", "microseconds"],
        1_000,
    ),
    (&["ns", "nano", "nanos", "nanosecond", "nanoseconds"], 1),
];

/// Size units: accepted labels (lowercase) and bytes per unit.
const SIZE_UNITS: &[(&[&str], u64)] = &[
    (&["b", "bytes"], 1),
    (&["k", "kb", "kibibytes"], 1 << 10),
    (&["m", "mb", "mebibytes"], 1 << 20),
    (&["g", "gb", "gibibytes"], 1 << 30),
    (&["t", "tb", "tebibytes"], 1 << 40),
];

/// Splits `"  30 s "` into `(30, "s")`; the unit is lowercased and may be empty.
fn split_number(text: &str) -> Result<(u128, String), UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    if text.starts_with('-') {
        return Err(UnitError::Negative);
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits_end == 0 {
        return Err(UnitError::NotANumber);
    }
    if text[digits_end..].starts_with(['.', ',']) {
        return Err(UnitError::Fraction);
    }
    let number = text[..digits_end]
        .parse::<u128>()
        .map_err(|_| UnitError::Overflow)?;
    Ok((number, text[digits_end..].trim().to_lowercase()))
}

/// Reads a duration in Flink's notation; a number without a unit is milliseconds.
///
/// # Errors
/// [`UnitError`] for an empty, negative, fractional or unparseable value, an unknown unit, or a
/// duration that does not fit in a [`Duration`].
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let (number, unit) = split_number(text)?;
    let nanos_per_unit = if unit.is_empty() {
        1_000_000
    } else {
        DURATION_UNITS
            .iter()
            .find(|(labels, _)| labels.contains(&unit.as_str()))
            .map(|(_, nanos)| *nanos)
            .ok_or(UnitError::UnknownUnit(unit))?
    };
    let nanos = number
        .checked_mul(nanos_per_unit)
        .ok_or(UnitError::Overflow)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| UnitError::Overflow)?;
    // The remainder is below 10^9 and fits in u32.
    let subsec = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

/// Reads a memory size in Flink's notation; a number without a unit is bytes.
///
/// # Errors
/// [`UnitError`] for an empty, negative, fractional or unparseable value, an unknown unit, or a
/// size above `u64::MAX` bytes.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let (number, unit) = split_number(text)?;
    let bytes_per_unit = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(labels, _)| labels.contains(&unit.as_str()))
            .map(|(_, bytes)| *bytes)
            .ok_or(UnitError::UnknownUnit(unit))?
    };
    let number = u64::try_from(number).map_err(|_| UnitError::Overflow)?;
    number
        .checked_mul(bytes_per_unit)
        .ok_or(UnitError::Overflow)
}

/// Writes a duration in the largest exact unit: `"1 h"`, `"2 min"`, `"20 s"`, `"250 ms"`.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0 ms".to_owned();
    }
    const UNITS: &[(&str, u128)] = &[
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("min", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let (label, per) = UNITS
        .iter()
        .find(|(_, per)| nanos.is_multiple_of(*per))
        .copied()
        .unwrap_or(("ns", 1));
    format!("{} {label}", nanos / per)
}

/// Writes a size in the largest exact unit: `"20 kb"`, `"5 mb"`, `"100 bytes"`.
pub fn format_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0 bytes".to_owned();
    }
    const UNITS: &[(&str, u64)] = &[
        ("tb", 1 << 40),
        ("gb", 1 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("bytes", 1),
    ];
    let (label, per) = UNITS
        .iter()
        .find(|(_, per)| bytes.is_multiple_of(*per))
        .copied()
        .unwrap_or(("bytes", 1));
    format!("{} {label}", bytes / per)
}

/// A [`Duration`] displayed in Flink's notation (see [`format_duration`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlinkDuration(pub Duration);

impl fmt::Display for FlinkDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn every_duration_form_parses() {
        let cases: &[(&str, Duration)] = &[
            ("30 s", ms(30_000)),
            ("30s", ms(30_000)),
            ("30 S", ms(30_000)),
            ("30 sec", ms(30_000)),
            ("30 seconds", ms(30_000)),
            ("2min", ms(120_000)),
            ("2 min", ms(120_000)),
            ("2 m", ms(120_000)),
            ("2 minutes", ms(120_000)),
            ("1 h", ms(3_600_000)),
            ("1h", ms(3_600_000)),
            ("1 hours", ms(3_600_000)),
            ("1 d", ms(86_400_000)),
            ("100 ms", ms(100)),
            ("100ms", ms(100)),
            ("100 millis", ms(100)),
            ("500", ms(500)),
            ("  500  ", ms(500)),
            ("0", ms(0)),
            ("0 ms", ms(0)),
            ("10 min", ms(600_000)),
            ("1500 us", Duration::from_micros(1500)),
            ("7 ns", Duration::from_nanos(7)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(*expected), "{text:?}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        assert_eq!(parse_duration(""), Err(UnitError::Empty));
        assert_eq!(parse_duration("  "), Err(UnitError::Empty));
        assert_eq!(parse_duration("-5 s"), Err(UnitError::Negative));
        assert_eq!(parse_duration("ten s"), Err(UnitError::NotANumber));
        assert_eq!(parse_duration("1.5 s"), Err(UnitError::Fraction));
        assert_eq!(
            parse_duration("30 mins"),
            Err(UnitError::UnknownUnit("mins".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999999 d"),
            Err(UnitError::Overflow)
        );
        assert_eq!(
            parse_duration("999999999999999999999999999999999999999999"),
            Err(UnitError::Overflow)
        );
    }

    #[test]
    fn every_size_form_parses() {
        let cases: &[(&str, u64)] = &[
            ("20 kb", 20 * 1024),
            ("20kb", 20 * 1024),
            ("20 KB", 20 * 1024),
            ("20 k", 20 * 1024),
            ("1mb", 1024 * 1024),
            ("5 MB", 5 * 1024 * 1024),
            ("5 m", 5 * 1024 * 1024),
            ("2 gb", 2 << 30),
            ("1 tb", 1 << 40),
            ("4096", 4096),
            ("100 b", 100),
            ("100 bytes", 100),
            ("3 mebibytes", 3 << 20),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), Ok(*expected), "{text:?}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        assert_eq!(parse_size("-1 kb"), Err(UnitError::Negative));
        assert_eq!(parse_size("kb"), Err(UnitError::NotANumber));
        assert_eq!(parse_size("0.5 mb"), Err(UnitError::Fraction));
        assert_eq!(
            parse_size("20 kilobytes"),
            Err(UnitError::UnknownUnit("kilobytes".into()))
        );
        assert_eq!(parse_size("99999999999 tb"), Err(UnitError::Overflow));
    }

    #[test]
    fn formatting_uses_the_largest_exact_unit_and_parses_back() {
        assert_eq!(format_duration(ms(3_600_000)), "1 h");
        assert_eq!(format_duration(ms(120_000)), "2 min");
        assert_eq!(format_duration(ms(90_000)), "90 s");
        assert_eq!(format_duration(ms(250)), "250 ms");
        assert_eq!(format_duration(ms(0)), "0 ms");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1500 us");
        assert_eq!(format_size(20 * 1024), "20 kb");
        assert_eq!(format_size(5 << 20), "5 mb");
        assert_eq!(format_size(4096), "4 kb");
        assert_eq!(format_size(100), "100 bytes");
        assert_eq!(format_size(0), "0 bytes");
        for d in [ms(1), ms(999), ms(1000), ms(61_000), ms(86_400_000)] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        for b in [1, 1023, 1024, 20 * 1024, 3 << 30] {
            assert_eq!(parse_size(&format_size(b)), Ok(b));
        }
        assert_eq!(FlinkDuration(ms(600_000)).to_string(), "10 min");
    }
}
