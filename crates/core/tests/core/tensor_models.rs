//! Uploaded ONNX models through the models service, on the real ONNX Runtime library and
//! the scikit-learn models `scripts/setup.sh --test` converts with skl2onnx (their
//! `predict_proba` beside them): upload, deploy, inference with batching, refusals that
//! store nothing, tenancy.

use std::path::{Path, PathBuf};

use aiaas_core::onnx::{Tensor, TensorData};
use aiaas_core::{CoreError, DeployRequest};
use aiaas_types::{Format, Task};
use serde_json::{json, Value};

use crate::support::World;

pub(crate) fn test_data() -> PathBuf {
    std::env::var_os("AIAAS_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/aiaas-data-cache")
        })
}

fn onnxruntime() -> PathBuf {
    aiaas_core::onnx::Runtime::find_in(&test_data().join("onnxruntime"))
        .expect("libonnxruntime.so (run scripts/setup.sh --test)")
}

/// A model file and scikit-learn's answers for its test rows.
pub(crate) struct Reference {
    pub(crate) bytes: Vec<u8>,
    input: String,
    pub(crate) rows: Vec<Vec<f32>>,
    proba: Vec<Vec<f64>>,
    label: Vec<i64>,
}

pub(crate) fn reference(name: &str) -> Reference {
    let dir = test_data().join("onnx");
    let bytes = std::fs::read(dir.join(format!("{name}.onnx")))
        .unwrap_or_else(|e| panic!("{name}.onnx: {e} (run scripts/setup.sh --test)"));
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let matrix = |v: &Value| -> Vec<Vec<f64>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    Reference {
        bytes,
        input: json["input"].as_str().unwrap().to_string(),
        rows: matrix(&json["rows"])
            .into_iter()
            .map(|r| r.into_iter().map(|x| x as f32).collect())
            .collect(),
        proba: matrix(&json["proba"]),
        label: json["label"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect(),
    }
}

impl Reference {
    pub(crate) fn tensor(&self, rows: std::ops::Range<usize>) -> Tensor {
        let width = self.rows[0].len();
        let data: Vec<f32> = self.rows[rows.clone()].iter().flatten().copied().collect();
        Tensor::new(
            self.input.clone(),
            vec![rows.len(), width],
            TensorData::Fp32(data),
        )
    }

    /// `probabilities` (rows x classes) equal scikit-learn's within 1e-5.
    fn check(&self, rows: std::ops::Range<usize>, probabilities: &Tensor) {
        let TensorData::Fp32(p) = &probabilities.data else {
            panic!("FP32 probabilities expected, got {probabilities:?}")
        };
        let classes = self.proba[0].len();
        assert_eq!(probabilities.shape, vec![rows.len(), classes]);
        for (i, r) in rows.enumerate() {
            for c in 0..classes {
                let (ours, theirs) = (p[i * classes + c] as f64, self.proba[r][c]);
                assert!(
                    (ours - theirs).abs() < 1e-5,
                    "row {r} class {c}: {ours} vs {theirs}"
                );
            }
        }
    }
}

pub(crate) async fn world() -> World {
    let lib = onnxruntime();
    World::start_with(move |c| c.onnxruntime = Some(lib)).await
}

fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    files_under(&p)
                } else {
                    1
                }
            })
            .sum()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_pipeline_serves_scikit_learns_probabilities_in_batches() {
    let w = world().await;
    let models = w.platform.models();
    let iris = reference("iris_pipeline");
    let dev = &w.acme.developer;
    let v = models
        .upload_onnx(dev, "iris", iris.bytes.clone(), None)
        .await
        .unwrap();
    assert_eq!((v.version, v.format), (1, Format::Onnx));
    assert_eq!(v.architecture, "onnx (skl2onnx)");
    assert_eq!(v.config["max_batch_size"], 32);
    assert_eq!(
        v.config["inputs"][0],
        json!({"name": "X", "datatype": "FP32", "dims": [-1, 4]})
    );
    let details = models.get(dev, "iris").await.unwrap();
    assert_eq!(details.model.task, Task::Tensor);
    // The file is stored sealed: its bytes appear nowhere in the data directory.
    let needle = &iris.bytes[iris.bytes.len() / 2..iris.bytes.len() / 2 + 64];
    assert!(!contains_bytes(w._dir.path(), needle));

    let refused = models
        .infer_tensors(dev, "iris", vec![iris.tensor(0..2)], None)
        .await;
    assert!(matches!(refused, Err(CoreError::Conflict(m)) if m.contains("not deployed")));
    // A batch waits up to 200 ms for more rows: the requests sent together below meet in
    // batches however fast the model answers.
    let batching = DeployRequest {
        max_delay_ms: Some(200),
        ..DeployRequest::default()
    };
    models.deploy(dev, "iris", batching).await.unwrap();

    let n = iris.rows.len();
    let all = models
        .infer_tensors(dev, "iris", vec![iris.tensor(0..n)], None)
        .await
        .unwrap();
    assert_eq!((all.model.as_str(), all.version), ("iris", 1));
    assert_eq!(all.outputs[0].name, "output_label");
    assert_eq!(all.outputs[0].data, TensorData::Int64(iris.label.clone()));
    assert_eq!(
        all.outputs[1].labels,
        Some(vec!["0".into(), "1".into(), "2".into()])
    );
    iris.check(0..n, &all.outputs[1]);

    // One row per request, all at once: merged into batches and split back in order.
    let answers = futures_util::future::join_all((0..n).map(|r| {
        let tensor = iris.tensor(r..r + 1);
        async move {
            models
                .infer_tensors(
                    dev,
                    "iris",
                    vec![tensor],
                    Some(vec!["output_probability".into()]),
                )
                .await
        }
    }))
    .await;
    for (r, a) in answers.into_iter().enumerate() {
        let a = a.unwrap();
        assert_eq!(a.outputs.len(), 1);
        iris.check(r..r + 1, &a.outputs[0]);
    }
    let metrics = w.platform.render_metrics();
    let passes = metric(&metrics, "aiaas_inference_batch_size_count", "iris");
    let rows = metric(&metrics, "aiaas_inference_batch_size_sum", "iris");
    assert_eq!(rows, (2 * n) as f64, "{metrics}");
    assert!(
        passes < (n + 1) as f64,
        "no request was merged: {passes} passes for {n} requests"
    );
    w.shutdown().await;
}

