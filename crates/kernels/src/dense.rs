//! A linear layer `act(x W^T + b)`: the prepacked AVX-512 kernel where the CPU has it,
//! else candle's matmul on the weight transposed once at load, then the fused in-place
//! bias + activation kernel either way.

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
        let (y, bias, cols) = match self {
            Dense::Packed(linear) => (x.apply_op1_no_bwd(linear)?, None, linear.out_dim()),
            Dense::Candle { weight_t, bias } => {
                (x.matmul(weight_t)?, Some(bias.as_slice()), bias.len())
            }
        };
        y.inplace_op1(&BiasActivation { bias, cols, act })?;
        Ok(y)
    }
}
