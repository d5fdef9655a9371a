"""The KServe v2 / Open Inference Protocol through NVIDIA's `tritonclient` HTTP client,
unchanged, in both the JSON and the binary tensor forms."""
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import ADMIN_KEY



def auth():
    # A fresh dict per call: tritonclient writes its own headers into the one it is given.
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def client(server):
    return httpclient.InferenceServerClient(url=server.hostport)


def test_health_and_metadata(server, topics_model):
    c = client(server)
    assert c.is_server_live()
    assert c.is_server_ready()
    assert c.is_model_ready(topics_model, headers=auth())
    meta = c.get_model_metadata(topics_model, headers=auth())
    assert meta["name"] == topics_model
    assert meta["inputs"][0]["datatype"] == "BYTES"
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]


@pytest.mark.parametrize("binary", [True, False])
def test_infer_bytes_tensor(server, topics_model, binary):
    texts = np.array([b"bake bread in the oven with flour", b"stock market and bank loan"], dtype=np.object_)
    inp = httpclient.InferInput("text", [2], "BYTES")
    inp.set_data_from_numpy(texts, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput("label", binary_data=binary),
        httpclient.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = client(server).infer(topics_model, [inp], outputs=outputs, headers=auth(), request_id="42")
    labels = [l.decode() if isinstance(l, bytes) else l for l in result.as_numpy("label")]
    assert labels == ["cooking", "finance"]
    probs = result.as_numpy("probabilities")
    assert probs.shape == (2, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert result.get_response()["id"] == "42"


def test_errors_reach_the_client(server, topics_model):
    c = client(server)
    inp = httpclient.InferInput("text", [1], "BYTES")
    inp.set_data_from_numpy(np.array([b"rain"], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="no model"):
        c.infer("missing-model", [inp], headers=auth())
    with pytest.raises(InferenceServerException, match="API key"):
        c.infer(topics_model, [inp])
    bad = httpclient.InferInput("text", [1], "FP32")
    bad.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    with pytest.raises(InferenceServerException, match="BYTES"):
        c.infer(topics_model, [bad], headers=auth())


def test_explanation_as_an_extra_output(server, topics_model):
    """`parameters.explain` adds an `explanation` BYTES output: one JSON document per text."""
    import json

    text = "bake bread in the oven with flour"
    inp = httpclient.InferInput("text", [1], "BYTES")
    inp.set_data_from_numpy(np.array([text.encode()], dtype=np.object_))
    result = client(server).infer(topics_model, [inp], headers=auth(),
                                  parameters={"explain": {"top_k": 3}})
    (doc,) = result.as_numpy("explanation")
    e = json.loads(doc)
    assert e["method"] == "exact" and e["target"] == "cooking"
    assert len(e["tokens"]) == 3
    for t in e["tokens"]:
        assert text[t["start"]:t["end"]] == t["token"]
    # Without the parameter there is no such output.
    plain = client(server).infer(topics_model, [inp], headers=auth())
    assert plain.as_numpy("explanation") is None
