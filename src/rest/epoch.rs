//! Epoch seconds, which Patroni's JSON and metrics use for times (`dcs_last_seen`,
//! `patroni_postmaster_start_time`), from the `Instant`s and timestamp strings we hold.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The wall-clock epoch second at which `instant` happened.
pub fn instant_to_epoch_secs(instant: Instant) -> u64 {
    SystemTime::now()
        .checked_sub(instant.elapsed())
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_secs())
}

/// Epoch seconds (with fraction) of an RFC 3339 timestamp, also accepting PostgreSQL's
/// `2024-08-28 19:39:26.352526+00:00` (space separator) that Patroni shows. `None` if the
/// text is not such a timestamp.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.trim();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let separators_ok = text.get(4..5) == Some("-")
        && text.get(7..8) == Some("-")
        && matches!(text.get(10..11), Some("T" | "t" | " "))
        && text.get(13..14) == Some(":")
        && text.get(16..17) == Some(":");
    if !separators_ok || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }

    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        fraction = format!("0.{}", &after_dot[..digits]).parse().ok()?;
        rest = &after_dot[digits..];
    }
    let offset_secs = parse_utc_offset(rest.trim())?;

    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs as f64 + fraction)
}

/// `Z`, `±HH:MM`, `±HHMM` or `±HH` as seconds east of UTC.
fn parse_utc_offset(zone: &str) -> Option<i64> {
    if zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_postgres_timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_timestamp("2024-08-28T19:39:26Z"), Some(1_724_873_966.0));
        let pg = parse_timestamp("2024-08-28 19:39:26.352526+00:00").unwrap();
        assert!((pg - 1_724_873_966.352526).abs() < 1e-6);
        assert_eq!(
            parse_timestamp("2024-08-28T21:39:26+02:00"),
            Some(1_724_873_966.0)
        );
        assert_eq!(
            parse_timestamp("2000-03-01T00:00:00-0130"),
            Some(951_868_800.0 + 5400.0)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2024-08-28T19:39:26"), None);
    }

    #[test]
    fn instants_map_to_now() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(instant_to_epoch_secs(Instant::now()).abs_diff(now) <= 1);
    }
}
