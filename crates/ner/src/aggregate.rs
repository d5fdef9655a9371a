//! From scored tokens to entities, as Hugging Face's `TokenClassificationPipeline`
//! aggregates them (`gather_pre_entities`, `aggregate`, `group_entities`,
//! `aggregate_overlapping_entities`), so the spans and scores equal the Python
//! pipeline's on the same model and tokenizer.

use serde::{Deserialize, Serialize};
use tokenizers::{Encoding, ModelWrapper, Tokenizer};

use crate::Entity;

/// How tokens become entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Each token labelled by its best class; consecutive tokens of one entity (B then
    /// I of the same kind) joined, scored by their mean.
    #[default]
    Simple,
    /// Words (a token and the sub-word pieces after it) labelled by their first token.
    First,
    /// Words labelled by their most confident token.
    Max,
    /// Words labelled by their tokens' mean scores.
    Average,
}

impl Aggregation {
    pub fn parse(text: &str) -> Option<Aggregation> {
        match text {
            "simple" => Some(Aggregation::Simple),
            "first" => Some(Aggregation::First),
            "max" => Some(Aggregation::Max),
            "average" => Some(Aggregation::Average),
            _ => None,
        }
    }
}

/// A token of a window, with its scores over the labels.
pub(crate) struct Token<'a> {
    scores: &'a [f32],
    start: usize,
    end: usize,
    is_subword: bool,
}

/// The window's ordinary tokens (special tokens left out). A token is a sub-word piece
/// when its string differs in length from the text it covers (a `##` piece), for a
/// tokenizer that marks continuing pieces; otherwise when it does not follow a space.
pub(crate) fn tokens<'a>(
    window: &Encoding,
    probabilities: &'a [f32],
    classes: usize,
    chars: &[char],
    unk_id: Option<u32>,
    tokenizer: &Tokenizer,
) -> Vec<Token<'a>> {
    let marks_pieces = match tokenizer.get_model() {
        ModelWrapper::WordPiece(w) => !w.continuing_subword_prefix.is_empty(),
        ModelWrapper::BPE(b) => b.continuing_subword_prefix.is_some(),
        _ => false,
    };
    let mut out = Vec::new();
    for (i, (&id, &(start, end))) in window
        .get_ids()
        .iter()
        .zip(window.get_offsets())
        .enumerate()
    {
        if window
            .get_special_tokens_mask()
            .get(i)
            .copied()
            .unwrap_or(0)
            == 1
        {
            continue;
        }
        let (start, end) = (start.min(chars.len()), end.min(chars.len()));
        let word = tokenizer.id_to_token(id).unwrap_or_default();
        // An unknown token stands for the text itself: never a piece.
        let is_subword = Some(id) != unk_id
            && if marks_pieces {
                word.chars().count() != end.saturating_sub(start)
            } else {
                start > 0 && !chars[start - 1..(start + 1).min(chars.len())].contains(&' ')
            };
        out.push(Token {
            scores: &probabilities[i * classes..(i + 1) * classes],
            start,
            end,
            is_subword,
        });
    }
    out
}

/// The first largest score and its index (NumPy's `argmax`).
fn argmax(scores: &[f32]) -> (usize, f32) {
    scores
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
}

/// A labelled token or word before grouping.
struct Labelled {
    label: String,
    score: f32,
    start: usize,
    end: usize,
}

/// A window's entities (the `O` label's groups left out).
pub(crate) fn entities(
    tokens: &[Token],
    labels: &[String],
    aggregation: Aggregation,
) -> Vec<Entity> {
    let labelled: Vec<Labelled> = match aggregation {
        Aggregation::Simple => tokens
            .iter()
            .map(|t| {
                let (i, score) = argmax(t.scores);
                Labelled {
                    label: labels[i].clone(),
                    score,
                    start: t.start,
                    end: t.end,
                }
            })
            .collect(),
        _ => words(tokens)
            .into_iter()
            .map(|w| word_label(w, labels, aggregation))
            .collect(),
    };
    group(labelled)
        .into_iter()
        .filter(|e| e.label != "O")
        .collect()
}

/// Tokens grouped into words: a token and the sub-word pieces after it.
fn words<'t, 'a>(tokens: &'t [Token<'a>]) -> Vec<&'t [Token<'a>]> {
    let mut out = Vec::new();
    let mut from = 0;
    for i in 1..=tokens.len() {
        if i == tokens.len() || !tokens[i].is_subword {
            if i > from {
                out.push(&tokens[from..i]);
            }
            from = i;
        }
    }
    out
}

fn word_label(word: &[Token], labels: &[String], aggregation: Aggregation) -> Labelled {
    let (i, score) = match aggregation {
        Aggregation::First | Aggregation::Simple => argmax(word[0].scores),
        Aggregation::Max => {
            // The first token whose best score is the word's highest (Python's `max`).
            let mut best = &word[0];
            let mut best_score = argmax(best.scores).1;
            for t in &word[1..] {
                let m = argmax(t.scores).1;
                if m > best_score {
                    (best, best_score) = (t, m);
                }
            }
            argmax(best.scores)
        }
        Aggregation::Average => {
            let classes = word[0].scores.len();
            let mean: Vec<f32> = (0..classes)
                .map(|c| word.iter().map(|t| t.scores[c]).sum::<f32>() / word.len() as f32)
                .collect();
            argmax(&mean)
        }
    };
    Labelled {
        label: labels[i].clone(),
        score,
        start: word[0].start,
        end: word[word.len() - 1].end,
    }
}

