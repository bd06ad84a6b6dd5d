//! Which timeline a replica replays on, read from the WAL segment files in its `pg_wal`.
//!
//! The checkpoint's timeline lags a replica that followed a timeline switch until its next
//! restartpoint (up to `checkpoint_timeout`), and the receiver's `received_tli` is gone when
//! it does not stream (its primary died, or the agent and server restarted). The segment
//! files stay: a replica that switched to timeline T received (or replayed) T's segment for
//! its replay position, named `TTTTTTTTLLLLLLLLSSSSSSSS`; one that refused T (forked off
//! before its recovery point) only holds the segment on the timelines it did follow.

/// The length of a WAL segment file's name: timeline, log and segment, 8 hex digits each.
const SEGMENT_NAME_LEN: usize = 24;

/// The newest timeline of the segment files in `names` (the listing of `pg_wal`) that hold
/// the WAL just before `lsn` (the replay position: the end of the last replayed record lies
/// in the segment of `lsn - 1`). `None` when no such segment is listed, or for a segment
/// size PostgreSQL would not accept (not a power of two between 1 MB and 1 GB).
pub fn timeline_holding(names: &[String], lsn: u64, segment_size: u64) -> Option<u64> {
    if !segment_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&segment_size) {
        return None;
    }
    let segment = lsn.saturating_sub(1) / segment_size;
    let per_log = 0x1_0000_0000 / segment_size;
    let wanted = format!("{:08X}{:08X}", segment / per_log, segment % per_log);
    names
        .iter()
        // Only segment files: `.partial`, `.history` and temporary files are longer.
        .filter(|name| name.len() == SEGMENT_NAME_LEN && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter(|name| name[8..].eq_ignore_ascii_case(&wanted))
        .filter_map(|name| u64::from_str_radix(&name[..8], 16).ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB16: u64 = 16 << 20;

    /// (what, the names in `pg_wal`, replay position, segment size, timeline wanted)
    type Case = (&'static str, &'static [&'static str], u64, u64, Option<u64>);

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn newest_timeline_holding_the_replay_segment() {
        let cases: &[Case] = &[
            (
                "followed the switch to 2: both timelines hold the segment",
                &[
                    "000000010000000000000003",
                    "000000020000000000000003",
                    "00000002.history",
                ],
                0x0300_1000,
                MB16,
                Some(2),
            ),
            (
                "refused timeline 2 (forked before its recovery point): only 1 holds it",
                &[
                    "000000010000000000000003",
                    "000000010000000000000004",
                    "000000020000000000000002",
                ],
                0x0300_1000,
                MB16,
                Some(1),
            ),
            (
                "a newer timeline's later segment does not count for an earlier position",
                &["000000010000000000000003", "000000020000000000000004"],
                0x0300_1000,
                MB16,
                Some(1),
            ),
            (
                "a position on a segment boundary lies in the segment before",
                &["000000010000000000000003", "000000020000000000000004"],
                0x0400_0000,
                MB16,
                Some(1),
            ),
            (
                "the old timeline's renamed last segment is not a segment file",
                &["000000010000000000000003.partial", "000000020000000000000003"],
                0x0300_0010,
                MB16,
                Some(2),
            ),
            (
                "the log number: 256 segments of 16 MB per log",
                &["00000003000000010000000A", "00000002000000000000000A"],
                (1 << 32) + 0x0A00_0100,
                MB16,
                Some(3),
            ),
            (
                "64 MB segments, lower-case names",
                &["0000000a0000000000000001", "000000090000000000000001"],
                (64 << 20) + 5,
                64 << 20,
                Some(10),
            ),
            (
                "no segment for the position",
                &["000000010000000000000001", "archive_status"],
                0x0300_0000 + 1,
                MB16,
                None,
            ),
            ("an empty pg_wal", &[], 0x0300_0000, MB16, None),
            (
                "a segment size PostgreSQL does not accept",
                &["000000010000000000000000"],
                10,
                3 << 20,
                None,
            ),
        ];
        for (what, list, lsn, size, want) in cases {
            assert_eq!(timeline_holding(&names(list), *lsn, *size), *want, "{what}");
        }
    }
}
