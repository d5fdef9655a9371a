//! Speech to text with OpenAI's Whisper on candle (model.rs: the decoder keeps its keys
//! and values between steps), on weights converted from faster-whisper's CTranslate2
//! files at pull time (aiaas-hub's ct2.rs). The front end and the decoding loop follow
//! faster-whisper's `transcribe` so that the same files give the same transcripts:
//! log-mel features of the whole clip (mel.rs), 30-second windows that seek to the last
//! complete timestamped segment, beam search at temperature 0 falling back to sampling
//! at rising temperatures when a window's text repeats itself (compression ratio) or is
//! improbable, windows of silence skipped (no-speech probability), and the text so far
//! as the next window's prompt.

use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::SeedableRng;
use tokenizers::Tokenizer;

mod align;
pub mod audio;
mod generate;
pub mod mel;
pub mod model;
mod words;

use generate::{Decoded, Rules, Search, Specials};
use model::{Config, Whisper};
use words::WindowAt;

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error("the audio cannot be decoded: {0}")]
    Decode(String),
    #[error("the audio is longer than the {0} s allowed")]
    TooLong(f64),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Model(String),
    #[error("the transcription was cancelled")]
    Cancelled,
}

impl From<candle_core::Error> for SpeechError {
    fn from(e: candle_core::Error) -> Self {
        SpeechError::Model(e.to_string())
    }
}

/// Whisper's audio constants: 16 kHz, a frame every 10 ms, 30-second windows, a
/// timestamp step of 20 ms (two frames).
pub const SAMPLE_RATE: usize = audio::SAMPLE_RATE as usize;
const HOP: usize = 160;
const N_FFT: usize = 400;
const WINDOW_FRAMES: usize = 3000;
const FRAME_SECONDS: f64 = HOP as f64 / SAMPLE_RATE as f64;
const TIME_PRECISION: f64 = 0.02;
/// Largest beam (and number of samples) a request may ask for.
pub const MAX_BEAM: usize = 10;

/// How to transcribe (faster-whisper's defaults).
#[derive(Debug, Clone)]
pub struct Options {
    /// ISO 639-1 code; `None` detects it (multilingual models) or is English.
    pub language: Option<String>,
    /// Text that precedes the audio: names, spellings, style.
    pub prompt: Option<String>,
    /// Tried in order while a window's decoding fails the checks below.
    pub temperatures: Vec<f32>,
    pub beam_size: usize,
    pub best_of: usize,
    pub patience: f32,
    pub compression_ratio_threshold: Option<f32>,
    pub log_prob_threshold: Option<f32>,
    pub no_speech_threshold: Option<f32>,
    pub condition_on_previous_text: bool,
    /// Segment timestamps; without them each window is one segment.
    pub timestamps: bool,
    /// Word timestamps (cross-attention alignment); the next window then starts after
    /// the last word heard, as faster-whisper does.
    pub word_timestamps: bool,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            language: None,
            prompt: None,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            beam_size: 5,
            best_of: 5,
            patience: 1.0,
            compression_ratio_threshold: Some(2.4),
            log_prob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            timestamps: true,
            word_timestamps: false,
            seed: 0,
        }
    }
}

/// A stretch of speech with its times (seconds from the start of the audio).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Segment {
    pub id: usize,
    /// The frame (10 ms) the window that produced it started at.
    pub seek: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// With `word_timestamps`: the segment's words (punctuation joined to them).
    pub words: Vec<Word>,
}

/// A word and when it was said (seconds from the start of the audio).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Word {
    /// As decoded: with its leading space, punctuation attached.
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// What was said.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub language: String,
    /// Seconds of audio.
    pub duration: f64,
    pub segments: Vec<Segment>,
}

/// A loaded Whisper model.
pub struct Transcriber {
    model: Whisper,
    tokenizer: Tokenizer,
    features: mel::Features,
    specials: Specials,
    suppress: Vec<u32>,
    begin_suppress: Vec<u32>,
    multilingual: bool,
}

