//! Word timestamps, as OpenAI's Whisper (and faster-whisper after it) finds them: the
//! decoder is run once more over a window's text, the cross-attention of the model's
//! alignment heads (which attend to the audio a token was heard in) is normalised per
//! head and frame, median-filtered and averaged, and dynamic time warping finds the
//! monotonic path of tokens through the audio frames; a word starts where its first
//! token's path starts. Punctuation joins its neighbour word.

/// Audio frames per second in the encoder's output (two mel frames each).
pub const TOKENS_PER_SECOND: f64 = 50.0;

const PREPENDED: &str = "\"'“¿([{-";
const APPENDED: &str = "\"'.。,，!！?？:：”)]}、";
const MEDIAN_WIDTH: usize = 7;

/// A word and where it was heard (seconds from the window's start).
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// The alignment matrix from the heads' attention scores: `scores[h]` holds
/// `rows x frames` raw query-key products (rows: the positions that predict the text
/// tokens); each row is softmaxed over the window's frames, each head normalised per
/// frame across rows, median-filtered along frames, and the heads averaged.
pub fn alignment_matrix(scores: &[Vec<f32>], rows: usize, frames: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * frames];
    for head in scores {
        let mut w = head.clone();
        for row in w.chunks_exact_mut(frames) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for x in row.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            for x in row.iter_mut() {
                *x /= sum;
            }
        }
        for f in 0..frames {
            let column = (0..rows).map(|r| w[r * frames + f]);
            let mean = column.clone().sum::<f32>() / rows as f32;
            let var = column.map(|x| (x - mean) * (x - mean)).sum::<f32>() / rows as f32;
            let std = var.sqrt().max(1e-10);
            for r in 0..rows {
                w[r * frames + f] = (w[r * frames + f] - mean) / std;
            }
        }
        for (r, row) in w.chunks_exact(frames).enumerate() {
            let filtered = median_filter(row, MEDIAN_WIDTH);
            for (o, v) in out[r * frames..(r + 1) * frames].iter_mut().zip(filtered) {
                *o += v / scores.len() as f32;
            }
        }
    }
    out
}

/// Median over a window of `width` (odd) centred on each value, edges reflected.
fn median_filter(x: &[f32], width: usize) -> Vec<f32> {
    let half = width / 2;
    let n = x.len() as isize;
    if n <= half as isize {
        return x.to_vec();
    }
    let at = |i: isize| -> f32 {
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        x[j as usize]
    };
    let mut window = vec![0f32; width];
    (0..n)
        .map(|i| {
            for (k, w) in window.iter_mut().enumerate() {
                *w = at(i + k as isize - half as isize);
            }
            window.sort_by(f32::total_cmp);
            window[half]
        })
        .collect()
}

