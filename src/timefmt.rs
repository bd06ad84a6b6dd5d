//! RFC 3339 timestamps (UTC) without a date-time dependency: the agent only ever formats
//! "now" for display and the history key.

use std::time::{SystemTime, UNIX_EPOCH};

/// `2026-11-21T22:07:53.123+00:00`, the format Patroni uses in its JSON.
pub fn rfc3339_now() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(since.as_millis() as u64)
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
    #[test]
    fn known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(super::rfc3339(1_795_298_873_123), "2026-11-21T22:07:53.123+00:00");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000+00:00");
    }
}
