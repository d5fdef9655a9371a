//! The frozen base model: a llama or gemma3 GGUF read with candle's GGUF reader, every
//! weight dequantised to f32 by the same block formats llama.cpp uses, so training sees
//! exactly the values serving multiplies by. Weights keep the row-major layout of the
//! GGUF tensors: a projection is (out, in) and is applied as `x W^T`. A layer's query,
//! key and value projections are stacked into one matrix, and its gate and up
//! projections into another, so each group is one matrix product (engine.rs).

use std::path::Path;

use aiaas_kernels::PackedLinear;
use candle_core::quantized::gguf_file;
use candle_core::Device;

use crate::lora::Target;
use crate::{FinetuneError, Result};

/// The decoder families trained here, as llama.cpp names them in `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// SmolLM2, Llama, Mistral-style decoders: SwiGLU, RoPE on interleaved pairs.
    Llama,
    /// Gemma 3: scaled embeddings, RMS-normed queries and keys, norms after attention
    /// and feed-forward, GELU-gated feed-forward, NeoX RoPE, sliding-window layers.
    Gemma3,
}

/// The base model's shape, from its GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseConfig {
    pub architecture: String,
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab: usize,
    pub rope_base: f32,
    /// Positions are multiplied by this on the full-attention layers (linear RoPE
    /// scaling; 1 without).
    pub rope_scale: f32,
    pub rms_eps: f64,
    /// Sliding-window layers: the window (a token sees the `window` tokens up to and
    /// including itself), their RoPE base, and which layers use it.
    pub sliding: Option<Sliding>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sliding {
    pub window: usize,
    pub rope_base: f32,
    pub layers: Vec<bool>,
}

impl BaseConfig {
    /// Queries are multiplied by this before the dot products.
    pub fn attention_scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    /// The embeddings are multiplied by this (Gemma: sqrt of the width).
    pub fn embed_scale(&self) -> f64 {
        match self.arch {
            Arch::Llama => 1.0,
            Arch::Gemma3 => (self.n_embd as f64).sqrt(),
        }
    }

    pub fn is_sliding(&self, layer: usize) -> bool {
        self.sliding.as_ref().is_some_and(|s| s.layers[layer])
    }
}

/// A row-major f32 matrix.
pub(crate) struct Matrix {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) data: Vec<f32>,
}

pub(crate) struct Layer {
    pub(crate) attn_norm: Vec<f32>,
    pub(crate) ffn_norm: Vec<f32>,
    /// The query, key and value projections' rows, stacked: `(q + 2 kv) x n_embd`.
    pub(crate) qkv: Matrix,
    pub(crate) o: Matrix,
    /// The gate and up projections' rows, stacked: `2 n_ff x n_embd`.
    pub(crate) gate_up: Matrix,
    pub(crate) down: Matrix,
    /// Gemma 3: RMS norms of each query and key head, of the attention's and of the
    /// feed-forward's output.
    pub(crate) q_norm: Option<Vec<f32>>,
    pub(crate) k_norm: Option<Vec<f32>>,
    pub(crate) post_attn_norm: Option<Vec<f32>>,
    pub(crate) post_ffn_norm: Option<Vec<f32>>,
    /// `qkv`, `o`, `gate_up` and `down` again, packed for aiaas-kernels' AVX-512 product
    /// (forward passes; the backward passes read the matrices above), where the CPU has
    /// AVX-512.
    pub(crate) packed: Option<Box<[PackedLinear; 4]>>,
}

impl Layer {
    /// Packs the projections for the forward pass where the CPU runs the packed kernel.
    /// gemm, given a weight to multiply by transposed, ran these products at 50-150
    /// GFLOP/s on a 2-core AVX-512 Xeon; packed, at 130-190 (crates/finetune/examples/
    /// gemm_probe.rs). It doubles the layers' memory.
    pub(crate) fn pack(&mut self) {
        if !PackedLinear::supported() {
            return;
        }
        let pack = |m: &Matrix| PackedLinear::new(&m.data, &vec![0.0; m.rows], m.cols, m.rows);
        self.packed = Some(Box::new([
            pack(&self.qkv),
            pack(&self.o),
            pack(&self.gate_up),
            pack(&self.down),
        ]));
    }

