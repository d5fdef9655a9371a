//! Pooling token vectors into one sentence vector, under the attention mask, and the
//! optional L2 normalisation. Mirrors sentence-transformers' `Pooling` and `Normalize`
//! modules (<https://github.com/UKPLab/sentence-transformers>, `models/Pooling.py`).

/// How the encoder's token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Average of the vectors of the real (unmasked) tokens.
    Mean,
    /// The vector of the first token (`[CLS]`).
    Cls,
    /// Element-wise maximum over the real tokens.
    Max,
}

impl Pooling {
    /// Pools each sequence of a batch. `hidden` is `[batch, seq_len, dim]` row-major and
    /// `mask` is `[batch, seq_len]` with 1 for a real token and 0 for padding.
    pub(crate) fn pool(
        self,
        hidden: &[f32],
        mask: &[f32],
        seq_len: usize,
        dim: usize,
    ) -> Vec<Vec<f32>> {
        hidden
            .chunks_exact(seq_len * dim)
            .zip(mask.chunks_exact(seq_len))
            .map(|(tokens, mask)| self.pool_one(tokens, mask, dim))
            .collect()
    }

    fn pool_one(self, tokens: &[f32], mask: &[f32], dim: usize) -> Vec<f32> {
        let rows = tokens.chunks_exact(dim).zip(mask);
        match self {
            Pooling::Cls => tokens[..dim].to_vec(),
            Pooling::Mean => {
                let mut sum = vec![0f32; dim];
                let mut count = 0f32;
                for (row, &m) in rows {
                    for (s, &x) in sum.iter_mut().zip(row) {
                        *s += x * m;
                    }
                    count += m;
                }
                // sentence-transformers clamps the count the same way.
                let count = count.max(1e-9);
                sum.iter_mut().for_each(|s| *s /= count);
                sum
            }
            Pooling::Max => {
                let mut max = vec![f32::NEG_INFINITY; dim];
                for (row, _) in rows.filter(|(_, &m)| m > 0.0) {
                    for (mx, &x) in max.iter_mut().zip(row) {
                        *mx = mx.max(x);
                    }
                }
                max
            }
        }
    }
}

/// Scales `v` to unit L2 norm (a zero vector stays zero), like `torch.nn.functional.normalize`.
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two sequences of length 3, dim 2; the second has one padding position.
    const HIDDEN: [f32; 12] = [1., 2., 3., 4., 5., 6., 10., 20., 30., 40., 99., 99.];
    const MASK: [f32; 6] = [1., 1., 1., 1., 1., 0.];

    #[test]
    fn mean_ignores_padding() {
        let out = Pooling::Mean.pool(&HIDDEN, &MASK, 3, 2);
        assert_eq!(out, vec![vec![3., 4.], vec![20., 30.]]);
    }

    #[test]
    fn cls_and_max() {
        assert_eq!(Pooling::Cls.pool(&HIDDEN, &MASK, 3, 2)[1], vec![10., 20.]);
        assert_eq!(Pooling::Max.pool(&HIDDEN, &MASK, 3, 2)[1], vec![30., 40.]);
    }

    #[test]
    fn normalises_to_unit_length() {
        let mut v = vec![3., 4.];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0., 0.];
        l2_normalize(&mut zero);
        assert_eq!(zero, vec![0., 0.]);
    }
}
