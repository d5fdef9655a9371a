//! Whisper's encoder and decoder on candle, with the decoder's self-attention keys and
//! values kept between steps (candle-transformers' Whisper recomputes the whole sequence
//! at every token, which beam search multiplies by the beam) and the cross-attention's
//! keys and values computed once per window and shared by every beam: the beams' queries
//! ride in one matrix against them instead of copying the encoder's output per beam.
//!
//! The encoder, where the time goes (1500 positions per window whatever the speech),
//! runs on aiaas-kernels' fused ops: Q, K and V as one matmul, attention straight from
//! that projection with a vectorised softmax, bias and exact GELU fused in place on each
//! matmul's output.
//!
//! Weights are the Hugging Face layout that aiaas-hub's ct2.rs converts faster-whisper's
//! CTranslate2 files into.

use aiaas_kernels::{
    math, Activation, Attention as FusedAttention, BiasActivation, Dense, PackedLinear,
};
use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

/// The parts of a Hugging Face Whisper `config.json` the model needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub num_mel_bins: usize,
    pub max_source_positions: usize,
    pub d_model: usize,
    pub encoder_attention_heads: usize,
    pub encoder_layers: usize,
    pub vocab_size: usize,
    pub max_target_positions: usize,
    pub decoder_attention_heads: usize,
    pub decoder_layers: usize,
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
    /// (decoder layer, head) pairs whose cross-attention follows the audio a token was
    /// heard in (word timestamps); when absent, every head of the later half of layers.
    #[serde(default)]
    pub alignment_heads: Vec<(usize, usize)>,
}

/// `xs` (rows of `d`) times the transpose of `w` (rows of `d`, one per output), plus
/// `bias`: `[rows, outputs]`. The weight is read once, in parallel blocks of its rows,
/// every input row's dot product taken while a weight row is in cache: for the few
/// rows of a decoding step (one per beam) this beats a general GEMM, which packs the
/// whole weight again at every call.
fn times_rows(w: &[f32], xs: &[f32], d: usize, bias: Option<&[f32]>) -> Vec<f32> {
    use rayon::prelude::*;
    const BLOCK: usize = 512;
    let rows = xs.len() / d;
    let outputs = w.len() / d;
    let blocks: Vec<Vec<f32>> = w
        .par_chunks(BLOCK * d)
        .map(|block| {
            let mut out = Vec::with_capacity(rows * block.len() / d);
            for row in block.chunks_exact(d) {
                out.extend(xs.chunks_exact(d).map(|x| math::dot(row, x)));
            }
            out
        })
        .collect();
    let mut out = vec![0f32; rows * outputs];
    let mut o = 0;
    for block in &blocks {
        for scores in block.chunks_exact(rows.max(1)) {
            let b = bias.map_or(0.0, |b| b[o]);
            for (r, &v) in scores.iter().enumerate() {
                out[r * outputs + o] = v + b;
            }
            o += 1;
        }
    }
    out
}

/// A decoder's linear layer: by [`times_rows`] for a decoding step's few rows, by
/// candle's matmul for longer inputs (a prompt, the audio's keys and values).
struct StepLinear {
    linear: Linear,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    inputs: usize,
    outputs: usize,
}

impl StepLinear {
    /// Rows up to which a step's product is taken row by row.
    const FEW: usize = 32;

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / self.inputs;
        if rows > Self::FEW {
            return self.linear.forward(x);
        }
        let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let out = times_rows(&self.weight, &xs, self.inputs, self.bias.as_deref());
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("a matrix") = self.outputs;
        Tensor::from_vec(out, dims, x.device())
    }
}

fn step_linear(i: usize, o: usize, bias: bool, vb: VarBuilder) -> Result<StepLinear> {
    let linear = linear(i, o, bias, vb)?;
    Ok(StepLinear {
        weight: linear.weight().flatten_all()?.to_vec1()?,
        bias: linear.bias().map(|b| b.to_vec1()).transpose()?,
        linear,
        inputs: i,
        outputs: o,
    })
}

fn linear(i: usize, o: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get((o, i), "weight")?;
    let b = if bias { Some(vb.get(o, "bias")?) } else { None };
    Ok(Linear::new(w, b))
}

