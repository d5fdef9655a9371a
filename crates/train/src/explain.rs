//! Why a classifier answered what it did: per-token attributions toward a class.
//!
//! - `exact` (tfidf-logreg): the class's logit is its bias plus, for every feature of the
//!   text, weight x TF-IDF value. Each feature's product is shared equally among the tokens
//!   (words, or characters for a character model) of its occurrences, so the attributions
//!   plus the bias add up to the logit (to float rounding).
//! - `integrated-gradients` (the networks: avgpool, textcnn, gru, lstm): the gradient of
//!   the class's logit with respect to each token's vector, averaged along the straight
//!   path from a baseline where every token's vector is zero (so the baseline is "no
//!   words": avgpool's pooled vector is 0), dotted with the token's vector. The
//!   attributions add up to `score - base` (the logit at the text minus at the baseline)
//!   up to the integral's discretisation: `completeness_gap` reports the difference
//!   (`steps` midpoints, 64 by default). Tokens past the model's `max_len` get 0.
//! - `occlusion` (any classifier): a token's attribution is how much the class's
//!   probability falls when the token is cut out of the text (negative: it rises). One
//!   batch of `tokens + 1` predictions.
//!
//! Offsets are in characters (Unicode code points) of the text the model saw, `end`
//! exclusive, as Python's `text[start:end]`.

use serde::{Deserialize, Serialize};

use crate::model::{Body, Classifier};
use crate::text::tokenize_spans;
use crate::tfidf::{char_units, occurrences, TfidfVectorizer};
use crate::TrainError;
use aiaas_types::TfidfAnalyzer;

/// How attributions are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExplainMethod {
    /// `exact` for tfidf-logreg, `integrated-gradients` for the networks.
    #[default]
    Auto,
    Exact,
    IntegratedGradients,
    Occlusion,
}

/// Integration points of `integrated-gradients` when not given.
pub const DEFAULT_IG_STEPS: usize = 64;
/// Most integration points a request may ask for.
pub const MAX_IG_STEPS: usize = 512;

/// What to explain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExplainOptions {
    pub method: ExplainMethod,
    /// Keep the `top_k` tokens of largest absolute attribution (still in text order).
    pub top_k: Option<usize>,
    /// The class to explain (a label); the predicted one when absent.
    pub target: Option<String>,
    /// `integrated-gradients`: points of the path integral (1 to 512, default 64).
    pub steps: Option<usize>,
}

/// One token's share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenAttribution {
    pub token: String,
    /// Character offsets in the text, `end` exclusive.
    pub start: usize,
    pub end: usize,
    pub attribution: f32,
}

/// A text's explanation toward one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The method used (never `auto`).
    pub method: ExplainMethod,
    /// The class explained.
    pub target: String,
    /// What the attributions add up to: `exact`: the logit, `score = base + sum`;
    /// `occlusion`: the probability of the class (`score`) they each take away.
    pub score: f32,
    /// `exact`: the class's bias; `integrated-gradients`: the logit at the baseline;
    /// `occlusion`: 0.
    pub base: f32,
    /// `integrated-gradients`: `sum of attributions - (score - base)`, the error of the
    /// discretised integral (0 for an exact decomposition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness_gap: Option<f32>,
    pub tokens: Vec<TokenAttribution>,
}

