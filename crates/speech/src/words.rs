//! Word timestamps for a window's segments: the alignment pass over the window's text
//! (align.rs does the matrix, the path and the word grouping), then OpenAI's
//! corrections of over-long words and of the segments' bounds.

use crate::{align, generate, model, round2, Segment, SpeechError, Transcriber, Word};

/// Where a window is: its start (seconds), its frames of audio, its language.
pub(crate) struct WindowAt<'a> {
    pub offset: f64,
    pub frames: usize,
    pub language: &'a str,
}

/// OpenAI's corrections of a segment's first and last words: a first word after a
/// long pause is held to twice the median word, and the segment's bounds follow its
/// words unless a word runs half a second past them.
fn fit_words(
    seg: &mut Segment,
    words: &mut [Word],
    median: f64,
    max_duration: f64,
    last_speech: &mut f64,
) {
    if words.is_empty() {
        return;
    }
    let long_first = words[0].end - words[0].start > max_duration
        || (words.len() > 1 && words[1].end - words[0].start > max_duration * 2.0);
    if words[0].end - *last_speech > median * 4.0 && long_first {
        if words.len() > 1 && words[1].end - words[1].start > max_duration {
            let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
            words[0].end = boundary;
            words[1].start = boundary;
        }
        words[0].start = (words[0].end - max_duration).max(0.0);
    }
    if seg.start < words[0].end && seg.start - 0.5 > words[0].start {
        words[0].start = (words[0].end - median).min(seg.start).max(0.0);
    } else {
        seg.start = words[0].start;
    }
    let last = words.len() - 1;
    if seg.end > words[last].start && seg.end + 0.5 < words[last].end {
        words[last].end = (words[last].start + median).max(seg.end);
    } else {
        seg.end = words[last].end;
    }
    *last_speech = seg.end;
}

impl Transcriber {
    /// Word timestamps for one window's segments (OpenAI's `add_word_timestamps`):
    /// aligned on the window's audio, punctuation merged, over-long words clipped at
    /// sentence ends and pauses, the segments' bounds moved to their words'.
    pub(crate) fn add_words(
        &self,
        encoded: &model::DecoderState,
        segments: &mut [Segment],
        at: WindowAt,
        last_speech: &mut f64,
    ) -> Result<(), SpeechError> {
        let s = &self.specials;
        let per_segment: Vec<Vec<u32>> = segments
            .iter()
            .map(|seg| seg.tokens.iter().copied().filter(|&t| t < s.eot).collect())
            .collect();
        let text: Vec<u32> = per_segment.concat();
        if text.is_empty() {
            return Ok(());
        }
        let mut tokens = self.sot_sequence(at.language);
        let sot_len = tokens.len();
        tokens.push(s.no_timestamps);
        tokens.extend_from_slice(&text);
        tokens.push(s.eot);
        let (logits, scores) = self.model.align_pass(encoded, &tokens)?;
        let columns = (at.frames / 2).max(1);
        let rows = text.len() + 1;
        let mut heads = Vec::new();
        for (layer, head) in self.model.alignment_heads() {
            let Some(layer) = scores.get(layer) else {
                continue;
            };
            let m = layer
                .get(head)?
                .narrow(0, sot_len, rows)?
                .narrow(1, 0, columns)?;
            heads.push(m.flatten_all()?.to_vec1::<f32>()?);
        }
        if heads.is_empty() {
            return Ok(());
        }
        let matrix = align::alignment_matrix(&heads, rows, columns);
        let cost: Vec<f32> = matrix.iter().map(|v| -v).collect();
        let path = align::dtw(&cost, rows, columns);
        // Each text token's probability among the text tokens, where it was decoded.
        let eot = s.eot as usize;
        let probs: Vec<f32> = logits
            .narrow(0, sot_len, text.len())?
            .to_vec2::<f32>()?
            .iter()
            .zip(&text)
            .map(|(row, &t)| generate::log_softmax(&row[..eot])[t as usize].exp())
            .collect();
        let spaces = !matches!(at.language, "zh" | "ja" | "th" | "lo" | "my" | "yue");
        let words = align::words(self.pieces(&text)?, s.eot, spaces);
        let mut timed = align::word_times(&words, &path, &probs);
        let mut durations: Vec<f64> = timed
            .iter()
            .map(|w| w.end - w.start)
            .filter(|d| *d > 0.0)
            .collect();
        durations.sort_by(f64::total_cmp);
        let median = match durations.len() {
            0 => 0.0,
            n if n % 2 == 1 => durations[n / 2],
            n => (durations[n / 2 - 1] + durations[n / 2]) / 2.0,
        }
        .min(0.7);
        let max_duration = median * 2.0;
        if !durations.is_empty() {
            let sentence_end = |w: &str| !w.is_empty() && ".。!！?？".contains(w);
            for i in 1..timed.len() {
                if timed[i].end - timed[i].start > max_duration {
                    if sentence_end(&timed[i].word) {
                        timed[i].end = timed[i].start + max_duration;
                    } else if sentence_end(&timed[i - 1].word) {
                        timed[i].start = timed[i].end - max_duration;
                    }
                }
            }
        }
        align::merge_punctuation(&mut timed);
        let mut next = 0;
        for (seg, seg_tokens) in segments.iter_mut().zip(&per_segment) {
            let mut words = Vec::new();
            let mut taken = 0;
            while next < timed.len() && taken < seg_tokens.len() {
                let t = &timed[next];
                if !t.word.is_empty() {
                    words.push(Word {
                        word: t.word.clone(),
                        start: round2(at.offset + t.start),
                        end: round2(at.offset + t.end),
                        probability: t.probability,
                    });
                }
                taken += t.tokens.len();
                next += 1;
            }
            fit_words(seg, &mut words, median, max_duration, last_speech);
            seg.words = words;
        }
        Ok(())
    }

    /// Tokens grouped so that each group decodes to whole characters (byte-level BPE
    /// splits some characters over tokens).
    fn pieces(&self, tokens: &[u32]) -> Result<Vec<(String, Vec<u32>)>, SpeechError> {
        let decode = |group: &[u32]| {
            self.tokenizer
                .decode(group, false)
                .map_err(|e| SpeechError::Model(format!("decoding tokens: {e}")))
        };
        let mut out = Vec::new();
        let mut group = Vec::new();
        for &t in tokens {
            group.push(t);
            let text = decode(&group)?;
            if !text.contains('\u{FFFD}') {
                out.push((text, std::mem::take(&mut group)));
            }
        }
        if !group.is_empty() {
            out.push((decode(&group)?, group));
        }
        Ok(out)
    }
}
