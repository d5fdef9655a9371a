//! The classic baseline: TF-IDF features (unigrams + bigrams, sublinear tf, smooth idf,
//! l2-normalised, vocabulary capped by document frequency) and multinomial logistic regression
//! with L2, trained by mini-batch Adam on sparse features, in plain Rust.

use std::collections::HashMap;

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::fit::Net;
use crate::metrics::argmax;
use crate::nets::{softmax, to_safetensors, Adam, StoredTensors};
use crate::TrainError;

/// Most features kept (by document frequency), as scikit-learn's `max_features`.
const MAX_FEATURES: usize = 50_000;
/// Corpora at least this large drop terms seen in a single document (noise, mostly bigrams).
const MIN_DF2_DOCS: usize = 50;
/// Epochs of mini-batch Adam: the objective is convex and cheap, so a fixed budget well past
/// convergence is used instead of the networks' `epochs`.
pub(crate) const LOGREG_EPOCHS: usize = 30;
/// Adam step size for the (unscaled, l2-normalised) sparse features.
pub(crate) const LOGREG_LEARNING_RATE: f64 = 0.02;
/// Inverse L2 strength, as scikit-learn's `C` (objective: C * sum of losses + |W|^2 / 2).
const LOGREG_C: f64 = 10.0;

/// Settings stored in model.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TfidfSpec {
    pub ngram_max: usize,
    pub sublinear_tf: bool,
    pub norm: String,
}

/// A sparse, l2-normalised feature vector: (column, value), columns ascending.
pub(crate) type SparseVec = Vec<(u32, f32)>;

pub(crate) struct TfidfVectorizer {
    terms: Vec<String>,
    index: HashMap<String, u32>,
    idf: Vec<f32>,
}

impl TfidfVectorizer {
    pub(crate) fn fit(docs: &[Vec<String>]) -> Result<TfidfVectorizer, TrainError> {
        let mut df: HashMap<String, u32> = HashMap::new();
        for doc in docs {
            let mut seen: Vec<String> = terms_of(doc);
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                *df.entry(t).or_insert(0) += 1;
            }
        }
        let min_df = if docs.len() >= MIN_DF2_DOCS { 2 } else { 1 };
        let mut kept: Vec<(String, u32)> = df.into_iter().filter(|(_, d)| *d >= min_df).collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        kept.truncate(MAX_FEATURES);
        if kept.is_empty() {
            return Err(TrainError::InvalidData(
                "the training texts contain no words to build TF-IDF features from".into(),
            ));
        }
        let n = docs.len() as f64;
        let idf = kept
            .iter()
            .map(|(_, d)| (((1.0 + n) / (1.0 + f64::from(*d))).ln() + 1.0) as f32)
            .collect();
        let terms: Vec<String> = kept.into_iter().map(|(t, _)| t).collect();
        Ok(TfidfVectorizer {
            index: index_of(&terms),
            terms,
            idf,
        })
    }

    pub(crate) fn load(
        spec: &TfidfSpec,
        terms: Vec<String>,
        st: &StoredTensors,
    ) -> Result<TfidfVectorizer, TrainError> {
        if spec.ngram_max != 2 || !spec.sublinear_tf || spec.norm != "l2" {
            return Err(TrainError::InvalidModel("unsupported tfidf settings".into()));
        }
        let idf = st.flat("tfidf.idf", &[terms.len()])?;
        Ok(TfidfVectorizer {
            index: index_of(&terms),
            terms,
            idf,
        })
    }

    pub(crate) fn spec() -> TfidfSpec {
        TfidfSpec {
            ngram_max: 2,
            sublinear_tf: true,
            norm: "l2".into(),
        }
    }

    pub(crate) fn terms(&self) -> &[String] {
        &self.terms
    }

    pub(crate) fn len(&self) -> usize {
        self.terms.len()
    }

    /// TF-IDF vector of a tokenised text: (1 + ln tf) * idf, l2-normalised.
    pub(crate) fn transform(&self, tokens: &[String]) -> SparseVec {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for t in terms_of(tokens) {
            if let Some(&i) = self.index.get(&t) {
                *counts.entry(i).or_insert(0) += 1;
            }
        }
        let mut v: SparseVec = counts
            .into_iter()
            .map(|(i, c)| (i, (1.0 + (c as f32).ln()) * self.idf[i as usize]))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        let norm = v.iter().map(|e| e.1 * e.1).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|e| e.1 /= norm);
        }
        v
    }
}

/// Unigrams and space-joined bigrams of a token list.
fn terms_of(tokens: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tokens.to_vec();
    out.extend(tokens.windows(2).map(|w| format!("{} {}", w[0], w[1])));
    out
}

fn index_of(terms: &[String]) -> HashMap<String, u32> {
    terms
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect()
}

/// Multinomial logistic regression: `classes x features` weights and a bias per class.
pub(crate) struct Logreg {
    features: usize,
    classes: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    train: Option<Box<LogregTrain>>,
}

struct LogregTrain {
    adam: Adam,
    /// L2 coefficient on the mean loss: 1 / (C * n).
    l2: f32,
    gw: Vec<f32>,
    gb: Vec<f32>,
    mw: Vec<f32>,
    vw: Vec<f32>,
    mb: Vec<f32>,
    vb: Vec<f32>,
}

