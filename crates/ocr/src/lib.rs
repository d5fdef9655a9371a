//! Optical character recognition with PaddleOCR's models (PP-OCR: a DB text detector, a
//! direction classifier, a CTC recogniser) on ONNX Runtime, the pipeline in Rust:
//!
//! 1. the page bounded (longest side at most 2000 px, shortest at least 30, both
//!    multiples of 32) and, when it is a thin strip, padded above and below;
//! 2. detection (detect.rs): text boxes in reading order (top to bottom, left to right,
//!    boxes whose tops are within 10 px on one line);
//! 3. recognition (recognise.rs): each box cut out upright, turned round when the angle
//!    classifier says it is upside down, read by the recogniser, kept when its score
//!    reaches `text_score`;
//! 4. boxes mapped back to the page's pixels.
//!
//! The steps, their constants and their order are RapidOCR's (`rapidocr-onnxruntime`,
//! the Python package people run these models with), so a page gives the lines it gives.

use std::path::Path;

use aiaas_onnx::vision::{cv, geometry};
use aiaas_onnx::{OnnxError, OnnxModel, Runtime};
use image::RgbImage;
use serde::Serialize;

mod detect;
mod recognise;

pub use detect::Quad;

/// The model files of an OCR model folder.
pub const DETECTOR_FILE: &str = "det.onnx";
pub const CLASSIFIER_FILE: &str = "cls.onnx";
pub const RECOGNISER_FILE: &str = "rec.onnx";

#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("{0}")]
    Model(String),
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The pipeline's constants (RapidOCR's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct OcrSettings {
    /// The detector's input: the shorter side resized up to this.
    pub limit_side: u32,
    /// Probability above which a pixel is text.
    pub threshold: f32,
    /// Mean probability a box needs.
    pub box_threshold: f32,
    /// How far a found region is grown back (area x ratio / perimeter).
    pub unclip_ratio: f64,
    /// Boxes with a shorter side below this (detector pixels) are dropped.
    pub min_box_side: f64,
    /// Regions considered per page.
    pub max_candidates: usize,
    /// The angle classifier's certainty needed to turn a line round.
    pub cls_threshold: f32,
    pub cls_batch: usize,
    pub rec_batch: usize,
    /// Lines read with a lower score are dropped.
    pub text_score: f32,
    /// The page's bounds before detection.
    pub max_side: u32,
    pub min_side: u32,
    /// Pages this high or less, or wider than `strip_ratio` times their height, are
    /// padded above and below.
    pub min_height: u32,
    pub strip_ratio: f64,
    /// Boxes whose tops are this close (pixels) are on one line.
    pub line_tolerance: f64,
}

impl Default for OcrSettings {
    fn default() -> Self {
        OcrSettings {
            limit_side: 736,
            threshold: 0.3,
            box_threshold: 0.5,
            unclip_ratio: 1.6,
            min_box_side: 3.0,
            max_candidates: 1000,
            cls_threshold: 0.9,
            cls_batch: 6,
            rec_batch: 6,
            text_score: 0.5,
            max_side: 2000,
            min_side: 30,
            min_height: 30,
            strip_ratio: 8.0,
            line_tolerance: 10.0,
        }
    }
}

/// One line of text found on a page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub text: String,
    /// The recogniser's mean score over the line's characters, 0-1.
    pub confidence: f32,
    /// The box's corners in the page's pixels: top-left, top-right, bottom-right,
    /// bottom-left.
    #[serde(rename = "box")]
    pub quad: [[f32; 2]; 4],
}

/// One copy of the three networks (each with its own ONNX Runtime sessions).
struct Networks {
    detector: OnnxModel,
    classifier: OnnxModel,
    recogniser: OnnxModel,
}

/// A loaded OCR model: its instances of the three networks and the recogniser's
/// dictionary.
pub struct Ocr {
    /// Pages are read in parallel, one per instance (Triton's instance group): on a CPU,
    /// two single-threaded instances read more pages a second than one instance with two
    /// threads (whose operators do not all spread over both), one instance with every
    /// thread reads a lone page soonest.
    instances: Vec<Networks>,
    dictionary: Vec<String>,
    settings: OcrSettings,
}

