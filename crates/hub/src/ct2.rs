//! CTranslate2 model files (`model.bin`, as faster-whisper ships them) read and converted
//! at pull time into the layout candle's Whisper loads: FP32 safetensors under Hugging
//! Face's tensor names, and a Hugging Face `config.json`.
//!
//! The `model.bin` format (CTranslate2's `models/model.cc`, version 6): a u32 binary
//! version, the spec's name (u16 length + bytes, NUL-terminated), a u32 revision, then
//! u32 variables, each a name, a u8 rank, u32 dimensions, a u8 data type, a u32 byte
//! count and the data; then u32 aliases, each an alias name and the variable it names.
//! Scalars (the spec's settings, such as `encoder/num_heads`) are rank-0 variables.
//!
//! Written here: no Rust crate reads the format, and the Python converter goes the other
//! way (Hugging Face to CTranslate2).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::{json, Value};

use crate::{HubError, Result};

/// CTranslate2's data types, by their code in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Type {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Type {
    fn of(code: u8) -> Option<Ct2Type> {
        Some(match code {
            0 => Ct2Type::F32,
            1 => Ct2Type::I8,
            2 => Ct2Type::I16,
            3 => Ct2Type::I32,
            4 => Ct2Type::F16,
            5 => Ct2Type::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Ct2Type::I8 => 1,
            Ct2Type::I16 | Ct2Type::F16 | Ct2Type::Bf16 => 2,
            Ct2Type::F32 | Ct2Type::I32 => 4,
        }
    }
}

/// One variable of a CTranslate2 model.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: Ct2Type,
    pub data: Vec<u8>,
}

impl Variable {
    /// The values as f32 (any floating or integer type).
    pub fn to_f32(&self) -> Vec<f32> {
        let n = self.dtype.size();
        self.data
            .chunks_exact(n)
            .map(|b| match self.dtype {
                Ct2Type::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                Ct2Type::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
                Ct2Type::Bf16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
                Ct2Type::I8 => f32::from(b[0] as i8),
                Ct2Type::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])),
                Ct2Type::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            })
            .collect()
    }

    /// A scalar's value.
    pub fn scalar(&self) -> Option<f64> {
        (self.shape.is_empty()).then(|| self.to_f32().first().map(|v| f64::from(*v)))?
    }
}

/// A CTranslate2 model file, read whole.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    pub spec: String,
    pub revision: u32,
    pub variables: BTreeMap<String, Variable>,
}

impl Ct2Model {
    pub fn read(path: &Path) -> Result<Ct2Model> {
        let bytes = std::fs::read(path).map_err(|e| HubError::io("read model.bin", e))?;
        Ct2Model::parse(&bytes)
    }

    pub fn parse(bytes: &[u8]) -> Result<Ct2Model> {
        let bad =
            |what: &str| HubError::InvalidInput(format!("not a CTranslate2 model file: {what}"));
        let mut r = bytes;
        let mut take = |n: usize| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; n];
            r.read_exact(&mut buf).map_err(|_| bad("it ends early"))?;
            Ok(buf)
        };
        let u32_ = |b: Vec<u8>| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let version = u32_(take(4)?);
        if !(5..=6).contains(&version) {
            return Err(bad(&format!("binary version {version} (5 or 6 are read)")));
        }
        let string = |take: &mut dyn FnMut(usize) -> Result<Vec<u8>>| -> Result<String> {
            let n = take(2)?;
            let n = u16::from_le_bytes([n[0], n[1]]) as usize;
            let s = take(n)?;
            Ok(String::from_utf8_lossy(&s)
                .trim_end_matches('\0')
                .to_string())
        };
        let spec = string(&mut take)?;
        let revision = u32_(take(4)?);
        let count = u32_(take(4)?);
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let name = string(&mut take)?;
            let rank = take(1)?[0] as usize;
            let shape: Vec<usize> = (0..rank)
                .map(|_| take(4).map(|b| u32_(b) as usize))
                .collect::<Result<_>>()?;
            let dtype = Ct2Type::of(take(1)?[0])
                .ok_or_else(|| bad(&format!("{name} has an unknown data type")))?;
            let size = u32_(take(4)?) as usize;
            let elements: usize = shape.iter().product();
            if size != elements * dtype.size() {
                return Err(bad(&format!(
                    "{name} holds {size} bytes for shape {shape:?}"
                )));
            }
            variables.insert(
                name,
                Variable {
                    shape,
                    dtype,
                    data: take(size)?,
                },
            );
        }
        let aliases = u32_(take(4)?);
        for _ in 0..aliases {
            let alias = string(&mut take)?;
            let target = string(&mut take)?;
            let v = variables
                .get(&target)
                .cloned()
                .ok_or_else(|| bad(&format!("alias {alias} names no variable {target}")))?;
            variables.insert(alias, v);
        }
        Ok(Ct2Model {
            spec,
            revision,
            variables,
        })
    }

    fn get(&self, name: &str) -> Result<&Variable> {
        self.variables.get(name).ok_or_else(|| {
            HubError::InvalidInput(format!("the {} model has no variable {name}", self.spec))
        })
    }

    fn layers(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.variables
                    .contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    }
}

