//! WAL positions as the REST API shows and compares them: the cluster's reference position that
//! replica lag is measured against, lag limits from query strings, and LSN formatting.

use crate::ha::NodeSnapshot;

/// The primary's last known WAL position: what it published under `status` (Patroni's
/// `cluster.last_leader_operation`), or else what the lease holder publishes about itself.
/// `None` when neither is known, e.g. before the first keyspace read.
pub fn cluster_wal_position(snapshot: &NodeSnapshot) -> Option<u64> {
    let view = snapshot.cluster.as_ref()?;
    view.last_primary_lsn.or_else(|| {
        let leader = view.member(view.leader_name()?)?;
        leader.wal_position()
    })
}

/// Parse a lag limit the way Patroni's `parse_int(value, 'B')` does: an integer number of bytes,
/// or a number with one of PostgreSQL's memory units (`B`, `kB`, `MB`, `GB`, `TB`, powers of
/// 1024, case sensitive). `None` when the text is not a size, which callers treat as "no limit
/// given", as Patroni does. A negative size is taken as zero.
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits_end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(text.len(), |(i, _)| i);
    let (number, unit) = text.split_at(digits_end);
    let number: f64 = number.parse().ok()?;
    let multiplier: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    // `as` saturates: a negative limit becomes 0, an absurdly large one u64::MAX.
    Some((number * multiplier).round() as u64)
}

/// PostgreSQL's textual LSN, `X/X` in upper-case hex (Patroni's `format_lsn`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_follow_patroni_units() {
        assert_eq!(parse_byte_size("1048576"), Some(1_048_576));
        assert_eq!(parse_byte_size("1024kB"), Some(1_048_576));
        assert_eq!(parse_byte_size("10MB"), Some(10 * 1_048_576));
        assert_eq!(parse_byte_size("1GB"), Some(1 << 30));
        assert_eq!(parse_byte_size(" 2 TB "), Some(2 << 40));
        assert_eq!(parse_byte_size("1.5kB"), Some(1536));
        assert_eq!(parse_byte_size("16B"), Some(16));
        assert_eq!(parse_byte_size("-5"), Some(0));
        // Units are case sensitive in PostgreSQL and Patroni.
        assert_eq!(parse_byte_size("10mb"), None);
        assert_eq!(parse_byte_size("lots"), None);
        assert_eq!(parse_byte_size(""), None);
    }

    #[test]
    fn lsn_is_formatted_like_postgres() {
        assert_eq!(format_lsn(0x4000060), "0/4000060");
        assert_eq!(format_lsn((0x1A << 32) | 0xB), "1A/B");
    }
}
