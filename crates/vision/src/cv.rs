//! Image operations as OpenCV computes them, for models whose Python references
//! pre-process with `cv2` (PaddleOCR's): `cv2.resize` with `INTER_LINEAR` on 8-bit
//! images (11-bit fixed-point weights, the vectorised vertical pass's rounding), and
//! `cv2.warpPerspective` with `INTER_CUBIC` and `BORDER_REPLICATE` (source positions in
//! 1/32 pixel, 15-bit weights summing to one), with `cv2.getPerspectiveTransform`.
//!
//! Written here rather than taken from a crate: the image crates' bilinear and bicubic
//! filters differ from OpenCV's (antialiasing on shrink, float weights), and a text
//! recogniser fed other pixels than its reference reads some lines differently.

use image::RgbImage;

/// `INTER_RESIZE_COEF_BITS`: weights of the linear resize in 11-bit fixed point.
const RESIZE_ONE: i32 = 1 << 11;

/// One output position's source index and fixed-point weights (`cv2.resize`'s `xofs`
/// and `ialpha`).
fn linear_taps(src: u32, dst: u32) -> Vec<(usize, [i32; 2])> {
    let scale = 1.0 / (f64::from(dst) / f64::from(src));
    let last = src as i64 - 1;
    (0..dst)
        .map(|d| {
            let f = ((f64::from(d) + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if s < 0 {
                (s, frac) = (0, 0.0);
            }
            if s >= last {
                (s, frac) = (last, 0.0);
            }
            let w0 = ((1.0 - frac) * RESIZE_ONE as f32).round_ties_even() as i32;
            let w1 = (frac * RESIZE_ONE as f32).round_ties_even() as i32;
            (s.clamp(0, last) as usize, [w0, w1])
        })
        .collect()
}

/// `cv2.resize(img, (width, height))` (bilinear) of an 8-bit 3-channel image.
pub fn resize_linear(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = img.dimensions();
    if (sw, sh) == (width, height) {
        return img.clone();
    }
    if sw == 2 * width && sh == 2 * height {
        return halve(img);
    }
    let xs = linear_taps(sw, width);
    let src = img.as_raw();
    let stride = sw as usize * 3;
    // The horizontal pass of one source row: values x 2048.
    let horizontal = |row: usize| -> Vec<i32> {
        let line = &src[row * stride..(row + 1) * stride];
        let mut out = Vec::with_capacity(width as usize * 3);
        for &(sx, [w0, w1]) in &xs {
            for c in 0..3 {
                let a = i32::from(line[sx * 3 + c]);
                let v = if sx + 1 < sw as usize {
                    a * w0 + i32::from(line[(sx + 1) * 3 + c]) * w1
                } else {
                    a * RESIZE_ONE
                };
                out.push(v);
            }
        }
        out
    };
    let mut cache: Vec<(usize, Vec<i32>)> = Vec::new();
    let mut row_of = |r: usize| -> Vec<i32> {
        if let Some((_, v)) = cache.iter().find(|(i, _)| *i == r) {
            return v.clone();
        }
        let v = horizontal(r);
        if cache.len() >= 2 {
            cache.remove(0);
        }
        cache.push((r, v.clone()));
        v
    };
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    let last = sh as i64 - 1;
    let scale_y = 1.0 / (f64::from(height) / f64::from(sh));
    for d in 0..height {
        // Rows are clamped, the weights kept (as OpenCV does vertically).
        let f = ((f64::from(d) + 0.5) * scale_y - 0.5) as f32;
        let s = f.floor() as i64;
        let frac = f - s as f32;
        let b0 = ((1.0 - frac) * RESIZE_ONE as f32).round_ties_even() as i32;
        let b1 = (frac * RESIZE_ONE as f32).round_ties_even() as i32;
        let r0 = row_of(s.clamp(0, last) as usize);
        let r1 = row_of((s + 1).clamp(0, last) as usize);
        for (a, b) in r0.iter().zip(&r1) {
            // The vectorised pass: 16-bit products' high halves, then a rounding shift.
            let v = ((((a >> 4) * b0) >> 16) + (((b >> 4) * b1) >> 16) + 2) >> 2;
            out.push(v.clamp(0, 255) as u8);
        }
    }
    RgbImage::from_raw(width, height, out).expect("sized above")
}

/// An exact halving, which OpenCV's linear resize does as an area average.
fn halve(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width() / 2, img.height() / 2);
    RgbImage::from_fn(w, h, |x, y| {
        let mut px = [0u8; 3];
        for (c, v) in px.iter_mut().enumerate() {
            let sum: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                .iter()
                .map(|&(dx, dy)| u32::from(img.get_pixel(2 * x + dx, 2 * y + dy)[c]))
                .sum();
            *v = ((sum + 2) >> 2) as u8;
        }
        image::Rgb(px)
    })
}

/// The projective map taking `from[i]` to `to[i]` (`cv2.getPerspectiveTransform`), as a
/// row-major 3x3 matrix with the last element 1. `None` when the points are degenerate.
pub fn perspective_transform(from: [(f64, f64); 4], to: [(f64, f64); 4]) -> Option<[f64; 9]> {
    // Eight equations in the eight unknowns a..h of
    //   u = (a x + b y + c) / (g x + h y + 1),  v = (d x + e y + f) / (g x + h y + 1).
    let mut m = [[0.0f64; 9]; 8];
    for i in 0..4 {
        let ((x, y), (u, v)) = (from[i], to[i]);
        m[i] = [x, y, 1.0, 0.0, 0.0, 0.0, -x * u, -y * u, u];
        m[i + 4] = [0.0, 0.0, 0.0, x, y, 1.0, -x * v, -y * v, v];
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..8 {
        let pivot = (col..8).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col];
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let k = row[col] / pivot_row[col];
                for (v, p) in row.iter_mut().zip(pivot_row).skip(col) {
                    *v -= k * p;
                }
            }
        }
    }
    let s: Vec<f64> = (0..8).map(|i| m[i][8] / m[i][i]).collect();
    Some([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], 1.0])
}