/// Tensors by name: shape and FP32 values.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A Whisper model in CTranslate2's layout as Hugging Face's tensors (name -> shape,
/// values) and config. `extra` is the CTranslate2 `config.json` (its `suppress_ids`
/// become `suppress_tokens`).
pub fn whisper_tensors(m: &Ct2Model, extra: &Value) -> Result<(Tensors, Value)> {
    if m.spec != "WhisperSpec" {
        return Err(HubError::InvalidInput(format!(
            "a {} model is not a Whisper model",
            m.spec
        )));
    }
    let mut out = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, values: Vec<f32>| {
        out.insert(name, (shape, values));
    };
    let whole = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let v = m.get(name)?;
        Ok((v.shape.clone(), v.to_f32()))
    };
    // Rows `from..to` of a [rows, ...] tensor.
    let rows = |name: &str, from: usize, to: usize| -> Result<(Vec<usize>, Vec<f32>)> {
        let v = m.get(name)?;
        let width: usize = v.shape[1..].iter().product();
        let values = v.to_f32()[from * width..to * width].to_vec();
        let mut shape = v.shape.clone();
        shape[0] = to - from;
        Ok((shape, values))
    };
    let d = m.get("encoder/conv1/weight")?.shape[0];
    let linear =
        |put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>), from: &str, to: &str| -> Result<()> {
            let (s, v) = whole(&format!("{from}/weight"))?;
            put(format!("{to}.weight"), s, v);
            let (s, v) = whole(&format!("{from}/bias"))?;
            put(format!("{to}.bias"), s, v);
            Ok(())
        };
    let norm =
        |put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>), from: &str, to: &str| -> Result<()> {
            let (s, v) = whole(&format!("{from}/gamma"))?;
            put(format!("{to}.weight"), s, v);
            let (s, v) = whole(&format!("{from}/beta"))?;
            put(format!("{to}.bias"), s, v);
            Ok(())
        };
    // Fused projections split back into Hugging Face's: q, k (no bias), v.
    let split = |put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>),
                 from: &str,
                 parts: &[(&str, bool)],
                 to: &str|
     -> Result<()> {
        for (i, (part, bias)) in parts.iter().enumerate() {
            let (s, v) = rows(&format!("{from}/weight"), i * d, (i + 1) * d)?;
            put(format!("{to}.{part}.weight"), s, v);
            if *bias {
                let (s, v) = rows(&format!("{from}/bias"), i * d, (i + 1) * d)?;
                put(format!("{to}.{part}.bias"), s, v);
            }
        }
        Ok(())
    };
    for i in 1..=2 {
        linear(
            &mut put,
            &format!("encoder/conv{i}"),
            &format!("model.encoder.conv{i}"),
        )?;
    }
    let (s, v) = whole("encoder/position_encodings/encodings")?;
    put("model.encoder.embed_positions.weight".into(), s, v);
    let encoder_layers = m.layers("encoder");
    let decoder_layers = m.layers("decoder");
    // The sub-layers of a layer: CTranslate2's name, Hugging Face's, and how it maps.
    enum Part {
        Linear,
        Norm,
        /// Self-attention's fused q, k, v.
        Qkv,
        /// Cross-attention's fused k, v.
        Kv,
    }
    let shared = [
        ("self_attention/linear_0", "self_attn", Part::Qkv),
        (
            "self_attention/linear_1",
            "self_attn.out_proj",
            Part::Linear,
        ),
        (
            "self_attention/layer_norm",
            "self_attn_layer_norm",
            Part::Norm,
        ),
        ("ffn/linear_0", "fc1", Part::Linear),
        ("ffn/linear_1", "fc2", Part::Linear),
        ("ffn/layer_norm", "final_layer_norm", Part::Norm),
    ];
    let cross = [
        ("attention/linear_0", "encoder_attn.q_proj", Part::Linear),
        ("attention/linear_1", "encoder_attn", Part::Kv),
        ("attention/linear_2", "encoder_attn.out_proj", Part::Linear),
        (
            "attention/layer_norm",
            "encoder_attn_layer_norm",
            Part::Norm,
        ),
    ];
    let stacks = [
        ("encoder", encoder_layers, &shared[..], &[][..]),
        ("decoder", decoder_layers, &shared[..], &cross[..]),
    ];
    for (side, layers, own, more) in stacks {
        for i in 0..layers {
            for (from, to, part) in own.iter().chain(more) {
                let from = format!("{side}/layer_{i}/{from}");
                let to = format!("model.{side}.layers.{i}.{to}");
                match part {
                    Part::Linear => linear(&mut put, &from, &to)?,
                    Part::Norm => norm(&mut put, &from, &to)?,
                    Part::Qkv => split(
                        &mut put,
                        &from,
                        &[("q_proj", true), ("k_proj", false), ("v_proj", true)],
                        &to,
                    )?,
                    Part::Kv => {
                        split(&mut put, &from, &[("k_proj", false), ("v_proj", true)], &to)?
                    }
                }
            }
        }
    }
    norm(&mut put, "encoder/layer_norm", "model.encoder.layer_norm")?;
    let (s, v) = whole("decoder/embeddings/weight")?;
    let vocab = s[0];
    put("model.decoder.embed_tokens.weight".into(), s, v);
    let (s, v) = whole("decoder/position_encodings/encodings")?;
    let text_ctx = s[0];
    put("model.decoder.embed_positions.weight".into(), s, v);
    norm(&mut put, "decoder/layer_norm", "model.decoder.layer_norm")?;
    let heads = |name: &str| -> Result<usize> {
        m.get(name)?
            .scalar()
            .map(|v| v as usize)
            .ok_or_else(|| HubError::InvalidInput(format!("{name} is not a number")))
    };
    let conv1 = &m.get("encoder/conv1/weight")?.shape;
    let audio_ctx = m.get("encoder/position_encodings/encodings")?.shape[0];
    let config = json!({
        "model_type": "whisper",
        "num_mel_bins": conv1[1],
        "max_source_positions": audio_ctx,
        "d_model": d,
        "encoder_attention_heads": heads("encoder/num_heads")?,
        "encoder_layers": encoder_layers,
        "vocab_size": vocab,
        "max_target_positions": text_ctx,
        "decoder_attention_heads": heads("decoder/num_heads")?,
        "decoder_layers": decoder_layers,
        "suppress_tokens": extra.get("suppress_ids").cloned().unwrap_or(json!([])),
        "begin_suppress_tokens": extra.get("suppress_ids_begin").cloned().unwrap_or(json!([])),
        "alignment_heads": extra.get("alignment_heads").cloned().unwrap_or(json!([])),
    });
    Ok((out, config))
}

