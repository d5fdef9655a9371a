use image::Rgb;

use super::*;

fn encoded(img: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn png(img: &RgbImage) -> Vec<u8> {
    encoded(img, image::ImageFormat::Png)
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    encoded(img, image::ImageFormat::Jpeg)
}

/// A JPEG with an EXIF APP1 segment whose only entry is the orientation tag.
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD right after the header
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Left half red, right half blue.
fn halves(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    })
}

#[test]
fn decodes_png_and_jpeg_and_refuses_what_is_not_an_image() {
    let img = halves(8, 4);
    assert_eq!(decode(&png(&img), MAX_PIXELS).unwrap(), img);
    let j = decode(&jpeg(&img), MAX_PIXELS).unwrap();
    assert_eq!(j.dimensions(), (8, 4));
    assert!(j.get_pixel(0, 0).0[0] > 200 && j.get_pixel(7, 0).0[2] > 200);
    assert!(matches!(
        decode(b"GIF89a nope", MAX_PIXELS),
        Err(VisionError::Decode(_))
    ));
    assert!(matches!(
        decode(b"", MAX_PIXELS),
        Err(VisionError::Decode(_))
    ));
    let mut cut = png(&img);
    cut.truncate(cut.len() / 2);
    assert!(matches!(
        decode(&cut, MAX_PIXELS),
        Err(VisionError::Decode(_))
    ));
}

#[test]
fn the_pixel_bound_is_checked_before_decoding() {
    let img = halves(8, 4);
    assert_eq!(
        decode(&png(&img), 31),
        Err(VisionError::TooLarge {
            width: 8,
            height: 4,
            limit: 31
        })
    );
    assert!(decode(&png(&img), 32).is_ok());
}

#[test]
fn the_exif_orientation_is_applied() {
    // 6: the camera was turned; the picture is shown rotated 90 degrees clockwise.
    let img = halves(8, 4);
    let turned = decode(&with_orientation(&jpeg(&img), 6), MAX_PIXELS).unwrap();
    assert_eq!(turned.dimensions(), (4, 8));
    // The left (red) half is now on top.
    assert!(
        turned.get_pixel(2, 0).0[0] > 200,
        "{:?}",
        turned.get_pixel(2, 0)
    );
    assert!(
        turned.get_pixel(2, 7).0[2] > 200,
        "{:?}",
        turned.get_pixel(2, 7)
    );
    let upright = decode(&with_orientation(&jpeg(&img), 1), MAX_PIXELS).unwrap();
    assert_eq!(upright.dimensions(), (8, 4));
}

#[test]
fn rows_are_normalised_in_the_asked_layout_and_channel_order() {
    let img = halves(4, 2);
    let spec = ImageSpec {
        size: Some([2, 4]),
        resize: None,
        scale: 255.0,
        mean: [0.5, 0.0, 0.5],
        std: [0.5, 1.0, 0.25],
        layout: Layout::Nchw,
        channels: Channels::Rgb,
    };
    let row = spec.tensor_row(&img).unwrap();
    assert_eq!(spec.row_dims().unwrap(), [3, 2, 4]);
    // Red plane: 1 on the left ((1 - 0.5) / 0.5), -1 on the right.
    assert_eq!(&row[..4], &[1.0, 1.0, -1.0, -1.0]);
    // Green plane: 0 everywhere; blue plane: -2 on the left, 2 on the right.
    assert_eq!(&row[8..12], &[0.0; 4]);
    assert_eq!(&row[16..20], &[-2.0, -2.0, 2.0, 2.0]);

    let nhwc = ImageSpec {
        layout: Layout::Nhwc,
        channels: Channels::Bgr,
        mean: [0.0; 3],
        std: [1.0; 3],
        scale: 1.0,
        ..spec.clone()
    };
    let row = nhwc.tensor_row(&img).unwrap();
    assert_eq!(nhwc.row_dims().unwrap(), [2, 4, 3]);
    // Pixel (0, 0) is red: B, G, R = 0, 0, 255; pixel (3, 0) is blue.
    assert_eq!(&row[..3], &[0.0, 0.0, 255.0]);
    assert_eq!(&row[9..12], &[255.0, 0.0, 0.0]);
}

#[test]
fn resize_then_centre_crop_keeps_the_middle() {
    // 40x20, a white square in the middle 10x10: shorter side to 10 gives 20x10, the
    // centre 10x10 crop is the middle, half white.
    let img = RgbImage::from_fn(40, 20, |x, y| {
        if (15..25).contains(&x) && (5..15).contains(&y) {
            Rgb([255, 255, 255])
        } else {
            Rgb([0, 0, 0])
        }
    });
    let spec = ImageSpec {
        size: Some([10, 10]),
        resize: Some(10),
        scale: 255.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        layout: Layout::Nchw,
        channels: Channels::Rgb,
    };
    let row = spec.tensor_row(&img).unwrap();
    assert_eq!(row.len(), 300);
    let red = &row[..100];
    // Centre bright, corners dark.
    assert!(red[5 * 10 + 5] > 0.9, "{}", red[55]);
    assert!(red[0] < 0.1 && red[99] < 0.1);
    // Resizing straight to the size squeezes instead.
    let squeezed = ImageSpec {
        resize: None,
        ..spec.clone()
    };
    assert_eq!(squeezed.tensor_row(&img).unwrap().len(), 300);
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let ok = ImageSpec {
        size: Some([224, 224]),
        resize: Some(256),
        scale: 255.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        layout: Layout::Nchw,
        channels: Channels::Rgb,
    };
    assert_eq!(ok.check(), Ok([224, 224]));
    for bad in [
        ImageSpec {
            size: None,
            ..ok.clone()
        },
        ImageSpec {
            resize: Some(100),
            ..ok.clone()
        },
        ImageSpec {
            scale: 0.0,
            ..ok.clone()
        },
        ImageSpec {
            std: [1.0, 0.0, 1.0],
            ..ok.clone()
        },
        ImageSpec {
            size: Some([0, 224]),
            ..ok.clone()
        },
    ] {
        assert!(
            matches!(bad.check(), Err(VisionError::Invalid(_))),
            "{bad:?}"
        );
    }
    let parsed: ImageSpec = serde_json::from_value(serde_json::json!({
        "size": [224, 224], "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0],
        "scale": 1.0, "layout": "NHWC", "channels": "BGR"
    }))
    .unwrap();
    assert_eq!(
        (parsed.layout, parsed.channels, parsed.resize),
        (Layout::Nhwc, Channels::Bgr, None)
    );
    assert!(serde_json::from_value::<ImageSpec>(serde_json::json!({"sizes": [1, 1]})).is_err());
}
