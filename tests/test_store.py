"""The store conformance suite: every test runs on ``sqlite`` and ``postgres``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aos.agent import ACB, AgentConfig
from aos.facts import (
    FACT_KINDS,
    A2AMessage,
    AssistantMessage,
    ContextCompacted,
    DispatchFinished,
    DispatchStarted,
    Fact,
    MCPCall,
    SkillLoaded,
    SkillUnloaded,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    Usage,
    UserMessage,
    fact_kind,
)
from aos.ids import new_id
from aos.runtimelog import LogEntry, LogQuery
from aos.session import SCB
from aos.store import Conflict, NotFound, Store, StoreError, StoreUnavailable, open_store
from aos.store.base import load_migrations

pytestmark = pytest.mark.anyio


async def make_session(store: Store, name: str | None = None) -> SCB:
    agent = await store.create_agent(ACB(id=new_id("agt"), name=name or new_id("name")))
    return await store.create_session(SCB(id=new_id("ses"), agent_id=agent.id))


# -- migrations ---------------------------------------------------------------


async def test_migrations_applied_and_reopen_is_idempotent(db_url: str) -> None:
    latest = load_migrations("sqlite")[-1].version
    assert latest == load_migrations("postgres")[-1].version
    first = await open_store(db_url)
    session = await make_session(first)
    await first.append(session.id, UserMessage(text="kept"))
    await first.close()
    again = await open_store(db_url)
    try:
        assert await again.schema_version() == latest
        assert [e.fact for e in await again.read_history(session.id)] == [UserMessage(text="kept")]
    finally:
        await again.close()


OPEN_SCRIPT = """
import asyncio, sys
from aos.store import open_store
async def main():
    store = await open_store(sys.argv[1])
    print(await store.schema_version())
    await store.close()
asyncio.run(main())
"""


def test_concurrent_openers_migrate_once(db_url: str) -> None:
    """Several processes opening one fresh database at once all succeed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_SCRIPT, db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    latest = str(load_migrations("sqlite")[-1].version)
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == latest


# -- control blocks -------------------------------------------------------------


async def test_agent_create_get_list_update(store: Store) -> None:
    parent = await store.create_agent(
        ACB(id=new_id("agt"), name="lead", config=AgentConfig(model="m1"), scopes=["session.read"])
    )
    assert parent.revision == 1 and parent.created_at > 0
    child = await store.create_agent(ACB(id=new_id("agt"), name="worker", parent=parent.id))
    assert await store.get_agent(parent.id) == parent
    assert [a.id for a in await store.list_agents()] == [parent.id, child.id]
    assert [a.id for a in await store.list_agents(parent=parent.id)] == [child.id]
    assert [a.id for a in await store.list_agents(parent=None)] == [parent.id]

    renamed = await store.update_agent(msgspec.structs.replace(parent, name="leader"))
    assert renamed.revision == 2
    assert (await store.get_agent(parent.id)).name == "leader"
    with pytest.raises(Conflict, match="changed meanwhile"):
        await store.update_agent(msgspec.structs.replace(parent, name="stale"))

    archived = await store.update_agent(msgspec.structs.replace(renamed, status="archived"))
    assert [a.id for a in await store.list_agents(status="active")] == [child.id]
    assert [a.id for a in await store.list_agents(status="archived")] == [archived.id]


async def test_agent_errors(store: Store) -> None:
    with pytest.raises(NotFound, match="agent nope not found"):
        await store.get_agent("nope")
    await store.create_agent(ACB(id="a1", name="same"))
    with pytest.raises(Conflict, match="named 'same'"):
        await store.create_agent(ACB(id="a2", name="same"))
    with pytest.raises(Conflict, match="parent ghost does not exist"):
        await store.create_agent(ACB(id="a3", name="orphan", parent="ghost"))
    with pytest.raises(NotFound):
        await store.update_agent(ACB(id="ghost", name="x", revision=1))