fn layer_norm(n: usize, vb: VarBuilder) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(n, "weight")?,
        vb.get(n, "bias")?,
        1e-5,
    ))
}

struct Attention {
    q: StepLinear,
    k: StepLinear,
    v: StepLinear,
    out: StepLinear,
    heads: usize,
}

impl Attention {
    fn load(d: usize, heads: usize, vb: VarBuilder) -> Result<Attention> {
        Ok(Attention {
            q: step_linear(d, d, true, vb.pp("q_proj"))?,
            k: step_linear(d, d, false, vb.pp("k_proj"))?,
            v: step_linear(d, d, true, vb.pp("v_proj"))?,
            out: step_linear(d, d, true, vb.pp("out_proj"))?,
            heads,
        })
    }

    /// [b, t, d] -> [b, heads, t, d / heads], scaled by the fourth root of the head size
    /// (applied to queries and keys both, as Whisper does).
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let dh = d / self.heads;
        let scale = (dh as f64).powf(-0.25);
        (x.reshape((b, t, self.heads, dh))?.transpose(1, 2)? * scale)?.contiguous()
    }

    fn merge(&self, x: &Tensor) -> Result<Tensor> {
        // [b, heads, t, dh] -> [b, t, d]
        x.transpose(1, 2)?.flatten_from(2)
    }

    /// Keys and values of `x` ([b, t, d]), each [b, heads, t, dh]; values unscaled.
    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = self.heads(&self.k.forward(x)?)?;
        let (b, t, d) = x.dims3()?;
        let v = self
            .v
            .forward(x)?
            .reshape((b, t, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()?;
        Ok((k, v))
    }

    /// Causal self-attention over `x` ([b, t, d]) after the `cache`d positions, which
    /// grow by t.
    fn forward_self(&self, x: &Tensor, cache: &mut Option<(Tensor, Tensor)>) -> Result<Tensor> {
        let q = self.heads(&self.q.forward(x)?)?;
        let (k, v) = self.keys_values(x)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        let t = q.dim(2)?;
        let total = k.dim(2)?;
        let mut scores = q.matmul(&k.transpose(2, 3)?.contiguous()?)?;
        if t > 1 {
            let past = total - t;
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| {
                    (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            let mask = Tensor::from_vec(mask, (t, total), x.device())?;
            scores = scores.broadcast_add(&mask)?;
        }
        let w = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = self.merge(&w.matmul(&v)?)?;
        *cache = Some((k, v));
        self.out.forward(&y)
    }

    /// Cross-attention of every sequence's queries ([b, t, d]) over one window's keys
    /// and values ([heads, n, dh]): the b x t queries of a head form one matrix.
    fn forward_cross(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        scores: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let dh = d / self.heads;
        // [b, heads, t, dh] -> [heads, b * t, dh]
        let q = self
            .heads(&self.q.forward(x)?)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((self.heads, b * t, dh))?;
        let qk = q.matmul(&k.transpose(1, 2)?)?;
        if let Some(keep) = scores {
            keep.push(qk.clone());
        }
        let w = candle_nn::ops::softmax_last_dim(&qk)?;
        let y = w
            .matmul(v)?
            .reshape((self.heads, b, t, dh))?
            .transpose(0, 1)?;
        self.out.forward(&self.merge(&y)?)
    }
}

struct Mlp {
    fc1: Dense,
    fc2: Dense,
}

impl Mlp {
    fn load(d: usize, vb: &VarBuilder, packed: bool) -> Result<Mlp> {
        Ok(Mlp {
            fc1: dense(&[(vb.pp("fc1"), true)], (d, 4 * d), packed)?,
            fc2: dense(&[(vb.pp("fc2"), true)], (4 * d, d), packed)?,
        })
    }

    /// `x` is `[rows, d]`. Whisper's GELU is the exact (erf) one.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x, Activation::Gelu)?;
        self.fc2.forward(&h, Activation::Identity)
    }
}

/// One layer of the `(vb, has_bias)` parts' `[out, in]` weights stacked along `out`
/// (a part without bias adds zeros).
fn dense(parts: &[(VarBuilder, bool)], dims: (usize, usize), packed: bool) -> Result<Dense> {
    let (i, o) = dims;
    let mut weights = Vec::new();
    let mut bias = Vec::new();
    for (vb, has_bias) in parts {
        weights.push(vb.get((o, i), "weight")?);
        if *has_bias {
            bias.extend(vb.get(o, "bias")?.to_vec1::<f32>()?);
        } else {
            bias.extend(std::iter::repeat_n(0.0, o));
        }
    }
    Dense::new(&Tensor::cat(&weights, 0)?, bias, packed)
}

/// An encoder layer on the fused kernels; hidden states are `[positions, d]`.
struct EncoderBlock {
    attn_ln: LayerNorm,
    qkv: Dense,
    out: Dense,
    mlp_ln: LayerNorm,
    mlp: Mlp,
    heads: usize,
}

impl EncoderBlock {
    fn load(d: usize, heads: usize, vb: VarBuilder, packed: bool) -> Result<EncoderBlock> {
        let a = vb.pp("self_attn");
        let qkv = [
            (a.pp("q_proj"), true),
            (a.pp("k_proj"), false),
            (a.pp("v_proj"), true),
        ];
        Ok(EncoderBlock {
            attn_ln: layer_norm(d, vb.pp("self_attn_layer_norm"))?,
            qkv: dense(&qkv, (d, d), packed)?,
            out: dense(&[(a.pp("out_proj"), true)], (d, d), packed)?,
            mlp_ln: layer_norm(d, vb.pp("final_layer_norm"))?,
            mlp: Mlp::load(d, &vb, packed)?,
            heads,
        })
    }

    /// `mask` is `[1, positions]` of zeros (every position attends to every other).
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (n, d) = x.dims2()?;
        let qkv = self
            .qkv
            .forward(&self.attn_ln.forward(x)?, Activation::Identity)?;
        // softmax(q k^T / sqrt(dh)) v: Whisper's dh^-1/4 on queries and keys both.
        let attention = FusedAttention {
            batch: 1,
            seq_len: n,
            heads: self.heads,
            head_dim: d / self.heads,
        };
        let context = qkv.apply_op2_no_bwd(mask, &attention)?;
        let x = (x + self.out.forward(&context, Activation::Identity)?)?;
        &x + self.mlp.forward(&self.mlp_ln.forward(&x)?)?
    }
}

