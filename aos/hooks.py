"""The async hook runner: pluggy declares and orders, the kernel calls.

Pluggy is synchronous, so the kernel walks each hook's implementations itself
(in pluggy's call order) to await coroutine implementations, apply timeouts and
failure policies, scope implementations to the skills active for a session
(the node's system skills are in every scope), and record verdicts, errors and
timeouts in RuntimeLog.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import os
import sys
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import click
import msgspec
from aos_sdk.protocol import FailurePolicy

from aos.hookspecs import HOOKS, HookSpec
from aos.plugins import AOSPluginManager
from aos.runtimelog import LogEntry

if TYPE_CHECKING:
    from aos.telemetry import Telemetry

Where = Literal["in-process", "service"]
POLICY_ATTR = "__aos_hook_policy__"
STATS_WINDOW = 1024
"""Latest calls per implementation whose latencies make hook.list's percentiles."""


class HookRejected(Exception):
    """A gate stopped the operation (a verdict, or a failure under fail-closed)."""

    def __init__(self, hook: str, owner: str, reason: str) -> None:
        super().__init__(f"rejected by {owner}: {reason}")
        self.hook = hook
        self.owner = owner
        self.reason = reason


class HookError(Exception):
    """A provide hook could not answer (no provider, or its provider failed closed)."""

    def __init__(self, hook: str, message: str) -> None:
        super().__init__(message)
        self.hook = hook