async def test_archived_agent_name_can_be_reused(store: Store) -> None:
    old = await store.create_agent(ACB(id=new_id("agt"), name="reused"))
    await store.update_agent(msgspec.structs.replace(old, status="archived"))
    new = await store.create_agent(ACB(id=new_id("agt"), name="reused"))
    assert new.name == "reused"


async def test_session_create_get_list_update(store: Store) -> None:
    agent = await store.create_agent(ACB(id=new_id("agt"), name="a"))
    other = await store.create_agent(ACB(id=new_id("agt"), name="b"))
    s1 = await store.create_session(SCB(id=new_id("ses"), agent_id=agent.id, title="one"))
    s2 = await store.create_session(SCB(id=new_id("ses"), agent_id=agent.id))
    s3 = await store.create_session(SCB(id=new_id("ses"), agent_id=other.id))
    assert await store.get_session(s1.id) == s1
    assert [s.id for s in await store.list_sessions(agent_id=agent.id)] == [s1.id, s2.id]
    assert [s.id for s in await store.list_sessions()] == [s1.id, s2.id, s3.id]
    running = await store.update_session(
        msgspec.structs.replace(s2, status="running", phase="tool")
    )
    assert running.revision == 2
    assert [s.id for s in await store.list_sessions(status="running")] == [s2.id]
    with pytest.raises(Conflict):
        await store.update_session(msgspec.structs.replace(s2, status="idle"))
    with pytest.raises(Conflict, match="agent ghost does not exist"):
        await store.create_session(SCB(id=new_id("ses"), agent_id="ghost"))
    with pytest.raises(NotFound, match="session nope not found"):
        await store.get_session("nope")


# -- SessionHistory -------------------------------------------------------------

EVERY_KIND: list[Fact] = [
    UserMessage(text="list files", sender="cli"),
    AssistantMessage(
        text="",
        reasoning="ls will do",
        tool_calls=[ToolCallRequest(id="c1", command="ls", timeout=5.0)],
        finish_reason="tool_calls",
        model="m",
        usage=Usage(prompt_tokens=10, completion_tokens=3, total_tokens=13, cost=0.001),
    ),
    ToolCall(call_id="c1", command="ls", cwd="/w", timeout=5.0, pgid=4242),
    ToolResult(call_id="c1", output="a\nb\n", status="ok", exit_code=0, truncated_bytes=7),
    ToolResult(call_id="c2", output="", status="rejected", rejected_by="my-guard"),
    SkillLoaded(skill="pdf", body="# PDF\nUse pdftotext."),
    SkillUnloaded(skill="pdf"),
    A2AMessage(
        message_id="m1", from_agent="a", to_agent="b", mode="wake", text="hi", reply_to=None, hops=1
    ),
    MCPCall(server="files", tool="read_file", status="ok", arguments_bytes=19, duration_ms=1.5),
    ContextCompacted(summary="earlier: listed files", through_seq=4),
    DispatchStarted(dispatch_id="d1", node="n1"),
    DispatchFinished(dispatch_id="d1", status="completed", answer="done", usage=Usage()),
]


def test_every_fact_kind_has_a_sample() -> None:
    assert {fact_kind(f) for f in EVERY_KIND} == set(FACT_KINDS)


async def test_every_fact_kind_round_trips(store: Store) -> None:
    session = await make_session(store)
    for fact in EVERY_KIND:
        await store.append(session.id, fact)
    entries = await store.read_history(session.id)
    assert [e.fact for e in entries] == EVERY_KIND
    assert [e.seq for e in entries] == list(range(1, len(EVERY_KIND) + 1))
    assert all(e.session_id == session.id and e.ts > 0 for e in entries)


