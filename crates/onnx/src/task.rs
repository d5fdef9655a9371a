//! A model's task: the pre- and post-processing that lets it answer the native predict
//! with images or named features instead of raw tensors. Checked against the served
//! inputs and outputs at upload, like the rest of the configuration.

use aiaas_vision::{ImageSpec, Layout};
use serde::{Deserialize, Serialize};

use crate::{DataType, OnnxError, TensorSpec};

/// The most classes a prediction lists.
pub const MAX_TOP_K: usize = 1000;

/// What the model does, and how its requests and answers are shaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TaskConfig {
    /// Images in (PNG, JPEG, WebP, BMP), the top classes out.
    ImageClassification {
        /// Resize, crop and normalisation (`size` read from the graph when it fixes it).
        image: ImageSpec,
        /// The scores output (default: the first served output).
        #[serde(default)]
        output: Option<String>,
        /// Whether the scores are logits to turn into probabilities (default: when they
        /// are not already a distribution: all in 0-1, summing to 1).
        #[serde(default)]
        softmax: Option<bool>,
        /// Classes listed per image (default 5).
        #[serde(default = "default_top_k")]
        top_k: usize,
    },
    /// Rows of named features in, a label (and the raw outputs) out.
    Tabular {
        /// The feature names, in the order of the input's columns; or, for a model with
        /// one input per feature, the inputs' names.
        columns: Vec<String>,
        /// The class scores output, if the model classifies (its labels name the classes).
        #[serde(default)]
        output: Option<String>,
    },
}

fn default_top_k() -> usize {
    5
}

impl TaskConfig {
    /// Check the task against the served inputs and outputs and the labels, filling in
    /// what the graph fixes.
    pub(crate) fn resolve(
        mut self,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
        labels: Option<&[String]>,
    ) -> Result<TaskConfig, OnnxError> {
        let bad = |m: String| Err(OnnxError::InvalidInput(format!("config: task: {m}")));
        match &mut self {
            TaskConfig::ImageClassification {
                image,
                output,
                top_k,
                ..
            } => {
                let [input] = inputs else {
                    return bad(format!(
                        "an image classifier takes one input, this model takes {}",
                        inputs.len()
                    ));
                };
                if input.datatype != DataType::Fp32 || input.dims.len() != 4 {
                    return bad(format!(
                        "the image input `{}` must be FP32 with 4 dimensions, it is {} {:?}",
                        input.name,
                        input.datatype.name(),
                        input.dims
                    ));
                }
                let (c, h, w) = match image.layout {
                    Layout::Nchw => (input.dims[1], input.dims[2], input.dims[3]),
                    Layout::Nhwc => (input.dims[3], input.dims[1], input.dims[2]),
                };
                if c != 3 && c != -1 {
                    return bad(format!(
                        "the image input `{}` has {c} channels in {:?} layout ({:?}); give the layout the model uses",
                        input.name, image.layout, input.dims
                    ));
                }
                let fixed = (h > 0 && w > 0).then_some([h as u32, w as u32]);
                match (image.size, fixed) {
                    (None, Some(size)) => image.size = Some(size),
                    (Some(given), Some(size)) if given != size => {
                        return bad(format!(
                            "image size {given:?} differs from the model's [{h}, {w}]"
                        ))
                    }
                    _ => {}
                }
                image.check().map_err(|e| invalid(e.to_string()))?;
                let out = pick_output(outputs, output.as_deref())?;
                if out.datatype != DataType::Fp32 || out.dims.len() != 2 {
                    return bad(format!(
                        "the scores output `{}` must be FP32 [batch, classes], it is {} {:?}",
                        out.name,
                        out.datatype.name(),
                        out.dims
                    ));
                }
                check_labels(out, labels)?;
                *output = Some(out.name.clone());
                if !(1..=MAX_TOP_K).contains(top_k) {
                    return bad(format!("top_k must be 1-{MAX_TOP_K}, got {top_k}"));
                }
            }
            TaskConfig::Tabular { columns, output } => {
                if columns.is_empty() || columns.iter().any(|c| c.is_empty() || c.len() > 256) {
                    return bad("columns must be a non-empty list of names of 1-256 bytes".into());
                }
                for (i, c) in columns.iter().enumerate() {
                    if columns[..i].contains(c) {
                        return bad(format!("column `{c}` is listed twice"));
                    }
                }
                tabular_layout(columns, inputs).map_err(invalid)?;
                if let Some(name) = output.as_deref() {
                    let out = pick_output(outputs, Some(name))?;
                    if !matches!(out.datatype, DataType::Fp32 | DataType::Fp64)
                        || out.dims.len() != 2
                    {
                        return bad(format!(
                            "the class scores output `{}` must be FP32 or FP64 [batch, classes], it is {} {:?}",
                            out.name,
                            out.datatype.name(),
                            out.dims
                        ));
                    }
                    check_labels(out, labels)?;
                }
            }
        }
        Ok(self)
    }
}

/// How a tabular model takes its features.
#[derive(Debug, Clone, PartialEq)]
pub enum TabularLayout {
    /// One input `[batch, features]`, the columns in order.
    Matrix { input: String, datatype: DataType },
    /// One input per feature (`[batch, 1]` or `[batch]`), named as the columns.
    PerColumn(Vec<TensorSpec>),
}

/// The way `columns` map onto the model's inputs.
pub fn tabular_layout(columns: &[String], inputs: &[TensorSpec]) -> Result<TabularLayout, String> {
    let numeric = |d: DataType| !matches!(d, DataType::Bytes | DataType::Bool);
    if let [input] = inputs {
        if input.dims.len() == 2 && numeric(input.datatype) {
            let width = input.dims[1];
            if width >= 0 && width as usize != columns.len() {
                return Err(format!(
                    "the input `{}` takes {width} features, {} columns are named",
                    input.name,
                    columns.len()
                ));
            }
            return Ok(TabularLayout::Matrix {
                input: input.name.clone(),
                datatype: input.datatype,
            });
        }
    }
    if inputs.len() == columns.len()
        && inputs.iter().all(|i| {
            columns.contains(&i.name)
                && numeric(i.datatype)
                && (i.dims.len() == 1 || (i.dims.len() == 2 && i.dims[1] == 1))
        })
    {
        return Ok(TabularLayout::PerColumn(inputs.to_vec()));
    }
    Err(format!(
        "a tabular model takes one numeric input [batch, features] or one input [batch, 1] per column named as the column; this one takes {}",
        inputs
            .iter()
            .map(|i| format!("{} {} {:?}", i.name, i.datatype.name(), i.dims))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn invalid(m: String) -> OnnxError {
    OnnxError::InvalidInput(format!("config: task: {m}"))
}

fn pick_output<'a>(
    outputs: &'a [TensorSpec],
    name: Option<&str>,
) -> Result<&'a TensorSpec, OnnxError> {
    let found = match name {
        Some(n) => outputs.iter().find(|o| o.name == n),
        None => outputs.first(),
    };
    found.ok_or_else(|| {
        OnnxError::InvalidInput(format!(
            "config: task: the model serves no output {:?} (its outputs: {})",
            name.unwrap_or_default(),
            outputs
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn check_labels(out: &TensorSpec, labels: Option<&[String]>) -> Result<(), OnnxError> {
    if let (Some(labels), Some(&classes)) = (labels, out.dims.get(1)) {
        if classes >= 0 && labels.len() != classes as usize {
            return Err(OnnxError::InvalidInput(format!(
                "config: {} labels for the {classes} classes of output `{}`",
                labels.len(),
                out.name
            )));
        }
    }
    Ok(())
}
