//! Whisper's encoder and decoder on candle, with the decoder's self-attention keys and
//! values kept between steps (candle-transformers' Whisper recomputes the whole sequence
//! at every token, which beam search multiplies by the beam) and the cross-attention's
//! keys and values computed once per window and shared by every beam: the beams' queries
//! ride in one matrix against them instead of copying the encoder's output per beam.
//!
//! Weights are the Hugging Face layout that aiaas-hub's ct2.rs converts faster-whisper's
//! CTranslate2 files into.

use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{Conv1d, Conv1dConfig, Embedding, LayerNorm, Linear, VarBuilder};
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
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn load(d: usize, heads: usize, vb: VarBuilder) -> Result<Attention> {
        Ok(Attention {
            q: linear(d, d, true, vb.pp("q_proj"))?,
            k: linear(d, d, false, vb.pp("k_proj"))?,
            v: linear(d, d, true, vb.pp("v_proj"))?,
            out: linear(d, d, true, vb.pp("out_proj"))?,
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

    /// Self-attention over `x` ([b, t, d]) after the `cache`d positions, which grow by t.
    fn forward_self(
        &self,
        x: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
        causal: bool,
    ) -> Result<Tensor> {
        let q = self.heads(&self.q.forward(x)?)?;
        let (k, v) = self.keys_values(x)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        let t = q.dim(2)?;
        let total = k.dim(2)?;
        let mut scores = q.matmul(&k.transpose(2, 3)?.contiguous()?)?;
        if causal && t > 1 {
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
    fn forward_cross(&self, x: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let dh = d / self.heads;
        // [b, heads, t, dh] -> [heads, b * t, dh]
        let q = self
            .heads(&self.q.forward(x)?)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((self.heads, b * t, dh))?;
        let w = candle_nn::ops::softmax_last_dim(&q.matmul(&k.transpose(1, 2)?)?)?;
        let y = w
            .matmul(v)?
            .reshape((self.heads, b, t, dh))?
            .transpose(0, 1)?;
        self.out.forward(&self.merge(&y)?)
    }
}

struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Whisper's GELU is the exact (erf) one.
        self.fc2.forward(&self.fc1.forward(x)?.gelu_erf()?)
    }
}

struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross: Option<(Attention, LayerNorm)>,
    mlp: Mlp,
    mlp_ln: LayerNorm,
}

impl Block {
    fn load(d: usize, heads: usize, cross: bool, vb: VarBuilder) -> Result<Block> {
        let cross = if cross {
            Some((
                Attention::load(d, heads, vb.pp("encoder_attn"))?,
                layer_norm(d, vb.pp("encoder_attn_layer_norm"))?,
            ))
        } else {
            None
        };
        Ok(Block {
            attn: Attention::load(d, heads, vb.pp("self_attn"))?,
            attn_ln: layer_norm(d, vb.pp("self_attn_layer_norm"))?,
            cross,
            mlp: Mlp {
                fc1: linear(d, 4 * d, true, vb.pp("fc1"))?,
                fc2: linear(4 * d, d, true, vb.pp("fc2"))?,
            },
            mlp_ln: layer_norm(d, vb.pp("final_layer_norm"))?,
        })
    }
}

/// A loaded Whisper model (weights only; decoding state lives in [`DecoderState`]).
pub struct Whisper {
    conv1: Conv1d,
    conv2: Conv1d,
    encoder_positions: Tensor,
    encoder: Vec<Block>,
    encoder_ln: LayerNorm,
    tokens: Embedding,
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
        let blocks = |n: usize, heads: usize, cross: bool, vb: &VarBuilder| {
            (0..n)
                .map(|i| Block::load(d, heads, cross, vb.pp(format!("layers.{i}"))))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Whisper {
            conv1: conv(config.num_mel_bins, 1, enc.pp("conv1"))?,
            conv2: conv(d, 2, enc.pp("conv2"))?,
            encoder_positions: enc
                .get((config.max_source_positions, d), "embed_positions.weight")?,
            encoder: blocks(
                config.encoder_layers,
                config.encoder_attention_heads,
                false,
                &enc,
            )?,
            encoder_ln: layer_norm(d, enc.pp("layer_norm"))?,
            tokens: Embedding::new(dec.get((config.vocab_size, d), "embed_tokens.weight")?, d),
            decoder_positions: dec
                .get((config.max_target_positions, d), "embed_positions.weight")?,
            decoder: blocks(
                config.decoder_layers,
                config.decoder_attention_heads,
                true,
                &dec,
            )?,
            decoder_ln: layer_norm(d, dec.pp("layer_norm"))?,
            config,
        })
    }

    /// Encode one window of log-mel frames ([1, mels, 3000]) and prepare the decoder's
    /// state for it.
    pub fn encode(&self, mel: &Tensor) -> Result<DecoderState> {
        let x = self.conv1.forward(mel)?.gelu_erf()?;
        let x = self.conv2.forward(&x)?.gelu_erf()?.transpose(1, 2)?;
        let n = x.dim(1)?;
        let mut x = x.broadcast_add(&self.encoder_positions.narrow(0, 0, n)?)?;
        for b in &self.encoder {
            let mut cache = None;
            x = (&x
                + b.attn
                    .forward_self(&b.attn_ln.forward(&x)?, &mut cache, false)?)?;
            x = (&x + b.mlp.forward(&b.mlp_ln.forward(&x)?)?)?;
        }
        let x = self.encoder_ln.forward(&x)?;
        let cross = self
            .decoder
            .iter()
            .map(|b| {
                let (attn, _) = b
                    .cross
                    .as_ref()
                    .expect("decoder blocks attend to the audio");
                let (k, v) = attn.keys_values(&x)?;
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
        last.matmul(&self.tokens.embeddings().t()?)
    }

    /// The logits at every position of `tokens` ([1, t]) fed after the state's
    /// positions ([t, vocab]): the first step, whose start token's position gives the
    /// no-speech probability and the language.
    pub fn decode_all(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor> {
        let x = self
            .decoder_ln
            .forward(&self.hidden(state, tokens)?.squeeze(0)?)?;
        x.matmul(&self.tokens.embeddings().t()?)
    }

    fn hidden(&self, state: &mut DecoderState, tokens: &Tensor) -> Result<Tensor> {
        let (_, t) = tokens.dims2()?;
        let positions = self.decoder_positions.narrow(0, state.len, t)?;
        let mut x = self.tokens.forward(tokens)?.broadcast_add(&positions)?;
        for (i, b) in self.decoder.iter().enumerate() {
            x = (&x
                + b.attn
                    .forward_self(&b.attn_ln.forward(&x)?, &mut state.cache[i], true)?)?;
            let (attn, ln) = b
                .cross
                .as_ref()
                .expect("decoder blocks attend to the audio");
            let (k, v) = &state.cross[i];
            x = (&x + attn.forward_cross(&ln.forward(&x)?, k, v)?)?;
            x = (&x + b.mlp.forward(&b.mlp_ln.forward(&x)?)?)?;
        }
        state.len += t;
        Ok(x)
    }
}

/// Softmax's log over the last dimension.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(x, D::Minus1)
}