HARD_TEXT = [
    "a\x00b",
    "\udcff\udcfe bad UTF-8",
    "\ud800",
    "\ue000",
    "\ue0000041",
    "😀 4 bytes",
    "\x01\x1b[31m\x7f",
]
"""NUL (PostgreSQL refuses it), lone surrogates (bad UTF-8 under surrogateescape;
UTF-8 cannot encode them), the escape character itself and what looks like its
use, a 4-byte character, control characters."""
any_text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=()), st.sampled_from("\x00\ue000\ud800\udcff😀\x1b0")
    ),
    max_size=40,
)


async def round_trip(url: str, texts: list[str]) -> None:
    """Every string, in every place the store keeps text, comes back the same."""
    store = await open_store(url)
    try:
        agent = await store.create_agent(
            ACB(id=new_id("agt"), name=new_id("name"), config=AgentConfig(workspace=texts[0]))
        )
        assert (await store.get_agent(agent.id)).config.workspace == texts[0]
        session = await store.create_session(
            SCB(id=new_id("ses"), agent_id=agent.id, title=texts[-1])
        )
        assert (await store.get_session(session.id)).title == texts[-1]
        facts: list[Fact] = []
        for text in texts:
            facts += [
                UserMessage(text=text, sender=text),
                ToolResult(call_id=text, output=text),
                AssistantMessage(text=text, reasoning_details=[{text: text, "n": [text]}]),
            ]
        await store.append_all(session.id, facts)
        assert [e.fact for e in await store.read_history(session.id)] == facts
        await store.log(
            LogEntry(
                kind="tool.raw", session_id=session.id, message=texts[0], data={"output": texts}
            )
        )
        await store.flush()
        [entry] = await store.read_log(LogQuery(session_id=session.id))
        assert (entry.message, entry.data) == (texts[0], {"output": texts})
    finally:
        await store.close()


@pytest.mark.parametrize("text", HARD_TEXT)
async def test_hard_text_is_stored_and_read_back_as_written(db_url: str, text: str) -> None:
    await round_trip(db_url, [text, f"x{text}y{text}"])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(any_text, min_size=1, max_size=8))
def test_any_text_is_stored_and_read_back_as_written(db_url: str, texts: list[str]) -> None:
    anyio.run(round_trip, db_url, texts)


async def test_seq_is_per_session_and_gapless_under_concurrency(store: Store) -> None:
    a = await make_session(store)
    b = await make_session(store)

    async def writer(session_id: str, n: int, tag: str) -> list[int]:
        return [await store.append(session_id, UserMessage(text=f"{tag}{i}")) for i in range(n)]

    results = await asyncio.gather(
        *(writer(a.id if i % 2 else b.id, 25, f"w{i}-") for i in range(8))
    )
    a_seqs = sorted(s for i, r in enumerate(results) if i % 2 for s in r)
    b_seqs = sorted(s for i, r in enumerate(results) if not i % 2 for s in r)
    assert a_seqs == list(range(1, 101))
    assert b_seqs == list(range(1, 101))
    history = await store.read_history(a.id)
    assert [e.seq for e in history] == list(range(1, 101))
    # each writer's own facts appear in the order it appended them
    for i in range(1, 8, 2):
        mine = [
            e.fact.text
            for e in history
            if isinstance(e.fact, UserMessage) and e.fact.text.startswith(f"w{i}-")
        ]
        assert mine == [f"w{i}-{n}" for n in range(25)]


async def test_two_connections_append_to_one_session(db_url: str) -> None:
    """Appenders on separate connections (as two nodes would be) never collide."""
    s1, s2 = await open_store(db_url), await open_store(db_url)
    try:
        session = await make_session(s1)
        seqs = await asyncio.gather(
            *(s.append(session.id, UserMessage(text=str(i))) for i in range(60) for s in (s1, s2))
        )
        assert sorted(seqs) == list(range(1, 121))
        assert [e.seq for e in await s2.read_history(session.id)] == list(range(1, 121))
    finally:
        await s1.close()
        await s2.close()


