//! RFC 3339 timestamps without a date-time dependency: the agent formats "now" (UTC) for
//! display and the history key, and parses the times operators give for a scheduled
//! switchover.

use std::time::{SystemTime, UNIX_EPOCH};

/// `2026-11-21T22:07:53.123+00:00`, the format Patroni uses in its JSON.
pub fn rfc3339_now() -> String {
    rfc3339(now_ms())
}

/// This machine's clock, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    since.as_millis() as u64
}

pub fn rfc3339(ms_since_epoch: u64) -> String {
    let secs = ms_since_epoch / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms_since_epoch % 1000
    )
}

/// Why [`parse_timestamp`] refused a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeParseError {
    #[error("not a date and time in ISO 8601 / RFC 3339 form (e.g. 2030-01-31T22:00:00+01:00)")]
    Invalid,
    #[error("no time zone offset: add Z (UTC) or +HH:MM")]
    NoOffset,
    #[error("before 1970")]
    BeforeEpoch,
}

/// [`parse_timestamp`], for callers that only need to know whether it parsed.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    parse_timestamp(text).ok()
}

/// An RFC 3339 / ISO 8601 date and time with a zone offset, in ms since the Unix epoch:
/// `2030-01-31T22:00:00+01:00`, `2030-01-31T21:00Z`, `2030-01-31 21:00:00.250+0100`,
/// `2030-01-31T22:00:00 +01`. Seconds and fractions are optional (fractions beyond ms are
/// truncated); `T` may be a space or `t`. Without an offset the instant is ambiguous and the
/// answer is [`TimeParseError::NoOffset`].
pub fn parse_timestamp(text: &str) -> Result<u64, TimeParseError> {
    use TimeParseError::Invalid;
    let mut c = Cursor(text.trim().as_bytes());
    let year = c.digits(4).ok_or(Invalid)?;
    c.expect(b'-')?;
    let month = c.digits(2).ok_or(Invalid)?;
    c.expect(b'-')?;
    let day = c.digits(2).ok_or(Invalid)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(Invalid);
    }
    match c.next() {
        Some(b'T' | b't' | b' ') => {}
        _ => return Err(Invalid),
    }
    let hour = c.digits(2).ok_or(Invalid)?;
    c.expect(b':')?;
    let minute = c.digits(2).ok_or(Invalid)?;
    let (mut second, mut millis) = (0, 0);
    if c.peek() == Some(b':') {
        c.next();
        second = c.digits(2).ok_or(Invalid)?;
        if matches!(c.peek(), Some(b'.' | b',')) {
            c.next();
            let mut count = 0;
            while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
                c.next();
                if count < 3 {
                    millis = millis * 10 + i64::from(d - b'0');
                }
                count += 1;
            }
            if count == 0 {
                return Err(Invalid);
            }
            millis *= 10_i64.pow(3_u32.saturating_sub(count));
        }
    }
    // 60: a leap second, as RFC 3339 allows.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(Invalid);
    }
    if c.peek() == Some(b' ') {
        c.next();
    }
    let offset_secs = match c.next() {
        None => return Err(TimeParseError::NoOffset),
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let hours = c.digits(2).ok_or(Invalid)?;
            if c.peek() == Some(b':') {
                c.next();
            }
            let minutes = if c.peek().is_some() {
                c.digits(2).ok_or(Invalid)?
            } else {
                0
            };
            if hours > 23 || minutes > 59 {
                return Err(Invalid);
            }
            let secs = hours * 3600 + minutes * 60;
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        Some(_) => return Err(Invalid),
    };
    if c.peek().is_some() {
        return Err(Invalid);
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let ms = secs * 1000 + millis;
    u64::try_from(ms).map_err(|_| TimeParseError::BeforeEpoch)
}

/// A byte reader for [`parse_timestamp`].
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn next(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn expect(&mut self, byte: u8) -> Result<(), TimeParseError> {
        match self.next() {
            Some(b) if b == byte => Ok(()),
            _ => Err(TimeParseError::Invalid),
        }
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let mut value = 0;
        for _ in 0..n {
            let d = self.peek().filter(u8::is_ascii_digit)?;
            self.next();
            value = value * 10 + i64::from(d - b'0');
        }
        Some(value)
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) to days since 1970-01-01, the inverse of [`civil_from_days`]
/// (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::{parse_rfc3339, parse_timestamp, TimeParseError};

    #[test]
    fn known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(super::rfc3339(1_795_298_873_123), "2026-11-21T22:07:53.123+00:00");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000+00:00");
    }

    #[test]
    fn parses_what_it_formats() {
        for ms in [0, 951_782_400_000, 1_795_298_873_123, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&super::rfc3339(ms)), Some(ms), "{ms}");
        }
    }

    #[test]
    fn accepted_forms() {
        let utc = 1_795_298_820_000; // 2026-11-21T22:07:00Z
        #[rustfmt::skip]
        let table: [(&str, u64); 14] = [
            ("2026-11-21T22:07:00Z", utc),
            ("2026-11-21T22:07:00z", utc),
            ("2026-11-21t22:07:00+00:00", utc),
            ("2026-11-21 22:07:00+00:00", utc),
            ("2026-11-21T22:07Z", utc),
            ("  2026-11-21T22:07:00Z \n", utc),
            ("2026-11-21T23:07:00+01:00", utc),
            ("2026-11-21T23:07:00+0100", utc),
            ("2026-11-21T23:07:00+01", utc),
            ("2026-11-21T23:07:00 +01:00", utc),
            ("2026-11-21T16:37:00-05:30", utc),
            ("2026-11-21T22:07:00.5Z", utc + 500),
            ("2026-11-21T22:07:00,123456789Z", utc + 123),
            ("2026-11-22T00:07:00+02:00", utc),
        ];
        for (text, want) in table {
            assert_eq!(parse_timestamp(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn refused_forms() {
        use TimeParseError::*;
        #[rustfmt::skip]
        let table: [(&str, TimeParseError); 22] = [
            ("2026-11-21T22:07:00", NoOffset),
            ("2026-11-21 22:07", NoOffset),
            ("", Invalid),
            ("now", Invalid),
            ("tomorrow 10:00", Invalid),
            ("2026-11-21", Invalid),
            ("2026-11-21T", Invalid),
            ("2026-11-21T22Z", Invalid),
            ("2026-13-01T00:00Z", Invalid),
            ("2026-00-01T00:00Z", Invalid),
            ("2026-02-29T00:00Z", Invalid),
            ("2026-04-31T00:00Z", Invalid),
            ("2026-11-21T24:00Z", Invalid),
            ("2026-11-21T22:60Z", Invalid),
            ("2026-11-21T22:07:61Z", Invalid),
            ("2026-11-21T22:07:00.Z", Invalid),
            ("2026-11-21T22:07:00+24:00", Invalid),
            ("2026-11-21T22:07:00+01:60", Invalid),
            ("2026-11-21T22:07:00+1", Invalid),
            ("2026-11-21T22:07:00Zjunk", Invalid),
            ("26-11-21T22:07:00Z", Invalid),
            ("1969-12-31T23:59:59Z", BeforeEpoch),
        ];
        for (text, want) in table {
            assert_eq!(parse_timestamp(text), Err(want), "{text:?}");
        }
        assert_eq!(parse_rfc3339("2026-11-21T22:07:00"), None);
    }

    #[test]
    fn leap_days_and_leap_seconds() {
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(
            parse_rfc3339("1900-02-29T00:00:00Z"),
            None,
            "1900 was no leap year"
        );
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2017-01-01T00:00:00Z")
        );
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
    }
}
