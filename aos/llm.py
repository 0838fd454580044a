"""LLM client: the OpenAI-compatible Chat Completions API, streamed, over aiohttp.

OpenRouter by default (``OPENROUTER_API_KEY``); any OpenAI-compatible server
(Ollama, LM Studio, vLLM...) through ``OPENROUTER_BASE_URL``, where a key is
optional. Every call streams (Server-Sent Events) and asks for usage
(``stream_options.include_usage``). Content and reasoning deltas are handed to
``on_delta`` as they arrive; tool calls are assembled from their deltas by
``index``.

Failures become an :class:`LLMError` whose ``message`` is one sentence a user
can act on. Rate limits, server errors, transport errors and streams cut short
are retried with exponential backoff and full jitter, honouring
``Retry-After``, but only while nothing has been handed to ``on_delta`` yet:
text already shown is never shown twice.

Why aiohttp (not httpx): the client parses a streamed reply per model call,
every step of every session. Measured on this project's machine class, httpx
spends ~0.9 ms of CPU per streamed request (its models and httpcore's pure-
Python HTTP/1.1 and pool), aiohttp ~0.2 ms (C parser); with 200 sessions the
difference was a third of the kernel's CPU. The OpenAI SDK offers aiohttp for
the same reason (``DefaultAioHttpClient``).
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import email.utils
import json
import random
import re
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import msgspec
from yarl import URL

from aos.facts import Usage

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
KEY_VARIABLE = "OPENROUTER_API_KEY"
BASE_URL_VARIABLE = "OPENROUTER_BASE_URL"

JSON_CONTENT = {"Content-Type": "application/json"}
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))

OnDelta = Callable[[str, str], None]
"""``on_delta(kind, text)`` with kind ``"content"`` or ``"reasoning"``."""
OnRetry = Callable[["LLMError", float], Awaitable[None]]
"""``await on_retry(error, delay)`` before each retry, ``delay`` seconds ahead;
``error.partial`` is what the failed attempt had streamed (None if nothing)."""


def is_openrouter(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LLMSettings:
    """Where and how to reach the model server."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    provider: str = ""
    """Name used in error sentences; by default ``OpenRouter`` for OpenRouter's URL,
    else ``the model server at <host:port>``."""
    key_variable: str = KEY_VARIABLE
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    """Longest silence allowed between two bytes of a response."""
    max_retries: int = 4
    """Retries after the first attempt (so up to ``max_retries + 1`` requests)."""
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    max_retry_after: float = 120.0
    """A ``Retry-After`` longer than this is not waited for: the call fails instead."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not self.provider:
            if is_openrouter(self.base_url):
                label = "OpenRouter"
            else:
                parts = urlsplit(self.base_url)
                label = f"the model server at {parts.netloc or self.base_url}"
            object.__setattr__(self, "provider", label)

    @property
    def is_openrouter(self) -> bool:
        return is_openrouter(self.base_url)

    @classmethod
    def from_env(cls, getenv: Callable[[str], str | None], **overrides: Any) -> LLMSettings:
        """Settings from ``OPENROUTER_API_KEY`` and ``OPENROUTER_BASE_URL`` (pass
        ``Config.getenv`` so that ``.env`` counts); empty values count as unset."""
        base_url = (getenv(BASE_URL_VARIABLE) or "").strip() or DEFAULT_BASE_URL
        api_key = (getenv(KEY_VARIABLE) or "").strip() or None
        return cls(base_url=base_url, api_key=api_key, **overrides)


class LLMError(Exception):
    """A model call that failed; ``message`` is one sentence for the user."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        """The HTTP status (or the code of a mid-stream error), when there was one."""
        self.retryable = retryable
        """Whether the cause is transient (``complete`` already retried what it could)."""
        self.retry_after = retry_after
        """Seconds the server asked to wait (``Retry-After``), if it did."""
        self.partial: Completion | None = None
        """What had been streamed (and handed to ``on_delta``) before the failure."""

    def __str__(self) -> str:
        return self.message


def _final(exc: LLMError, message: str) -> LLMError:
    """The error that ends the retries: ``exc`` said as ``message``."""
    final = LLMError(message, status=exc.status, retryable=True, retry_after=exc.retry_after)
    final.partial = exc.partial
    return final


def missing_configuration(model: str | None, settings: LLMSettings) -> LLMError | None:
    """Why a call cannot even be attempted (no model, a base URL that is not one, no
    key for OpenRouter), or None."""
    url = urlsplit(settings.base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        return LLMError(
            f"{BASE_URL_VARIABLE}={settings.base_url!r} is not a URL: give the model server's "
            "address, e.g. https://openrouter.ai/api/v1 or http://localhost:11434/v1"
        )
    if not model:
        return LLMError(
            'No model is configured: set AOS_MODEL (or "model" in aoscb.json, '
            "or the agent's model)"
        )
    if settings.is_openrouter and not settings.api_key:
        return LLMError(
            f"No API key for OpenRouter: set {settings.key_variable} in .env "
            f"(or point {BASE_URL_VARIABLE} at a local OpenAI-compatible server)"
        )
    return None


class ToolCallOut(msgspec.Struct, kw_only=True):
    """A tool call as the model produced it (``arguments`` is the raw JSON text)."""

    id: str
    name: str
    arguments: str = ""


class Completion(msgspec.Struct, kw_only=True):
    """One assembled model reply."""

    content: str = ""
    reasoning: str = ""
    reasoning_details: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """OpenRouter's structured reasoning (``reasoning.text`` with its ``signature``,
    ``reasoning.summary``, ``reasoning.encrypted``), assembled by ``index``: sent back
    as is with the assistant message so that signed reasoning chains continue."""
    tool_calls: list[ToolCallOut] = msgspec.field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None


# --- Server-Sent Events -------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SSEDecoder:
    """Incremental Server-Sent Events decoder that yields each event's data.

    Lines end with CRLF, LF or CR (a CR at the end of the text received so far
    waits: its LF may come next); lines starting with ``:`` are comments
    (keep-alives); several ``data:`` lines of one event are joined with ``\\n``;
    a blank line ends the event. Other fields (``event``, ``id``, ``retry``) are
    ignored, and an event without data is not dispatched.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []

    def feed(self, text: str) -> list[str]:
        """Add received text; return the data of the events it completed."""
        buffer = self._buffer + text
        events: list[str] = []
        pos = 0
        while (match := _LINE_BREAK.search(buffer, pos)) is not None:
            if match.group() == "\r" and match.end() == len(buffer):
                break  # maybe the first half of a CRLF
            self._line(buffer[pos : match.start()], events)
            pos = match.end()
        self._buffer = buffer[pos:]
        return events

    def close(self) -> list[str]:
        """End of stream: a last line without its terminator, and a last event
        without its blank line, are still delivered."""
        rest, self._buffer = self._buffer, ""
        events: list[str] = []
        if rest:
            self._line(rest.removesuffix("\r"), events)
        self._line("", events)
        return events

    def _line(self, line: str, events: list[str]) -> None:
        if line == "":
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            if name == "data":
                self._data.append(value.removeprefix(" "))


