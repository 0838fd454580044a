"""The facts of SessionHistory: each kind, its JSON text, and what a run of facts says.

Every fact is a msgspec struct tagged by ``kind``. Facts are appended through
the store, which assigns each a per-session ``seq`` (1, 2, 3, ... without
gaps); nothing is ever updated or deleted. SessionHistory itself (the
kernel's view of a session, write-ahead and announcement) is aos/history.py.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from aos import jsontext


class _Fact(msgspec.Struct, tag_field="kind", kw_only=True, omit_defaults=True):
    """Base of every fact kind."""


class Usage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Tokens (and cost, when the provider reports it) of one LLM call or dispatch."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None


class ToolCallRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A tool call as the model asked for it."""

    id: str
    command: str
    timeout: float | None = None
    error: str | None = None
    """Why the call cannot run (bad arguments, unknown tool); the model is told."""


class UserMessage(_Fact, tag="message.user"):
    text: str
    sender: str = "user"
    """Who typed it: ``user``, or the principal that dispatched the session."""


class AssistantMessage(_Fact, tag="message.assistant"):
    text: str = ""
    reasoning: str = ""
    reasoning_details: list[dict[str, Any]] = []
    """The provider's structured reasoning (OpenRouter ``reasoning_details``), kept
    as received: the next request sends it back with this message."""
    tool_calls: list[ToolCallRequest] = []
    incomplete: bool = False
    """The text of a reply whose stream failed (kept, shown, not sent to the model
    again); a retried step follows it with the whole reply."""
    finish_reason: str | None = None
    model: str | None = None
    usage: Usage | None = None


class ToolCall(_Fact, tag="tool.call"):
    """A bash call about to run, after tool.before (the command that really runs)."""

    call_id: str
    """The provider's id, kept to echo back; providers reuse ids, so it names nothing."""
    command: str
    cwd: str
    timeout: float
    index: int | None = None
    """Which call of its message: the latest ``message.assistant`` with tool calls
    before this fact, ``tool_calls[index]``. (None in facts recorded before indexes were:
    matched by ``call_id`` within that message.)"""
    pgid: int | None = None
    """Process group of the running command, so a crashed run can be terminated."""


ToolStatus = Literal["ok", "error", "timeout", "rejected", "interrupted", "lost"]


class ToolResult(_Fact, tag="tool.result"):
    """The visible result of a tool call (the raw output goes to RuntimeLog)."""

    call_id: str
    output: str
    index: int | None = None
    """As :attr:`ToolCall.index`: the call this result answers."""
    status: ToolStatus = "ok"
    exit_code: int | None = None
    truncated_bytes: int = 0
    rejected_by: str | None = None


class SkillLoaded(_Fact, tag="skill.loaded"):
    skill: str
    body: str = ""
    """The SKILL.md body as loaded: the context is rebuilt from history, not from disk."""


class SkillUnloaded(_Fact, tag="skill.unloaded"):
    skill: str


A2AMode = Literal["silent", "notify", "wake"]


class A2AMessage(_Fact, tag="a2a.message"):
    message_id: str
    from_agent: str
    to_agent: str
    mode: A2AMode
    text: str
    from_session: str | None = None
    reply_to: str | None = None
    hops: int = 0


MCPCallStatus = Literal["ok", "error", "timeout", "failed"]


class MCPCall(_Fact, tag="mcp.call"):
    """A call of an MCP server's tool (aos-mcp): a record, not a message (the
    agent's ``mcp call`` command already has the result as its output)."""

    server: str
    tool: str
    status: MCPCallStatus
    arguments_bytes: int = 0
    duration_ms: float = 0.0


class ContextCompacted(_Fact, tag="context.compacted"):
    summary: str
    through_seq: int
    """Facts up to and including this seq are represented by the summary."""


class DispatchStarted(_Fact, tag="dispatch.started"):
    dispatch_id: str
    node: str = ""


DispatchStatus = Literal["completed", "failed", "interrupted", "max_steps", "rejected", "lost"]


class DispatchFinished(_Fact, tag="dispatch.finished"):
    dispatch_id: str
    status: DispatchStatus
    answer: str | None = None
    error: str | None = None
    usage: Usage | None = None


