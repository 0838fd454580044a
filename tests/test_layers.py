"""The layer rules lint-imports cannot see: plugins/ (distributions of their
own, not installed in the kernel's environment) and drop-in skills (skills/,
no package) are read here. They may import the standard library, ``aos_sdk``,
the plugin surface ``aos`` and their own package, nothing deeper
(docs/architecture.md#layers)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = frozenset(sys.stdlib_module_names) | {"aos_sdk"}
"""Top-level packages a skill script may import besides ``aos`` itself."""


def imported(source: str) -> list[tuple[str, int]]:
    """``(module, line)`` of every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def forbidden_imports(source: str, own: str | None = None) -> list[str]:
    """``module (line N)`` for each import outside the stdlib, aos_sdk, ``aos`` and
    the file's ``own`` package."""
    return [
        f"{name} (line {line})"
        for name, line in imported(source)
        if not (name == "aos" or (top := name.split(".")[0]) == own or top in ALLOWED)
    ]


def skill_scripts() -> list[Path]:
    return sorted(
        [*ROOT.glob("skills/**/*.py"), *ROOT.glob("plugins/*/*/**/*.py")],
        key=str,
    )


def own_package(path: Path) -> str | None:
    """A plugin's own top-level package (``plugins/DIST/PACKAGE/...``)."""
    parts = path.relative_to(ROOT).parts
    return parts[2] if parts[0] == "plugins" and len(parts) > 3 else None


@pytest.mark.parametrize("path", skill_scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_skill_files_import_only_the_plugin_surface(path: Path) -> None:
    assert forbidden_imports(path.read_text(), own_package(path)) == [], (
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
    found = [str(p.relative_to(ROOT)) for p in skill_scripts()]
    assert "skills/my-guard/service.py" in found
    assert "plugins/aos-skill-guard/aos_skill_guard/__init__.py" in found


def test_the_kernel_imports_no_plugin() -> None:
    plugins = {p.parent.name for p in ROOT.glob("plugins/*/*/__init__.py")}
    assert plugins, "no plugin package found under plugins/"
    offending = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "aos").rglob("*.py"))
        for name, _ in imported(path.read_text())
        if name.split(".")[0] in plugins
    ]
    assert offending == []
