"""Configuration: precedence, sources, paths and clear errors."""

from __future__ import annotations

import importlib.util
import json
import re
from importlib.metadata import EntryPoint
from pathlib import Path

import msgspec
import pytest
from conftest import kernel_with_model

from aos import harness
from aos.aoscb import AOSCB
from aos.config import SETTINGS, ConfigError, load_config, mask_url
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

REPO = Path(__file__).resolve().parent.parent


def write_aoscb(directory: Path, data: object) -> Path:
    path = directory / "aoscb.json"
    path.write_text(json.dumps(data))
    return path


def test_defaults_without_any_configuration(tmp_path: Path) -> None:
    config = load_config(environ={"AOS_HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert config.aoscb == AOSCB()
    assert config.aoscb_file is None and config.env_file is None
    assert config.db_url == f"sqlite://{tmp_path / 'home' / 'data' / 'aos.db'}"
    assert config.sources["model"] == "default"
    assert config.sources["home"] == "environment AOS_HOME"


def test_repository_aoscb_json_is_the_builtin_defaults() -> None:
    """The shipped aoscb.json documents the defaults; they must not drift apart."""
    assert msgspec.json.decode((REPO / "aoscb.json").read_bytes(), type=AOSCB) == AOSCB()


def test_precedence_flag_env_dotenv_file_default(tmp_path: Path) -> None:
    write_aoscb(tmp_path, {"model": "from-file", "limits": {"max_steps": 7, "hook_timeout": 2}})
    (tmp_path / ".env").write_text("AOS_MODEL=from-dotenv\nAOS_MAX_STEPS=8\nAOS_TOOL_TIMEOUT=9\n")
    env = {"AOS_HOME": str(tmp_path / "h"), "AOS_MODEL": "from-env", "AOS_MAX_STEPS": "9"}

    config = load_config(flags={"model": "from-flag"}, environ=env, cwd=tmp_path)
    assert config.aoscb.model == "from-flag"
    assert config.sources["model"] == "flag --model"
    assert config.aoscb.limits.max_steps == 9
    assert config.sources["limits.max_steps"] == "environment AOS_MAX_STEPS"
    assert config.aoscb.limits.tool_timeout == 9.0
    assert config.sources["limits.tool_timeout"].startswith(".env AOS_TOOL_TIMEOUT (")
    assert config.aoscb.limits.hook_timeout == 2.0
    assert config.sources["limits.hook_timeout"] == f"aoscb.json ({tmp_path / 'aoscb.json'})"
    assert config.aoscb.limits.context_budget == AOSCB().limits.context_budget
    assert config.sources["limits.context_budget"] == "default"

    without_flag = load_config(environ=env, cwd=tmp_path)
    assert without_flag.aoscb.model == "from-env"
    without_env = load_config(environ={"AOS_HOME": str(tmp_path / "h")}, cwd=tmp_path)
    assert without_env.aoscb.model == "from-dotenv"
    (tmp_path / ".env").unlink()
    only_file = load_config(environ={"AOS_HOME": str(tmp_path / "h")}, cwd=tmp_path)
    assert only_file.aoscb.model == "from-file"


def test_list_settings_from_environment(tmp_path: Path) -> None:
    config = load_config(
        environ={"AOS_DEFAULT_SKILLS": "aos-context, my-guard", "AOS_SKILL_ROOTS": "a,b"},
        cwd=tmp_path,
    )
    assert config.aoscb.default_skills == ["aos-context", "my-guard"]
    assert config.skill_root_paths == [tmp_path / "a", tmp_path / "b"]


def test_skill_roots_are_relative_to_the_aoscb_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    path = write_aoscb(project, {"skill_roots": ["skills", "/opt/skills"]})
    config = load_config(flags={"config": str(path)}, environ={}, cwd=tmp_path)
    assert config.skill_root_paths == [project / "skills", Path("/opt/skills")]


def test_aos_home_moves_every_path(tmp_path: Path) -> None:
    config = load_config(environ={"AOS_HOME": str(tmp_path)}, cwd=tmp_path)
    paths = config.paths
    for directory in (paths.data_dir, paths.state_dir, paths.runtime_dir, paths.skills_dir):
        assert directory.is_relative_to(tmp_path)
    assert paths.config_dir == tmp_path


def test_platformdirs_paths_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    config = load_config(environ={}, cwd=tmp_path)
    assert config.paths.data_dir == tmp_path / "xdg-data" / "aos"
    assert config.db_url == f"sqlite://{tmp_path / 'xdg-data' / 'aos' / 'aos.db'}"


def test_user_config_dir_aoscb_is_found(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    write_aoscb(home, {"model": "user-level"})
    config = load_config(environ={"AOS_HOME": str(home)}, cwd=tmp_path)
    assert config.aoscb.model == "user-level"
    write_aoscb(tmp_path, {"model": "project-level"})  # the working directory wins
    assert load_config(environ={"AOS_HOME": str(home)}, cwd=tmp_path).aoscb.model == "project-level"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"limits": {"max_steps": "ten"}}, "Expected `int`, got `str` - at `$.limits.max_steps`"),
        ({"limits": {"max_steps": 0}}, "Expected `int` >= 1 - at `$.limits.max_steps`"),
        ({"modle": "typo"}, "Object contains unknown field `modle`"),
        ({"default_skills": "aos-context"}, "Expected `array`, got `str` - at `$.default_skills`"),
        ([1, 2], "Expected `object`, got `array`"),
    ],
)
def test_bad_aoscb_names_file_and_field(tmp_path: Path, data: object, message: str) -> None:
    path = write_aoscb(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, cwd=tmp_path)
    assert str(info.value) == f"{path}: {message}"


