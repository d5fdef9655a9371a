//! The classic baseline: TF-IDF features (word or character n-grams, sublinear tf, smooth
//! idf, l2-normalised, vocabulary capped by document frequency) and multinomial logistic
//! regression with L2, trained to convergence by L-BFGS on sparse features, in plain Rust.
//! `epochs`, `batch_size` and `learning_rate` of the configuration do not apply (the
//! problem is convex); its strength `C` and the vectorizer's `min_df` are searched on the
//! validation split (pipeline.rs).

use std::collections::HashMap;

use std::sync::atomic::Ordering;
use std::time::Instant;

use aiaas_types::{Architecture, EpochStats, TfidfAnalyzer, TrainEvent};
use serde::{Deserialize, Serialize};

use crate::fit::{loss_and_accuracy, Examples, Predictor};
use crate::nets::{softmax, to_safetensors, StoredTensors};
use crate::text::{is_cjk_ideograph, tokenize};
use crate::{TrainControl, TrainError};

/// Most features kept (by document frequency), as scikit-learn's `max_features`.
const MAX_FEATURES: usize = 50_000;

/// Most weights (features x classes) of the logistic regression: L-BFGS keeps about twenty
/// vectors of this size, so with many classes fewer features are kept.
const MAX_WEIGHTS: usize = 5_000_000;
/// Without a search, corpora at least this large drop terms seen in a single document
/// (noise, mostly bigrams).
const MIN_DF2_DOCS: usize = 50;
/// Inverse L2 strength without a search, as scikit-learn's `C` (objective:
/// C * sum of losses + |W|^2 / 2).
pub(crate) const DEFAULT_C: f64 = 10.0;

/// Settings stored in model.json. Models written before the analyzer existed read as
/// word uni- and bigrams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TfidfSpec {
    /// "word" or "char" (never "auto": resolved at training).
    #[serde(default = "word_analyzer")]
    pub analyzer: TfidfAnalyzer,
    pub ngram_max: usize,
    pub sublinear_tf: bool,
    pub norm: String,
    /// The vectorizer's `min_df` and the regression's `C` (informational: the weights
    /// carry them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_df: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<f64>,
}

fn word_analyzer() -> TfidfAnalyzer {
    TfidfAnalyzer::Word
}

/// A sparse, l2-normalised feature vector: (column, value), columns ascending.
pub(crate) type SparseVec = Vec<(u32, f32)>;

/// Which terms a text has, for a resolved analyzer (word or char).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Analyzer {
    pub kind: TfidfAnalyzer,
    pub ngram_max: usize,
}

impl Analyzer {
    /// `auto` resolved on the training texts: char n-grams when more than half of their
    /// letters are CJK (ideographs, kana, hangul).
    pub(crate) fn resolve(kind: TfidfAnalyzer, ngram_max: usize, texts: &[&str]) -> Analyzer {
        let kind = match kind {
            TfidfAnalyzer::Auto => {
                let (mut cjk, mut letters) = (0usize, 0usize);
                for c in texts
                    .iter()
                    .flat_map(|t| t.chars())
                    .filter(|c| c.is_alphabetic())
                {
                    letters += 1;
                    cjk += usize::from(is_cjk(c));
                }
                if 2 * cjk > letters {
                    TfidfAnalyzer::Char
                } else {
                    TfidfAnalyzer::Word
                }
            }
            other => other,
        };
        Analyzer {
            kind,
            ngram_max: ngram_max.max(1),
        }
    }

    /// The terms of `text`, repeated as often as they occur. `tokens`, when given, are
    /// `tokenize(text)` (the word analyzer reuses them instead of segmenting again).
    pub(crate) fn terms(&self, text: &str, tokens: Option<&[String]>) -> Vec<String> {
        match self.kind {
            TfidfAnalyzer::Char => char_ngrams(text, self.ngram_max),
            _ => {
                let owned;
                let tokens = match tokens {
                    Some(t) => t,
                    None => {
                        owned = tokenize(text);
                        &owned
                    }
                };
                word_ngrams(tokens, self.ngram_max)
            }
        }
    }
}

/// CJK ideographs, kana and hangul syllables: scripts written without spaces between words
/// (hangul uses spaces between phrases, but char n-grams are what works there too).
fn is_cjk(c: char) -> bool {
    is_cjk_ideograph(c) || matches!(c as u32, 0x3040..=0x30FF | 0xAC00..=0xD7AF)
}

