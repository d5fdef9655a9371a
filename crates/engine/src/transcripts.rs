//! Speech recognisers in the engine: an `aiaas_speech::Transcriber` behind a batch
//! runtime, so requests queue with a bound and a queue policy and are counted like
//! every other model's. A request is one recording, transcribed alone (its windows
//! depend on each other); its segments can be handed out as they are decoded.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use aiaas_speech::{Options, Segment, Transcriber, Transcript};
use tokio::sync::mpsc::UnboundedSender;

use crate::runtime::{BatchModel, BatchRuntime};
use crate::{folder_size, BatchSettings, Engine, EngineError, Entry, Runtime};

/// One recording to transcribe.
pub struct SpeechRequest {
    /// 16 kHz mono samples.
    pub samples: Vec<f32>,
    pub options: Options,
    /// Where each segment goes as soon as it is decoded (a streamed reply); when the
    /// receiver is gone the transcription stops.
    pub segments: Option<UnboundedSender<Segment>>,
}

impl BatchModel for Arc<Transcriber> {
    type Input = SpeechRequest;
    type Output = Transcript;
    fn rows(_: &SpeechRequest) -> usize {
        1
    }
    fn run(&self, requests: Vec<SpeechRequest>) -> Vec<Result<Transcript, String>> {
        requests
            .into_iter()
            .map(|r| {
                let mut send = |s: &Segment| {
                    r.segments
                        .as_ref()
                        .is_none_or(|tx| tx.send(s.clone()).is_ok())
                };
                self.transcribe_with(&r.samples, &r.options, &mut send)
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}

impl Engine {
    /// Load a Whisper folder (`model.safetensors`, `config.json`, `tokenizer.json`).
    /// Blocking.
    pub fn load_transcriber(
        &self,
        key: &str,
        label: &str,
        dir: &Path,
        settings: BatchSettings,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        let model = Arc::new(Transcriber::load(dir).map_err(|e| EngineError::Load(e.to_string()))?);
        // The weights, read from their mapped file into candle's tensors.
        let memory = folder_size(dir);
        let runtime = BatchRuntime::start(
            label.to_string(),
            model.clone(),
            settings,
            self.metrics.clone(),
        );
        self.insert(
            key,
            Entry::new(Runtime::Speech(Arc::new(runtime), model), memory),
        );
        self.loaded_event(label, "load", started.elapsed());
        Ok(())
    }

    /// Transcribe on the speech model under `key`; options the model cannot honour
    /// (a language it does not know) are refused before the request queues.
    pub async fn transcribe(
        &self,
        key: &str,
        request: SpeechRequest,
    ) -> Result<Transcript, EngineError> {
        if let Some(entry) = self.get(key) {
            if let Runtime::Speech(_, model) = &entry.runtime {
                model
                    .check(&request.options)
                    .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
            }
        }
        self.run_batch(key, request, |r| match r {
            Runtime::Speech(s, _) => Some(s.clone()),
            _ => None,
        })
        .await
    }
}
