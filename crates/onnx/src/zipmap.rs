//! ZipMap taken out of a graph before it is loaded: scikit-learn classifiers converted by
//! skl2onnx end in a ZipMap node that turns the probabilities tensor into one map per
//! row, and reading maps back through ONNX Runtime's C API costs microseconds a row. The
//! node is replaced by an Identity of its input under the same output name, the output
//! declared as a float tensor `[N, classes]`, and the classes kept as that output's
//! labels: the same numbers in the same order, read as one tensor.
//!
//! Written on the protobuf wire format directly (a few tags of `onnx.proto`'s ModelProto,
//! GraphProto, NodeProto, AttributeProto and ValueInfoProto), every other field copied
//! byte for byte: the crates that generate ONNX's messages would drop or re-encode what
//! they do not know. Anything unexpected leaves the model as it was.

use std::collections::HashMap;

/// A graph without its ZipMap nodes, and each removed node's classes by output name.
pub(crate) struct Unzipped {
    pub bytes: Vec<u8>,
    pub labels: HashMap<String, Vec<String>>,
}

// Field numbers in onnx.proto.
const MODEL_GRAPH: u64 = 7;
const GRAPH_NODE: u64 = 1;
const GRAPH_OUTPUT: u64 = 12;
const NODE_INPUT: u64 = 1;
const NODE_OUTPUT: u64 = 2;
const NODE_NAME: u64 = 3;
const NODE_OP_TYPE: u64 = 4;
const NODE_ATTRIBUTE: u64 = 5;
const NODE_DOMAIN: u64 = 7;
const ATTR_NAME: u64 = 1;
const ATTR_INTS: u64 = 8;
const ATTR_STRINGS: u64 = 9;
const VALUE_INFO_NAME: u64 = 1;
const TENSOR_ELEM_FLOAT: u64 = 1;

