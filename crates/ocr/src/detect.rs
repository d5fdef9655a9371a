//! Text detection with a DB (differentiable binarisation) model: the image resized so
//! its shorter side reaches `limit_side` (both sides multiples of 32), normalised, run;
//! the probability map thresholded and dilated, each region's minimum-area rectangle
//! scored by the mean probability inside it, grown back ("unclip") and mapped to the
//! image's pixels.

use aiaas_onnx::vision::cv;
use aiaas_onnx::vision::geometry::{self, Point};
use aiaas_onnx::{OnnxModel, Tensor, TensorData};
use image::RgbImage;

use crate::{OcrError, OcrSettings};

/// A text box: `[top-left, top-right, bottom-right, bottom-left]` in whole pixels.
pub type Quad = [Point; 4];

/// The detector's input: the image resized and normalised, BGR planes (`[1, 3, h, w]`).
pub(crate) fn input(img: &RgbImage, limit_side: u32, name: &str) -> Option<Tensor> {
    let (w, h) = img.dimensions();
    let short = w.min(h);
    let ratio = if short < limit_side {
        f64::from(limit_side) / f64::from(short)
    } else {
        1.0
    };
    let to32 = |side: u32| {
        let scaled = (f64::from(side) * ratio) as u32;
        ((f64::from(scaled) / 32.0).round_ties_even() * 32.0) as u32
    };
    let (rw, rh) = (to32(w), to32(h));
    if rw == 0 || rh == 0 {
        return None;
    }
    let resized = cv::resize_linear(img, rw, rh);
    Some(Tensor::new(
        name,
        vec![1, 3, rh as usize, rw as usize],
        TensorData::Fp32(bgr_planes(&resized, rw as usize, rh as usize)),
    ))
}

/// Pixels as normalised BGR planes: (v / 255 - 0.5) / 0.5.
pub(crate) fn bgr_planes(img: &RgbImage, w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0f32; 3 * w * h];
    for (i, p) in img.pixels().enumerate() {
        for (plane, c) in [2usize, 1, 0].into_iter().enumerate() {
            out[plane * w * h + i] = ((f64::from(p[c]) / 255.0 - 0.5) / 0.5) as f32;
        }
    }
    out
}

/// Run the detector on `img` and give its text boxes, in the image's pixels.
pub(crate) fn detect(
    model: &OnnxModel,
    img: &RgbImage,
    s: &OcrSettings,
) -> Result<Vec<Quad>, OcrError> {
    let input_name = model.signature().inputs[0].name.clone();
    let Some(tensor) = input(img, s.limit_side, &input_name) else {
        return Ok(Vec::new());
    };
    let out = model.run(vec![tensor], None)?;
    let map = out
        .into_iter()
        .next()
        .ok_or_else(|| OcrError::Model("the detector gave no output".into()))?;
    let (mh, mw) = match map.shape.as_slice() {
        [1, 1, h, w] => (*h, *w),
        other => {
            return Err(OcrError::Model(format!(
                "the detector's output has shape {other:?}, not [1, 1, h, w]"
            )))
        }
    };
    let TensorData::Fp32(pred) = map.data else {
        return Err(OcrError::Model("the detector's output is not FP32".into()));
    };
    let (w, h) = img.dimensions();
    Ok(boxes(&pred, mw, mh, w, h, s))
}

