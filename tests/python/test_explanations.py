"""`explain` on the native predict API, with the deployed `topics` tfidf-logreg model:
exact attributions with character offsets, the predicted or an asked-for class, top_k,
occlusion, and the refusals (bad options, too many texts); and integrated gradients on
a network trained on the same data."""
import pytest

from conftest import _synthetic_csv, wait_for_job


def predict(server, model, body):
    return server.api("POST", f"/api/v1/models/{model}/predict", json=body)


def test_exact_attributions_add_up_to_the_logit(server, topics_model):
    texts = ["Bake the bread: flour, oven, garlic!", "stock market and bank loan 42"]
    r = predict(server, topics_model, {"texts": texts, "explain": True})
    assert r.status_code == 200, r.text
    for text, p in zip(texts, r.json()["predictions"]):
        e = p["explanation"]
        assert e["method"] == "exact" and e["target"] == p["label"]
        assert abs(e["base"] + sum(t["attribution"] for t in e["tokens"]) - e["score"]) < 1e-4
        for t in e["tokens"]:
            assert text[t["start"]:t["end"]].lower() == t["token"]
        # The words of the predicted topic push toward it.
        top = max(e["tokens"], key=lambda t: t["attribution"])
        assert top["attribution"] > 0
    cooking = r.json()["predictions"][0]["explanation"]["tokens"]
    assert {t["token"] for t in cooking if t["attribution"] > 0} & {"bake", "bread", "flour", "oven", "garlic"}


def test_target_top_k_and_occlusion(server, topics_model):
    text = "rain and a storm over the bank"
    ask = {"target": "finance", "method": "occlusion"}
    r = predict(server, topics_model, {"text": text, "explain": ask})
    assert r.status_code == 200, r.text
    answer = r.json()["predictions"][0]
    e = answer["explanation"]
    assert e["method"] == "occlusion" and e["target"] == "finance"
    assert [t["token"] for t in e["tokens"]] == text.split()
    # Occlusion: how much the probability of finance falls without the token; "bank" is
    # the only finance word, the weather words hold it down.
    by_token = {t["token"]: t["attribution"] for t in e["tokens"]}
    assert max(by_token, key=by_token.get) == "bank" and by_token["bank"] > 0
    assert by_token["rain"] < 0 and by_token["storm"] < 0
    assert abs(e["score"] - answer["probabilities"]["finance"]) < 1e-5
    # top_k keeps the largest in absolute value, in text order.
    r = predict(server, topics_model, {"text": text, "explain": {**ask, "top_k": 2}})
    kept = r.json()["predictions"][0]["explanation"]["tokens"]
    largest = sorted(by_token.values(), key=abs, reverse=True)[:2]
    assert sorted(abs(t["attribution"]) for t in kept) == sorted(abs(v) for v in largest)
    assert [t["start"] for t in kept] == sorted(t["start"] for t in kept)


def test_refusals(server, topics_model):
    r = predict(server, topics_model, {"text": "rain", "explain": {"target": "sport"}})
    assert r.status_code == 400 and "sport" in r.json()["error"]["message"]
    r = predict(server, topics_model, {"text": "rain", "explain": {"method": "shap"}})
    assert r.status_code == 400 and "explain" in r.json()["error"]["message"]
    r = predict(server, topics_model, {"text": "rain", "explain": 3})
    assert r.status_code == 400
    r = predict(server, topics_model, {"text": "rain", "explain": {"method": "integrated-gradients"}})
    assert r.status_code == 400 and "exact" in r.json()["error"]["message"]
    r = predict(server, topics_model, {"texts": ["rain"] * 17, "explain": True})
    assert r.status_code == 400 and "16" in r.json()["error"]["message"]
    # Without explain the same batch is fine and carries no explanation.
    r = predict(server, topics_model, {"texts": ["rain"] * 17})
    assert r.status_code == 200 and "explanation" not in r.json()["predictions"][0]


@pytest.fixture(scope="module")
def topics_net(server):
    """An avgpool network on the topics data, deployed as `topics-net`."""
    r = server.api("POST", "/api/v1/datasets?name=topics-net", data=_synthetic_csv().encode())
    assert r.status_code == 201, r.text
    r = server.api("POST", "/api/v1/jobs", json={
        "dataset": "topics-net", "model": "topics-net", "deploy": True,
        "config": {"architecture": "avgpool", "embedding": {"init": "random"}, "epochs": 30,
                   "learning_rate": 0.01},
    })
    assert r.status_code == 202, r.text
    wait_for_job(server, r.json()["id"], 300)
    return "topics-net"


def test_integrated_gradients_on_a_network(server, topics_net):
    text = "stock market bank loan and interest"
    r = predict(server, topics_net, {"text": text, "explain": {"steps": 128}})
    assert r.status_code == 200, r.text
    answer = r.json()["predictions"][0]
    e = answer["explanation"]
    assert e["method"] == "integrated-gradients" and e["target"] == answer["label"] == "finance"
    total = sum(t["attribution"] for t in e["tokens"])
    assert abs(total - (e["score"] - e["base"]) - e["completeness_gap"]) < 1e-3
    assert abs(e["completeness_gap"]) <= 0.05 * max(abs(e["score"] - e["base"]), 1.0)
    for t in e["tokens"]:
        assert text[t["start"]:t["end"]] == t["token"]
    # Exact attributions are tfidf-logreg's; a network says so.
    r = predict(server, topics_net, {"text": text, "explain": {"method": "exact"}})
    assert r.status_code == 400 and "integrated-gradients" in r.json()["error"]["message"]
    r = predict(server, topics_net, {"text": text, "explain": {"steps": 0}})
    assert r.status_code == 400 and "steps" in r.json()["error"]["message"]
