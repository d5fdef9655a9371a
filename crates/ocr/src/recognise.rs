//! From boxes to text: each box cut out of the page and turned upright (a perspective
//! warp onto its own rectangle; a tall one turned a quarter), the angle classifier's
//! upside-down lines turned round, then the recogniser on batches of lines of similar
//! shape, its per-step scores decoded by CTC over the dictionary.

use aiaas_onnx::vision::cv;
use aiaas_onnx::{OnnxModel, Tensor, TensorData};
use image::RgbImage;

use crate::detect::{bgr_planes, Quad};
use crate::{OcrError, OcrSettings};

/// The line inside `quad`, upright.
pub(crate) fn crop(img: &RgbImage, quad: &Quad) -> Option<RgbImage> {
    let d = |a: (f64, f64), b: (f64, f64)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let width = d(quad[0], quad[1]).max(d(quad[2], quad[3])) as u32;
    let height = d(quad[0], quad[3]).max(d(quad[1], quad[2])) as u32;
    if width == 0 || height == 0 {
        return None;
    }
    let (w, h) = (f64::from(width), f64::from(height));
    let m = cv::perspective_transform(*quad, [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)])?;
    let line = cv::warp_perspective_cubic(img, &m, width, height)?;
    Some(if f64::from(height) / f64::from(width) >= 1.5 {
        cv::rotate90_ccw(&line)
    } else {
        line
    })
}

/// A line resized to `height` (its width in proportion, at most `max_width`), normalised,
/// and padded with zeros to `max_width`: one `[3, height, max_width]` row.
fn line_row(img: &RgbImage, height: u32, max_width: u32) -> Vec<f32> {
    let ratio = f64::from(img.width()) / f64::from(img.height());
    let wanted = (f64::from(height) * ratio).ceil();
    let width = if wanted > f64::from(max_width) {
        max_width
    } else {
        wanted as u32
    }
    .max(1);
    let resized = cv::resize_linear(img, width, height);
    let planes = bgr_planes(&resized, width as usize, height as usize);
    let (h, w, mw) = (height as usize, width as usize, max_width as usize);
    let mut row = vec![0f32; 3 * h * mw];
    for c in 0..3 {
        for y in 0..h {
            let from = &planes[c * h * w + y * w..c * h * w + (y + 1) * w];
            row[c * h * mw + y * mw..c * h * mw + y * mw + w].copy_from_slice(from);
        }
    }
    row
}

/// Indices of `lines` by width-to-height ratio (a stable sort, as NumPy's `argsort` of
/// distinct ratios).
fn by_ratio(lines: &[RgbImage]) -> Vec<usize> {
    let ratio = |i: usize| f64::from(lines[i].width()) / f64::from(lines[i].height());
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by(|&a, &b| ratio(a).total_cmp(&ratio(b)));
    order
}

/// Turn upside-down lines round (in place): the angle classifier on batches of
/// `cls_batch` lines, each resized to 48 high and at most 192 wide.
pub(crate) fn upright(
    model: &OnnxModel,
    lines: &mut [RgbImage],
    s: &OcrSettings,
) -> Result<(), OcrError> {
    const H: u32 = 48;
    const W: u32 = 192;
    let name = model.signature().inputs[0].name.clone();
    let order = by_ratio(lines);
    for batch in order.chunks(s.cls_batch) {
        let mut data = Vec::with_capacity(batch.len() * 3 * (H * W) as usize);
        for &i in batch {
            data.extend(line_row(&lines[i], H, W));
        }
        let shape = vec![batch.len(), 3, H as usize, W as usize];
        let out = first_fp32(model.run(
            vec![Tensor::new(&name, shape, TensorData::Fp32(data))],
            None,
        )?)?;
        let classes = out.len() / batch.len();
        for (k, &i) in batch.iter().enumerate() {
            let scores = &out[k * classes..(k + 1) * classes];
            let (best, score) = argmax(scores);
            // Class 1 is "180": turned round when the classifier is sure.
            if best == 1 && score > s.cls_threshold {
                lines[i] = cv::rotate180(&lines[i]);
            }
        }
    }
    Ok(())
}

