//! Classification metrics: accuracy, per-class precision/recall/F1, macro averages and the
//! confusion matrix.

use aiaas_types::{ClassMetrics, EvalMetrics};

/// Evaluate predictions against the truth. `truth` and `predicted` hold indices into `labels`
/// (indices out of range are ignored). Classes absent from both still appear, with zeros;
/// F1 is 0 when precision + recall is 0. `confusion[true][predicted]`.
pub fn evaluate(labels: &[String], truth: &[usize], predicted: &[usize]) -> EvalMetrics {
    let k = labels.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut samples = 0u64;
    let mut correct = 0u64;
    for (&t, &p) in truth.iter().zip(predicted) {
        if t >= k || p >= k {
            continue;
        }
        confusion[t][p] += 1;
        samples += 1;
        if t == p {
            correct += 1;
        }
    }
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let support: u64 = confusion[c].iter().sum();
            let predicted_c: u64 = confusion.iter().map(|row| row[c]).sum();
            let precision = ratio(tp, predicted_c as f64);
            let recall = ratio(tp, support as f64);
            let f1 = ratio(2.0 * precision * recall, precision + recall);
            ClassMetrics {
                label: labels[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let mean = |f: fn(&ClassMetrics) -> f64| {
        if k == 0 {
            0.0
        } else {
            per_class.iter().map(f).sum::<f64>() / k as f64
        }
    };
    EvalMetrics {
        samples,
        accuracy: ratio(correct as f64, samples as f64),
        macro_precision: mean(|c| c.precision),
        macro_recall: mean(|c| c.recall),
        macro_f1: mean(|c| c.f1),
        per_class,
        labels: labels.to_vec(),
        confusion,
    }
}

/// Index of the largest value (first on ties); 0 for an empty slice.
pub(crate) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hand_computed_three_classes() {
        // truth:     a a a b b c
        // predicted: a a b b c c
        let m = evaluate(
            &labels(&["a", "b", "c"]),
            &[0, 0, 0, 1, 1, 2],
            &[0, 0, 1, 1, 2, 2],
        );
        assert_eq!(m.samples, 6);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(
            m.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]
        );
        let a = &m.per_class[0];
        assert_eq!((a.precision, a.recall, a.support), (1.0, 2.0 / 3.0, 3));
        assert!((a.f1 - 0.8).abs() < 1e-12);
        let b = &m.per_class[1];
        assert_eq!((b.precision, b.recall, b.f1), (0.5, 0.5, 0.5));
        let c = &m.per_class[2];
        assert_eq!((c.precision, c.recall), (0.5, 1.0));
        assert!((c.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.macro_precision - (1.0 + 0.5 + 0.5) / 3.0).abs() < 1e-12);
        assert!((m.macro_recall - (2.0 / 3.0 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert!((m.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn absent_class_is_listed_with_zeros() {
        let m = evaluate(&labels(&["x", "y", "z"]), &[0, 1], &[0, 0]);
        assert_eq!(m.per_class.len(), 3);
        let z = &m.per_class[2];
        assert_eq!((z.precision, z.recall, z.f1, z.support), (0.0, 0.0, 0.0, 0));
        let y = &m.per_class[1];
        assert_eq!((y.precision, y.recall, y.f1, y.support), (0.0, 0.0, 0.0, 1));
        assert!((m.per_class[0].precision - 0.5).abs() < 1e-12);
        assert!((m.macro_f1 - (2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn empty_input_gives_zeros() {
        let m = evaluate(&labels(&["a", "b"]), &[], &[]);
        assert_eq!(m.samples, 0);
        assert_eq!(m.accuracy, 0.0);
        assert_eq!(m.confusion, vec![vec![0, 0], vec![0, 0]]);
    }

    #[test]
    fn argmax_takes_first_on_ties() {
        assert_eq!(argmax(&[0.1, 0.5, 0.5]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
