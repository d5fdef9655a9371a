//! Images for models: decoding what clients send (PNG, JPEG, WebP, BMP, with the EXIF
//! orientation applied, bounded in pixels before anything is allocated), and the usual
//! pre-processing of an image classifier (resize, centre crop, scale, normalise with a
//! mean and standard deviation per channel, NCHW or NHWC, RGB or BGR) into the FP32
//! values of one tensor row.
//!
//! Resizing is Pillow's bilinear resize to the bit (resample.rs), so a model sees the
//! pixels `PIL.Image.resize` gives its Python reference; the centre crop rounds as
//! torchvision's does.

use std::io::Cursor;

pub use image::RgbImage;
use image::{DynamicImage, ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};

/// The default bound on an image's pixels (a 40-megapixel photo passes; a decompression
/// bomb does not).
pub const MAX_PIXELS: u64 = 40_000_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VisionError {
    /// Not an image of a supported format, or a damaged one.
    #[error("the image cannot be decoded: {0}")]
    Decode(String),
    #[error("the image is {width}x{height} pixels, more than the {limit} allowed")]
    TooLarge { width: u32, height: u32, limit: u64 },
    /// A pre-processing setting that cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// Decode an image (format sniffed from its bytes), apply its EXIF orientation, and give
/// its RGB pixels (an alpha channel is dropped, as `PIL.Image.convert("RGB")` does).
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, VisionError> {
    decode_image(bytes, max_pixels).map(DynamicImage::into_rgb8)
}

/// Decode as `decode` does, but lay transparent pixels over white (what a document's
/// reader sees: text drawn on a transparent page stays dark on light).
pub fn decode_on_white(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, VisionError> {
    let img = decode_image(bytes, max_pixels)?;
    if !img.color().has_alpha() {
        return Ok(img.into_rgb8());
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    Ok(RgbImage::from_fn(w, h, |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = u32::from(p[3]);
        let over = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([over(p[0]), over(p[1]), over(p[2])])
    }))
}

fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, VisionError> {
    let decode_err = |e: image::ImageError| VisionError::Decode(e.to_string());
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| VisionError::Decode(e.to_string()))?;
    let format = reader.format();
    if format.is_none() {
        return Err(VisionError::Decode(
            "not a PNG, JPEG, WebP or BMP image".into(),
        ));
    }
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(VisionError::Decode("the image has no pixels".into()));
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(VisionError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // JPEG by libjpeg-turbo when it can (it cannot turn CMYK into RGB; the pure-Rust
    // decoder then does).
    let jpeg = (format == Some(image::ImageFormat::Jpeg))
        .then(|| libjpeg_turbo(bytes))
        .flatten();
    let mut img = match jpeg {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => DynamicImage::from_decoder(decoder).map_err(decode_err)?,
    };
    img.apply_orientation(orientation);
    Ok(img)
}

/// A JPEG's RGB pixels by libjpeg-turbo (accurate integer IDCT, fancy upsampling: its
/// defaults, and Pillow's); `None` when it cannot decode it.
fn libjpeg_turbo(bytes: &[u8]) -> Option<RgbImage> {
    let img = turbojpeg::decompress(bytes, turbojpeg::PixelFormat::RGB).ok()?;
    let row = img.width * 3;
    let mut rgb = Vec::with_capacity(row * img.height);
    for y in 0..img.height {
        rgb.extend_from_slice(img.pixels.get(y * img.pitch..y * img.pitch + row)?);
    }
    RgbImage::from_raw(img.width as u32, img.height as u32, rgb)
}

/// Where the channel axis goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Layout {
    /// `[3, height, width]` per image (PyTorch's).
    #[default]
    Nchw,
    /// `[height, width, 3]` per image (TensorFlow's).
    Nhwc,
}

/// The order of the colour channels the model expects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Channels {
    #[default]
    Rgb,
    Bgr,
}

