//! A linear layer `act(x W^T + b)`: the prepacked AVX-512 kernel where the CPU has it,
//! else candle's matmul on the weight transposed once at load, then the fused in-place
//! bias + activation kernel (the packed kernel applies both as it writes its output).

use candle_core::Tensor;

use crate::{Activation, BiasActivation, PackedLinear};

pub enum Dense {
    Packed(PackedLinear),
    Candle {
        /// `[in, out]`, contiguous.
        weight_t: Tensor,
        bias: Vec<f32>,
    },
}

impl Dense {
    /// A layer of `weight` (`[out, in]`, PyTorch's layout) and `bias` (`out` values);
    /// `packed` picks the AVX-512 kernel (see [`PackedLinear::supported`]).
    pub fn new(weight: &Tensor, bias: Vec<f32>, packed: bool) -> candle_core::Result<Dense> {
        let (out_dim, in_dim) = weight.dims2()?;
        if bias.len() != out_dim {
            candle_core::bail!("dense: {} bias values for {out_dim} outputs", bias.len());
        }
        if packed {
            let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
            return Ok(Dense::Packed(PackedLinear::new(&w, &bias, in_dim, out_dim)));
        }
        let weight_t = weight.t()?.contiguous()?;
        Ok(Dense::Candle { weight_t, bias })
    }

    /// `act(x W^T + b)` for `x` of `[rows, in]`.
    pub fn forward(&self, x: &Tensor, act: Activation) -> candle_core::Result<Tensor> {
        match self {
            Dense::Packed(linear) => linear.apply(x, act),
            Dense::Candle { weight_t, bias } => {
                let y = x.matmul(weight_t)?;
                y.inplace_op1(&BiasActivation {
                    bias: Some(bias),
                    cols: bias.len(),
                    act,
                })?;
                Ok(y)
            }
        }
    }
}
