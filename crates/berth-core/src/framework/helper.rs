//! Helpers shared by score plugins.

use super::plugin::NodeScore;

/// Scales scores so the highest becomes `max_priority`; `reverse` flips them
/// (lower raw score is better). Upstream `helper.DefaultNormalizeScore`.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let max = scores.iter().map(|s| s.score).max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            for s in scores.iter_mut() {
                s.score = max_priority;
            }
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut v = max_priority * s.score / max;
        if reverse {
            v = max_priority - v;
        }
        s.score = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(v: &[i64]) -> Vec<NodeScore> {
        v.iter().enumerate().map(|(index, &score)| NodeScore { index, score }).collect()
    }

    #[test]
    fn normalize() {
        let table: &[(&[i64], bool, &[i64])] = &[
            (&[10, 5, 0], false, &[100, 50, 0]),
            (&[10, 5, 0], true, &[0, 50, 100]),
            (&[0, 0], false, &[0, 0]),
            (&[0, 0], true, &[100, 100]),
            (&[3, 1], false, &[100, 33]),
        ];
        for (input, reverse, want) in table {
            let mut s = scores(input);
            default_normalize_score(100, *reverse, &mut s);
            assert_eq!(s.iter().map(|x| x.score).collect::<Vec<_>>(), *want, "{input:?} reverse={reverse}");
        }
    }
}