/// Convert a Whisper model folder from CTranslate2's layout (`model.bin`, its
/// `config.json`) to candle's: `model.safetensors` (FP32) and a Hugging Face
/// `config.json` (replacing CTranslate2's, whose settings it carries). `model.bin` is
/// removed once the new files are in place; the tokenizer is kept as it is.
pub fn convert_whisper(dir: &Path) -> Result<()> {
    let model = Ct2Model::read(&dir.join("model.bin"))?;
    let extra: Value = match std::fs::read(dir.join("config.json")) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| HubError::InvalidInput(format!("config.json: {e}")))?,
        Err(_) => json!({}),
    };
    let (tensors, config) = whisper_tensors(&model, &extra)?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, (shape, values))| {
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| HubError::InvalidInput(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let partial = dir.join(".model.safetensors.part");
    safetensors::serialize_to_file(views, None, &partial)
        .map_err(|e| HubError::InvalidInput(format!("writing model.safetensors: {e}")))?;
    std::fs::rename(&partial, dir.join("model.safetensors"))
        .map_err(|e| HubError::io("rename model.safetensors", e))?;
    let text = serde_json::to_vec_pretty(&config).unwrap_or_default();
    std::fs::write(dir.join("config.json"), text)
        .map_err(|e| HubError::io("write config.json", e))?;
    add_timestamp_tokens(dir, &config)?;
    std::fs::remove_file(dir.join("model.bin")).map_err(|e| HubError::io("remove model.bin", e))?;
    Ok(())
}

/// Complete `tokenizer.json` with Whisper's timestamp tokens (`<|0.00|>` to `<|30.00|>`,
/// every 20 ms, after `<|notimestamps|>`), which faster-whisper's tokenizer files leave
/// out: the vocabulary then names every token the model emits. A tokenizer that has
/// them already is left as it is.
fn add_timestamp_tokens(dir: &Path, config: &Value) -> Result<()> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        // The folder's check (catalogue, loader) names the missing tokenizer.
        return Ok(());
    }
    let bytes = std::fs::read(&path).map_err(|e| HubError::io("read tokenizer.json", e))?;
    let mut tokenizer: Value = serde_json::from_slice(&bytes)
        .map_err(|e| HubError::InvalidInput(format!("tokenizer.json: {e}")))?;
    let vocab = config["vocab_size"].as_u64().unwrap_or(0);
    let Some(added) = tokenizer["added_tokens"].as_array_mut() else {
        return Err(HubError::InvalidInput(
            "tokenizer.json has no added_tokens".into(),
        ));
    };
    let id_of = |name: &str| {
        added
            .iter()
            .find(|t| t["content"] == name)
            .and_then(|t| t["id"].as_u64())
    };
    if id_of("<|0.00|>").is_some() {
        return Ok(());
    }
    let Some(no_timestamps) = id_of("<|notimestamps|>") else {
        return Err(HubError::InvalidInput(
            "tokenizer.json has no <|notimestamps|> token".into(),
        ));
    };
    let begin = no_timestamps + 1;
    for id in begin..vocab {
        let seconds = (id - begin) as f64 * 0.02;
        added.push(json!({
            "id": id,
            "content": format!("<|{seconds:.2}|>"),
            "single_word": false,
            "lstrip": false,
            "rstrip": false,
            "normalized": false,
            "special": true,
        }));
    }
    let text = serde_json::to_vec(&tokenizer).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| HubError::io("write tokenizer.json", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CTranslate2 file of the given variables (name, shape, f16 values) and aliases.
    fn file(
        vars: &[(&str, Vec<usize>, Vec<f32>)],
        scalars: &[(&str, i16)],
        aliases: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend(((s.len() + 1) as u16).to_le_bytes());
            b.extend(s.as_bytes());
            b.push(0);
        };
        b.extend(6u32.to_le_bytes());
        string(&mut b, "WhisperSpec");
        b.extend(3u32.to_le_bytes());
        b.extend(((vars.len() + scalars.len()) as u32).to_le_bytes());
        for (name, shape, values) in vars {
            string(&mut b, name);
            b.push(shape.len() as u8);
            for d in shape {
                b.extend((*d as u32).to_le_bytes());
            }
            b.push(4);
            b.extend(((values.len() * 2) as u32).to_le_bytes());
            for v in values {
                b.extend(half::f16::from_f32(*v).to_le_bytes());
            }
        }
        for (name, value) in scalars {
            string(&mut b, name);
            b.push(0);
            b.push(2);
            b.extend(2u32.to_le_bytes());
            b.extend(value.to_le_bytes());
        }
        b.extend((aliases.len() as u32).to_le_bytes());
        for (alias, target) in aliases {
            string(&mut b, alias);
            string(&mut b, target);
        }
        b
    }

    #[test]
    fn variables_scalars_and_aliases_are_read() {
        let bytes = file(
            &[("a/weight", vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5])],
            &[("a/num_heads", 6)],
            &[("b/weight", "a/weight")],
        );
        let m = Ct2Model::parse(&bytes).unwrap();
        assert_eq!((m.spec.as_str(), m.revision), ("WhisperSpec", 3));
        assert_eq!(m.variables["a/weight"].shape, vec![2, 3]);
        assert_eq!(
            m.variables["a/weight"].to_f32(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]
        );
        assert_eq!(m.variables["b/weight"], m.variables["a/weight"]);
        assert_eq!(m.variables["a/num_heads"].scalar(), Some(6.0));
        // Truncated, or a byte count that does not match the shape: refused.
        assert!(Ct2Model::parse(&bytes[..bytes.len() - 3]).is_err());
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(Ct2Model::parse(&wrong)
            .unwrap_err()
            .to_string()
            .contains("binary version 9"));
    }

    #[test]
    fn fused_projections_split_into_hugging_faces_names() {
        // A one-layer Whisper of width 2: q, k, v rows fused in linear_0.
        let d = 2;
        let seq = |n: usize, from: f32| (0..n).map(|i| from + i as f32).collect::<Vec<_>>();
        let mut vars: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
            ("encoder/conv1/weight".into(), vec![d, 3, 3], seq(18, 0.0)),
            ("encoder/conv1/bias".into(), vec![d], seq(2, 0.0)),
            ("encoder/conv2/weight".into(), vec![d, d, 3], seq(12, 0.0)),
            ("encoder/conv2/bias".into(), vec![d], seq(2, 0.0)),
            (
                "encoder/position_encodings/encodings".into(),
                vec![5, d],
                seq(10, 0.0),
            ),
            ("decoder/embeddings/weight".into(), vec![7, d], seq(14, 0.0)),
            (
                "decoder/position_encodings/encodings".into(),
                vec![4, d],
                seq(8, 0.0),
            ),
        ];
        let lin =
            |vars: &mut Vec<(String, Vec<usize>, Vec<f32>)>, name: &str, out: usize, inp: usize| {
                vars.push((
                    format!("{name}/weight"),
                    vec![out, inp],
                    seq(out * inp, 10.0),
                ));
                vars.push((format!("{name}/bias"), vec![out], seq(out, 100.0)));
            };
        let ln = |vars: &mut Vec<(String, Vec<usize>, Vec<f32>)>, name: &str| {
            vars.push((format!("{name}/gamma"), vec![d], vec![1.0; d]));
            vars.push((format!("{name}/beta"), vec![d], vec![0.0; d]));
        };
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            lin(&mut vars, &format!("{l}/self_attention/linear_0"), 3 * d, d);
            lin(&mut vars, &format!("{l}/self_attention/linear_1"), d, d);
            ln(&mut vars, &format!("{l}/self_attention/layer_norm"));
            lin(&mut vars, &format!("{l}/ffn/linear_0"), 4 * d, d);
            lin(&mut vars, &format!("{l}/ffn/linear_1"), d, 4 * d);
            ln(&mut vars, &format!("{l}/ffn/layer_norm"));
            ln(&mut vars, &format!("{side}/layer_norm"));
        }
        lin(&mut vars, "decoder/layer_0/attention/linear_0", d, d);
        lin(&mut vars, "decoder/layer_0/attention/linear_1", 2 * d, d);
        lin(&mut vars, "decoder/layer_0/attention/linear_2", d, d);
        ln(&mut vars, "decoder/layer_0/attention/layer_norm");
        let refs: Vec<(&str, Vec<usize>, Vec<f32>)> = vars
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.clone(), v.clone()))
            .collect();
        let bytes = file(
            &refs,
            &[("encoder/num_heads", 1), ("decoder/num_heads", 1)],
            &[],
        );
        let m = Ct2Model::parse(&bytes).unwrap();
        let (t, config) = whisper_tensors(&m, &json!({"suppress_ids": [1, 2]})).unwrap();
        // q: rows 0-1, k: rows 2-3 (no bias), v: rows 4-5 of the fused projection.
        let q = &t["model.encoder.layers.0.self_attn.q_proj.weight"];
        let k = &t["model.encoder.layers.0.self_attn.k_proj.weight"];
        let v = &t["model.encoder.layers.0.self_attn.v_proj.weight"];
        assert_eq!(
            (q.0.clone(), q.1.clone()),
            (vec![2, 2], vec![10.0, 11.0, 12.0, 13.0])
        );
        assert_eq!(k.1, vec![14.0, 15.0, 16.0, 17.0]);
        assert_eq!(v.1, vec![18.0, 19.0, 20.0, 21.0]);
        assert!(!t.contains_key("model.encoder.layers.0.self_attn.k_proj.bias"));
        assert_eq!(
            t["model.encoder.layers.0.self_attn.v_proj.bias"].1,
            vec![104.0, 105.0]
        );
        // Cross-attention: k and v fused in linear_1.
        assert_eq!(
            t["model.decoder.layers.0.encoder_attn.v_proj.weight"].1,
            vec![14.0, 15.0, 16.0, 17.0]
        );
        assert_eq!(
            t["model.decoder.layers.0.encoder_attn_layer_norm.weight"].1,
            vec![1.0, 1.0]
        );
        assert_eq!(config["d_model"], 2);
        assert_eq!(config["encoder_layers"], 1);
        assert_eq!(config["vocab_size"], 7);
        assert_eq!(config["max_target_positions"], 4);
        assert_eq!(config["suppress_tokens"], json!([1, 2]));
    }
}