/// Read each line: the recogniser on batches of `rec_batch` lines of similar shape,
/// padded to the widest's proportions (at least 320 / 48), and CTC-decoded.
pub(crate) fn read(
    model: &OnnxModel,
    dictionary: &[String],
    lines: &[RgbImage],
    s: &OcrSettings,
) -> Result<Vec<(String, f32)>, OcrError> {
    const H: u32 = 48;
    let name = model.signature().inputs[0].name.clone();
    let order = by_ratio(lines);
    let mut out = vec![(String::new(), 0.0); lines.len()];
    for batch in order.chunks(s.rec_batch) {
        let widest = batch
            .iter()
            .map(|&i| f64::from(lines[i].width()) / f64::from(lines[i].height()))
            .fold(320.0 / 48.0, f64::max);
        let width = (f64::from(H) * widest) as u32;
        let mut data = Vec::with_capacity(batch.len() * 3 * (H * width) as usize);
        for &i in batch {
            data.extend(line_row(&lines[i], H, width));
        }
        let shape = vec![batch.len(), 3, H as usize, width as usize];
        let result = model.run(
            vec![Tensor::new(&name, shape, TensorData::Fp32(data))],
            None,
        )?;
        let steps_shape = result.first().map(|t| t.shape.clone()).unwrap_or_default();
        let scores = first_fp32(result)?;
        let [_, steps, classes] = steps_shape[..] else {
            return Err(OcrError::Model(format!(
                "the recogniser's output has shape {steps_shape:?}, not [n, steps, classes]"
            )));
        };
        for (k, &i) in batch.iter().enumerate() {
            let row = &scores[k * steps * classes..(k + 1) * steps * classes];
            out[i] = ctc_decode(row, steps, classes, dictionary);
        }
    }
    Ok(out)
}

fn first_fp32(outputs: Vec<Tensor>) -> Result<Vec<f32>, OcrError> {
    match outputs.into_iter().next().map(|t| t.data) {
        Some(TensorData::Fp32(v)) => Ok(v),
        _ => Err(OcrError::Model(
            "the model's first output is not FP32".into(),
        )),
    }
}

/// The first largest score and its index.
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

/// Greedy CTC decoding: the best class at each step, repeats merged, blanks (class 0)
/// dropped; the score is the mean of the kept steps' scores (0 for no text). Class `k`
/// is `dictionary[k - 1]`; the class after the dictionary is a space.
pub(crate) fn ctc_decode(
    scores: &[f32],
    steps: usize,
    classes: usize,
    dictionary: &[String],
) -> (String, f32) {
    let mut text = String::new();
    let mut kept = Vec::new();
    let mut previous = usize::MAX;
    for t in 0..steps {
        let (best, score) = argmax(&scores[t * classes..(t + 1) * classes]);
        if best != 0 && best != previous {
            match best {
                k if k <= dictionary.len() => text.push_str(&dictionary[k - 1]),
                _ => text.push(' '),
            }
            kept.push(score);
        }
        previous = best;
    }
    let score = if kept.is_empty() {
        0.0
    } else {
        (kept.iter().map(|&v| f64::from(v)).sum::<f64>() / kept.len() as f64) as f32
    };
    (text, score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_merges_repeats_drops_blanks_and_averages_the_kept_scores() {
        let dict: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        // Classes: blank, a, b, space. Steps: a a blank a b space blank.
        let steps = [1usize, 1, 0, 1, 2, 3, 0];
        let probs = [0.9f32, 0.8, 0.99, 0.7, 0.6, 0.5, 0.99];
        let mut scores = vec![0.0f32; steps.len() * 4];
        for (t, (&c, &p)) in steps.iter().zip(&probs).enumerate() {
            scores[t * 4 + c] = p;
        }
        let (text, score) = ctc_decode(&scores, steps.len(), 4, &dict);
        assert_eq!(text, "aab ");
        assert!(
            (score - (0.9 + 0.7 + 0.6 + 0.5) / 4.0).abs() < 1e-6,
            "{score}"
        );
        let (empty, zero) = ctc_decode(&[1.0, 0.0, 0.0, 0.0], 1, 4, &dict);
        assert_eq!((empty.as_str(), zero), ("", 0.0));
    }

    #[test]
    fn lines_are_padded_to_the_batch_width_and_tall_crops_turned() {
        let img = RgbImage::from_pixel(96, 24, image::Rgb([255, 255, 255]));
        let row = line_row(&img, 48, 320);
        assert_eq!(row.len(), 3 * 48 * 320);
        // White (1.0) up to 192 columns, zero padding after.
        assert_eq!(row[191], 1.0);
        assert_eq!(row[192], 0.0);
        let page = RgbImage::from_pixel(50, 100, image::Rgb([0, 0, 0]));
        let tall = crop(
            &page,
            &[(10.0, 10.0), (20.0, 10.0), (20.0, 60.0), (10.0, 60.0)],
        )
        .unwrap();
        assert_eq!(tall.dimensions(), (50, 10));
    }
}
