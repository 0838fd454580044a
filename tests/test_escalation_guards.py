"""Escalation: an agent tries to switch the node's guard (the seed's my-guard) off.

Each attempt is made by the agent's own bash in a real dispatch
(tests/escalation.py), against the repository's real my-guard service; after
each one, the agent's ``echo 'DROP TABLE users'`` must still be refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import copy_skill, poll_until
from escalation import Agent, attempt, hostile_node, new_agent

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("sandbox", ["auto", "off"]),  # the token holds the line alone
]

DROP = "echo 'DROP TABLE users' > f"
REFUSED = "rejected by my-guard: blocked: DROP TABLE"
UNLOAD_DENIED = "denied: skill my-guard is system policy on this node: an agent cannot unload it"
SDK_CALL = '"${AOS_PYTHON:-python3}" -c "import os, sys; from aos_sdk import call; %s"'
"""A syscall made with the agent's own token, from its bash."""


async def still_refused(agent: Agent) -> dict[str, Any]:
    """The agent's DROP TABLE, which must still be refused."""
    result = await agent.bash(DROP)
    assert result["output"] == REFUSED, result
    return result


async def test_an_agent_cannot_switch_the_guard_off(tmp_path: Path, sandbox: str) -> None:
    copy_skill("my-guard", tmp_path)
    async with hostile_node(tmp_path, AOS_SANDBOX=sandbox) as (daemon, client):
        assert daemon.kernel is not None
        kernel = daemon.kernel
        await poll_until(lambda: "my-guard" in kernel.system_skills)
        # as the README had it: an agent created with the guard named in its config
        careful = await new_agent(client, "careful", config={"skills": ["my-guard"]})
        await still_refused(careful)

        # skill.unload through its token, with the aos-skill command
        result = await careful.bash("skill unload my-guard")
        attempt("unload my-guard with `skill unload`", result, succeeded=result["exit_code"] == 0)
        assert UNLOAD_DENIED in result["output"], result
        # ...after loading it in its session first (the unload would then have a fact to undo)
        result = await careful.bash("skill load my-guard && skill unload my-guard")
        attempt("load, then unload my-guard", result, succeeded=result["exit_code"] == 0)
        assert UNLOAD_DENIED in result["output"], result
        await still_refused(careful)

        # agent.update on itself, dropping every skill from its config
        update = SDK_CALL % (
            "print(call('agent.update', {'id': os.environ['AOS_AGENT_ID'], "
            "'config': {'skills': []}}))"
        )
        result = await careful.bash(update)
        after = await careful.bash(DROP)
        attempt(
            "agent.update on itself with skills: [], then DROP TABLE",
            after,
            succeeded=after["output"] != REFUSED,
        )
        # the update itself may be denied outright (least-privilege tokens) or go
        # through; either way the guard is not the agent's to drop
        assert "denied" in result["output"] or result["exit_code"] == 0, result
        assert after["output"] == REFUSED
