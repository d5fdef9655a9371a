//! User-uploaded ONNX models on ONNX Runtime, through the `ort` bindings with the
//! runtime loaded from a shared library at run time (`Runtime::load`).
//!
//! ONNX Runtime rather than `tract`: the models users bring from scikit-learn (through
//! skl2onnx), XGBoost and LightGBM use the `ai.onnx.ml` operators (ZipMap, Scaler,
//! TreeEnsembleRegressor, SVMs, imputers, one-hot encoders), which tract does not
//! implement, and sequence/map values, which it does not represent.
//!
//! API boundary: `OnnxModel::load` (bytes in, the graph's `Signature` out), `run` with
//! named `Tensor`s of any KServe datatype in and out. A ZipMap output (a sequence of
//! maps, one per row: class → probability) comes back as a tensor `[rows, classes]` with
//! the classes, in key order, as its `labels`.
//!
//! Architecture invariant: `run` computes on the caller's thread (the serving layer
//! calls it from its own worker threads, never from the async runtime); one session per
//! loaded version, shared behind a mutex.

mod config;
mod task;
mod tensor;
mod zipmap;

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{DynMapValueType, DynValue, TensorElementType, ValueType};

pub use aiaas_vision as vision;
pub use config::{
    ConfigRequest, DynamicBatching, ModelConfig, DEFAULT_MAX_BATCH_SIZE, MAX_BATCH_SIZE,
};
pub use task::{tabular_layout, TabularLayout, TaskConfig, MAX_TOP_K};
pub use tensor::{DataType, Tensor, TensorData};

/// Errors of loading and running ONNX models.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OnnxError {
    /// The runtime library is missing or unusable.
    #[error("ONNX Runtime is not available: {0}")]
    Runtime(String),
    /// The file is not a model ONNX Runtime can run.
    #[error("the ONNX model cannot be loaded: {0}")]
    InvalidModel(String),
    /// The request does not fit the model's signature.
    #[error("{0}")]
    InvalidInput(String),
    #[error("the ONNX model failed: {0}")]
    Run(String),
}

/// The process's ONNX Runtime (one per process, as ONNX Runtime wants).
pub struct Runtime {
    env: ort::environment::Environment,
    version: String,
}

fn ort_log(
    level: ort::logging::LogLevel,
    _category: &str,
    _id: &str,
    location: &str,
    message: &str,
) {
    use ort::logging::LogLevel;
    match level {
        LogLevel::Verbose => tracing::trace!(target: "onnxruntime", location, "{message}"),
        LogLevel::Info => tracing::debug!(target: "onnxruntime", location, "{message}"),
        LogLevel::Warning | LogLevel::Error | LogLevel::Fatal => {
            tracing::warn!(target: "onnxruntime", location, "{message}")
        }
    }
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

impl Runtime {
    /// Load ONNX Runtime from `library` (a `libonnxruntime.so`) the first time; later
    /// calls return the runtime already loaded, whatever path they name.
    pub fn load(library: &Path) -> Result<&'static Runtime, OnnxError> {
        RUNTIME
            .get_or_init(|| {
                if !library.is_file() {
                    return Err(format!("{} is not a file", library.display()));
                }
                let builder = ort::init_from(library).map_err(|e| e.to_string())?;
                // ONNX Runtime's own messages go to the server's log (not to stderr in its
                // own format): a failed run is already the caller's error and counted, so
                // its errors are warnings here.
                let env = builder
                    .with_name("aiaas")
                    .with_logger(std::sync::Arc::new(ort_log))
                    .build()
                    .map_err(|e| e.to_string())?;
                let version = ort::info().to_string();
                Ok(Runtime { env, version })
            })
            .as_ref()
            .map_err(|e| OnnxError::Runtime(e.clone()))
    }

    /// The newest `libonnxruntime.so*` in `dir` (where the set-up script puts the one it
    /// takes from PyPI's wheel), if any.
    pub fn find_in(dir: &Path) -> Option<std::path::PathBuf> {
        let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
            })
            .collect();
        found.sort();
        found.pop()
    }

    /// ONNX Runtime's build description (its git branch names the release).
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// One input or output of a model: its name, element type and dimensions (-1 where a
/// dimension varies).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub dims: Vec<i64>,
}

