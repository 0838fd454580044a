"""One daemon per project: a directory with its own aoscb.json gets its own node
(database, log, pidfile, sockets), and aos refuses to dispatch through a daemon
that serves another directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_main_job_cli import AOS

from aos.config import load_config
from aos.testing import free_port

PROJECT_AOSCB = {"default_skills": ["aos-context"], "model": "test-model"}


@pytest.fixture
def xdg() -> Iterator[dict[str, str]]:
    """platformdirs' directories in a short temporary tree (no AOS_HOME)."""
    base = Path(tempfile.mkdtemp(prefix="aos-x", dir="/tmp"))
    dirs = {f"XDG_{kind}_HOME": str(base / kind.lower()) for kind in ("CONFIG", "DATA", "STATE")}
    (base / "run").mkdir(mode=0o700)
    dirs["XDG_RUNTIME_DIR"] = str(base / "run")
    yield dirs
    shutil.rmtree(base, ignore_errors=True)


def project(root: Path, name: str) -> Path:
    directory = root / name
    (directory / "skills").mkdir(parents=True)
    (directory / "aoscb.json").write_text(json.dumps(PROJECT_AOSCB))
    return directory


def test_each_project_has_a_node_of_its_own(
    tmp_path: Path, xdg: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in xdg.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AOS_HOME", raising=False)
    one, two = project(tmp_path, "app"), project(tmp_path / "other", "app")  # same name
    first, second = (load_config(environ={}, cwd=d).paths for d in (one, two))
    for kind in ("data_dir", "state_dir", "runtime_dir"):
        assert getattr(first, kind) != getattr(second, kind), kind
    assert first.sqlite_file.parent == first.data_dir
    assert first.config_dir == second.config_dir and first.skills_dir == second.skills_dir
    assert len(str(first.runtime_dir / "services" / "aos-frontend.sock")) < 108
    nowhere = tmp_path / "no-project"
    nowhere.mkdir()
    user_level = load_config(environ={}, cwd=nowhere).paths
    assert user_level.data_dir == Path(xdg["XDG_DATA_HOME"]) / "aos"  # no aoscb.json: the user's
    home = load_config(environ={"AOS_HOME": str(tmp_path / "h")}, cwd=one).paths
    assert home.data_dir == tmp_path / "h" / "data"  # AOS_HOME still decides


def run_aos(
    cwd: Path, env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AOS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AOS_", "OPENROUTER_"))}
    return {**keep, "OPENROUTER_BASE_URL": "http://127.0.0.1:9/v1", **extra}


def test_two_checkouts_two_daemons(tmp_path: Path, xdg: dict[str, str]) -> None:
    env = clean_env(**xdg)
    one, two = project(tmp_path, "one"), project(tmp_path, "two")
    try:
        for directory in (one, two):
            started = run_aos(directory, env, "start", "--json")
            assert started.returncode == 0, started.stderr
        reports = [json.loads(run_aos(d, env, "status", "--json").stdout) for d in (one, two)]
        assert [r["project"] for r in reports] == [str(one), str(two)]
        assert reports[0]["pid"] != reports[1]["pid"]
        assert reports[0]["socket"] != reports[1]["socket"]
    finally:
        for directory in (one, two):
            run_aos(directory, env, "stop")


def test_a_daemon_serving_another_directory_is_not_used(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
    env = clean_env(AOS_HOME=str(home), AOS_MODEL="m", AOS_FRONTEND_PORT=str(free_port()))
    one, two = tmp_path / "one", tmp_path / "two"
    for directory in (one, two):
        (directory / "skills").mkdir(parents=True)
    try:
        assert run_aos(one, env, "start").returncode == 0
        refused = run_aos(two, env, "run", "hi")
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            f"Error: the daemon at {home / 'run' / 'aos.sock'} serves {one}, not this directory "
            f"({two}): run aos there, stop that daemon (`aos stop`), or give this project a home "
            "of its own (an aoscb.json here, or AOS_HOME)"
        )
        assert json.loads(run_aos(two, env, "session", "list", "--json").stdout) == []
    finally:
        run_aos(one, env, "stop")
        shutil.rmtree(home, ignore_errors=True)
