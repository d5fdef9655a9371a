//! Typed tensors in KServe v2's datatypes, and their conversion to and from ONNX
//! Runtime values.

use ort::value::{DynValue, TensorElementType, ValueType};

use crate::{OnnxError, TensorSpec};

/// KServe v2's tensor datatypes (the names are the protocol's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

impl DataType {
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The KServe name (`FP32`, `INT64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    pub fn parse(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The KServe datatype of an ONNX element type (`None`: one KServe has no name for).
    pub(crate) fn of(ty: TensorElementType) -> Option<DataType> {
        Some(match ty {
            TensorElementType::Bool => DataType::Bool,
            TensorElementType::Uint8 => DataType::Uint8,
            TensorElementType::Uint16 => DataType::Uint16,
            TensorElementType::Uint32 => DataType::Uint32,
            TensorElementType::Uint64 => DataType::Uint64,
            TensorElementType::Int8 => DataType::Int8,
            TensorElementType::Int16 => DataType::Int16,
            TensorElementType::Int32 => DataType::Int32,
            TensorElementType::Int64 => DataType::Int64,
            TensorElementType::Float16 => DataType::Fp16,
            TensorElementType::Float32 => DataType::Fp32,
            TensorElementType::Float64 => DataType::Fp64,
            TensorElementType::String => DataType::Bytes,
            _ => return None,
        })
    }
}

/// Written as its KServe name.
impl serde::Serialize for DataType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Read from its KServe name.
impl<'de> serde::Deserialize<'de> for DataType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        DataType::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown datatype {name:?}; expected one of {}",
                DataType::ALL.map(DataType::name).join(", ")
            ))
        })
    }
}

/// A tensor's elements, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<half::f16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

/// Apply `$body` to the vector inside any `TensorData`.
macro_rules! each {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Uint16(_) => DataType::Uint16,
            TensorData::Uint32(_) => DataType::Uint32,
            TensorData::Uint64(_) => DataType::Uint64,
            TensorData::Int8(_) => DataType::Int8,
            TensorData::Int16(_) => DataType::Int16,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp16(_) => DataType::Fp16,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Numbers as a vector of `datatype` (whole numbers only for integer types);
    /// `None` for BYTES, or a value the type cannot hold.
    pub fn from_f64s(datatype: DataType, values: &[f64]) -> Option<TensorData> {
        macro_rules! ints {
            ($variant:ident, $t:ty) => {
                values
                    .iter()
                    .map(|&v| {
                        (v.is_finite()
                            && v.fract() == 0.0
                            && v >= <$t>::MIN as f64
                            && v <= <$t>::MAX as f64)
                            .then_some(v as $t)
                    })
                    .collect::<Option<Vec<$t>>>()
                    .map(TensorData::$variant)
            };
        }
        match datatype {
            DataType::Fp32 => Some(TensorData::Fp32(values.iter().map(|&v| v as f32).collect())),
            DataType::Fp64 => Some(TensorData::Fp64(values.to_vec())),
            DataType::Fp16 => Some(TensorData::Fp16(
                values.iter().map(|&v| half::f16::from_f64(v)).collect(),
            )),
            DataType::Uint8 => ints!(Uint8, u8),
            DataType::Uint16 => ints!(Uint16, u16),
            DataType::Uint32 => ints!(Uint32, u32),
            DataType::Uint64 => ints!(Uint64, u64),
            DataType::Int8 => ints!(Int8, i8),
            DataType::Int16 => ints!(Int16, i16),
            DataType::Int32 => ints!(Int32, i32),
            DataType::Int64 => ints!(Int64, i64),
            DataType::Bool => Some(TensorData::Bool(values.iter().map(|&v| v != 0.0).collect())),
            DataType::Bytes => None,
        }
    }

    /// Element `i` as a number (`None` for BYTES, or past the end).
    pub fn f64_at(&self, i: usize) -> Option<f64> {
        match self {
            TensorData::Bool(v) => v.get(i).map(|&b| f64::from(u8::from(b))),
            TensorData::Uint8(v) => v.get(i).map(|&x| f64::from(x)),
            TensorData::Uint16(v) => v.get(i).map(|&x| f64::from(x)),
            TensorData::Uint32(v) => v.get(i).map(|&x| f64::from(x)),
            TensorData::Uint64(v) => v.get(i).map(|&x| x as f64),
            TensorData::Int8(v) => v.get(i).map(|&x| f64::from(x)),
            TensorData::Int16(v) => v.get(i).map(|&x| f64::from(x)),
            TensorData::Int32(v) => v.get(i).map(|&x| f64::from(x)),
            TensorData::Int64(v) => v.get(i).map(|&x| x as f64),
            TensorData::Fp16(v) => v.get(i).map(|&x| x.to_f64()),
            TensorData::Fp32(v) => v.get(i).map(|&x| f64::from(x)),
            TensorData::Fp64(v) => v.get(i).copied(),
            TensorData::Bytes(_) => None,
        }
    }

    /// Elements `range` (row-major positions) as a new vector of the same type.
    fn slice(&self, range: std::ops::Range<usize>) -> TensorData {
        macro_rules! part {
            ($($variant:ident),*) => {
                match self { $(TensorData::$variant(v) => TensorData::$variant(v[range].to_vec()),)* }
            };
        }
        part!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bytes
        )
    }

    /// Append `other` (the same type: the caller checked).
    fn extend(&mut self, other: TensorData) -> Result<(), TensorData> {
        macro_rules! join {
            ($($variant:ident),*) => {
                match (self, other) {
                    $((TensorData::$variant(a), TensorData::$variant(b)) => { a.extend(b); Ok(()) })*
                    (_, other) => Err(other),
                }
            };
        }
        join!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bytes
        )
    }
}

/// A named tensor: an input given to a model or an output it gave. `labels` names the
/// last dimension's entries where the model says what they are (a ZipMap's classes).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
    pub labels: Option<Vec<String>>,
}

impl Tensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> Tensor {
        Tensor {
            name: name.into(),
            shape,
            data,
            labels: None,
        }
    }

    /// Rows along the first dimension (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Whether `other` can be stacked under this tensor along the first dimension: the
    /// same name, datatype and trailing dimensions.
    pub fn stacks_with(&self, other: &Tensor) -> bool {
        self.name == other.name
            && self.data.datatype() == other.data.datatype()
            && !self.shape.is_empty()
            && self.shape.get(1..) == other.shape.get(1..)
    }

    /// Stack tensors along the first dimension (each must `stacks_with` the first).
    pub fn concat(parts: Vec<Tensor>) -> Result<Tensor, OnnxError> {
        let mut parts = parts.into_iter();
        let mut out = parts
            .next()
            .ok_or_else(|| OnnxError::InvalidInput("nothing to stack".into()))?;
        for t in parts {
            if !out.stacks_with(&t) {
                return Err(OnnxError::InvalidInput(format!(
                    "tensor `{}` of shape {:?} cannot be stacked with shape {:?}",
                    t.name, t.shape, out.shape
                )));
            }
            out.shape[0] += t.shape[0];
            out.data
                .extend(t.data)
                .map_err(|_| OnnxError::InvalidInput("datatypes differ".into()))?;
        }
        Ok(out)
    }

    /// Cut this tensor along the first dimension into parts of `rows` rows each (their
    /// sum must be the first dimension).
    pub fn split(&self, rows: &[usize]) -> Result<Vec<Tensor>, OnnxError> {
        let total: usize = rows.iter().sum();
        if self.shape.first() != Some(&total) {
            return Err(OnnxError::Run(format!(
                "output `{}` has shape {:?}, not {total} rows, so a batch cannot be split back",
                self.name, self.shape
            )));
        }
        let stride: usize = self.shape[1..].iter().product();
        let mut at = 0;
        Ok(rows
            .iter()
            .map(|&n| {
                let mut shape = self.shape.clone();
                shape[0] = n;
                let data = self.data.slice(at * stride..(at + n) * stride);
                at += n;
                Tensor {
                    name: self.name.clone(),
                    shape,
                    data,
                    labels: self.labels.clone(),
                }
            })
            .collect())
    }

    /// Whether this tensor fits input `spec`: its datatype, its rank, every fixed
    /// dimension, and as many elements as its shape says.
    pub(crate) fn check(&self, spec: &TensorSpec) -> Result<(), OnnxError> {
        let bad = |m: String| {
            Err(OnnxError::InvalidInput(format!(
                "input `{}`: {m}",
                spec.name
            )))
        };
        if self.data.datatype() != spec.datatype {
            return bad(format!(
                "the model takes {}, not {}",
                spec.datatype.name(),
                self.data.datatype().name()
            ));
        }
        let fits = self.shape.len() == spec.dims.len()
            && self
                .shape
                .iter()
                .zip(&spec.dims)
                .all(|(&n, &d)| d < 0 || n as i64 == d);
        if !fits {
            return bad(format!(
                "shape {:?} does not fit the model's {:?} (-1: any size)",
                self.shape, spec.dims
            ));
        }
        let elements: usize = self.shape.iter().product();
        if elements != self.data.len() {
            return bad(format!(
                "shape {:?} holds {elements} elements but {} were given",
                self.shape,
                self.data.len()
            ));
        }
        Ok(())
    }

    pub(crate) fn into_value(self) -> Result<DynValue, OnnxError> {
        let shape = self.shape;
        let failed = |e: ort::Error| OnnxError::InvalidInput(format!("input `{}`: {e}", self.name));
        let value = match self.data {
            TensorData::Bytes(items) => {
                let strings = items
                    .into_iter()
                    .map(String::from_utf8)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        OnnxError::InvalidInput(format!(
                            "input `{}`: ONNX string tensors hold UTF-8 text; an element is not",
                            self.name
                        ))
                    })?;
                ort::value::Tensor::from_string_array((shape, strings.as_slice()))
                    .map(|t| t.into_dyn())
            }
            TensorData::Bool(v) => owned(shape, v),
            TensorData::Uint8(v) => owned(shape, v),
            TensorData::Uint16(v) => owned(shape, v),
            TensorData::Uint32(v) => owned(shape, v),
            TensorData::Uint64(v) => owned(shape, v),
            TensorData::Int8(v) => owned(shape, v),
            TensorData::Int16(v) => owned(shape, v),
            TensorData::Int32(v) => owned(shape, v),
            TensorData::Int64(v) => owned(shape, v),
            TensorData::Fp16(v) => owned(shape, v),
            TensorData::Fp32(v) => owned(shape, v),
            TensorData::Fp64(v) => owned(shape, v),
        };
        value.map_err(failed)
    }

    /// Read output `name` of type `datatype` from ONNX Runtime's value.
    pub(crate) fn from_value(
        name: &str,
        datatype: DataType,
        value: &DynValue,
    ) -> Result<Tensor, OnnxError> {
        let failed = |e: ort::Error| OnnxError::Run(format!("output `{name}`: {e}"));
        let shape = match value.dtype() {
            ValueType::Tensor { shape, .. } => shape.iter().map(|&d| d.max(0) as usize).collect(),
            other => {
                return Err(OnnxError::Run(format!(
                    "output `{name}` is a {other}, not a tensor"
                )))
            }
        };
        macro_rules! read {
            ($variant:ident, $t:ty) => {
                TensorData::$variant(value.try_extract_tensor::<$t>().map_err(failed)?.1.to_vec())
            };
        }
        let data = match datatype {
            DataType::Bool => read!(Bool, bool),
            DataType::Uint8 => read!(Uint8, u8),
            DataType::Uint16 => read!(Uint16, u16),
            DataType::Uint32 => read!(Uint32, u32),
            DataType::Uint64 => read!(Uint64, u64),
            DataType::Int8 => read!(Int8, i8),
            DataType::Int16 => read!(Int16, i16),
            DataType::Int32 => read!(Int32, i32),
            DataType::Int64 => read!(Int64, i64),
            DataType::Fp16 => read!(Fp16, half::f16),
            DataType::Fp32 => read!(Fp32, f32),
            DataType::Fp64 => read!(Fp64, f64),
            DataType::Bytes => TensorData::Bytes(
                value
                    .try_extract_strings()
                    .map_err(failed)?
                    .1
                    .into_iter()
                    .map(String::into_bytes)
                    .collect(),
            ),
        };
        Ok(Tensor::new(name, shape, data))
    }
}

/// An ONNX Runtime tensor that takes over `data` (no copy).
fn owned<T>(shape: Vec<usize>, data: Vec<T>) -> ort::Result<DynValue>
where
    T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static,
{
    ort::value::Tensor::from_array((shape, data)).map(|t| t.into_dyn())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatypes_keep_their_kserve_names() {
        for d in DataType::ALL {
            assert_eq!(DataType::parse(d.name()), Some(d));
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
        }
        assert_eq!(DataType::parse("FLOAT32"), None);
    }

    #[test]
    fn tensors_stack_and_split_along_the_first_dimension() {
        let a = Tensor::new("x", vec![1, 2], TensorData::Int64(vec![1, 2]));
        let b = Tensor::new("x", vec![2, 2], TensorData::Int64(vec![3, 4, 5, 6]));
        let both = Tensor::concat(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(both.shape, vec![3, 2]);
        assert_eq!(both.data, TensorData::Int64(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(both.split(&[1, 2]).unwrap(), vec![a.clone(), b]);
        assert!(both.split(&[1, 1]).is_err());
        let other = Tensor::new("x", vec![1, 3], TensorData::Int64(vec![0; 3]));
        assert!(!a.stacks_with(&other));
        assert!(Tensor::concat(vec![a.clone(), other]).is_err());
        let floats = Tensor::new("x", vec![1, 2], TensorData::Fp32(vec![0.0; 2]));
        assert!(Tensor::concat(vec![a, floats]).is_err());
        let text = Tensor::new(
            "s",
            vec![2],
            TensorData::Bytes(vec![b"a".to_vec(), b"bc".to_vec()]),
        );
        let parts = text.split(&[1, 1]).unwrap();
        assert_eq!(parts[1].data, TensorData::Bytes(vec![b"bc".to_vec()]));
    }

    #[test]
    fn inputs_are_checked_against_the_signature() {
        let spec = TensorSpec {
            name: "x".into(),
            datatype: DataType::Fp32,
            dims: vec![-1, 4],
        };
        let ok = Tensor::new("x", vec![2, 4], TensorData::Fp32(vec![0.0; 8]));
        assert!(ok.check(&spec).is_ok());
        let cases = [
            (
                Tensor::new("x", vec![2, 4], TensorData::Fp64(vec![0.0; 8])),
                "takes FP32, not FP64",
            ),
            (
                Tensor::new("x", vec![2, 3], TensorData::Fp32(vec![0.0; 6])),
                "does not fit",
            ),
            (
                Tensor::new("x", vec![8], TensorData::Fp32(vec![0.0; 8])),
                "does not fit",
            ),
            (
                Tensor::new("x", vec![2, 4], TensorData::Fp32(vec![0.0; 7])),
                "holds 8 elements but 7",
            ),
        ];
        for (t, want) in cases {
            let e = t.check(&spec).unwrap_err().to_string();
            assert!(e.starts_with("input `x`: ") && e.contains(want), "{e}");
        }
    }
}