/// 1..=n-grams of words, joined by a space.
fn word_ngrams(tokens: &[String], n: usize) -> Vec<String> {
    let mut out: Vec<String> = tokens.to_vec();
    for len in 2..=n {
        out.extend(tokens.windows(len).map(|w| w.join(" ")));
    }
    out
}

/// 1..=n-grams of the characters of the lower-cased text, each run of whitespace as one
/// space (scikit-learn's `analyzer="char"`).
fn char_ngrams(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = char_units(text).into_iter().map(|(c, _)| c).collect();
    let mut out = Vec::with_capacity(chars.len() * n);
    for len in 1..=n {
        out.extend(chars.windows(len).map(|w| w.iter().collect::<String>()));
    }
    out
}

/// The characters char n-grams are made of, each with the byte range of the character of
/// `text` it comes from: lower-cased (a character whose lower case is several keeps its
/// range for each), a run of whitespace as one space (the run's first character).
pub(crate) fn char_units(text: &str) -> Vec<(char, std::ops::Range<usize>)> {
    let mut out: Vec<(char, std::ops::Range<usize>)> = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let span = i..i + c.len_utf8();
        if c.is_whitespace() {
            if out.last().map(|u| u.0) != Some(' ') {
                out.push((' ', span));
            }
        } else {
            out.extend(c.to_lowercase().map(|l| (l, span.clone())));
        }
    }
    out
}

/// Every n-gram occurrence (1..=n units) of a sequence of units: the term and the units it
/// covers.
pub(crate) fn occurrences(
    units: &[String],
    n: usize,
    joiner: &str,
) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    for len in 1..=n.max(1) {
        for start in 0..units.len().saturating_sub(len - 1) {
            out.push((units[start..start + len].join(joiner), start..start + len));
        }
    }
    out
}

#[derive(Clone)]
pub(crate) struct TfidfVectorizer {
    analyzer: Analyzer,
    min_df: usize,
    terms: Vec<String>,
    index: HashMap<String, u32>,
    idf: Vec<f32>,
}

impl TfidfVectorizer {
    /// The `min_df` used when none is given: 2 on corpora of `MIN_DF2_DOCS` or more.
    pub(crate) fn default_min_df(docs: usize) -> usize {
        if docs >= MIN_DF2_DOCS {
            2
        } else {
            1
        }
    }

