"""Canary releases over HTTP, seen through NVIDIA's `tritonclient`: the iris pipeline as
the stable version, `iris_flaky.onnx` (the same input; fails on rows whose fourth
feature is 10 or more) as a 10% canary with automatic rollback. The split over 400
requests, the answering version in every response and in the metrics, the rollback
within one window once the canary starts failing, and its reason in the model's events
and the audit log."""
import os
import time

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import ADMIN_KEY
from test_onnx_models import ONNX_DIR

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
WINDOW_SECS = 20


def upload(server, name, file):
    with open(os.path.join(ONNX_DIR, file), "rb") as f:
        r = server.api("POST", f"/api/v1/models/{name}/versions", data=f.read(),
                       headers={"content-type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return r.json()["version"]


def row(petal_width):
    inp = httpclient.InferInput("X", [1, 4], "FP32")
    inp.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, petal_width]], dtype=np.float32),
                            binary_data=True)
    return [inp], [httpclient.InferRequestedOutput("output_probability", binary_data=True)]


def deployment(server, name):
    return server.api("GET", f"/api/v1/models/{name}").json()["deployment"]


def test_a_canary_takes_its_share_and_rolls_back_when_it_fails(server):
    name = "iris-canary"
    assert upload(server, name, "iris_pipeline.onnx") == 1
    assert upload(server, name, "iris_flaky.onnx") == 2
    body = {"version": 1, "canary": {"version": 2, "percent": 10},
            "auto_rollback": {"max_error_rate_increase": 0.05, "window_secs": WINDOW_SECS,
                              "min_requests": 10}}
    r = server.api("POST", f"/api/v1/models/{name}/deploy", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["canary"]["version"] == 2 and r.json()["canary"]["percent"] == 10

    c = httpclient.InferenceServerClient(url=server.hostport)
    versions = []
    for _ in range(400):
        inputs, outputs = row(0.2)
        result = c.infer(name, inputs, outputs=outputs, headers=AUTH)
        versions.append(result.get_response()["model_version"])
        assert result.as_numpy("output_probability").shape == (1, 3)
    share = 100 * versions.count("2") / len(versions)
    assert abs(share - 10) <= 5, f"the canary answered {share}% of 400 requests at 10%"
    assert versions.count("1") + versions.count("2") == 400

    # The answering version is in a header too, and in the metrics' labels.
    raw = server.api("POST", f"/v2/models/{name}/infer", json={
        "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]})
    assert raw.status_code == 200
    assert raw.headers["x-aiaas-model-version"] == raw.json()["model_version"]
    metrics = server.api("GET", "/metrics").text
    canary_lines = [l for l in metrics.splitlines()
                    if l.startswith("aiaas_model_requests_total") and f'model="{name}"' in l
                    and 'track="canary"' in l and 'version="2"' in l and 'outcome="ok"' in l]
    assert len(canary_lines) == 1, metrics
    assert float(canary_lines[0].rsplit(" ", 1)[1]) >= versions.count("2")
    assert deployment(server, name)["canary"] is not None, "rolled back while healthy"

    # The canary starts failing: 500s from version 2, answers from version 1.
    first_failure = None
    rolled_back_after = None
    for _ in range(2000):
        inputs, outputs = row(50.0)
        try:
            result = c.infer(name, inputs, outputs=outputs, headers=AUTH)
            assert result.get_response()["model_version"] == "1"
        except InferenceServerException as e:
            assert e.status() == "500", e
            first_failure = first_failure or time.monotonic()
        d = deployment(server, name)
        if d["canary"] is None:
            assert d["version"] == 1
            rolled_back_after = time.monotonic() - first_failure
            break
    assert rolled_back_after is not None, "the failing canary was never rolled back"
    assert rolled_back_after < WINDOW_SECS
    for _ in range(20):
        inputs, outputs = row(50.0)
        assert c.infer(name, inputs, outputs=outputs, headers=AUTH) \
            .get_response()["model_version"] == "1"

    events = server.api("GET", f"/api/v1/models/{name}/events").json()
    assert [e["kind"] for e in events] == ["canary.auto_rollback", "canary.start", "deploy"]
    assert "canary version 2 failed" in events[0]["detail"]["reason"]
    audit = server.api("GET", "/api/v1/audit", params={"action": "models.auto_rollback"}).json()
    entries = audit["entries"] if isinstance(audit, dict) else audit
    assert len(entries) == 1, audit
    assert entries[0]["role"] == "system" and entries[0]["target"] == f"/api/v1/models/{name}"

    # By hand: a new canary, promoted; then another, rolled back.
    assert server.api("POST", f"/api/v1/models/{name}/deploy",
                      json={"version": 2, "canary": {"version": 1, "percent": 50}}).status_code == 200
    r = server.api("POST", f"/api/v1/models/{name}/promote")
    assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["canary"] is None
    r = server.api("POST", f"/api/v1/models/{name}/rollback")
    assert r.status_code == 409 and "no canary" in r.json()["error"]["message"]


def test_bad_canaries_are_400s(server):
    name = "iris-canary-bad"
    upload(server, name, "iris_pipeline.onnx")
    for body, words in [
        ({"canary": {"version": 1, "percent": 10}}, "another version"),
        ({"version": 1, "auto_rollback": {"window_secs": 10}}, "needs a canary"),
        ({"version": 1, "canary": {"version": 2, "percent": 10}}, "no version 2"),
        ({"version": 1, "canary": {"version": 1, "percent": 10, "extra": 1}}, "unknown field"),
    ]:
        r = server.api("POST", f"/api/v1/models/{name}/deploy", json=body)
        assert r.status_code in (400, 404), (body, r.text)
        assert words in r.json()["error"]["message"], (body, r.text)
    assert server.api("GET", f"/api/v1/models/{name}").json()["deployment"] is None