impl Classifier {
    /// Explains the prediction for `text` (see the module documentation).
    pub fn explain(&self, text: &str, opts: &ExplainOptions) -> Result<Explanation, TrainError> {
        let probabilities = self
            .predict(&[text])?
            .pop()
            .ok_or_else(|| TrainError::Backend("no prediction".into()))?;
        let target = match &opts.target {
            Some(label) => self
                .labels()
                .iter()
                .position(|l| l == label)
                .ok_or_else(|| {
                    TrainError::InvalidData(format!(
                        "explain.target {label:?} is not a label of this model ({})",
                        self.labels().join(", ")
                    ))
                })?,
            None => crate::metrics::argmax(&probabilities),
        };
        let tfidf = match self.body() {
            Body::Tfidf(v, l) => Some((v, l)),
            _ => None,
        };
        let mut explanation = match (opts.method, tfidf) {
            (ExplainMethod::Auto | ExplainMethod::Exact, Some((v, l))) => exact(v, l, text, target),
            (ExplainMethod::Exact, None) => {
                return Err(TrainError::InvalidData(format!(
                    "exact attributions exist for tfidf-logreg models; this one is {}: use \
                     \"integrated-gradients\" or \"occlusion\"",
                    self.architecture().as_str()
                )))
            }
            (ExplainMethod::IntegratedGradients, Some(_)) => {
                return Err(TrainError::InvalidData(
                    "integrated gradients explain the networks; tfidf-logreg's attributions \
                     are exact: use \"exact\" (or \"occlusion\")"
                        .into(),
                ))
            }
            (ExplainMethod::Auto | ExplainMethod::IntegratedGradients, None) => {
                let steps = opts.steps.unwrap_or(DEFAULT_IG_STEPS);
                if !(1..=MAX_IG_STEPS).contains(&steps) {
                    return Err(TrainError::InvalidData(format!(
                        "explain.steps must be between 1 and {MAX_IG_STEPS}, got {steps}"
                    )));
                }
                self.integrated_gradients(text, target, steps)?
            }
            _ => self.occlusion(text, target, probabilities[target])?,
        };
        explanation.target = self.labels()[target].clone();
        if let Some(k) = opts.top_k {
            if k < explanation.tokens.len() {
                let mut order: Vec<usize> = (0..explanation.tokens.len()).collect();
                order.sort_by(|&a, &b| {
                    let (a, b) = (&explanation.tokens[a], &explanation.tokens[b]);
                    b.attribution.abs().total_cmp(&a.attribution.abs())
                });
                let mut keep = vec![false; order.len()];
                order.iter().take(k).for_each(|&i| keep[i] = true);
                let mut i = 0;
                explanation.tokens.retain(|_| {
                    i += 1;
                    keep[i - 1]
                });
            }
        }
        Ok(explanation)
    }

    /// Integrated gradients over the tokenizer's words (the ids the network reads).
    fn integrated_gradients(
        &self,
        text: &str,
        target: usize,
        steps: usize,
    ) -> Result<Explanation, TrainError> {
        let spans = tokenize_spans(text);
        let words: Vec<String> = spans.iter().map(|(t, _)| t.clone()).collect();
        let ids = self.encode(&words)?;
        let (shares, score, base) = match self.body() {
            Body::Avgpool(n) => n.integrated_gradients(&ids, target, steps),
            Body::Textcnn(n) => n.integrated_gradients(&ids, target, steps)?,
            Body::Rnn(n) => n.integrated_gradients(&ids, target, steps)?,
            Body::Tfidf(..) => {
                return Err(TrainError::Backend(
                    "tfidf-logreg has no gradients path".into(),
                ))
            }
        };
        let chars = CharIndex::new(text);
        let tokens: Vec<TokenAttribution> = spans
            .iter()
            .enumerate()
            .map(|(i, (token, span))| TokenAttribution {
                token: token.clone(),
                start: chars.at(span.start),
                end: chars.at(span.end),
                attribution: shares.get(i).copied().unwrap_or(0.0),
            })
            .collect();
        let total: f32 = shares.iter().sum();
        Ok(Explanation {
            method: ExplainMethod::IntegratedGradients,
            target: String::new(),
            score,
            base,
            completeness_gap: Some(total - (score - base)),
            tokens,
        })
    }

