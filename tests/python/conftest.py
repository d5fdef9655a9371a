"""Fixtures: a real `aiaas serve` on port 0 with a fresh data directory, a small
deployed classifier trained through the HTTP API, the library's chat and embedding
models, and an `openai` client pointed at the server."""
import glob
import os
import shutil
import subprocess
import tempfile
import time

import openai
import pytest
import requests

ADMIN_KEY = "aiaas_" + "5a" * 32


def _binary():
    path = os.environ.get("AIAAS_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/aiaas-target"))
        path = os.path.join(target, "debug", "aiaas")
    assert os.path.exists(path), f"aiaas binary not found at {path}; build it first (scripts/test.sh does)"
    return path


class Server:
    def __init__(self, proc, base, data_dir):
        self.proc = proc
        self.base = base
        self.data_dir = data_dir
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {ADMIN_KEY}"

    @property
    def hostport(self):
        return self.base.removeprefix("http://")

    def api(self, method, path, **kw):
        kw.setdefault("timeout", 60)
        return self.http.request(method, self.base + path, **kw)


@pytest.fixture(scope="session")
def server():
    data_dir = tempfile.mkdtemp(prefix="aiaas-py-")
    wheels = os.path.join(
        os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache")), "wheels")
    # Models are pulled from the wheels the set-up script cached (no network needed).
    data = os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache"))
    onnxruntime = sorted(glob.glob(os.path.join(data, "onnxruntime", "libonnxruntime.so*")))
    assert onnxruntime, "no libonnxruntime.so under the test data (run scripts/setup.sh --test)"
    env = dict(os.environ, AIAAS_ADMIN_KEY=ADMIN_KEY, AIAAS_LOG="warn", AIAAS_WHEEL_DIRS=wheels,
               AIAAS_ONNXRUNTIME=onnxruntime[-1])
    log = open(os.path.join(data_dir, "server.log"), "w")
    proc = subprocess.Popen(
        [_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--no-demo",
         "--master-key-file", os.path.join(data_dir, "test-master.key")],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env,
    )
    base = None
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("listening on "):
            base = line.split()[-1]
            break
    assert base, "server did not start"
    yield Server(proc, base, data_dir)
    proc.terminate()
    proc.wait(timeout=60)
    log.close()
    # The data directory holds pulled models (hundreds of MB): never leave it behind.
    shutil.rmtree(data_dir, ignore_errors=True)


def _synthetic_csv(rows_per_class=40):
    classes = {
        "weather": ["rain", "sunny", "cloud", "storm", "wind", "forecast", "snow"],
        "cooking": ["bake", "oven", "flour", "recipe", "spice", "simmer", "garlic"],
        "finance": ["stock", "bond", "market", "profit", "loan", "interest", "bank"],
    }
    lines = ["text,label"]
    for i in range(rows_per_class):
        for label, words in classes.items():
            picked = [words[(i * 3 + j * 5) % len(words)] for j in range(6)]
            lines.append(f"{' '.join(picked)} the {i},{label}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def topics_model(server):
    """A deployed three-class classifier named `topics`."""
    r = server.api("POST", "/api/v1/datasets?name=topics", data=_synthetic_csv().encode())
    assert r.status_code == 201, r.text
    r = server.api("POST", "/api/v1/jobs", json={
        "dataset": "topics", "model": "topics", "deploy": True,
        "config": {"architecture": "tfidf-logreg"},
    })
    assert r.status_code == 202, r.text
    wait_for_job(server, r.json()["id"], 300)
    return "topics"


def wait_for_job(server, job_id, timeout):
    """Polls a training job until it ends; asserts it succeeded and returns it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = server.api("GET", f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert job["status"] == "succeeded", job
    return job


def ner_corpus():
    """The labelled corpus aiaas-pii-en-1 and the Python pipeline's entities on it (built by
    scripts/setup.sh --test from tests/ner/make_corpus.py)."""
    import json
    folder = os.path.join(os.environ.get("AIAAS_TEST_DATA", os.path.expanduser("~/.cache/aiaas-data-cache")),
                          "ner", "corpus")
    with open(os.path.join(folder, "corpus.jsonl"), encoding="utf-8") as f:
        items = [json.loads(l) for l in f]
    with open(os.path.join(folder, "reference.json"), encoding="utf-8") as f:
        reference = json.load(f)
    return items, reference


CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"


def pull(server, source, name=None):
    body = {"source": source, "stream": False}
    if name:
        body["name"] = name
    r = server.api("POST", "/api/v1/library/pull", json=body, timeout=600)
    assert r.status_code in (200, 201), r.text
    return r.json()


@pytest.fixture(scope="session")
def chat_model(server):
    pull(server, CHAT)
    return CHAT


@pytest.fixture(scope="session")
def embed_model(server):
    pull(server, EMBED)
    return EMBED


@pytest.fixture(scope="session")
def client(server):
    return openai.OpenAI(base_url=server.base + "/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120)
