//! Text tokenisation shared by training and inference: lower-cased word tokens, with jieba for
//! runs of CJK ideographs and Unicode word segmentation for everything else.

use std::sync::OnceLock;
use unicode_segmentation::UnicodeSegmentation;

/// Lower-cased word tokens. Unicode-aware word segmentation (`unicode_words`) for most scripts;
/// runs of CJK ideographs are segmented into words with jieba (built once, lazily: it takes a
/// noticeable fraction of a second to build its dictionary). Punctuation dropped; digits kept.
pub fn tokenize(text: &str) -> Vec<String> {
    tokenize_spans(text).into_iter().map(|(t, _)| t).collect()
}

/// `tokenize` with each token's byte range in `text` (explanations point at the words).
pub fn tokenize_spans(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut run_start = 0;
    let mut run_is_cjk = false;
    for (i, c) in text.char_indices() {
        let cjk = is_cjk_ideograph(c);
        if i == 0 {
            run_is_cjk = cjk;
            continue;
        }
        if cjk != run_is_cjk {
            push_run(text, run_start..i, run_is_cjk, &mut out);
            run_start = i;
            run_is_cjk = cjk;
        }
    }
    if run_start < text.len() {
        push_run(text, run_start..text.len(), run_is_cjk, &mut out);
    }
    out
}

fn push_run(
    text: &str,
    run: std::ops::Range<usize>,
    cjk: bool,
    out: &mut Vec<(String, std::ops::Range<usize>)>,
) {
    let at = run.start;
    let run = &text[run];
    if cjk {
        for token in jieba().cut(run, true) {
            if token.word.chars().any(char::is_alphanumeric) {
                let span = at + token.byte_start..at + token.byte_end;
                out.push((token.word.to_lowercase(), span));
            }
        }
    } else {
        out.extend(
            run.unicode_word_indices()
                .map(|(i, w)| (w.to_lowercase(), at + i..at + i + w.len())),
        );
    }
}

fn jieba() -> &'static jieba_rs::Jieba {
    static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    JIEBA.get_or_init(jieba_rs::Jieba::new)
}

/// CJK unified ideographs (and their extensions / compatibility block): the scripts where words
/// are not separated by spaces and `unicode_words` would yield one token per character.
pub(crate) fn is_cjk_ideograph(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2EBEF
        | 0x30000..=0x3134F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_and_drops_punctuation() {
        assert_eq!(
            tokenize("Hello, World! It's 2024 -- prices rose 3.5%."),
            vec!["hello", "world", "it's", "2024", "prices", "rose", "3.5"]
        );
    }

    #[test]
    fn empty_and_punctuation_only_give_nothing() {
        assert!(tokenize("").is_empty());
        assert!(tokenize("  ?!... ，。").is_empty());
    }

    #[test]
    fn spans_point_at_the_words() {
        let text = "Ünïcode café, 北京大学 rocks";
        for (token, span) in tokenize_spans(text) {
            assert_eq!(text[span].to_lowercase(), token);
        }
        assert_eq!(
            tokenize_spans(text)
                .iter()
                .map(|(t, _)| t.clone())
                .collect::<Vec<_>>(),
            tokenize(text)
        );
    }

    #[test]
    fn chinese_is_segmented_into_words() {
        let t = tokenize("我们中出了一个叛徒");
        assert!(t.len() >= 3 && t.len() < 9, "{t:?}");
        assert_eq!(t.concat(), "我们中出了一个叛徒");
        let mixed = tokenize("Apple发布了新的iPhone手机。");
        assert_eq!(mixed.first().map(String::as_str), Some("apple"));
        assert!(mixed.contains(&"iphone".to_string()), "{mixed:?}");
        assert!(mixed.contains(&"手机".to_string()), "{mixed:?}");
    }
}
