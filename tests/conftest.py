"""Shared fixtures: the store conformance parametrization (``sqlite`` / ``postgres``).

PostgreSQL tests use ``AOS_TEST_DB_URL``; every test gets a fresh schema that
is dropped afterwards. In CI (``CI=true``) a missing or unreachable server is a
failure; elsewhere the PostgreSQL tests skip and say how to enable them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from aos.config import load_config
from aos.kernel import Kernel
from aos.principals import ADMIN, Principal
from aos.store import Store, open_store
from aos.syscalls import SyscallError
from aos.testing import Reply, ScriptedLLM
from aos.testing import temporary_daemon as running_daemon
from aos_stdskills import aos_context

ENABLE_PG = (
    "PostgreSQL tests need AOS_TEST_DB_URL, e.g. "
    "AOS_TEST_DB_URL=postgresql://postgres@127.0.0.1:5432/test, or after docker compose up -d "
    "AOS_TEST_DB_URL=postgresql://aos:aos@127.0.0.1:5432/aos"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def pg_base_url() -> str:
    url = os.environ.get("AOS_TEST_DB_URL")
    if not url:
        if IN_CI:
            pytest.fail(f"CI must run the PostgreSQL tests: {ENABLE_PG}")
        pytest.skip(ENABLE_PG)
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose ``?schema=`` is fresh for this test (dropped afterwards)."""
    base = pg_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    _drop_schema(base, schema)