    /// A projection's weight, `(out, in)` row-major, and its first column in the output
    /// of the matrix it is stacked in.
    pub(crate) fn weight(&self, c: &BaseConfig, target: Target) -> (&[f32], usize) {
        let (q, kv, d, ff) = (
            c.n_head * c.head_dim,
            c.n_head_kv * c.head_dim,
            c.n_embd,
            c.n_ff,
        );
        match target {
            Target::Q => (&self.qkv.data[..q * d], 0),
            Target::K => (&self.qkv.data[q * d..(q + kv) * d], q),
            Target::V => (&self.qkv.data[(q + kv) * d..], q + kv),
            Target::O => (&self.o.data, 0),
            Target::Gate => (&self.gate_up.data[..ff * d], 0),
            Target::Up => (&self.gate_up.data[ff * d..], ff),
            Target::Down => (&self.down.data, 0),
        }
    }
}

/// A base model's weights, frozen.
pub struct Base {
    pub config: BaseConfig,
    pub(crate) embed: Matrix,
    pub(crate) layers: Vec<Layer>,
    pub(crate) out_norm: Vec<f32>,
    /// The output projection; `None` where it is tied to the token embeddings.
    pub(crate) output: Option<Matrix>,
}

impl Base {
    /// Read a GGUF file of the llama (SmolLM2, Llama, Mistral-style decoders) or gemma3
    /// architecture.
    pub fn load(path: &Path) -> Result<Base> {
        let mut file = std::fs::File::open(path)?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| {
            FinetuneError::Model(format!("{}: not a GGUF file: {e}", path.display()))
        })?;
        let meta = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| FinetuneError::Model(format!("the GGUF has no {key}")))
        };
        let architecture = meta("general.architecture")?.to_string()?.clone();
        let arch = match architecture.as_str() {
            "llama" => Arch::Llama,
            "gemma3" => Arch::Gemma3,
            other => {
                return Err(FinetuneError::Model(format!(
                    "fine-tuning trains llama-architecture models (SmolLM2, Llama, Mistral) and Gemma 3; this one is {other:?}"
                )))
            }
        };
        let prefix = architecture.clone();
        let key = |k: &str| format!("{prefix}.{k}");
        let optional = |k: &str| content.metadata.get(&key(k));
        let count = |k: &str| -> Result<usize> { Ok(meta(&key(k))?.to_u32()? as usize) };
        let n_embd = count("embedding_length")?;
        let n_head = count("attention.head_count")?;
        let n_layer = count("block_count")?;
        let rope_base = match optional("rope.freq_base") {
            Some(v) => v.to_f32()?,
            None => 10_000.0,
        };
        let linear_scaling = optional("rope.scaling.type")
            .and_then(|v| v.to_string().ok())
            .is_some_and(|t| t == "linear");
        let rope_scale = match optional("rope.scaling.factor") {
            Some(f) if linear_scaling => 1.0 / f.to_f32()?,
            _ => 1.0,
        };
        let rms_eps = meta(&key("attention.layer_norm_rms_epsilon"))?.to_f32()? as f64;
        let head_dim = match optional("attention.key_length") {
            Some(v) => v.to_u32()? as usize,
            None => n_embd / n_head,
        };
        // As llama.cpp reads a Gemma 3: a window on five layers of every six (or as the
        // file's pattern says), those layers with their own RoPE base (10000 by default).
        let sliding = match (arch, optional("attention.sliding_window")) {
            (Arch::Gemma3, Some(w)) if w.to_u32()? > 0 => {
                let pattern = match optional("attention.sliding_window_pattern") {
                    Some(p) => p.to_u32()? as usize,
                    None => 6,
                };
                Some(Sliding {
                    window: w.to_u32()? as usize,
                    rope_base: match optional("rope.freq_base_swa") {
                        Some(v) => v.to_f32()?,
                        None => 10_000.0,
                    },
                    layers: (0..n_layer)
                        .map(|l| pattern == 0 || l % pattern < pattern - 1)
                        .collect(),
                })
            }
            _ => None,
        };
        let n_head_kv = count("attention.head_count_kv").unwrap_or(n_head);
        let n_ff = count("feed_forward_length")?;
        if n_head_kv == 0 || !n_head.is_multiple_of(n_head_kv) || !head_dim.is_multiple_of(2) {
            return Err(FinetuneError::Model("unsupported attention heads".into()));
        }
        let device = Device::Cpu;
        // Each tensor with the shape the metadata implies, `(rows, cols)` = `(out, in)`.
        let mut tensor = |name: &str, rows: Option<usize>, cols: usize| -> Result<Matrix> {
            let q = content
                .tensor(&mut file, name, &device)
                .map_err(|e| FinetuneError::Model(format!("the GGUF's tensor {name}: {e}")))?;
            let t = q.dequantize(&device)?;
            let dims = t.dims().to_vec();
            let fits = match (rows, dims.as_slice()) {
                (Some(r), &[a, b]) => a == r && b == cols,
                (None, &[_, b]) => b == cols,
                (None, &[a]) => cols == a,
                _ => false,
            };
            if !fits {
                return Err(FinetuneError::Model(format!(
                    "the GGUF's {name} is {dims:?}, its metadata implies {:?}",
                    (rows, cols)
                )));
            }
            Ok(Matrix {
                rows: if dims.len() == 2 { dims[0] } else { 1 },
                cols,
                data: t.flatten_all()?.to_vec1()?,
            })
        };
        let (q, kv) = (n_head * head_dim, n_head_kv * head_dim);
        let embed = tensor("token_embd.weight", None, n_embd)?;
        let vector = |m: Matrix| m.data;
        let stack = |parts: Vec<Matrix>| -> Matrix {
            let cols = parts[0].cols;
            let rows = parts.iter().map(|m| m.rows).sum();
            let mut data = Vec::with_capacity(rows * cols);
            for p in parts {
                data.extend_from_slice(&p.data);
            }
            Matrix { rows, cols, data }
        };
        let mut layers = Vec::with_capacity(n_layer);
        for l in 0..n_layer {
            let mut proj = |target: Target, rows: usize, cols: usize| {
                tensor(
                    &format!("blk.{l}.{}.weight", target.gguf_name()),
                    Some(rows),
                    cols,
                )
            };
            let qkv = stack(vec![
                proj(Target::Q, q, n_embd)?,
                proj(Target::K, kv, n_embd)?,
                proj(Target::V, kv, n_embd)?,
            ]);
            let o = proj(Target::O, n_embd, q)?;
            let gate_up = stack(vec![
                proj(Target::Gate, n_ff, n_embd)?,
                proj(Target::Up, n_ff, n_embd)?,
            ]);
            let down = proj(Target::Down, n_embd, n_ff)?;
            let mut norm = |name: &str, width: usize| -> Result<Vec<f32>> {
                Ok(vector(tensor(
                    &format!("blk.{l}.{name}.weight"),
                    None,
                    width,
                )?))
            };
            let mut gemma = |name: &str, width: usize| -> Result<Option<Vec<f32>>> {
                match arch {
                    Arch::Llama => Ok(None),
                    Arch::Gemma3 => Ok(Some(norm(name, width)?)),
                }
            };
            let (q_norm, k_norm, post_attn_norm, post_ffn_norm) = (
                gemma("attn_q_norm", head_dim)?,
                gemma("attn_k_norm", head_dim)?,
                gemma("post_attention_norm", n_embd)?,
                gemma("post_ffw_norm", n_embd)?,
            );
            let mut layer = Layer {
                attn_norm: norm("attn_norm", n_embd)?,
                ffn_norm: norm("ffn_norm", n_embd)?,
                qkv,
                o,
                gate_up,
                down,
                q_norm,
                k_norm,
                post_attn_norm,
                post_ffn_norm,
                packed: None,
            };
            layer.pack();
            layers.push(layer);
        }
        let out_norm = vector(tensor("output_norm.weight", None, n_embd)?);
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(tensor("output.weight", None, n_embd)?)
        } else {
            None
        };
        let config = BaseConfig {
            architecture,
            arch,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            vocab: embed.rows,
            rope_base,
            rope_scale,
            rms_eps,
            sliding,
        };
        let base = Base {
            config,
            embed,
            layers,
            out_norm,
            output,
        };
        Ok(base)
    }

    /// (out, in) of a projection.
    pub fn shape_of(&self, target: Target) -> (usize, usize) {
        let c = &self.config;
        let (q, kv) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        match target {
            Target::Q => (q, c.n_embd),
            Target::K | Target::V => (kv, c.n_embd),
            Target::O => (c.n_embd, q),
            Target::Gate | Target::Up => (c.n_ff, c.n_embd),
            Target::Down => (c.n_embd, c.n_ff),
        }
    }

    /// The output projection, `(vocab, n_embd)`.
    pub(crate) fn output(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.embed)
    }
}
