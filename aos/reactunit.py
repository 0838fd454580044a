"""ReActUnit: one LLM + bash loop, created per ``session.dispatch``.

dispatch.before -> the user fact -> up to max steps: session.assemble ->
compute.before -> the LLM (streamed) -> compute.after -> the assistant fact ->
for each tool call: tool.before -> bash -> RuntimeLog (raw) -> tool.after ->
the tool.result fact -> until a final answer -> dispatch.after.

One dispatch per session at a time: the session's lease, renewed while the
dispatch runs. ``session.interrupt`` cancels the unit: a running command's
process group is killed, the interruption is recorded, the lease released.
Every fact goes through SessionHistory (aos/history.py): appended, written
ahead, announced on history.append.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec

from aos.bash import BASH_TOOL, BashResult, request_of, run_bash
from aos.facts import (
    AssistantMessage,
    DispatchFinished,
    DispatchStarted,
    DispatchStatus,
    Fact,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    Usage,
    UserMessage,
    fact_kind,
)
from aos.hooks import HookError, HookRejected
from aos.ids import new_id
from aos.llm import LLMError, missing_configuration
from aos.principals import Principal, agent_principal
from aos.runtimelog import LogEntry
from aos.sandbox import SandboxUnavailable
from aos.session import SCB, outcome_of, title_of
from aos.spawner import SpawnerError
from aos.store import StoreError, StoreUnavailable
from aos.telemetry import provider_name

if TYPE_CHECKING:
    from aos.history import HistoryWriter
    from aos.kernel import Kernel

logger = logging.getLogger("aos")
LEASE_TTL = 30.0
OUTAGE_RETRY_MAX = 5.0
"""Longest wait, in seconds, between attempts to record a dispatch's end while the
database is unreachable."""
_T = TypeVar("_T")
RAW_LOG_CAP = 256 * 1024
"""Bytes of raw tool output stored per RuntimeLog record."""
TOKEN_REISSUE = 3600.0
"""Seconds a dispatch reuses the agent token it issued for bash (tokens last a day,
and are refused as soon as the dispatch that issued them ends)."""
SECRET_VARIABLES = ("OPENROUTER_API_KEY",)
AGENT_VARIABLES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ", "COLORTERM"}
)
"""Variables of the daemon's environment an agent's command gets (and ``LC_*``)."""


def agent_environment(environ: Mapping[str, str], extra: Iterable[str]) -> dict[str, str]:
    """The daemon's variables an agent may see: the allowlist, ``LC_*`` and the
    names the AOSCB's ``agent_env`` adds (never a model key or ``AOS_*``)."""
    allowed = AGENT_VARIABLES | frozenset(extra)
    return {
        k: v
        for k, v in environ.items()
        if (k in allowed or k.startswith("LC_"))
        and not k.startswith("AOS_")
        and k not in SECRET_VARIABLES
    }


"""Never handed to the agent's bash."""