/// The DB post-processing of a probability map `pred` (`mw` x `mh`) into boxes of an
/// image of `w` x `h` pixels.
pub(crate) fn boxes(
    pred: &[f32],
    mw: usize,
    mh: usize,
    w: u32,
    h: u32,
    s: &OcrSettings,
) -> Vec<Quad> {
    let bitmap: Vec<bool> = pred.iter().map(|&p| p > s.threshold).collect();
    let mask = dilate(&bitmap, mw, mh);
    let mut out = Vec::new();
    for region in regions(&mask, mw, mh).into_iter().take(s.max_candidates) {
        let Some(rect) = geometry::min_area_rect(&region) else {
            continue;
        };
        if rect.short_side() < s.min_box_side {
            continue;
        }
        let corners = geometry::box_corners(rect.corners);
        if box_score(pred, mw, mh, &corners) < s.box_threshold {
            continue;
        }
        // The unclip: the box offset outwards on whole pixels, as a polygon clipper
        // does, then its minimum rectangle again.
        let distance = geometry::unclip_distance(&corners, s.unclip_ratio);
        let Some(grown) = geometry::min_area_rect(&geometry::offset_round(&corners, distance))
        else {
            continue;
        };
        if grown.short_side() < s.min_box_side + 2.0 {
            continue;
        }
        let corners = geometry::box_corners(grown.corners);
        let scale = |p: Point| {
            (
                (p.0 / mw as f64 * f64::from(w))
                    .round_ties_even()
                    .clamp(0.0, f64::from(w)),
                (p.1 / mh as f64 * f64::from(h))
                    .round_ties_even()
                    .clamp(0.0, f64::from(h)),
            )
        };
        let quad = geometry::box_corners(corners.map(scale));
        // Clipped inside the image; boxes of 3 pixels or less across are dropped.
        let quad = quad.map(|p| {
            (
                p.0.clamp(0.0, f64::from(w) - 1.0).trunc(),
                p.1.clamp(0.0, f64::from(h) - 1.0).trunc(),
            )
        });
        let side = |a: Point, b: Point| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt() as i64;
        if side(quad[0], quad[1]) <= 3 || side(quad[0], quad[3]) <= 3 {
            continue;
        }
        out.push(quad);
    }
    out
}

/// `cv2.dilate` with a 2x2 kernel of ones (anchor at its centre): a pixel is set when it
/// or its left, upper or upper-left neighbour is.
fn dilate(bitmap: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let at = |dx: usize, dy: usize| x >= dx && y >= dy && bitmap[(y - dy) * w + (x - dx)];
            out[y * w + x] = at(0, 0) || at(1, 0) || at(0, 1) || at(1, 1);
        }
    }
    out
}

/// The points whose convex hulls are the border contours `cv2.findContours` (`RETR_LIST`)
/// traces: for each 8-connected region of set pixels, the leftmost and rightmost pixel
/// of every row (the hull of the region's outer border); for each hole (a 4-connected
/// region of clear pixels not touching the image's edge), the set pixels beside it.
/// Regions come in raster order of their first pixel.
fn regions(mask: &[bool], w: usize, h: usize) -> Vec<Vec<Point>> {
    let mut label = vec![u32::MAX; w * h];
    let mut found: Vec<Vec<Point>> = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if label[start] != u32::MAX {
            continue;
        }
        let set = mask[start];
        let id = found.len() as u32;
        label[start] = id;
        stack.push(start);
        let mut rows: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
        let mut beside: Vec<usize> = Vec::new();
        let mut touches_edge = false;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            if set {
                let e = rows.entry(y).or_insert((x, x));
                e.0 = e.0.min(x);
                e.1 = e.1.max(x);
            } else if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
                touches_edge = true;
            }
            for (dx, dy) in [
                (-1i64, -1i64),
                (0, -1),
                (1, -1),
                (-1, 0),
                (1, 0),
                (-1, 1),
                (0, 1),
                (1, 1),
            ] {
                let diagonal = dx != 0 && dy != 0;
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                    continue;
                }
                let n = ny as usize * w + nx as usize;
                if mask[n] != set {
                    if !set && !diagonal {
                        beside.push(n);
                    }
                    continue;
                }
                // Set pixels join diagonally, clear ones only side by side.
                if (set || !diagonal) && label[n] == u32::MAX {
                    label[n] = id;
                    stack.push(n);
                }
            }
        }
        let points = if set {
            rows.into_iter()
                .flat_map(|(y, (a, b))| [(a as f64, y as f64), (b as f64, y as f64)])
                .collect()
        } else if !touches_edge {
            beside.sort_unstable();
            beside.dedup();
            beside
                .iter()
                .map(|&i| ((i % w) as f64, (i / w) as f64))
                .collect()
        } else {
            Vec::new()
        };
        found.push(points);
    }
    found.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The mean probability inside a box (`box_score_fast`): the box's bounding window,
