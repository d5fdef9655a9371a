//! Task models: the native `predict` of uploaded ONNX models whose configuration names a
//! task. `image-classification` decodes the images (off the async workers), resizes,
//! crops and normalises them as configured, runs them as one batch and answers the top
//! classes; `tabular` turns rows of named features into the model's input tensors and
//! answers each row's outputs (and its class, when the model classifies).

use std::collections::BTreeMap;

use aiaas_engine::onnx::vision::{self, ImageSpec};
use aiaas_engine::onnx::{tabular_layout, DataType, TabularLayout, TaskConfig, Tensor, TensorData};
use aiaas_types::{Format, Permission, Principal};
use serde_json::{Map, Value};

use crate::auth::require;
use crate::models::Models;
use crate::tensor_models::config_of;
use crate::{CoreError, Result};

/// Most images or rows in one predict call.
pub const MAX_ITEMS_PER_REQUEST: usize = 256;

/// What a task model is asked.
#[derive(Debug, Clone)]
pub enum TaskInput {
    /// Encoded images (PNG, JPEG, WebP, BMP).
    Images(Vec<Vec<u8>>),
    /// Rows of named features.
    Rows(Vec<Map<String, Value>>),
}

/// One class and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub label: String,
    pub index: usize,
    pub score: f32,
}

/// The answer for one image or row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskPrediction {
    /// The top class, when the model classifies.
    pub top: Option<Ranked>,
    /// The best classes, best first.
    pub top_k: Vec<Ranked>,
    /// A tabular model's outputs for this row, by name.
    pub outputs: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskAnswer {
    pub model: String,
    pub version: i64,
    /// `image-classification` or `tabular`.
    pub task: &'static str,
    pub predictions: Vec<TaskPrediction>,
}

impl Models {
    /// Images or rows through a deployed task model: `name`, `name:version` or
    /// `name:alias`. `top_k` overrides the configured number of classes listed.
    pub async fn predict_task(
        &self,
        principal: &Principal,
        reference: &str,
        input: TaskInput,
        top_k: Option<usize>,
    ) -> Result<TaskAnswer> {
        require(principal, Permission::Infer)?;
        let count = match &input {
            TaskInput::Images(i) => i.len(),
            TaskInput::Rows(r) => r.len(),
        };
        if count == 0 || count > MAX_ITEMS_PER_REQUEST {
            return Err(CoreError::InvalidInput(format!(
                "give 1-{MAX_ITEMS_PER_REQUEST} images or rows per request, got {count}"
            )));
        }
        if top_k.is_some_and(|k| !(1..=aiaas_engine::onnx::MAX_TOP_K).contains(&k)) {
            return Err(CoreError::InvalidInput(format!(
                "top_k must be 1-{}",
                aiaas_engine::onnx::MAX_TOP_K
            )));
        }
        let serving = self.serving(principal, reference).await?;
        let name = serving.model.name.clone();
        if serving.version.format != Format::Onnx {
            return Err(CoreError::InvalidInput(format!(
                "model {name:?} classifies texts: send {{\"texts\": [...]}}"
            )));
        }
        let config = config_of(&serving.version)?;
        let labels = config.labels.clone();
        let predictions = match (config.task.clone(), input) {
            (
                Some(TaskConfig::ImageClassification {
                    image,
                    output,
                    softmax,
                    top_k: configured,
                }),
                TaskInput::Images(images),
            ) => {
                let input = &config.inputs[0];
                let output = output.unwrap_or_else(|| config.outputs[0].name.clone());
                // A model that fixes its batch dimension takes that many images a run.
                let per_run = usize::try_from(input.dims[0]).ok().filter(|&n| n > 0);
                let tensors = image_tensors(&input.name, image, images, per_run).await?;
                let mut scores = Vec::new();
                for t in tensors {
                    let answer = self.infer_on(&serving, &config, vec![t], Some(vec![output.clone()])).await?;
                    scores.extend(answer.outputs);
                }
                let k = top_k.unwrap_or(configured);
                let mut out = Vec::with_capacity(count);
                for t in &scores {
                    out.extend(rank_rows(t, labels.as_deref(), softmax, k)?);
                }
                out
            }
            (Some(TaskConfig::Tabular { columns, output }), TaskInput::Rows(rows)) => {
                let inputs = tabular_tensors(&columns, &config.inputs, &rows)?;
                let answer = self.infer_on(&serving, &config, inputs, None).await?;
                tabular_predictions(&answer.outputs, output.as_deref(), labels.as_deref(), top_k, count)?
            }
            (Some(TaskConfig::ImageClassification { .. }), TaskInput::Rows(_)) => {
                return Err(CoreError::InvalidInput(format!(
                    "model {name:?} classifies images: send {{\"images\": [base64, ...]}} or multipart files"
                )))
            }
            (Some(TaskConfig::Tabular { columns, .. }), TaskInput::Images(_)) => {
                return Err(CoreError::InvalidInput(format!(
                    "model {name:?} takes rows of features: send {{\"rows\": [{{{}}}]}}",
                    columns.iter().map(|c| format!("{c:?}: ...")).collect::<Vec<_>>().join(", ")
                )))
            }
            (None, _) => {
                return Err(CoreError::InvalidInput(format!(
                    "model {name:?} has no task in its configuration: call it through KServe v2 \
                     (POST /v2/models/{name}/infer), or upload it with a config naming its task"
                )))
            }
        };
        Ok(TaskAnswer {
            model: name,
            version: serving.version.version,
            task: match config.task {
                Some(TaskConfig::ImageClassification { .. }) => "image-classification",
                _ => "tabular",
            },
            predictions,
        })
    }
}