#[tokio::test]
async fn bad_uploads_and_requests_are_refused_and_store_nothing() {
    let w = world().await;
    let models = w.platform.models();
    let gbt = reference("breast_cancer_gbt");
    let acme = &w.acme.developer;
    let artifacts = w._dir.path().join("artifacts");
    let before = files_under(&artifacts);
    let refusals = [
        (b"not an onnx file".to_vec(), None, "cannot be loaded"),
        (Vec::new(), None, "empty"),
        (
            gbt.bytes[..gbt.bytes.len() / 2].to_vec(),
            None,
            "cannot be loaded",
        ),
        (
            gbt.bytes.clone(),
            Some(json!({"inputs": [{"name": "X", "datatype": "FP64", "dims": [-1, 30]}]})),
            "is FP32 in the model, not FP64",
        ),
        (
            gbt.bytes.clone(),
            Some(json!({"max_batch": 4})),
            "unknown field",
        ),
    ];
    for (bytes, config, want) in refusals {
        match models.upload_onnx(acme, "gbt", bytes, config).await {
            Err(CoreError::InvalidInput(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("expected a refusal naming {want:?}, got {other:?}"),
        }
    }
    assert!(matches!(
        models.get(acme, "gbt").await,
        Err(CoreError::NotFound(_))
    ));
    assert_eq!(
        files_under(&artifacts),
        before,
        "a refused upload left files behind"
    );
    let inference = &w.acme.inference;
    assert!(matches!(
        models
            .upload_onnx(inference, "gbt", gbt.bytes.clone(), None)
            .await,
        Err(CoreError::Forbidden(_))
    ));

    let config = json!({"max_batch_size": 0, "labels": ["malignant", "benign"], "threads": 1});
    let v = models
        .upload_onnx(acme, "gbt", gbt.bytes.clone(), Some(config))
        .await
        .unwrap();
    assert_eq!(v.labels, vec!["malignant", "benign"]);
    models
        .deploy(acme, "gbt", DeployRequest::default())
        .await
        .unwrap();
    let ok = models
        .infer_tensors(acme, "gbt", vec![gbt.tensor(0..3)], None)
        .await
        .unwrap();
    gbt.check(0..3, &ok.outputs[1]);
    assert_eq!(ok.labels, Some(vec!["malignant".into(), "benign".into()]));

    let wrong_type = Tensor::new("X", vec![1, 30], TensorData::Fp64(vec![0.0; 30]));
    let wrong_shape = Tensor::new("X", vec![1, 29], TensorData::Fp32(vec![0.0; 29]));
    let wrong_name = Tensor::new("Y", vec![1, 30], TensorData::Fp32(vec![0.0; 30]));
    for (t, want) in [
        (wrong_type, "input `X`: the model takes FP32, not FP64"),
        (wrong_shape, "input `X`: shape [1, 29] does not fit"),
        (wrong_name, "input `X` is missing"),
    ] {
        match models.infer_tensors(acme, "gbt", vec![t], None).await {
            Err(CoreError::InvalidInput(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
    let unknown = models
        .infer_tensors(
            acme,
            "gbt",
            vec![gbt.tensor(0..1)],
            Some(vec!["nope".into()]),
        )
        .await;
    assert!(matches!(unknown, Err(CoreError::InvalidInput(m)) if m.contains("no output \"nope\"")));
    // Texts are for classifiers; another tenant sees no such model.
    assert!(matches!(
        models.predict(acme, "gbt", vec!["x".into()]).await,
        Err(CoreError::InvalidInput(m)) if m.contains("takes tensors")
    ));
    assert!(matches!(
        models
            .infer_tensors(&w.rival.developer, "gbt", vec![gbt.tensor(0..1)], None)
            .await,
        Err(CoreError::NotFound(_))
    ));
    w.shutdown().await;
}

/// The value of `name{model="...label..."}` in a Prometheus text rendering.
pub(crate) fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {label} in:\n{text}"))
}

fn contains_bytes(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let p = e.path();
            if p.is_dir() {
                contains_bytes(&p, needle)
            } else {
                std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            }
        })
    })
}
