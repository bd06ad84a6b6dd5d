//! "Did you mean …?" suggestions for misspelt keys and environment variables.

/// Edit distance (insertions, deletions, substitutions) between two strings, by characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The candidate closest to `wanted`, if it is close enough to be a plausible typo.
///
/// Comparison ignores ASCII case, so `Scope` suggests `scope`. The threshold grows with the
/// length of the word: one edit for short keys, about a third of the length for long ones.
pub(crate) fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted_lower = wanted.to_ascii_lowercase();
    let limit = (wanted.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| {
            (
                edit_distance(&wanted_lower, &candidate.to_ascii_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_single_edits() {
        assert_eq!(edit_distance("loop_wait", "loop_wait"), 0);
        assert_eq!(edit_distance("loop_wiat", "loop_wait"), 2);
        assert_eq!(edit_distance("partner_adrs", "partner_addrs"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn closest_ignores_far_candidates() {
        assert_eq!(closest("self_adr", ["self_addr", "data_dir"]), Some("self_addr"));
        assert_eq!(closest("Scope", ["scope", "name"]), Some("scope"));
        assert_eq!(closest("banana", ["scope", "name"]), None);
    }
}