/// `bytes` with every ZipMap that ends the graph replaced, or `None` when there is none
/// (or the model is not what this expects: it then loads as it is).
pub(crate) fn unzip(bytes: &[u8]) -> Option<Unzipped> {
    let fields = parse(bytes)?;
    let graph = fields.iter().find(|f| f.number == MODEL_GRAPH)?;
    let graph_fields = parse(graph.payload?)?;
    let nodes: Vec<Node> = graph_fields
        .iter()
        .filter(|f| f.number == GRAPH_NODE)
        .map(|f| Node::read(f.payload?))
        .collect::<Option<_>>()?;
    let mut labels = HashMap::new();
    for n in nodes.iter().filter(|n| n.is_zipmap()) {
        let [input] = n.inputs.as_slice() else {
            return None;
        };
        let [output] = n.outputs.as_slice() else {
            return None;
        };
        // Only where the maps leave the graph: nothing else may consume them.
        if nodes.iter().any(|m| m.inputs.contains(output)) || input.is_empty() {
            return None;
        }
        labels.insert(output.clone(), (n.classes()?, input.clone()));
    }
    if labels.is_empty() {
        return None;
    }
    let mut graph_out = Vec::with_capacity(graph.payload?.len());
    for f in &graph_fields {
        match f.number {
            GRAPH_NODE => {
                let node = Node::read(f.payload?)?;
                match node.outputs.first().and_then(|o| labels.get(o)) {
                    Some((_, input)) if node.is_zipmap() => {
                        let out = &node.outputs[0];
                        write_bytes(&mut graph_out, GRAPH_NODE, &identity(input, out));
                    }
                    _ => graph_out.extend_from_slice(f.raw),
                }
            }
            GRAPH_OUTPUT => {
                let name = parse(f.payload?)?
                    .into_iter()
                    .find(|g| g.number == VALUE_INFO_NAME)
                    .and_then(|g| std::str::from_utf8(g.payload?).ok().map(str::to_string));
                match name.as_ref().and_then(|n| labels.get(n)) {
                    Some((classes, _)) => {
                        let name = name.unwrap_or_default();
                        write_bytes(
                            &mut graph_out,
                            GRAPH_OUTPUT,
                            &float_matrix(&name, classes.len()),
                        );
                    }
                    None => graph_out.extend_from_slice(f.raw),
                }
            }
            _ => graph_out.extend_from_slice(f.raw),
        }
    }
    let mut out = Vec::with_capacity(bytes.len());
    for f in &fields {
        if f.number == MODEL_GRAPH {
            write_bytes(&mut out, MODEL_GRAPH, &graph_out);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    Some(Unzipped {
        bytes: out,
        labels: labels.into_iter().map(|(k, (c, _))| (k, c)).collect(),
    })
}

/// One field of a message: its number, its encoding as found, and (length-delimited
/// fields) its payload.
struct Field<'a> {
    number: u64,
    raw: &'a [u8],
    payload: Option<&'a [u8]>,
    varint: Option<u64>,
}

fn parse(mut bytes: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let start = bytes;
        let key = read_varint(&mut bytes)?;
        let (number, wire) = (key >> 3, key & 7);
        let (payload, varint) = match wire {
            0 => (None, Some(read_varint(&mut bytes)?)),
            1 => {
                bytes = bytes.get(8..)?;
                (None, None)
            }
            2 => {
                let len = usize::try_from(read_varint(&mut bytes)?).ok()?;
                let p = bytes.get(..len)?;
                bytes = &bytes[len..];
                (Some(p), None)
            }
            5 => {
                bytes = bytes.get(4..)?;
                (None, None)
            }
            _ => return None,
        };
        let used = start.len() - bytes.len();
        out.push(Field {
            number,
            raw: &start[..used],
            payload,
            varint,
        });
    }
    Some(out)
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn write_bytes(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    write_varint(out, number << 3 | 2);
    write_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn write_u64(out: &mut Vec<u8>, number: u64, v: u64) {
    write_varint(out, number << 3);
    write_varint(out, v);
}

/// The parts of a NodeProto this needs.
struct Node<'a> {
    inputs: Vec<String>,
    outputs: Vec<String>,
    op_type: String,
    domain: String,
    attributes: Vec<&'a [u8]>,
}

impl<'a> Node<'a> {
    fn read(bytes: &'a [u8]) -> Option<Node<'a>> {
        let text = |f: &Field| {
            f.payload
                .and_then(|p| std::str::from_utf8(p).ok())
                .map(str::to_string)
        };
        let mut node = Node {
            inputs: Vec::new(),
            outputs: Vec::new(),
            op_type: String::new(),
            domain: String::new(),
            attributes: Vec::new(),
        };
        for f in parse(bytes)? {
            match f.number {
                NODE_INPUT => node.inputs.push(text(&f)?),
                NODE_OUTPUT => node.outputs.push(text(&f)?),
                NODE_OP_TYPE => node.op_type = text(&f)?,
                NODE_DOMAIN => node.domain = text(&f)?,
                NODE_ATTRIBUTE => node.attributes.push(f.payload?),
                _ => {}
            }
        }
        Some(node)
    }

    fn is_zipmap(&self) -> bool {
        self.op_type == "ZipMap" && self.domain == "ai.onnx.ml"
    }

    /// The classes, from `classlabels_int64s` or `classlabels_strings`.
    fn classes(&self) -> Option<Vec<String>> {
        for a in &self.attributes {
            let fields = parse(a)?;
            let name = fields
                .iter()
                .find(|f| f.number == ATTR_NAME)
                .and_then(|f| std::str::from_utf8(f.payload?).ok())?;
            let mut classes = Vec::new();
            match name {
                "classlabels_int64s" => {
                    for f in fields.iter().filter(|f| f.number == ATTR_INTS) {
                        match (f.varint, f.payload) {
                            (Some(v), _) => classes.push((v as i64).to_string()),
                            // Packed.
                            (None, Some(mut p)) => {
                                while !p.is_empty() {
                                    classes.push((read_varint(&mut p)? as i64).to_string());
                                }
                            }
                            _ => return None,
                        }
                    }
                }
                "classlabels_strings" => {
                    for f in fields.iter().filter(|f| f.number == ATTR_STRINGS) {
                        classes.push(String::from_utf8(f.payload?.to_vec()).ok()?);
                    }
                }
                _ => continue,
            }
            return (!classes.is_empty()).then_some(classes);
        }
        None
    }
}

/// `output = Identity(input)`.
fn identity(input: &str, output: &str) -> Vec<u8> {
    let mut n = Vec::new();
    write_bytes(&mut n, NODE_INPUT, input.as_bytes());
    write_bytes(&mut n, NODE_OUTPUT, output.as_bytes());
    write_bytes(&mut n, NODE_NAME, format!("{output}_unzipped").as_bytes());
    write_bytes(&mut n, NODE_OP_TYPE, b"Identity");
    n
}

/// ValueInfoProto of a float tensor `[N, classes]`.
fn float_matrix(name: &str, classes: usize) -> Vec<u8> {
    let mut batch = Vec::new();
    write_bytes(&mut batch, 2, b"N"); // Dimension.dim_param
    let mut width = Vec::new();
    write_u64(&mut width, 1, classes as u64); // Dimension.dim_value
    let mut shape = Vec::new();
    write_bytes(&mut shape, 1, &batch); // TensorShapeProto.dim
    write_bytes(&mut shape, 1, &width);
    let mut tensor = Vec::new();
    write_u64(&mut tensor, 1, TENSOR_ELEM_FLOAT); // TypeProto.Tensor.elem_type
    write_bytes(&mut tensor, 2, &shape); // TypeProto.Tensor.shape
    let mut ty = Vec::new();
    write_bytes(&mut ty, 1, &tensor); // TypeProto.tensor_type
    let mut info = Vec::new();
    write_bytes(&mut info, VALUE_INFO_NAME, name.as_bytes());
    write_bytes(&mut info, 2, &ty); // ValueInfoProto.type
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_bad_input_is_refused() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut buf = Vec::new();
            write_varint(&mut buf, v);
            assert_eq!(read_varint(&mut buf.as_slice()), Some(v));
        }
        assert!(unzip(b"\x3a\xff\xff").is_none());
        assert!(unzip(b"not a model").is_none());
        assert!(unzip(&[]).is_none());
    }
}
