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

_SERVICE_JS = """// @ts-check
// The service face of {name}: the hooks it implements (docs/specs/aos-service.md),
// with the TypeScript SDK (npm aos-skill-sdk). The daemon runs it with `node`.
import {{ defineService, reject }} from "aos-skill-sdk";

defineService({{
  hooks: {{
    "tool.before": (input, output) => {{
      // Return nothing to let the call through, a changed output, or reject("why").
      if (String(output.args?.command ?? "").includes("rm -rf /")) return reject("blocked: rm -rf /");
    }},
  }},
}});
"""

_PACKAGE_JSON = """{{
  "name": "{name}",
  "private": true,
  "type": "module",
  "dependencies": {{ "aos-skill-sdk": "^0.1.0" }}
}}
"""

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

from aos import hookimpl, policy

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

An AgentOS {what}. Install it into the environment of the `aos` node:

```sh
{develop}
python -m build                      # a wheel and an sdist in dist/
```

See docs/skills/publishing.md in the AgentOS repository.
"""


_HARNESS_PYPROJECT = """[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "0.1.0"
description = "An AgentOS harness: describe what {name} is for"
readme = "README.md"
requires-python = ">=3.11"
# the kernel, and the packages of the skills the harness brings
dependencies = ["{kernel}"]

# The entry point's name is the harness's name (aos harness use {name}).
[project.entry-points."aos.harnesses"]
{name} = "{module}:HARNESS"

[tool.hatch.build.targets.wheel]
packages = ["{module}"]
"""

_HARNESS = '''"""{name}: an AgentOS harness, the skills it brings and the node settings
that make them one product (docs/skills/publishing.md, "Harnesses")."""

HARNESS = {{
    "description": "Describe what {name} is for",
    "skills": ["aos-context", "aos-skill"],
    "aoscb": {{
        "default_skills": ["aos-context", "aos-skill"],
        "model": "deepseek/deepseek-v4.1-flash",
        "limits": {{"max_steps": 30}},
    }},
}}
'''


def _write(project: Path, files: dict[str, str]) -> Path:
    """``project`` made anew with ``files`` (relative path -> text)."""
    project.mkdir(parents=True)
    for relative, text in files.items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return project


SERVICE_LANGS = ("python", "ts")


def skill_dir(root: Path, name: str, *, service: bool, lang: str = "python") -> Path:
    """A skill directory ``root/name`` with its SKILL.md, and with ``service`` a
    service face: service.py (``python``), or service.mjs with its package.json
    (``ts``: the TypeScript SDK, type-checked by editors through ``@ts-check``)."""
    program = {"python": "service.py", "ts": "service.mjs"}[lang]
    extra = f"service: ./{program}\n" if service else ""
    files = {SKILL_FILE: _SKILL_MD.format(name=name, extra=extra)}
    if service and lang == "python":
        files[program] = _SERVICE.format(name=name)
    elif service:
        files[program] = _SERVICE_JS.format(name=name)
        files["package.json"] = _PACKAGE_JSON.format(name=name)
    return _write(root / name, files)


def plugin_package(root: Path, name: str) -> Path:
    """A pip-installable plugin skill ``root/name``: pyproject.toml with the
    ``aos.skills`` entry point, the module with its SKILL.md inside, a test."""
    module = name.replace("-", "_")
    values = {"name": name, "module": module, "kernel": KERNEL_REQUIREMENT}
    develop = "pip install -e '.[test]' && pytest   # develop and test it"
    return _write(
        root / name,
        {
            "pyproject.toml": _PYPROJECT.format(**values),
            "README.md": _README.format(name=name, what="plugin skill", develop=develop),
            f"{module}/__init__.py": _PLUGIN.format(**values),
            f"{module}/{SKILL_FILE}": _SKILL_MD.format(name=name, extra=""),
            f"tests/test_{module}.py": _TEST.format(**values),
        },
    )


def harness_package(root: Path, name: str) -> Path:
    """A pip-installable harness ``root/name``: pyproject.toml with the
    ``aos.harnesses`` entry point, and the module that declares it."""
    module = name.replace("-", "_")
    values = {"name": name, "module": module, "kernel": KERNEL_REQUIREMENT}
    develop = f"pip install -e . && aos harness use {name}"
    return _write(
        root / name,
        {
            "pyproject.toml": _HARNESS_PYPROJECT.format(**values),
            "README.md": _README.format(name=name, what="harness", develop=develop),
            f"{module}/__init__.py": _HARNESS.format(**values),
        },
    )