def test_aoscb_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "aoscb.json").write_text("{nope")
    with pytest.raises(ConfigError, match=r"aoscb.json: not valid JSON"):
        load_config(environ={}, cwd=tmp_path)


def test_bad_environment_value_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"AOS_TOOL_TIMEOUT": "soon"}, cwd=tmp_path)
    assert str(info.value) == (
        "invalid setting limits.tool_timeout (from environment AOS_TOOL_TIMEOUT): "
        "Expected `float`, got `str`"
    )


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={"AOS_CONFIG": str(tmp_path / "missing.json")}, cwd=tmp_path)


def test_getenv_falls_back_to_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("SOME_API_KEY=from-dotenv\n")
    assert load_config(environ={}, cwd=tmp_path).getenv("SOME_API_KEY") == "from-dotenv"
    config = load_config(environ={"SOME_API_KEY": "from-env"}, cwd=tmp_path)
    assert config.getenv("SOME_API_KEY") == "from-env"


def test_mask_url() -> None:
    assert mask_url("postgresql://aos:secret@db:5432/aos") == "postgresql://aos:***@db:5432/aos"
    assert (
        mask_url("postgresql://postgres@127.0.0.1/test") == "postgresql://postgres@127.0.0.1/test"
    )
    assert mask_url("sqlite:///tmp/aos.db") == "sqlite:///tmp/aos.db"


def _table_variables(doc: str, heading: str, column: int) -> set[str]:
    """The `VARIABLE` names in ``column`` of the table under ``## heading``."""
    section = doc.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| `")]
    return {row[column].strip().strip("`") for row in rows}


def test_env_example_lists_every_variable_the_docs_name() -> None:
    """.env.example is complete: every setting's variable and every other variable
    of docs/specs/aos-deployment.md, and nothing else."""
    doc = (REPO / "docs" / "specs" / "aos-deployment.md").read_text()
    documented = _table_variables(doc, "Settings", 2) | _table_variables(
        doc, "Other environment variables", 1
    )
    assert {s.env for s in SETTINGS} <= documented
    example = (REPO / ".env.example").read_text()
    listed = set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", example, re.M))
    assert listed == documented


