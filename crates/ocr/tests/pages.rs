//! The OCR pipeline on rendered test pages (tests/ocr/make_pages.py, built by
//! `scripts/setup.sh --test` into `$AIAAS_TEST_DATA/ocr/pages` with RapidOCR's reading of
//! each, from the same model files, which the set-up script takes from the
//! `rapidocr-onnxruntime` wheel into `$AIAAS_TEST_DATA/ocr/ppocr-v4`).

use aiaas_ocr::Ocr;
use aiaas_onnx::vision;
use aiaas_onnx::Runtime;
use aiaas_testkit::test_data_file;

fn ocr() -> Ocr {
    let dir = test_data_file("onnxruntime");
    let lib = Runtime::find_in(&dir).unwrap_or_else(|| {
        panic!(
            "no libonnxruntime.so in {} (run scripts/setup.sh --test)",
            dir.display()
        )
    });
    let runtime = Runtime::load(&lib).expect("ONNX Runtime loads");
    Ocr::load(runtime, &test_data_file("ocr/ppocr-v4"), 0, 2)
        .expect("the PP-OCRv4 models load (run scripts/setup.sh --test)")
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn pages_read_as_rapidocr_reads_them_and_as_they_were_rendered() {
    let ocr = ocr();
    let dir = test_data_file("ocr/pages");
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("pages.json")).expect("pages.json (run scripts/setup.sh --test)"),
    )
    .unwrap();
    let (mut lines, mut same_as_reference, mut rendered, mut read_right, mut boxes_off) =
        (0, 0, 0, 0, 0);
    let mut report = Vec::new();
    let index = index.as_array().unwrap();
    let images: Vec<_> = index
        .iter()
        .map(|page| {
            let bytes = std::fs::read(dir.join(page["file"].as_str().unwrap())).unwrap();
            vision::decode_on_white(&bytes, vision::MAX_PIXELS).unwrap()
        })
        .collect();
    // All pages at once, over two instances; the first again alone.
    let readings = ocr.read_pages(&images);
    assert_eq!(
        ocr.read(&images[0]).unwrap(),
        *readings[0].as_ref().unwrap()
    );
    for (page, got) in index.iter().zip(readings) {
        let file = page["file"].as_str().unwrap();
        let got = got.unwrap();
        let reference = page["rapidocr"].as_array().unwrap();
        let texts: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
        let expected: Vec<&str> = reference
            .iter()
            .map(|l| l["text"].as_str().unwrap())
            .collect();
        lines += expected.len();
        for (i, r) in reference.iter().enumerate() {
            let Some(g) = got.get(i) else { continue };
            if g.text == r["text"].as_str().unwrap() {
                same_as_reference += 1;
            }
            let corners = r["box"].as_array().unwrap();
            for (k, c) in corners.iter().enumerate() {
                let (x, y) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
                if (f64::from(g.quad[k][0]) - x).abs() > 1.0
                    || (f64::from(g.quad[k][1]) - y).abs() > 1.0
                {
                    boxes_off += 1;
                    report.push(format!(
                        "{file}: box {i} corner {k}: {:?} vs ({x}, {y})",
                        g.quad[k]
                    ));
                }
            }
        }
        if texts != expected {
            report.push(format!("{file}: read {texts:?}\n   rapidocr {expected:?}"));
        }
        for truth in page["truth"].as_array().unwrap() {
            rendered += 1;
            let truth = squeeze(truth.as_str().unwrap());
            if got.iter().any(|l| squeeze(&l.text) == truth) {
                read_right += 1;
            } else {
                report.push(format!("{file}: rendered {truth:?} not read"));
            }
        }
    }
    println!("{}", report.join("\n"));
    println!(
        "lines as RapidOCR: {same_as_reference}/{lines}; rendered lines read (spaces aside): \
         {read_right}/{rendered}; box corners off by more than 1 px: {boxes_off}"
    );
    assert_eq!(same_as_reference, lines, "every line as RapidOCR reads it");
    assert!(
        read_right * 100 >= rendered * 95,
        "at least 95% of the rendered lines read"
    );
    assert_eq!(boxes_off, 0, "boxes within 1 px of RapidOCR's");
}
