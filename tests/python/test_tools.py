"""Tool calling through the official `openai` client, unchanged but for `base_url` and
`api_key`, against the real server and SmolLM2-135M-Instruct (its template knows no
tools, so the server uses its generic JSON format under a grammar)."""
import json

import jsonschema
import openai
import pytest


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 40}},
            "required": ["zone"],
        },
    },
}
TOOLS = [WEATHER, TIME]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
QUESTION = [{"role": "user", "content": "What is the weather like in Lisbon right now?"}]


def check_call(call, name=None):
    assert call.type == "function"
    assert call.id.startswith("call_")
    if name:
        assert call.function.name == name
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMAS[call.function.name])
    return arguments


def test_a_named_call_parses_and_validates(client, chat_model):
    r = client.chat.completions.create(
        model=chat_model, messages=QUESTION, tools=TOOLS, temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls
    for call in choice.message.tool_calls:
        check_call(call, "get_weather")


def test_a_required_call_streams_as_openai_does(client, chat_model):
    # The client's stream helper assembles the call from its delta chunks.
    with client.chat.completions.stream(
            model=chat_model, messages=QUESTION, tools=TOOLS, tool_choice="required",
            temperature=0) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in kinds, kinds
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    for call in choice.message.tool_calls:
        check_call(call)
    # Raw chunks too: the first piece of a call has its id and name, the next its arguments.
    pieces = []
    for chunk in client.chat.completions.create(
            model=chat_model, messages=QUESTION, tools=TOOLS, temperature=0, stream=True,
            tool_choice={"type": "function", "function": {"name": "get_time"}}):
        for c in chunk.choices:
            pieces.extend(c.delta.tool_calls or [])
    assert pieces[0].index == 0 and pieces[0].id and pieces[0].function.name == "get_time"
    calls = {}
    for p in pieces:
        if p.id:
            assert p.index not in calls and p.function.name == "get_time"
            calls[p.index] = ""
        calls[p.index] += p.function.arguments or ""
    assert sorted(calls) == list(range(len(calls)))
    for arguments in calls.values():
        jsonschema.validate(json.loads(arguments), SCHEMAS["get_time"])


def test_a_two_step_agent_loop(client, chat_model):
    messages = list(QUESTION)
    first = client.chat.completions.create(
        model=chat_model, messages=messages, tools=TOOLS, tool_choice="required", temperature=0)
    calls = first.choices[0].message.tool_calls
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id,
                         "content": json.dumps({"temperature": 21, "sky": "sunny"})})
    # The model may call again (auto) or answer; an agent then asks for the answer.
    second = client.chat.completions.create(
        model=chat_model, messages=messages, tools=TOOLS, temperature=0)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens, "the results are in the prompt"
    reply = second.choices[0]
    if reply.message.tool_calls:
        assert reply.finish_reason == "tool_calls"
        for call in reply.message.tool_calls:
            check_call(call)
        final = client.chat.completions.create(
            model=chat_model, messages=messages, tools=TOOLS, tool_choice="none", temperature=0,
            max_tokens=60)
        reply = final.choices[0]
    assert reply.message.tool_calls is None
    assert reply.message.content and reply.message.content.strip()


def test_parallel_tool_calls_false_makes_at_most_one_call(client, chat_model):
    prompts = ["Weather in Oslo and the time in Tokyo?", "Time in Paris, weather in Rome?",
               "Check the weather in Lima, Quito and Bogota."]
    for p in prompts:
        r = client.chat.completions.create(
            model=chat_model, messages=[{"role": "user", "content": p}], tools=TOOLS,
            tool_choice="required", parallel_tool_calls=False, temperature=0.8, seed=7, n=3)
        for choice in r.choices:
            assert len(choice.message.tool_calls) == 1, choice.message
            check_call(choice.message.tool_calls[0])


def test_tool_choice_none_never_calls(client, chat_model):
    r = client.chat.completions.create(
        model=chat_model, messages=QUESTION, tools=TOOLS, tool_choice="none", max_tokens=30,
        temperature=0.9, seed=3, n=4)
    for choice in r.choices:
        assert choice.message.tool_calls is None
        assert choice.finish_reason in ("stop", "length")
        assert choice.message.content


def test_auto_answers_or_calls_never_anything_else(client, chat_model):
    for text in ["Hello there!", "What is the weather in Madrid?"]:
        r = client.chat.completions.create(
            model=chat_model, messages=[{"role": "user", "content": text}], tools=TOOLS,
            temperature=0, max_tokens=120)
        choice = r.choices[0]
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls"
            for call in choice.message.tool_calls:
                check_call(call)
        else:
            assert choice.message.content and not choice.message.content.startswith('{"')


def test_bad_tools_are_400s_naming_them(client, chat_model):
    bad_schema = {"type": "function", "function": {
        "name": "broken", "parameters": {"type": "object",
                                         "properties": {"x": {"$ref": "#/definitions/missing"}}}}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=chat_model, messages=QUESTION, tools=[WEATHER, bad_schema])
    assert "broken" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=chat_model, messages=QUESTION, tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_stock_price"}})
    assert "get_stock_price" in str(e.value) and e.value.body["param"] == "tool_choice"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=chat_model, messages=QUESTION,
            tools=[{"type": "function", "function": {"name": "bad name!"}}])
    assert e.value.body["param"] == "tools[0].function.name"
