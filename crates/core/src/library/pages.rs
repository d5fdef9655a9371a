//! OCR on library models: pages (encoded images) in, each page's lines out. The images
//! are decoded off the async workers (transparent pixels laid over white, EXIF
//! orientation applied, a pixel bound checked before decoding), then read on the
//! model's runtime.

use aiaas_engine::ocr::Line;
use aiaas_engine::onnx::vision::{self, VisionError};
use aiaas_types::{Permission, Principal, Task};

use super::{runtime_key, Library};
use crate::auth::require;
use crate::privacy::{mask_lines, OutputMasking};
use crate::{CoreError, Result};

/// A page's full text: rows of lines joined by newlines, a row's lines by spaces.
pub fn page_text(lines: &[Line]) -> String {
    aiaas_engine::ocr::page_text(
        lines,
        aiaas_engine::ocr::OcrSettings::default().line_tolerance,
    )
}

/// Most pages in one request.
pub const MAX_PAGES_PER_REQUEST: usize = 16;

/// What an OCR model read.
#[derive(Debug, Clone)]
pub struct PageLines {
    pub model: String,
    /// Per page, in the order given: its lines in reading order.
    pub pages: Vec<Vec<Line>>,
}

impl Library {
    /// Read the text on `images` (PNG, JPEG, WebP or BMP bytes) with the OCR model `name`;
    /// the lines masked under the caller's output policy for it (`output`, from
    /// [`crate::Privacy::library_output_masking`]).
    pub async fn read_pages(
        &self,
        principal: &Principal,
        name: &str,
        images: Vec<Vec<u8>>,
        output: Option<OutputMasking>,
    ) -> Result<PageLines> {
        require(principal, Permission::Infer)?;
        let record = self.visible_library_model(principal, name).await?;
        if record.task != Task::Ocr {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} is a {} model; images are read by an ocr model (aiaas pull ppocr-v4)",
                record.name, record.task
            )));
        }
        if images.is_empty() || images.len() > MAX_PAGES_PER_REQUEST {
            return Err(CoreError::InvalidInput(format!(
                "give 1-{MAX_PAGES_PER_REQUEST} images per request, got {}",
                images.len()
            )));
        }
        let key = runtime_key(&record.name);
        // Refused under the queue policy before the decoding is paid for.
        self.inner.engine.check_queue_policy(&key)?;
        let pages = tokio::task::spawn_blocking(move || {
            images
                .iter()
                .enumerate()
                .map(|(i, bytes)| {
                    vision::decode_on_white(bytes, vision::MAX_PIXELS).map_err(|e| match e {
                        VisionError::TooLarge { .. } => {
                            CoreError::PayloadTooLarge(format!("images[{i}]: {e}"))
                        }
                        _ => CoreError::InvalidInput(format!("images[{i}]: {e}")),
                    })
                })
                .collect::<Result<Vec<_>>>()
        })
        .await??;
        let timeout = self.inner.config.load_timeout;
        self.ensure_library_loaded(&record, None, timeout).await?;
        self.inner.engine.touch(&key);
        let mut pages = self.inner.engine.read_pages(&key, pages).await?;
        if let Some(masking) = &output {
            mask_lines(masking, &mut pages).await?;
        }
        Ok(PageLines {
            model: record.name,
            pages,
        })
    }
}
