//! Label indexing and the stratified, seeded train/validation split.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Indices of the training and validation rows. Each label contributes
/// `round(n * fraction)` rows to validation, always leaving at least one for training.
pub(crate) fn stratified_split(
    labels: &[usize],
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_label: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_label.entry(l).or_default().push(i);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (_, mut rows) in by_label {
        rows.shuffle(&mut rng);
        let n_val = ((rows.len() as f64 * fraction).round() as usize).min(rows.len() - 1);
        val.extend_from_slice(&rows[..n_val]);
        train.extend_from_slice(&rows[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_and_deterministic() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect();
        let (t, v) = stratified_split(&labels, 0.2, 3);
        assert_eq!(t.len() + v.len(), 100);
        assert_eq!(v.iter().filter(|&&i| labels[i] == 1).count(), 5);
        assert_eq!(v.iter().filter(|&&i| labels[i] == 0).count(), 15);
        assert_eq!(stratified_split(&labels, 0.2, 3), (t.clone(), v.clone()));
        assert_ne!(stratified_split(&labels, 0.2, 4).1, v);
        let (t0, v0) = stratified_split(&labels, 0.0, 3);
        assert_eq!((t0.len(), v0.len()), (100, 0));
    }

    #[test]
    fn singleton_class_stays_in_training() {
        let (t, v) = stratified_split(&[0, 0, 0, 1], 0.5, 1);
        assert!(t.contains(&3));
        assert_eq!(v.len(), 2);
    }
}
