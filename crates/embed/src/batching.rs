//! Splitting one `embed` call into sub-batches: texts sorted by token count, cut where the
//! padding saved outweighs the cost of one more forward pass.
//!
//! A sub-batch costs about `texts x longest` token-passes (every text is padded to the
//! longest) plus a fixed cost per forward pass (streaming the weights, dispatching ~50 ops),
//! worth [`PASS_COST_TOKENS`] tokens on a 2-core machine. Dynamic programming over the sorted
//! lengths finds the cheapest cut into runs of at most `max_batch` texts: 32 news sentences
//! of 10 to 80 tokens become three or four sub-batches with little padding instead of one
//! that is half padding.

use std::ops::Range;

/// The fixed cost of a forward pass, in token-passes (measured on all-MiniLM-L6-v2: a
/// 30-token sentence alone takes as long as ~40 tokens inside a large batch).
pub(crate) const PASS_COST_TOKENS: usize = 12;

/// Cuts `sorted_lengths` (ascending) into consecutive ranges of at most `max_batch`
/// minimising `sum(len(range) * longest(range)) + PASS_COST_TOKENS * ranges`.
/// With `split_by_length` false, ranges are simply `max_batch` long.
pub(crate) fn plan(
    sorted_lengths: &[usize],
    max_batch: usize,
    split_by_length: bool,
) -> Vec<Range<usize>> {
    let n = sorted_lengths.len();
    let max_batch = max_batch.max(1);
    if !split_by_length {
        return (0..n)
            .step_by(max_batch)
            .map(|s| s..(s + max_batch).min(n))
            .collect();
    }
    // best[j]: cheapest cost of the first j texts; cut[j]: where its last range starts.
    let mut best = vec![usize::MAX; n + 1];
    let mut cut = vec![0usize; n + 1];
    best[0] = 0;
    for j in 1..=n {
        let longest = sorted_lengths[j - 1];
        for i in j.saturating_sub(max_batch)..j {
            let cost = best[i] + (j - i) * longest + PASS_COST_TOKENS;
            // `<=`: among equal costs the latest cut wins, so full batches come first.
            if cost <= best[j] {
                best[j] = cost;
                cut[j] = i;
            }
        }
    }
    let mut ranges = Vec::new();
    let mut j = n;
    while j > 0 {
        ranges.push(cut[j]..j);
        j = cut[j];
    }
    ranges.reverse();
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_lengths_stay_in_full_batches() {
        assert_eq!(plan(&[10; 70], 32, true), vec![0..32, 32..64, 64..70]);
        assert_eq!(plan(&[10; 70], 32, false), vec![0..32, 32..64, 64..70]);
    }

    #[test]
    fn a_long_tail_gets_its_own_batch() {
        let mut lengths = vec![10; 20];
        lengths.extend([200, 210]);
        assert_eq!(plan(&lengths, 32, true), vec![0..20, 20..22]);
        assert_eq!(plan(&lengths, 32, false), vec![0..22]);
    }

    #[test]
    fn covers_every_text_once_within_the_limit() {
        let lengths: Vec<usize> = (0..100).map(|i| 5 + i * i % 97).collect::<Vec<_>>();
        let mut sorted = lengths.clone();
        sorted.sort();
        let ranges = plan(&sorted, 16, true);
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(100));
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert!(ranges.iter().all(|r| !r.is_empty() && r.len() <= 16));
        assert!(plan(&[], 16, true).is_empty());
    }
}
