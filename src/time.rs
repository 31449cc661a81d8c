//! Event timestamps: parsing the forms sensor files use, and printing ISO-8601.
//!
//! Vigil keeps event time as milliseconds since the Unix epoch (UTC) in an `i64`.

use std::time::{SystemTime, UNIX_EPOCH};

/// How a bare number in a timestamp column is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EpochUnit {
    /// By magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else
    /// nanoseconds (1e11 s is the year 5138; 1e11 ms is 1973).
    #[default]
    Auto,
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl EpochUnit {
    /// Parses `auto`, `s`, `ms`, `us` or `ns`.
    pub fn from_name(name: &str) -> Option<EpochUnit> {
        Some(match name {
            "auto" => EpochUnit::Auto,
            "s" => EpochUnit::Seconds,
            "ms" => EpochUnit::Millis,
            "us" => EpochUnit::Micros,
            "ns" => EpochUnit::Nanos,
            _ => return None,
        })
    }

    fn millis_per_unit(self, value: f64) -> f64 {
        match self {
            EpochUnit::Seconds => 1e3,
            EpochUnit::Millis => 1.0,
            EpochUnit::Micros => 1e-3,
            EpochUnit::Nanos => 1e-6,
            EpochUnit::Auto => match value.abs() {
                v if v < 1e11 => 1e3,
                v if v < 1e14 => 1.0,
                v if v < 1e17 => 1e-3,
                _ => 1e-6,
            },
        }
    }

    /// A number in this unit, as epoch milliseconds.
    pub fn to_millis(self, value: f64) -> Option<i64> {
        let ms = (value * self.millis_per_unit(value)).round();
        (ms.is_finite() && ms.abs() < 8.64e15).then_some(ms as i64)
    }
}

/// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.fraction]]][Z|±HH[:]MM]` (or `/` between date parts), or a
/// bare epoch number in `unit`. Returns epoch milliseconds; `None` for anything else.
pub fn parse_timestamp(text: &str, unit: EpochUnit) -> Option<i64> {
    let s = text.trim().as_bytes();
    if s.len() >= 10 && (s[4] == b'-' || s[4] == b'/') {
        parse_datetime(s)
    } else {
        let v: f64 = text.trim().parse().ok()?;
        unit.to_millis(v)
    }
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + (b - b'0') as i64)
    })
}

fn parse_datetime(s: &[u8]) -> Option<i64> {
    let sep = s[4];
    let year = digits(s, 0, 4)?;
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    if s[7] != sep || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let mut i = 10;
    if i == s.len() {
        return Some(ms);
    }
    if s[i] != b' ' && s[i] != b'T' && s[i] != b't' {
        return None;
    }
    i += 1;
    let hour = digits(s, i, 2)?;
    let minute = digits(s, i + 3, 2)?;
    if s.get(i + 2) != Some(&b':') || hour > 23 || minute > 59 {
        return None;
    }
    i += 5;
    let mut second = 0;
    if s.get(i) == Some(&b':') {
        second = digits(s, i + 1, 2)?;
        if second > 60 {
            return None;
        }
        i += 3;
    }
    ms += (hour * 3600 + minute * 60 + second) * 1000;
    if s.get(i) == Some(&b'.') || s.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        let mut frac_ms = 0i64;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 3 {
                frac_ms = frac_ms * 10 + (s[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            frac_ms *= 10;
        }
        ms += frac_ms;
    }
    match s.get(i) {
        None => Some(ms),
        Some(b'Z') | Some(b'z') if i + 1 == s.len() => Some(ms),
        Some(&c @ (b'+' | b'-')) => {
            let oh = digits(s, i + 1, 2)?;
            let om_at = if s.get(i + 3) == Some(&b':') {
                i + 4
            } else {
                i + 3
            };
            let om = digits(s, om_at, 2)?;
            if om_at + 2 != s.len() || oh > 23 || om > 59 {
                return None;
            }
            let offset = (oh * 60 + om) * 60_000;
            Some(if c == b'+' { ms - offset } else { ms + offset })
        }
        _ => None,
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-01-05T10:00:03Z`, with `.123` when the milliseconds are not zero.
pub fn format_iso(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    if milli == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
    }
}

/// Wall-clock now, as epoch milliseconds.
pub fn now_millis() -> i64 {
    (now_micros() / 1000) as i64
}

/// Wall-clock now, as epoch microseconds (0 for a clock before 1970).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: EpochUnit = EpochUnit::Auto;

    #[test]
    fn parses_the_forms_sensor_files_use() {
        let base = parse_timestamp("2020-03-09 10:14:33", U).expect("plain");
        assert_eq!(format_iso(base), "2020-03-09T10:14:33Z");
        assert_eq!(parse_timestamp("2020-03-09T10:14:33Z", U), Some(base));
        assert_eq!(parse_timestamp("2020/03/09 10:14:33", U), Some(base));
        assert_eq!(parse_timestamp("2020-03-09T12:14:33+02:00", U), Some(base));
        assert_eq!(parse_timestamp("2020-03-09T09:14:33-0100", U), Some(base));
        assert_eq!(parse_timestamp("2020-03-09 10:14:33.000000", U), Some(base));
        assert_eq!(
            parse_timestamp("2020-03-09 10:14:33.25", U),
            Some(base + 250)
        );
        assert_eq!(parse_timestamp("2020-03-09 10:14", U), Some(base - 33_000));
        assert_eq!(parse_timestamp("1583748873", U), Some(base));
        assert_eq!(parse_timestamp("1583748873000", U), Some(base));
        assert_eq!(parse_timestamp("1583748873.5", U), Some(base + 500));
        assert_eq!(parse_timestamp("1583748873000000", U), Some(base));
        assert_eq!(
            parse_timestamp("1583748873", EpochUnit::Millis),
            Some(1_583_748_873)
        );
        assert_eq!(parse_timestamp("1970-01-01", U), Some(0));
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2020-13-01 00:00:00",
            "2021-02-29 00:00:00",
            "2020-03-09 24:00:00",
            "2020-03-09 10:14:33 junk",
            "2020-03-09 10:14:33.",
            "2020-03-09X10:14:33",
            "1e400",
            "nan",
        ] {
            assert_eq!(parse_timestamp(bad, U), None, "{bad:?}");
        }
    }

    #[test]
    fn civil_round_trips() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_iso(-1), "1969-12-31T23:59:59.999Z");
    }
}
