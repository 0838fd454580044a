"""Our distributions, as a user gets them: wheels of the kernel (``aos-kernel``),
the SDK (``aos-skill-sdk``) and the guard plugin (``aos-skill-guard``), installed
into a fresh virtual environment with ``pip --no-index --find-links`` (so nothing
can come from a package index, where the old names belonged to strangers)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO

from aos.testing import Reply, ScriptedLLM

OURS = {
    "aos-skill-sdk": REPO / "sdk" / "python",
    "aos-kernel": REPO,
    "aos-skill-guard": REPO / "plugins" / "aos-skill-guard",
}


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=600,
        env={**env, "PATH": "/usr/bin:/bin"} if env else None, cwd=cwd, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_wheels_install_into_a_fresh_environment_and_guard(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip"]
    ours, found = tmp_path / "ours", tmp_path / "found"
    for source in OURS.values():  # built here, offline (hatchling is in the dev extra)
        run(*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", ours, source)
    assert sorted(p.name.split("-")[0] for p in ours.iterdir()) == [
        "aos_kernel", "aos_skill_guard", "aos_skill_sdk",
    ]  # fmt: skip
    # their third-party dependencies, from wherever this environment's pip finds them
    run(*pip, "wheel", "--quiet", "--find-links", ours, "-w", found, *OURS, "pytest")
    venv = tmp_path / "env"
    home = {"AOS_HOME": str(tmp_path / "home")}
    run(sys.executable, "-m", "venv", venv)
    run(
        venv / "bin" / "pip",
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        found,
        "aos-skill-guard",
    )  # fmt: skip  (the kernel and the SDK come as its dependencies)
    installed = json.loads(run(venv / "bin" / "pip", "list", "--format", "json"))
    assert {p["name"] for p in installed} >= set(OURS)
    requires = run(
        venv / "bin" / "python", "-c",
        "import importlib.metadata as m; print(m.requires('aos-skill-guard'))",
    )  # fmt: skip
    assert requires.strip() == "['aos-kernel<0.2,>=0.1']"
    hooks = json.loads(run(venv / "bin" / "aos", "hooks", "--json", env=home))
    [before] = [h for h in hooks["hooks"] if h["hook"] == "tool.before"]
    assert "aos-skill-guard" in [i["owner"] for i in before["implementations"]]
    listed = json.loads(run(venv / "bin" / "aos", "plugins", "--json", env=home))
    [guard] = [p for p in listed if p["name"] == "aos-skill-guard"]
    assert guard == {
        "name": "aos-skill-guard",
        "distribution": "aos-skill-guard",
        "version": "0.1.0",
        "entry_point": "aos_skill_guard",
        "hooks": ["tool.before"],
        "error": None,
    }
    assert {p["distribution"] for p in listed if p["name"] != "aos-skill-guard"} == {"aos-kernel"}

    # a plugin skill as `aos skill new --plugin` scaffolds it: built, installed the
    # same way, listed, and its own test passes against the installed kernel
    run(
        venv / "bin" / "aos",
        "skill",
        "new",
        "aos-skill-demo",
        "--plugin",
        "--dir",
        tmp_path,
        env=home,
    )
    demo = tmp_path / "aos-skill-demo"
    pyproject = tomllib.loads((demo / "pyproject.toml").read_text())
    assert pyproject["project"]["dependencies"] == ["aos-kernel>=0.1,<0.2"]
    run(*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", found, demo)
    run(venv / "bin" / "pip", "install", "--quiet", "--no-index", "--find-links", found,
        "aos-skill-demo", "pytest")  # fmt: skip
    listed = json.loads(run(venv / "bin" / "aos", "plugins", "--json", env=home))
    [scaffolded] = [p for p in listed if p["name"] == "aos-skill-demo"]
    assert (scaffolded["distribution"], scaffolded["hooks"]) == ("aos-skill-demo", ["tool.before"])
    run(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", demo / "tests",
        env=home)  # fmt: skip

    # a harness as `aos harness new` scaffolds it: installed the same way, listed,
    # and once used, the next dispatch runs with its skills and model
    run(venv / "bin" / "aos", "harness", "new", "demo-harness", "--dir", tmp_path, env=home)
    module = tmp_path / "demo-harness" / "demo_harness" / "__init__.py"
    module.write_text(
        module.read_text()
        .replace('"deepseek/deepseek-v4.1-flash"', '"vendor/harnessed"')
        .replace(
            '"default_skills": ["aos-context", "aos-skill"]', '"default_skills": ["aos-context"]'
        )
    )
    run(*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", found,
        tmp_path / "demo-harness")  # fmt: skip
    run(venv / "bin" / "pip", "install", "--quiet", "--no-index", "--find-links", found,
        "demo-harness")  # fmt: skip
    harnesses = json.loads(run(venv / "bin" / "aos", "harness", "list", "--json", env=home))
    assert [(h["name"], h["distribution"], h["error"]) for h in harnesses] == [
        ("demo-harness", "demo-harness", None), ("standard", "aos-kernel", None),
    ]  # fmt: skip
    project = tmp_path / "project"
    project.mkdir()
    with ScriptedLLM(Reply.text("hello from the harness")) as llm:
        node = {**home, "OPENROUTER_BASE_URL": llm.base_url, "AOS_SANDBOX": "off"}
        used = json.loads(run(venv / "bin" / "aos", "harness", "use", "demo-harness", "--json",
                              cwd=project, env=node))  # fmt: skip
        assert used == {
            "harness": "demo-harness",
            "file": str(project / "aoscb.json"),
            "removed": [],
        }
        settings = json.loads(run(venv / "bin" / "aos", "doctor", "--json", cwd=project, env=node))[
            "settings"
        ]
        assert settings["default_skills"] == {
            "value": ["aos-context"],
            "source": "harness demo-harness",
        }
        answer = run(venv / "bin" / "aos", "run", "hi", cwd=project, env=node)
        assert answer.strip() == "hello from the harness"
        assert llm.requests[0].body["model"] == "vendor/harnessed"
        system = llm.requests[0].body["messages"][0]["content"]
        listed_skills = [line for line in system.splitlines() if line.startswith("aos-")]
        assert listed_skills == ["aos-context"]  # the harness's default skills, no others
