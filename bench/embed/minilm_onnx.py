"""An fp32 ONNX graph of a sentence-transformers BERT (all-MiniLM-L6-v2) built from its
model.safetensors with onnx.helper, no torch.

The graph has the node pattern torch.onnx.export gives Hugging Face's BertModel (separate
Q/K/V MatMul+Add, Reshape/Transpose heads, Div by sqrt(d), additive mask, Softmax, exact
erf GELU, LayerNormalization), so onnxruntime's own graph optimisations and its
transformers optimizer recognise it, followed by mean pooling under the attention mask and
L2 normalisation.

Inputs: input_ids, attention_mask (int64, [batch, seq]); output: sentence_embedding
(float32, [batch, hidden]).
"""

import json
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization


def _load_safetensors(path):
    """Reads a safetensors file into {name: np.ndarray} by its documented header."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


class _Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, kind, inputs, **attrs):
        self.n += 1
        out = f"{kind.lower()}_{self.n}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out


def build(model_dir, out_path):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    assert cfg["hidden_act"] == "gelu", cfg["hidden_act"]
    w = {k: v.astype(np.float32) for k, v in _load_safetensors(os.path.join(model_dir, "model.safetensors")).items()
         if v.dtype != np.int64}
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d, eps = h // heads, cfg["layer_norm_eps"]
    g = _Graph()

    def linear(x, name):
        y = g.op("MatMul", [x, g.const(name + ".weight_t", w[name + ".weight"].T.copy())])
        return g.op("Add", [y, g.const(name + ".bias", w[name + ".bias"])])

    def norm(x, name):
        return g.op("LayerNormalization", [x, g.const(name + ".weight", w[name + ".weight"]),
                                           g.const(name + ".bias", w[name + ".bias"])], axis=-1, epsilon=eps)

    split_heads = g.const("split_heads", np.array([0, 0, heads, d], np.int64))
    merge_heads = g.const("merge_heads", np.array([0, 0, h], np.int64))

    # Embeddings: word + position[:seq] + token type 0, LayerNorm.
    words = g.op("Gather", [g.const("word_emb", w["embeddings.word_embeddings.weight"]), "input_ids"])
    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const("one", np.array([1], np.int64))])
    pos = g.op("Slice", [g.const("pos_emb", w["embeddings.position_embeddings.weight"]),
                         g.const("zero", np.array([0], np.int64)), seq, g.const("axis0", np.array([0], np.int64))])
    x = g.op("Add", [g.op("Add", [words, pos]), g.const("type_emb0", w["embeddings.token_type_embeddings.weight"][0])])
    x = norm(x, "embeddings.LayerNorm")

    # Additive mask [batch, 1, 1, seq]: 0 for tokens, -10000 for padding, node for node as
    # BERT exports it (Unsqueeze, Unsqueeze, Cast, Sub, Mul), which the Attention fusion needs.
    ext = g.op("Unsqueeze", ["attention_mask", g.const("axes_1", np.array([1], np.int64))])
    ext = g.op("Unsqueeze", [ext, g.const("axes_2", np.array([2], np.int64))])
    ext = g.op("Cast", [ext], to=TensorProto.FLOAT)
    mask_bias = g.op("Mul", [g.op("Sub", [g.const("f_one", np.array(1.0, np.float32)), ext]),
                             g.const("neg_big", np.array(-10000.0, np.float32))])
    maskf = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def heads_of(part, perm):
            y = g.op("Reshape", [linear(x, p + "attention.self." + part), split_heads])
            return g.op("Transpose", [y], perm=perm)

        q = heads_of("query", [0, 2, 1, 3])
        k = heads_of("key", [0, 2, 3, 1])
        v = heads_of("value", [0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k]), g.const(f"sqrt_d_{i}", np.array(math.sqrt(d), np.float32))])
        probs = g.op("Softmax", [g.op("Add", [scores, mask_bias])], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_heads])
        x = norm(g.op("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        inner = linear(x, p + "intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [inner, g.const(f"sqrt2_{i}", np.array(math.sqrt(2.0), np.float32))])])
        gelu = g.op("Mul", [g.op("Mul", [inner, g.op("Add", [erf, g.const(f"one_{i}", np.array(1.0, np.float32))])]),
                            g.const(f"half_{i}", np.array(0.5, np.float32))])
        x = norm(g.op("Add", [linear(gelu, p + "output.dense"), x]), p + "output.LayerNorm")

    # Mean pooling under the mask, then L2 normalisation.
    m = g.op("Unsqueeze", [maskf, g.const("axis2", np.array([2], np.int64))])
    axis1 = g.const("axis1", np.array([1], np.int64))
    total = g.op("ReduceSum", [g.op("Mul", [x, m]), axis1], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [m, axis1], keepdims=0), g.const("tiny", np.array(1e-9, np.float32))])
    mean = g.op("Div", [total, count])
    length = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [mean, mean]), axis1], keepdims=1)])
    length = g.op("Max", [length, g.const("tiny_norm", np.array(1e-12, np.float32))])
    g.nodes.append(helper.make_node("Div", [mean, length], ["sentence_embedding"]))

    graph = helper.make_graph(
        g.nodes, "minilm",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", h])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="aiaas-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out_path)
    return cfg
