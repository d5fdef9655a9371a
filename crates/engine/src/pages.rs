//! OCR models in the engine: a page reader (`aiaas_ocr::Ocr`) behind a batch runtime,
//! so pages queue with a bound and a queue policy, run on the model's own thread, and
//! are counted like every other model's requests. A request is its decoded pages; a
//! page is a row.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use aiaas_ocr::{Line, Ocr, OcrSettings};
use aiaas_onnx::vision::RgbImage;

use crate::runtime::{BatchModel, BatchRuntime};
use crate::{folder_size, BatchSettings, Engine, EngineError, Entry, Runtime};

impl BatchModel for Ocr {
    type Input = Vec<RgbImage>;
    type Output = Vec<Vec<Line>>;
    fn rows(pages: &Vec<RgbImage>) -> usize {
        pages.len()
    }
    /// Every request's pages read together (as many at once as the model has
    /// instances), each request answered with its own.
    fn run(&self, requests: Vec<Vec<RgbImage>>) -> Vec<Result<Vec<Vec<Line>>, String>> {
        let counts: Vec<usize> = requests.iter().map(Vec::len).collect();
        let pages: Vec<RgbImage> = requests.into_iter().flatten().collect();
        let mut answers = self.read_pages(&pages).into_iter();
        counts
            .into_iter()
            .map(|n| {
                answers
                    .by_ref()
                    .take(n)
                    .map(|a| a.map_err(|e| e.to_string()))
                    .collect()
            })
            .collect()
    }
}

/// What `Engine::load_ocr` loads.
pub struct OcrLoad<'a> {
    pub runtime: &'a aiaas_onnx::Runtime,
    /// The model folder: `det.onnx`, `cls.onnx`, `rec.onnx`.
    pub dir: &'a Path,
    /// Intra-op threads per network (0: ONNX Runtime's default).
    pub threads: usize,
    /// Copies of the networks reading pages in parallel (at least one).
    pub instances: usize,
    pub settings: OcrSettings,
}

impl Engine {
    /// Load an OCR model and start its thread. Blocking.
    pub fn load_ocr(
        &self,
        key: &str,
        label: &str,
        load: OcrLoad<'_>,
        settings: BatchSettings,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        let ocr = Ocr::load(load.runtime, load.dir, load.threads, load.instances)
            .map_err(|e| EngineError::Load(e.to_string()))?
            .with_settings(load.settings);
        // ONNX Runtime's sessions hold the graphs and their prepared weights: about twice
        // the files.
        let memory = 2 * folder_size(load.dir);
        let runtime = BatchRuntime::start(label.to_string(), ocr, settings, self.metrics.clone());
        self.insert(key, Entry::new(Runtime::Ocr(Arc::new(runtime)), memory));
        self.loaded_event(label, "load", started.elapsed());
        Ok(())
    }

    /// Read pages on the OCR runtime under `key`: each page's lines in reading order.
    pub async fn read_pages(
        &self,
        key: &str,
        pages: Vec<RgbImage>,
    ) -> Result<Vec<Vec<Line>>, EngineError> {
        self.run_batch(key, pages, |r| match r {
            Runtime::Ocr(o) => Some(o.clone()),
            _ => None,
        })
        .await
    }
}