/// Decode and pre-process the images on a blocking thread: one tensor, or one per
/// `per_run` images for a model with a fixed batch dimension.
async fn image_tensors(
    input: &str,
    spec: ImageSpec,
    images: Vec<Vec<u8>>,
    per_run: Option<usize>,
) -> Result<Vec<Tensor>> {
    let input = input.to_string();
    tokio::task::spawn_blocking(move || {
        let dims = spec
            .row_dims()
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let mut rows = Vec::with_capacity(images.len());
        for (i, bytes) in images.iter().enumerate() {
            let img = vision::decode(bytes, vision::MAX_PIXELS)
                .map_err(|e| CoreError::InvalidInput(format!("image {i}: {e}")))?;
            rows.push(
                spec.tensor_row(&img)
                    .map_err(|e| CoreError::InvalidInput(format!("image {i}: {e}")))?,
            );
        }
        let chunk = per_run.unwrap_or(rows.len()).max(1);
        Ok(rows
            .chunks(chunk)
            .map(|part| {
                let mut shape = vec![part.len()];
                shape.extend(dims);
                Tensor::new(input.clone(), shape, TensorData::Fp32(part.concat()))
            })
            .collect())
    })
    .await?
}

/// Each row of a `[rows, classes]` scores tensor as its best `k` classes.
fn rank_rows(
    scores: &Tensor,
    labels: Option<&[String]>,
    softmax: Option<bool>,
    k: usize,
) -> Result<Vec<TaskPrediction>> {
    let [rows, classes] = scores.shape[..] else {
        return Err(CoreError::Internal(format!(
            "output {} has shape {:?}, not [rows, classes]",
            scores.name, scores.shape
        )));
    };
    let labels = labels.or(scores.labels.as_deref());
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        let mut row: Vec<f64> = (0..classes)
            .map(|c| scores.data.f64_at(r * classes + c).unwrap_or(f64::NAN))
            .collect();
        let is_distribution = row.iter().all(|p| (0.0..=1.0).contains(p))
            && (row.iter().sum::<f64>() - 1.0).abs() < 1e-3;
        if softmax.unwrap_or(!is_distribution) {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
            row.iter_mut().for_each(|v| *v = (*v - max).exp() / sum);
        }
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let top_k: Vec<Ranked> = order
            .into_iter()
            .take(k.min(classes))
            .map(|index| Ranked {
                label: labels
                    .and_then(|l| l.get(index).cloned())
                    .unwrap_or_else(|| index.to_string()),
                index,
                score: row[index] as f32,
            })
            .collect();
        out.push(TaskPrediction {
            top: top_k.first().cloned(),
            top_k,
            outputs: BTreeMap::new(),
        });
    }
    Ok(out)
}

