//! Real scikit-learn models converted with skl2onnx (scripts/setup.sh --test builds them
//! into `$AIAAS_TEST_DATA/onnx` with scikit-learn's own probabilities beside them) run on
//! the real ONNX Runtime library the set-up script takes from PyPI's onnxruntime wheel.

use std::path::PathBuf;

use aiaas_onnx::{DataType, OnnxError, OnnxModel, Runtime, Tensor, TensorData};

fn data() -> PathBuf {
    std::env::var_os("AIAAS_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/aiaas-data-cache")
        })
}

fn runtime() -> &'static Runtime {
    let dir = data().join("onnxruntime");
    let lib = Runtime::find_in(&dir).unwrap_or_else(|| {
        panic!(
            "no libonnxruntime.so in {} (run scripts/setup.sh --test)",
            dir.display()
        )
    });
    Runtime::load(&lib).expect("ONNX Runtime loads")
}

struct Reference {
    model: OnnxModel,
    input: String,
    rows: Vec<Vec<f32>>,
    classes: Vec<i64>,
    proba: Vec<Vec<f64>>,
    label: Vec<i64>,
}

fn reference(name: &str) -> Reference {
    let dir = data().join("onnx");
    let bytes = std::fs::read(dir.join(format!("{name}.onnx")))
        .unwrap_or_else(|e| panic!("{name}.onnx: {e} (run scripts/setup.sh --test)"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<Vec<f64>> {
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
    let ints = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    };
    Reference {
        model: OnnxModel::load(runtime(), &bytes, 2).expect("model loads"),
        input: json["input"].as_str().unwrap().to_string(),
        rows: floats(&json["rows"])
            .into_iter()
            .map(|r| r.into_iter().map(|x| x as f32).collect())
            .collect(),
        classes: ints(&json["classes"]),
        proba: floats(&json["proba"]),
        label: ints(&json["label"]),
    }
}

impl Reference {
    fn input(&self) -> Tensor {
        let width = self.rows[0].len();
        let flat: Vec<f32> = self.rows.iter().flatten().copied().collect();
        Tensor::new(
            &self.input,
            vec![self.rows.len(), width],
            TensorData::Fp32(flat),
        )
    }

    /// The model's probabilities equal scikit-learn's within 1e-5, and its labels.
    fn check(&self, outputs: &[Tensor]) {
        let probs = outputs
            .iter()
            .find(|t| t.name.contains("prob"))
            .expect("a probability output");
        assert_eq!(probs.shape, vec![self.rows.len(), self.classes.len()]);
        let TensorData::Fp32(p) = &probs.data else {
            panic!("{probs:?}")
        };
        for (r, want) in self.proba.iter().enumerate() {
            for (c, &w) in want.iter().enumerate() {
                let got = f64::from(p[r * self.classes.len() + c]);
                assert!(
                    (got - w).abs() <= 1e-5,
                    "row {r} class {c}: {got} vs scikit-learn's {w}"
                );
            }
        }
        let label = outputs
            .iter()
            .find(|t| t.name.contains("label"))
            .expect("a label output");
        assert_eq!(label.data, TensorData::Int64(self.label.clone()));
    }
}

#[test]
fn a_scaler_and_logistic_regression_pipeline_gives_scikit_learns_probabilities() {
    let r = reference("iris_pipeline");
    let sig = r.model.signature();
    assert_eq!(sig.inputs.len(), 1);
    assert_eq!(
        (sig.inputs[0].datatype, &sig.inputs[0].dims[1..]),
        (DataType::Fp32, &[4i64][..])
    );
    assert_eq!(sig.producer.as_deref(), Some("skl2onnx"));
    // The ZipMap at the end was taken out at load: its output is the probabilities
    // tensor, declared with its classes.
    let probabilities = sig
        .outputs
        .iter()
        .find(|o| o.name == "output_probability")
        .expect("the ZipMap's output keeps its name");
    assert_eq!(
        (probabilities.datatype, probabilities.dims.as_slice()),
        (DataType::Fp32, &[-1i64, 3][..])
    );
    let out = r.model.run(vec![r.input()], None).unwrap();
    r.check(&out);
    // The ZipMap output came back as a [rows, classes] tensor with the classes as labels.
    let zipped = out
        .iter()
        .find(|t| t.labels.is_some())
        .expect("the ZipMap output");
    let want: Vec<String> = r.classes.iter().map(|c| c.to_string()).collect();
    assert_eq!(zipped.labels.as_ref(), Some(&want));
    // Requested outputs only, in the order asked.
    let names: Vec<String> = sig.outputs.iter().rev().map(|o| o.name.clone()).collect();
    let some = r.model.run(vec![r.input()], Some(&names[..1])).unwrap();
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].name, names[0]);
}

#[test]
fn a_gradient_boosted_tree_model_gives_scikit_learns_probabilities() {
    let r = reference("breast_cancer_gbt");
    assert_eq!(r.model.signature().inputs[0].dims[1], 30);
    r.check(&r.model.run(vec![r.input()], None).unwrap());
    // One row at a time gives the same as the batch.
    for (i, row) in r.rows.iter().enumerate().take(3) {
        let t = Tensor::new(&r.input, vec![1, row.len()], TensorData::Fp32(row.clone()));
        let out = r.model.run(vec![t], None).unwrap();
        let p = out.iter().find(|t| t.name.contains("prob")).unwrap();
        let TensorData::Fp32(p) = &p.data else {
            panic!()
        };
        assert!((f64::from(p[1]) - r.proba[i][1]).abs() <= 1e-5);
    }
}

#[test]
fn requests_that_do_not_fit_the_signature_are_refused_with_the_input_named() {
    let r = reference("iris_pipeline");
    let input = r.input.clone();
    let wrong_type = Tensor::new(&input, vec![1, 4], TensorData::Fp64(vec![1.0; 4]));
    let wrong_shape = Tensor::new(&input, vec![1, 5], TensorData::Fp32(vec![1.0; 5]));
    let unknown = Tensor::new("nope", vec![1, 4], TensorData::Fp32(vec![1.0; 4]));
    for (inputs, want) in [
        (
            vec![wrong_type],
            format!("input `{input}`: the model takes FP32, not FP64"),
        ),
        (
            vec![wrong_shape],
            format!("input `{input}`: shape [1, 5] does not fit"),
        ),
        (vec![], format!("input `{input}` is missing")),
        (
            vec![r.input(), unknown],
            "the model has no input `nope`".to_string(),
        ),
    ] {
        match r.model.run(inputs, None) {
            Err(OnnxError::InvalidInput(m)) => assert!(m.starts_with(&want), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    let missing = r.model.run(vec![r.input()], Some(&["nope".to_string()]));
    assert!(
        matches!(missing, Err(OnnxError::InvalidInput(m)) if m == "the model has no output `nope`")
    );
}

#[test]
fn a_file_that_is_not_a_model_is_refused() {
    for bytes in [&b"not an onnx file"[..], &[][..]] {
        match OnnxModel::load(runtime(), bytes, 1) {
            Err(OnnxError::InvalidModel(m)) => assert!(!m.is_empty()),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("loaded"),
        }
    }
}
