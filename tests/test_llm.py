"""The LLM client against the scripted OpenAI-compatible server (both real, no mocks)."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from aos.bash import BASH_TOOL
from aos.facts import Usage
from aos.llm import (
    Completion,
    LLMClient,
    LLMError,
    LLMSettings,
    SSEDecoder,
    ToolCallOut,
    missing_configuration,
    parse_retry_after,
    parse_sse,
)
from aos.testing import Reply, ScriptedLLM, ScriptedToolCall

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hi"}]


def settings_for(llm: ScriptedLLM, **overrides: Any) -> LLMSettings:
    """Settings for the scripted server, with short backoffs."""
    return dataclasses.replace(LLMSettings(base_url=llm.base_url, backoff_base=0.01), **overrides)


def host_of(llm: ScriptedLLM) -> str:
    return llm.base_url.removeprefix("http://").removesuffix("/v1")


@pytest.fixture
async def client(scripted_llm: ScriptedLLM) -> AsyncIterator[LLMClient]:
    async with LLMClient(settings_for(scripted_llm)) as c:
        yield c


async def complete(client: LLMClient, deltas: list[tuple[str, str]] | None = None) -> Completion:
    on_delta = None if deltas is None else (lambda kind, text: deltas.append((kind, text)))
    return await client.complete(
        model="test-model", messages=MESSAGES, tools=[BASH_TOOL], on_delta=on_delta
    )


# --- streaming ------------------------------------------------------------------


async def test_text_streams_deltas_in_order(scripted_llm: ScriptedLLM, client: LLMClient) -> None:
    text = "Hello there, this is a streamed answer."
    scripted_llm.add(Reply.text(text, chunk=5))
    deltas: list[tuple[str, str]] = []
    result = await complete(client, deltas)
    assert result.content == text
    assert result.finish_reason == "stop"
    assert result.tool_calls == []
    assert result.model == "test-model"
    assert [kind for kind, _ in deltas] == ["content"] * 8
    assert [piece for _, piece in deltas] == [text[i : i + 5] for i in range(0, len(text), 5)]
    (request,) = scripted_llm.requests
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["model"] == "test-model"
    assert request.body["messages"] == MESSAGES
    assert request.body["tools"] == [BASH_TOOL]
    assert request.path == "/v1/chat/completions"
    assert "authorization" not in request.headers  # no key for a local server


async def test_api_key_and_params_are_sent(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.add(Reply.text("ok"))
    async with LLMClient(settings_for(scripted_llm, api_key="sk-test")) as c:
        await c.complete(model="m", messages=MESSAGES, params={"temperature": 0.2, "stream": False})
    (request,) = scripted_llm.requests
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["temperature"] == 0.2
    assert request.body["stream"] is True  # params cannot turn streaming off


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
async def test_reasoning_is_kept_apart(
    scripted_llm: ScriptedLLM, client: LLMClient, field: str
) -> None:
    scripted_llm.add(Reply.text("42", reasoning="Let me think it over.", reasoning_field=field))
    deltas: list[tuple[str, str]] = []
    result = await complete(client, deltas)
    assert result.content == "42"
    assert result.reasoning == "Let me think it over."
    assert "".join(t for k, t in deltas if k == "reasoning") == "Let me think it over."
    assert "".join(t for k, t in deltas if k == "content") == "42"
    assert deltas[0][0] == "reasoning"  # it comes first, as streamed


async def test_one_tool_call(scripted_llm: ScriptedLLM, client: LLMClient) -> None:
    scripted_llm.add(Reply.tool_call("ls -la /tmp", id="call_1", timeout=30))
    result = await complete(client)
    assert result.finish_reason == "tool_calls"
    assert result.content == ""
    (call,) = result.tool_calls
    assert (call.id, call.name) == ("call_1", "bash")
    assert json.loads(call.arguments) == {"command": "ls -la /tmp", "timeout": 30}


async def test_parallel_tool_calls_split_across_chunks(
    scripted_llm: ScriptedLLM, client: LLMClient
) -> None:
    scripted_llm.add(
        Reply.tool_calls(
            [
                ScriptedToolCall.bash("echo one && sleep 1", id="a"),
                ScriptedToolCall.bash('printf "%s\\n" two', id="b", timeout=5),
            ],
            text="Running both.",
        )
    )
    result = await complete(client)
    assert result.content == "Running both."
    assert [c.id for c in result.tool_calls] == ["a", "b"]
    assert [json.loads(c.arguments) for c in result.tool_calls] == [
        {"command": "echo one && sleep 1"},
        {"command": 'printf "%s\\n" two', "timeout": 5},
    ]


async def test_raw_tool_arguments_are_passed_through(
    scripted_llm: ScriptedLLM, client: LLMClient
) -> None:
    scripted_llm.add(Reply.tool_calls([ScriptedToolCall("python", '{"code": ', id="x")]))
    (call,) = (await complete(client)).tool_calls
    assert (call.name, call.arguments) == ("python", '{"code": ')


async def test_usage_and_cost(scripted_llm: ScriptedLLM, client: LLMClient) -> None:
    usage = Usage(prompt_tokens=120, completion_tokens=7, total_tokens=127, cost=0.00042)
    scripted_llm.add(Reply.text("hi", usage=usage), Reply.text("again"))
    assert (await complete(client)).usage == usage
    estimated = (await complete(client)).usage
    assert estimated is not None
    assert estimated.cost is None
    assert estimated.total_tokens == estimated.prompt_tokens + estimated.completion_tokens > 0


# --- errors and retries ----------------------------------------------------------


async def test_429_honours_retry_after(scripted_llm: ScriptedLLM, client: LLMClient) -> None:
    scripted_llm.add(Reply.error(429, "Rate limit exceeded", retry_after=1), Reply.text("ok"))
    assert (await complete(client)).content == "ok"
    first, second = scripted_llm.requests
    assert second.time - first.time >= 1.0


async def test_retry_after_as_http_date() -> None:
    now = time.time()
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == (
        pytest.approx(30, abs=1)
    )
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("not a date") is None
    assert parse_retry_after(None) is None


async def test_500_twice_then_success(scripted_llm: ScriptedLLM, client: LLMClient) -> None:
    scripted_llm.add(Reply.error(500, "boom"), Reply.error(502, "bad gateway"), Reply.text("ok"))
    assert (await complete(client)).content == "ok"
    assert len(scripted_llm.requests) == 3


async def test_gives_up_after_max_retries(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.add(*[Reply.error(503, "No endpoints available") for _ in range(3)])
    async with LLMClient(settings_for(scripted_llm, max_retries=2)) as c:
        with pytest.raises(LLMError) as caught:
            await complete(c)
    assert caught.value.message == (
        f"The model server at {host_of(scripted_llm)} failed (503): No endpoints available (gave up after 3 attempts)"
    )
    assert caught.value.status == 503
    assert len(scripted_llm.requests) == 3


async def test_401_is_one_sentence_and_not_retried(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.add(Reply.error(401, "No auth credentials found"))
    settings = settings_for(scripted_llm, provider="OpenRouter", api_key="sk-bad")
    async with LLMClient(settings) as c:
        with pytest.raises(LLMError) as caught:
            await complete(c)
    assert caught.value.message == (
        "OpenRouter rejected the API key (401): check OPENROUTER_API_KEY in .env"
    )
    assert (caught.value.status, caught.value.retryable) == (401, False)
    assert len(scripted_llm.requests) == 1


async def test_provider_label_for_a_local_server(
    scripted_llm: ScriptedLLM, client: LLMClient
) -> None:
    scripted_llm.add(Reply.error(401, "nope"))
    with pytest.raises(LLMError) as caught:
        await complete(client)
    assert caught.value.message == (
        f"The model server at {host_of(scripted_llm)} rejected the API key (401): check OPENROUTER_API_KEY in .env"
    )


@pytest.mark.parametrize(
    ("status", "detail", "sentence"),
    [
        (
            400,
            "messages: field required",
            "OpenRouter rejected the request (400): messages: field required",
        ),
        (
            402,
            "Insufficient credits",
            "OpenRouter says the account is out of credits (402): Insufficient credits",
        ),
        (
            404,
            "No endpoints found for test-model",
            "OpenRouter does not serve model 'test-model' (404): No endpoints found for "
            "test-model; set AOS_MODEL (or the agent's model) to a model it serves, "
            "or check OPENROUTER_BASE_URL",
        ),
        (
            403,
            "flagged by moderation",
            "OpenRouter refused the request for model 'test-model' (403): flagged by "
            "moderation; choose another model with AOS_MODEL (or the agent's model)",
        ),
    ],
)
async def test_client_errors_are_sentences_and_not_retried(
    scripted_llm: ScriptedLLM, status: int, detail: str, sentence: str
) -> None:
    scripted_llm.add(Reply.error(status, detail))
    async with LLMClient(settings_for(scripted_llm, provider="OpenRouter")) as c:
        with pytest.raises(LLMError) as caught:
            await complete(c)
    assert caught.value.message == sentence
    assert not caught.value.retryable
    assert len(scripted_llm.requests) == 1


async def test_mid_stream_error_after_text_is_retried_and_says_so(
    scripted_llm: ScriptedLLM, client: LLMClient
) -> None:
    """No tool call was streamed, so nothing can have been acted on: retried like a 5xx,
    and ``on_retry`` hears of it with the text that broke off."""
    scripted_llm.add(
        Reply.stream_error("Provider disconnected", after_text="Partial ans"),
        Reply.text("Full answer"),
    )
    retries: list[tuple[str, str | None, float]] = []

    async def on_retry(error: LLMError, delay: float) -> None:
        retries.append((error.message, error.partial and error.partial.content, delay))

    result = await client.complete(
        model="test-model", messages=MESSAGES, tools=[BASH_TOOL], on_retry=on_retry
    )
    assert result.content == "Full answer"
    [(message, partial, delay)] = retries
    assert message.endswith("reported an error mid-stream (502): Provider disconnected")
    assert partial == "Partial ans" and delay >= 0
    assert len(scripted_llm.requests) == 2


async def test_a_stream_that_keeps_failing_keeps_its_partial_text(
    scripted_llm: ScriptedLLM, client: LLMClient
) -> None:
    attempts = client.settings.max_retries + 1
    scripted_llm.add(
        *(
            Reply.stream_error("Provider disconnected", after_text="Partial ans")
            for _ in range(attempts)
        )
    )
    deltas: list[tuple[str, str]] = []
    with pytest.raises(LLMError) as caught:
        await complete(client, deltas)
    assert caught.value.message.endswith(f"(gave up after {attempts} attempts)")
    assert caught.value.partial is not None
    assert caught.value.partial.content == "Partial ans"
    assert len(scripted_llm.requests) == attempts


async def test_mid_stream_error_before_any_text_is_retried(
    scripted_llm: ScriptedLLM, client: LLMClient
) -> None:
    scripted_llm.add(Reply.stream_error("Overloaded", code=503), Reply.text("ok"))
    assert (await complete(client, [])).content == "ok"
    assert len(scripted_llm.requests) == 2


async def test_a_cut_stream_is_retried(scripted_llm: ScriptedLLM, client: LLMClient) -> None:
    scripted_llm.add(Reply.disconnect(), Reply.text("ok"))
    assert (await complete(client, [])).content == "ok"
    scripted_llm.add(Reply.disconnect(after_text="Half an"), Reply.text("whole"))
    assert (await complete(client, [])).content == "whole"  # no tool call: nothing acted on
    assert len(scripted_llm.requests) == 4


async def test_exhausted_script_fails_at_once(scripted_llm: ScriptedLLM, client: LLMClient) -> None:
    with pytest.raises(LLMError) as caught:
        await complete(client)
    assert "ScriptedLLM: the script is exhausted (request #1 has no scripted reply)" in (
        caught.value.message
    )
    assert len(scripted_llm.requests) == 1


async def test_default_reply_callable(scripted_llm: ScriptedLLM, client: LLMClient) -> None:
    scripted_llm.default = lambda body: Reply.text(f"echo: {body['messages'][-1]['content']}")
    assert (await complete(client)).content == "echo: hi"
    assert (await complete(client)).content == "echo: hi"


async def test_connection_refused_is_retried_then_one_sentence() -> None:
    with ScriptedLLM() as llm:
        base_url = llm.base_url
    async with LLMClient(LLMSettings(base_url=base_url, max_retries=1, backoff_base=0.01)) as c:
        with pytest.raises(LLMError) as caught:
            await c.complete(model="m", messages=MESSAGES)
    assert caught.value.message.startswith("Cannot connect to the model server at 127.0.0.1:")
    assert caught.value.message.endswith("(gave up after 2 attempts)")
    assert caught.value.retryable


async def test_concurrent_streams_each_get_their_own_reply(
    scripted_llm: ScriptedLLM, client: LLMClient
) -> None:
    """Many streams at once (one connection each, kept alive and reused after)."""
    scripted_llm.default = lambda body: Reply.text(
        f"answer to {body['messages'][-1]['content']}", delay=0.2, chunk=3
    )

    async def ask(n: int) -> str:
        messages = [{"role": "user", "content": f"q{n}"}]
        return (await client.complete(model="test-model", messages=messages)).content

    for _ in range(2):
        answers = await asyncio.gather(*(ask(n) for n in range(150)))
        assert answers == [f"answer to q{n}" for n in range(150)]


async def test_a_read_timeout_is_retried_then_one_sentence(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.default = Reply.text("late", delay=1.0)
    settings = settings_for(scripted_llm, read_timeout=0.2, max_retries=1)
    async with LLMClient(settings) as c:
        with pytest.raises(LLMError) as caught:
            await complete(c)
    host = host_of(scripted_llm)
    assert caught.value.message == (
        f"The model server at {host} did not answer within 0.2 s (gave up after 2 attempts)"
    )
    assert len(scripted_llm.requests) == 2


async def test_models_endpoint_and_async_context() -> None:
    async with ScriptedLLM(model="tiny") as llm, httpx.AsyncClient() as http:
        response = await http.get(f"{llm.base_url}/models")
    assert response.json()["data"][0]["id"] == "tiny"


async def test_a_server_that_ignores_stream_true() -> None:
    """Some local servers answer one JSON body anyway; it is read the same way."""
    reply = Reply(
        content="Listing.",
        calls=(ScriptedToolCall("bash", "{}", id="c1"),),
        model="local",
        usage=Usage(prompt_tokens=3, completion_tokens=2),
        stream=False,
    )
    async with ScriptedLLM(reply) as llm, LLMClient(LLMSettings(base_url=llm.base_url)) as c:
        result = await c.complete(model="local", messages=MESSAGES)
    assert (result.content, result.finish_reason, result.model) == (
        "Listing.",
        "tool_calls",
        "local",
    )
    assert result.tool_calls == [ToolCallOut(id="c1", name="bash", arguments="{}")]
    assert result.usage == Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)


# --- configuration ----------------------------------------------------------------


def env(**values: str) -> Callable[[str], str | None]:
    return values.get


async def test_settings_from_env() -> None:
    default = LLMSettings.from_env(env(OPENROUTER_API_KEY="sk-1"))
    assert (default.base_url, default.api_key, default.provider) == (
        "https://openrouter.ai/api/v1",
        "sk-1",
        "OpenRouter",
    )
    local = LLMSettings.from_env(
        env(OPENROUTER_BASE_URL="http://localhost:11434/v1/", OPENROUTER_API_KEY="")
    )
    assert (local.base_url, local.api_key) == ("http://localhost:11434/v1", None)
    assert local.provider == "the model server at localhost:11434"


async def test_missing_configuration_sentences() -> None:
    openrouter = LLMSettings.from_env(env())
    no_model = missing_configuration(None, openrouter)
    assert no_model is not None
    assert no_model.message == (
        'No model is configured: set AOS_MODEL (or "model" in aoscb.json, or the agent\'s model)'
    )
    no_key = missing_configuration("openai/gpt-4o-mini", openrouter)
    assert no_key is not None
    assert no_key.message == (
        "No API key for OpenRouter: set OPENROUTER_API_KEY in .env "
        "(or point OPENROUTER_BASE_URL at a local OpenAI-compatible server)"
    )
    local = LLMSettings.from_env(env(OPENROUTER_BASE_URL="http://127.0.0.1:1234/v1"))
    assert missing_configuration("qwen", local) is None
    for bad in ("notaurl", "ftp://host/v1", "http://:8080"):
        not_a_url = missing_configuration(
            "qwen", LLMSettings.from_env(env(OPENROUTER_BASE_URL=bad))
        )
        assert not_a_url is not None and not not_a_url.retryable  # a configuration error
        assert not_a_url.message.startswith(f"OPENROUTER_BASE_URL={bad!r} is not a URL: give")
    async with LLMClient(openrouter) as c:
        with pytest.raises(LLMError, match="No API key for OpenRouter"):
            await c.complete(model="m", messages=MESSAGES)  # fails before any request


# --- the SSE parser -------------------------------------------------------------------


def test_sse_comments_and_done() -> None:
    text = ': OPENROUTER PROCESSING\n\ndata: {"a": 1}\n\n:keep-alive\ndata: [DONE]\n\n'
    assert parse_sse(text) == ['{"a": 1}', "[DONE]"]


def test_sse_multi_line_data_and_other_fields() -> None:
    text = "event: message\nid: 7\ndata: line one\ndata:line two\ndata\nretry: 10\n\n"
    assert parse_sse(text) == ["line one\nline two\n"]


def test_sse_crlf_and_cr_line_endings() -> None:
    assert parse_sse("data: a\r\n\r\ndata: b\r\rdata: c\n\n") == ["a", "b", "c"]


def test_sse_decoder_incremental_with_split_crlf() -> None:
    decoder = SSEDecoder()
    text = 'data: {"x": "\u2028"}\r\n\r\ndata: y\r\n\r\n'
    events: list[str] = []
    for char in text:  # one character at a time: every split point
        events += decoder.feed(char)
    assert events + decoder.close() == ['{"x": "\u2028"}', "y"]


def test_sse_last_event_without_blank_line() -> None:
    assert parse_sse("data: [DONE]") == ["[DONE]"]
    assert parse_sse("data: a\n\n\n\n: only a comment\n\n") == ["a"]


async def test_the_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY/HTTP_PROXY and NO_PROXY, read once per client."""
    with ScriptedLLM(Reply.text("via proxy")) as proxy:
        proxy_url = proxy.base_url.removesuffix("/v1")
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with LLMClient(LLMSettings(base_url="http://model.invalid/v1")) as c:
            result = await c.complete(model="m", messages=MESSAGES)
        assert result.content == "via proxy"
        (request,) = proxy.requests
        assert request.path == "/v1/chat/completions"  # the absolute URL, as a proxy gets it
        monkeypatch.setenv("NO_PROXY", "model.invalid")
        async with LLMClient(LLMSettings(base_url="http://model.invalid/v1", max_retries=0)) as c:
            with pytest.raises(LLMError, match="Cannot connect"):
                await c.complete(model="m", messages=MESSAGES)
        assert len(proxy.requests) == 1
