//! A version's serving configuration: Triton's `config.pbtxt`, in JSON. What the user
//! gives (`ConfigRequest`, every field optional) is checked against the graph and
//! completed from it into the stored `ModelConfig`.

use serde::{Deserialize, Serialize};

use crate::{OnnxError, Signature, TaskConfig, TensorSpec};

/// Rows merged into one run when the graph allows batching and the user says nothing.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 32;
/// The largest `max_batch_size` accepted.
pub const MAX_BATCH_SIZE: usize = 4096;

/// The configuration as uploaded: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    /// Most rows (first dimension) merged into one run; 0: each request runs alone.
    pub max_batch_size: Option<usize>,
    /// The inputs, each as in the graph; a variable dimension (-1) may be fixed here.
    pub inputs: Option<Vec<TensorSpec>>,
    /// The outputs served (default: all of the graph's).
    pub outputs: Option<Vec<TensorSpec>>,
    pub dynamic_batching: Option<DynamicBatching>,
    /// Intra-op threads of the model's session (0: ONNX Runtime's default, one per
    /// physical core).
    pub threads: Option<usize>,
    /// Names of the classes along the last dimension of a classification output, for
    /// the classification extension (a ZipMap output names its own).
    pub labels: Option<Vec<String>>,
    /// Pre- and post-processing for the native predict: `image-classification` or
    /// `tabular`.
    pub task: Option<TaskConfig>,
}

/// How requests wait for each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicBatching {
    /// Longest a request waits for others to fill its batch (0: batch only what is
    /// already queued).
    #[serde(default)]
    pub max_queue_delay_ms: u64,
}

/// The configuration a version serves with: complete, checked against its graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub max_batch_size: usize,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub dynamic_batching: Option<DynamicBatching>,
    pub threads: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// The tool that wrote the model, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskConfig>,
}

impl ModelConfig {
    /// Check `request` against the graph's `signature` and fill in what it leaves out.
    pub fn resolve(
        request: ConfigRequest,
        signature: &Signature,
    ) -> Result<ModelConfig, OnnxError> {
        let bad = |m: String| Err(OnnxError::InvalidInput(format!("config: {m}")));
        let inputs = match request.inputs {
            None => signature.inputs.clone(),
            Some(given) => {
                for g in &signature.inputs {
                    if !given.iter().any(|t| t.name == g.name) {
                        return bad(format!("input `{}` of the model is not listed", g.name));
                    }
                }
                given
                    .into_iter()
                    .map(|t| narrow(t, &signature.inputs, "input"))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let outputs = match request.outputs {
            None => signature.outputs.clone(),
            Some(given) if given.is_empty() => return bad("list at least one output".into()),
            Some(given) => given
                .into_iter()
                .map(|t| narrow(t, &signature.outputs, "output"))
                .collect::<Result<Vec<_>, _>>()?,
        };
        for (i, t) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|o| o.name == t.name) {
                return bad(format!("input `{}` is listed twice", t.name));
            }
        }
        // Batching merges requests along the first dimension: every input and output
        // must have a variable one.
        let fixed = inputs
            .iter()
            .chain(&outputs)
            .find(|t| t.dims.first().is_none_or(|&d| d >= 0));
        let max_batch_size = match (request.max_batch_size, fixed) {
            (Some(n), _) if n > MAX_BATCH_SIZE => {
                return bad(format!(
                    "max_batch_size must be at most {MAX_BATCH_SIZE}, got {n}"
                ))
            }
            (Some(n), Some(t)) if n > 0 => {
                return bad(format!(
                    "max_batch_size {n} needs a variable first dimension (-1) on every input \
                     and output, but `{}` has dims {:?}; use max_batch_size 0",
                    t.name, t.dims
                ))
            }
            (Some(n), _) => n,
            (None, Some(_)) => 0,
            (None, None) => DEFAULT_MAX_BATCH_SIZE,
        };
        if request.dynamic_batching.is_some() && max_batch_size == 0 {
            return bad("dynamic_batching needs max_batch_size above 0".into());
        }
        if let Some(d) = request.dynamic_batching {
            if d.max_queue_delay_ms > 10_000 {
                return bad(format!(
                    "dynamic_batching.max_queue_delay_ms must be at most 10000, got {}",
                    d.max_queue_delay_ms
                ));
            }
        }
        let threads = request.threads.unwrap_or(0);
        if threads > 64 {
            return bad(format!(
                "threads must be 0 (ONNX Runtime's choice) to 64, got {threads}"
            ));
        }
        if let Some(labels) = &request.labels {
            if labels.is_empty() || labels.iter().any(|l| l.is_empty() || l.len() > 256) {
                return bad("labels must be a non-empty list of names of 1-256 bytes".into());
            }
        }
        let task = request
            .task
            .map(|t| t.resolve(&inputs, &outputs, request.labels.as_deref()))
            .transpose()?;
        Ok(ModelConfig {
            task,
            max_batch_size,
            inputs,
            outputs,
            dynamic_batching: request.dynamic_batching,
            threads,
            labels: request.labels,
            producer: signature.producer.clone(),
        })
    }

