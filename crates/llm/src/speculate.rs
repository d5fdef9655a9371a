//! Prompt-lookup speculative decoding: a sequence drafts its continuation from the
//! n-grams of its own prompt and reply (text that quotes, summarises or reformats a
//! passage repeats it), the scheduler feeds the drafts after the sequence's next token in
//! the same batch, and each position's logits are sampled in turn with the sequence's
//! own sampler: a draft token is kept only where the sample equals it. Every kept
//! token is a genuine sample of the model given the actual prefix, so the output is what
//! decoding one token at a time gives (greedy: the same tokens; sampling: the same
//! distribution, and with a seed the same draws). Checking k drafted tokens costs about
//! one decode step on a CPU, where decoding a small model is bound by reading its
//! weights.

/// Longest n-gram matched, then shorter ones down to the shortest.
const LONGEST_NGRAM: usize = 3;
const SHORTEST_NGRAM: usize = 2;
/// Drafts in a row with nothing accepted before a sequence stops drafting.
const MISSES_BEFORE_OFF: u32 = 8;

/// A sequence's drafting state.
#[derive(Debug, Default)]
pub(crate) struct Drafting {
    misses: u32,
    off: bool,
}

impl Drafting {
    /// Up to `max` tokens that followed the latest earlier occurrence of the last n
    /// tokens of `prompt ++ reply` (the longest n that matches); none when drafting is off.
    pub(crate) fn draft(&self, prompt: &[i32], reply: &[i32], max: usize) -> Vec<i32> {
        if self.off || max == 0 {
            return Vec::new();
        }
        lookup(&History { prompt, reply }, max)
    }

    /// Count a verified draft: drafting stops for a sequence whose drafts keep failing.
    pub(crate) fn record(&mut self, drafted: usize, accepted: usize) {
        if drafted == 0 {
            return;
        }
        if accepted == 0 {
            self.misses += 1;
            self.off = self.misses >= MISSES_BEFORE_OFF;
        } else {
            self.misses = 0;
        }
    }
}

/// A sequence's tokens so far, without copying them into one buffer.
struct History<'a> {
    prompt: &'a [i32],
    reply: &'a [i32],
}

impl History<'_> {
    fn len(&self) -> usize {
        self.prompt.len() + self.reply.len()
    }

    fn at(&self, i: usize) -> i32 {
        match i.checked_sub(self.prompt.len()) {
            Some(j) => self.reply[j],
            None => self.prompt[i],
        }
    }
}

fn lookup(h: &History<'_>, max: usize) -> Vec<i32> {
    let len = h.len();
    for n in (SHORTEST_NGRAM..=LONGEST_NGRAM).rev() {
        if len <= n {
            continue;
        }
        let tail = len - n;
        // Earlier starts whose n tokens equal the last n (not the tail itself), latest
        // first: the latest one followed by a whole draft, else the latest one at all
        // (a phrase the reply already repeated would otherwise cut a copied passage's
        // draft short).
        let mut fallback = None;
        for start in (0..tail).rev() {
            if !(0..n).all(|k| h.at(start + k) == h.at(tail + k)) {
                continue;
            }
            if start + n + max <= len {
                fallback = Some(start);
                break;
            }
            fallback.get_or_insert(start);
        }
        if let Some(start) = fallback {
            let from = start + n;
            return (from..len.min(from + max)).map(|i| h.at(i)).collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(prompt: &[i32], reply: &[i32], max: usize) -> Vec<i32> {
        Drafting::default().draft(prompt, reply, max)
    }

    #[test]
    fn drafts_continue_the_latest_repeated_ngram() {
        // "... 5 6 7 8 9 ... 5 6" -> 7 8 9
        let prompt = [1, 5, 6, 7, 8, 9, 2, 3];
        assert_eq!(draft(&prompt, &[5, 6], 3), vec![7, 8, 9]);
        assert_eq!(draft(&prompt, &[5, 6], 2), vec![7, 8]);
        // The longest n-gram wins: "4 5 6" occurs once, later than a bare "5 6".
        let prompt = [4, 5, 6, 10, 11, 0, 5, 6, 20, 21, 4];
        assert_eq!(draft(&prompt, &[5, 6], 2), vec![10, 11]);
        // Across the prompt/reply border, and into the reply itself.
        assert_eq!(draft(&[7, 8], &[9, 7, 8], 4), vec![9, 7, 8]);
        // A later occurrence with too short a continuation gives way to an earlier one
        // followed by a whole draft (a passage being copied).
        let passage = [5, 6, 1, 2, 3, 4, 9];
        assert_eq!(draft(&passage, &[5, 6, 8, 5, 6], 4), vec![1, 2, 3, 4]);
        assert_eq!(
            draft(&passage, &[5, 6, 8, 5, 6], 9),
            vec![1, 2, 3, 4, 9, 5, 6, 8, 5]
        );
        // No occurrence is followed by a whole draft: the latest one.
        assert_eq!(draft(&passage, &[5, 6, 8, 5, 6], 11), vec![8, 5, 6]);
        // Nothing repeats: no draft; a single repeated token is not enough.
        assert!(draft(&[1, 2, 3], &[4, 5], 4).is_empty());
        assert!(draft(&[1, 2, 3], &[1], 4).is_empty());
    }

    #[test]
    fn drafting_stops_after_a_run_of_misses() {
        let mut d = Drafting::default();
        let prompt = [1, 2, 3, 1, 2];
        for _ in 0..MISSES_BEFORE_OFF - 1 {
            d.record(3, 0);
        }
        d.record(3, 1); // a hit resets the run
        for _ in 0..MISSES_BEFORE_OFF - 1 {
            d.record(3, 0);
        }
        assert!(!d.draft(&prompt, &[], 4).is_empty());
        d.record(3, 0);
        assert!(d.draft(&prompt, &[], 4).is_empty());
    }
}