impl Transcriber {
    /// Load a model folder: `model.safetensors`, `config.json`, `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Transcriber, SpeechError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| SpeechError::Model(format!("cannot read {name}: {e}")))
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| SpeechError::Model(format!("config.json: {e}")))?;
        let tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| SpeechError::Model(format!("tokenizer.json: {e}")))?;
        // SAFETY: the file is ours (written by the pull, sealed in the model cache) and is
        // not modified while mapped.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &Device::Cpu,
            )?
        };
        let id = |t: &str| tokenizer.token_to_id(t);
        let need =
            |t: &str| id(t).ok_or_else(|| SpeechError::Model(format!("the tokenizer has no {t}")));
        let no_timestamps = need("<|notimestamps|>")?;
        let languages = tokenizer
            .get_added_vocabulary()
            .get_vocab()
            .iter()
            .filter_map(|(t, &i)| {
                let code = t.strip_prefix("<|")?.strip_suffix("|>")?;
                let is_code = (2..=3).contains(&code.len())
                    && code.chars().all(|c| c.is_ascii_lowercase())
                    || code == "haw"
                    || code == "yue";
                is_code.then(|| (code.to_string(), i))
            })
            .collect();
        let specials = Specials {
            eot: need("<|endoftext|>")?,
            sot: need("<|startoftranscript|>")?,
            sot_prev: need("<|startofprev|>")?,
            no_speech: id("<|nospeech|>").or_else(|| id("<|nocaptions|>")),
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            transcribe: need("<|transcribe|>")?,
            languages,
        };
        // faster-whisper's suppressions: the model's non-speech symbols and every
        // special token that is not text.
        let mut suppress = config.suppress_tokens.clone();
        for t in [
            id("<|transcribe|>"),
            id("<|translate|>"),
            Some(specials.sot),
            Some(specials.sot_prev),
            id("<|startoflm|>"),
            specials.no_speech,
        ]
        .into_iter()
        .flatten()
        {
            suppress.push(t);
        }
        suppress.retain(|&t| (t as usize) < config.vocab_size);
        suppress.sort_unstable();
        suppress.dedup();
        let mut begin_suppress = config.begin_suppress_tokens.clone();
        if begin_suppress.is_empty() {
            begin_suppress = tokenizer
                .encode(" ", false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default();
            begin_suppress.push(specials.eot);
        }
        let multilingual = config.vocab_size >= 51865;
        let features = mel::Features::new(SAMPLE_RATE, N_FFT, HOP, config.num_mel_bins);
        let model = Whisper::load(vb, config)?;
        Ok(Transcriber {
            model,
            tokenizer,
            features,
            specials,
            suppress,
            begin_suppress,
            multilingual,
        })
    }

    /// Whether the model knows languages other than English.
    pub fn multilingual(&self) -> bool {
        self.multilingual
    }

    /// Refuse options the model cannot honour: a language it does not know, a beam or
    /// sample count out of bounds, a temperature out of [0, 1].
    pub fn check(&self, options: &Options) -> Result<(), SpeechError> {
        if let Some(l) = &options.language {
            let known = if self.multilingual {
                self.specials.languages.iter().any(|(c, _)| c == l)
            } else {
                l == "en"
            };
            if !known {
                return Err(SpeechError::Invalid(if self.multilingual {
                    format!("the model does not know the language {l:?}")
                } else {
                    format!("this model transcribes English only, not {l:?}")
                }));
            }
        }
        if !(1..=MAX_BEAM).contains(&options.beam_size)
            || !(1..=MAX_BEAM).contains(&options.best_of)
        {
            return Err(SpeechError::Invalid(format!(
                "beam_size and best_of must be 1-{MAX_BEAM}"
            )));
        }
        if options
            .temperatures
            .iter()
            .any(|t| !(0.0..=1.0).contains(t))
        {
            return Err(SpeechError::Invalid(
                "temperature must be between 0 and 1".into(),
            ));
        }
        Ok(())
    }

    /// Transcribe 16 kHz mono samples.
    pub fn transcribe(
        &self,
        samples: &[f32],
        options: &Options,
    ) -> Result<Transcript, SpeechError> {
        self.transcribe_with(samples, options, &mut |_| true)
    }

    /// Transcribe, handing each segment to `on_segment` as soon as it is decoded; it
    /// returns false to stop (the listener left).
    pub fn transcribe_with(
        &self,
        samples: &[f32],
        options: &Options,
        on_segment: &mut dyn FnMut(&Segment) -> bool,
    ) -> Result<Transcript, SpeechError> {
        let duration = samples.len() as f64 / SAMPLE_RATE as f64;
        let (features, frames) = self.features.compute(samples);
        let n_mels = self.model.config.num_mel_bins;
        let content = frames.saturating_sub(1);
        let s = &self.specials;
        let mut all_tokens: Vec<u32> = match &options.prompt {
            Some(p) if !p.trim().is_empty() => self
                .tokenizer
                .encode(format!(" {}", p.trim()), false)
                .map_err(|e| SpeechError::Invalid(format!("the prompt: {e}")))?
                .get_ids()
                .to_vec(),
            _ => Vec::new(),
        };
        self.check(options)?;
        let mut language = options.language.clone();
        let rules = Rules {
            specials: s,
            suppress: &self.suppress,
            begin_suppress: &self.begin_suppress,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
        let mut segments: Vec<Segment> = Vec::new();
        let mut prompt_reset_since = 0;
        let mut seek = 0;
        let mut last_speech = 0.0;
        while seek < content {
            let time_offset = seek as f64 * FRAME_SECONDS;
            let size = WINDOW_FRAMES.min(content - seek);
            let mut window = vec![0f32; n_mels * WINDOW_FRAMES];
            for m in 0..n_mels {
                window[m * WINDOW_FRAMES..m * WINDOW_FRAMES + size]
                    .copy_from_slice(&features[m * frames + seek..m * frames + seek + size]);
            }
            let mel = Tensor::from_vec(window, (1, n_mels, WINDOW_FRAMES), &Device::Cpu)?;
            let encoded = self.model.encode(&mel)?;
            if self.multilingual && language.is_none() {
                language = Some(self.detect_language(&encoded)?);
            }
            let lang = language.clone().unwrap_or_else(|| "en".into());
            let mut prompt = Vec::new();
            let previous = &all_tokens[prompt_reset_since..];
            if !previous.is_empty() {
                prompt.push(s.sot_prev);
                let max = self.model.config.max_target_positions / 2 - 1;
                prompt.extend_from_slice(&previous[previous.len().saturating_sub(max)..]);
            }
            let sot_at = prompt.len();
            prompt.extend(self.sot_sequence(&lang));
            if !options.timestamps {
                prompt.push(s.no_timestamps);
            }
            let max_new = self
                .model
                .config
                .max_target_positions
                .saturating_sub(prompt.len());
            let (decoded, avg_logprob, temperature, compression_ratio) = self.with_fallback(
                &encoded, &prompt, sot_at, &rules, options, max_new, &mut rng,
            )?;
            if let Some(threshold) = options.no_speech_threshold {
                let unsure = options.log_prob_threshold.is_none_or(|l| avg_logprob <= l);
                if decoded.no_speech_prob > threshold && unsure {
                    seek += size;
                    continue;
                }
            }
            let previous_seek = seek;
            let Split {
                pieces,
                next,
                single_ending,
            } = self.split(&decoded.tokens, time_offset, size, seek);
            seek = next;
            let mut fresh = Vec::new();
            for (start, end, tokens) in pieces {
                let text = self.text(&tokens)?;
                if start == end || text.trim().is_empty() {
                    continue;
                }
                fresh.push(Segment {
                    id: segments.len() + fresh.len(),
                    seek: previous_seek,
                    start: round2(start),
                    end: round2(end),
                    text,
                    tokens,
                    temperature,
                    avg_logprob,
                    compression_ratio,
                    no_speech_prob: decoded.no_speech_prob,
                    words: Vec::new(),
                });
            }
            if options.word_timestamps && !fresh.is_empty() {
                let at = WindowAt {
                    offset: time_offset,
                    frames: size,
                    language: &lang,
                };
                self.add_words(&encoded, &mut fresh, at, &mut last_speech)?;
                let last_word_end = fresh
                    .iter()
                    .rev()
                    .find_map(|s| s.words.last())
                    .map(|w| w.end);
                if let Some(end) = last_word_end.filter(|e| !single_ending && *e > time_offset) {
                    seek = (end / FRAME_SECONDS).round() as usize;
                }
            }
            for mut segment in fresh {
                segment.end = segment.end.min(duration).max(segment.start);
                all_tokens.extend_from_slice(&segment.tokens);
                if !on_segment(&segment) {
                    return Err(SpeechError::Cancelled);
                }
                segments.push(segment);
            }
            if !options.condition_on_previous_text || temperature > 0.5 {
                prompt_reset_since = all_tokens.len();
            }
        }
        let text = segments.iter().map(|s| s.text.as_str()).collect::<String>();
        Ok(Transcript {
            text: text.trim().to_string(),
            language: language.unwrap_or_else(|| "en".into()),
            duration,
            segments,
        })
    }

    /// Decode a window at each temperature in turn until one passes the checks.
    #[allow(clippy::too_many_arguments)]
    fn with_fallback(
        &self,
        encoded: &model::DecoderState,
        prompt: &[u32],
        sot_at: usize,
        rules: &Rules,
        options: &Options,
        max_new: usize,
        rng: &mut rand::rngs::StdRng,
    ) -> Result<(Decoded, f32, f32, f32), SpeechError> {
        let mut all = Vec::new();
        let mut below_ratio = Vec::new();
        let temperatures = if options.temperatures.is_empty() {
            vec![0.0]
        } else {
            options.temperatures.clone()
        };
        for &temperature in &temperatures {
            let search = Search {
                temperature,
                beam_size: options.beam_size,
                patience: options.patience,
                best_of: options.best_of,
                timestamps: options.timestamps,
                max_initial_timestamp: (1.0 / TIME_PRECISION).round() as u32,
            };
            let d = generate::generate(
                &self.model,
                encoded,
                prompt,
                sot_at,
                rules,
                &search,
                max_new,
                rng,
            )?;
            let avg = d.sum_logprob / (d.tokens.len() + 1) as f32;
            let text = self.text(&d.tokens)?;
            let ratio = compression_ratio(text.trim());
            let mut fallback = false;
            if let Some(limit) = options.compression_ratio_threshold {
                if ratio > limit {
                    fallback = true;
                } else {
                    below_ratio.push((d.clone(), avg, temperature, ratio));
                }
            }
            if options.log_prob_threshold.is_some_and(|l| avg < l) {
                fallback = true;
            }
            if let (Some(ns), Some(l)) = (options.no_speech_threshold, options.log_prob_threshold) {
                if d.no_speech_prob > ns && avg < l {
                    fallback = false;
                }
            }
            if !fallback {
                return Ok((d, avg, temperature, ratio));
            }
            all.push((d, avg, temperature, ratio));
        }
        let last = *temperatures.last().expect("one temperature");
        let pool = if below_ratio.is_empty() {
            all
        } else {
            below_ratio
        };
        let (d, avg, _, ratio) = pool
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("one decoding");
        Ok((d, avg, last, ratio))
    }

    /// The language whose token is likeliest after the start of transcript.
    fn detect_language(&self, encoded: &model::DecoderState) -> Result<String, SpeechError> {
        let mut state = encoded.fork();
        let input = Tensor::new(&[self.specials.sot], &Device::Cpu)?.unsqueeze(0)?;
        let logits = self
            .model
            .decode(&mut state, &input)?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        Ok(self
            .specials
            .languages
            .iter()
            .max_by(|a, b| logits[a.1 as usize].total_cmp(&logits[b.1 as usize]))
            .map(|(c, _)| c.clone())
            .unwrap_or_else(|| "en".into()))
    }

    /// Split a window's tokens at its timestamp pairs into (start, end, tokens) and
    /// say where the next window starts: after the window when it ended on a single
    /// timestamp (or had none), else at the last complete segment's end.
    fn split(&self, tokens: &[u32], time_offset: f64, size: usize, seek: usize) -> Split {
        let tb = self.specials.timestamp_begin;
        let at = |t: u32| time_offset + f64::from(t - tb) * TIME_PRECISION;
        let single_ending =
            tokens.len() >= 2 && tokens[tokens.len() - 2] < tb && tokens[tokens.len() - 1] >= tb;
        let consecutive: Vec<usize> = (1..tokens.len())
            .filter(|&i| tokens[i] >= tb && tokens[i - 1] >= tb)
            .collect();
        if consecutive.is_empty() {
            let mut duration = size as f64 * FRAME_SECONDS;
            if let Some(&last) = tokens.iter().rev().find(|&&t| t >= tb) {
                if last != tb {
                    duration = f64::from(last - tb) * TIME_PRECISION;
                }
            }
            let start = time_offset;
            return Split {
                pieces: vec![(start, start + duration, tokens.to_vec())],
                next: seek + size,
                single_ending,
            };
        }
        let mut slices = consecutive;
        if single_ending {
            slices.push(tokens.len());
        }
        let mut pieces = Vec::new();
        let mut from = 0;
        for &to in &slices {
            let piece = &tokens[from..to];
            pieces.push((at(piece[0]), at(piece[piece.len() - 1]), piece.to_vec()));
            from = to;
        }
        let next = if single_ending {
            seek + size
        } else {
            // Timestamps step two frames.
            seek + (tokens[from - 1] - tb) as usize * 2
        };
        Split {
            pieces,
            next,
            single_ending,
        }
    }

    /// The start of transcript, with the language and task on multilingual models.
    fn sot_sequence(&self, language: &str) -> Vec<u32> {
        let s = &self.specials;
        let mut out = vec![s.sot];
        if self.multilingual {
            out.extend(s.languages.iter().find(|(c, _)| c == language).map(|x| x.1));
            out.push(s.transcribe);
        }
        out
    }

    /// The text of tokens, timestamps and special tokens left out.
    fn text(&self, tokens: &[u32]) -> Result<String, SpeechError> {
        let text: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.specials.eot)
            .collect();
        self.tokenizer
            .decode(&text, true)
            .map_err(|e| SpeechError::Model(format!("decoding tokens: {e}")))
    }
}

/// A window's tokens split at their timestamps: (start, end, tokens) per segment,
/// where the next window starts, and whether the window ended on a lone timestamp.
struct Split {
    pieces: Vec<(f64, f64, Vec<u32>)>,
    next: usize,
    single_ending: bool,
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Bytes of text over bytes of its zlib compression: high for text that repeats
/// itself, Whisper's sign of a decoding stuck in a loop.
pub fn compression_ratio(text: &str) -> f32 {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(text.as_bytes()).expect("writes to memory");
    let packed = z.finish().expect("writes to memory");
    text.len() as f32 / packed.len().max(1) as f32
}