/// Exact GELU in place on a contiguous tensor whose last dimension is `cols`.
fn gelu_in_place(x: &Tensor) -> Result<()> {
    x.inplace_op1(&BiasActivation {
        bias: None,
        cols: x.dim(D::Minus1)?,
        act: Activation::Gelu,
    })
}

/// A decoder layer: self-attention over the text so far, cross-attention to the audio.
struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross: Attention,
    cross_ln: LayerNorm,
    fc1: StepLinear,
    fc2: StepLinear,
    mlp_ln: LayerNorm,
}

impl Block {
    fn load(d: usize, heads: usize, vb: VarBuilder) -> Result<Block> {
        Ok(Block {
            attn: Attention::load(d, heads, vb.pp("self_attn"))?,
            attn_ln: layer_norm(d, vb.pp("self_attn_layer_norm"))?,
            cross: Attention::load(d, heads, vb.pp("encoder_attn"))?,
            cross_ln: layer_norm(d, vb.pp("encoder_attn_layer_norm"))?,
            fc1: step_linear(d, 4 * d, true, vb.pp("fc1"))?,
            fc2: step_linear(4 * d, d, true, vb.pp("fc2"))?,
            mlp_ln: layer_norm(d, vb.pp("final_layer_norm"))?,
        })
    }

    /// The feed-forward part on `[b, t, d]`.
    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?;
        gelu_in_place(&h)?;
        self.fc2.forward(&h)
    }
}

/// A loaded Whisper model (weights only; decoding state lives in [`DecoderState`]).
pub struct Whisper {
    conv1: Conv1d,
    conv2: Conv1d,
    encoder_positions: Tensor,
    encoder: Vec<EncoderBlock>,
    encoder_ln: LayerNorm,
    /// The token embeddings, `[vocab, d]` row-major: the decoder's input and, tied, its
    /// output projection.
    tokens: Vec<f32>,
    decoder_positions: Tensor,
    decoder: Vec<Block>,
    decoder_ln: LayerNorm,
    pub config: Config,
}

