//! The token vocabulary of the embedding networks: index 0 is padding, 1 is unknown, then the
//! training words seen at least `min_count` times, most frequent first.

use std::collections::HashMap;

pub(crate) const PAD: u32 = 0;
pub(crate) const UNK: u32 = 1;
pub(crate) const PAD_TOKEN: &str = "<pad>";
pub(crate) const UNK_TOKEN: &str = "<unk>";

#[derive(Debug, Clone)]
pub(crate) struct TokenVocab {
    words: Vec<String>,
    index: HashMap<String, u32>,
}

impl TokenVocab {
    /// Build from tokenised training texts: the words seen `min_count` times or more, at
    /// most `max_words` of them (the most frequent).
    pub(crate) fn build(texts: &[Vec<String>], min_count: usize, max_words: usize) -> TokenVocab {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for t in texts {
            for w in t {
                *counts.entry(w.as_str()).or_insert(0) += 1;
            }
        }
        let mut kept: Vec<(&str, usize)> = counts
            .into_iter()
            .filter(|&(w, c)| c >= min_count && w != PAD_TOKEN && w != UNK_TOKEN)
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        kept.truncate(max_words.saturating_sub(2));
        let words = [PAD_TOKEN, UNK_TOKEN]
            .into_iter()
            .chain(kept.into_iter().map(|(w, _)| w))
            .map(String::from)
            .collect();
        TokenVocab::from_words(words)
    }

    /// Rebuild from the stored word list (index order, including the two special tokens).
    pub(crate) fn from_words(words: Vec<String>) -> TokenVocab {
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        TokenVocab { words, index }
    }

    pub(crate) fn words(&self) -> &[String] {
        &self.words
    }

    pub(crate) fn len(&self) -> usize {
        self.words.len()
    }

    /// Token ids of a tokenised text, truncated to `max_len`; unknown words become `UNK`.
    pub(crate) fn encode(&self, tokens: &[String], max_len: usize) -> Vec<u32> {
        tokens
            .iter()
            .take(max_len)
            .map(|w| self.index.get(w).copied().unwrap_or(UNK))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn special_tokens_first_then_by_frequency() {
        let v = TokenVocab::build(&[toks("b a b c"), toks("b a")], 2, usize::MAX);
        assert_eq!(v.words(), &["<pad>", "<unk>", "b", "a"]);
        assert_eq!(v.encode(&toks("a c b z"), 3), vec![3, UNK, 2]);
        assert_eq!(PAD, 0);
    }
}
