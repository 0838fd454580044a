"""Every AgentOS hook, in one module: each docstring is that hook's contract.

Public names are dotted (``tool.before``); Python names use underscores
(``tool_before``). A hook has one of four kinds:

gate
    Implementations run one after another in pluggy's call order
    (``tryfirst``/``trylast``, then last registered first). Each gets
    ``(input, output)``: ``input`` is read-only, ``output`` is the value being
    built. It returns the new output (the same object, changed or not, or a new
    one; ``None`` means unchanged) or a verdict ``{"verdict": "reject",
    "reason": "..."}`` that stops the chain and the operation. ``input`` and
    notify ``event`` values are read-only mappings. A return value that is not a valid output is an
    error of that implementation. Default failure policy: fail closed (an error
    or timeout rejects the operation with the error as its reason).
notify
    Implementations run concurrently, fire-and-forget: the kernel does not wait
    for them, and an exception or timeout is logged, never raised. Default
    failure policy: fail open.
provide
    The first implementation returning something other than ``None`` wins. A
    *required* provide hook without any provider is an error naming the hook.
register
    A plain pluggy call at start-up, for in-process plugins only.

An implementation owned by a skill fires only for sessions of agents for which
that skill is active; hooks without a session (``daemon.*``, ``cli.register``)
reach every registered implementation. Every implementation may be a plain
function or a coroutine function. Timeouts and failure policies are per
implementation (see docs/specs/aos-hooks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Required, TypedDict

import click
import pluggy
from aos_sdk.protocol import HookKind

PROJECT = "aos"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Decorator for implementations: ``@hookimpl`` (optionally ``tryfirst=True``...)."""


@dataclass(frozen=True)
class HookSpec:
    """What the kernel knows of a hook besides pluggy's spec."""

    name: str
    """Public dotted name, e.g. ``tool.before``."""
    python_name: str
    kind: HookKind
    required: bool = False
    """For provide hooks: a missing provider is an error."""
    output_keys: frozenset[str] = frozenset()
    """For gate hooks: keys a valid output dict must have."""
    schema: Mapping[str, Any] = field(default_factory=dict)
    """The shape of each argument and of a provider's answer: ``input``,
    ``output`` (gate), ``event`` (notify), ``returns`` (provide) -> a TypedDict
    or type. The TypeScript SDK's hook types are generated from it, and the
    tests check that every call the kernel makes matches it."""


HOOKS: dict[str, HookSpec] = {}
"""Public name -> HookSpec, in declaration order."""