fn invert(m: &[f64; 9]) -> Option<[f64; 9]> {
    let det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
        + m[2] * (m[3] * m[7] - m[4] * m[6]);
    if det.abs() < 1e-15 {
        return None;
    }
    let d = 1.0 / det;
    Some([
        (m[4] * m[8] - m[5] * m[7]) * d,
        (m[2] * m[7] - m[1] * m[8]) * d,
        (m[1] * m[5] - m[2] * m[4]) * d,
        (m[5] * m[6] - m[3] * m[8]) * d,
        (m[0] * m[8] - m[2] * m[6]) * d,
        (m[2] * m[3] - m[0] * m[5]) * d,
        (m[3] * m[7] - m[4] * m[6]) * d,
        (m[1] * m[6] - m[0] * m[7]) * d,
        (m[0] * m[4] - m[1] * m[3]) * d,
    ])
}

/// `INTER_TAB_SIZE`: source positions in 1/32 pixel.
const TAB: i64 = 32;
/// `INTER_REMAP_COEF_BITS`.
const REMAP_ONE: i32 = 1 << 15;

/// OpenCV's bicubic weights (A = -0.75) for a fraction `x` in [0, 1).
fn cubic(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [c0, c1, c2, 1.0 - c0 - c1 - c2]
}

/// The 4x4 fixed-point weights of every (1/32, 1/32) fraction, each table summing to
/// exactly one (OpenCV moves the rounding error onto the largest or smallest weight).
fn cubic_tables() -> Vec<[i32; 16]> {
    let mut tables = Vec::with_capacity((TAB * TAB) as usize);
    for fy in 0..TAB {
        let wy = cubic(fy as f32 / TAB as f32);
        for fx in 0..TAB {
            let wx = cubic(fx as f32 / TAB as f32);
            let mut t = [0i32; 16];
            for i in 0..4 {
                for j in 0..4 {
                    t[i * 4 + j] = (wy[i] * wx[j] * REMAP_ONE as f32).round_ties_even() as i32;
                }
            }
            let sum: i32 = t.iter().sum();
            if sum != REMAP_ONE {
                let diff = sum - REMAP_ONE;
                let (mut lo, mut hi) = (0, 0);
                for k in 1..16 {
                    if t[k] < t[lo] {
                        lo = k;
                    }
                    if t[k] > t[hi] {
                        hi = k;
                    }
                }
                if diff < 0 {
                    t[hi] -= diff;
                } else {
                    t[lo] -= diff;
                }
            }
            tables.push(t);
        }
    }
    tables
}

/// `cv2.warpPerspective(img, M, (width, height), flags=INTER_CUBIC,
/// borderMode=BORDER_REPLICATE)` where `M` maps source points to output points.
/// `None` when `m` cannot be inverted.
pub fn warp_perspective_cubic(
    img: &RgbImage,
    m: &[f64; 9],
    width: u32,
    height: u32,
) -> Option<RgbImage> {
    let inv = invert(m)?;
    let tables = cubic_tables();
    let (sw, sh) = (i64::from(img.width()), i64::from(img.height()));
    let src = img.as_raw();
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let (xf, yf) = (f64::from(x), f64::from(y));
            let w = inv[6] * xf + inv[7] * yf + inv[8];
            let w = if w != 0.0 { TAB as f64 / w } else { 0.0 };
            let fx =
                ((inv[0] * xf + inv[1] * yf + inv[2]) * w).clamp(i32::MIN as f64, i32::MAX as f64);
            let fy =
                ((inv[3] * xf + inv[4] * yf + inv[5]) * w).clamp(i32::MIN as f64, i32::MAX as f64);
            let (qx, qy) = (fx.round_ties_even() as i64, fy.round_ties_even() as i64);
            let (ix, iy) = (qx.div_euclid(TAB), qy.div_euclid(TAB));
            let t = &tables[(qy.rem_euclid(TAB) * TAB + qx.rem_euclid(TAB)) as usize];
            let mut acc = [0i64; 3];
            for i in 0..4 {
                let sy = (iy - 1 + i).clamp(0, sh - 1) as usize;
                for j in 0..4 {
                    let sx = (ix - 1 + j).clamp(0, sw - 1) as usize;
                    let at = (sy * sw as usize + sx) * 3;
                    let k = i64::from(t[(i * 4 + j) as usize]);
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a += k * i64::from(src[at + c]);
                    }
                }
            }
            for a in acc {
                out.push(((a + (1 << 14)) >> 15).clamp(0, 255) as u8);
            }
        }
    }
    RgbImage::from_raw(width, height, out)
}

