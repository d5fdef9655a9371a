"""OpenAI's Responses API through the official `openai` client (`client.responses`),
unchanged but for `base_url` and `api_key`, against the real server and SmolLM2."""
import json

import jsonschema
import openai
import pytest

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_create_with_text_input(client, chat_model):
    r = client.responses.create(model=chat_model, input="Name a colour.", max_output_tokens=12,
                                temperature=0, instructions="Answer in one word.")
    assert r.id.startswith("resp_") and r.object == "response"
    assert r.status in ("completed", "incomplete")
    assert r.output_text.strip()
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    assert r.usage.output_tokens <= 12
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.instructions == "Answer in one word."
    cut = client.responses.create(model=chat_model, input="Write a long story about a fox.",
                                  max_output_tokens=5, temperature=0)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"


def test_streaming_events_assemble_to_the_final_response(client, chat_model):
    types, text = [], ""
    stream = client.responses.create(model=chat_model, input="Say hello to the sea.",
                                     max_output_tokens=20, temperature=0, stream=True)
    final = None
    for event in stream:
        types.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type in ("response.completed", "response.incomplete"):
            final = event.response
    assert types[:2] == ["response.created", "response.in_progress"]
    assert "response.output_item.added" in types and "response.output_text.done" in types
    assert final is not None and final.output_text == text and text
    numbers = []
    with client.responses.stream(model=chat_model, input="Count to three.", max_output_tokens=200,
                                 temperature=0) as s:
        for event in s:
            numbers.append(event.sequence_number)
        helper_final = s.get_final_response()
    assert numbers == list(range(len(numbers)))
    assert helper_final.output_text
    # The same input without streaming gives the same text (greedy).
    again = client.responses.create(model=chat_model, input="Say hello to the sea.",
                                    max_output_tokens=20, temperature=0)
    assert again.output_text == text


def test_function_tools_and_continuing_with_previous_response_id(client, chat_model):
    first = client.responses.create(model=chat_model, input="What is the weather in Lisbon?",
                                    tools=[WEATHER], tool_choice="required", temperature=0)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls, first.output
    for call in calls:
        assert call.name == "get_weather" and call.call_id.startswith("call_")
        jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    second = client.responses.create(
        model=chat_model, previous_response_id=first.id, tools=[WEATHER], tool_choice="none",
        temperature=0, max_output_tokens=40,
        input=[{"type": "function_call_output", "call_id": c.call_id,
                "output": json.dumps({"sky": "sunny", "celsius": 21})} for c in calls])
    assert second.previous_response_id == first.id
    assert second.output_text.strip()
    assert all(item.type == "message" for item in second.output)
    alone = client.responses.create(
        model=chat_model, tools=[WEATHER], tool_choice="none", temperature=0, max_output_tokens=40,
        input=[{"type": "function_call_output", "call_id": c.call_id, "output": "{}"} for c in calls])
    assert second.usage.input_tokens > alone.usage.input_tokens + 5, "the earlier turns are in the prompt"
    # Streamed, a forced call arrives as function_call items with argument events.
    kinds, arguments = set(), ""
    for event in client.responses.create(model=chat_model, input="Weather in Oslo?", tools=[WEATHER],
                                         tool_choice={"type": "function", "name": "get_weather"},
                                         stream=True, temperature=0):
        kinds.add(event.type)
        if event.type == "response.function_call_arguments.done":
            arguments = event.arguments
    assert "response.function_call_arguments.delta" in kinds and "response.completed" in kinds
    jsonschema.validate(json.loads(arguments), WEATHER["parameters"])


def test_conversations_continue_and_stored_responses_are_the_tenants(server, client, chat_model):
    first = client.responses.create(model=chat_model, input="My name is Ada. Remember it.",
                                    max_output_tokens=10, temperature=0)
    follow = client.responses.create(model=chat_model, previous_response_id=first.id,
                                     input="What is my name?", max_output_tokens=10, temperature=0)
    assert follow.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text
    # Another tenant's key gets a 404, exactly as for a missing id.
    assert server.api("POST", "/api/v1/tenants", json={"name": "responses-other"}).status_code == 201
    key = server.api("POST", "/api/v1/keys", json={"name": "other", "role": "owner",
                                                   "tenant": "responses-other"}).json()["secret"]
    other = openai.OpenAI(base_url=server.base + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model=chat_model, previous_response_id=first.id, input="hi")
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(first.id)
    # `store: false` keeps nothing; delete forgets.
    unstored = client.responses.create(model=chat_model, input="hi", store=False, max_output_tokens=3)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_bad_requests_name_their_param(client, chat_model):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=chat_model, input=[{"type": "web_search_call"}])
    assert e.value.body["param"] == "input[0].type"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=chat_model, input="hi", tools=[WEATHER],
                                tool_choice={"type": "function", "name": "nope"})
    assert e.value.body["param"] == "tool_choice"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=chat_model, input="hi", text={"format": {"type": "yaml"}})
    assert e.value.body["param"] == "text.format"
    # An id that is no response id is simply not found (it never reaches the store).
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_..%2F..%2Fsecrets")