def _declare(
    kind: HookKind,
    *,
    required: bool = False,
    output_keys: tuple[str, ...] = (),
    **schema: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__.replace("_", ".", 1)
        HOOKS[name] = HookSpec(name, fn.__name__, kind, required, frozenset(output_keys), schema)
        return hookspec(firstresult=kind == "provide")(fn)

    return mark


# -- the shapes of hook arguments (HookSpec.schema) -------------------------------------
Record = dict[str, Any]


class DaemonStartEvent(TypedDict):
    node: str
    pid: int
    db: str


class DaemonStopEvent(TypedDict):
    node: str
    reason: str


class AgentCreateInput(TypedDict):
    principal: str
    parent: str | None
    parent_effective: Record | None


class AgentCreateOutput(TypedDict):
    name: str
    parent: str | None
    config: Record
    scopes: list[str] | None


class SessionCreateEvent(TypedDict):
    session: Record
    agent: Record


class SessionAssembleInput(TypedDict):
    session_id: str
    agent_id: str
    history: list[Record]
    skills: list[Record]
    skills_prompt: str
    budget: int
    prompt: str
    model: str | None
    rebuild: bool


class Compaction(TypedDict):
    through_seq: int
    fallback: str
    summarize: list[Record]


class SessionAssembleAnswer(TypedDict):
    messages: list[Record]
    compaction: NotRequired[Compaction]


class SessionStep(TypedDict):
    session_id: str
    agent_id: str
    step: int


class DispatchBeforeInput(TypedDict):
    session_id: str
    agent_id: str
    principal: str


class DispatchBeforeOutput(TypedDict):
    message: str


class ComputeBeforeOutput(TypedDict, total=False):
    messages: Required[list[Record]]
    model: Required[str]
    params: Record
    tools: list[Record]


class ComputeAfterInput(SessionStep):
    usage: Record | None


class ComputeAfterOutput(TypedDict, total=False):
    content: Required[str]
    reasoning: str
    tool_calls: Required[list[Record]]
    finish_reason: str | None


class ToolInput(TypedDict):
    session_id: str
    agent_id: str
    call_id: str


class BashArgs(TypedDict, total=False):
    command: Required[str]
    timeout: float


class ToolBeforeOutput(TypedDict, total=False):
    tool: Required[Literal["bash"]]
    args: Required[BashArgs]
    cwd: str
    env: dict[str, str]


class ToolAfterInput(ToolInput):
    command: str
    raw_bytes: int


class ToolAfterOutput(TypedDict, total=False):
    output: Required[str]
    exit_code: Required[int | None]
    status: str


class DispatchAfterEvent(TypedDict):
    session_id: str
    agent_id: str
    dispatch_id: str
    status: str
    answer: str | None
    error: str | None
    steps: int
    usage: Record | None


class HistoryAppendEvent(TypedDict):
    session_id: str
    agent_id: str
    seq: int
    ts: float
    fact: Record


class SkillEventArgs(TypedDict):
    skill: str
    agent_id: str | None
    session_id: str | None


class SyscallBeforeInput(TypedDict):
    syscall: str
    principal: str
    scope: str
    agent_id: str | None
    session_id: str | None


class SyscallBeforeOutput(TypedDict):
    params: Record


# -- node lifecycle ------------------------------------------------------------


@_declare("notify", event=DaemonStartEvent)
def daemon_start(event: Mapping[str, Any]) -> None:
    """**notify** — the node finished starting and serves requests.

    ``event``: ``{"node": str, "pid": int, "db": str}`` (URL, password masked).
    Nothing may be changed.
    """


@_declare("notify", event=DaemonStopEvent)
def daemon_stop(event: Mapping[str, Any]) -> None:
    """**notify** — the node is shutting down (fired before services stop).

    ``event``: ``{"node": str, "reason": str}``. Nothing may be changed.
    """


# -- agents and sessions ---------------------------------------------------------


@_declare(
    "gate",
    output_keys=("name", "config", "scopes"),
    input=AgentCreateInput,
    output=AgentCreateOutput,
)
def agent_create(input: Mapping[str, Any], output: dict[str, Any]) -> dict[str, Any] | None:
    """**gate** — validate, adjust or reject a new agent before it is stored.

    ``input``: ``{"principal": str, "parent": str | None, "parent_effective":
    {"model", "skills", "scopes", ...} | None}``.
    ``output``: ``{"name": str, "parent": str | None, "config": {"model",
    "skills", "workspace", "max_steps"}, "scopes": [str] | None}`` (None: the
    parent's, or the defaults for a root agent).
    Implementations may change ``name``, ``config`` and ``scopes``; the kernel
    checks the result again (a child never gets a scope its parent lacks).
    """


@_declare("notify", event=SessionCreateEvent)
def session_create(event: Mapping[str, Any]) -> None:
    """**notify** — a session was opened.

    ``event``: ``{"session": SCB as dict, "agent": ACB as dict}``.
    """


@_declare(
    "provide",
    required=True,
    input=SessionAssembleInput,
    returns=list[Record] | SessionAssembleAnswer,
)
def session_assemble(input: Mapping[str, Any]) -> list[dict[str, Any]] | dict[str, Any] | None:
    """**provide, required** — build the SessionContext from SessionHistory.

    ``input``: ``{"session_id", "agent_id", "history": [{"seq", "ts", "fact":
    {"kind", ...}}] (the whole history, oldest first; the same list grows between
    calls, so providers can work incrementally), "skills": [{"name",
    "description"}], "skills_prompt": str (the <available_skills> block),
    "budget": int (tokens), "prompt": str (text for the system prompt after the
    provider's own: the node's ``prompt`` setting, then the agent's effective
    ``prompt``, its ancestors' additions root first and its own last, a blank line
    between; empty when none is set), "model": str | None, "rebuild": bool}``.
    Returns the OpenAI chat messages (``[{"role", "content", ...}]``), or
    ``{"messages": [...], "compaction": {"through_seq", "fallback", "summarize"}}``
    to have the kernel record a ``context.compacted`` fact (the model summarizes
    ``summarize``; ``fallback`` is used when it cannot) and ask again, or ``None``
    to let the next provider answer. aos-context provides it.
    """


# -- the ReAct loop ------------------------------------------------------------------


@_declare("gate", output_keys=("message",), input=DispatchBeforeInput, output=DispatchBeforeOutput)
def dispatch_before(input: Mapping[str, Any], output: dict[str, Any]) -> dict[str, Any] | None:
    """**gate** — reject a dispatch or rewrite its input message.

    ``input``: ``{"session_id", "agent_id", "principal"}``.
    ``output``: ``{"message": str}`` — the user message about to be appended.
    """


@_declare("gate", output_keys=("messages", "model"), input=SessionStep, output=ComputeBeforeOutput)
def compute_before(input: Mapping[str, Any], output: dict[str, Any]) -> dict[str, Any] | None:
    """**gate** — rewrite the LLM request before it is sent.

    ``input``: ``{"session_id", "agent_id", "step": int}``.
    ``output``: ``{"messages": [...], "model": str, "params": {...}, "tools": [...]}``.
    """


@_declare(
    "gate",
    output_keys=("content", "tool_calls"),
    input=ComputeAfterInput,
    output=ComputeAfterOutput,
)
def compute_after(input: Mapping[str, Any], output: dict[str, Any]) -> dict[str, Any] | None:
    """**gate** — validate or rewrite the assistant's response.

    ``input``: ``{"session_id", "agent_id", "step": int, "usage": {...} | None}``
    (None when the model server reported none).
    ``output``: ``{"content": str, "reasoning": str, "tool_calls": [{"id",
    "command", "timeout", "error"}], "finish_reason": str | None}`` (a call's
    ``error`` says why it cannot run; the model is told).
    """


@_declare("gate", output_keys=("tool", "args"), input=ToolInput, output=ToolBeforeOutput)
def tool_before(input: Mapping[str, Any], output: dict[str, Any]) -> dict[str, Any] | None:
    """**gate** — reject or rewrite a bash call before it runs.

    ``input``: ``{"session_id", "agent_id", "call_id"}``.
    ``output``: ``{"tool": "bash", "args": {"command": str, "timeout": float},
    "cwd": str, "env": {str: str}}``. A reject becomes the tool's visible result
    ("rejected by <skill>: <reason>") and the command never runs.
    """


@_declare("gate", output_keys=("output", "exit_code"), input=ToolAfterInput, output=ToolAfterOutput)
def tool_after(input: Mapping[str, Any], output: dict[str, Any]) -> dict[str, Any] | None:
    """**gate** — validate or rewrite the visible result of a bash call.

    ``input``: ``{"session_id", "agent_id", "call_id", "command", "raw_bytes": int}``.
    ``output``: ``{"output": str, "exit_code": int | None, "status": str}``.
    The raw output has already gone to RuntimeLog.
    """


@_declare("notify", event=DispatchAfterEvent)
def dispatch_after(event: Mapping[str, Any]) -> None:
    """**notify** — a dispatch finished.

    ``event``: ``{"session_id", "agent_id", "dispatch_id", "status", "answer",
    "error", "steps", "usage"}`` (DispatchOutcome; ``usage`` None when no model
    call was made).
    """


@_declare("notify", event=HistoryAppendEvent)
def history_append(event: Mapping[str, Any]) -> None:
    """**notify** — a fact was appended to a session's history.

    ``event``: ``{"session_id", "agent_id", "seq", "ts", "fact": {"kind", ...}}``.
    UIs and services stream from this.
    """


# -- skills ------------------------------------------------------------------------------


@_declare("notify", event=SkillEventArgs)
def skill_load(event: Mapping[str, Any]) -> None:
    """**notify** — a skill became active for an agent or a session.

    ``event``: ``{"skill", "agent_id" | None, "session_id" | None}``.
    """


@_declare("notify", event=SkillEventArgs)
def skill_unload(event: Mapping[str, Any]) -> None:
    """**notify** — a skill stopped being active for an agent or a session.

    ``event``: ``{"skill", "agent_id" | None, "session_id" | None}``.
    """


# -- the kernel boundary -------------------------------------------------------------------


@_declare("gate", output_keys=("params",), input=SyscallBeforeInput, output=SyscallBeforeOutput)
def syscall_before(input: Mapping[str, Any], output: dict[str, Any]) -> dict[str, Any] | None:
    """**gate** — deny a syscall that the kernel's scopes allowed.

    ``input``: ``{"syscall": str, "principal": str, "scope": str, "agent_id",
    "session_id"}``. ``output``: ``{"params": {...}}``. Policy skills reject;
    they may also narrow the params (the kernel validates them again).
    """


@_declare("register")
def cli_register(cli: click.Group) -> None:
    """**register** — add ``aos`` subcommands (in-process plugins only).

    ``cli``: the root click group; call ``cli.command()`` or ``cli.add_command``.
    """
