//! A WAL position placed on the cluster's newest timeline (issue 9, hole 10): a leader race
//! compares positions only where they lie on the line of WAL that `history` says the cluster
//! kept. A position on an older timeline counts only up to the point where that timeline was
//! left: a member that went past it (a former primary that kept writing after it lost its
//! lease, a replica that replayed the old primary's last WAL before following) holds WAL the
//! cluster abandoned. Promoting it would start a second, different timeline of the same number
//! and lose what the newest timeline acknowledged; its LSN must not pass the lag limit either
//! (its bytes past the switch point are not the newest timeline's bytes).
//! Pure: table tests below.

use super::HistoryEntry;

/// Where a position stands against the newest timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the newest timeline (or a newer one `history` does not record yet), or on an older
    /// one no further than where it was left: comparable by LSN.
    OnNewest,
    /// On an older timeline, past the point where it was left: abandoned WAL.
    Abandoned { timeline: u64, switch_lsn: u64 },
    /// No timeline known, or an older timeline `history` has no switch point for: cannot be
    /// placed, so it cannot be compared.
    Unknown { timeline: u64 },
}

/// The newest timeline `history` knows of: one past the last timeline it records as left.
pub fn newest_timeline(history: &[HistoryEntry]) -> u64 {
    history.iter().map(|h| h.timeline + 1).max().unwrap_or(1)
}

/// Place `lsn` on `timeline` (0: unknown) against `history`.
pub fn place(history: &[HistoryEntry], timeline: u64, lsn: u64) -> Placement {
    if timeline == 0 {
        return Placement::Unknown { timeline };
    }
    if timeline >= newest_timeline(history) {
        return Placement::OnNewest;
    }
    // The switch points grow along the line (every timeline begins where its parent was
    // left), so the point where my timeline was left is the tightest bound.
    match history.iter().find(|h| h.timeline == timeline) {
        Some(h) if lsn <= h.switch_lsn => Placement::OnNewest,
        Some(h) => Placement::Abandoned {
            timeline,
            switch_lsn: h.switch_lsn,
        },
        None => Placement::Unknown { timeline },
    }
}

impl Placement {
    /// Why a position so placed takes no part in a race (`None`: it does).
    pub fn why_out(&self, lsn: u64) -> Option<String> {
        match *self {
            Placement::OnNewest => None,
            Placement::Abandoned { timeline, switch_lsn } => Some(format!(
                "my WAL position {lsn:X} on timeline {timeline} lies past the point {switch_lsn:X} where the \
                 cluster left that timeline (WAL the newest timeline does not have)"
            )),
            Placement::Unknown { timeline: 0 } => Some("my timeline is unknown".to_string()),
            Placement::Unknown { timeline } => Some(format!(
                "the history key records no switch point for my timeline {timeline}, so my WAL position \
                 cannot be placed on the newest timeline"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(timeline: u64, switch_lsn: u64) -> HistoryEntry {
        HistoryEntry {
            timeline,
            switch_lsn,
            reason: String::new(),
            time: String::new(),
            new_leader: None,
        }
    }

    #[test]
    fn positions_are_placed_on_the_newest_timeline() {
        // Timeline 1 left at 0x3000, timeline 2 left at 0x5000: the newest is 3.
        let history = vec![left(1, 0x3000), left(2, 0x5000)];
        assert_eq!(newest_timeline(&history), 3);
        assert_eq!(newest_timeline(&[]), 1);
        let rows = [
            ("on the newest timeline", 3, 0x9000, Placement::OnNewest),
            (
                "on a newer one history does not record yet",
                4,
                0x9000,
                Placement::OnNewest,
            ),
            (
                "older timeline, before its switch point",
                2,
                0x4000,
                Placement::OnNewest,
            ),
            (
                "older timeline, at its switch point",
                2,
                0x5000,
                Placement::OnNewest,
            ),
            (
                "older timeline, past its switch point: abandoned",
                2,
                0x5001,
                Placement::Abandoned {
                    timeline: 2,
                    switch_lsn: 0x5000,
                },
            ),
            (
                "timeline 1, before the first switch",
                1,
                0x2000,
                Placement::OnNewest,
            ),
            (
                "timeline 1, past the first switch (though before the second)",
                1,
                0x4000,
                Placement::Abandoned {
                    timeline: 1,
                    switch_lsn: 0x3000,
                },
            ),
            ("unknown timeline", 0, 0x2000, Placement::Unknown { timeline: 0 }),
        ];
        for (name, timeline, lsn, want) in rows {
            assert_eq!(place(&history, timeline, lsn), want, "{name}");
        }
        // A history with a gap: timeline 2's switch point is missing.
        let gap = vec![left(1, 0x3000), left(3, 0x7000)];
        assert_eq!(place(&gap, 2, 0x4000), Placement::Unknown { timeline: 2 });
        // No history: everything on timeline 1 is on the newest.
        assert_eq!(place(&[], 1, 0x9000), Placement::OnNewest);
    }

    #[test]
    fn the_reason_names_the_switch_point() {
        let why = Placement::Abandoned {
            timeline: 1,
            switch_lsn: 0x3000,
        }
        .why_out(0x4000)
        .expect("out");
        assert!(
            why.contains("4000") && why.contains("3000") && why.contains("timeline 1"),
            "{why}"
        );
        assert_eq!(Placement::OnNewest.why_out(1), None);
    }
}