/// The model's input tensors for rows of named features.
fn tabular_tensors(
    columns: &[String],
    inputs: &[aiaas_engine::onnx::TensorSpec],
    rows: &[Map<String, Value>],
) -> Result<Vec<Tensor>> {
    let layout = tabular_layout(columns, inputs).map_err(CoreError::Internal)?;
    // Every row names every column, with a number.
    let mut values = vec![Vec::with_capacity(rows.len()); columns.len()];
    for (r, row) in rows.iter().enumerate() {
        if let Some(extra) = row.keys().find(|k| !columns.contains(k)) {
            return Err(CoreError::InvalidInput(format!(
                "row {r}: unknown column {extra:?} (the model's columns: {})",
                columns.join(", ")
            )));
        }
        for (c, name) in columns.iter().enumerate() {
            let v = row.get(name).ok_or_else(|| {
                CoreError::InvalidInput(format!("row {r}: column {name:?} is missing"))
            })?;
            let x = v.as_f64().ok_or_else(|| {
                CoreError::InvalidInput(format!(
                    "row {r}: column {name:?} must be a number, got {v}"
                ))
            })?;
            values[c].push(x);
        }
    }
    let n = rows.len();
    let typed = |datatype: DataType, numbers: &[f64], what: &str| {
        TensorData::from_f64s(datatype, numbers).ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "{what} takes {}: a value does not fit it",
                datatype.name()
            ))
        })
    };
    Ok(match layout {
        TabularLayout::Matrix { input, datatype } => {
            let width = columns.len();
            let mut flat = Vec::with_capacity(n * width);
            for r in 0..n {
                flat.extend(values.iter().map(|col| col[r]));
            }
            vec![Tensor::new(
                input.clone(),
                vec![n, width],
                typed(datatype, &flat, &input)?,
            )]
        }
        TabularLayout::PerColumn(specs) => specs
            .iter()
            .map(|spec| {
                let c = columns
                    .iter()
                    .position(|c| *c == spec.name)
                    .expect("checked at upload");
                let shape = if spec.dims.len() == 1 {
                    vec![n]
                } else {
                    vec![n, 1]
                };
                Ok(Tensor::new(
                    spec.name.clone(),
                    shape,
                    typed(spec.datatype, &values[c], &spec.name)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?,
    })
}

/// Each row's outputs by name, and its class from the scores output (the configured
/// one, else the one output whose classes are named).
fn tabular_predictions(
    outputs: &[Tensor],
    output: Option<&str>,
    labels: Option<&[String]>,
    top_k: Option<usize>,
    rows: usize,
) -> Result<Vec<TaskPrediction>> {
    let mut out = vec![TaskPrediction::default(); rows];
    for t in outputs {
        let width: usize = t.shape.iter().skip(1).product();
        for (r, p) in out.iter_mut().enumerate() {
            let cells: Vec<Value> = (r * width..(r + 1) * width)
                .map(|i| match &t.data {
                    TensorData::Bytes(b) => {
                        Value::String(String::from_utf8_lossy(&b[i]).into_owned())
                    }
                    d => d
                        .f64_at(i)
                        .and_then(serde_json::Number::from_f64)
                        .map_or(Value::Null, Value::Number),
                })
                .collect();
            let value = if t.shape.len() == 1 {
                cells.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(cells)
            };
            p.outputs.insert(t.name.clone(), value);
        }
    }
    let scores = match output {
        Some(name) => outputs.iter().find(|t| t.name == name),
        None => outputs
            .iter()
            .find(|t| t.shape.len() == 2 && t.labels.is_some()),
    };
    if let Some(scores) = scores {
        let classes = scores.shape.get(1).copied().unwrap_or(0);
        let ranked = rank_rows(scores, labels, Some(false), top_k.unwrap_or(classes))?;
        for (p, r) in out.iter_mut().zip(ranked) {
            p.top = r.top;
            p.top_k = r.top_k;
        }
    }
    Ok(out)
}