def _drop_schema(base: str, schema: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def _needs(program: str, package: str) -> None:
    """The sandbox's tests need ``program``: CI installs it and fails without it."""
    if shutil.which(program) is None:
        if IN_CI:
            pytest.fail(f"CI must run the sandbox tests: install {package} (.ci/run does)")
        pytest.skip(f"needs {program}: apt-get install {package}")


@pytest.fixture
def bubblewrap() -> None:
    _needs("bwrap", "bubblewrap")


@pytest.fixture
def pasta(bubblewrap: None) -> None:
    _needs("pasta", "passt")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'aos.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await open_store(db_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def kernel(db_url: str, tmp_path: Path) -> AsyncIterator[Kernel]:
    """A kernel on each backend, with no entry-point plugins (tests register their own)."""
    config = load_config(
        environ={"AOS_HOME": str(tmp_path / "home"), "AOS_DB_URL": db_url}, cwd=tmp_path
    )
    k = await Kernel.open(config, load_plugins=False)
    try:
        yield k
    finally:
        await k.close()


@asynccontextmanager
async def kernel_with_model(
    db_url: str, tmp_path: Path, llm: ScriptedLLM, **environ: str
) -> AsyncIterator[Kernel]:
    """A kernel on ``db_url`` whose model is ``llm``, with aos-context (``environ``
    adds to its configuration)."""
    config = load_config(
        environ={
            "AOS_HOME": str(tmp_path / "home"),
            "AOS_DB_URL": db_url,
            "AOS_MODEL": llm.model,
            "OPENROUTER_BASE_URL": llm.base_url,
            **environ,
        },
        cwd=tmp_path,
    )
    kernel = await Kernel.open(config, load_plugins=False)
    kernel.pm.register(aos_context, name="aos-context")
    try:
        yield kernel
    finally:
        await kernel.close()


@pytest.fixture
async def model_kernel(
    db_url: str, tmp_path: Path, scripted_llm: ScriptedLLM
) -> AsyncIterator[Kernel]:
    """A kernel on each backend whose model is the scripted server, with aos-context."""
    async with kernel_with_model(db_url, tmp_path, scripted_llm) as kernel:
        yield kernel


@asynccontextmanager
async def live_token(kernel: Kernel, llm: ScriptedLLM, session_id: str) -> AsyncIterator[str]:
    """The ``AOS_TOKEN`` a real dispatch of the session hands its bash, while that
    dispatch runs (its one command waits); the dispatch is interrupted at the end."""
    agent_id = (await kernel.store.get_session(session_id)).agent_id
    workspace = (await kernel.agents.effective(agent_id)).workspace
    name = f"token-{session_id}"  # in the agent's workspace: its sandbox holds nothing else
    out = Path(workspace or kernel.config.paths.data_dir / "workspaces" / agent_id) / name
    llm.add(
        Reply.tool_call(f'printf %s "$AOS_TOKEN" > {name}.tmp && mv {name}.tmp {name} && sleep 60'),
        Reply.text("done"),
    )
    await kernel.syscall(
        ADMIN, "session.dispatch", {"id": session_id, "message": "hold", "wait": False}
    )
    await poll_until(out.exists)
    try:
        yield out.read_text()
    finally:
        if session_id in kernel.dispatches:
            await kernel.syscall(ADMIN, "session.interrupt", {"id": session_id})


REPO = Path(__file__).resolve().parent.parent


def copy_skill(name: str, project: Path) -> Path:
    """Copy one of the repository's skills/ into ``project``'s skill root."""
    target = project / "skills" / name
    shutil.copytree(REPO / "skills" / name, target)
    return target


async def poll_until(predicate: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait for something another process does (a service starting, dying...)."""
    with anyio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110 - the change happens in another process
            await asyncio.sleep(0.02)


async def dispatched_tool_results(kernel: Kernel, message: str) -> list[dict[str, Any]]:
    """Dispatch ``message`` to a new agent's new session (the scripted model decides
    what it runs); the ``tool.result`` facts of the completed dispatch."""
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": "worker"})
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    outcome = await kernel.syscall(
        ADMIN, "session.dispatch", {"id": session["id"], "message": message}
    )
    assert outcome["status"] == "completed", outcome
    history = await kernel.syscall(ADMIN, "session.history", {"id": session["id"]})
    return [h["fact"] for h in history if h["fact"]["kind"] == "tool.result"]


__all__ = [
    "REPO",
    "copy_skill",
    "dispatched_tool_results",
    "kernel_with_model",
    "live_token",
    "poll_until",
    "running_daemon",
]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The escalation suite's count (tests/escalation.py) and the chaos suite's
    (tests/test_chaos.py), when they ran."""
    import sys

    from escalation import ATTEMPTS

    chaos = sys.modules.get("test_chaos")
    if chaos is not None and chaos.COUNTS:
        counts = chaos.COUNTS
        terminalreporter.write_line(
            "chaos suite: "
            + ", ".join(
                f"{counts[what]} {what}"
                for what in (
                    "trials",
                    "kills",
                    "cut dispatches",
                    "outages",
                    "facts checked",
                    "lost results",
                    "re-runs",
                )
            )
        )

    if ATTEMPTS:
        succeeded = [what for what, ok in ATTEMPTS if ok]
        terminalreporter.write_line(
            f"escalation suite: {len(ATTEMPTS)} attempts by agents' own bash, "
            f"{len(succeeded)} succeeded" + (f": {'; '.join(succeeded)}" if succeeded else "")
        )


async def make_agent(kernel: Kernel, name: str, **params: Any) -> dict[str, Any]:
    return await kernel.syscall(ADMIN, "agent.create", {"name": name, **params})


async def expect(
    code: str, kernel: Kernel, principal: Principal, name: str, params: Any = None
) -> str:
    with pytest.raises(SyscallError) as info:
        await kernel.syscall(principal, name, params)
    assert info.value.code == code, info.value.message
    return info.value.message


def install(kernel: Kernel, *names: str) -> None:
    """Context skills of these names in the kernel's skill root (an agent's config
    may name only skills that exist)."""
    root = kernel.config.skill_root_paths[0]
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "SKILL.md").write_text(
            f"---\nname: {name}\ndescription: A test skill.\n---\n"
        )
    kernel.skills.scan()


@asynccontextmanager
async def agent_with_token(
    kernel: Kernel, llm: ScriptedLLM, name: str, **params: Any
) -> AsyncIterator[tuple[dict[str, Any], str, Principal]]:
    """A new agent, a session of it, and the principal of the AOS_TOKEN its running
    dispatch hands to bash (valid until the block ends)."""
    agent = await make_agent(kernel, name, **params)
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    async with live_token(kernel, llm, session["id"]) as token:
        yield agent, session["id"], kernel.tokens.verify(token)


WIDE = ["kernel.read", "agent.read", "agent.write", "session.read", "session.write"]