    /// The served outputs' names, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|t| t.name.clone()).collect()
    }
}

/// A tensor of the configuration checked against the graph's of the same name: the same
/// datatype and rank, with a variable dimension possibly fixed.
fn narrow(given: TensorSpec, graph: &[TensorSpec], what: &str) -> Result<TensorSpec, OnnxError> {
    let bad = |m: String| Err(OnnxError::InvalidInput(format!("config: {m}")));
    let Some(g) = graph.iter().find(|g| g.name == given.name) else {
        let names: Vec<&str> = graph.iter().map(|g| g.name.as_str()).collect();
        return bad(format!(
            "the model has no {what} `{}` (its {what}s: {})",
            given.name,
            names.join(", ")
        ));
    };
    if given.datatype != g.datatype {
        return bad(format!(
            "{what} `{}` is {} in the model, not {}",
            g.name,
            g.datatype.name(),
            given.datatype.name()
        ));
    }
    let fits = given.dims.len() == g.dims.len()
        && given
            .dims
            .iter()
            .zip(&g.dims)
            .all(|(&c, &m)| c >= -1 && (m < 0 || c == m));
    if !fits {
        return bad(format!(
            "{what} `{}` has dims {:?} in the model; {:?} does not fit them",
            g.name, g.dims, given.dims
        ));
    }
    Ok(given)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataType;

    fn spec(name: &str, datatype: DataType, dims: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype,
            dims: dims.to_vec(),
        }
    }

    fn signature(first: i64) -> Signature {
        Signature {
            inputs: vec![spec("x", DataType::Fp32, &[first, 4])],
            outputs: vec![
                spec("label", DataType::Int64, &[first]),
                spec("probabilities", DataType::Fp32, &[first, 3]),
            ],
            producer: Some("skl2onnx".into()),
        }
    }

    fn request(json: &str) -> ConfigRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_come_from_the_graph() {
        let c = ModelConfig::resolve(ConfigRequest::default(), &signature(-1)).unwrap();
        assert_eq!(c.max_batch_size, DEFAULT_MAX_BATCH_SIZE);
        assert_eq!(c.inputs, signature(-1).inputs);
        assert_eq!(c.output_names(), vec!["label", "probabilities"]);
        let fixed = ModelConfig::resolve(ConfigRequest::default(), &signature(1)).unwrap();
        assert_eq!(fixed.max_batch_size, 0);
    }

    #[test]
    fn a_given_config_must_fit_the_graph() {
        let ok = ModelConfig::resolve(
            request(r#"{"max_batch_size": 8, "outputs": [{"name": "probabilities", "datatype": "FP32", "dims": [-1, 3]}],
                        "dynamic_batching": {"max_queue_delay_ms": 2}, "threads": 1, "labels": ["a", "b", "c"]}"#),
            &signature(-1),
        )
        .unwrap();
        assert_eq!(ok.max_batch_size, 8);
        assert_eq!(ok.output_names(), vec!["probabilities"]);
        let cases = [
            (
                r#"{"inputs": [{"name": "y", "datatype": "FP32", "dims": [-1, 4]}]}"#,
                "input `x` of the model is not listed",
            ),
            (
                r#"{"inputs": [{"name": "x", "datatype": "FP64", "dims": [-1, 4]}]}"#,
                "is FP32 in the model, not FP64",
            ),
            (
                r#"{"inputs": [{"name": "x", "datatype": "FP32", "dims": [-1, 5]}]}"#,
                "does not fit",
            ),
            (
                r#"{"outputs": [{"name": "z", "datatype": "FP32", "dims": [-1]}]}"#,
                "no output `z` (its outputs: label, probabilities)",
            ),
            (r#"{"outputs": []}"#, "at least one output"),
            (r#"{"max_batch_size": 5000}"#, "at most 4096"),
            (r#"{"threads": 100}"#, "threads"),
            (r#"{"labels": []}"#, "labels"),
        ];
        for (json, want) in cases {
            let e = ModelConfig::resolve(request(json), &signature(-1))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
        let e = ModelConfig::resolve(request(r#"{"max_batch_size": 4}"#), &signature(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("variable first dimension"), "{e}");
        assert!(serde_json::from_str::<ConfigRequest>(r#"{"max_batch": 4}"#).is_err());
        assert!(serde_json::from_str::<ConfigRequest>(
            r#"{"inputs": [{"name": "x", "datatype": "FLOAT", "dims": [1]}]}"#
        )
        .unwrap_err()
        .to_string()
        .contains("unknown datatype"));
    }

    fn image_signature(dims: &[i64]) -> Signature {
        Signature {
            inputs: vec![spec("input", DataType::Fp32, dims)],
            outputs: vec![spec("logits", DataType::Fp32, &[-1, 1000])],
            producer: None,
        }
    }

    #[test]
    fn an_image_task_takes_its_size_from_the_graph_and_must_fit_it() {
        let c = ModelConfig::resolve(
            request(
                r#"{"task": {"kind": "image-classification", "image": {"mean": [0.5, 0.5, 0.5]}}}"#,
            ),
            &image_signature(&[-1, 3, 224, 224]),
        )
        .unwrap();
        let Some(TaskConfig::ImageClassification {
            image,
            output,
            top_k,
            softmax,
        }) = &c.task
        else {
            panic!("{:?}", c.task)
        };
        assert_eq!(
            (image.size, output.as_deref(), *top_k, *softmax),
            (Some([224, 224]), Some("logits"), 5, None)
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["task"]["kind"], "image-classification");
        assert_eq!(json["task"]["image"]["size"], serde_json::json!([224, 224]));
        let cases = [
            (
                r#"{"task": {"kind": "image-classification", "image": {}}}"#,
                &[-1, 3, -1, -1][..],
                "size",
            ),
            (
                r#"{"task": {"kind": "image-classification", "image": {"size": [100, 100]}}}"#,
                &[-1, 3, 224, 224],
                "differs",
            ),
            (
                r#"{"task": {"kind": "image-classification", "image": {"layout": "NHWC"}}}"#,
                &[-1, 3, 224, 224],
                "channels",
            ),
            (
                r#"{"task": {"kind": "image-classification", "image": {}, "output": "nope"}}"#,
                &[-1, 3, 224, 224],
                "no output",
            ),
            (
                r#"{"task": {"kind": "image-classification", "image": {}, "top_k": 0}}"#,
                &[-1, 3, 224, 224],
                "top_k",
            ),
            (
                r#"{"labels": ["a", "b"], "task": {"kind": "image-classification", "image": {}}}"#,
                &[-1, 3, 224, 224],
                "2 labels for the 1000 classes",
            ),
            (
                r#"{"task": {"kind": "image-classification", "image": {}}}"#,
                &[-1, 3, 224],
                "4 dimensions",
            ),
        ];
        for (json, dims, want) in cases {
            let e = ModelConfig::resolve(request(json), &image_signature(dims))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
        assert!(serde_json::from_str::<ConfigRequest>(
            r#"{"task": {"kind": "image-classification", "image": {}, "extra": 1}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<ConfigRequest>(r#"{"task": {"kind": "video"}}"#).is_err());
    }

    #[test]
    fn a_tabular_task_names_the_columns_of_its_input() {
        let c = ModelConfig::resolve(
            request(r#"{"task": {"kind": "tabular", "columns": ["a", "b", "c", "d"], "output": "probabilities"}}"#),
            &signature(-1),
        )
        .unwrap();
        assert!(matches!(c.task, Some(TaskConfig::Tabular { .. })));
        for (json, want) in [
            (
                r#"{"task": {"kind": "tabular", "columns": ["a", "b"]}}"#,
                "takes 4 features, 2 columns",
            ),
            (
                r#"{"task": {"kind": "tabular", "columns": ["a", "a", "c", "d"]}}"#,
                "listed twice",
            ),
            (
                r#"{"task": {"kind": "tabular", "columns": []}}"#,
                "non-empty",
            ),
            (
                r#"{"task": {"kind": "tabular", "columns": ["a", "b", "c", "d"], "output": "label"}}"#,
                "FP32 or FP64",
            ),
        ] {
            let e = ModelConfig::resolve(request(json), &signature(-1))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
        // One input per feature, named as the columns.
        let per_column = Signature {
            inputs: vec![
                spec("age", DataType::Fp32, &[-1, 1]),
                spec("income", DataType::Fp64, &[-1, 1]),
            ],
            outputs: vec![spec("probabilities", DataType::Fp32, &[-1, 2])],
            producer: None,
        };
        let c = ModelConfig::resolve(
            request(r#"{"task": {"kind": "tabular", "columns": ["income", "age"]}}"#),
            &per_column,
        )
        .unwrap();
        assert!(c.task.is_some());
        assert!(ModelConfig::resolve(
            request(r#"{"task": {"kind": "tabular", "columns": ["income", "height"]}}"#),
            &per_column,
        )
        .is_err());
    }
}
