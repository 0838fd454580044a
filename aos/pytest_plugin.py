"""pytest fixtures for skill authors, registered through the ``pytest11`` entry point.

Installing ``agentos`` makes them available in any test suite:

- ``scripted_llm``: a started :class:`aos.testing.ScriptedLLM` (empty script:
  add replies with ``scripted_llm.add(...)``), stopped after the test.

Fixtures that run a daemon and a client against it belong here too, next to
``scripted_llm``. See docs/testing.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from aos.testing import ScriptedLLM


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    """A scripted OpenAI-compatible server on 127.0.0.1 (``.base_url``, ``.requests``)."""
    from aos.testing import ScriptedLLM  # imported on use: keeps pytest start-up light

    with ScriptedLLM() as llm:
        yield llm
