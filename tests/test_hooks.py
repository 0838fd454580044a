"""The async hook runner: gate, notify, provide and register semantics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import click
import pytest
from click.testing import CliRunner

from aos.hooks import HookError, HookPolicy, HookRejected, HookRunner, policy
from aos.hookspecs import hookimpl
from aos.plugins import AOSPluginManager
from aos.runtimelog import LogEntry

pytestmark = pytest.mark.anyio


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "args": {"command": command, "timeout": 5.0}, "cwd": "/tmp", "env": {}}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.logs: list[LogEntry] = []


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def pm() -> AOSPluginManager:
    return AOSPluginManager()


@pytest.fixture
def runner(pm: AOSPluginManager, rec: Recorder) -> HookRunner:
    return HookRunner(pm, default_timeout=2.0, log=rec.logs.append, trace=False)


def plugin(**impls: Any) -> Any:
    """A plugin object whose attributes are the given hookimpl functions."""
    return type("Plugin", (), {name: staticmethod(fn) for name, fn in impls.items()})()


# -- gate ----------------------------------------------------------------------------------


async def test_gate_order_follows_pluggy(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    def make(tag: str, **opts: Any) -> Any:
        @hookimpl(**opts)
        def tool_before(output: dict[str, Any]) -> dict[str, Any]:
            rec.calls.append(tag)
            return output

        return plugin(tool_before=tool_before)

    pm.register(make("first-registered"), name="a")
    pm.register(make("last", trylast=True), name="b")
    pm.register(make("first", tryfirst=True), name="c")
    pm.register(make("second-registered"), name="d")
    await runner.gate("tool.before", {}, bash("ls"))
    assert rec.calls == ["first", "second-registered", "first-registered", "last"]
    assert [i.owner for i in runner.impls("tool.before")] == ["c", "d", "a", "b"]


async def test_reject_stops_the_chain(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    @hookimpl(tryfirst=True)
    def reject(output: dict[str, Any]) -> dict[str, Any]:
        return {"verdict": "reject", "reason": "no rm"}

    @hookimpl
    def later(output: dict[str, Any]) -> dict[str, Any]:
        rec.calls.append("later")
        return output

    pm.register(plugin(tool_before=later), name="later")
    pm.register(plugin(tool_before=reject), name="guard")
    with pytest.raises(HookRejected) as info:
        await runner.gate("tool.before", {"session_id": "s1"}, bash("rm -rf /"))
    assert (info.value.owner, info.value.reason) == ("guard", "no rm")
    assert str(info.value) == "rejected by guard: no rm"
    assert rec.calls == []
    [entry] = rec.logs
    assert entry.kind == "hook.verdict"
    assert entry.session_id == "s1"
    assert entry.data["hook"] == "tool.before"
    assert entry.data["implementation"] == "guard"
    assert entry.data["elapsed_ms"] >= 0


async def test_rewrite_is_seen_by_the_next(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    @hookimpl(tryfirst=True)
    def rewrite(output: dict[str, Any]) -> dict[str, Any]:
        return {**output, "args": {**output["args"], "command": "ls -la"}}

    @hookimpl
    async def observe(input: Any, output: dict[str, Any]) -> None:  # async, and None = unchanged
        rec.calls.append(output["args"]["command"])
        with pytest.raises(TypeError):
            input["session_id"] = "tampered"  # input is read-only

    pm.register(plugin(tool_before=observe), name="observer")
    pm.register(plugin(tool_before=rewrite), name="rewriter")
    result = await runner.gate("tool.before", {"session_id": "s"}, bash("ls"))
    assert rec.calls == ["ls -la"]
    assert result["args"]["command"] == "ls -la"


async def test_invalid_output_is_an_error_of_that_implementation(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    @hookimpl
    def broken(output: dict[str, Any]) -> Any:
        return "allow"

    pm.register(plugin(tool_before=broken), name="broken")
    with pytest.raises(HookRejected, match=r"broken returned an invalid output on tool\.before"):
        await runner.gate("tool.before", {}, bash("ls"))
    runner.set_policy("broken", "tool.before", HookPolicy(failure="fail-open"))
    assert await runner.gate("tool.before", {}, bash("ls")) == bash("ls")
    assert [e.kind for e in rec.logs] == ["hook.error", "hook.error"]


async def test_exception_fails_closed_by_default_and_open_when_declared(
    pm: AOSPluginManager, runner: HookRunner
) -> None:
    @hookimpl
    def crash(output: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    pm.register(plugin(tool_before=crash), name="crashy")
    with pytest.raises(HookRejected, match=r"crashy failed on tool.before: RuntimeError: boom"):
        await runner.gate("tool.before", {}, bash("ls"))
    runner.set_policy("crashy", "tool.before", HookPolicy(failure="fail-open"))
    assert await runner.gate("tool.before", {}, bash("ls")) == bash("ls")


async def test_hanging_implementation_is_cut_at_its_timeout(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    @hookimpl
    @policy(timeout=0.2)
    async def hang(output: dict[str, Any]) -> Any:
        await asyncio.sleep(3600)

    pm.register(plugin(tool_before=hang), name="hanger")
    with anyio.fail_after(10):  # a guard against a runner that never cuts it
        with pytest.raises(HookRejected, match=r"hanger timed out after 0.2s on tool.before"):
            await runner.gate("tool.before", {}, bash("ls"))
        runner.set_policy("hanger", "tool.before", HookPolicy(timeout=0.2, failure="fail-open"))
        assert await runner.gate("tool.before", {}, bash("ls")) == bash("ls")
    assert [e.kind for e in rec.logs] == ["hook.timeout", "hook.timeout"]


async def test_blocking_sync_implementation_past_timeout_gets_its_policy(
    pm: AOSPluginManager, runner: HookRunner
) -> None:
    @hookimpl
    @policy(timeout=0.05)
    def slow(output: dict[str, Any]) -> Any:
        time.sleep(0.1)
        return {"verdict": "reject", "reason": "too late to count"}

    pm.register(plugin(tool_before=slow), name="slow")
    with pytest.raises(HookRejected, match=r"slow timed out after 0\.05s"):
        await runner.gate("tool.before", {}, bash("ls"))


async def test_scoping_to_active_skills(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    @hookimpl
    def reject(output: dict[str, Any]) -> Any:
        return {"verdict": "reject", "reason": "inactive skills must not fire"}

    pm.register(plugin(tool_before=reject), name="other-skill")
    assert await runner.gate("tool.before", {}, bash("ls"), active={"my-skill"}) == bash("ls")
    with pytest.raises(HookRejected):
        await runner.gate("tool.before", {}, bash("ls"), active={"other-skill"})


async def test_system_owners_are_in_every_scope(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    @hookimpl
    def reject(output: dict[str, Any]) -> Any:
        return {"verdict": "reject", "reason": "system policy"}

    @hookimpl
    def heard(event: Any) -> None:
        rec.calls.append(event["fact"])

    @hookimpl
    def assemble(input: Any) -> list[dict[str, Any]]:
        return [{"role": "system", "content": "from the node"}]

    pm.register(
        plugin(tool_before=reject, history_append=heard, session_assemble=assemble), name="guard"
    )
    nothing: frozenset[str] = frozenset()
    assert await runner.gate("tool.before", {}, bash("ls"), active=nothing) == bash("ls")
    runner.system = frozenset({"guard"})
    with pytest.raises(HookRejected, match="rejected by guard: system policy"):
        await runner.gate("tool.before", {}, bash("ls"), active=nothing)
    runner.notify("history.append", {"fact": "f1"}, active=nothing)
    await runner.drain()
    assert rec.calls == ["f1"]
    assert await runner.provide("session.assemble", {}, active=nothing) == [
        {"role": "system", "content": "from the node"}
    ]
    runner.system = frozenset()
    assert await runner.gate("tool.before", {}, bash("ls"), active=nothing) == bash("ls")


async def test_unregister_during_a_chain_applies_to_the_next_chain(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    second = None

    @hookimpl(tryfirst=True)
    async def remover(output: dict[str, Any]) -> dict[str, Any]:
        if pm.has_plugin("second"):
            pm.unregister(name="second")
        rec.calls.append("remover")
        return output

    @hookimpl
    def counted(output: dict[str, Any]) -> dict[str, Any]:
        rec.calls.append("second")
        return output

    second = plugin(tool_before=counted)
    pm.register(second, name="second")
    pm.register(plugin(tool_before=remover), name="remover")
    await runner.gate("tool.before", {}, bash("ls"))
    assert rec.calls == ["remover", "second"]  # the running chain kept its snapshot
    await runner.gate("tool.before", {}, bash("ls"))
    assert rec.calls == ["remover", "second", "remover"]


# -- notify -------------------------------------------------------------------------------


async def test_notify_is_concurrent_and_never_raises(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    a_started, b_started = asyncio.Event(), asyncio.Event()

    @hookimpl
    async def a(event: Any) -> None:
        a_started.set()
        await b_started.wait()  # completes only if b runs at the same time
        rec.calls.append(f"a:{event['seq']}")

    @hookimpl
    async def b(event: Any) -> None:
        b_started.set()
        await a_started.wait()
        rec.calls.append(f"b:{event['seq']}")

    @hookimpl
    def crash(event: Any) -> None:
        raise RuntimeError("notify errors stay here")

    pm.register(plugin(history_append=a), name="a")
    pm.register(plugin(history_append=b), name="b")
    pm.register(plugin(history_append=crash), name="crash")
    runner.notify("history.append", {"seq": 1})  # returns at once, raises nothing
    with anyio.fail_after(5):
        await runner.drain()
    assert sorted(rec.calls) == ["a:1", "b:1"]
    [error] = rec.logs
    assert error.kind == "hook.error"
    assert "notify errors stay here" in error.message


async def test_notify_timeout_is_logged(
    pm: AOSPluginManager, runner: HookRunner, rec: Recorder
) -> None:
    @hookimpl
    @policy(timeout=0.1)
    async def hang(event: Any) -> None:
        await asyncio.sleep(3600)

    pm.register(plugin(session_create=hang), name="hanger")
    runner.notify("session.create", {"session": {}})
    with anyio.fail_after(5):
        await runner.drain()
    assert [e.kind for e in rec.logs] == ["hook.timeout"]


# -- provide --------------------------------------------------------------------------------


async def test_provide_first_non_none_wins(pm: AOSPluginManager, runner: HookRunner) -> None:
    @hookimpl(tryfirst=True)
    def abstain(input: Any) -> None:
        return None

    @hookimpl
    async def context(input: Any) -> list[dict[str, str]]:
        return [{"role": "user", "content": input["session_id"]}]

    @hookimpl(trylast=True)
    def fallback(input: Any) -> list[dict[str, str]]:
        return []

    pm.register(plugin(session_assemble=fallback), name="fallback")
    pm.register(plugin(session_assemble=context), name="ctx")
    pm.register(plugin(session_assemble=abstain), name="abstain")
    assert await runner.provide("session.assemble", {"session_id": "s1"}) == [
        {"role": "user", "content": "s1"}
    ]


async def test_required_provide_without_provider_names_the_hook(runner: HookRunner) -> None:
    with pytest.raises(HookError, match=r"no skill provides session\.assemble"):
        await runner.provide("session.assemble", {"session_id": "s"})


# -- register, tracing ---------------------------------------------------------------------


def test_cli_register_adds_commands(pm: AOSPluginManager, runner: HookRunner) -> None:
    @hookimpl
    def cli_register(cli: click.Group) -> None:
        @cli.command(name="hello")
        def hello() -> None:
            click.echo("hello from a plugin")

    pm.register(plugin(cli_register=cli_register), name="greeter")
    group = click.Group("aos")
    runner.register_cli(group)
    result = CliRunner().invoke(group, ["hello"])
    assert result.output == "hello from a plugin\n"


async def test_trace_goes_to_stderr(
    pm: AOSPluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    @hookimpl
    def passthrough(output: dict[str, Any]) -> dict[str, Any]:
        return output

    pm.register(plugin(tool_before=passthrough), name="tracer")
    await HookRunner(pm, trace=True).gate("tool.before", {}, bash("ls"))
    assert "aos hook tool.before tracer: pass" in capsys.readouterr().err


def test_describe_lists_every_hook_with_its_implementations(
    pm: AOSPluginManager, runner: HookRunner
) -> None:
    @hookimpl
    @policy(timeout=1.5, failure="fail-open")
    def guard(output: dict[str, Any]) -> dict[str, Any]:
        return output

    pm.register(plugin(tool_before=guard), name="guard")
    described = {h["hook"]: h for h in runner.describe()}
    assert described["tool.before"]["kind"] == "gate"
    [impl] = described["tool.before"]["implementations"]
    assert impl["owner"] == "guard"
    assert impl["where"] == "in-process"
    assert impl["failure"] == "fail-open"
    assert impl["timeout"] == 1.5
    assert described["session.assemble"]["required"] is True


async def test_unknown_verdict_is_named(pm: AOSPluginManager, runner: HookRunner) -> None:
    @hookimpl
    def allow(output: dict[str, Any]) -> dict[str, Any]:
        return {"verdict": "allow"}

    pm.register(plugin(tool_before=allow), name="allower")
    with pytest.raises(
        HookRejected, match=r"unknown verdict 'allow' \(the only verdict is 'reject'\)"
    ):
        await runner.gate("tool.before", {}, bash("ls"))


def test_declared_policy_merges_with_the_functions_own(
    pm: AOSPluginManager, runner: HookRunner
) -> None:
    @hookimpl
    @policy(failure="fail-open")
    def guard(output: dict[str, Any]) -> dict[str, Any]:
        return output

    pm.register(plugin(tool_before=guard), name="guard")
    runner.set_policy("guard", "tool.before", HookPolicy(timeout=0.5))  # as SKILL.md would
    [impl] = runner.impls("tool.before")
    assert (impl.timeout, impl.failure) == (0.5, "fail-open")
    with pytest.raises(Exception, match="Expected `float` > 0"):
        policy(timeout=0)
