"""In-process plugins from the ``aos.skills`` entry point group, installed for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
AOS = str(Path(sys.executable).with_name("aos"))


@pytest.fixture(scope="module")
def guard_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install ./plugins/aos-skill-guard`` into a directory of its own."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(REPO / "plugins" / "aos-skill-guard")],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return site


def aos_hooks(tmp_path: Path, **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    result = subprocess.run(
        [AOS, "hooks", "--json"],
        cwd=tmp_path,
        env={**clean, "AOS_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def owners(report: dict[str, object], hook: str) -> list[str]:
    hooks = report["hooks"]
    assert isinstance(hooks, list)
    [entry] = [h for h in hooks if h["hook"] == hook]
    return [impl["owner"] for impl in entry["implementations"]]


def test_installed_plugin_appears_in_aos_hooks(guard_site: Path, tmp_path: Path) -> None:
    installed = aos_hooks(tmp_path, PYTHONPATH=str(guard_site))
    assert "aos-skill-guard" in owners(installed, "tool.before")
    [impl] = [
        i
        for h in installed["hooks"]  # type: ignore[union-attr]
        if h["hook"] == "tool.before"
        for i in h["implementations"]
        if i["owner"] == "aos-skill-guard"
    ]
    assert impl["where"] == "in-process"
    assert impl["failure"] == "fail-closed"
    # without the distribution on the path (uninstalled), it is gone
    assert "aos-skill-guard" not in owners(aos_hooks(tmp_path), "tool.before")


def test_aos_load_plugins_restricts_entry_points(guard_site: Path, tmp_path: Path) -> None:
    only_other = aos_hooks(tmp_path, PYTHONPATH=str(guard_site), AOS_LOAD_PLUGINS="something-else")
    assert "aos-skill-guard" not in owners(only_other, "tool.before")
    named = aos_hooks(tmp_path, PYTHONPATH=str(guard_site), AOS_LOAD_PLUGINS="aos-skill-guard")
    assert "aos-skill-guard" in owners(named, "tool.before")


def test_broken_plugin_is_reported_and_others_load(guard_site: Path, tmp_path: Path) -> None:
    report = aos_hooks(tmp_path, PYTHONPATH=str(guard_site), AOS_SKILL_GUARD_PATTERNS="not json")
    assert "aos-skill-guard" not in owners(report, "tool.before")
    [error] = report["plugin_errors"]  # type: ignore[misc]
    assert error["plugin"] == "aos-skill-guard"
    assert "AOS_SKILL_GUARD_PATTERNS" in error["error"]
