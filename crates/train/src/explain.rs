//! Why a classifier answered what it did: per-token attributions toward a class.
//!
//! - `exact` (tfidf-logreg): the class's logit is its bias plus, for every feature of the
//!   text, weight x TF-IDF value. Each feature's product is shared equally among the tokens
//!   (words, or characters for a character model) of its occurrences, so the attributions
//!   plus the bias add up to the logit (to float rounding).
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
    /// `exact` where the model has it (tfidf-logreg), else `occlusion`.
    #[default]
    Auto,
    Exact,
    Occlusion,
}

/// What to explain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExplainOptions {
    pub method: ExplainMethod,
    /// Keep the `top_k` tokens of largest absolute attribution (still in text order).
    pub top_k: Option<usize>,
    /// The class to explain (a label); the predicted one when absent.
    pub target: Option<String>,
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
    /// `exact`: the class's bias; `occlusion`: 0.
    pub base: f32,
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
                     \"occlusion\"",
                    self.architecture().as_str()
                )))
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
