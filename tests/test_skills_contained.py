"""Skills contained: one unreadable, huge or crowded skill directory is that skill
broken, with its reason; everything else runs, and hot reload goes on."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import anyio
import pytest
from aos_sdk import blocking
from test_skills import AOS, write_skill

from aos.paths import Paths
from aos.skills.manifest import MAX_SKILL_MD
from aos.skills.registry import MAX_SKILL_FILES, Root, SkillEvent, SkillRegistry

pytestmark = pytest.mark.anyio

UNPRIVILEGED = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []
"""As root, file modes bind only without capabilities: commands run without them."""


def test_a_huge_or_crowded_skill_is_broken_and_never_read_whole(tmp_path: Path) -> None:
    root = tmp_path / "skills"
    write_skill(root, "fine")
    write_skill(root, "huge", body="x" * MAX_SKILL_MD)
    crowded = write_skill(root, "crowded")
    for n in range(MAX_SKILL_FILES + 1):
        (crowded / f"f{n}").touch()
    registry = SkillRegistry([Root("configured", root)])
    registry.scan()
    statuses = {s.name: (s.status, s.reason) for s in registry.all()}
    assert statuses["fine"] == ("active", "")
    assert statuses["huge"][0] == "broken"
    assert "over 1 MiB" in statuses["huge"][1]
    assert statuses["crowded"] == (
        "broken",
        f"{crowded}: it holds over {MAX_SKILL_FILES} files: a skill is never read whole",
    )


async def test_the_watcher_is_restarted_after_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "skills"
    root.mkdir()
    registry = SkillRegistry([Root("configured", root)])
    registry.scan()
    refresh, failed = registry.refresh, []

    def fails_once(paths: object) -> list[SkillEvent]:
        if not failed:
            failed.append(True)
            raise RuntimeError("a bug in reading a change")
        return refresh(paths)  # type: ignore[arg-type]

    registry.refresh = fails_once  # type: ignore[method-assign]
    started, stop = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: registry.watch(started=started, stop=stop))
        await started.wait()
        await anyio.sleep(0.3)
        write_skill(root, "first")  # its change meets the failure: read by the rescan
        with anyio.fail_after(15):
            while registry.get("first") is None:  # noqa: ASYNC110 - the watcher's own task
                await anyio.sleep(0.05)
        write_skill(root, "second")  # the restarted watcher sees this one
        with anyio.fail_after(15):
            while registry.get("second") is None:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        stop.set()
    assert failed
    assert "the skill watcher failed; it starts again in 1 s" in caplog.text


def aos(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    env = {**clean, "AOS_HOME": str(cwd / "home"), "AOS_SANDBOX": "off"}
    return subprocess.run(
        [*UNPRIVILEGED, AOS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def skills_of(cwd: Path) -> dict[str, dict[str, str]]:
    """The running daemon's skills (``skill.list``: its registry, hot-reloaded)."""
    socket = Paths.resolve(cwd / "home").runtime_dir / "aos.sock"
    listed = blocking.call("skill.list", {}, socket=socket, token="")
    return {s["name"]: s for s in listed if s["root"] == "configured"}


def test_an_unreadable_skill_directory_breaks_only_itself(tmp_path: Path) -> None:
    """Mode 000 at start: the daemon starts. Appearing at run time: status and
    skill list answer, and edits to other skills still take effect."""
    root = tmp_path / "skills"
    write_skill(root, "good", "First.")
    locked = write_skill(root, "locked")
    locked.chmod(0)
    try:
        started = aos("start", cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        try:
            found = skills_of(tmp_path)
            assert found["good"]["status"] == "active"
            assert found["locked"]["status"] == "broken"
            assert found["locked"]["reason"] == "cannot read the skill directory: Permission denied"
            later = write_skill(root, "later")
            later.chmod(0)
            write_skill(root, "good", "Second.")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                found = skills_of(tmp_path)
                if found["good"]["description"] == "Second." and "later" in found:
                    break
                time.sleep(0.2)
            assert found["good"]["description"] == "Second."
            assert found["later"]["status"] == "broken"
            status = aos("status", cwd=tmp_path)
            assert status.returncode == 0, status.stderr
        finally:
            aos("stop", cwd=tmp_path)
    finally:
        for path in root.iterdir():
            path.chmod(0o755)