/// What a model takes and gives.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// The tool that wrote the model (`skl2onnx`, `pytorch`, ...), when it says.
    pub producer: Option<String>,
}

/// A loaded ONNX model.
pub struct OnnxModel {
    session: Mutex<Session>,
    signature: Signature,
    /// The classes of outputs that were a ZipMap's (see zipmap.rs), by output name.
    labels: std::collections::HashMap<String, Vec<String>>,
}

impl OnnxModel {
    /// Parse and prepare `bytes` (an `.onnx` file) with `threads` intra-op threads (0:
    /// ONNX Runtime's default, one per physical core).
    /// Every input and output must be a tensor of a KServe datatype, or (outputs only) a
    /// ZipMap's sequence of maps.
    pub fn load(runtime: &Runtime, bytes: &[u8], threads: usize) -> Result<OnnxModel, OnnxError> {
        // A ZipMap at the end of the graph is replaced by its probabilities tensor; should
        // the rewritten graph not load, the model loads as it came.
        if let Some(unzipped) = zipmap::unzip(bytes) {
            if let Ok(mut model) = OnnxModel::load_graph(runtime, &unzipped.bytes, threads) {
                model.labels = unzipped.labels;
                return Ok(model);
            }
        }
        OnnxModel::load_graph(runtime, bytes, threads)
    }

