"""The layer rule lint-imports cannot see: drop-in skills' Python files (skills/,
the standard skills' scripts) are no package, so their imports are read here.
They may import the standard library, ``aos_sdk`` and the plugin surface
``aos``, nothing deeper (docs/architecture.md#layers)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = frozenset(sys.stdlib_module_names) | {"aos_sdk", "msgpack"}
"""Top-level packages a skill script may import besides ``aos`` itself."""


def forbidden_imports(source: str) -> list[str]:
    """``module (line N)`` for each import outside the stdlib, aos_sdk and ``aos``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if name == "aos" or (top in ALLOWED and top != "aos"):
                continue
            found.append(f"{name} (line {node.lineno})")
    return found


def skill_scripts() -> list[Path]:
    return sorted(
        [*ROOT.glob("skills/**/*.py"), *ROOT.glob("aos_stdskills/*/scripts/**/*.py")],
        key=str,
    )


@pytest.mark.parametrize("path", skill_scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_skill_files_import_only_the_plugin_surface(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == [], (
        f"{path.relative_to(ROOT)} imports past the plugin surface: use `aos` or `aos_sdk`"
    )


def test_the_check_names_what_it_refuses() -> None:
    source = "import json\nfrom aos import hookimpl\nfrom aos_sdk import Client\n"
    assert forbidden_imports(source) == []
    bad = "from aos.kernel import Kernel\nimport aos.store\nimport requests\n"
    assert forbidden_imports(bad) == [
        "aos.kernel (line 1)",
        "aos.store (line 2)",
        "requests (line 3)",
    ]


def test_there_are_skill_files_to_check() -> None:
    assert any(p.match("skills/my-guard/service.py") for p in skill_scripts())