def test_pixi_tasks_mirror_the_nox_sessions() -> None:
    """Each nox session has a pixi task of its name running the same commands."""
    import tomllib

    spec = importlib.util.spec_from_file_location("noxfile", REPO / "noxfile.py")
    assert spec is not None and spec.loader is not None
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    pixi = tomllib.loads((REPO / "pixi.toml").read_text())
    tasks = {**pixi["tasks"], **pixi["feature"]["bench"]["tasks"]}
    expected = {
        "tests": " ".join(noxfile.TESTS),
        "lint": " && ".join(" ".join(command) for command in noxfile.LINT),
        "typecheck": " ".join(noxfile.TYPECHECK),
        "bench": " ".join(noxfile.BENCH),
        "e2e": " ".join(noxfile.E2E),
    }
    sessions = set(
        re.findall(r"^@nox\.session\ndef (\w+)\(", (REPO / "noxfile.py").read_text(), re.M)
    )
    assert sessions == set(expected)
    assert {name: tasks[name] for name in expected} == expected
    assert {"start", "status", "stop"} <= set(tasks)


# -- harnesses ----------------------------------------------------------------------------------

DEMO_HARNESS = {
    "description": "a test harness",
    "skills": ["aos-context"],
    "aoscb": {
        "model": "vendor/harnessed",
        "default_skills": ["aos-context"],
        "limits": {"max_steps": 7},
        "prompt": "Answer in French.",
    },
}
BAD_HARNESS = {"aoscb": {"db_url": "sqlite:///elsewhere.db"}}


@pytest.fixture
def harnesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two harnesses as installed entry points (this module's objects)."""
    found = {
        name: EntryPoint(name, f"test_config:{attr}", harness.ENTRY_POINT_GROUP)
        for name, attr in (("demo", "DEMO_HARNESS"), ("bad", "BAD_HARNESS"))
    }
    monkeypatch.setattr(harness, "installed", lambda: found)


@pytest.mark.usefixtures("harnesses")
def test_a_harness_gives_what_nothing_more_specific_sets(tmp_path: Path) -> None:
    (tmp_path / "aoscb.json").write_text('{"harness": "demo", "limits": {"max_steps": 9}}')
    config = load_config(environ={"AOS_HOME": str(tmp_path / "h")}, cwd=tmp_path)
    assert (config.aoscb.model, config.aoscb.default_skills) == (
        "vendor/harnessed",
        ["aos-context"],
    )
    assert config.aoscb.limits.max_steps == 9  # aoscb.json's own value wins
    assert config.sources["model"] == config.sources["default_skills"] == "harness demo"
    assert config.sources["limits.max_steps"].startswith("aoscb.json")
    assert config.sources["limits.tool_timeout"] == "default"
    env = {"AOS_HOME": str(tmp_path / "h"), "AOS_MODEL": "vendor/mine"}
    assert load_config(environ=env, cwd=tmp_path).aoscb.model == "vendor/mine"  # env wins


@pytest.mark.usefixtures("harnesses")
@pytest.mark.parametrize(
    ("name", "says"),
    [
        (
            "nope",
            "no harness named 'nope' is installed (installed: bad, demo; see `aos harness list`)",
        ),
        ("bad", "harness bad sets db_url: a harness may set only default_skills, limits."),
    ],
)
def test_a_missing_or_overreaching_harness_is_a_configuration_error(
    tmp_path: Path, name: str, says: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(environ={"AOS_HOME": str(tmp_path), "AOS_HARNESS": name}, cwd=tmp_path)
    assert str(error.value).startswith(says)


@pytest.mark.anyio
@pytest.mark.usefixtures("harnesses")
async def test_a_harness_prompt_reaches_the_system_message(
    tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    """A harness's prompt additions: the node's ``prompt`` setting, after aos-context's own."""
    (tmp_path / "aoscb.json").write_text('{"harness": "demo"}')
    async with kernel_with_model(
        f"sqlite://{tmp_path / 'aos.db'}", tmp_path, scripted_llm
    ) as kernel:
        scripted_llm.add(Reply.text("Bonjour"))
        agent = await kernel.syscall(ADMIN, "agent.create", {"name": "a"})
        session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
        await kernel.syscall(ADMIN, "session.dispatch", {"id": session["id"], "message": "hi"})
    system = scripted_llm.requests[0].body["messages"][0]["content"]
    assert system.startswith("You are an agent running on AgentOS.")
    assert "\n\nAnswer in French." in system
