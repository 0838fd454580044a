"""SessionContext (aos/context.py): assembly through session.assemble, compaction, the context face."""

from __future__ import annotations

from pathlib import Path

import pytest
from aos_sdk import Client
from conftest import running_daemon
from test_reactunit import facts, new_session
from test_skills import write_skill

from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


async def test_compaction_keeps_the_context_within_budget(tmp_path: Path) -> None:
    with ScriptedLLM(default=Reply.text("x" * 400)) as llm:
        async with running_daemon(
            tmp_path, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m", AOS_CONTEXT_BUDGET="600"
        ) as daemon:
            async with Client(daemon.paths.control_socket, token="") as client:
                session = await new_session(client)
                for turn in range(8):
                    await client.call(
                        "session.dispatch", {"id": session, "message": f"turn {turn} " + "y" * 300}
                    )
                [compacted, *_] = await facts(client, session, "context.compacted")
                assert compacted["through_seq"] > 0
                assert compacted["summary"] == "x" * 400  # the model's summary (scripted)
                context = await client.call("session.context", {"id": session})
                assert context[1]["content"].startswith(
                    "[summary of the earlier part of this session]"
                )
                rebuilt = await client.call("session.context", {"id": session, "rebuild": True})
                assert rebuilt == context


@pytest.mark.anyio
async def test_context_face_of_an_agent(kernel: Kernel) -> None:
    root = kernel.config.skill_root_paths[0]
    write_skill(root, "pdf", "Reads PDFs.")
    (root / "pdf" / "scripts").mkdir()
    write_skill(root, "notes", "Keeps notes.", body="Write notes to NOTES.md.")
    write_skill(root, "unused")
    kernel.skills.scan()
    agent = await kernel.syscall(
        ADMIN, "agent.create", {"name": "a", "config": {"skills": ["pdf"]}}
    )
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    face = await kernel.context.face_of(agent["agent"]["id"], session["id"])
    assert face.names == ["pdf"]
    assert face.path == [str(root / "pdf" / "scripts")]
    assert "<name>\npdf\n</name>" in face.prompt
    await kernel.syscall(ADMIN, "skill.load", {"name": "notes", "session_id": session["id"]})
    face = await kernel.context.face_of(agent["agent"]["id"], session["id"])
    assert face.names == ["notes", "pdf"]
    history = await kernel.syscall(ADMIN, "session.history", {"id": session["id"]})
    assert history[-1]["fact"] == {
        "kind": "skill.loaded",
        "skill": "notes",
        "body": "Write notes to NOTES.md.",
    }
    await kernel.syscall(ADMIN, "skill.unload", {"name": "notes", "session_id": session["id"]})
    assert (await kernel.context.face_of(agent["agent"]["id"], session["id"])).names == ["pdf"]
