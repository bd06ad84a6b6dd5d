//! WAL positions. PostgreSQL prints an LSN as two hex halves, `X/Y`; the rest of the agent
//! compares and subtracts them, so they travel as `u64`.

/// Parses `16/B374D848` into a `u64`. `None` for anything else (including an empty string).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    if high.is_empty() || low.is_empty() || high.len() > 8 || low.len() > 8 {
        return None;
    }
    let high = u32::from_str_radix(high, 16).ok()?;
    let low = u32::from_str_radix(low, 16).ok()?;
    Some((u64::from(high) << 32) | u64::from(low))
}

/// Formats a `u64` the way PostgreSQL prints an LSN (`16/B374D848`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for text in ["0/0", "0/1500718", "16/B374D848", "FFFFFFFF/FFFFFFFF"] {
            let lsn = parse_lsn(text).unwrap();
            assert_eq!(format_lsn(lsn), text);
        }
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("0/10"), Some(16));
        assert_eq!(parse_lsn(" 0/a "), Some(10));
    }

    #[test]
    fn rejects_what_is_not_an_lsn() {
        for text in ["", "0", "/1", "1/", "x/1", "1/2/3", "100000000/0", "-1/0"] {
            assert_eq!(parse_lsn(text), None, "{text:?}");
        }
    }
}