/// `np.rot90(img)`: a quarter turn counter-clockwise.
pub fn rotate90_ccw(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    RgbImage::from_fn(h, w, |x, y| *img.get_pixel(w - 1 - y, x))
}

/// `cv2.rotate(img, cv2.ROTATE_180)`.
pub fn rotate180(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    RgbImage::from_fn(w, h, |x, y| *img.get_pixel(w - 1 - x, h - 1 - y))
}

/// `cv2.copyMakeBorder` with black rows added above and below.
pub fn pad_vertically(img: &RgbImage, top: u32, bottom: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut out = RgbImage::new(w, h + top + bottom);
    image::imageops::replace(&mut out, img, 0, i64::from(top));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_translation_warps_copy_pixels() {
        let img = RgbImage::from_fn(9, 7, |x, y| image::Rgb([(x * 20) as u8, (y * 30) as u8, 7]));
        let from = [(2.0, 1.0), (7.0, 1.0), (7.0, 5.0), (2.0, 5.0)];
        let to = [(0.0, 0.0), (5.0, 0.0), (5.0, 4.0), (0.0, 4.0)];
        let m = perspective_transform(from, to).unwrap();
        let crop = warp_perspective_cubic(&img, &m, 5, 4).unwrap();
        for y in 0..4 {
            for x in 0..5 {
                assert_eq!(crop.get_pixel(x, y), img.get_pixel(x + 2, y + 1));
            }
        }
    }

    #[test]
    fn perspective_transform_maps_the_corners() {
        let from = [(3.0, 2.0), (40.0, 9.0), (37.0, 30.0), (1.0, 22.0)];
        let to = [(0.0, 0.0), (38.0, 0.0), (38.0, 21.0), (0.0, 21.0)];
        let m = perspective_transform(from, to).unwrap();
        for (f, t) in from.iter().zip(&to) {
            let w = m[6] * f.0 + m[7] * f.1 + m[8];
            let u = (m[0] * f.0 + m[1] * f.1 + m[2]) / w;
            let v = (m[3] * f.0 + m[4] * f.1 + m[5]) / w;
            assert!(
                (u - t.0).abs() < 1e-9 && (v - t.1).abs() < 1e-9,
                "{f:?} -> ({u}, {v})"
            );
        }
        assert!(perspective_transform([(0.0, 0.0); 4], to).is_none());
    }

    #[test]
    fn linear_resize_keeps_flat_colours_and_interpolates_between_pixels() {
        let flat = RgbImage::from_pixel(13, 5, image::Rgb([200, 10, 77]));
        let r = resize_linear(&flat, 29, 11);
        assert!(r.pixels().all(|p| p.0 == [200, 10, 77]));
        // Doubling a two-pixel ramp: OpenCV gives 0, 64, 191, 255 (weights 1/4, 3/4).
        let ramp = RgbImage::from_fn(2, 1, |x, _| image::Rgb([(x * 255) as u8; 3]));
        let r = resize_linear(&ramp, 4, 1);
        let row: Vec<u8> = r.pixels().map(|p| p[0]).collect();
        assert_eq!(row, vec![0, 64, 191, 255]);
        // Exact halving averages 2x2 blocks.
        let checker = RgbImage::from_fn(4, 2, |x, y| {
            image::Rgb([if (x + y) % 2 == 0 { 255 } else { 0 }; 3])
        });
        assert!(resize_linear(&checker, 2, 1).pixels().all(|p| p[0] == 128));
    }

    #[test]
    fn rotations() {
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([(x + 3 * y) as u8, 0, 0]));
        let r = rotate90_ccw(&img);
        assert_eq!(r.dimensions(), (2, 3));
        // The top-right pixel goes to the top-left.
        assert_eq!(r.get_pixel(0, 0)[0], 2);
        assert_eq!(r.get_pixel(1, 2)[0], 3);
        let r = rotate180(&img);
        assert_eq!(r.get_pixel(0, 0)[0], 5);
        let p = pad_vertically(&img, 2, 1);
        assert_eq!(p.dimensions(), (3, 5));
        assert_eq!(p.get_pixel(1, 2)[0], 1);
        assert_eq!(p.get_pixel(1, 0)[0], 0);
    }
}