/// How an image becomes a model's input row: `value = (pixel / scale - mean[c]) / std[c]`
/// after resizing (and cropping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// `[height, width]` the model takes (read from the graph when it fixes them).
    #[serde(default)]
    pub size: Option<[u32; 2]>,
    /// Resize the shorter side to this, keeping the aspect ratio, then crop the centre
    /// `size` (torchvision's `Resize(resize)` + `CenterCrop(size)`); without it, the
    /// image is resized straight to `size`.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Pixel values (0-255) are divided by this first: 255 gives 0-1 (default), 1 keeps
    /// 0-255.
    #[serde(default = "default_scale")]
    pub scale: f32,
    #[serde(default = "zeros")]
    pub mean: [f32; 3],
    #[serde(default = "ones")]
    pub std: [f32; 3],
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub channels: Channels,
}

fn default_scale() -> f32 {
    255.0
}

fn zeros() -> [f32; 3] {
    [0.0; 3]
}

fn ones() -> [f32; 3] {
    [1.0; 3]
}

impl ImageSpec {
    /// Check the settings (with `size` known).
    pub fn check(&self) -> Result<[u32; 2], VisionError> {
        let bad = |m: String| Err(VisionError::Invalid(m));
        let Some([h, w]) = self.size else {
            return bad(
                "image size [height, width] is not set and the model does not fix it".into(),
            );
        };
        if !(1..=8192).contains(&h) || !(1..=8192).contains(&w) {
            return bad(format!("image size must be 1-8192 each, got [{h}, {w}]"));
        }
        if let Some(r) = self.resize {
            if r < h.max(w) || r > 8192 {
                return bad(format!(
                    "resize ({r}) must be at least the crop's longer side ({}) and at most 8192",
                    h.max(w)
                ));
            }
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return bad(format!("scale must be above 0, got {}", self.scale));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s != 0.0))
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return bad("mean must be finite and std finite and non-zero".into());
        }
        Ok([h, w])
    }

    /// The values of one image's input row (`3 x height x width` of them, in `layout`).
    pub fn tensor_row(&self, img: &RgbImage) -> Result<Vec<f32>, VisionError> {
        let [h, w] = self.check()?;
        let fitted = match self.resize {
            Some(short) => {
                let (iw, ih) = img.dimensions();
                // torchvision: the shorter side to `short`, the longer in proportion
                // (truncated).
                let (nw, nh) = if iw <= ih {
                    (
                        short,
                        (u64::from(short) * u64::from(ih) / u64::from(iw)) as u32,
                    )
                } else {
                    (
                        (u64::from(short) * u64::from(iw) / u64::from(ih)) as u32,
                        short,
                    )
                };
                let resized = resample::bilinear(img, nw, nh);
                let top = ((nh - h) as f64 / 2.0).round() as u32;
                let left = ((nw - w) as f64 / 2.0).round() as u32;
                image::imageops::crop_imm(&resized, left, top, w, h).to_image()
            }
            None => resample::bilinear(img, w, h),
        };
        let (w, h) = (w as usize, h as usize);
        let order: [usize; 3] = match self.channels {
            Channels::Rgb => [0, 1, 2],
            Channels::Bgr => [2, 1, 0],
        };
        let mut out = vec![0f32; 3 * h * w];
        for (x, y, p) in fitted.enumerate_pixels() {
            let (x, y) = (x as usize, y as usize);
            for (c, &src) in order.iter().enumerate() {
                let v = (f32::from(p.0[src]) / self.scale - self.mean[c]) / self.std[c];
                let at = match self.layout {
                    Layout::Nchw => (c * h + y) * w + x,
                    Layout::Nhwc => (y * w + x) * 3 + c,
                };
                out[at] = v;
            }
        }
        Ok(out)
    }

    /// The shape of one image's row.
    pub fn row_dims(&self) -> Result<[usize; 3], VisionError> {
        let [h, w] = self.check()?;
        let (h, w) = (h as usize, w as usize);
        Ok(match self.layout {
            Layout::Nchw => [3, h, w],
            Layout::Nhwc => [h, w, 3],
        })
    }
}

#[cfg(test)]
mod tests;

pub mod cv;
pub mod geometry;
mod resample;