    /// Fit on the training texts' terms (`Analyzer::terms` of each) for a classifier of
    /// `classes` classes, keeping terms in at least `min_df` texts.
    pub(crate) fn fit(
        docs: &[Vec<String>],
        analyzer: Analyzer,
        min_df: usize,
        classes: usize,
    ) -> Result<TfidfVectorizer, TrainError> {
        let mut df: HashMap<&str, u32> = HashMap::new();
        for doc in docs {
            let mut seen: Vec<&str> = doc.iter().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                *df.entry(t).or_insert(0) += 1;
            }
        }
        let min_df = min_df.max(1);
        let mut kept: Vec<(&str, u32)> = df
            .into_iter()
            .filter(|(_, d)| *d as usize >= min_df)
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        kept.truncate(MAX_FEATURES.min(MAX_WEIGHTS / classes.max(1)));
        if kept.is_empty() {
            return Err(TrainError::InvalidData(format!(
                "the training texts contain no term in at least {min_df} texts to build TF-IDF \
                 features from"
            )));
        }
        let n = docs.len() as f64;
        let idf = kept
            .iter()
            .map(|(_, d)| (((1.0 + n) / (1.0 + f64::from(*d))).ln() + 1.0) as f32)
            .collect();
        let terms: Vec<String> = kept.into_iter().map(|(t, _)| t.to_string()).collect();
        Ok(TfidfVectorizer {
            analyzer,
            min_df,
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
        if !spec.sublinear_tf
            || spec.norm != "l2"
            || spec.analyzer == TfidfAnalyzer::Auto
            || !(1..=5).contains(&spec.ngram_max)
        {
            return Err(TrainError::InvalidModel(
                "unsupported tfidf settings".into(),
            ));
        }
        let idf = st.flat("tfidf.idf", &[terms.len()])?;
        Ok(TfidfVectorizer {
            analyzer: Analyzer {
                kind: spec.analyzer,
                ngram_max: spec.ngram_max,
            },
            min_df: spec.min_df.unwrap_or(1),
            index: index_of(&terms),
            terms,
            idf,
        })
    }

    /// The settings to store, with the regression's `c`.
    pub(crate) fn spec(&self, c: f64) -> TfidfSpec {
        TfidfSpec {
            analyzer: self.analyzer.kind,
            ngram_max: self.analyzer.ngram_max,
            sublinear_tf: true,
            norm: "l2".into(),
            min_df: Some(self.min_df),
            c: Some(c),
        }
    }

    pub(crate) fn analyzer(&self) -> Analyzer {
        self.analyzer
    }

    pub(crate) fn terms(&self) -> &[String] {
        &self.terms
    }

    pub(crate) fn len(&self) -> usize {
        self.terms.len()
    }

    /// The column of a term, if it is a feature.
    pub(crate) fn column(&self, term: &str) -> Option<u32> {
        self.index.get(term).copied()
    }

    /// TF-IDF vector of a text's terms: (1 + ln tf) * idf, l2-normalised.
    pub(crate) fn transform(&self, terms: &[String]) -> SparseVec {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for t in terms {
            if let Some(&i) = self.index.get(t) {
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
}

impl Logreg {
    pub(crate) fn load(
        features: usize,
        classes: usize,
        st: &StoredTensors,
    ) -> Result<Logreg, TrainError> {
        Ok(Logreg {
            features,
            classes,
            w: st.flat("logreg.weight", &[classes, features])?,
            b: st.flat("logreg.bias", &[classes])?,
        })
    }

    /// Class `k`'s weight of feature `f` and its bias.
    pub(crate) fn weight(&self, k: usize, f: u32) -> f32 {
        self.w[k * self.features + f as usize]
    }

    pub(crate) fn bias(&self, k: usize) -> f32 {
        self.b[k]
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

impl Predictor for Logreg {
    type Input = SparseVec;

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
}

/// Fit the logistic regression by L-BFGS on the full training set, minimising
/// `mean cross-entropy + |W|^2 / (2 C n)` (scikit-learn's objective divided by `C n`; the
/// bias is not penalised). Every `ITERATIONS_PER_EPOCH` iterations count as one epoch of the
/// learning curve.
pub(crate) fn train_logreg(
    features: usize,
    classes: usize,
    train: &Examples<'_, SparseVec>,
    validation: Option<&Examples<'_, SparseVec>>,
    c: f64,
    control: &TrainControl<'_>,
) -> Result<(Logreg, Vec<EpochStats>), TrainError> {
    let n = train.inputs.len();
    if n == 0 {
        return Err(TrainError::InvalidData("no training examples".into()));
    }
    let problem = Objective {
        xs: &train.inputs,
        ys: &train.labels,
        features,
        classes,
        l2: 1.0 / (c * n as f64),
    };
    let epochs = MAX_ITERATIONS / ITERATIONS_PER_EPOCH;
    let mut lbfgs = Lbfgs::new(vec![0.0; features * classes + classes], &problem);
    let mut curve = Vec::new();
    let mut started = Instant::now();
    for iteration in 1..=MAX_ITERATIONS {
        if control.cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled);
        }
        let converged = !lbfgs.step(&problem);
        if iteration % ITERATIONS_PER_EPOCH == 0 || converged {
            let model = problem.model(&lbfgs.x);
            let (val_loss, val_accuracy) = match validation.filter(|v| !v.inputs.is_empty()) {
                Some(v) => {
                    let (l, a) = loss_and_accuracy(&model, v, control)?;
                    (Some(l), Some(a))
                }
                None => (None, None),
            };
            let stats = EpochStats {
                epoch: curve.len() + 1,
                train_loss: lbfgs.data_loss,
                train_accuracy: lbfgs.correct as f64 / n as f64,
                val_loss,
                val_accuracy,
                seconds: started.elapsed().as_secs_f64(),
            };
            (control.on_event)(TrainEvent::Epoch {
                trial: None,
                architecture: Architecture::TfidfLogreg,
                epochs,
                stats: stats.clone(),
            });
            curve.push(stats);
            started = Instant::now();
        }
        if converged {
            break;
        }
    }
    Ok((problem.model(&lbfgs.x), curve))
}

/// Iteration budget; scikit-learn's `max_iter` is 1000 but this problem converges well before.
const MAX_ITERATIONS: usize = 300;
const ITERATIONS_PER_EPOCH: usize = 25;
/// Stop when the largest gradient component falls below this.
const GRADIENT_TOLERANCE: f64 = 1e-7;
/// L-BFGS memory.
const HISTORY: usize = 10;

struct Objective<'a> {
    xs: &'a [&'a SparseVec],
    ys: &'a [usize],
    features: usize,
    classes: usize,
    l2: f64,
}

impl Objective<'_> {
    /// Objective value at `x` (weights then biases), its gradient into `grad`, and the data
    /// loss and correct count on the way.
    fn eval(&self, x: &[f64], grad: &mut [f64]) -> (f64, f64, usize) {
        let (f, c) = (self.features, self.classes);
        let n = self.xs.len() as f64;
        let (w, b) = x.split_at(f * c);
        grad.fill(0.0);
        let mut p = vec![0.0f64; c];
        let (mut loss, mut correct) = (0.0, 0usize);
        for (doc, &y) in self.xs.iter().zip(self.ys) {
            for (k, pk) in p.iter_mut().enumerate() {
                let row = &w[k * f..(k + 1) * f];
                *pk = b[k]
                    + doc
                        .iter()
                        .map(|&(i, v)| row[i as usize] * f64::from(v))
                        .sum::<f64>();
            }
            let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for pk in p.iter_mut() {
                *pk = (*pk - max).exp();
                sum += *pk;
            }
            p.iter_mut().for_each(|pk| *pk /= sum);
            loss -= p[y].max(1e-300).ln();
            let best = (0..c).fold(0, |best, k| if p[k] > p[best] { k } else { best });
            correct += usize::from(best == y);
            p[y] -= 1.0;
            let (gw, gb) = grad.split_at_mut(f * c);
            for (k, &pk) in p.iter().enumerate() {
                let d = pk / n;
                gb[k] += d;
                let row = &mut gw[k * f..(k + 1) * f];
                for &(i, v) in doc.iter() {
                    row[i as usize] += d * f64::from(v);
                }
            }
        }
        let data_loss = loss / n;
        let mut penalty = 0.0;
        for (g, &wi) in grad[..f * c].iter_mut().zip(w) {
            *g += self.l2 * wi;
            penalty += wi * wi;
        }
        (data_loss + 0.5 * self.l2 * penalty, data_loss, correct)
    }

    fn model(&self, x: &[f64]) -> Logreg {
        let (w, b) = x.split_at(self.features * self.classes);
        Logreg {
            features: self.features,
            classes: self.classes,
            w: w.iter().map(|&v| v as f32).collect(),
            b: b.iter().map(|&v| v as f32).collect(),
        }
    }
}

/// Limited-memory BFGS (Nocedal & Wright, algorithm 7.4) with a backtracking Armijo line search.
struct Lbfgs {
    x: Vec<f64>,
    value: f64,
    grad: Vec<f64>,
    data_loss: f64,
    correct: usize,
    history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)>,
}