async def test_append_to_unknown_session_fails_alone(store: Store) -> None:
    session = await make_session(store)
    good, bad, good2 = await asyncio.gather(
        store.append(session.id, UserMessage(text="a")),
        store.append("ghost", UserMessage(text="b")),
        store.append(session.id, UserMessage(text="c")),
        return_exceptions=True,
    )
    assert isinstance(bad, NotFound) and "session ghost not found" in str(bad)
    assert sorted([good, good2]) == [1, 2]  # type: ignore[type-var]
    with pytest.raises(NotFound):
        await store.read_history("ghost")


async def test_a_refused_write_fails_alone_among_writes_at_once(store: Store) -> None:
    """On SQLite these share one transaction: a constraint broken by one writer
    is rolled back for that writer only."""
    session = await make_session(store)
    await store.create_agent(ACB(id="a1", name="taken"))
    appended, refused, created, leased = await asyncio.gather(
        store.append(session.id, UserMessage(text="kept")),
        store.create_agent(ACB(id="a2", name="taken")),
        store.create_agent(ACB(id="a3", name="free")),
        store.acquire_lease(session.id, "node-a", 30),
        return_exceptions=True,
    )
    assert appended == 1
    assert isinstance(refused, Conflict) and "named 'taken'" in str(refused)
    assert created == await store.get_agent("a3")
    assert leased is True
    [entry] = await store.read_history(session.id)
    assert entry.fact == UserMessage(text="kept")
    with pytest.raises(NotFound):
        await store.get_agent("a2")


async def test_append_all_writes_in_order(store: Store) -> None:
    session = await make_session(store)
    await store.append(session.id, UserMessage(text="go"))
    call = ToolCallRequest(id="c1", command="ls")
    step = [
        AssistantMessage(tool_calls=[call]),
        ToolCall(call_id="c1", command="ls", cwd="/tmp", timeout=5.0, pgid=7),
    ]
    assert await store.append_all(session.id, step) == [2, 3]
    assert [e.fact for e in await store.read_history(session.id, after=1)] == step
    with pytest.raises(NotFound):
        await store.append_all("ghost", step)


async def test_flush_commits_lazy_log_records_at_once(store: Store) -> None:
    """RuntimeLog records wait to ride along with a later write; flush() sends them now."""
    written = asyncio.get_running_loop().create_task(
        store.log(LogEntry(kind="test.flush", message="now"))
    )
    await asyncio.sleep(0)
    await store.flush()
    assert [e.message for e in await store.read_log(LogQuery(kind="test.flush"))] == ["now"]
    assert await written > 0


async def test_read_history_ranges(store: Store) -> None:
    session = await make_session(store)
    for i in range(10):
        await store.append(session.id, UserMessage(text=str(i)))
    assert [e.seq for e in await store.read_history(session.id, after=7)] == [8, 9, 10]
    assert [e.seq for e in await store.read_history(session.id, after=2, until=5)] == [3, 4, 5]
    assert [e.seq for e in await store.read_history(session.id, after=0, limit=2)] == [1, 2]
    assert await store.read_history(session.id, after=10) == []
    empty = await make_session(store)
    assert await store.read_history(empty.id) == []


async def test_history_is_append_only(store: Store) -> None:
    """No API path changes a fact, and the database itself refuses to."""
    for name in dir(store):
        assert not any(
            word in name for word in ("delete_fact", "update_fact", "truncate", "remove")
        ), name
    session = await make_session(store)
    await store.append(session.id, UserMessage(text="original"))
    execute = store._execute  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match="append-only"):
        await execute("UPDATE history SET kind = $1 WHERE session_id = $2", "x", session.id)
    with pytest.raises(StoreError, match="append-only"):
        await execute("DELETE FROM history WHERE session_id = $1", session.id)
    assert [e.fact for e in await store.read_history(session.id)] == [UserMessage(text="original")]


# -- RuntimeLog ---------------------------------------------------------------------


