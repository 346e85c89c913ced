"""The fake's OpenAI Responses API (``POST /v1/responses``), read by the official SDK,
whose stream helper rebuilds the answer from the events and checks their order."""

from __future__ import annotations

import json

import openai
from fake_support import OPENAI_KEY

from sidecar.fake import FakeProvider, Reply, Text, Thinking, ToolUse, Usage

ANSWER = Reply(
    [Thinking("Let me look.", "sig"), Text("Reading it."), ToolUse("call_1", "read", {"p": 1})],
    usage=Usage(input=30, output=9, cache_read=20),
    chunk=3,
)


def client(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(api_key=OPENAI_KEY, base_url=f"{fake.url}/v1", max_retries=0)


def test_a_streamed_response_builds_reasoning_text_and_a_function_call(
    fake: FakeProvider,
) -> None:
    fake.script(OPENAI_KEY, [], default=ANSWER)
    with client(fake).responses.stream(model="gpt-test", input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    assert final.output_text == "Reading it."
    call = final.output[-1]
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_1", "read", {"p": 1})
    assert final.usage is not None
    # As chat completions count them: input includes the cached tokens.
    assert (final.usage.input_tokens, final.usage.output_tokens) == (50, 9)
    assert final.usage.input_tokens_details.cached_tokens == 20


def test_a_whole_response_and_a_mid_stream_error_event(fake: FakeProvider) -> None:
    fake.script(OPENAI_KEY, [ANSWER, Reply("cut", error_after=2)])
    whole = client(fake).responses.create(model="gpt-test", input="hi")
    assert whole.output_text == "Reading it." and whole.status == "completed"
    events = list(client(fake).responses.create(model="gpt-test", input="hi", stream=True))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error"]
    assert events[-1].code == "server_error"  # overloaded_error, as OpenAI names it


def test_a_request_without_input_is_refused_as_openai_does(fake: FakeProvider) -> None:
    fake.script(OPENAI_KEY, [], default=ANSWER)
    try:
        client(fake).responses.create(model="gpt-test")  # type: ignore[call-overload]
    except openai.BadRequestError as exc:
        assert "input" in str(exc)
    else:
        raise AssertionError("a Responses request without input was answered")
