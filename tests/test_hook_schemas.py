"""Every hook's arguments have the shape its HookSpec.schema states (the
TypeScript SDK's hook types are generated from it): a real daemon's calls are
recorded and checked, key by key, for every hook but cli.register."""

from __future__ import annotations

import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from conftest import install, kernel_with_model

from aos.daemon import Daemon
from aos.hookspecs import HOOKS, hookimpl
from aos.principals import ADMIN, service_principal
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


def recorder(calls: list[tuple[str, str, dict[str, Any]]]) -> SimpleNamespace:
    """A plugin implementing every hook a service may: it records each argument
    and changes nothing (a gate's None keeps the output; a provider's None passes)."""
    attrs: dict[str, Any] = {}
    for name, spec in HOOKS.items():
        if spec.kind == "gate":

            def gate(input: Any, output: Any, _hook: str = name) -> None:
                calls.append((_hook, "input", dict(input)))
                calls.append((_hook, "output", dict(output)))

            attrs[spec.python_name] = hookimpl(trylast=True)(gate)
        elif spec.kind == "notify":

            def notify(event: Any, _hook: str = name) -> None:
                calls.append((_hook, "event", dict(event)))

            attrs[spec.python_name] = hookimpl(notify)
        elif spec.kind == "provide":

            def provide(input: Any, _hook: str = name) -> None:
                calls.append((_hook, "input", dict(input)))

            attrs[spec.python_name] = hookimpl(tryfirst=True)(provide)
    return SimpleNamespace(**attrs)


def problems(hook: str, argument: str, value: dict[str, Any]) -> list[str]:
    shape = HOOKS[hook].schema[argument]
    found = []
    unknown = set(value) - set(typing.get_type_hints(shape))
    if unknown:
        found.append(f"{hook} {argument}: keys the schema does not state: {sorted(unknown)}")
    try:
        msgspec.convert(value, shape)
    except msgspec.ValidationError as exc:
        found.append(f"{hook} {argument}: {exc}")
    return found


async def test_every_hook_call_matches_its_schema(
    tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    db_url = f"sqlite://{tmp_path / 'aos.db'}"  # the shapes do not depend on the store
    calls: list[tuple[str, str, dict[str, Any]]] = []
    scripted_llm.add(Reply.tool_call("echo hi"), Reply.text("done"))
    async with kernel_with_model(db_url, tmp_path, scripted_llm) as kernel:
        kernel.pm.register(recorder(calls), name="recorder")
        install(kernel, "notes")
        daemon = Daemon(kernel.config, kernel)
        task = await daemon.start(within=60)
        kernel.hooks.system = kernel.hooks.system | {"recorder"}  # it sees every agent's calls
        agent = await kernel.syscall(ADMIN, "agent.create", {"name": "a"})
        session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
        await kernel.syscall(ADMIN, "skill.load", {"session_id": session["id"], "name": "notes"})
        await kernel.syscall(ADMIN, "skill.unload", {"session_id": session["id"], "name": "notes"})
        outcome = await kernel.syscall(
            ADMIN, "session.dispatch", {"id": session["id"], "message": "go"}
        )
        assert outcome["status"] == "completed"
        someone = service_principal("someone", frozenset({"kernel.read"}))
        await kernel.syscall(someone, "kernel.status")  # syscall.before sees a service's calls
        kernel.shutdown_requested.set()
        await task
    seen = {hook for hook, _, _ in calls}
    assert seen == {name for name, spec in HOOKS.items() if spec.kind != "register"}
    assert [p for hook, argument, value in calls for p in problems(hook, argument, value)] == []


def test_every_hook_but_register_states_its_shapes() -> None:
    expected = {"gate": {"input", "output"}, "notify": {"event"}, "provide": {"input", "returns"}}
    for name, spec in HOOKS.items():
        assert set(spec.schema) == expected.get(spec.kind, set()), name