def parse_sse(text: str) -> list[str]:
    """The data of every event in a complete SSE text (see :class:`SSEDecoder`)."""
    decoder = SSEDecoder()
    return decoder.feed(text) + decoder.close()


# --- the client -----------------------------------------------------------------


def _capitalized(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_text(body: Any) -> str:
    """The provider's message out of an error body (OpenAI, OpenRouter, vLLM, FastAPI shapes)."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, str):
            return error
        if isinstance(error, Mapping):
            for key in ("message", "detail", "error"):
                value = error.get(key)
                if isinstance(value, str) and value:
                    return value
            raw = error.get("metadata")
            if isinstance(raw, Mapping) and isinstance(raw.get("raw"), str):
                return raw["raw"]
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if detail is not None:
            return json.dumps(detail)
    if isinstance(body, str):
        return body
    return json.dumps(body)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)


class _Assembly:
    """The reply being assembled from stream chunks."""

    def __init__(self, on_delta: OnDelta | None) -> None:
        self.on_delta = on_delta
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.reasoning_details: dict[int, dict[str, Any]] = {}
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.done = False

    def emit(self, kind: str, text: str) -> None:
        (self.content if kind == "content" else self.reasoning).append(text)
        if self.on_delta is not None:
            self.on_delta(kind, text)

    def completion(self) -> Completion:
        calls = [
            ToolCallOut(
                id=call["id"] or f"call_{uuid.uuid4().hex[:24]}",
                name=call["name"],
                arguments="".join(call["arguments"]),
            )
            for _, call in sorted(self.calls.items())
        ]
        return Completion(
            content="".join(self.content),
            reasoning="".join(self.reasoning),
            reasoning_details=[d for _, d in sorted(self.reasoning_details.items())],
            tool_calls=calls,
            finish_reason=self.finish_reason,
            usage=self.usage,
            model=self.model,
        )


class LLMClient:
    """A streaming Chat Completions client over one ``aiohttp.ClientSession``
    (opened on first use, in the running event loop; close it with :meth:`close`).

    Connections are kept alive and reused; there is no cap on how many are
    open at once (each concurrent stream holds one). A proxy comes from the
    usual environment variables (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``),
    read once per client: aiohttp's ``trust_env`` would read them, and
    ``~/.netrc``, again on a worker thread for every request.
    """

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._url = URL(f"{settings.base_url}/chat/completions")  # parsed once
        self._headers = {
            "Accept": "text/event-stream",
            "Content-Type": "application/json",
            "User-Agent": "aos",
        }
        if settings.api_key:
            self._headers["Authorization"] = f"Bearer {settings.api_key}"
        if settings.is_openrouter:
            self._headers["X-Title"] = "AgentOS"
        self._session: aiohttp.ClientSession | None = None
        self._proxy = _proxy_for(settings.base_url)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            settings = self.settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=ssl.create_default_context()),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=settings.connect_timeout,
                    sock_read=settings.read_timeout,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),  # an API: no cookies to keep
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def complete(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        params: Mapping[str, Any] | None = None,
        on_delta: OnDelta | None = None,
        on_retry: OnRetry | None = None,
    ) -> Completion:
        """Stream one completion; retry transient failures, also a stream that broke
        off after some text but before any tool call (nothing can have been acted on;
        ``on_retry`` hears of each retry, with the text that broke off).

        ``params`` are extra request fields (``temperature``, ``max_tokens``...).
        Raises :class:`LLMError` (its ``partial``: what the last attempt streamed).
        """
        settings = self.settings
        problem = missing_configuration(model, settings)
        if problem is not None:
            raise problem
        payload: dict[str, Any] = dict(params or {})
        payload.update(
            model=model,
            messages=list(messages),
            stream=True,
            stream_options={"include_usage": True},
        )
        if tools:
            payload["tools"] = list(tools)
        body = msgspec.json.encode(payload)  # the whole context, every step: ~5x json.dumps
        attempt = 0
        while True:
            assembly = _Assembly(on_delta)
            try:
                await self._attempt(body, assembly, model)
                return assembly.completion()
            except LLMError as exc:
                if assembly.content or assembly.reasoning:
                    exc.partial = assembly.completion()
                if not exc.retryable or assembly.calls:  # a tool call may be acted on
                    raise
                if attempt >= settings.max_retries:
                    raise _final(
                        exc, f"{exc.message} (gave up after {attempt + 1} attempts)"
                    ) from exc
                delay = exc.retry_after
                if delay is None:
                    ceiling = min(settings.backoff_cap, settings.backoff_base * 2**attempt)
                    delay = random.uniform(0, ceiling)
                elif delay > settings.max_retry_after:
                    raise _final(
                        exc, f"{exc.message} (it asked to wait {delay:.0f} s before retrying)"
                    ) from exc
                attempt += 1
                if on_retry is not None:
                    await on_retry(exc, delay)
                await asyncio.sleep(delay)

    async def _attempt(self, body: bytes, assembly: _Assembly, model: str) -> None:
        provider = self.settings.provider
        try:
            async with self._http().post(self._url, data=body, proxy=self._proxy) as response:
                if response.status != 200:
                    raise self._status_error(
                        response.status,
                        response.headers,
                        await response.text(errors="replace"),
                        model,
                        response.reason or "",
                    )
                if "application/json" in response.headers.get("Content-Type", ""):
                    self._whole(await response.read(), assembly)  # it ignored "stream": true
                    return
                decoder = SSEDecoder()
                text = codecs.getincrementaldecoder("utf-8")(errors="replace")
                # Read to the end even after [DONE]: a fully read response lets the
                # connection go back to the pool (no new TCP/TLS handshake per step).
                async for chunk in response.content.iter_any():
                    for data in decoder.feed(text.decode(chunk)):
                        if not assembly.done:
                            self._event(data, assembly)
                for data in decoder.feed(text.decode(b"", final=True)) + decoder.close():
                    if not assembly.done:
                        self._event(data, assembly)
                if assembly.done:
                    return
        except aiohttp.ConnectionTimeoutError as exc:
            raise LLMError(
                f"{_capitalized(provider)} did not connect within {self.settings.connect_timeout:g} s",
                retryable=True,
            ) from exc
        except TimeoutError as exc:  # aiohttp's read timeout is a TimeoutError too
            raise LLMError(
                f"{_capitalized(provider)} did not answer within {self.settings.read_timeout:g} s",
                retryable=True,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
            raise LLMError(
                f"Cannot connect to {provider} at {self.settings.base_url}: {_clip(reason)}",
                retryable=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise LLMError(
                f"The connection to {provider} failed: {_clip(str(exc)) or type(exc).__name__}",
                retryable=True,
            ) from exc
        if not assembly.done and assembly.finish_reason is None:
            raise LLMError(
                f"The stream from {provider} ended before the reply was complete",
                retryable=True,
            )

    def _status_error(
        self, status: int, headers: Mapping[str, str], text: str, model: str, reason: str
    ) -> LLMError:
        settings = self.settings
        provider = settings.provider
        who = _capitalized(provider)
        try:
            detail = _clip(_error_text(json.loads(text)))
        except ValueError:
            detail = _clip(text) or reason
        retry_after = parse_retry_after(headers.get("Retry-After"))
        should_retry = headers.get("X-Should-Retry", "").lower()
        if status == 401:
            message = f"{who} rejected the API key (401): check {settings.key_variable} in .env"
        elif status == 402:
            message = f"{who} says the account is out of credits (402): {detail}"
        elif status == 403:
            message = (
                f"{who} refused the request for model {model!r} (403): {detail}; "
                "choose another model with AOS_MODEL (or the agent's model)"
            )
        elif status == 404:
            message = (
                f"{who} does not serve model {model!r} (404): {detail}; set AOS_MODEL "
                f"(or the agent's model) to a model it serves, or check {BASE_URL_VARIABLE}"
            )
        elif status == 429:
            message = f"{who} is rate limiting requests (429): {detail}"
        elif status == 408:
            message = f"{who} timed out (408): {detail}"
        elif status >= 500:
            message = f"{who} failed ({status}): {detail}"
        else:
            message = f"{who} rejected the request ({status}): {detail}"
        retryable = status in RETRYABLE_STATUSES
        if should_retry in ("true", "false"):  # the OpenAI SDKs' override header
            retryable = should_retry == "true"
        return LLMError(message, status=status, retryable=retryable, retry_after=retry_after)

    def _event(self, data: str, assembly: _Assembly) -> None:
        provider = self.settings.provider
        if data.strip() == "[DONE]":
            assembly.done = True
            return
        try:
            chunk = _decode(data)
        except msgspec.DecodeError as exc:
            raise LLMError(
                f"{_capitalized(provider)} sent a stream event that is not JSON: {_clip(data, 120)}",
                retryable=True,
            ) from exc
        if not isinstance(chunk, dict):
            return
        error = chunk.get("error")
        if error is not None or chunk.get("object") == "error":
            raise self._stream_error(chunk, error)
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            assembly.model = chunk["model"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            assembly.usage = _usage(usage)
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning")
            if not (isinstance(reasoning, str) and reasoning):
                reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                assembly.emit("reasoning", reasoning)
            for detail in delta.get("reasoning_details") or ():
                _merge_reasoning_detail(assembly.reasoning_details, detail)
            content = delta.get("content")
            if isinstance(content, str) and content:
                assembly.emit("content", content)
            for call in delta.get("tool_calls") or ():
                _merge_tool_call(assembly.calls, call)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                if finish == "error":
                    raise LLMError(
                        f"{_capitalized(provider)} stopped the reply with an error",
                        retryable=True,
                    )
                assembly.finish_reason = finish

    def _whole(self, raw: bytes, assembly: _Assembly) -> None:
        """A complete (non-streamed) chat.completion body, fed through the same path."""
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise LLMError(
                f"{_capitalized(self.settings.provider)} answered with invalid JSON",
                retryable=True,
            ) from exc
        if isinstance(body, dict):
            for choice in body.get("choices") or ():
                if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                    message = dict(choice["message"])
                    calls = message.get("tool_calls") or []
                    message["tool_calls"] = [
                        {**call, "index": i}
                        for i, call in enumerate(calls)
                        if isinstance(call, dict)
                    ]
                    choice["delta"] = message
        self._event(json.dumps(body), assembly)
        assembly.done = True

    def _stream_error(self, chunk: Mapping[str, Any], error: Any) -> LLMError:
        code: Any = None
        if isinstance(error, Mapping):
            code = error.get("code")
        elif chunk.get("object") == "error":
            code = chunk.get("code")
        status = code if isinstance(code, int) else None
        if isinstance(code, str) and code.isdigit():
            status = int(code)
        detail = (
            _clip(_error_text(chunk)) if error is None else _clip(_error_text({"error": error}))
        )
        label = f" ({code})" if code not in (None, "") else ""
        return LLMError(
            f"{_capitalized(self.settings.provider)} reported an error mid-stream{label}: {detail}",
            status=status,
            retryable=status in RETRYABLE_STATUSES,
        )


_decode = msgspec.json.Decoder().decode
"""JSON text to plain Python values (about three times as fast as ``json.loads``)."""


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (None: go direct)."""
    parts = urlsplit(url)
    if proxy_bypass(parts.hostname or ""):
        return None
    return getproxies().get(parts.scheme)


_DETAIL_TEXTS = ("text", "summary", "data")
"""The fields of a reasoning detail that stream in pieces; the others come whole."""


def _merge_reasoning_detail(details: dict[int, dict[str, Any]], delta: Any) -> None:
    """Merge one ``reasoning_details`` delta into the detail of its ``index``."""
    if not isinstance(delta, dict):
        return
    index = delta.get("index")
    if not isinstance(index, int):
        index = max(details, default=0)
    detail = details.setdefault(index, {})
    for key, value in delta.items():
        if key in _DETAIL_TEXTS and isinstance(value, str):
            detail[key] = detail.get(key, "") + value
        elif value is not None:
            detail[key] = value


def _merge_tool_call(calls: dict[int, dict[str, Any]], delta: Any) -> None:
    """Merge one tool-call delta: ``id``/``name`` come once, ``arguments`` in pieces."""
    if not isinstance(delta, dict):
        return
    index = delta.get("index")
    if not isinstance(index, int):
        # Some servers omit the index: a new id starts a new call, else continue the last.
        last = max(calls, default=None)
        new_id = delta.get("id")
        if last is None or (new_id and new_id != calls[last]["id"]):
            index = 0 if last is None else last + 1
        else:
            index = last
    call = calls.setdefault(index, {"id": "", "name": "", "arguments": []})
    if delta.get("id") and not call["id"]:
        call["id"] = delta["id"]
    function = delta.get("function") or {}
    if function.get("name") and not call["name"]:
        call["name"] = function["name"]
    arguments = function.get("arguments")
    if isinstance(arguments, str) and arguments:
        call["arguments"].append(arguments)
    elif isinstance(arguments, dict):  # a few servers send the arguments as an object
        call["arguments"].append(json.dumps(arguments))


def _usage(raw: Mapping[str, Any]) -> Usage:
    def number(key: str) -> int:
        value = raw.get(key)
        return int(value) if isinstance(value, int | float) else 0

    prompt, completion = number("prompt_tokens"), number("completion_tokens")
    total = number("total_tokens") or prompt + completion
    cost = raw.get("cost")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cost=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
    )