Fact = (
    UserMessage
    | AssistantMessage
    | ToolCall
    | ToolResult
    | SkillLoaded
    | SkillUnloaded
    | A2AMessage
    | MCPCall
    | ContextCompacted
    | DispatchStarted
    | DispatchFinished
)
FACT_KINDS: tuple[str, ...] = tuple(
    cls.__struct_config__.tag  # type: ignore[misc]
    for cls in (
        UserMessage,
        AssistantMessage,
        ToolCall,
        ToolResult,
        SkillLoaded,
        SkillUnloaded,
        A2AMessage,
        MCPCall,
        ContextCompacted,
        DispatchStarted,
        DispatchFinished,
    )
)


APPENDABLE: dict[str, frozenset[str]] = {
    "agent": frozenset({"message.user"}),
    "service": frozenset({"message.user", "a2a.message", "mcp.call"}),
}
"""The fact kinds agent and service principals may append with ``session.append``
(the admin may append any). Their ``message.user`` facts carry their own name as
``sender``; every other kind is written by the kernel, or by aos-a2a's and aos-mcp's
services."""
_DISPATCH_WRITES = "written by the dispatch that runs the model and the command"
APPENDED_BY: dict[str, str] = {
    "message.assistant": _DISPATCH_WRITES,
    "tool.call": _DISPATCH_WRITES,
    "tool.result": _DISPATCH_WRITES,
    "skill.loaded": "the skill.load syscall records it (`skill load NAME`)",
    "skill.unloaded": "the skill.unload syscall records it (`skill unload NAME`)",
    "a2a.message": "messages between agents go through aos-a2a (`a2a send`)",
    "mcp.call": "aos-mcp's service records the MCP calls it makes (`mcp call`)",
    "context.compacted": "the kernel records compaction",
    "dispatch.started": "dispatch markers are the kernel's",
    "dispatch.finished": "dispatch markers are the kernel's",
}
"""Who writes each kind, for the refusal of an append that is not meant for the caller."""


@dataclass(frozen=True)
class OpenCall:
    """A tool call that has no result (yet)."""

    index: int
    request: ToolCallRequest
    started: ToolCall | None
    """Its ``tool.call`` fact if the command started (with the process group)."""


def open_calls(facts: Iterable[Fact]) -> list[OpenCall]:
    """The calls of the latest ``message.assistant`` with tool calls among ``facts``
    that no ``tool.result`` after it answers. A call is its message and its index
    there, never the provider's id: providers reuse ids across steps (``call_0``)
    and even within one reply. A dispatch moves to its next step only once every
    call of the last one is answered, so only the latest message can have any."""
    calls: list[ToolCallRequest] = []
    started: dict[int, ToolCall] = {}
    answered: set[int] = set()
    for fact in facts:
        if isinstance(fact, AssistantMessage) and fact.tool_calls:
            calls, started, answered = fact.tool_calls, {}, set()
        elif isinstance(fact, ToolCall):
            index = _index_of(fact, calls, started.keys())
            if index is not None:
                started[index] = fact
        elif isinstance(fact, ToolResult):
            index = _index_of(fact, calls, answered)
            if index is not None:
                answered.add(index)
    return [
        OpenCall(index, call, started.get(index))
        for index, call in enumerate(calls)
        if index not in answered
    ]


def _index_of(
    fact: ToolCall | ToolResult, calls: Sequence[ToolCallRequest], taken: Collection[int]
) -> int | None:
    if fact.index is not None:
        return fact.index if 0 <= fact.index < len(calls) else None
    return next(
        (i for i, call in enumerate(calls) if call.id == fact.call_id and i not in taken), None
    )


class HistoryEntry(msgspec.Struct, kw_only=True):
    """A fact as stored: where it sits in its session and when it was appended."""

    session_id: str
    seq: int
    ts: float
    fact: Fact


_decoder = msgspec.json.Decoder(Fact)


def fact_kind(fact: Fact) -> str:
    return fact.__struct_config__.tag  # type: ignore[return-value]


def encode_fact(fact: Fact) -> str:
    """JSON text of a fact, ``kind`` included (the store's column format; any
    string survives it: :mod:`aos.jsontext`)."""
    return jsontext.encode(fact)


def decode_fact(data: str | bytes) -> Fact:
    return jsontext.decode(data, _decoder)


def fact_to_builtins(fact: Fact) -> dict[str, Any]:
    return msgspec.to_builtins(fact)