/// the pixels of the polygon with its corners truncated to whole pixels.
fn box_score(pred: &[f32], w: usize, h: usize, corners: &Quad) -> f32 {
    let clamp = |v: f64, hi: usize| (v as i64).clamp(0, hi as i64 - 1) as usize;
    let xs = corners.iter().map(|p| p.0);
    let ys = corners.iter().map(|p| p.1);
    let xmin = clamp(xs.clone().fold(f64::MAX, f64::min).floor(), w);
    let xmax = clamp(xs.fold(f64::MIN, f64::max).ceil(), w);
    let ymin = clamp(ys.clone().fold(f64::MAX, f64::min).floor(), h);
    let ymax = clamp(ys.fold(f64::MIN, f64::max).ceil(), h);
    let poly: Vec<Point> = corners
        .iter()
        .map(|p| ((p.0 - xmin as f64).trunc(), (p.1 - ymin as f64).trunc()))
        .collect();
    let (mut sum, mut count) = (0f64, 0usize);
    for y in ymin..=ymax {
        for x in xmin..=xmax {
            if inside_or_on((x - xmin) as f64, (y - ymin) as f64, &poly) {
                sum += f64::from(pred[y * w + x]);
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}

/// Whether a point is inside a convex polygon or on its edge (`cv2.fillPoly` fills the
/// edges too).
fn inside_or_on(x: f64, y: f64, poly: &[Point]) -> bool {
    let n = poly.len();
    let (mut pos, mut neg) = (false, false);
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + 1) % n]);
        let cross = (b.0 - a.0) * (y - a.1) - (b.1 - a.1) * (x - a.0);
        if cross > 1e-9 {
            pos = true;
        } else if cross < -1e-9 {
            neg = true;
        }
        if pos && neg {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bright_band_becomes_one_box_grown_back_to_its_text() {
        // A probability map of 64x32 with a band of text at rows 10-19, columns 8-55.
        let (w, h) = (64, 32);
        let mut pred = vec![0.0f32; w * h];
        for y in 10..20 {
            for x in 8..56 {
                pred[y * w + x] = 0.9;
            }
        }
        let s = OcrSettings::default();
        let found = boxes(&pred, w, h, w as u32, h as u32, &s);
        assert_eq!(found.len(), 1, "{found:?}");
        let q = found[0];
        // Grown on every side, in reading order of corners.
        assert!(q[0].0 < 8.0 && q[0].1 < 10.0, "{q:?}");
        assert!(q[2].0 > 56.0 && q[2].1 > 20.0, "{q:?}");
        assert!(q[0].0 < q[1].0 && q[1].1 < q[2].1 && q[3].0 < q[2].0);
    }

    #[test]
    fn faint_or_tiny_regions_are_not_boxes() {
        let (w, h) = (40, 20);
        let mut pred = vec![0.0f32; w * h];
        // Above the binarisation threshold but below the box threshold.
        for y in 5..15 {
            for x in 5..35 {
                pred[y * w + x] = 0.4;
            }
        }
        // A speck.
        pred[2 * w + 2] = 0.99;
        assert!(boxes(&pred, w, h, w as u32, h as u32, &OcrSettings::default()).is_empty());
    }

    #[test]
    fn regions_join_diagonally_and_holes_are_found() {
        // A ring (8-connected) with a hole in the middle, and a separate dot joined
        // diagonally to nothing.
        let (w, h) = (8, 8);
        let mut mask = vec![false; w * h];
        for y in 1..6 {
            for x in 1..6 {
                mask[y * w + x] = !(2..5).contains(&x) || !(2..5).contains(&y);
            }
        }
        mask[6 * w + 6] = true; // touches the ring's corner diagonally
        let r = regions(&mask, w, h);
        // The ring with the diagonal dot, and the hole's border.
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].contains(&(6.0, 6.0)));
        assert!(r[1]
            .iter()
            .all(|&(x, y)| (1.0..=5.0).contains(&x) && (1.0..=5.0).contains(&y)));
    }
}