impl Ocr {
    /// Load a model folder (`det.onnx`, `cls.onnx`, `rec.onnx`; the dictionary is the
    /// recogniser's `character` metadata, one entry per line) as `instances` copies (at
    /// least one), each network with `threads` intra-op threads (0: ONNX Runtime's
    /// default, one per core).
    pub fn load(
        runtime: &Runtime,
        dir: &Path,
        threads: usize,
        instances: usize,
    ) -> Result<Ocr, OcrError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| OcrError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        let (det, cls, rec) = (
            read(DETECTOR_FILE)?,
            read(CLASSIFIER_FILE)?,
            read(RECOGNISER_FILE)?,
        );
        let instances = (0..instances.max(1))
            .map(|_| {
                Ok(Networks {
                    detector: OnnxModel::load(runtime, &det, threads)?,
                    classifier: OnnxModel::load(runtime, &cls, threads)?,
                    recogniser: OnnxModel::load(runtime, &rec, threads)?,
                })
            })
            .collect::<Result<Vec<_>, OcrError>>()?;
        let characters = instances[0]
            .recogniser
            .custom_metadata("character")
            .ok_or_else(|| {
                OcrError::Model(
                    "the recogniser has no `character` dictionary in its metadata".into(),
                )
            })?;
        let dictionary = python_lines(&characters);
        if dictionary.is_empty() {
            return Err(OcrError::Model(
                "the recogniser's dictionary is empty".into(),
            ));
        }
        Ok(Ocr {
            instances,
            dictionary,
            settings: OcrSettings::default(),
        })
    }

    /// The same model with other settings.
    pub fn with_settings(mut self, settings: OcrSettings) -> Ocr {
        self.settings = settings;
        self
    }

    pub fn settings(&self) -> &OcrSettings {
        &self.settings
    }

    /// Characters the recogniser knows.
    pub fn dictionary_len(&self) -> usize {
        self.dictionary.len()
    }

    /// Read a page: its lines in reading order.
    pub fn read(&self, page: &RgbImage) -> Result<Vec<Line>, OcrError> {
        self.read_on(&self.instances[0], page)
    }

    /// Read pages, as many at once as there are instances; answers in the pages' order.
    pub fn read_pages(&self, pages: &[RgbImage]) -> Vec<Result<Vec<Line>, OcrError>> {
        let workers = self.instances.len().min(pages.len());
        if workers <= 1 {
            return pages.iter().map(|p| self.read(p)).collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut answers: Vec<Option<Result<Vec<Line>, OcrError>>> =
            pages.iter().map(|_| None).collect();
        let done = std::sync::Mutex::new(&mut answers);
        std::thread::scope(|scope| {
            for networks in &self.instances[..workers] {
                let (next, done) = (&next, &done);
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(page) = pages.get(i) else { break };
                    let answer = self.read_on(networks, page);
                    done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(answer);
                });
            }
        });
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(OcrError::Model("a page was not read".into()))))
            .collect()
    }

    fn read_on(&self, n: &Networks, page: &RgbImage) -> Result<Vec<Line>, OcrError> {
        let s = &self.settings;
        let (raw_w, raw_h) = page.dimensions();
        let (img, ratio) = bound(page, s);
        let (img, top) = pad_strip(img, s);
        let quads = detect::detect(&n.detector, &img, s)?;
        let quads: Vec<Quad> = {
            let order = geometry::reading_order(&quads, s.line_tolerance);
            order.into_iter().map(|i| quads[i]).collect()
        };
        let mut crops = Vec::with_capacity(quads.len());
        let mut kept = Vec::with_capacity(quads.len());
        for q in &quads {
            if let Some(c) = recognise::crop(&img, q) {
                crops.push(c);
                kept.push(*q);
            }
        }
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        recognise::upright(&n.classifier, &mut crops, s)?;
        let texts = recognise::read(&n.recogniser, &self.dictionary, &crops, s)?;
        let back = |p: (f64, f64)| {
            let x = (p.0 * ratio.0).clamp(0.0, f64::from(raw_w));
            let y = ((p.1 - f64::from(top)) * ratio.1).clamp(0.0, f64::from(raw_h));
            [x as f32, y as f32]
        };
        Ok(kept
            .iter()
            .zip(texts)
            .filter(|(_, (_, score))| *score >= s.text_score)
            .map(|(q, (text, confidence))| Line {
                text,
                confidence,
                quad: q.map(back),
            })
            .collect())
    }
}

/// A page's text: its lines in reading order, those on one row (tops within
/// `line_tolerance` pixels) joined by a space, rows by a newline.
pub fn page_text(lines: &[Line], line_tolerance: f64) -> String {
    let mut text = String::new();
    let mut previous_top: Option<f32> = None;
    for line in lines {
        let top = line.quad[0][1];
        if let Some(p) = previous_top {
            let same_row = f64::from((top - p).abs()) < line_tolerance;
            text.push(if same_row { ' ' } else { '\n' });
        }
        text.push_str(&line.text);
        previous_top = Some(top);
    }
    text
}