class HookPolicy(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Per-implementation overrides (from SKILL.md, a service's hello, or :func:`policy`).

    Unset fields fall through: a skill's declared policy over the function's
    own :func:`policy`, over the defaults of the hook's kind."""

    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None
    failure: FailurePolicy | None = None

    def over(self, other: HookPolicy) -> HookPolicy:
        """This policy, with ``other`` filling the fields it leaves unset."""
        return HookPolicy(
            timeout=self.timeout if self.timeout is not None else other.timeout,
            failure=self.failure if self.failure is not None else other.failure,
        )


def policy(
    *, timeout: float | None = None, failure: FailurePolicy | None = None
) -> Callable[[Any], Any]:
    """Decorate an in-process hook implementation with its own timeout/failure policy."""

    declared = msgspec.convert({"timeout": timeout, "failure": failure}, HookPolicy)

    def mark(fn: Any) -> Any:
        setattr(fn, POLICY_ATTR, declared)
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class Impl:
    """One implementation of one hook, as the runner calls it."""

    hook: str
    owner: str
    """The skill (plugin name) that registered it."""
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    is_async: bool
    timeout: float
    failure: FailurePolicy
    where: Where
    tryfirst: bool
    trylast: bool

    def describe(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "where": self.where,
            "function": getattr(self.function, "__qualname__", repr(self.function)),
            "failure": self.failure,
            "timeout": self.timeout,
            "tryfirst": self.tryfirst,
            "trylast": self.trylast,
        }


def _is_valid_output(spec: HookSpec, value: Any) -> bool:
    return isinstance(value, dict) and spec.output_keys <= value.keys()


def _invalid_output(impl: Impl, spec: HookSpec, value: Any) -> str:
    keys = ", ".join(sorted(spec.output_keys))
    if isinstance(value, dict) and "verdict" in value:
        got = f"unknown verdict {value['verdict']!r} (the only verdict is 'reject')"
    elif isinstance(value, dict):
        got = f"a dict without {', '.join(sorted(spec.output_keys - value.keys()))}"
    else:
        got = type(value).__name__
    return (
        f"{impl.owner} returned an invalid output on {spec.name}: expected the output dict "
        f"(keys {keys}) or a reject verdict, got {got}"
    )


class CallStats:
    """One implementation's calls since the node started, and the latencies of the
    last :data:`STATS_WINDOW` of them (for ``hook.list``'s p50 and p99)."""

    __slots__ = ("_recent", "calls")

    def __init__(self) -> None:
        self.calls = 0
        self._recent: collections.deque[float] = collections.deque(maxlen=STATS_WINDOW)

    def add(self, seconds: float) -> None:
        self.calls += 1
        self._recent.append(seconds)

    def describe(self) -> dict[str, Any]:
        """``{"calls", "p50_ms", "p99_ms"}`` (the percentiles None before a call)."""
        ordered = sorted(self._recent)

        def ms(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

        return {"calls": self.calls, "p50_ms": ms(0.50), "p99_ms": ms(0.99)}


class HookRunner:
    """Calls hooks by kind. One per kernel; safe to (un)register between calls."""

    def __init__(
        self,
        pm: AOSPluginManager,
        *,
        default_timeout: float = 5.0,
        log: Callable[[LogEntry], object] | None = None,
        trace: bool | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.pm = pm
        self.telemetry = telemetry
        """Spans of gate implementations' calls (when tracing is on)."""
        self.default_timeout = default_timeout
        self._log = log
        self._trace = os.environ.get("AOS_TRACE_HOOKS") == "1" if trace is None else trace
        self._policies: dict[tuple[str, str], HookPolicy] = {}
        self._cache: dict[str, tuple[int, tuple[Impl, ...]]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._stats: collections.defaultdict[tuple[str, str], CallStats] = collections.defaultdict(
            CallStats
        )
        """(hook, owner) -> its calls and latencies since start."""
        self.system: frozenset[str] = frozenset()
        """Owners in every scope: the node's system skills (installed in a skill root
        or by pip), whose hooks are policy for every agent. The kernel keeps it in
        step with the skill registry."""

    def in_scope(self, impl: Impl, active: Container[str] | None) -> bool:
        """Whether ``impl`` applies where ``active`` skills are active (None: everywhere)."""
        return active is None or impl.owner in self.system or impl.owner in active

    # -- implementations ------------------------------------------------------------
    def set_policy(self, owner: str, hook: str, value: HookPolicy) -> None:
        """Declare a skill's timeout/failure policy for one hook (SKILL.md, service hello)."""
        self._policies[(owner, hook)] = value
        self._cache.pop(hook, None)

    def clear_policies(self, owner: str) -> None:
        """Forget every policy declared for ``owner`` (its skill changed or left)."""
        for key in [k for k in self._policies if k[0] == owner]:
            del self._policies[key]
            self._cache.pop(key[1], None)

    def impls(self, hook: str) -> tuple[Impl, ...]:
        """The hook's implementations in call order (a snapshot: registration
        during a chain does not change the chain already running)."""
        cached = self._cache.get(hook)
        if cached is not None and cached[0] == self.pm.generation:
            return cached[1]
        spec = HOOKS[hook]
        caller = getattr(self.pm.hook, spec.python_name)
        found = tuple(self._impl(spec, hi) for hi in reversed(caller.get_hookimpls()))
        self._cache[hook] = (self.pm.generation, found)
        return found

    def _impl(self, spec: HookSpec, hookimpl: Any) -> Impl:
        fn = hookimpl.function
        declared = self._policies.get((hookimpl.plugin_name, spec.name), HookPolicy()).over(
            getattr(fn, POLICY_ATTR, HookPolicy())
        )
        default_failure: FailurePolicy = "fail-closed" if spec.kind == "gate" else "fail-open"
        return Impl(
            hook=spec.name,
            owner=hookimpl.plugin_name,
            function=fn,
            argnames=tuple(hookimpl.argnames),
            is_async=inspect.iscoroutinefunction(fn),
            timeout=declared.timeout if declared.timeout is not None else self.default_timeout,
            failure=declared.failure or default_failure,
            where=getattr(hookimpl.plugin, "aos_where", "in-process"),
            tryfirst=bool(hookimpl.tryfirst),
            trylast=bool(hookimpl.trylast),
        )

    def describe(self) -> list[dict[str, Any]]:
        """Every hook with its kind and implementations in call order (``aos hooks``)."""
        return [
            {
                "hook": spec.name,
                "kind": spec.kind,
                "required": spec.required,
                "implementations": [
                    {
                        **impl.describe(),
                        "system": impl.owner in self.system,
                        **self._stats[(spec.name, impl.owner)].describe(),
                    }
                    for impl in self.impls(spec.name)
                ],
            }
            for spec in HOOKS.values()
        ]

    # -- calling one implementation -------------------------------------------------
    async def _traced_call(self, impl: Impl, args: Mapping[str, Any]) -> Any:
        """:meth:`_call` as an ``aos.hook <hook>`` span, for gates while the node
        traces (a service's own spans continue it: its hook call carries the
        span's context)."""
        telemetry = self.telemetry
        assert telemetry is not None
        with telemetry.span(
            f"aos.hook {impl.hook}", {"aos.hook.name": impl.hook, "aos.hook.owner": impl.owner}
        ) as span:
            started = time.perf_counter()
            try:
                result = await self._call(impl, args)
            except TimeoutError:
                span.fail("timeout")
                raise
            except Exception:
                span.fail("error")  # its text may quote content: the RuntimeLog has it
                raise
            rejected = isinstance(result, dict) and result.get("verdict") == "reject"
            verdict = "reject" if rejected else "pass"
            span.set({"aos.hook.verdict": verdict})
            if (metrics := telemetry.metrics) is not None:
                attributes = {"aos.hook.name": impl.hook, "aos.hook.owner": impl.owner}
                metrics.hooks.record(
                    time.perf_counter() - started, {**attributes, "aos.hook.verdict": verdict}
                )
            return result

    async def _call(self, impl: Impl, args: Mapping[str, Any]) -> Any:
        """Run one implementation under its timeout; raise TimeoutError past it.
        Its latency counts in ``hook.list``, whatever the outcome."""
        call_args = {name: args[name] for name in impl.argnames}
        started = time.perf_counter()
        try:
            if impl.is_async:
                async with asyncio.timeout(impl.timeout):
                    return await impl.function(**call_args)
            result = impl.function(**call_args)
            if inspect.isawaitable(result):  # a sync function returning an awaitable
                async with asyncio.timeout(impl.timeout - (time.perf_counter() - started)):
                    return await result
            if time.perf_counter() - started > impl.timeout:
                # A blocking in-process function cannot be interrupted; its late
                # result is discarded and its failure policy applies all the same.
                raise TimeoutError
            return result
        finally:
            self._stats[(impl.hook, impl.owner)].add(time.perf_counter() - started)

    def _record(
        self,
        kind: str,
        impl: Impl,
        started: float,
        message: str,
        *,
        level: Literal["info", "warning", "error"],
        scope: Mapping[str, Any] | None,
    ) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        if self._trace:
            print(
                f"aos hook {impl.hook} {impl.owner}: {kind} {message} ({elapsed_ms:.3f} ms)",
                file=sys.stderr,
            )
        if self._log is not None:
            self._log(
                LogEntry(
                    kind=kind,
                    level=level,
                    message=message,
                    session_id=(scope or {}).get("session_id"),
                    agent_id=(scope or {}).get("agent_id"),
                    data={
                        "hook": impl.hook,
                        "implementation": impl.owner,
                        "where": impl.where,
                        "elapsed_ms": round(elapsed_ms, 3),
                    },
                )
            )

    def _trace_call(self, impl: Impl, started: float, outcome: str) -> None:
        if self._trace:
            elapsed_ms = (time.perf_counter() - started) * 1000
            print(
                f"aos hook {impl.hook} {impl.owner}: {outcome} ({elapsed_ms:.3f} ms)",
                file=sys.stderr,
            )

    def _failed(
        self,
        impl: Impl,
        exc: BaseException,
        started: float,
        level: Literal["warning", "error"],
        scope: Mapping[str, Any],
    ) -> str:
        """Record an implementation's error or timeout; return the reason."""
        if isinstance(exc, TimeoutError):
            kind, reason = (
                "hook.timeout",
                f"{impl.owner} timed out after {impl.timeout:g}s on {impl.hook}",
            )
        else:
            kind, reason = (
                "hook.error",
                f"{impl.owner} failed on {impl.hook}: {type(exc).__name__}: {exc}",
            )
        self._record(kind, impl, started, reason, level=level, scope=scope)
        return reason

    # -- gate ------------------------------------------------------------------------
    async def gate(
        self,
        hook: str,
        input: Mapping[str, Any],
        output: dict[str, Any],
        *,
        active: Container[str] | None = None,
    ) -> dict[str, Any]:
        """Run a gate chain; return the final output or raise :class:`HookRejected`.

        ``active``: the skills active for the session (None: every implementation);
        the system skills' implementations run whatever it holds.
        """
        spec = HOOKS[hook]
        args = {"input": MappingProxyType(dict(input)), "output": output}
        traced = self.telemetry is not None and self.telemetry.enabled
        call = self._traced_call if traced else self._call  # decided once per chain
        for impl in self.impls(hook):
            if not self.in_scope(impl, active):
                continue
            started = time.perf_counter()
            try:
                result = await call(impl, args)
            except Exception as exc:
                reason = self._failed(impl, exc, started, "error", input)
                if impl.failure == "fail-closed":
                    raise HookRejected(hook, impl.owner, reason) from exc
                continue
            if result is None:
                result = args["output"]
            elif isinstance(result, dict) and result.get("verdict") == "reject":
                reason = str(result.get("reason") or "no reason given")
                self._record(
                    "hook.verdict", impl, started, f"reject: {reason}", level="info", scope=input
                )
                raise HookRejected(hook, impl.owner, reason)
            if not _is_valid_output(spec, result) or "verdict" in result:
                reason = _invalid_output(impl, spec, result)
                self._record("hook.error", impl, started, reason, level="error", scope=input)
                if impl.failure == "fail-closed":
                    raise HookRejected(hook, impl.owner, reason)
                continue
            args["output"] = result
            self._trace_call(impl, started, "pass")
        return args["output"]

    # -- notify ----------------------------------------------------------------------
    def notify(
        self, hook: str, event: Mapping[str, Any], *, active: Container[str] | None = None
    ) -> None:
        """Fire and forget: schedule every implementation; never raises."""
        impls = [i for i in self.impls(hook) if self.in_scope(i, active)]
        if not impls:
            return
        task = asyncio.get_running_loop().create_task(
            self._notify_all(impls, MappingProxyType(dict(event)))
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _notify_all(self, impls: list[Impl], event: Mapping[str, Any]) -> None:
        await asyncio.gather(*(self._notify_one(impl, event) for impl in impls))

    async def _notify_one(self, impl: Impl, event: Mapping[str, Any]) -> None:
        started = time.perf_counter()
        try:
            await self._call(impl, {"event": event})
        except Exception as exc:
            self._failed(impl, exc, started, "warning", event)
        else:
            self._trace_call(impl, started, "done")

    async def drain(self) -> None:
        """Wait for notifications in flight (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- provide ---------------------------------------------------------------------
    async def provide(
        self, hook: str, input: Mapping[str, Any], *, active: Container[str] | None = None
    ) -> Any:
        """The first non-None result; a required hook without any provider is an error."""
        spec = HOOKS[hook]
        args = {"input": MappingProxyType(dict(input))}
        providers = [i for i in self.impls(hook) if self.in_scope(i, active)]
        for impl in providers:
            started = time.perf_counter()
            try:
                result = await self._call(impl, args)
            except Exception as exc:
                reason = self._failed(impl, exc, started, "error", input)
                if impl.failure == "fail-closed":
                    raise HookError(hook, reason) from exc
                continue
            self._trace_call(impl, started, "none" if result is None else "provided")
            if result is not None:
                return result
        if spec.required and not providers:
            raise HookError(hook, f"no skill provides {hook}")
        return None

    # -- register --------------------------------------------------------------------
    def register_cli(self, cli: click.Group) -> None:
        """``cli.register``: let in-process plugins add ``aos`` subcommands."""
        self.pm.hook.cli_register(cli=cli)
