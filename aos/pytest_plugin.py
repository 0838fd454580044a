"""pytest fixtures for skill authors, registered through the ``pytest11`` entry point.

Installing ``aos-kernel`` makes them available in any test suite:

- ``scripted_llm``: a started :class:`aos.testing.ScriptedLLM` (empty script:
  add replies with ``scripted_llm.add(...)``), stopped after the test.
- ``aos_project``: a project directory whose ``skills/`` is the skill root: put
  the skill under test there before using ``aos_daemon``.
- ``aos_daemon``: a temporary daemon (its own data dir) for ``aos_project``,
  talking to ``scripted_llm`` (model ``test-model``).
- ``aos_client``: an admin :class:`aos_sdk.Client` connected to ``aos_daemon``.

The daemon and client fixtures are async: mark the tests ``@pytest.mark.anyio``
(anyio's pytest plugin runs them). See docs/testing.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from aos_sdk import Client

    from aos.daemon import Daemon
    from aos.testing import ScriptedLLM


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    """A scripted OpenAI-compatible server on 127.0.0.1 (``.base_url``, ``.requests``)."""
    from aos.testing import ScriptedLLM  # imported on use: keeps pytest start-up light

    with ScriptedLLM() as llm:
        yield llm


@pytest.fixture
def aos_project(tmp_path: Path) -> Path:
    """A project directory with an empty ``skills/`` (the configured skill root)."""
    (tmp_path / "skills").mkdir()
    return tmp_path


@pytest.fixture
async def aos_daemon(aos_project: Path, scripted_llm: ScriptedLLM) -> AsyncIterator[Daemon]:
    """A temporary daemon for ``aos_project`` whose model is ``scripted_llm``."""
    from aos.testing import temporary_daemon

    async with temporary_daemon(
        aos_project, OPENROUTER_BASE_URL=scripted_llm.base_url, AOS_MODEL=scripted_llm.model
    ) as daemon:
        yield daemon


@pytest.fixture
async def aos_client(aos_daemon: Daemon) -> AsyncIterator[Client]:
    """An admin client of ``aos_daemon`` (over its control socket)."""
    from aos_sdk import Client

    async with Client(aos_daemon.paths.control_socket, token="") as client:
        yield client