/// Lines as Python's `str.splitlines` splits them.
fn python_lines(text: &str) -> Vec<String> {
    let breaks = [
        '\n', '\r', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\u{85}', '\u{2028}', '\u{2029}',
    ];
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(breaks) {
            Some(i) => {
                out.push(rest[..i].to_string());
                let skip = if rest[i..].starts_with("\r\n") {
                    2
                } else {
                    rest[i..].chars().next().map_or(1, char::len_utf8)
                };
                rest = &rest[i + skip..];
            }
            None => {
                out.push(rest.to_string());
                break;
            }
        }
    }
    out
}

/// The page resized, when it must be, so its longest side is at most `max_side` and its
/// shortest at least `min_side` (each side then rounded to a multiple of 32). Gives the
/// factors from the resized page back to the page's pixels.
fn bound(page: &RgbImage, s: &OcrSettings) -> (RgbImage, (f64, f64)) {
    let mut img = page.clone();
    let mut ratio = (1.0, 1.0);
    let resize = |img: &RgbImage, r: f64| -> Option<(RgbImage, (f64, f64))> {
        let (w, h) = img.dimensions();
        let to32 =
            |v: u32| (((f64::from(v) * r) as u32 as f64 / 32.0).round_ties_even() * 32.0) as u32;
        let (rw, rh) = (to32(w), to32(h));
        (rw > 0 && rh > 0).then(|| {
            (
                cv::resize_linear(img, rw, rh),
                (f64::from(h) / f64::from(rh), f64::from(w) / f64::from(rw)),
            )
        })
    };
    let (w, h) = img.dimensions();
    if w.max(h) > s.max_side {
        if let Some((r, (rh, rw))) = resize(&img, f64::from(s.max_side) / f64::from(w.max(h))) {
            img = r;
            ratio = (rw, rh);
        }
    }
    let (w, h) = img.dimensions();
    if w.min(h) < s.min_side {
        if let Some((r, (rh, rw))) = resize(&img, f64::from(s.min_side) / f64::from(w.min(h))) {
            img = r;
            ratio = (rw, rh);
        }
    }
    (img, ratio)
}

/// A page no higher than `min_height`, or a strip wider than `strip_ratio` times its
/// height, padded with black above and below (the detector wants some room). Gives the
/// rows added on top.
fn pad_strip(img: RgbImage, s: &OcrSettings) -> (RgbImage, u32) {
    let (w, h) = img.dimensions();
    let strip = f64::from(w) / f64::from(h) > s.strip_ratio;
    if h > s.min_height && !strip {
        return (img, 0);
    }
    let new_h = ((f64::from(w) / s.strip_ratio) as u32).max(s.min_height) * 2;
    let pad = (f64::from(new_h.abs_diff(h)) / 2.0) as u32;
    (cv::pad_vertically(&img, pad, pad), pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_joins_a_row_with_spaces_and_rows_with_newlines() {
        let line = |text: &str, x: f32, y: f32| Line {
            text: text.into(),
            confidence: 0.9,
            quad: [[x, y], [x + 50.0, y], [x + 50.0, y + 20.0], [x, y + 20.0]],
        };
        let lines = [
            line("Name:", 10.0, 10.0),
            line("Ada", 80.0, 13.0),
            line("Total", 10.0, 60.0),
        ];
        assert_eq!(page_text(&lines, 10.0), "Name: Ada\nTotal");
        assert_eq!(page_text(&[], 10.0), "");
    }

    #[test]
    fn dictionaries_split_as_python_does() {
        assert_eq!(python_lines("a\nb\r\nc\u{2028}d"), vec!["a", "b", "c", "d"]);
        assert_eq!(python_lines("a\n\nb\n"), vec!["a", "", "b"]);
        assert!(python_lines("").is_empty());
    }

    #[test]
    fn pages_are_bounded_and_strips_padded() {
        let s = OcrSettings::default();
        let big = RgbImage::new(4000, 1000);
        let (img, ratio) = bound(&big, &s);
        // 2000 / 32 = 62.5 rounds to even, as Python's round does.
        assert_eq!(img.dimensions(), (1984, 512));
        assert!((ratio.0 - 4000.0 / 1984.0).abs() < 1e-12);
        let small = RgbImage::new(100, 20);
        let (img, _) = bound(&small, &s);
        assert_eq!(img.dimensions(), (160, 32));
        let (padded, top) = pad_strip(RgbImage::new(400, 40), &s);
        // 400 / 40 = 10 > 8: padded to twice max(400 / 8, 30) = 100 rows.
        assert_eq!((padded.dimensions(), top), ((400, 100), 30));
        let (same, top) = pad_strip(RgbImage::new(300, 100), &s);
        assert_eq!((same.dimensions(), top), ((300, 100), 0));
    }
}
