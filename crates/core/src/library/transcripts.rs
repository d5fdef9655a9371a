//! Speech to text on library models: a recording (WAV, FLAC, MP3, OGG/Vorbis) decoded
//! and resampled off the async workers, then transcribed on the model's runtime with
//! the catalogue's decoding settings under what the request asks.

use aiaas_engine::speech::{audio, Options, SpeechError};
pub use aiaas_engine::speech::{Segment, Transcript, Word};
use aiaas_types::{Permission, Principal, Task};
use tokio::sync::mpsc::UnboundedSender;

use super::{runtime_key, Library};
use crate::auth::require;
use crate::privacy::{join_segments, mask_segments, mask_transcript, OutputMasking};
use crate::{CoreError, Result};

/// Longest recording accepted, in seconds (two hours).
pub const MAX_AUDIO_SECONDS: f64 = 2.0 * 3600.0;

/// What to transcribe and how.
#[derive(Debug, Default)]
pub struct TranscriptionRequest {
    /// The encoded recording.
    pub audio: Vec<u8>,
    /// ISO 639-1 code of the spoken language.
    pub language: Option<String>,
    /// Text the speech continues (names, spellings, style).
    pub prompt: Option<String>,
    /// 0 (or none): beam search, falling back to sampling at rising temperatures where
    /// a window fails; above 0: sampling at that temperature only.
    pub temperature: Option<f32>,
    /// Word timestamps too (each segment's words with their times).
    pub words: bool,
    /// Each segment as soon as it is decoded (streamed replies).
    pub segments: Option<UnboundedSender<Segment>>,
    /// The caller's output policy for this model
    /// ([`crate::Privacy::library_output_masking`]): segments are masked before they
    /// are sent or returned, and word timestamps refused.
    pub output: Option<OutputMasking>,
}

/// A transcript and the model that made it.
#[derive(Debug, Clone)]
pub struct Transcription {
    pub model: String,
    pub transcript: Transcript,
}

impl Library {
    /// Transcribe a recording with the speech model `name`.
    pub async fn transcribe(
        &self,
        principal: &Principal,
        name: &str,
        request: TranscriptionRequest,
    ) -> Result<Transcription> {
        require(principal, Permission::Infer)?;
        let record = self.visible_library_model(principal, name).await?;
        if record.task != Task::SpeechToText {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} is a {} model; audio is transcribed by a speech-to-text model (aiaas pull whisper-tiny-en)",
                record.name, record.task
            )));
        }
        let mut options = decoding_defaults(&record.defaults);
        options.language = request
            .language
            .map(|l| l.trim().to_ascii_lowercase())
            .filter(|l| !l.is_empty());
        options.prompt = request.prompt;
        if request.words && request.output.is_some() {
            return Err(CoreError::InvalidInput(
                "word timestamps are not available here: this model's transcripts are masked \
                 by a PII policy (a word-by-word mask would miss what spans words)"
                    .into(),
            ));
        }
        options.word_timestamps = request.words;
        match request.temperature {
            Some(t) if !(0.0..=1.0).contains(&t) => {
                return Err(CoreError::InvalidInput(format!(
                    "temperature must be between 0 and 1, got {t}"
                )))
            }
            Some(t) if t > 0.0 => options.temperatures = vec![t],
            _ => {}
        }
        let key = runtime_key(&record.name);
        // Refused under the queue policy before the decoding is paid for.
        self.inner.engine.check_queue_policy(&key)?;
        let bytes = request.audio;
        let samples = tokio::task::spawn_blocking(move || {
            audio::decode(&bytes, MAX_AUDIO_SECONDS).map_err(|e| match e {
                SpeechError::TooLong(_) => CoreError::PayloadTooLarge(e.to_string()),
                _ => CoreError::InvalidInput(e.to_string()),
            })
        })
        .await??;
        let timeout = self.inner.config.load_timeout;
        self.ensure_library_loaded(&record, None, timeout).await?;
        self.inner.engine.touch(&key);
        // With an output policy each decoded segment is masked on its way out, in order,
        // and kept for the transcript (each is read by the detectors once).
        let mut forwarder = None;
        let segments = match (request.segments, &request.output) {
            (Some(out), Some(masking)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Segment>();
                let masking = masking.clone();
                forwarder = Some(tokio::spawn(async move {
                    let mut masked = Vec::new();
                    while let Some(mut segment) = rx.recv().await {
                        mask_segments(&masking, std::slice::from_mut(&mut segment)).await?;
                        // The client left: dropping the receiver stops the transcription.
                        if out.send(segment.clone()).is_err() {
                            break;
                        }
                        masked.push(segment);
                    }
                    Ok::<_, CoreError>(masked)
                }));
                Some(tx)
            }
            (segments, _) => segments,
        };
        let mut transcript = self
            .inner
            .engine
            .transcribe(
                &key,
                aiaas_engine::SpeechRequest {
                    samples,
                    options,
                    segments,
                },
            )
            .await?;
        // Every masked segment is on its way out before the transcript is (the sender
        // went with the request), and the transcript is made of them.
        let streamed = match forwarder {
            Some(forwarder) => Some(forwarder.await??),
            None => None,
        };
        match (streamed, &request.output) {
            (Some(masked), _) if masked.len() == transcript.segments.len() => {
                transcript.segments = masked;
                join_segments(&mut transcript);
            }
            (_, Some(masking)) => mask_transcript(masking, &mut transcript).await?,
            (_, None) => {}
        }
        Ok(Transcription {
            model: record.name,
            transcript,
        })
    }
}

/// faster-whisper's decoding settings, as the catalogue (or a pull) recorded them.
fn decoding_defaults(defaults: &serde_json::Value) -> Options {
    let mut o = Options::default();
    let number = |k: &str| defaults.get(k).and_then(serde_json::Value::as_f64);
    let count = |k: &str| {
        number(k)
            .filter(|v| *v >= 1.0 && *v <= aiaas_engine::speech::MAX_BEAM as f64)
            .map(|v| v as usize)
    };
    if let Some(v) = count("beam_size") {
        o.beam_size = v;
    }
    if let Some(v) = count("best_of") {
        o.best_of = v;
    }
    if let Some(v) = number("compression_ratio_threshold").filter(|v| *v > 0.0) {
        o.compression_ratio_threshold = Some(v as f32);
    }
    if let Some(v) = number("log_prob_threshold").filter(|v| *v <= 0.0) {
        o.log_prob_threshold = Some(v as f32);
    }
    if let Some(v) = number("no_speech_threshold").filter(|v| (0.0..=1.0).contains(v)) {
        o.no_speech_threshold = Some(v as f32);
    }
    o
}
