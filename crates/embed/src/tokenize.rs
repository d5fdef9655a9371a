//! Texts to token ids with the model's own tokenizer.json, truncated (or refused) at the
//! model's limit, and the padded batches the encoder takes.
//!
//! The file's own truncation and padding settings (all-MiniLM-L6-v2 ships "pad and truncate
//! to 128") are switched off: the limit is the embedder's, and batches are padded only to
//! their longest member.

use std::path::Path;

use tokenizers::{Encoding, Tokenizer, TruncationDirection};

use crate::error::{EmbedError, Result};

/// One text's tokens, after truncation, with special tokens.
#[derive(Debug, Clone)]
pub(crate) struct Tokenized {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Tokens the whole text has, special tokens included, before truncation.
    pub untruncated: usize,
}

impl Tokenized {
    pub fn truncated(&self) -> bool {
        self.ids.len() < self.untruncated
    }
}

/// A tokenizer bound to a token limit.
pub(crate) struct TextTokenizer {
    inner: Tokenizer,
    /// Special tokens the post-processor adds to a single text (`[CLS]`, `[SEP]`).
    added: usize,
    max_tokens: usize,
}

impl TextTokenizer {
    pub fn load(path: &Path, max_tokens: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| EmbedError::Tokenizer(format!("{}: {e}", path.display())))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let added = inner
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        if max_tokens <= added {
            return Err(EmbedError::Unsupported(format!(
                "a limit of {max_tokens} tokens leaves no room for text next to {added} special tokens"
            )));
        }
        Ok(Self {
            inner,
            added,
            max_tokens,
        })
    }

    /// Tokenizes `texts` (in parallel on the current rayon pool). Over-long texts are cut
    /// to the limit when `truncate`, else the first one is an error naming its index.
    pub fn encode(&self, texts: &[&str], truncate: bool) -> Result<Vec<Tokenized>> {
        let raw = self
            .inner
            .encode_batch(texts.to_vec(), false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        raw.into_iter()
            .enumerate()
            .map(|(index, encoding)| self.finish(index, encoding, truncate))
            .collect()
    }

    /// Truncates one text's bare tokens so that, with special tokens, it fits the limit,
    /// then adds the special tokens (as `tokenizers` does itself when truncating).
    fn finish(&self, index: usize, mut encoding: Encoding, truncate: bool) -> Result<Tokenized> {
        let untruncated = encoding.len() + self.added;
        if untruncated > self.max_tokens {
            if !truncate {
                return Err(EmbedError::TooLong {
                    index,
                    tokens: untruncated,
                    max: self.max_tokens,
                });
            }
            encoding.truncate(self.max_tokens - self.added, 0, TruncationDirection::Right);
            // The cut-off rest is not embedded; dropping it spares post-processing it.
            encoding.take_overflowing();
        }
        let encoding = self
            .inner
            .post_process(encoding, None, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        if encoding.is_empty() {
            return Err(EmbedError::NoTokens { index });
        }
        Ok(Tokenized {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
            untruncated,
        })
    }
}

/// Token ids of several texts padded on the right to the longest of them, with the
/// attention mask (1 for a real token, 0 for padding).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PaddedBatch {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub mask: Vec<f32>,
    pub batch: usize,
    pub seq_len: usize,
}

impl PaddedBatch {
    pub fn new(items: &[&Tokenized], pad_id: u32) -> Self {
        let seq_len = items.iter().map(|t| t.ids.len()).max().unwrap_or(0);
        let n = items.len() * seq_len;
        let (mut ids, mut type_ids, mut mask) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for item in items {
            let pad = seq_len - item.ids.len();
            ids.extend_from_slice(&item.ids);
            ids.extend(std::iter::repeat_n(pad_id, pad));
            type_ids.extend_from_slice(&item.type_ids);
            type_ids.extend(std::iter::repeat_n(0, pad));
            mask.extend(std::iter::repeat_n(1f32, item.ids.len()));
            mask.extend(std::iter::repeat_n(0f32, pad));
        }
        Self {
            ids,
            type_ids,
            mask,
            batch: items.len(),
            seq_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(ids: &[u32]) -> Tokenized {
        Tokenized {
            ids: ids.to_vec(),
            type_ids: vec![0; ids.len()],
            untruncated: ids.len(),
        }
    }

    #[test]
    fn pads_to_the_longest_with_a_mask() {
        let (a, b) = (tok(&[101, 7, 102]), tok(&[101, 102]));
        let batch = PaddedBatch::new(&[&a, &b], 0);
        assert_eq!(batch.seq_len, 3);
        assert_eq!(batch.ids, vec![101, 7, 102, 101, 102, 0]);
        assert_eq!(batch.mask, vec![1., 1., 1., 1., 1., 0.]);
        assert_eq!(batch.type_ids, vec![0; 6]);
    }
}
