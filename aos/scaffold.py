"""Scaffolds of new skills (``aos skill new``): a skill directory, with or without a
service face, or a pip-installable plugin skill package."""

from __future__ import annotations

from pathlib import Path

from aos.skills.registry import SKILL_FILE

KERNEL_REQUIREMENT = "aos-kernel>=0.1,<0.2"
"""What a plugin skill depends on: the kernel's own distribution (``agentos`` and
``aos`` on PyPI are other people's)."""

_SKILL_MD = """---
name: {name}
description: Describe what {name} does and when an agent should use it.
{extra}---

# {name}

Instructions for the agent: what this skill is for, the scripts in scripts/ and
how to call them.
"""

_SERVICE = '''"""The service face of {name}: the hooks it implements (see docs/specs/aos-service.md)."""

from aos_sdk import define_service


@define_service
def service():
    def before_tool(input_data, output_data):
        # Return output_data (changed or not), or {{"verdict": "reject", "reason": "..."}}.
        return output_data

    return {{"hooks": {{"tool.before": before_tool}}}}
'''

_PYPROJECT = """[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "0.1.0"
description = "An AgentOS plugin skill: describe what {name} does"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["{kernel}"]

[project.optional-dependencies]
test = ["pytest>=8.2"]

# The entry point's name is the skill's name; the module is the pluggy plugin.
[project.entry-points."aos.skills"]
{name} = "{module}"

[tool.hatch.build.targets.wheel]
packages = ["{module}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_PLUGIN = '''"""{name}: an AgentOS plugin skill. The kernel loads this module from its
``aos.skills`` entry point and registers its hook implementations in process
(docs/specs/aos-hooks.md); its SKILL.md beside it is what agents read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aos.hooks import policy
from aos.hookspecs import hookimpl

BLOCKED = "curl "
"""What this example gate refuses: replace it with your skill's own rule."""


@hookimpl
@policy(failure="fail-closed")
def tool_before(input: Mapping[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    """**gate** ``tool.before``: refuse a command holding BLOCKED, else pass it on."""
    if BLOCKED in str(output.get("args", {{}}).get("command", "")):
        return {{"verdict": "reject", "reason": f"{{BLOCKED!r}} is not allowed here"}}
    return output
'''

_TEST = '''"""{name} in a real (temporary) daemon, with the scripted model: the fixtures
``aos_client`` and ``scripted_llm`` come with aos-kernel (docs/testing.md)."""

import pytest

from aos.testing import Reply


@pytest.mark.anyio
async def test_the_gate_refuses_and_passes(aos_client, scripted_llm):
    plugins = [p["name"] for p in (await aos_client.call("kernel.status"))["plugins"]]
    assert "{name}" in plugins  # loaded from its entry point: pip install -e . first
    agent = await aos_client.call("agent.create", {{"name": "tester"}})
    session = await aos_client.call("session.create", {{"agent_id": agent["agent"]["id"]}})
    scripted_llm.add(
        Reply.tool_call("curl -s https://example.com"),
        Reply.tool_call("echo fine"),
        Reply.text("done"),
    )
    outcome = await aos_client.call("session.dispatch", {{"id": session["id"], "message": "go"}})
    assert outcome["status"] == "completed"
    history = await aos_client.call("session.history", {{"id": session["id"]}})
    refused, passed = [h["fact"] for h in history if h["fact"]["kind"] == "tool.result"]
    assert refused["rejected_by"] == "{name}"
    assert passed["output"] == "fine\\n"
'''

_README = """# {name}

An AgentOS plugin skill. Install it into the environment of the `aos` node:

```sh
pip install -e '.[test]' && pytest   # develop and test it
python -m build                      # a wheel and an sdist in dist/
```

See docs/skills/publishing.md in the AgentOS repository.
"""


def skill_dir(root: Path, name: str, *, service: bool) -> Path:
    """A skill directory ``root/name`` with its SKILL.md (and service.py)."""
    directory = root / name
    directory.mkdir(parents=True)
    extra = "service: ./service.py\n" if service else ""
    (directory / SKILL_FILE).write_text(_SKILL_MD.format(name=name, extra=extra), "utf-8")
    if service:
        (directory / "service.py").write_text(_SERVICE.format(name=name), "utf-8")
    return directory


def plugin_package(root: Path, name: str) -> Path:
    """A pip-installable plugin skill ``root/name``: pyproject.toml with the
    ``aos.skills`` entry point, the module with its SKILL.md inside, a test."""
    module = name.replace("-", "_")
    project = root / name
    (project / module).mkdir(parents=True)
    (project / "tests").mkdir()
    values = {"name": name, "module": module, "kernel": KERNEL_REQUIREMENT}
    (project / "pyproject.toml").write_text(_PYPROJECT.format(**values), "utf-8")
    (project / "README.md").write_text(_README.format(**values), "utf-8")
    (project / module / "__init__.py").write_text(_PLUGIN.format(**values), "utf-8")
    (project / module / SKILL_FILE).write_text(_SKILL_MD.format(name=name, extra=""), "utf-8")
    (project / "tests" / f"test_{module}.py").write_text(_TEST.format(**values), "utf-8")
    return project
