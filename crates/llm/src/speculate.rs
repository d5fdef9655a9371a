//! Prompt-lookup speculative decoding: a sequence drafts its continuation from the
//! n-grams of its own prompt and reply (text that quotes, summarises or reformats a
//! passage repeats it), the scheduler feeds the drafts after the sequence's next token in
//! the same batch, and each position's logits are sampled in turn with the sequence's
//! own sampler: a draft token is kept only where the sample equals it. Every kept
//! token is a genuine sample of the model given the actual prefix, so the output is what
//! decoding one token at a time gives (greedy: the same tokens; sampling: the same
//! distribution, and with a seed the same draws).
//!
//! How long a draft pays depends on the machine and the text, so both are measured as
//! the scheduler works. `StepCosts` holds what a decode step costs by the number of
//! positions it computes logits for: on a GPU a few more cost almost nothing, on a small
//! CPU each checked position still multiplies the activations by the whole output layer
//! (with a 262k-token vocabulary, a third of the model), so a step of 9 positions costs
//! about 5 of one. `Drafting` estimates each sequence's chance that its next drafted
//! token is kept (recent evidence weighs most) and drafts the number of tokens that
//! maximises the expected tokens per second of the step: none while its text does not
//! repeat (the sequence then turns speculation off by itself, and back on when its
//! lookups start coming true), many while it copies a passage.

/// Longest n-gram matched, then shorter ones down to the shortest.
const LONGEST_NGRAM: usize = 3;
const SHORTEST_NGRAM: usize = 2;
/// The weight each older observed position keeps per newer one: the estimate follows
/// about the last ten drafted positions.
const DECAY: f64 = 0.9;
/// Before any evidence a sequence counts as having had this many drafted tokens kept
/// (and none refused): it tries a short draft at once where the machine makes it pay.
const PRIOR_KEPT: f64 = 3.0;
/// A step size never measured is guessed to cost one position's step plus this share of
/// it per extra position (optimistic: a size that is tried gets measured).
const GUESSED_SHARE: f64 = 0.25;
/// Weight of a new measurement of a step size in its moving average.
const COST_ALPHA: f64 = 0.2;

/// Seconds a decode step takes, by the number of positions it computes logits for
/// (a moving average per count, measured by the scheduler on steps without prompt
/// tokens).
#[derive(Debug, Default)]
pub(crate) struct StepCosts {
    /// Index: positions; `None` where never measured.
    seconds: Vec<Option<f64>>,
}

impl StepCosts {
    pub(crate) fn record(&mut self, positions: usize, seconds: f64) {
        if positions == 0 || !seconds.is_finite() || seconds <= 0.0 {
            return;
        }
        if self.seconds.len() <= positions {
            self.seconds.resize(positions + 1, None);
        }
        let slot = &mut self.seconds[positions];
        *slot = Some(match *slot {
            Some(old) => old + COST_ALPHA * (seconds - old),
            None => seconds,
        });
    }

    /// The measured cost of a step of `positions`; between measured sizes, interpolated;
    /// past the largest, extrapolated optimistically. `None` before any measurement.
    pub(crate) fn estimate(&self, positions: usize) -> Option<f64> {
        let measured = |n: usize| self.seconds.get(n).copied().flatten();
        if let Some(c) = measured(positions) {
            return Some(c);
        }
        let below = (1..positions.min(self.seconds.len()))
            .rev()
            .find_map(|n| Some((n, measured(n)?)));
        let above = (positions + 1..self.seconds.len()).find_map(|n| Some((n, measured(n)?)));
        match (below, above) {
            (Some((a, ca)), Some((b, cb))) => {
                Some(ca + (cb - ca) * (positions - a) as f64 / (b - a) as f64)
            }
            (Some((a, ca)), None) => {
                let one = measured(1).unwrap_or(ca / a as f64);
                Some(ca + GUESSED_SHARE * one * (positions - a) as f64)
            }
            (None, Some((b, cb))) => Some(cb * positions as f64 / b as f64),
            (None, None) => None,
        }
    }
}

/// A sequence's drafting state: the decayed counts of drafted tokens the model kept and
/// of drafts it cut short, and the lookup's guess on a step that drafted nothing.
#[derive(Debug)]
pub(crate) struct Drafting {
    kept: f64,
    cut: f64,
    /// Compared with the token the model chose: evidence that costs no decoding.
    guess: Option<i32>,
}

impl Default for Drafting {
    fn default() -> Self {
        Drafting {
            kept: PRIOR_KEPT,
            cut: 0.0,
            guess: None,
        }
    }
}

impl Drafting {
    /// The tokens that followed the latest earlier occurrence of the last n tokens of
    /// `prompt ++ reply` (the longest n that matches), as many as pay for themselves in
    /// a step that already computes `others` positions: at most `max`, often none.
    pub(crate) fn draft(
        &mut self,
        prompt: &[i32],
        reply: &[i32],
        max: usize,
        others: usize,
        costs: &StepCosts,
    ) -> Vec<i32> {
        self.guess = None;
        if max == 0 {
            return Vec::new();
        }
        let mut draft = lookup(&History { prompt, reply }, max);
        let length = self.length(draft.len(), others, costs);
        if length == 0 {
            self.guess = draft.first().copied();
        }
        draft.truncate(length);
        draft
    }

    /// The chance that the next drafted token is kept (Laplace's rule on decayed counts).
    pub(crate) fn chance(&self) -> f64 {
        (self.kept + 1.0) / (self.kept + self.cut + 2.0)
    }

