"""Skill discovery, precedence, plugin skills, the context face, hot reload and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import skills_ref

from aos.kernel import Kernel
from aos.plugins import PluginLoad
from aos.principals import ADMIN
from aos.skills.registry import Root, SkillEvent, SkillRegistry, available_skills_prompt

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "testdata" / "agent-skills"
AOS = str(Path(sys.executable).with_name("aos"))
GUARD_SRC = REPO / "plugins" / "aos-skill-guard"


def write_skill(
    root: Path, name: str, description: str = "Does things.", extra: str = "", body: str = "Body."
) -> Path:
    skill_dir = root / name
    skill_dir.mkdir(parents=True, exist_ok=True)
    (skill_dir / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: {description}\n{extra}---\n{body}\n"
    )
    return skill_dir


def needs_corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the Agent Skills corpus is not at {CORPUS} (it lives in ../shared/testdata)")
    return CORPUS


# -- registry ---------------------------------------------------------------------------------


def test_precedence_shadowing_and_broken(tmp_path: Path) -> None:
    high, low = tmp_path / "high", tmp_path / "low"
    write_skill(high, "pdf", "High pdf.")
    write_skill(low, "pdf", "Low pdf.")
    write_skill(low, "notes")
    broken = low / "broken"
    broken.mkdir()
    (broken / "SKILL.md").write_text("---\nname: broken\n---\nno description\n")
    (low / "not-a-skill").mkdir()  # a folder without SKILL.md is ignored
    registry = SkillRegistry([Root("configured", high), Root("user", low)])
    events = registry.scan()
    assert sorted((e.kind, e.skill.name) for e in events) == [
        ("added", "broken"), ("added", "notes"), ("added", "pdf"),
    ]  # fmt: skip
    pdf = registry.get("pdf")
    assert pdf is not None
    assert (pdf.description, pdf.root, pdf.status) == ("High pdf.", "configured", "active")
    shadowed = [s for s in registry.all() if s.name == "pdf" and s.status == "shadowed"]
    assert [s.root for s in shadowed] == ["user"]
    assert shadowed[0].reason == f"shadowed by {high / 'pdf'} (configured)"
    broken_skill = registry.get("broken")
    assert broken_skill is not None
    assert broken_skill.status == "broken"
    assert broken_skill.reason == f"{broken / 'SKILL.md'}: description: missing (required)"
    assert sorted(s.name for s in registry.active()) == ["notes", "pdf"]


def test_corpus_loads_completely() -> None:
    corpus = needs_corpus()
    registry = SkillRegistry([Root("configured", corpus)])
    registry.scan()
    skills = registry.all()
    assert len(skills) == 12
    assert all(s.status == "active" and s.kind == "context" for s in skills)
    warned = {s.name: s.warnings for s in skills if s.warnings}
    assert list(warned) == ["claude-api"]
    assert warned["claude-api"] == [
        f"{corpus / 'claude-api' / 'SKILL.md'}: description: is 1068 characters; the limit is 1024"
    ]


def test_available_skills_prompt_matches_skills_ref(tmp_path: Path) -> None:
    """skills-ref's rendering, except that quotes are not escaped (no `&#x27;` in the
    system prompt for an apostrophe)."""
    dirs = [
        write_skill(tmp_path, "alpha", 'Reads <xml> & more; don\'t "guess".'),
        write_skill(tmp_path, "beta"),
    ]
    registry = SkillRegistry([Root("configured", tmp_path)])
    registry.scan()
    prompt = available_skills_prompt(registry.active(["alpha", "beta"]))
    assert 'Reads &lt;xml&gt; &amp; more; don\'t "guess".' in prompt
    oracle = skills_ref.to_prompt(dirs).replace("&#x27;", "'").replace("&quot;", '"')
    assert prompt == oracle


def test_plugin_skill_reads_skill_md_beside_its_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(GUARD_SRC))
    load = PluginLoad("aos-skill-guard", "aos_skill_guard", "aos-skill-guard")
    registry = SkillRegistry(
        [Root("configured", tmp_path), Root("plugin"), Root("standard")], [load]
    )
    registry.scan()
    guard = registry.get("aos-skill-guard")
    assert guard is not None
    assert (guard.kind, guard.root, guard.status) == ("plugin", "plugin", "active")
    assert guard.warnings == []  # its name is checked against the entry point, not the folder
    assert "dangerous" in guard.description.lower()
    # a drop-in skill of the same name in a higher root shadows the plugin
    write_skill(tmp_path, "aos-skill-guard", "A local override.")
    registry.scan()
    winner = registry.get("aos-skill-guard")
    assert winner is not None
    assert winner.root == "configured"
    failed = SkillRegistry(
        [Root("plugin")], [PluginLoad("bad", "bad_mod", None, "ImportError: nope")]
    )
    failed.scan()
    bad = failed.get("bad")
    assert bad is not None
    assert (bad.status, bad.reason) == (
        "broken",
        "plugin bad_mod failed to load: ImportError: nope",
    )


# -- kernel: activation and the context face -------------------------------------------------------


@pytest.mark.anyio
async def test_skill_syscalls(kernel: Kernel) -> None:
    root = kernel.config.skill_root_paths[0]
    write_skill(root, "pdf", "Reads PDFs.", extra="hooks:\n  tool.before:\n    timeout: 1.5\n")
    kernel.skills.scan()
    listed = await kernel.syscall(ADMIN, "skill.list")
    assert [s["name"] for s in listed] == ["pdf"]
    detail = await kernel.syscall(ADMIN, "skill.get", {"name": "pdf"})
    assert detail["body"] == "Body."
    assert detail["status"] == "active"
    (root / "pdf" / "SKILL.md").write_text("---\nname: pdf\n---\n")
    reloaded = await kernel.syscall(ADMIN, "skill.reload", {"name": "pdf"})
    assert reloaded["status"] == "broken"
    assert reloaded["reason"].endswith("description: missing (required)")
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": "a"})
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    with pytest.raises(Exception, match="skill pdf is broken"):
        await kernel.syscall(ADMIN, "skill.load", {"name": "pdf", "session_id": session["id"]})
    with pytest.raises(Exception, match="no skill named 'ghost'"):
        await kernel.syscall(ADMIN, "skill.get", {"name": "ghost"})


@pytest.mark.anyio
async def test_skill_md_hook_policy_applies_to_its_plugin(
    kernel: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = kernel.config.skill_root_paths[0]
    write_skill(
        root, "guarded", extra="hooks:\n  tool.before:\n    timeout: 0.25\n    failure: fail-open\n"
    )
    kernel.skills.scan()
    from aos.hookspecs import hookimpl

    class Guard:
        @hookimpl
        def tool_before(self, output: dict[str, object]) -> dict[str, object]:
            return output

    kernel.pm.register(Guard(), name="guarded")
    [impl] = kernel.hooks.impls("tool.before")
    assert (impl.timeout, impl.failure) == (0.25, "fail-open")


# -- hot reload ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_hot_reload_add_edit_break_delete(tmp_path: Path) -> None:
    root = tmp_path / "skills"
    root.mkdir()
    registry = SkillRegistry([Root("configured", root)])
    registry.scan()
    events: list[SkillEvent] = []
    arrived = anyio.Event()

    def on_event(event: SkillEvent) -> None:
        nonlocal arrived
        events.append(event)
        arrived.set()

    registry.subscribe(on_event)

    async def next_event() -> SkillEvent:
        nonlocal arrived
        with anyio.fail_after(10):
            await arrived.wait()
        arrived = anyio.Event()
        latest = events[-1]  # one write may surface as more than one batch of changes
        events.clear()
        return latest

    started, stop = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: registry.watch(started=started, stop=stop))
        await started.wait()
        await anyio.sleep(0.3)  # let the watcher settle

        write_skill(root, "live", "First description.")
        event = await next_event()
        assert (event.kind, event.skill.name, event.skill.status) == ("added", "live", "active")

        write_skill(root, "live", "Second description.")
        event = await next_event()
        assert (event.kind, event.skill.description) == ("changed", "Second description.")

        (root / "live" / "SKILL.md").write_text("---\nname: live\ndescription: [unclosed\n---\n")
        event = await next_event()
        assert (event.kind, event.skill.status) == ("changed", "broken")
        assert "invalid YAML in frontmatter" in event.skill.reason
        live = registry.get("live")
        assert live is not None
        assert live.manifest is None  # the last good version is out of service

        (root / "live" / "SKILL.md").unlink()
        (root / "live").rmdir()
        event = await next_event()
        assert (event.kind, event.skill.name) == ("removed", "live")
        assert registry.get("live") is None
        stop.set()


# -- CLI ------------------------------------------------------------------------------------------


def run_aos(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    return subprocess.run(
        [AOS, *args], cwd=cwd, env={**clean, "AOS_HOME": str(cwd / "home"), **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_cli_skill_list_of_the_corpus(tmp_path: Path) -> None:
    corpus = needs_corpus()
    result = run_aos("skill", "list", "--json", cwd=tmp_path, AOS_SKILL_ROOTS=str(corpus))
    assert result.returncode == 0, result.stderr
    rows = [r for r in json.loads(result.stdout) if r["root"] == "configured"]
    assert len(rows) == 12
    assert {r["status"] for r in rows} == {"active"}
    assert [r["name"] for r in rows if r["warnings"]] == ["claude-api"]


def test_cli_validate_the_corpus(tmp_path: Path) -> None:
    corpus = needs_corpus()
    verdicts = {
        d.name: run_aos("skill", "validate", str(d), cwd=tmp_path).returncode
        for d in sorted(corpus.iterdir())
        if d.is_dir()
    }
    assert verdicts.pop("claude-api") == 1
    assert set(verdicts.values()) == {0}
    assert len(verdicts) == 11
    failed = run_aos("skill", "validate", str(corpus / "claude-api"), cwd=tmp_path)
    assert failed.stderr.strip() == (
        f"error: {corpus / 'claude-api' / 'SKILL.md'}: description: is 1068 characters; the limit is 1024"
    )


def test_cli_new_then_validate(tmp_path: Path) -> None:
    created = run_aos("skill", "new", "demo", "--service", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    skill_dir = tmp_path / "skills" / "demo"
    assert (skill_dir / "service.py").is_file()
    validated = run_aos("skill", "validate", "skills/demo", cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.strip() == "ok: skills/demo is a valid skill (demo)"
    # a documented difference: skills-ref does not know the AOS service extension
    [oracle] = skills_ref.validate(skill_dir)
    assert oracle.startswith("Unexpected fields in frontmatter: service.")
    listed = run_aos("skill", "show", "demo", cwd=tmp_path)
    assert f"service: {skill_dir / 'service.py'}" in listed.stdout
    again = run_aos("skill", "new", "demo", cwd=tmp_path)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    bad = run_aos("skill", "new", "Bad_Name", cwd=tmp_path)
    assert bad.returncode == 2  # a usage error
    assert "invalid skill name 'Bad_Name'" in bad.stderr


def test_cli_new_plugin_is_a_package_whose_skill_md_validates(tmp_path: Path) -> None:
    """Built, installed and tested in a fresh environment by tests/test_packaging.py."""
    created = run_aos("skill", "new", "aos-skill-demo", "--plugin", "--json", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "aos-skill-demo"
    assert json.loads(created.stdout) == {
        "name": "aos-skill-demo", "path": str(project), "service": False, "lang": None, "plugin": True,
    }  # fmt: skip
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) == [
        "README.md", "aos_skill_demo/SKILL.md", "aos_skill_demo/__init__.py",
        "pyproject.toml", "tests/test_aos_skill_demo.py",
    ]  # fmt: skip
    skill_md = (project / "aos_skill_demo" / "SKILL.md").read_text()
    assert skill_md.startswith("---\nname: aos-skill-demo\n")  # the entry point's name
    both = run_aos("skill", "new", "x", "--plugin", "--service", cwd=tmp_path)
    assert both.returncode == 2