/// The cheapest monotonic path through `cost` (`rows x cols`) from the top-left to the
/// bottom-right corner, steps down, right or diagonal: (row, column) pairs in order.
pub fn dtw(cost: &[f32], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    let w = cols + 1;
    let mut acc = vec![f32::INFINITY; (rows + 1) * w];
    let mut trace = vec![0u8; (rows + 1) * w];
    acc[0] = 0.0;
    for j in 1..=cols {
        for i in 1..=rows {
            let (c0, c1, c2) = (
                acc[(i - 1) * w + j - 1],
                acc[(i - 1) * w + j],
                acc[i * w + j - 1],
            );
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[i * w + j] = cost[(i - 1) * cols + j - 1] + c;
            trace[i * w + j] = t;
        }
    }
    let (mut i, mut j) = (rows, cols);
    let mut path = Vec::new();
    while i > 0 || j > 0 {
        path.push((i.saturating_sub(1), j.saturating_sub(1)));
        let t = if i == 0 {
            2
        } else if j == 0 {
            1
        } else {
            trace[i * w + j]
        };
        match t {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

/// Group tokens into words: `pieces` are each token group's text (a group ends where
/// its bytes make whole characters) and tokens. With `spaces`, a word starts at a
/// piece beginning with a space, at punctuation and at special tokens (`>= eot`);
/// without (Chinese, Japanese, Thai, ...), every piece is a word.
pub fn words(pieces: Vec<(String, Vec<u32>)>, eot: u32, spaces: bool) -> Vec<(String, Vec<u32>)> {
    if !spaces {
        return pieces;
    }
    let mut out: Vec<(String, Vec<u32>)> = Vec::new();
    for (text, tokens) in pieces {
        let special = tokens.first().is_some_and(|&t| t >= eot);
        let trimmed = text.trim();
        let punctuation = !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_punctuation());
        match out.last_mut() {
            Some(last) if !special && !text.starts_with(' ') && !punctuation => {
                last.0.push_str(&text);
                last.1.extend(tokens);
            }
            _ => out.push((text, tokens)),
        }
    }
    out
}

/// Join punctuation to the word it belongs to: opening marks to the next word,
/// closing marks to the previous one (the joined-from entry is left empty).
pub fn merge_punctuation(words: &mut [WordTiming]) {
    if words.is_empty() {
        return;
    }
    let (mut i, mut j) = (words.len() as isize - 2, words.len() - 1);
    while i >= 0 {
        let p = i as usize;
        if words[p].word.starts_with(' ')
            && PREPENDED.contains(words[p].word.trim())
            && !words[p].word.trim().is_empty()
        {
            let (prev, next) = words.split_at_mut(j);
            let (prev, next) = (&mut prev[p], &mut next[0]);
            next.word = format!("{}{}", prev.word, next.word);
            let mut tokens = std::mem::take(&mut prev.tokens);
            tokens.append(&mut next.tokens);
            next.tokens = tokens;
            prev.word.clear();
        } else {
            j = p;
        }
        i -= 1;
    }
    let (mut i, mut j) = (0, 1);
    while j < words.len() {
        if !words[i].word.ends_with(' ')
            && !words[j].word.is_empty()
            && APPENDED.contains(words[j].word.as_str())
        {
            let (prev, next) = words.split_at_mut(j);
            let (prev, next) = (&mut prev[i], &mut next[0]);
            prev.word.push_str(&next.word);
            prev.tokens.append(&mut next.tokens);
            next.word.clear();
        } else {
            i = j;
        }
        j += 1;
    }
}

/// Words with their times from the alignment `path` over the text tokens (row `r` of
/// the path is text token `r`; the last row, the end token's, closes the last word)
/// and each token's probability.
pub fn word_times(
    words: &[(String, Vec<u32>)],
    path: &[(usize, usize)],
    token_probs: &[f32],
) -> Vec<WordTiming> {
    // The time each row is first reached.
    let mut jumps = Vec::new();
    let mut last_row = usize::MAX;
    for &(r, c) in path {
        if r != last_row {
            jumps.push(c as f64 / TOKENS_PER_SECOND);
            last_row = r;
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    for (word, tokens) in words {
        let end_at = at + tokens.len();
        let (Some(&start), Some(&end)) = (jumps.get(at), jumps.get(end_at)) else {
            break;
        };
        let probs = &token_probs[at.min(token_probs.len())..end_at.min(token_probs.len())];
        let probability = if probs.is_empty() {
            0.0
        } else {
            probs.iter().sum::<f32>() / probs.len() as f32
        };
        out.push(WordTiming {
            word: word.clone(),
            tokens: tokens.clone(),
            start,
            end,
            probability,
        });
        at = end_at;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtw_follows_the_cheap_diagonal() {
        // 3 rows x 6 columns, cheap cells along a staircase.
        let mut cost = vec![1.0f32; 18];
        for (r, c) in [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)] {
            cost[r * 6 + c] = 0.0;
        }
        let path = dtw(&cost, 3, 6);
        assert_eq!(path.first(), Some(&(0, 0)));
        assert_eq!(path.last(), Some(&(2, 5)));
        assert_eq!(path, vec![(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)]);
    }

    #[test]
    fn median_filter_reflects_at_the_edges() {
        let x = [5.0, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 7.0];
        let m = median_filter(&x, 3);
        assert_eq!(m, vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(median_filter(&[3.0, 2.0], 7), vec![3.0, 2.0]);
    }

    #[test]
    fn words_split_on_spaces_and_punctuation_then_merge() {
        let pieces = vec![
            (" Hello".to_string(), vec![1]),
            (",".to_string(), vec![2]),
            (" wor".to_string(), vec![3]),
            ("ld".to_string(), vec![4]),
            (".".to_string(), vec![5]),
            ("<eot>".to_string(), vec![99]),
        ];
        let w = words(pieces, 90, true);
        let texts: Vec<&str> = w.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(texts, [" Hello", ",", " world", ".", "<eot>"]);
        let mut timed: Vec<WordTiming> = w
            .iter()
            .enumerate()
            .map(|(i, (word, tokens))| WordTiming {
                word: word.clone(),
                tokens: tokens.clone(),
                start: i as f64,
                end: i as f64 + 1.0,
                probability: 1.0,
            })
            .collect();
        merge_punctuation(&mut timed);
        let texts: Vec<&str> = timed.iter().map(|x| x.word.as_str()).collect();
        assert_eq!(texts, [" Hello,", "", " world.", "", "<eot>"]);
        assert_eq!(timed[2].tokens, vec![3, 4, 5]);
    }

    #[test]
    fn word_times_start_where_their_first_token_is_reached() {
        // Rows 0..3 (two words of 1 and 2 tokens, then the end token).
        let path = [(0, 0), (0, 1), (1, 2), (2, 3), (2, 4), (3, 5)];
        let w = vec![(" a".to_string(), vec![7]), (" bc".to_string(), vec![8, 9])];
        let t = word_times(&w, &path, &[0.5, 1.0, 0.0]);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].start, t[0].end), (0.0, 2.0 / 50.0));
        assert_eq!((t[1].start, t[1].end), (2.0 / 50.0, 5.0 / 50.0));
        assert_eq!(t[1].probability, 0.5);
    }
}
