//! "Did you mean": the closest of some names to a misspelt one, by edit distance.

/// Edit distance between `a` and `b`, by characters: insertions, deletions, substitutions
/// and swaps of two neighbours (optimal string alignment), so `tset` is one edit from `test`.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `wrong`, when it is close enough to be what was meant: at most
/// a third of its length away (at least 1, at most 3 edits), ties to the first.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wrong.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .filter(|c| *c != wrong)
        .map(|c| (distance(wrong, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::{closest, distance};
    use proptest::prelude::*;

    #[test]
    fn typos_find_their_word_and_strangers_nothing() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("tset", "test"), 1);
        assert_eq!(closest("tset", ["build", "test"]), Some("test"));
        assert_eq!(closest("imgae", ["name", "image", "script"]), Some("image"));
        assert_eq!(closest("biuld", ["build", "test"]), Some("build"));
        assert_eq!(closest("deploy", ["build", "test"]), None);
        assert_eq!(closest("x", []), None);
    }

    proptest! {
        #[test]
        fn distance_is_symmetric_zero_on_equals_and_bounded(a in "[a-c]{0,6}", b in "[a-c]{0,6}") {
            prop_assert_eq!(distance(&a, &b), distance(&b, &a));
            prop_assert_eq!(distance(&a, &a), 0);
            prop_assert!(distance(&a, &b) <= a.chars().count().max(b.chars().count()));
        }
    }
}
