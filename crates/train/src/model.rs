//! A trained classifier as files (model.json + weights.safetensors) and in memory: saving,
//! loading with validation, and batched prediction from raw texts.

use aiaas_types::Architecture;
use serde::{Deserialize, Serialize};

use crate::fit::{Predictor, PREDICT_BATCH};
use crate::nets::avgpool::AvgPool;
use crate::nets::rnn::Rnn;
use crate::nets::textcnn::TextCnn;
use crate::nets::{NetSpec, StoredTensors};
use crate::text::tokenize;
use crate::tfidf::{Logreg, TfidfSpec, TfidfVectorizer};
use crate::vocab::TokenVocab;
use crate::{ModelFiles, TrainError, MODEL_FILE, WEIGHTS_FILE};

/// Version of the model.json layout written by this crate.
const FORMAT_VERSION: u32 = 1;

/// Contents of model.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ModelSpec {
    pub format_version: u32,
    pub architecture: Architecture,
    pub labels: Vec<String>,
    pub tokenizer: TokenizerSpec,
    /// Embedding networks: tokens in embedding-row order ("<pad>", "<unk>", words...).
    /// tfidf-logreg: feature terms in column order (bigrams joined by a space).
    pub vocabulary: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tfidf: Option<TfidfSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenizerSpec {
    /// Which tokenizer produced the tokens (see `text::tokenize`).
    pub kind: String,
    pub lowercase: bool,
    /// Tokens kept per text; `None` keeps them all (tfidf-logreg).
    pub max_len: Option<usize>,
}

impl TokenizerSpec {
    pub(crate) fn new(max_len: Option<usize>) -> TokenizerSpec {
        TokenizerSpec {
            kind: "unicode-words+jieba".into(),
            lowercase: true,
            max_len,
        }
    }
}

pub(crate) enum Body {
    Avgpool(AvgPool),
    Textcnn(TextCnn),
    Rnn(Rnn),
    Tfidf(TfidfVectorizer, Logreg),
}

/// A loaded model for inference. `Send + Sync`: share it across inference threads.
pub struct Classifier {
    spec: ModelSpec,
    vocab: Option<TokenVocab>,
    body: Body,
}

impl Classifier {
    /// Rebuild a classifier from its files. Missing or inconsistent files give
    /// [`TrainError::InvalidModel`].
    pub fn from_files(files: &ModelFiles) -> Result<Classifier, TrainError> {
        let json = files
            .get(MODEL_FILE)
            .ok_or_else(|| TrainError::InvalidModel(format!("{MODEL_FILE} is missing")))?;
        let weights = files
            .get(WEIGHTS_FILE)
            .ok_or_else(|| TrainError::InvalidModel(format!("{WEIGHTS_FILE} is missing")))?;
        let spec: ModelSpec = serde_json::from_slice(json)
            .map_err(|e| TrainError::InvalidModel(format!("{MODEL_FILE} is not valid: {e}")))?;
        if spec.format_version != FORMAT_VERSION {
            return Err(TrainError::InvalidModel(format!(
                "unsupported model format version {}",
                spec.format_version
            )));
        }
        if spec.labels.len() < 2 {
            return Err(TrainError::InvalidModel(
                "a classifier needs at least two labels".into(),
            ));
        }
        let tensors = StoredTensors::parse(weights)?;
        let body = match spec.architecture {
            Architecture::TfidfLogreg => {
                let tf = spec
                    .tfidf
                    .as_ref()
                    .ok_or_else(|| TrainError::InvalidModel("tfidf settings are missing".into()))?;
                let vectorizer = TfidfVectorizer::load(tf, spec.vocabulary.clone(), &tensors)?;
                let logreg = Logreg::load(vectorizer.len(), spec.labels.len(), &tensors)?;
                Body::Tfidf(vectorizer, logreg)
            }
            Architecture::Auto => {
                return Err(TrainError::InvalidModel(
                    "architecture auto is not a model".into(),
                ))
            }
            arch => {
                let net = spec.net.as_ref().ok_or_else(|| {
                    TrainError::InvalidModel("network settings are missing".into())
                })?;
                if net.vocab_size != spec.vocabulary.len() || net.classes != spec.labels.len() {
                    return Err(TrainError::InvalidModel(
                        "vocabulary or label count disagrees with the network settings".into(),
                    ));
                }
                match arch {
                    Architecture::Avgpool => Body::Avgpool(AvgPool::load(net, &tensors)?),
                    Architecture::Textcnn => Body::Textcnn(TextCnn::load(net, &tensors)?),
                    _ => Body::Rnn(Rnn::load(arch, net, &tensors)?),
                }
            }
        };
        let vocab = match body {
            Body::Tfidf(..) => None,
            _ => Some(TokenVocab::from_words(spec.vocabulary.clone())),
        };
        Ok(Classifier { spec, vocab, body })
    }