    /// The draft length up to `max` with the most expected tokens per second of the
    /// step, where each drafted token is kept only if all before it were.
    fn length(&self, max: usize, others: usize, costs: &StepCosts) -> usize {
        let p = self.chance();
        let Some(plain) = costs.estimate(others + 1) else {
            return 0;
        };
        let base = others as f64;
        let (mut best, mut best_rate) = (0, (base + 1.0) / plain);
        let (mut expected, mut reach) = (1.0, 1.0);
        for k in 1..=max {
            reach *= p;
            expected += reach;
            if let Some(cost) = costs.estimate(others + 1 + k) {
                let rate = (base + expected) / cost;
                if rate > best_rate {
                    (best, best_rate) = (k, rate);
                }
            }
        }
        best
    }

    /// Count a checked step: `drafted` tokens of which the first `accepted` were kept,
    /// and `first`, the token the model chose after the sequence's previous one.
    pub(crate) fn record(&mut self, drafted: usize, accepted: usize, first: i32) {
        if drafted == 0 {
            if let Some(guess) = self.guess.take() {
                let hit = guess == first;
                self.observe(usize::from(hit), !hit);
            }
            return;
        }
        self.observe(accepted, accepted < drafted);
    }

    fn observe(&mut self, kept: usize, then_cut: bool) {
        for _ in 0..kept {
            self.kept = self.kept * DECAY + 1.0;
            self.cut *= DECAY;
        }
        if then_cut {
            self.kept *= DECAY;
            self.cut = self.cut * DECAY + 1.0;
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
        lookup(&History { prompt, reply }, max)
    }

    /// A machine where a step of n positions costs `one + extra * (n - 1)`.
    fn machine(one: f64, extra: f64, up_to: usize) -> StepCosts {
        let mut costs = StepCosts::default();
        for n in 1..=up_to {
            costs.record(n, one + extra * (n - 1) as f64);
        }
        costs
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
    fn step_costs_are_measured_interpolated_and_guessed() {
        let mut costs = StepCosts::default();
        assert_eq!(costs.estimate(1), None);
        costs.record(1, 0.010);
        costs.record(5, 0.030);
        assert_eq!(costs.estimate(1), Some(0.010));
        assert!((costs.estimate(3).unwrap() - 0.020).abs() < 1e-12);
        // Past the largest measured size: a quarter of one position's step per position.
        assert!((costs.estimate(9).unwrap() - (0.030 + 4.0 * 0.25 * 0.010)).abs() < 1e-12);
        // A new measurement moves the average a fifth of the way.
        costs.record(1, 0.020);
        assert!((costs.estimate(1).unwrap() - 0.012).abs() < 1e-12);
        costs.record(0, 1.0);
        costs.record(2, f64::NAN);
        assert!((costs.estimate(2).unwrap() - (0.012 + 0.018 / 4.0)).abs() < 1e-12);
    }

    #[test]
    fn drafts_are_as_long_as_the_machine_and_the_text_make_pay() {
        let prompt: Vec<i32> = (0..64).collect();
        let reply = [10, 11, 12];
        // A GPU-like machine (a step of 17 positions costs 1.16 of one): a sequence whose
        // drafts are kept drafts all it may.
        let flat = machine(0.010, 0.0001, 17);
        let mut copying = Drafting::default();
        for _ in 0..4 {
            copying.record(8, 8, 0);
        }
        assert!(copying.chance() > 0.9);
        assert_eq!(copying.draft(&prompt, &reply, 16, 0, &flat).len(), 16);
        // Where every position costs as much as a step of one, no draft pays.
        let steep = machine(0.010, 0.010, 17);
        assert!(copying.draft(&prompt, &reply, 16, 0, &steep).is_empty());
        // A small CPU (each position 0.6 of a step): long drafts only for text that is
        // being copied, none for a fresh sequence whose lookups have not come true yet.
        let cpu = machine(0.010, 0.006, 17);
        let long = copying.draft(&prompt, &reply, 16, 0, &cpu).len();
        assert!((2..=16).contains(&long), "{long}");
        let mut fresh = Drafting::default();
        assert!(fresh.draft(&prompt, &reply, 16, 0, &cpu).len() < long);
        // Nothing measured yet: no draft.
        assert!(copying
            .draft(&prompt, &reply, 16, 0, &StepCosts::default())
            .is_empty());
    }

    #[test]
    fn drafting_stops_when_drafts_fail_and_resumes_when_lookups_come_true() {
        let prompt: Vec<i32> = (0..64).collect();
        let cpu = machine(0.010, 0.006, 17);
        let mut d = Drafting::default();
        for _ in 0..3 {
            d.record(4, 0, 99);
        }
        assert!(d.chance() < 0.5, "{}", d.chance());
        // Off: the lookup's guess is kept and checked against the model's token for free.
        assert!(d.draft(&prompt, &[20, 21], 16, 0, &cpu).is_empty());
        assert_eq!(d.guess, Some(22));
        let mut steps = 0;
        while d.draft(&prompt, &[20, 21], 16, 0, &cpu).is_empty() {
            d.record(0, 0, 22);
            steps += 1;
            assert!(steps < 20, "never drafts again");
        }
        assert!(steps >= 2, "{steps}");
        // A wrong guess counts against it; no guess, no evidence.
        let before = d.chance();
        d.guess = Some(5);
        d.record(0, 0, 6);
        assert!(d.chance() < before);
        let before = d.chance();
        d.record(0, 0, 6);
        assert_eq!(d.chance(), before);
    }
}