    /// Occlusion over the tokenizer's words.
    fn occlusion(&self, text: &str, target: usize, score: f32) -> Result<Explanation, TrainError> {
        let spans = tokenize_spans(text);
        let cut: Vec<String> = spans
            .iter()
            .map(|(_, span)| format!("{} {}", &text[..span.start], &text[span.end..]))
            .collect();
        let refs: Vec<&str> = cut.iter().map(String::as_str).collect();
        let without = self.predict(&refs)?;
        let chars = CharIndex::new(text);
        let tokens = spans
            .iter()
            .zip(&without)
            .map(|((token, span), p)| TokenAttribution {
                token: token.clone(),
                start: chars.at(span.start),
                end: chars.at(span.end),
                attribution: score - p[target],
            })
            .collect();
        Ok(Explanation {
            method: ExplainMethod::Occlusion,
            target: String::new(),
            score,
            base: 0.0,
            completeness_gap: None,
            tokens,
        })
    }
}

/// tfidf-logreg's exact decomposition of class `target`'s logit.
fn exact(
    vectorizer: &TfidfVectorizer,
    logreg: &crate::tfidf::Logreg,
    text: &str,
    target: usize,
) -> Explanation {
    let analyzer = vectorizer.analyzer();
    // The units features are made of, with their byte ranges.
    let (units, joiner): (Vec<(String, std::ops::Range<usize>)>, &str) = match analyzer.kind {
        TfidfAnalyzer::Char => (
            char_units(text)
                .into_iter()
                .map(|(c, span)| (c.to_string(), span))
                .collect(),
            "",
        ),
        _ => (tokenize_spans(text), " "),
    };
    let names: Vec<String> = units.iter().map(|(u, _)| u.clone()).collect();
    let found = occurrences(&names, analyzer.ngram_max, joiner);
    let terms: Vec<String> = found.iter().map(|(t, _)| t.clone()).collect();
    let features = vectorizer.transform(&terms);
    // The occurrences of each feature, by column.
    let mut by_column: std::collections::HashMap<u32, Vec<&std::ops::Range<usize>>> =
        std::collections::HashMap::new();
    for (term, covered) in &found {
        if let Some(column) = vectorizer.column(term) {
            by_column.entry(column).or_default().push(covered);
        }
    }
    let mut share = vec![0f64; units.len()];
    for (column, value) in features {
        let contribution = f64::from(logreg.weight(target, column)) * f64::from(value);
        let covering = &by_column[&column];
        let pieces: usize = covering.iter().map(|r| r.len()).sum();
        for range in covering {
            for u in (*range).clone() {
                share[u] += contribution / pieces as f64;
            }
        }
    }
    let base = logreg.bias(target);
    let score = base + share.iter().sum::<f64>() as f32;
    let chars = CharIndex::new(text);
    // A character model's units: a character may be cut in several (a lower case of two
    // characters); merge units that point at one character.
    let mut tokens: Vec<TokenAttribution> = Vec::with_capacity(units.len());
    for ((unit, span), a) in units.iter().zip(share) {
        match tokens.last_mut() {
            Some(last) if last.start == chars.at(span.start) => {
                last.token.push_str(unit);
                last.attribution += a as f32;
            }
            _ => tokens.push(TokenAttribution {
                token: unit.clone(),
                start: chars.at(span.start),
                end: chars.at(span.end),
                attribution: a as f32,
            }),
        }
    }
    Explanation {
        method: ExplainMethod::Exact,
        target: String::new(),
        score,
        base,
        completeness_gap: None,
        tokens,
    }
}

/// Byte offsets to character offsets.
struct CharIndex(Vec<usize>);

impl CharIndex {
    fn new(text: &str) -> CharIndex {
        let mut at = vec![0usize; text.len() + 1];
        let mut chars = 0;
        for (i, c) in text.char_indices() {
            at[i..i + c.len_utf8()].fill(chars);
            chars += 1;
        }
        at[text.len()] = chars;
        CharIndex(at)
    }

    fn at(&self, byte: usize) -> usize {
        self.0[byte]
    }
}