/// `B-X` / `I-X` split into ("B" or "I", "X"); anything else is ("I", itself).
fn tag(label: &str) -> (&str, &str) {
    match label.split_at_checked(2) {
        Some(("B-", rest)) => ("B", rest),
        Some(("I-", rest)) => ("I", rest),
        _ => ("I", label),
    }
}

/// Consecutive tokens or words of one entity joined: same kind, and not a `B-` (which
/// starts a new one); the score is the members' mean.
fn group(labelled: Vec<Labelled>) -> Vec<Entity> {
    let mut out = Vec::new();
    let mut members: Vec<Labelled> = Vec::new();
    let close = |members: &mut Vec<Labelled>, out: &mut Vec<Entity>| {
        if members.is_empty() {
            return;
        }
        let label = tag(&members[0].label).1.to_string();
        let score = members.iter().map(|m| f64::from(m.score)).sum::<f64>() / members.len() as f64;
        out.push(Entity {
            label,
            score: score as f32,
            start: members[0].start,
            end: members[members.len() - 1].end,
            text: String::new(),
        });
        members.clear();
    };
    for l in labelled {
        if let Some(last) = members.last() {
            let (bi, kind) = tag(&l.label);
            if kind != tag(&last.label).1 || bi == "B" {
                close(&mut members, &mut out);
            }
        }
        members.push(l);
    }
    close(&mut members, &mut out);
    out
}

/// Entities of overlapping windows: sorted by start, an entity starting inside the one
/// before replaces it when longer, or as long with a higher score.
pub(crate) fn resolve_overlaps(mut entities: Vec<Entity>) -> Vec<Entity> {
    if entities.is_empty() {
        return entities;
    }
    entities.sort_by_key(|e| e.start);
    let mut out = Vec::new();
    let mut iter = entities.into_iter();
    let mut previous = iter.next().expect("not empty");
    for e in iter {
        if previous.start <= e.start && e.start < previous.end {
            let (len, previous_len) = (e.end - e.start, previous.end - previous.start);
            if len > previous_len || (len == previous_len && e.score > previous.score) {
                previous = e;
            }
        } else {
            out.push(std::mem::replace(&mut previous, e));
        }
    }
    out.push(previous);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["O", "B-NAME", "I-NAME", "B-CITY", "I-CITY"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn token<'a>(scores: &'a [f32], start: usize, end: usize, is_subword: bool) -> Token<'a> {
        Token {
            scores,
            start,
            end,
            is_subword,
        }
    }

    #[test]
    fn simple_joins_b_then_i_and_starts_again_at_b() {
        // "Ada Lovelace met Alan in Paris": B-NAME I-NAME O B-NAME O B-CITY.
        let s = [
            [0.1, 0.8, 0.1, 0.0, 0.0],
            [0.1, 0.1, 0.6, 0.1, 0.1],
            [0.9, 0.0, 0.1, 0.0, 0.0],
            [0.1, 0.7, 0.2, 0.0, 0.0],
            [0.9, 0.0, 0.0, 0.1, 0.0],
            [0.0, 0.0, 0.0, 1.0, 0.0],
        ];
        let spans = [(0, 3), (4, 12), (13, 16), (17, 21), (22, 24), (25, 30)];
        let tokens: Vec<Token> = s
            .iter()
            .zip(spans)
            .map(|(s, (a, b))| token(s, a, b, false))
            .collect();
        let found = entities(&tokens, &labels(), Aggregation::Simple);
        let got: Vec<(&str, usize, usize)> = found
            .iter()
            .map(|e| (e.label.as_str(), e.start, e.end))
            .collect();
        assert_eq!(
            got,
            vec![("NAME", 0, 12), ("NAME", 17, 21), ("CITY", 25, 30)]
        );
        assert!((found[0].score - 0.7).abs() < 1e-6);
    }

    #[test]
    fn word_strategies_label_a_word_by_its_first_best_or_mean_piece() {
        // One word in two pieces: the first says CITY weakly, the second NAME strongly.
        let s = [[0.2, 0.0, 0.0, 0.5, 0.3], [0.1, 0.0, 0.9, 0.0, 0.0]];
        let tokens = vec![token(&s[0], 0, 4, false), token(&s[1], 4, 8, true)];
        let one = |a| {
            let e = entities(&tokens, &labels(), a);
            assert_eq!(e.len(), 1, "{a:?}: {e:?}");
            (e[0].label.clone(), e[0].start, e[0].end)
        };
        assert_eq!(one(Aggregation::First), ("CITY".into(), 0, 8));
        assert_eq!(one(Aggregation::Max), ("NAME".into(), 0, 8));
        // Means: O 0.15, B-CITY 0.25, I-NAME 0.45.
        assert_eq!(one(Aggregation::Average), ("NAME".into(), 0, 8));
        // Simple keeps the pieces apart: B-CITY then I-NAME are two entities.
        assert_eq!(entities(&tokens, &labels(), Aggregation::Simple).len(), 2);
    }

    #[test]
    fn overlapping_windows_keep_the_longer_then_the_surer() {
        let e = |start, end, score| Entity {
            label: "NAME".into(),
            score,
            start,
            end,
            text: String::new(),
        };
        let kept = resolve_overlaps(vec![
            e(10, 20, 0.5),
            e(0, 4, 0.9),
            e(10, 25, 0.4),
            e(30, 35, 0.6),
            e(30, 35, 0.8),
        ]);
        let got: Vec<(usize, usize, f32)> =
            kept.iter().map(|e| (e.start, e.end, e.score)).collect();
        assert_eq!(got, vec![(0, 4, 0.9), (10, 25, 0.4), (30, 35, 0.8)]);
        assert_eq!(Aggregation::parse("max"), Some(Aggregation::Max));
        assert_eq!(Aggregation::parse("none"), None);
    }
}