class DispatchRefused(Exception):
    """The dispatch did not start (conflict, rejected, not configured)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DispatchOutcome(msgspec.Struct, kw_only=True):
    """How a dispatch ended (``session.dispatch``, ``session.interrupt``,
    ``dispatch.after``); ``running`` when ``session.dispatch`` did not wait."""

    session_id: str
    agent_id: str
    dispatch_id: str
    status: DispatchStatus | Literal["running"]
    answer: str | None = None
    error: str | None = None
    steps: int = 0
    usage: Usage | None = None


@dataclass
class _Totals:
    prompt: int = 0
    completion: int = 0
    cost: float | None = None

    def add(self, usage: Usage | None) -> None:
        if usage is None:
            return
        self.prompt += usage.prompt_tokens
        self.completion += usage.completion_tokens
        if usage.cost is not None:
            self.cost = (self.cost or 0.0) + usage.cost

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt,
            completion_tokens=self.completion,
            total_tokens=self.prompt + self.completion,
            cost=self.cost,
        )


@dataclass
class ReActUnit:
    kernel: Kernel
    scb: SCB
    principal: Principal
    message: str
    cwd: str | None = None
    """Where bash runs, instead of the agent's workspace (set by admin callers)."""
    model: str | None = None
    """The model for this dispatch, instead of the agent's (``aos run --model``)."""
    dispatch_id: str = field(default_factory=lambda: new_id("dsp"))
    active: frozenset[str] = frozenset()
    """Skills active for this dispatch (hooks are scoped to them); set by prepare()."""
    steps: int = 0
    task: asyncio.Task[DispatchOutcome] = field(init=False)
    cancel_reason: str = "interrupted by session.interrupt"
    phase: str = "starting"
    _unresolved: dict[int, ToolCallRequest] = field(default_factory=dict)
    """Tool calls of the last assistant message still without a result, by index."""
    _totals: _Totals = field(default_factory=_Totals)
    _running_call: int | None = None
    """The index of the call whose command is running."""
    _held_stream: list[dict[str, Any]] = field(default_factory=list)
    """Stream events waiting for the announcement of facts committed ahead."""
    _workspace_path: Path | None = None
    _base_env: dict[str, str] | None = None
    sandboxed: bool = False
    """Whether this dispatch's commands run in a sandbox (decided in prepare)."""
    _token: tuple[str | None, float] = (None, 0.0)
    """The agent's token for bash and when it was issued."""
    _outage: tuple[float, str] | None = None
    """When the database became unreachable during this dispatch, and why."""
    _writer: HistoryWriter = field(init=False)
    """This dispatch's appends (deferred facts, write-ahead, uncertain commits)."""

    def __post_init__(self) -> None:
        self._writer = self.kernel.history.writer(self.scb)

    # -- setup --------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Everything that can refuse the dispatch before anything is recorded."""
        kernel = self.kernel
        self.chain = await kernel.agents.lineage(self.scb.agent_id)
        if self.chain[-1].status != "active":  # its tokens die with its last dispatch
            raise DispatchRefused(
                "conflict", f"agent {self.scb.agent_id} is archived: its sessions cannot run"
            )
        self.effective = kernel.agents.effective_of(self.chain)
        if self.model is not None:
            self.effective = msgspec.structs.replace(self.effective, model=self.model)
        problem = missing_configuration(self.effective.model, kernel.llm_settings)
        if problem is not None:
            raise DispatchRefused("unavailable", problem.message)
        placement = self.effective.placement
        if placement not in kernel.cluster.placements:
            raise DispatchRefused(
                "unavailable",
                f"agent {self.scb.agent_id} is placed on {placement}, which this node "
                f"({kernel.node_id}) is not: run it on a node there (on PostgreSQL, any node "
                "queues it for one), or change the agent's placement",
            )
        try:
            self.sandboxed = kernel.sandboxes.wanted(self.effective.sandbox)
        except SandboxUnavailable as exc:
            raise DispatchRefused("unavailable", str(exc)) from None
        if not await kernel.store.acquire_lease(self.scb.id, kernel.node_id, LEASE_TTL):
            owner = (await kernel.store.get_session(self.scb.id)).lease_owner
            raise DispatchRefused(
                "conflict",
                f"session {self.scb.id} is running a dispatch (on {owner}): wait for it, "
                f"or stop it with `aos session interrupt {self.scb.id}`",
            )
        try:
            self.active = await kernel.agents.active_skills(
                self.scb.agent_id, self.scb.id, effective=self.effective
            )
            if kernel.services is not None:  # their hooks are in place before anything runs
                await kernel.services.settle(self.active | kernel.system_skills)
            decided = await kernel.hooks.gate(
                "dispatch.before",
                {
                    "session_id": self.scb.id,
                    "agent_id": self.scb.agent_id,
                    "principal": self.principal.name,
                },
                {"message": self.message},
                active=self.active,
            )
        except HookRejected as exc:
            await kernel.store.release_lease(self.scb.id, kernel.node_id)
            raise DispatchRefused("denied", f"dispatch {exc}") from None
        except BaseException:
            await kernel.store.release_lease(self.scb.id, kernel.node_id)
            raise
        self.message = str(decided["message"])

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> DispatchOutcome:
        """Run to completion (or interruption); always records how it ended. Traced
        as ``invoke_agent <agent name>`` (aos/telemetry.py)."""
        agent = self.chain[-1]
        with self.kernel.telemetry.span(
            f"invoke_agent {agent.name}",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.provider.name": provider_name(self.kernel.llm_settings.base_url),
                "gen_ai.agent.id": agent.id,
                "gen_ai.agent.name": agent.name,
                "gen_ai.conversation.id": self.scb.id,
                "gen_ai.request.model": self.effective.model or "",
                "aos.dispatch.id": self.dispatch_id,
                "aos.node.id": self.kernel.node_id,
            },
        ) as span:
            outcome = await self._run()
            usage = outcome.usage
            span.set(
                {
                    "aos.dispatch.status": outcome.status,
                    "aos.dispatch.steps": outcome.steps,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens if usage else 0,
                    "gen_ai.usage.output_tokens": usage.completion_tokens if usage else 0,
                }
            )
            if outcome.status not in ("completed", "max_steps"):
                span.fail(outcome.status, outcome.error)
            if (metrics := self.kernel.telemetry.metrics) is not None:
                metrics.dispatches.add(1, {"aos.dispatch.status": outcome.status})
            return outcome

    async def _run(self) -> DispatchOutcome:
        kernel = self.kernel
        renew = asyncio.get_running_loop().create_task(self._renew_lease())
        status: DispatchStatus = "failed"
        answer: str | None = None
        error: str | None = None
        try:
            self.scb = await kernel.store.update_session(
                msgspec.structs.replace(
                    self.scb,
                    status="running",
                    phase="dispatch",
                    title=self.scb.title or title_of(self.message),
                )
            )
            self._writer.defer(DispatchStarted(dispatch_id=self.dispatch_id, node=kernel.node_id))
            await self._append(UserMessage(text=self.message, sender=self.principal.name))
            status, answer = await self._loop()
        except asyncio.CancelledError:
            status, error = "interrupted", self.cancel_reason
        except HookRejected as exc:  # compute.before / compute.after said no
            status, error = "rejected", f"{exc.hook} {exc}"
        except LLMError as exc:
            status, error = "failed", exc.message
            await self._keep_partial(exc)
        except HookError as exc:
            status, error = "failed", str(exc)
        except SpawnerError as exc:
            logger.error("dispatch %s: %s", self.dispatch_id, exc)
            status, error = "failed", str(exc)
        except StoreError as exc:
            status, error = "failed", self._store_failed(exc)
        except Exception as exc:
            logger.exception("dispatch %s failed", self.dispatch_id)
            status, error = "failed", f"internal error: {type(exc).__name__}: {exc}"
        finally:
            renew.cancel()
            outcome = await asyncio.shield(self._finish(status, answer, error))
        return outcome

    async def _loop(self) -> tuple[DispatchStatus, str | None]:
        max_steps = self.effective.max_steps
        for step in range(1, max_steps + 1):
            self.steps = step
            content, tool_calls = await self._compute(step)
            if not tool_calls:
                return "completed", content
            self._unresolved = dict(enumerate(tool_calls))
            for index, request in enumerate(tool_calls):
                await self._tool(index, request)
                del self._unresolved[index]
        return "max_steps", None

    async def _compute(self, step: int) -> tuple[str, list[ToolCallRequest]]:
        """One model turn: the assistant fact recorded; its text and tool calls."""
        kernel = self.kernel
        if step > 1:  # a skill loaded during the last step applies from this one
            self.active = await kernel.agents.active_skills(
                self.scb.agent_id, self.scb.id, effective=self.effective
            )
        await self._phase("assemble")
        messages = await kernel.context.assemble(
            self.scb, active=self.active, effective=self.effective
        )
        request = await kernel.hooks.gate(
            "compute.before",
            {"session_id": self.scb.id, "agent_id": self.scb.agent_id, "step": step},
            {
                "messages": messages,
                "model": self.effective.model,
                "params": {},
                "tools": [BASH_TOOL],
            },
            active=self.active,
        )
        await self._phase("compute")

        def on_delta(kind: str, text: str) -> None:
            if kernel.events.has_subscribers():
                self._publish_stream(
                    {
                        "session_id": self.scb.id,
                        "agent_id": self.scb.agent_id,
                        "dispatch_id": self.dispatch_id,
                        "kind": kind,
                        "text": text,
                    }
                )

        async def on_retry(error: LLMError, delay: float) -> None:
            chat.event(
                "aos.llm.retry",
                {"http.response.status_code": error.status or 0, "aos.delay_s": delay},
            )
            await self._keep_partial(error)
            why = (
                "rate limited by the model server"
                if error.status == 429
                else f"the model server failed ({error.message})"
            )
            notice = f"{why}: retrying in {delay:.0f} s" if delay >= 1 else f"{why}: retrying"
            self._log("llm.retry", notice, {"dispatch_id": self.dispatch_id, "step": step})
            on_delta("notice", notice)

        model = str(request["model"])
        telemetry = kernel.telemetry
        with telemetry.span(
            f"chat {model}",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider_name(kernel.llm_settings.base_url),
                "gen_ai.request.model": model,
                "gen_ai.conversation.id": self.scb.id,
                "gen_ai.input.messages": telemetry.content(request["messages"]),
            },
        ) as chat:
            started = time.perf_counter()
            try:
                completion = await kernel.llm.complete(
                    model=model,
                    messages=request["messages"],
                    tools=request.get("tools"),
                    params=request.get("params") or {},
                    on_delta=on_delta,
                    on_retry=on_retry,
                )
            except LLMError as exc:
                chat.fail("llm_error", exc.message)
                self._measure_model_call(model, started, None, "llm_error")
                raise
            usage = completion.usage
            self._measure_model_call(model, started, usage, None)
            chat.set(
                {
                    "gen_ai.response.model": completion.model or model,
                    "gen_ai.response.finish_reasons": [completion.finish_reason or "unknown"],
                    "gen_ai.usage.input_tokens": usage.prompt_tokens if usage else None,
                    "gen_ai.usage.output_tokens": usage.completion_tokens if usage else None,
                    "aos.usage.cost": usage.cost if usage else None,
                    "gen_ai.output.messages": telemetry.content(
                        {
                            "content": completion.content,
                            "tool_calls": [msgspec.to_builtins(c) for c in completion.tool_calls],
                        }
                    ),
                }
            )
        self._totals.add(completion.usage)
        if completion.usage is not None:
            self._log(
                "llm.usage",
                f"{completion.model or request['model']}: {completion.usage.total_tokens} tokens",
                {
                    "dispatch_id": self.dispatch_id,
                    "step": step,
                    **msgspec.to_builtins(completion.usage),
                },
            )
        calls = [request_of(c.id, c.name, c.arguments) for c in completion.tool_calls]
        decided = await kernel.hooks.gate(
            "compute.after",
            {
                "session_id": self.scb.id,
                "agent_id": self.scb.agent_id,
                "step": step,
                "usage": msgspec.to_builtins(completion.usage) if completion.usage else None,
            },
            {
                "content": completion.content,
                "reasoning": completion.reasoning,
                "tool_calls": [msgspec.to_builtins(c) for c in calls],
                "finish_reason": completion.finish_reason,
            },
            active=self.active,
        )
        try:
            tool_calls = msgspec.convert(decided["tool_calls"], list[ToolCallRequest])
        except msgspec.ValidationError as exc:
            raise HookError(
                "compute.after", f"compute.after returned invalid tool_calls: {exc}"
            ) from None
        content = str(decided["content"] or "")
        reply = AssistantMessage(
            text=content,
            reasoning=str(decided.get("reasoning") or ""),
            reasoning_details=completion.reasoning_details,
            tool_calls=tool_calls,
            finish_reason=decided.get("finish_reason"),
            model=completion.model or str(request["model"]),
            usage=completion.usage,
        )
        if tool_calls:  # recorded with the first call's tool.call or tool.result: one commit
            self._writer.defer(reply)
        else:
            await self._append(reply)
        return content, tool_calls

    def _measure_model_call(
        self, model: str, started: float, usage: Usage | None, error: str | None
    ) -> None:
        """``gen_ai.client.operation.duration`` and ``token.usage`` of one model call."""
        metrics = self.kernel.telemetry.metrics
        if metrics is None:
            return
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider_name(self.kernel.llm_settings.base_url),
            "gen_ai.request.model": model,
        }
        errors = {"error.type": error} if error else {}
        metrics.operation.record(time.perf_counter() - started, {**attributes, **errors})
        if usage is not None:
            metrics.tokens.record(usage.prompt_tokens, {**attributes, "gen_ai.token.type": "input"})
            metrics.tokens.record(
                usage.completion_tokens, {**attributes, "gen_ai.token.type": "output"}
            )

    async def _keep_partial(self, error: LLMError) -> None:
        """Record what a failed stream had said, as an incomplete assistant message."""
        partial, error.partial = error.partial, None  # recorded once
        if partial is None or not (partial.content or partial.reasoning):
            return
        with contextlib.suppress(StoreError):  # the dispatch's end says what failed
            await self._append(
                AssistantMessage(
                    text=partial.content,
                    reasoning=partial.reasoning,
                    incomplete=True,
                    finish_reason="error",
                    model=partial.model or self.effective.model,
                )
            )

    async def _tool(self, index: int, request: ToolCallRequest) -> None:
        """One tool call, traced as ``execute_tool bash``."""
        telemetry = self.kernel.telemetry
        with telemetry.span(
            "execute_tool bash",
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "bash",
                "gen_ai.tool.call.id": request.id,
                "gen_ai.conversation.id": self.scb.id,
                "gen_ai.tool.call.arguments": telemetry.content(request.command or request.error),
            },
        ) as span:
            started = time.perf_counter()
            result = await self._run_tool(index, request)
            if (metrics := telemetry.metrics) is not None:
                metrics.tools.record(
                    time.perf_counter() - started, {"aos.tool.status": result.status}
                )
            span.set(
                {
                    "aos.tool.status": result.status,
                    "aos.tool.exit_code": result.exit_code,
                    "gen_ai.tool.call.result": telemetry.content(result.output),
                }
            )
            if result.status not in ("ok", "rejected"):
                span.fail(result.status)

    async def _run_tool(self, index: int, request: ToolCallRequest) -> ToolResult:
        """The call's gates, its command, its result: appended, and returned."""
        kernel = self.kernel
        if request.error:
            fact = ToolResult(call_id=request.id, index=index, output=request.error, status="error")
            await self._append_ahead(fact)
            return fact
        limits = kernel.config.aoscb.limits
        timeout = min(request.timeout or limits.tool_timeout, limits.tool_timeout)
        workspace = self._workspace()
        await self._phase("tool")
        try:
            decided = await kernel.hooks.gate(
                "tool.before",
                {"session_id": self.scb.id, "agent_id": self.scb.agent_id, "call_id": request.id},
                {
                    "tool": "bash",
                    "args": {"command": request.command, "timeout": timeout},
                    "cwd": str(workspace),
                    "env": self._bash_env(),
                },
                active=self.active,
            )
        except HookRejected as exc:
            fact = _rejected(request, index, exc)
            await self._append_ahead(fact)
            return fact
        command = str(decided["args"].get("command", ""))
        run_timeout = float(decided["args"].get("timeout") or timeout)
        env = {str(k): str(v) for k, v in dict(decided.get("env") or {}).items()}
        env.update(self._kernel_env())
        if (traceparent := kernel.telemetry.traceparent()) is not None:
            env["TRACEPARENT"] = traceparent  # the command's own spans join this trace
        cwd = str(decided.get("cwd") or workspace)

        async def started(pgid: int) -> None:
            await self._append(
                ToolCall(
                    call_id=request.id,
                    index=index,
                    command=command,
                    cwd=cwd,
                    timeout=run_timeout,
                    pgid=pgid,
                )
            )

        self._running_call = index
        spawner = kernel.sandboxes.spawner_for(
            str(workspace), self.effective.network, sandboxed=self.sandboxed
        )
        result = await run_bash(
            command,
            spawner=spawner,
            cwd=cwd,
            env=env,
            time_limit=run_timeout,
            output_cap=limits.tool_output_cap,
            on_start=started,
        )
        self._running_call = None
        self._log_raw(request, command, result)
        try:
            after = await kernel.hooks.gate(
                "tool.after",
                {
                    "session_id": self.scb.id,
                    "agent_id": self.scb.agent_id,
                    "call_id": request.id,
                    "command": command,
                    "raw_bytes": result.total_bytes,
                },
                {"output": result.output, "exit_code": result.exit_code, "status": result.status},
                active=self.active,
            )
        except HookRejected as exc:  # the command ran; the model sees the verdict instead
            fact = _rejected(request, index, exc, result.exit_code)
            await self._append_ahead(fact)
            return fact
        output = str(after["output"])
        if request.timeout is not None and request.timeout > limits.tool_timeout:
            output = (
                f"[a timeout of {request.timeout:g} s is above the cap of "
                f"{limits.tool_timeout:g} s: it ran with {run_timeout:g} s]\n{output}"
            )
        visible = {
            "call_id": request.id,
            "index": index,
            "output": output,
            "status": after.get("status", result.status),
            "exit_code": after["exit_code"],
            "truncated_bytes": result.truncated_bytes,
        }
        try:
            fact = msgspec.convert(visible, ToolResult)
        except msgspec.ValidationError as exc:
            await self._append(
                ToolResult(
                    call_id=request.id,
                    index=index,
                    output="[the result is withheld: tool.after returned an invalid result]",
                    status="error",
                    exit_code=result.exit_code,
                )
            )
            del self._unresolved[index]
            raise HookError("tool.after", f"tool.after returned an invalid result: {exc}") from None
        await self._append_ahead(fact)
        return fact

    def _log(self, kind: str, message: str, data: dict[str, Any]) -> None:
        """A RuntimeLog record of this session (not waited for)."""
        self.kernel.log(
            LogEntry(
                kind=kind,
                session_id=self.scb.id,
                agent_id=self.scb.agent_id,
                message=message,
                data=data,
            )
        )

    def _log_raw(self, request: ToolCallRequest, command: str, result: BashResult) -> None:
        self._log(
            "tool.raw",
            f"bash exit {result.exit_code} ({result.status}) in {result.duration:.3f}s",
            {
                "call_id": request.id,
                "command": command,
                "exit_code": result.exit_code,
                "status": result.status,
                "bytes": result.total_bytes,
                "output": result.raw[:RAW_LOG_CAP].decode(errors="replace"),
            },
        )

    # -- environment -------------------------------------------------------------------
    def _workspace(self) -> Path:
        """The agent's working directory, created once per dispatch if missing (a
        command whose directory is gone meanwhile says so in its result)."""
        if self._workspace_path is None:
            configured = self.cwd or self.effective.workspace
            workspace = (
                Path(configured)
                if configured
                else self.kernel.config.paths.data_dir / "workspaces" / self.scb.agent_id
            )
            workspace.mkdir(parents=True, exist_ok=True)
            self._workspace_path = workspace
        return self._workspace_path

    def _bash_env(self) -> dict[str, str]:
        """The base environment handed to tool.before: an allowlist of the daemon's
        (no secret of the node reaches an agent), the skills' scripts on PATH."""
        if self._base_env is None:  # the daemon's environment, read once per dispatch
            self._base_env = agent_environment(os.environ, self.kernel.config.aoscb.agent_env)
            if self.sandboxed:  # the node's home directories do not exist in there
                self._base_env["HOME"] = str(self._workspace())
        env = dict(self._base_env)
        path = [*self.kernel.context.face(self.active).path, env.get("PATH", os.defpath)]
        env["PATH"] = os.pathsep.join(path)
        env["AOS_PYTHON"] = os.path.abspath(sys.executable)
        return env

    def _kernel_env(self) -> dict[str, str]:
        """What the kernel sets last: the agent's token and where to use it."""
        token, issued = self._token
        if token is None or time.monotonic() - issued > TOKEN_REISSUE:  # valid for a day
            principal = agent_principal(
                self.scb.agent_id, self.scb.id, frozenset(self.effective.scopes), self.dispatch_id
            )
            token = self.kernel.tokens.issue(principal)
            self._token = (token, time.monotonic())
        env = {
            "AOS_TOKEN": token,
            "AOS_SESSION_ID": self.scb.id,
            "AOS_AGENT_ID": self.scb.agent_id,
        }
        if self.kernel.agent_socket is not None:
            env["AOS_SOCKET"] = str(self.kernel.agent_socket)
        return env

    # -- bookkeeping ----------------------------------------------------------------------
    async def _append(self, fact: Fact) -> int:
        return await self._writer.append(fact, self.active)

    async def _append_ahead(self, fact: Fact) -> None:
        """A tool.result: it commits while the loop goes on (the next step's context
        and model call); the next append waits for that commit."""
        await self._writer.append_ahead(fact, self.active)

    def _store_failed(self, exc: StoreError) -> str:
        """The error of a dispatch that could not record its history."""
        if isinstance(exc, StoreUnavailable):
            self._outage = self._outage or (time.time(), str(exc))
            return self._outage_error()
        logger.warning("dispatch %s: recording history failed: %s", self.dispatch_id, exc)
        return f"recording history failed: {exc}"

    def _outage_error(self) -> str:
        assert self._outage is not None
        since, cause = self._outage
        return (
            f"the database became unreachable ({cause}) and was back {time.time() - since:.0f} s "
            f"later: the dispatch stopped there; everything it did before is recorded"
        )

    async def _until_stored(self, write: Callable[[], Awaitable[_T]]) -> _T:
        """``write()``, again while the database cannot be reached: a dispatch's end
        and what it has not recorded yet wait in memory until they are written."""
        delay = 0.2
        while True:
            try:
                return await write()
            except StoreUnavailable as exc:
                if self._outage is None:
                    self._outage = (time.time(), str(exc))
                logger.warning(
                    "dispatch %s: the database is unreachable (%s); retrying in %.1f s",
                    self.dispatch_id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_RETRY_MAX)

    def _publish_stream(self, event: dict[str, Any]) -> None:
        """A ``stream`` event, in history order: while facts committed ahead (the last
        step's results) are not yet announced, the next step's text waits for them,
        so every subscriber sees a dispatch's events as its history has them."""
        committing = self._writer.committing
        if committing is not None and not committing.done():
            if not self._held_stream:
                committing.add_done_callback(lambda _: self._release_stream())
            self._held_stream.append(event)
            return
        self._release_stream()
        self.kernel.events.publish("stream", event)

    def _release_stream(self) -> None:
        held, self._held_stream = self._held_stream, []
        for event in held:
            self.kernel.events.publish("stream", event)

    async def _phase(self, phase: str) -> None:
        """What the unit is doing now (assemble, compute, tool): kept in memory and
        shown by session.get while it runs; writing it per step would cost a
        durable commit each time."""
        self.phase = phase

    def cancel(self, reason: str) -> None:
        """Stop the dispatch (its running command is killed); ``reason`` is recorded."""
        self.cancel_reason = reason
        self.task.cancel()

    async def _renew_lease(self) -> None:
        while True:
            await asyncio.sleep(LEASE_TTL / 3)
            try:
                held = await self.kernel.store.renew_lease(
                    self.scb.id, self.kernel.node_id, LEASE_TTL
                )
            except StoreError as exc:
                logger.warning("session %s: lease renewal failed (%s); retrying", self.scb.id, exc)
                continue
            if not held:  # another node took the session over: stop at once
                self.cancel("stopped: this node lost the session's lease to another node")
                return

    def _defer_unresolved(self, status: DispatchStatus) -> None:
        """Every tool call gets a result, even when the dispatch ends early."""
        why = " (the database became unreachable)" if self._outage is not None else ""
        for index, request in self._unresolved.items():
            if index == self._running_call:
                output = f"interrupted{why}: the command and everything it started were killed"
            else:
                output = f"not run: the dispatch ended ({status}{why}) before this call"
            self._writer.defer(
                ToolResult(call_id=request.id, index=index, output=output, status="interrupted")
            )
        self._unresolved = {}

    async def _finish(
        self, status: DispatchStatus, answer: str | None, error: str | None
    ) -> DispatchOutcome:
        kernel = self.kernel
        usage = self._totals.usage()
        try:
            try:
                await self._writer.settle()
            except StoreError as exc:  # tried again below, with dispatch.finished
                status, error = "failed", self._store_failed(exc)
            self._defer_unresolved(status)

            recorded: list[str | None] = []

            async def end() -> None:
                """Record the end (once), then free the session; again if the database
                breaks off meanwhile."""
                await self._writer.settle()
                if not recorded:
                    await kernel.store.get_session(self.scb.id)  # the database answers again
                    final = self._outage_error() if self._outage is not None else error
                    pending = [
                        f
                        for f in self._writer.take_deferred()
                        if not isinstance(f, DispatchFinished)
                    ]

                    def finished(error: str | None) -> DispatchFinished:
                        return DispatchFinished(
                            dispatch_id=self.dispatch_id,
                            status=status,
                            answer=answer,
                            error=error,
                            usage=usage,
                        )

                    try:
                        await self._writer.commit([*pending, finished(final)], self.active)
                    except StoreUnavailable:
                        raise
                    except StoreError as exc:  # refused for good: the end says so, without them
                        if not pending:
                            raise
                        self._writer.take_deferred()
                        kinds = ", ".join(fact_kind(f) for f in pending)
                        final = f"{final}; the store refused to record {kinds}: {exc}"
                        await self._writer.commit([finished(final)], self.active)
                    recorded.append(final)
                    if self._outage is not None:
                        self._log("dispatch.outage", final or "", {"dispatch_id": self.dispatch_id})
                current = await kernel.store.get_session(self.scb.id)
                self.scb = await kernel.store.update_session(
                    msgspec.structs.replace(
                        current,
                        status="idle" if current.status == "running" else current.status,
                        phase="",
                        outcome=outcome_of(status, recorded[0]),
                    )
                )

            await self._until_stored(end)
            error = recorded[0]
        finally:
            with contextlib.suppress(StoreError):  # an expired lease is as good as released
                await kernel.store.release_lease(self.scb.id, kernel.node_id)
        outcome = DispatchOutcome(
            session_id=self.scb.id,
            agent_id=self.scb.agent_id,
            dispatch_id=self.dispatch_id,
            status=status,
            answer=answer,
            error=error,
            steps=self.steps,
            usage=usage,
        )
        kernel.hooks.notify("dispatch.after", msgspec.to_builtins(outcome), active=self.active)
        return outcome


def _rejected(
    request: ToolCallRequest, index: int, exc: HookRejected, exit_code: int | None = None
) -> ToolResult:
    """The result of a call a tool gate refused: before it ran, or (``exit_code``) after."""
    return ToolResult(
        call_id=request.id,
        index=index,
        output=f"rejected by {exc.owner}: {exc.reason}",
        status="rejected",
        exit_code=exit_code,
        rejected_by=exc.owner,
    )