async def test_runtime_log_append_and_query(store: Store) -> None:
    t0 = time.time()
    ids = await asyncio.gather(
        store.log(LogEntry(kind="syscall", session_id="s1", message="session.append")),
        store.log(LogEntry(kind="hook.verdict", session_id="s1", data={"verdict": "reject"})),
        store.log(LogEntry(kind="syscall", session_id="s2", agent_id="a2", level="warning")),
    )
    assert len(set(ids)) == 3 and all(i > 0 for i in ids)
    assert [e.kind for e in await store.read_log(LogQuery(session_id="s1"))] == [
        "syscall",
        "hook.verdict",
    ]
    assert [e.session_id for e in await store.read_log(LogQuery(kind="syscall"))] == ["s1", "s2"]
    assert [e.agent_id for e in await store.read_log(LogQuery(agent_id="a2"))] == ["a2"]
    newest = await store.read_log(LogQuery(newest_first=True, limit=1))
    assert newest[0].session_id == "s2" and newest[0].level == "warning"
    verdict = (await store.read_log(LogQuery(kind="hook.verdict")))[0]
    assert verdict.data == {"verdict": "reject"} and verdict.ts >= t0 - 1
    first_id = min(ids)
    assert len(await store.read_log(LogQuery(after_id=first_id))) == 2
    assert await store.read_log(LogQuery(since=time.time() + 60)) == []
    assert len(await store.read_log(LogQuery(since=t0 - 60, until=time.time() + 60))) == 3


# -- leases -------------------------------------------------------------------------


async def test_lease_acquire_renew_release(store: Store) -> None:
    session = await make_session(store)
    assert await store.acquire_lease(session.id, "node-a", 30)
    assert await store.acquire_lease(session.id, "node-a", 30)  # re-entrant for its owner
    assert not await store.acquire_lease(session.id, "node-b", 30)
    scb = await store.get_session(session.id)
    assert scb.lease_owner == "node-a" and scb.lease_expires and scb.lease_expires > time.time()
    assert await store.renew_lease(session.id, "node-a", 60)
    assert not await store.renew_lease(session.id, "node-b", 60)
    assert not await store.release_lease(session.id, "node-b")
    assert await store.release_lease(session.id, "node-a")
    assert (await store.get_session(session.id)).lease_owner is None
    assert await store.acquire_lease(session.id, "node-b", 30)


async def test_expired_lease_can_be_taken_over(store: Store) -> None:
    session = await make_session(store)
    assert await store.acquire_lease(session.id, "crashed-node", 0.2)
    assert not await store.acquire_lease(session.id, "rescuer", 30)
    await anyio.sleep(0.4)
    assert await store.acquire_lease(session.id, "rescuer", 30)
    assert not await store.renew_lease(session.id, "crashed-node", 30)
    assert (await store.get_session(session.id)).lease_owner == "rescuer"


async def test_lease_on_unknown_session(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.acquire_lease("ghost", "n", 1)


# -- errors ---------------------------------------------------------------------------


async def test_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match="unsupported database URL scheme 'mysql'"):
        await open_store("mysql://localhost/db")


async def test_unreachable_postgres_names_url_and_cause() -> None:
    with pytest.raises(StoreUnavailable) as info:
        await open_store("postgresql://aos:secret@127.0.0.1:1/none")
    message = str(info.value)
    assert message.startswith("cannot connect to postgresql://aos:***@127.0.0.1:1/none: ")
    assert "secret" not in message


async def test_appends_and_log_records_interleave(store: Store) -> None:
    """History appends and RuntimeLog records flush side by side without interfering."""
    session = await make_session(store)
    results = await asyncio.gather(
        *(
            store.append(session.id, UserMessage(text=str(i)))
            if i % 2
            else store.log(LogEntry(kind="test", message=str(i)))
            for i in range(100)
        )
    )
    assert sorted(results[1::2]) == list(range(1, 51))
    assert len(await store.read_log(LogQuery(kind="test"))) == 50