    fn load_graph(runtime: &Runtime, bytes: &[u8], threads: usize) -> Result<OnnxModel, OnnxError> {
        let invalid = |e: ort::Error| OnnxError::InvalidModel(e.to_string());
        let mut builder = Session::builder(&runtime.env)
            .map_err(invalid)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| invalid(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| invalid(e.into()))?
            .with_log_level(ort::logging::LogLevel::Warning)
            .map_err(|e| invalid(e.into()))?;
        if threads > 0 {
            builder = builder
                .with_intra_threads(threads)
                .map_err(|e| invalid(e.into()))?;
        }

        let session = builder.commit_from_memory(bytes).map_err(invalid)?;
        let spec = |name: &str, ty: &ValueType, output: bool| -> Result<TensorSpec, OnnxError> {
            let (datatype, dims) = match ty {
                ValueType::Tensor { ty, shape, .. } => (DataType::of(*ty), shape.to_vec()),
                ValueType::Sequence(inner) if output => match inner.as_ref() {
                    ValueType::Map { value, .. } => (DataType::of(*value), vec![-1, -1]),
                    _ => (None, vec![]),
                },
                _ => (None, vec![]),
            };
            let datatype = datatype.ok_or_else(|| {
                OnnxError::InvalidModel(format!(
                    "{} `{name}` has type {ty}, which aiaas cannot exchange (tensors of BOOL, \
                     UINT8-64, INT8-64, FP16, FP32, FP64 or BYTES only)",
                    if output { "output" } else { "input" }
                ))
            })?;
            Ok(TensorSpec {
                name: name.to_string(),
                datatype,
                dims,
            })
        };
        let inputs = session
            .inputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype(), false))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = session
            .outputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype(), true))
            .collect::<Result<Vec<_>, _>>()?;
        let producer = session
            .metadata()
            .ok()
            .and_then(|m| m.producer())
            .filter(|p| !p.is_empty());
        Ok(OnnxModel {
            session: Mutex::new(session),
            signature: Signature {
                inputs,
                outputs,
                producer,
            },
            labels: Default::default(),
        })
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// A custom metadata entry of the model (`metadata_props`), when it has one.
    pub fn custom_metadata(&self, key: &str) -> Option<String> {
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        session.metadata().ok().and_then(|m| m.custom(key))
    }

    /// Run the model on `inputs` (each of the model's inputs once, by name), returning
    /// the outputs named in `outputs` (all of them when `None`), in that order.
    pub fn run(
        &self,
        inputs: Vec<Tensor>,
        outputs: Option<&[String]>,
    ) -> Result<Vec<Tensor>, OnnxError> {
        let wanted = self.check_request(&inputs, outputs)?;
        let mut inputs = inputs;
        let mut values: Vec<(String, DynValue)> = Vec::with_capacity(inputs.len());
        for spec in &self.signature.inputs {
            if let Some(at) = inputs.iter().position(|t| t.name == spec.name) {
                let t = inputs.swap_remove(at);
                values.push((spec.name.clone(), t.into_value()?));
            }
        }
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let run = |e: ort::Error| OnnxError::Run(e.to_string());
        let result = session.run(values).map_err(run)?;
        wanted
            .into_iter()
            .map(|spec| {
                let value = result.get(&spec.name).ok_or_else(|| {
                    OnnxError::Run(format!("output `{}` was not produced", spec.name))
                })?;
                match value.dtype() {
                    ValueType::Sequence(_) => zipmap(&spec.name, value),
                    _ => Tensor::from_value(&spec.name, spec.datatype, value).map(|mut t| {
                        t.labels = self.labels.get(&spec.name).cloned();
                        t
                    }),
                }
            })
            .collect()
    }

    /// Check a request without running it: each of the model's inputs given once, each
    /// fitting its spec, and every output asked for one the model has. Returns the specs
    /// of the outputs to give.
    pub fn check_request(
        &self,
        inputs: &[Tensor],
        outputs: Option<&[String]>,
    ) -> Result<Vec<&TensorSpec>, OnnxError> {
        for spec in &self.signature.inputs {
            let mut given = inputs.iter().filter(|t| t.name == spec.name);
            let Some(t) = given.next() else {
                return Err(OnnxError::InvalidInput(format!(
                    "input `{}` is missing",
                    spec.name
                )));
            };
            if given.next().is_some() {
                return Err(OnnxError::InvalidInput(format!(
                    "input `{}` is given twice",
                    spec.name
                )));
            }
            t.check(spec)?;
        }
        if let Some(extra) = inputs
            .iter()
            .find(|t| !self.signature.inputs.iter().any(|s| s.name == t.name))
        {
            let names: Vec<&str> = self
                .signature
                .inputs
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            return Err(OnnxError::InvalidInput(format!(
                "the model has no input `{}` (its inputs: {})",
                extra.name,
                names.join(", ")
            )));
        }
        let wanted: Vec<&TensorSpec> = match outputs {
            None => self.signature.outputs.iter().collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    self.signature
                        .outputs
                        .iter()
                        .find(|s| &s.name == n)
                        .ok_or_else(|| {
                            OnnxError::InvalidInput(format!("the model has no output `{n}`"))
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(wanted)
    }
}

/// A ZipMap output (one map per row, class → probability) as a `[rows, classes]` tensor
/// with the classes in key order as labels.
fn zipmap(name: &str, value: &DynValue) -> Result<Tensor, OnnxError> {
    let text_keys = matches!(
        value.dtype(),
        ValueType::Sequence(m) if matches!(m.as_ref(), ValueType::Map { key: TensorElementType::String, .. })
    );
    let (labels, rows, data) = if text_keys {
        zipmap_rows::<String>(name, value)?
    } else {
        zipmap_rows::<i64>(name, value)?
    };
    Ok(Tensor {
        name: name.to_string(),
        shape: vec![rows, labels.len()],
        data: TensorData::Fp32(data),
        labels: Some(labels),
    })
}

/// The classes (of the first row; every row must have the same), the number of rows, and
/// the probabilities row by row in class order, of a ZipMap output keyed by `K`.
fn zipmap_rows<K>(name: &str, value: &DynValue) -> Result<(Vec<String>, usize, Vec<f32>), OnnxError>
where
    K: ort::value::IntoTensorElementType + Clone + std::hash::Hash + Eq + Ord + std::fmt::Display,
{
    let run = |e: ort::Error| OnnxError::Run(format!("output `{name}`: {e}"));
    let rows = value
        .try_extract_sequence::<DynMapValueType>()
        .map_err(run)?;
    let mut classes: Vec<K> = Vec::new();
    let mut data = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let mut kv = row.try_extract_key_values::<K, f32>().map_err(run)?;
        kv.sort_by(|a, b| a.0.cmp(&b.0));
        data.extend(kv.iter().map(|(_, v)| *v));
        if r == 0 {
            classes = kv.into_iter().map(|(k, _)| k).collect();
        } else if !kv.iter().map(|(k, _)| k).eq(classes.iter()) {
            return Err(OnnxError::Run(format!(
                "output `{name}`: rows have different classes"
            )));
        }
    }
    Ok((classes.iter().map(K::to_string).collect(), rows.len(), data))
}
