"""OpenAI's files API with the official client: fine-tuning files uploaded, checked line
by line (a bad line is a 400 naming it, and nothing is kept), listed with pagination,
read back, masked by the tenant's input policy, private to their tenant, deleted."""
import json

import openai
import pytest

from conftest import ADMIN_KEY

CHAT = [
    {"messages": [{"role": "system", "content": "You are Quill, a terse assistant."},
                  {"role": "user", "content": f"What is {i} plus {i}?"},
                  {"role": "assistant", "content": f"{2 * i}. -- Quill"}]}
    for i in range(12)
]


def jsonl(examples):
    return ("\n".join(json.dumps(e) for e in examples) + "\n").encode()


def test_a_training_file_round_trips_through_the_openai_client(client):
    content = jsonl(CHAT)
    f = client.files.create(file=("quill.jsonl", content), purpose="fine-tune")
    assert f.id.startswith("file-") and f.object == "file" and f.purpose == "fine-tune"
    assert f.bytes == len(content) and f.filename == "quill.jsonl" and f.status == "processed"
    extra = f.model_extra or {}
    assert extra.get("format") == "chat" and extra.get("examples") == len(CHAT), extra
    assert client.files.retrieve(f.id).id == f.id
    assert client.files.content(f.id).read() == content
    assert f.id in [x.id for x in client.files.list(purpose="fine-tune")]
    completions = jsonl([{"prompt": "2+2=", "completion": " 4"}] * 3)
    g = client.files.create(file=("base.jsonl", completions), purpose="fine-tune")
    assert (g.model_extra or {}).get("format") == "completions"
    deleted = client.files.delete(g.id)
    assert deleted.deleted and deleted.id == g.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(g.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(g.id)


def test_listing_pages_with_a_cursor(client):
    ids = [client.files.create(file=(f"p{i}.jsonl", jsonl(CHAT[:1])), purpose="fine-tune").id for i in range(5)]
    # Iterating a page follows `after` cursors through every page.
    page = client.files.list(limit=2, order="asc")
    assert len(page.data) == 2 and page.has_more
    seen = [f.id for f in page]
    mine = [i for i in seen if i in ids]
    assert mine == ids, (mine, ids)
    newest = client.files.list(limit=3)
    assert [f.id for f in newest.data] == ids[::-1][:3]
    assert newest.has_more


@pytest.mark.parametrize("line, says", [
    ("{not json", "is not valid JSON"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "role \"robot\""),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]}', "(assistant) is empty"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant message"),
    ('{"prompt": "' + "a" * 300_000 + '", "completion": "b"}', "is longer than"),
])
def test_a_bad_line_is_a_400_naming_it_and_nothing_is_kept(client, line, says):
    before = {f.id for f in client.files.list()}
    content = jsonl(CHAT[:2]) + line.encode() + b"\n" + jsonl(CHAT[2:3])
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("bad.jsonl", content), purpose="fine-tune")
    message = e.value.body["message"] if isinstance(e.value.body, dict) else str(e.value)
    assert message.startswith("line 3 ") and says in message, message
    assert {f.id for f in client.files.list()} == before


def test_bad_uploads_get_clear_errors(server, client):
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("x.jsonl", jsonl(CHAT)), purpose="assistants")
    assert "purpose" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("x.jsonl", b"\n\n"), purpose="fine-tune")
    assert "no examples" in str(e.value)
    r = server.api("POST", "/v1/files", data=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file", r.text
    r = server.api("GET", "/v1/files?order=sideways")
    assert r.status_code == 400 and r.json()["error"]["param"] == "order", r.text
    r = server.api("GET", "/v1/files?limit=0")
    assert r.status_code == 400, r.text


def test_files_are_private_to_their_tenant_and_masked_by_its_policy(server):
    assert server.api("POST", "/api/v1/tenants", json={"name": "files-a"}).status_code == 201
    key = server.api("POST", "/api/v1/keys", json={"name": "ft", "role": "owner", "tenant": "files-a"}).json()["secret"]
    other = openai.OpenAI(base_url=server.base + "/v1", api_key=key, max_retries=0)
    admin = openai.OpenAI(base_url=server.base + "/v1", api_key=ADMIN_KEY, max_retries=0)
    mine = admin.files.create(file=("private.jsonl", jsonl(CHAT[:2])), purpose="fine-tune")
    for call in (lambda: other.files.retrieve(mine.id), lambda: other.files.content(mine.id),
                 lambda: other.files.delete(mine.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert mine.id not in [f.id for f in other.files.list()]
    # The tenant masks what its keys send to models: training text is masked before it
    # is stored.
    tenant = [t for t in server.api("GET", "/api/v1/tenants").json()["tenants"] if t["name"] == "files-a"][0]
    r = server.http.put(server.base + f"/api/v1/tenants/{tenant['id']}/privacy", json={"inputs": "label"},
                        headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    pii = [{"messages": [{"role": "user", "content": "Mail me at jane.doe@example.com"},
                         {"role": "assistant", "content": "Sent to jane.doe@example.com."}]}]
    f = other.files.create(file=("pii.jsonl", jsonl(pii)), purpose="fine-tune")
    assert (f.model_extra or {}).get("masked") == "label"
    stored = other.files.content(f.id).read().decode()
    assert "jane.doe" not in stored and stored.count("[EMAIL]") == 2, stored
    # An upload may ask for masking itself.
    f = admin.files.with_raw_response.create(file=("pii2.jsonl", jsonl(pii)), purpose="fine-tune",
                                             extra_body={"mask_pii": "mask"})
    assert f.http_response.status_code == 200, f.http_response.text
    stored = admin.files.content(f.parse().id).read().decode()
    assert "jane.doe@example.com" not in stored, stored


def test_keys_that_may_not_write_cannot_upload(server):
    key = server.api("POST", "/api/v1/keys", json={"name": "reader", "role": "inference"}).json()["secret"]
    c = openai.OpenAI(base_url=server.base + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        c.files.create(file=("x.jsonl", jsonl(CHAT[:1])), purpose="fine-tune")