    /// Per class, the `k` features with the largest weights toward it and against it
    /// (tfidf-logreg; empty for the networks, whose importance is per input).
    pub fn top_features(&self, k: usize) -> Vec<aiaas_types::ClassFeatures> {
        let Body::Tfidf(vectorizer, logreg) = &self.body else {
            return Vec::new();
        };
        let terms = vectorizer.terms();
        self.spec
            .labels
            .iter()
            .enumerate()
            .map(|(class, label)| {
                let mut order: Vec<u32> = (0..terms.len() as u32).collect();
                order.sort_by(|&a, &b| logreg.weight(class, b).total_cmp(&logreg.weight(class, a)));
                let pick = |f: &u32| aiaas_types::FeatureWeight {
                    feature: terms[*f as usize].clone(),
                    weight: logreg.weight(class, *f),
                };
                aiaas_types::ClassFeatures {
                    label: label.clone(),
                    toward: order.iter().take(k).map(pick).collect(),
                    against: order.iter().rev().take(k).map(pick).collect(),
                }
            })
            .collect()
    }

    /// The ids a network reads for a tokenised text (its vocabulary, truncated to its
    /// `max_len`).
    pub(crate) fn encode(&self, tokens: &[String]) -> Result<Vec<u32>, TrainError> {
        let vocab = self
            .vocab
            .as_ref()
            .ok_or_else(|| TrainError::InvalidModel("vocabulary is missing".into()))?;
        Ok(vocab.encode(tokens, self.spec.tokenizer.max_len.unwrap_or(usize::MAX)))
    }

    pub(crate) fn body(&self) -> &Body {
        &self.body
    }

    pub fn labels(&self) -> &[String] {
        &self.spec.labels
    }

    pub fn architecture(&self) -> Architecture {
        self.spec.architecture
    }

    /// For `tfidf-logreg`: its settings as training options (the refit of `auto` trains
    /// with them instead of searching again).
    pub(crate) fn tfidf_options(&self) -> Option<aiaas_types::TfidfOptions> {
        let Body::Tfidf(vectorizer, _) = &self.body else {
            return None;
        };
        let spec = self.spec.tfidf.as_ref()?;
        Some(aiaas_types::TfidfOptions {
            analyzer: vectorizer.analyzer().kind,
            ngram_max: vectorizer.analyzer().ngram_max,
            c: spec.c,
            min_df: spec.min_df,
        })
    }

    /// One probability vector per text, in `labels()` order. Empty input gives empty output.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, TrainError> {
        let mut out = Vec::with_capacity(texts.len());
        if let Body::Tfidf(vectorizer, logreg) = &self.body {
            let analyzer = vectorizer.analyzer();
            for chunk in texts.chunks(PREDICT_BATCH) {
                let features: Vec<_> = chunk
                    .iter()
                    .map(|t| vectorizer.transform(&analyzer.terms(t, None)))
                    .collect();
                out.extend(logreg.predict(&features.iter().collect::<Vec<_>>())?);
            }
            return Ok(out);
        }
        for chunk in texts.chunks(PREDICT_BATCH) {
            let tokens: Vec<Vec<String>> = chunk.iter().map(|t| tokenize(t)).collect();
            out.extend(self.predict_tokens(&tokens)?);
        }
        Ok(out)
    }

    /// Assemble an in-memory classifier from a freshly trained body.
    pub(crate) fn new(spec: ModelSpec, body: Body) -> Classifier {
        let vocab = match body {
            Body::Tfidf(..) => None,
            _ => Some(TokenVocab::from_words(spec.vocabulary.clone())),
        };
        Classifier { spec, vocab, body }
    }

    /// Serialise to model files.
    pub(crate) fn to_files(&self) -> Result<ModelFiles, TrainError> {
        let weights = match &self.body {
            Body::Avgpool(n) => n.save()?,
            Body::Textcnn(n) => n.save()?,
            Body::Rnn(n) => n.save()?,
            Body::Tfidf(v, l) => crate::tfidf::save(v, l)?,
        };
        let json = serde_json::to_vec_pretty(&self.spec)
            .map_err(|e| TrainError::Backend(format!("cannot serialise model.json: {e}")))?;
        let mut files = ModelFiles::new();
        files.insert(MODEL_FILE.to_string(), json);
        files.insert(WEIGHTS_FILE.to_string(), weights);
        Ok(files)
    }

    fn predict_tokens(&self, tokens: &[Vec<String>]) -> Result<Vec<Vec<f32>>, TrainError> {
        let vocab = self
            .vocab
            .as_ref()
            .ok_or_else(|| TrainError::InvalidModel("vocabulary is missing".into()))?;
        let ids: Vec<Vec<u32>> = tokens
            .iter()
            .map(|t| vocab.encode(t, self.spec.tokenizer.max_len.unwrap_or(usize::MAX)))
            .collect();
        let refs: Vec<&Vec<u32>> = ids.iter().collect();
        match &self.body {
            Body::Avgpool(n) => n.predict(&refs),
            Body::Textcnn(n) => n.predict(&refs),
            Body::Rnn(n) => n.predict(&refs),
            Body::Tfidf(..) => Err(TrainError::Backend(
                "tfidf-logreg predicts from texts, not tokens".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn classifier_is_send_and_sync() {
        assert_send_sync::<super::Classifier>();
    }
}