/// One window's decoding state: the encoder's keys and values per layer and the
/// decoder's cache for each sequence (the batch dimension).
pub struct DecoderState {
    cross: Vec<(Tensor, Tensor)>,
    cache: Vec<Option<(Tensor, Tensor)>>,
    /// Positions decoded so far.
    pub len: usize,
}

impl DecoderState {
    /// A fresh decoder over the same window.
    pub fn fork(&self) -> DecoderState {
        DecoderState {
            cross: self.cross.clone(),
            cache: vec![None; self.cache.len()],
            len: 0,
        }
    }

    /// Keep the sequences at `rows` (in that order; a row may repeat): beam search's
    /// reordering after each step.
    pub fn select(&mut self, rows: &[u32]) -> Result<()> {
        let idx = Tensor::new(rows, &Device::Cpu)?;
        for c in self.cache.iter_mut().flatten() {
            *c = (c.0.index_select(&idx, 0)?, c.1.index_select(&idx, 0)?);
        }
        Ok(())
    }
}

impl Whisper {
    pub fn load(vb: VarBuilder, config: Config) -> Result<Whisper> {
        let d = config.d_model;
        let conv = |i, stride, vb: VarBuilder| -> Result<Conv1d> {
            Ok(Conv1d::new(
                vb.get((d, i, 3), "weight")?,
                Some(vb.get(d, "bias")?),
                Conv1dConfig {
                    padding: 1,
                    stride,
                    dilation: 1,
                    groups: 1,
                    cudnn_fwd_algo: None,
                },
            ))
        };
        let enc = vb.pp("model.encoder");
        let dec = vb.pp("model.decoder");
        let packed = PackedLinear::supported();
        let (eh, dh) = (
            config.encoder_attention_heads,
            config.decoder_attention_heads,
        );
        Ok(Whisper {
            conv1: conv(config.num_mel_bins, 1, enc.pp("conv1"))?,
            conv2: conv(d, 2, enc.pp("conv2"))?,
            encoder_positions: enc
                .get((config.max_source_positions, d), "embed_positions.weight")?,
            encoder: (0..config.encoder_layers)
                .map(|i| EncoderBlock::load(d, eh, enc.pp(format!("layers.{i}")), packed))
                .collect::<Result<_>>()?,
            encoder_ln: layer_norm(d, enc.pp("layer_norm"))?,
            tokens: dec
                .get((config.vocab_size, d), "embed_tokens.weight")?
                .flatten_all()?
                .to_vec1()?,
            decoder_positions: dec
                .get((config.max_target_positions, d), "embed_positions.weight")?,
            decoder: (0..config.decoder_layers)
                .map(|i| Block::load(d, dh, dec.pp(format!("layers.{i}"))))
                .collect::<Result<_>>()?,
            decoder_ln: layer_norm(d, dec.pp("layer_norm"))?,
            config,
        })
    }