impl Lbfgs {
    fn new(x: Vec<f64>, problem: &Objective<'_>) -> Lbfgs {
        let mut grad = vec![0.0; x.len()];
        let (value, data_loss, correct) = problem.eval(&x, &mut grad);
        Lbfgs {
            x,
            value,
            grad,
            data_loss,
            correct,
            history: std::collections::VecDeque::new(),
        }
    }

    /// One iteration; false when converged (or no further progress is possible).
    fn step(&mut self, problem: &Objective<'_>) -> bool {
        if self.grad.iter().fold(0.0f64, |m, g| m.max(g.abs())) < GRADIENT_TOLERANCE {
            return false;
        }
        let direction = self.direction();
        let slope = dot64(&direction, &self.grad);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            self.history.clear();
            return !self.grad.is_empty();
        }
        let mut t = if self.history.is_empty() {
            1.0 / self
                .grad
                .iter()
                .map(|g| g * g)
                .sum::<f64>()
                .sqrt()
                .max(1e-12)
        } else {
            1.0
        };
        let mut candidate = vec![0.0; self.x.len()];
        let mut grad = vec![0.0; self.x.len()];
        for _ in 0..40 {
            for ((c, &x), &d) in candidate.iter_mut().zip(&self.x).zip(&direction) {
                *c = x + t * d;
            }
            let (value, data_loss, correct) = problem.eval(&candidate, &mut grad);
            if value <= self.value + 1e-4 * t * slope {
                let s: Vec<f64> = candidate.iter().zip(&self.x).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = grad.iter().zip(&self.grad).map(|(a, b)| a - b).collect();
                let sy = dot64(&s, &y);
                if sy > 1e-12 {
                    if self.history.len() == HISTORY {
                        self.history.pop_front();
                    }
                    self.history.push_back((s, y, 1.0 / sy));
                }
                let improvement = self.value - value;
                self.x.copy_from_slice(&candidate);
                self.grad.copy_from_slice(&grad);
                (self.value, self.data_loss, self.correct) = (value, data_loss, correct);
                return improvement > 1e-12 * self.value.abs().max(1.0);
            }
            t *= 0.5;
        }
        false
    }

    /// `-H g` by the two-loop recursion.
    fn direction(&self) -> Vec<f64> {
        let mut q: Vec<f64> = self.grad.iter().map(|g| -g).collect();
        let mut alphas = Vec::with_capacity(self.history.len());
        for (s, y, rho) in self.history.iter().rev() {
            let a = rho * dot64(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        if let Some((s, y, _)) = self.history.back() {
            let gamma = dot64(s, y) / dot64(y, y).max(1e-300);
            q.iter_mut().for_each(|qi| *qi *= gamma);
        }
        for ((s, y, rho), a) in self.history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot64(y, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        q
    }
}

fn dot64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
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

    const WORDS: Analyzer = Analyzer {
        kind: TfidfAnalyzer::Word,
        ngram_max: 2,
    };

    #[test]
    fn tfidf_matches_hand_computation() {
        let docs: Vec<Vec<String>> = ["a b a", "b c"]
            .iter()
            .map(|t| WORDS.terms(t, Some(&toks(t))))
            .collect();
        let v = TfidfVectorizer::fit(&docs, WORDS, 1, 2).unwrap();
        // Terms: a, b, c, "a b", "b a", "b c"; b is in both documents.
        assert_eq!(v.len(), 6);
        let x = v.transform(&WORDS.terms("a a b", None));
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
        // min_df 2 keeps the one term in both texts.
        assert_eq!(
            TfidfVectorizer::fit(&docs, WORDS, 2, 2).unwrap().terms(),
            ["b"]
        );
    }

    #[test]
    fn char_ngrams_as_scikit_learn_makes_them() {
        // analyzer="char", ngram_range=(1, 2): lower-cased, whitespace runs as one space.
        let got = char_ngrams("Ab  c", 2);
        assert_eq!(got, ["a", "b", " ", "c", "ab", "b ", " c"]);
        assert_eq!(char_ngrams("北京大学", 1), ["北", "京", "大", "学"]);
        assert_eq!(char_ngrams("北京", 3), ["北", "京", "北京"]);
    }

    #[test]
    fn auto_picks_characters_for_cjk_texts_only() {
        let zh = ["今天的天气很好", "股市大涨 ETF"];
        let en = ["the weather is fine today", "markets rally 北京"];
        assert_eq!(
            Analyzer::resolve(TfidfAnalyzer::Auto, 2, &zh).kind,
            TfidfAnalyzer::Char
        );
        assert_eq!(
            Analyzer::resolve(TfidfAnalyzer::Auto, 2, &en).kind,
            TfidfAnalyzer::Word
        );
        assert_eq!(
            Analyzer::resolve(TfidfAnalyzer::Auto, 2, &["日本語のテキスト"]).kind,
            TfidfAnalyzer::Char
        );
        assert_eq!(
            Analyzer::resolve(TfidfAnalyzer::Word, 2, &zh).kind,
            TfidfAnalyzer::Word
        );
    }

    #[test]
    fn old_model_settings_read_as_word_bigrams() {
        let spec: TfidfSpec =
            serde_json::from_str(r#"{"ngram_max":2,"sublinear_tf":true,"norm":"l2"}"#).unwrap();
        assert_eq!(spec.analyzer, TfidfAnalyzer::Word);
        assert_eq!(spec.min_df, None);
    }
}
