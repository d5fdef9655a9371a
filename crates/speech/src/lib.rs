//! Speech to text with OpenAI's Whisper: the encoder and decoder of candle-transformers
//! on weights converted from faster-whisper's CTranslate2 files at pull time
//! (aiaas-hub's ct2.rs), the log-mel input with Whisper's own filter bank (mel.rs), audio
//! decoded and resampled to 16 kHz mono (audio.rs), and the decoding loop here: 30-second
//! windows, greedy decoding without timestamps (this slice; timestamps, beam search and
//! temperature fallback come with the transcription API).

use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as w, model::Whisper, Config};
use tokenizers::Tokenizer;

pub mod audio;
pub mod mel;

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error("the audio cannot be decoded: {0}")]
    Decode(String),
    #[error("the audio is longer than the {0} s allowed")]
    TooLong(f64),
    #[error("{0}")]
    Model(String),
}

impl From<candle_core::Error> for SpeechError {
    fn from(e: candle_core::Error) -> Self {
        SpeechError::Model(e.to_string())
    }
}

/// What was said.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// Seconds of audio.
    pub duration: f64,
}

/// A loaded Whisper model.
pub struct Transcriber {
    model: Mutex<Whisper>,
    tokenizer: Tokenizer,
    config: Config,
    filters: Vec<f32>,
    sot: u32,
    eot: u32,
    no_timestamps: u32,
    /// Logits added at every step: minus infinity for tokens never emitted as text.
    suppress: Tensor,
}

/// Most tokens decoded per window (Whisper's `sample_len`).
const MAX_TOKENS: usize = 224;

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
        let device = Device::Cpu;
        // SAFETY: the file is ours (written by the pull, sealed in the model cache) and is
        // not modified while mapped.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &device,
            )?
        };
        let model = Whisper::load(&vb, config.clone())?;
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| SpeechError::Model(format!("the tokenizer has no {t}")))
        };
        let (sot, eot, no_timestamps) = (
            id(w::SOT_TOKEN)?,
            id(w::EOT_TOKEN)?,
            id(w::NO_TIMESTAMPS_TOKEN)?,
        );
        let vocab = config.vocab_size;
        let suppress: Vec<f32> = (0..vocab as u32)
            .map(|t| {
                // The configured suppressions, and every special token but the end
                // (timestamps included: this loop decodes without them).
                if config.suppress_tokens.contains(&t) || t > eot {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let suppress = Tensor::new(suppress.as_slice(), &device)?;
        Ok(Transcriber {
            model: Mutex::new(model),
            tokenizer,
            filters: mel::filters(w::SAMPLE_RATE, w::N_FFT, config.num_mel_bins),
            config,
            sot,
            eot,
            no_timestamps,
            suppress,
        })
    }

    /// Transcribe 16 kHz mono samples: each 30-second window decoded greedily, the texts
    /// joined.
    pub fn transcribe(&self, samples: &[f32]) -> Result<Transcript, SpeechError> {
        let duration = samples.len() as f64 / w::SAMPLE_RATE as f64;
        // Padded with 30 s of silence, as Whisper's own front end does, so every window
        // has 3000 frames.
        let mut padded = samples.to_vec();
        padded.extend(std::iter::repeat_n(0.0, w::N_SAMPLES));
        let mel = w::audio::pcm_to_mel(&self.config, &padded, &self.filters);
        let n_mels = self.config.num_mel_bins;
        let frames = mel.len() / n_mels;
        let mel = Tensor::from_vec(mel, (1, n_mels, frames), &Device::Cpu)?;
        let content = samples.len() / w::HOP_LENGTH;
        let mut model = self.model.lock().unwrap_or_else(|e| e.into_inner());
        let mut texts = Vec::new();
        let mut seek = 0;
        while seek < content.max(1) {
            let window = mel.narrow(2, seek, w::N_FRAMES.min(frames - seek))?;
            texts.push(self.decode_window(&mut model, &window)?);
            seek += w::N_FRAMES;
        }
        let text = texts
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Transcript { text, duration })
    }

    fn decode_window(&self, model: &mut Whisper, mel: &Tensor) -> Result<String, SpeechError> {
        let features = model.encoder.forward(mel, true)?;
        let mut tokens = vec![self.sot, self.no_timestamps];
        for i in 0..MAX_TOKENS {
            let input = Tensor::new(tokens.as_slice(), mel.device())?.unsqueeze(0)?;
            let ys = model.decoder.forward(&input, &features, i == 0)?;
            let (_, len, _) = ys.dims3()?;
            let logits = model
                .decoder
                .final_linear(&ys.i((..1, len - 1..))?)?
                .i(0)?
                .i(0)?;
            let logits = logits.broadcast_add(&self.suppress)?;
            let next = logits.argmax(0)?.to_scalar::<u32>()?;
            if next == self.eot {
                break;
            }
            tokens.push(next);
        }
        self.tokenizer
            .decode(&tokens[2..], true)
            .map_err(|e| SpeechError::Model(format!("decoding tokens: {e}")))
    }
}