    /// Encode one window of log-mel frames ([1, mels, 3000]) and prepare the decoder's
    /// state for it.
    pub fn encode(&self, mel: &Tensor) -> Result<DecoderState> {
        let x = self.conv1.forward(mel)?;
        gelu_in_place(&x)?;
        let x = self.conv2.forward(&x)?;
        gelu_in_place(&x)?;
        // [1, d, n] -> [n, d]
        let x = x.squeeze(0)?.t()?.contiguous()?;
        let n = x.dim(0)?;
        let mut x = (x + self.encoder_positions.narrow(0, 0, n)?)?;
        let mask = Tensor::zeros((1, n), candle_core::DType::F32, mel.device())?;
        for b in &self.encoder {
            x = b.forward(&x, &mask)?;
        }
        let x = self.encoder_ln.forward(&x)?.unsqueeze(0)?;
        let cross = self
            .decoder
            .iter()
            .map(|b| {
                let (k, v) = b.cross.keys_values(&x)?;
                // [1, heads, n, dh] -> [heads, n, dh]
                Ok((k.squeeze(0)?, v.squeeze(0)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderState {
            cross,
            cache: vec![None; self.decoder.len()],
            len: 0,
        })
    }

    /// Feed `tokens` ([b, t]) after the state's positions: the logits ([b, vocab]) at
    /// each sequence's last position.
    pub fn decode(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor> {
        let x = self.hidden(state, tokens)?;
        let t = x.dim(1)?;
        let last = self
            .decoder_ln
            .forward(&x.narrow(1, t - 1, 1)?.squeeze(1)?)?;
        self.logits(&last)
    }

    /// The logits at every position of `tokens` ([1, t]) fed after the state's
    /// positions ([t, vocab]): the first step, whose start token's position gives the
    /// no-speech probability and the language.
    pub fn decode_all(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor> {
        let x = self
            .decoder_ln
            .forward(&self.hidden(state, tokens)?.squeeze(0)?)?;
        self.logits(&x)
    }

    /// `x` (`[rows, d]`) against every token's embedding: `[rows, vocab]`. Each step
    /// reads the 80 MB embedding once, in parallel blocks of tokens, every row's dot
    /// product taken while a token's embedding is in cache; a general GEMM would pack
    /// the whole matrix again at every step for a handful of rows.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.config.d_model;
        let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let rows = xs.len() / d;
        let out = times_rows(&self.tokens, &xs, d, None);
        Tensor::from_vec(out, (rows, self.config.vocab_size), x.device())
    }

    /// The embeddings of `tokens` (`[b, t]`): `[b, t, d]`.
    fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let d = self.config.d_model;
        let (b, t) = tokens.dims2()?;
        let mut out = Vec::with_capacity(b * t * d);
        for id in tokens.flatten_all()?.to_vec1::<u32>()? {
            let at = id as usize * d;
            let row = self.tokens.get(at..at + d).ok_or_else(|| {
                candle_core::Error::Msg(format!("token {id} is outside the vocabulary"))
            })?;
            out.extend_from_slice(row);
        }
        Tensor::from_vec(out, (b, t, d), tokens.device())
    }

    /// The decoder over `tokens` (`[1, t]`) from a fresh state of the window, keeping
    /// each layer's cross-attention scores (`[heads, t, frames]`, before the softmax)
    /// and the logits at every position: what word alignment reads.
    pub fn align_pass(
        &self,
        window: &DecoderState,
        tokens: &[u32],
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut state = window.fork();
        let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let mut scores = Vec::new();
        let x = self.hidden_keeping(&mut state, &input, Some(&mut scores))?;
        let x = self.decoder_ln.forward(&x.squeeze(0)?)?;
        Ok((self.logits(&x)?, scores))
    }

    /// The (layer, head) pairs that align text to audio.
    pub fn alignment_heads(&self) -> Vec<(usize, usize)> {
        let c = &self.config;
        if !c.alignment_heads.is_empty() {
            return c.alignment_heads.clone();
        }
        (c.decoder_layers / 2..c.decoder_layers)
            .flat_map(|l| (0..c.decoder_attention_heads).map(move |h| (l, h)))
            .collect()
    }

    fn hidden(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor> {
        self.hidden_keeping(state, tokens, None)
    }

    fn hidden_keeping(
        &self,
        state: &mut DecoderState,
        tokens: &Tensor,
        mut scores: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let (_, t) = tokens.dims2()?;
        let positions = self.decoder_positions.narrow(0, state.len, t)?;
        let mut x = self.embed(tokens)?.broadcast_add(&positions)?;
        for (i, b) in self.decoder.iter().enumerate() {
            x = (&x
                + b.attn
                    .forward_self(&b.attn_ln.forward(&x)?, &mut state.cache[i])?)?;
            let (k, v) = &state.cross[i];
            let keep = scores.as_deref_mut();
            x = (&x
                + b.cross
                    .forward_cross(&b.cross_ln.forward(&x)?, k, v, keep)?)?;
            x = (&x + b.mlp(&b.mlp_ln.forward(&x)?)?)?;
        }
        state.len += t;
        Ok(x)
    }
}
