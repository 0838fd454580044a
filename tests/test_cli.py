"""The ``aos`` command line, run as a user runs it: a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import aos
from aos.store.base import load_migrations

AOS = str(Path(sys.executable).with_name("aos"))
LATEST = load_migrations("sqlite")[-1].version


def run_aos(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    return subprocess.run(
        [AOS, *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_version(tmp_path: Path) -> None:
    result = run_aos("--version", cwd=tmp_path, env={})
    assert result.returncode == 0
    assert result.stdout.strip() == f"aos, version {aos.__version__}"


def test_doctor_json_defaults_to_sqlite_under_platformdirs(tmp_path: Path) -> None:
    data_home = tmp_path / "xdg-data"
    result = run_aos("doctor", "--json", cwd=tmp_path, env={"XDG_DATA_HOME": str(data_home)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["database"]["backend"] == "sqlite"
    assert report["database"]["url"] == f"sqlite://{data_home / 'aos' / 'aos.db'}"
    assert report["database"]["schema_version"] == LATEST
    assert report["paths"]["data_dir"] == str(data_home / "aos")
    assert report["settings"]["db_url"]["source"] == "default"
    assert (data_home / "aos" / "aos.db").is_file()


def test_doctor_reports_sources(tmp_path: Path) -> None:
    (tmp_path / "aoscb.json").write_text('{"model": "from-file"}')
    result = run_aos(
        "--home", str(tmp_path / "h"), "doctor", "--json",
        cwd=tmp_path, env={"AOS_MAX_STEPS": "12"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert settings["model"] == {
        "value": "from-file",
        "source": f"aoscb.json ({tmp_path / 'aoscb.json'})",
    }
    assert settings["limits.max_steps"] == {"value": 12, "source": "environment AOS_MAX_STEPS"}
    assert settings["home"]["source"] == "flag --home"


def test_doctor_human_output(tmp_path: Path) -> None:
    result = run_aos("doctor", cwd=tmp_path, env={"AOS_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"schema version {LATEST}" in lines
    assert "backend sqlite" in lines
    assert result.stdout.rstrip().endswith("ok: yes")


@pytest.mark.postgres
def test_doctor_on_postgres(pg_url: str, tmp_path: Path) -> None:
    result = run_aos(
        "doctor", "--json", cwd=tmp_path, env={"AOS_DB_URL": pg_url, "AOS_HOME": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    database = json.loads(result.stdout)["database"]
    assert database["backend"] == "postgres"
    assert database["schema_version"] == LATEST


@pytest.mark.parametrize("as_json", [False, True])
def test_doctor_unreachable_database_is_one_line(tmp_path: Path, as_json: bool) -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/none"
    args = ["doctor", "--json"] if as_json else ["doctor"]
    result = run_aos(*args, cwd=tmp_path, env={"AOS_DB_URL": url, "AOS_HOME": str(tmp_path)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "aos: database unavailable: cannot connect to postgresql://postgres:***@127.0.0.1:1/none"
    )
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr + result.stdout
    if as_json:
        assert json.loads(result.stdout)["ok"] is False


def test_bad_configuration_is_one_line(tmp_path: Path) -> None:
    result = run_aos(
        "doctor", cwd=tmp_path, env={"AOS_HOME": str(tmp_path), "AOS_MAX_STEPS": "many"}
    )
    assert result.returncode == 2  # a usage error: the input is wrong
    assert result.stderr.strip() == (
        "Error: configuration error: invalid setting limits.max_steps "
        "(from environment AOS_MAX_STEPS): Expected `int`, got `str`"
    )
