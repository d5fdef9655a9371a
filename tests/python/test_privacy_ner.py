"""PII masking with the NER detector: `/api/v1/privacy/mask` and dataset uploads with
`detectors` rules + ner find names and addresses with the `pii-ner` library model, the
exact rules keep e-mail, phones and ids; no name of the labelled corpus that the model
found survives masking."""
import json

import pytest

from conftest import ner_corpus, pull



@pytest.fixture(scope="module")
def ner_model(server):
    pull(server, "pii-ner")
    return "pii-ner"


def corpus():
    return ner_corpus()


def test_names_and_addresses_are_masked_and_rules_win(server, ner_model):
    text = "Please ship it to Mary Smith, 221 Baker Street, Springfield, IL 62704, or mail mary.smith@example.com."
    r = server.api("POST", "/api/v1/privacy/mask",
                   json={"text": text, "mode": "label", "detectors": ["rules", "ner"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == "Please ship it to [PERSON], [ADDRESS], or mail [EMAIL].", body
    kinds = [f["kind"] for f in body["findings"]]
    assert kinds == ["person", "address", "email"], body
    assert body["counts"] == {"person": 1, "address": 1, "email": 1}
    # The rules alone (the default) leave the name and the address.
    r = server.api("POST", "/api/v1/privacy/mask", json={"text": text, "mode": "label"})
    assert r.json()["text"] == "Please ship it to Mary Smith, 221 Baker Street, Springfield, IL 62704, or mail [EMAIL]."
    # Kinds restrict what is masked; model kinds need the ner detector.
    r = server.api("POST", "/api/v1/privacy/mask",
                   json={"text": text, "mode": "label", "detectors": ["ner"], "kinds": ["person"]})
    assert r.json()["text"] == "Please ship it to [PERSON], 221 Baker Street, Springfield, IL 62704, or mail mary.smith@example.com."
    r = server.api("POST", "/api/v1/privacy/mask", json={"text": text, "kinds": ["person"]})
    assert r.status_code == 400 and "ner detector" in r.json()["error"]["message"], r.text
    r = server.api("POST", "/api/v1/privacy/mask", json={"text": text, "detectors": ["magic"]})
    assert r.status_code == 400, r.text


def test_no_name_the_model_found_survives_masking(server, ner_model):
    items, reference = corpus()
    texts = [it["text"] for it in items[:120]]
    r = server.api("POST", "/api/v1/privacy/mask",
                   json={"texts": texts, "mode": "label", "detectors": ["rules", "ner"]}, timeout=300)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    checked = 0
    for it, ref, res in zip(items, reference, results):
        # Names of the corpus the model found (first strategy, as the masker uses).
        found = {(e["start"], e["end"]) for e in ref["entities"]["first"] if e["label"] in ("GIVEN_NAME", "SURNAME")}
        for e in it["entities"]:
            if e["label"] in ("GIVEN_NAME", "SURNAME") and (e["start"], e["end"]) in found:
                name = it["text"][e["start"]:e["end"]]
                assert name not in res["text"].replace("[PERSON]", ""), (name, res["text"])
                checked += 1
    assert checked > 200, checked


def test_a_dataset_upload_masks_names_before_storing(server, ner_model):
    csv = ("text,label\n"
           "\"Our new tenant, Patricia Johnson, asked for the keys on Monday.\",housing\n"
           "\"The flat on Oak Street has two bedrooms.\",housing\n"
           "\"Call me at (415) 555-2671 about the invoice.\",billing\n"
           "\"The invoice is overdue by ten days.\",billing\n")
    r = server.api("POST", "/api/v1/datasets?name=masked-names&mask_pii=label&pii_detectors=rules,ner",
                   data=csv.encode())
    assert r.status_code == 201, r.text
    stats = r.json()["stats"]["pii"]
    assert stats["detectors"] == ["rules", "ner"] and stats["found"]["person"] >= 1, stats
    preview = server.api("GET", "/api/v1/datasets/masked-names/preview?limit=5").json()
    text = json.dumps(preview)
    assert "Patricia" not in text and "Johnson" not in text and "555-2671" not in text, text
    assert "[PERSON]" in text and "[PHONE]" in text
    r = server.api("POST", "/api/v1/datasets?name=bad-detectors&mask_pii=label&pii_detectors=magic", data=csv.encode())
    assert r.status_code == 400 and "rules, ner" in r.json()["error"]["message"], r.text


def test_a_tenant_policy_with_the_ner_detector_masks_names_before_the_model(server, ner_model, embed_model):
    assert server.api("POST", "/api/v1/tenants", json={"name": "ner-clinic"}).status_code == 201
    key = server.api("POST", "/api/v1/keys", json={"name": "app", "role": "owner",
                                                   "tenant": "ner-clinic"}).json()["secret"]
    auth = {"Authorization": f"Bearer {key}"}
    tenant = [t for t in server.api("GET", "/api/v1/tenants").json()["tenants"] if t["name"] == "ner-clinic"][0]

    def embed(text):
        r = server.http.post(server.base + "/v1/embeddings", json={"model": embed_model, "input": text},
                             headers=auth, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["data"][0]["embedding"]

    raw = "Please call Mary Smith on 138 1234 5678 tomorrow."
    masked = server.api("POST", "/api/v1/privacy/mask",
                        json={"text": raw, "mode": "label", "detectors": ["rules", "ner"]}).json()["text"]
    assert masked == "Please call [PERSON] on [PHONE] tomorrow.", masked
    r = server.http.put(server.base + f"/api/v1/tenants/{tenant['id']}/privacy",
                        json={"inputs": "label", "detectors": ["rules", "ner"]}, headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["pii_detectors"] == ["rules", "ner"] and r.json()["pii_inputs"] == "label"
    # The model sees the masked text: the same vector as the masked text's.
    assert embed(raw) == embed(masked)
    # Back to the rules: the name reaches the model again, the phone does not.
    r = server.http.put(server.base + f"/api/v1/tenants/{tenant['id']}/privacy", json={"detectors": ["rules"]},
                        headers=auth, timeout=60)
    assert r.status_code == 200 and r.json()["pii_detectors"] == ["rules"], r.text
    assert embed(raw) == embed("Please call Mary Smith on [PHONE] tomorrow.")
    r = server.http.put(server.base + f"/api/v1/tenants/{tenant['id']}/privacy", json={"detectors": ["magic"]},
                        headers=auth, timeout=60)
    assert r.status_code == 400, r.text


def test_a_model_policy_with_the_ner_detector_masks_names_for_every_caller(server, ner_model, embed_model):
    """The library model's own input policy names its detectors (over the tenants')."""
    def embed(text):
        r = server.api("POST", "/v1/embeddings", json={"model": embed_model, "input": text})
        assert r.status_code == 200, r.text
        return r.json()["data"][0]["embedding"]

    raw = "Send the results to Patricia Johnson at 42 Elm Street, Springfield."
    masked = server.api("POST", "/api/v1/privacy/mask",
                        json={"text": raw, "mode": "label", "detectors": ["ner"]}).json()["text"]
    assert "Patricia" not in masked and "[PERSON]" in masked, masked
    settings = f"/api/v1/library/{embed_model}/settings"
    try:
        r = server.api("PUT", settings, json={"pii_inputs": "label", "pii_detectors": ["ner"]})
        assert r.status_code == 200, r.text
        assert r.json()["settings"]["pii_detectors"] == ["ner"], r.text
        assert embed(raw) == embed(masked)
        # The rules alone leave the name (and here everything else) to the model.
        r = server.api("PUT", settings, json={"pii_inputs": "label", "pii_detectors": ["rules"]})
        assert r.status_code == 200, r.text
        assert embed(raw) != embed(masked)
        r = server.api("PUT", settings, json={"pii_inputs": "label", "pii_detectors": ["magic"]})
        assert r.status_code == 400, r.text
    finally:
        assert server.api("PUT", settings, json={}).status_code == 200


def test_a_deployment_policy_with_the_ner_detector_masks_names_before_the_classifier(server, ner_model):
    """A deployed classifier's own input policy names its detectors: with `ner` the name
    never reaches it (its answer to the raw text is its answer to the masked text)."""
    import time
    rows = ["text,label"]
    for i in range(30):
        rows.append(f"Patricia Johnson wrote about rain and snow {i},weather")
        rows.append(f"a note about the bank loan and market profit {i},finance")
    r = server.api("POST", "/api/v1/datasets?name=named-notes", data=("\n".join(rows) + "\n").encode())
    assert r.status_code == 201, r.text
    r = server.api("POST", "/api/v1/jobs", json={"dataset": "named-notes", "model": "named-notes", "deploy": True,
                                                 "config": {"architecture": "tfidf-logreg"}})
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    for _ in range(600):
        state = server.api("GET", f"/api/v1/jobs/{job}").json()["status"]
        if state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert state == "succeeded", state

    raw = "Patricia Johnson asked about the bank loan."
    masked = server.api("POST", "/api/v1/privacy/mask",
                        json={"text": raw, "mode": "label", "detectors": ["rules", "ner"]}).json()["text"]
    assert "Patricia" not in masked, masked

    def scores(text):
        r = server.api("POST", "/api/v1/models/named-notes/predict", json={"texts": [text]})
        assert r.status_code == 200, r.text
        return r.json()["predictions"][0]

    plain = scores(raw)
    assert plain != scores(masked)
    r = server.api("POST", "/api/v1/models/named-notes/deploy",
                   json={"version": 1, "pii_inputs": "label", "pii_detectors": ["rules", "ner"]})
    assert r.status_code == 200, r.text
    assert r.json()["pii_detectors"] == ["rules", "ner"], r.text
    assert scores(raw) == scores(masked)
    # A redeploy that does not mention them keeps the detectors; [] hands them back to
    # the callers' tenants (the rules here: the name reaches the model again).
    r = server.api("POST", "/api/v1/models/named-notes/deploy", json={"version": 1})
    assert r.status_code == 200 and r.json()["pii_detectors"] == ["rules", "ner"], r.text
    r = server.api("POST", "/api/v1/models/named-notes/deploy", json={"version": 1, "pii_detectors": []})
    assert r.status_code == 200 and r.json()["pii_detectors"] == [], r.text
    assert scores(raw) == plain
    r = server.api("POST", "/api/v1/models/named-notes/deploy", json={"version": 1, "pii_detectors": ["magic"]})
    assert r.status_code == 400, r.text


def test_a_model_output_policy_with_the_ner_detector_masks_names_in_replies(server, ner_model, chat_model, client):
    """A library model's output policy with `ner`: the names in its replies are masked,
    streamed (held back to sentence ends) or not, and the rules alone leave them."""
    messages = [{"role": "user", "content": "Write two sentences about a doctor called Mary Smith who lives in Boston."}]

    def reply(stream=False):
        kw = dict(model=chat_model, messages=messages, temperature=0, max_tokens=80, seed=7)
        if not stream:
            return client.chat.completions.create(**kw).choices[0].message.content
        chunks = client.chat.completions.create(stream=True, **kw)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    plain = reply()
    found = server.api("POST", "/api/v1/privacy/mask",
                       json={"text": plain, "mode": "label", "detectors": ["rules", "ner"]}).json()
    names = {plain.encode()[f["start"]:f["end"]].decode() for f in found["findings"] if f["kind"] == "person"}
    assert names, (plain, found)
    settings = f"/api/v1/library/{chat_model}/settings"
    try:
        r = server.api("PUT", settings, json={"pii_outputs": "label", "pii_detectors": ["rules", "ner"]})
        assert r.status_code == 200, r.text
        whole, streamed = reply(), reply(stream=True)
        assert whole == streamed, (whole, streamed)
        for name in names:
            for part in name.split():
                assert part not in whole, (part, whole)
        assert "[PERSON]" in whole, whole
        # Masked replies keep the rest of the text: what is left outside the labels is
        # the plain reply's.
        for piece in whole.split("[PERSON]"):
            for word in piece.split():
                if not word.startswith("["):
                    assert word in plain, (word, whole, plain)
        # The rules alone leave the names.
        r = server.api("PUT", settings, json={"pii_outputs": "label", "pii_detectors": ["rules"]})
        assert r.status_code == 200, r.text
        assert all(name in reply() for name in names)
    finally:
        assert server.api("PUT", settings, json={}).status_code == 200
