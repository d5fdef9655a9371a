//! Uploaded ONNX models as batch runtimes: a request is a set of typed tensors; requests
//! whose tensors stack (the same names, datatypes and trailing dimensions, the same
//! outputs asked for) run as one along the first dimension and get their rows back.

use std::sync::Arc;

use aiaas_onnx::{OnnxModel, Tensor};

use crate::runtime::BatchModel;

/// One inference request on a tensor model.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRequest {
    pub inputs: Vec<Tensor>,
    /// The outputs to give, in this order (`None`: the version's served outputs).
    pub outputs: Option<Vec<String>>,
}

/// An ONNX model on its runtime thread.
pub(crate) struct TensorModel {
    pub(crate) model: Arc<OnnxModel>,
    /// Requests may be merged along the first dimension (`max_batch_size` above 0).
    pub(crate) merge: bool,
}

impl BatchModel for TensorModel {
    type Input = TensorRequest;
    type Output = Vec<Tensor>;

    fn rows(request: &TensorRequest) -> usize {
        request.inputs.first().map_or(1, Tensor::rows).max(1)
    }

    fn run(&self, requests: Vec<TensorRequest>) -> Vec<Result<Vec<Tensor>, String>> {
        let mut answers = Vec::with_capacity(requests.len());
        let mut group: Vec<TensorRequest> = Vec::new();
        for r in requests {
            if group.first().is_some_and(|g| !self.merge || !stacks(g, &r)) {
                answers.extend(self.run_group(std::mem::take(&mut group)));
            }
            group.push(r);
        }
        if !group.is_empty() {
            answers.extend(self.run_group(group));
        }
        answers
    }
}

impl TensorModel {
    /// Requests that stack, as one run.
    fn run_group(&self, group: Vec<TensorRequest>) -> Vec<Result<Vec<Tensor>, String>> {
        let n = group.len();
        if n == 1 {
            let r = group.into_iter().next().map(|r| {
                self.model
                    .run(r.inputs, r.outputs.as_deref())
                    .map_err(|e| e.to_string())
            });
            return r.into_iter().collect();
        }
        let rows: Vec<usize> = group.iter().map(TensorModel::rows).collect();
        let outputs = group[0].outputs.clone();
        let merged = merge_inputs(group).and_then(|inputs| {
            let outs = self.model.run(inputs, outputs.as_deref())?;
            outs.iter()
                .map(|t| t.split(&rows))
                .collect::<Result<Vec<_>, _>>()
        });
        match merged {
            // outs[o][r]: output o's part for request r.
            Ok(outs) => {
                let mut parts: Vec<_> = outs.into_iter().map(Vec::into_iter).collect();
                (0..n)
                    .map(|_| Ok(parts.iter_mut().filter_map(Iterator::next).collect()))
                    .collect()
            }
            Err(e) => (0..n).map(|_| Err(e.to_string())).collect(),
        }
    }
}

/// Whether `b` can run stacked under `a`.
fn stacks(a: &TensorRequest, b: &TensorRequest) -> bool {
    a.outputs == b.outputs
        && a.inputs.len() == b.inputs.len()
        && a.inputs.iter().all(|t| {
            b.inputs
                .iter()
                .find(|u| u.name == t.name)
                .is_some_and(|u| t.stacks_with(u))
        })
}

/// Each input of the group's requests stacked into one tensor.
fn merge_inputs(group: Vec<TensorRequest>) -> Result<Vec<Tensor>, aiaas_onnx::OnnxError> {
    let names: Vec<String> = group[0].inputs.iter().map(|t| t.name.clone()).collect();
    let mut columns: Vec<Vec<Tensor>> = names.iter().map(|_| Vec::new()).collect();
    for r in group {
        for t in r.inputs {
            if let Some(i) = names.iter().position(|n| *n == t.name) {
                columns[i].push(t);
            }
        }
    }
    columns.into_iter().map(Tensor::concat).collect()
}