impl Logreg {
    pub(crate) fn new(features: usize, classes: usize, train_size: usize) -> Logreg {
        let state = LogregTrain {
            adam: Adam::new(LOGREG_LEARNING_RATE),
            l2: (1.0 / (LOGREG_C * train_size.max(1) as f64)) as f32,
            gw: vec![0.0; features * classes],
            gb: vec![0.0; classes],
            mw: vec![0.0; features * classes],
            vw: vec![0.0; features * classes],
            mb: vec![0.0; classes],
            vb: vec![0.0; classes],
        };
        Logreg {
            features,
            classes,
            w: vec![0.0; features * classes],
            b: vec![0.0; classes],
            train: Some(Box::new(state)),
        }
    }

    pub(crate) fn load(features: usize, classes: usize, st: &StoredTensors) -> Result<Logreg, TrainError> {
        Ok(Logreg {
            features,
            classes,
            w: st.flat("logreg.weight", &[classes, features])?,
            b: st.flat("logreg.bias", &[classes])?,
            train: None,
        })
    }

    fn probabilities(&self, x: &SparseVec, p: &mut [f32]) {
        let f = self.features;
        for (k, pk) in p.iter_mut().enumerate() {
            let row = &self.w[k * f..(k + 1) * f];
            *pk = self.b[k] + x.iter().map(|&(i, v)| row[i as usize] * v).sum::<f32>();
        }
        softmax(p);
    }
}

impl Net for Logreg {
    type Input = SparseVec;
    type Snapshot = (Vec<f32>, Vec<f32>);

    fn train_batch(
        &mut self,
        inputs: &[&SparseVec],
        labels: &[usize],
        _rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError> {
        let st = self
            .train
            .as_mut()
            .ok_or_else(|| TrainError::Backend("model was loaded for inference only".into()))?;
        let (f, c) = (self.features, self.classes);
        // The L2 term's gradient, then the data term's (sparse) on top.
        for (g, w) in st.gw.iter_mut().zip(&self.w) {
            *g = st.l2 * w;
        }
        st.gb.fill(0.0);
        let scale = 1.0 / inputs.len().max(1) as f32;
        let mut p = vec![0.0; c];
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for (x, &y) in inputs.iter().zip(labels) {
            if y >= c {
                return Err(TrainError::Backend(format!("label index {y} out of range")));
            }
            for (k, pk) in p.iter_mut().enumerate() {
                let row = &self.w[k * f..(k + 1) * f];
                *pk = self.b[k] + x.iter().map(|&(i, v)| row[i as usize] * v).sum::<f32>();
            }
            softmax(&mut p);
            loss -= f64::from(p[y].max(1e-12)).ln();
            correct += usize::from(argmax(&p) == y);
            p[y] -= 1.0;
            for k in 0..c {
                let d = p[k] * scale;
                st.gb[k] += d;
                let row = &mut st.gw[k * f..(k + 1) * f];
                for &(i, v) in x.iter() {
                    row[i as usize] += d * v;
                }
            }
        }
        st.adam.next_step();
        st.adam.update(&mut self.w, &st.gw, &mut st.mw, &mut st.vw);
        st.adam.update(&mut self.b, &st.gb, &mut st.mb, &mut st.vb);
        Ok((loss, correct))
    }

    fn predict(&self, inputs: &[&SparseVec]) -> Result<Vec<Vec<f32>>, TrainError> {
        Ok(inputs
            .iter()
            .map(|x| {
                let mut p = vec![0.0; self.classes];
                self.probabilities(x, &mut p);
                p
            })
            .collect())
    }

    fn snapshot(&self) -> Result<Self::Snapshot, TrainError> {
        Ok((self.w.clone(), self.b.clone()))
    }

    fn restore(&mut self, s: Self::Snapshot) -> Result<(), TrainError> {
        (self.w, self.b) = s;
        Ok(())
    }
}

/// weights.safetensors of a tfidf-logreg model.
pub(crate) fn save(v: &TfidfVectorizer, l: &Logreg) -> Result<Vec<u8>, TrainError> {
    to_safetensors(vec![
        ("tfidf.idf", v.idf.clone(), vec![v.len()]),
        ("logreg.weight", l.w.clone(), vec![l.classes, l.features]),
        ("logreg.bias", l.b.clone(), vec![l.classes]),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn tfidf_matches_hand_computation() {
        let docs = vec![toks("a b a"), toks("b c")];
        let v = TfidfVectorizer::fit(&docs).unwrap();
        // Terms: a, b, c, "a b", "b a", "b c"; b is in both documents.
        assert_eq!(v.len(), 6);
        let x = v.transform(&toks("a a b"));
        let idf1 = (3.0f32 / 2.0).ln() + 1.0;
        let (ta, tb, tab) = ((1.0 + 2f32.ln()) * idf1, 1.0, idf1);
        let norm = (ta * ta + tb * tb + tab * tab).sqrt();
        let get = |t: &str| {
            let i = v.index[t];
            x.iter().find(|e| e.0 == i).map(|e| e.1).unwrap_or(0.0)
        };
        assert!((get("a") - ta / norm).abs() < 1e-6);
        assert!((get("b") - tb / norm).abs() < 1e-6);
        assert!((get("a b") - tab / norm).abs() < 1e-6);
        assert_eq!(get("c"), 0.0);
        assert!(v.transform(&[]).is_empty());
    }
}
