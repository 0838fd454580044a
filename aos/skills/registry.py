"""Skill discovery and the registry, with hot reload.

Roots, highest precedence first: the configured skill roots (the project's
``skills/`` by default), ``<project>/.agents/skills`` and ``~/.agents/skills``
(the Agent Skills cross-client locations, when present), the user skills dir,
installed plugin skills (entry point group ``aos.skills``) and the standard
skills (``aos_stdskills``). The same name in two roots: the higher root wins
and the other is listed as ``shadowed``. A broken SKILL.md makes that one skill
``broken`` with its reason; nothing else is affected.

Directory roots are watched (watchfiles): adding, editing or deleting a skill
directory, its SKILL.md, scripts or service file updates the registry and
notifies subscribers with ``added`` / ``changed`` / ``removed`` events.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import importlib.util
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import msgspec
import watchfiles

from aos.config import Config
from aos.plugins import PluginLoad
from aos.skills.manifest import Manifest, parse

SkillKind = Literal["context", "service", "plugin"]
SkillStatus = Literal["active", "broken", "shadowed"]
EventKind = Literal["added", "changed", "removed"]
SKILL_FILE = "SKILL.md"
STANDARD_PACKAGE = "aos_stdskills"
MISSING_ROOT_POLL = 0.2
"""Seconds between looks for a skill root that does not exist yet."""
MAX_SKILL_FILES = 10_000
"""Files a skill directory may hold: a bigger one is broken, never read whole."""
WATCH_RESTART = 1.0
"""Seconds before a failed skill watcher starts again."""

logger = logging.getLogger("aos")


class SkillInfo(msgspec.Struct, kw_only=True):
    """What the registry says of a skill (``skill.list``, ``aos skill list --json``)."""

    name: str
    description: str
    root: str
    path: str
    kind: str
    status: str
    reason: str
    warnings: list[str]
    service: str | None
    scripts: str | None
    entry_point: str | None


class Skill(msgspec.Struct, kw_only=True):
    """One discovered skill (the winner of its name, or a shadowed/broken one)."""

    name: str
    description: str = ""
    root: str
    """The root's label: configured, project-agents, home-agents, user, plugin, standard."""
    path: str
    """The skill directory."""
    kind: SkillKind
    status: SkillStatus = "active"
    reason: str = ""
    """Why it is broken or shadowed."""
    warnings: list[str] = []
    manifest: Manifest | None = None
    entry_point: str | None = None
    """For plugin and standard skills: the entry point's value."""
    fingerprint: str = ""
    """Changes whenever a file of the skill changes."""

    @property
    def system(self) -> bool:
        """Installed on the node (a skill root or a pip plugin), not a standard skill:
        its hooks are system policy and apply to every agent (docs/specs/aos-skills.md,
        System skills)."""
        return self.root != "standard"

    @property
    def body(self) -> str:
        return self.manifest.body if self.manifest else ""

    @property
    def scripts_dir(self) -> Path | None:
        scripts = Path(self.path) / "scripts"
        return scripts if _is(scripts, stat.S_ISDIR) else None

    @property
    def service_path(self) -> Path | None:
        if self.manifest is None or self.manifest.service is None:
            return None
        return Path(self.path) / self.manifest.service

    def info(self) -> SkillInfo:
        return SkillInfo(
            name=self.name,
            description=self.description,
            root=self.root,
            path=self.path,
            kind=self.kind,
            status=self.status,
            reason=self.reason,
            warnings=self.warnings,
            service=str(self.service_path) if self.service_path else None,
            scripts=str(self.scripts_dir) if self.scripts_dir else None,
            entry_point=self.entry_point,
        )


class SkillEvent(msgspec.Struct, frozen=True):
    kind: EventKind
    skill: Skill


@dataclass(frozen=True)
class Root:
    label: str
    path: Path | None = None
    """A directory root; None for the entry-point roots (plugin, standard)."""


Subscriber = Callable[[SkillEvent], None]


def _is(path: Path, kind: Callable[[int], bool]) -> bool:
    """Whether ``path`` is there and of ``kind`` (``stat.S_ISDIR``...); a path that
    cannot be looked at (no permission, an I/O error) is not."""
    try:
        return kind(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


NOT_SKILL = frozenset({"__pycache__", "node_modules"})
"""Folders in a skill that are not the skill: built or installed files (a
service's npm dependencies), neither counted nor watched for changes."""


def _fingerprint(skill_dir: Path) -> str:
    """Changes whenever a file of the skill does. Raises :class:`_TooBig` past
    :data:`MAX_SKILL_FILES` files, and OSError for a directory it cannot read."""
    digest = hashlib.blake2b(digest_size=12)
    seen = 0

    def unreadable(error: OSError) -> None:
        raise error

    for dirpath, dirnames, filenames in os.walk(skill_dir, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in NOT_SKILL)
        seen += len(filenames)
        if seen > MAX_SKILL_FILES:
            raise _TooBig(f"it holds over {MAX_SKILL_FILES} files: a skill is never read whole")
        for filename in sorted(filenames):
            try:
                info = os.stat(os.path.join(dirpath, filename))
            except OSError:
                continue
            digest.update(f"{dirpath}/{filename}:{info.st_mtime_ns}:{info.st_size};".encode())
    return digest.hexdigest()


class _TooBig(Exception):
    pass


def _broken(skill_dir: Path, root: str, name: str, reason: str, **extra: Any) -> Skill:
    return Skill(
        name=name,
        root=root,
        path=str(skill_dir),
        kind="context",
        status="broken",
        reason=reason,
        **extra,
    )


def load_skill_dir(skill_dir: Path, root: str, *, expected_name: str | None = None) -> Skill:
    """Read one skill directory leniently: whatever is wrong with it (unreadable,
    too big, a broken SKILL.md) makes it a broken skill with its reason."""
    name = expected_name or skill_dir.name
    try:
        fingerprint = _fingerprint(skill_dir)
    except _TooBig as exc:
        return _broken(skill_dir, root, name, f"{skill_dir}: {exc}")
    except OSError as exc:
        return _broken(
            skill_dir, root, name, f"cannot read the skill directory: {exc.strerror or exc}"
        )
    result = parse(skill_dir / SKILL_FILE, expected_name=expected_name)
    manifest = result.manifest
    kind: SkillKind = "service" if manifest and manifest.service else "context"
    if manifest is None:
        return _broken(
            skill_dir,
            root,
            name,
            "; ".join(str(d) for d in result.errors),
            warnings=[str(d) for d in result.warnings],
            fingerprint=fingerprint,
        )
    return Skill(
        name=manifest.name,
        description=manifest.description,
        root=root,
        path=str(skill_dir),
        kind=kind,
        warnings=[str(d) for d in result.warnings],
        manifest=manifest,
        fingerprint=fingerprint,
    )


def _plugin_skill(load: PluginLoad) -> Skill:
    module = load.value.split(":", 1)[0]
    root = "standard" if module.split(".", 1)[0] == STANDARD_PACKAGE else "plugin"
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    origin = Path(spec.origin).parent if spec and spec.origin else None
    if load.error or origin is None:
        return Skill(
            name=load.name,
            root=root,
            path=str(origin or ""),
            kind="plugin",
            status="broken",
            reason=f"plugin {load.value} failed to load: {load.error or 'module not found'}",
            entry_point=load.value,
        )
    if not (origin / SKILL_FILE).is_file():
        return Skill(
            name=load.name,
            root=root,
            path=str(origin),
            kind="plugin",
            warnings=[f"{origin}: no {SKILL_FILE} beside the plugin module"],
            entry_point=load.value,
        )
    skill = load_skill_dir(origin, root, expected_name=load.name)
    kind: SkillKind = "service" if skill.manifest and skill.manifest.service else "plugin"
    return msgspec.structs.replace(skill, kind=kind, name=load.name, entry_point=load.value)


class SkillRegistry:
    """Every skill the node knows, by name, in precedence order."""

    def __init__(self, roots: list[Root], plugins: list[PluginLoad] | None = None) -> None:
        self.roots = roots
        self._plugins = list(plugins or [])
        self._candidates: dict[tuple[int, str], Skill] = {}
        """(root index, skill dir or entry point name) -> what that place holds."""
        self._winners: dict[str, Skill] = {}
        self._subscribers: list[Subscriber] = []

    # -- reading ---------------------------------------------------------------------
    def get(self, name: str) -> Skill | None:
        """The skill that wins ``name`` (active or broken), if any."""
        return self._winners.get(name)

    def all(self) -> list[Skill]:
        """Every skill found, shadowed ones included, by name then precedence."""
        return [s for _, s in sorted(self._candidates.items(), key=lambda kv: (kv[1].name, kv[0]))]

    def active(self, names: Iterable[str] | None = None) -> list[Skill]:
        """Active skills (of ``names``, in that order, when given)."""
        if names is None:
            return [s for s in self._winners.values() if s.status == "active"]
        return [
            s for n in dict.fromkeys(names) if (s := self._winners.get(n)) and s.status == "active"
        ]

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    # -- discovery -------------------------------------------------------------------
    def scan(self) -> list[SkillEvent]:
        """Discover every root again."""
        self._candidates = {}
        for index, root in enumerate(self.roots):
            if root.path is None:
                wanted = "standard" if root.label == "standard" else "plugin"
                for load in self._plugins:
                    skill = _plugin_skill(load)
                    if skill.root == wanted:
                        self._candidates[(index, load.name)] = skill
            else:
                for child in _children(root.path):
                    if _holds_a_skill(child):
                        self._candidates[(index, str(child))] = load_skill_dir(child, root.label)
        return self._settle()

    def refresh(self, paths: Iterable[Path]) -> list[SkillEvent]:
        """Re-read the skill directories that hold ``paths`` (files or dirs)."""
        dirs: set[tuple[int, Path]] = set()
        for path in paths:
            for index, root in enumerate(self.roots):
                if root.path is None:
                    continue
                try:
                    relative = Path(path).absolute().relative_to(root.path)
                except ValueError:
                    continue
                if relative.parts:
                    dirs.add((index, root.path / relative.parts[0]))
                break
        for index, skill_dir in dirs:
            key = (index, str(skill_dir))
            if _holds_a_skill(skill_dir):
                self._candidates[key] = load_skill_dir(skill_dir, self.roots[index].label)
            else:
                self._candidates.pop(key, None)
        return self._settle()

    def reload(self, name: str) -> list[SkillEvent]:
        """Re-read the skill ``name`` from disk (its directory, wherever it is)."""
        dirs = [Path(s.path) for s in self.all() if s.name == name and s.kind != "plugin"]
        return self.refresh(dirs)

    def _settle(self) -> list[SkillEvent]:
        """Decide winners and shadows; tell subscribers what changed."""
        by_name: dict[str, list[tuple[tuple[int, str], Skill]]] = {}
        for key, skill in sorted(self._candidates.items()):
            by_name.setdefault(skill.name, []).append((key, skill))
        winners: dict[str, Skill] = {}
        for name, found in by_name.items():
            (_, first), *rest = found
            if first.status == "shadowed":
                first = msgspec.structs.replace(first, status="active", reason="")
            if first.manifest is None and first.kind != "plugin":
                first = msgspec.structs.replace(first, status="broken")
            winners[name] = first
            self._candidates[found[0][0]] = first
            for key, other in rest:
                self._candidates[key] = msgspec.structs.replace(
                    other,
                    status="shadowed",
                    reason=f"shadowed by {first.path or first.entry_point} ({first.root})",
                )
        events: list[SkillEvent] = []
        for name in sorted(self._winners.keys() | winners.keys()):
            old, new = self._winners.get(name), winners.get(name)
            if old is None and new is not None:
                events.append(SkillEvent("added", new))
            elif new is None and old is not None:
                events.append(SkillEvent("removed", old))
            elif old != new and new is not None:
                events.append(SkillEvent("changed", new))
        self._winners = winners
        for event in events:
            for subscriber in list(self._subscribers):
                subscriber(event)
        return events

    # -- hot reload --------------------------------------------------------------------
    def watched_dirs(self) -> list[Path]:
        return [r.path for r in self.roots if r.path is not None and r.path.is_dir()]

    async def watch(
        self, *, started: anyio.Event | None = None, stop: anyio.Event | None = None
    ) -> None:
        """Apply file changes under the directory roots until ``stop`` is set.

        A root that does not exist yet (a project's fresh ``skills/``) is watched
        from when it appears: what it holds then is scanned, no restart needed."""
        while stop is None or not stop.is_set():
            try:
                if not await self._watch_roots(started=started, stop=stop):
                    return
            except Exception:  # supervised: hot reload never ends in silence
                logger.exception("the skill watcher failed; it starts again in %g s", WATCH_RESTART)
                await asyncio.sleep(WATCH_RESTART)
                if started is not None:
                    started.set()
            try:
                self.scan()  # a root appeared, or the watch restarts: read what changed meanwhile
            except Exception:
                logger.exception("rescanning the skill roots failed")

    def _missing_roots(self) -> list[Path]:
        return [r.path for r in self.roots if r.path is not None and not r.path.is_dir()]

    async def _watch_roots(self, *, started: anyio.Event | None, stop: anyio.Event | None) -> bool:
        """Watch the existing roots until ``stop`` (False) or until a missing root
        exists (True). ``started`` is set once the watches are in place."""
        dirs = self.watched_dirs()
        missing = self._missing_roots()
        if not dirs:
            if started is not None:
                started.set()
            while not any(path.is_dir() for path in missing):
                if stop is not None and stop.is_set():
                    return False
                await asyncio.sleep(MISSING_ROOT_POLL)  # a stat per root: nothing to watch yet
            return True
        # awatch yields an empty set every rust_timeout ms without changes: the
        # first one proves the watches are in place, so ``started`` means watching.
        async for changes in watchfiles.awatch(
            *dirs,
            stop_event=stop,
            debounce=400,
            step=30,
            recursive=True,
            rust_timeout=200,
            yield_on_timeout=True,
        ):
            if started is not None and not started.is_set():
                started.set()
            if changes:
                self.refresh(Path(path) for _, path in changes)
            if any(path.is_dir() for path in missing):
                return True
        return False


def _children(root: Path) -> list[Path]:
    """The entries of a skill root, sorted; none if it cannot be read (said in the log)."""
    try:
        return sorted(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        logger.warning("skill root %s cannot be read: %s", root, exc.strerror or exc)
        return []


def _holds_a_skill(path: Path) -> bool:
    """A skill directory: not hidden, and with a SKILL.md, or unreadable (then it is
    listed as broken, with why, rather than passed over in silence)."""
    if path.name.startswith(".") or not _is(path, stat.S_ISDIR):
        return False
    try:
        os.stat(path / SKILL_FILE)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True


def agents_skills_dirs(config: Config) -> list[Path]:
    """The cross-client ``.agents/skills`` folders: the project's, then the home's."""
    return [config.project_dir / ".agents" / "skills", Path.home() / ".agents" / "skills"]


def default_roots(config: Config) -> list[Root]:
    """The discovery roots of a node, highest precedence first."""
    roots = [Root("configured", path) for path in config.skill_root_paths]
    for label, path in zip(
        ("project-agents", "home-agents"), agents_skills_dirs(config), strict=True
    ):
        if path.is_dir():
            roots.append(Root(label, path.resolve()))
    roots += [Root("user", config.paths.skills_dir), Root("plugin"), Root("standard")]
    return roots


def available_skills_prompt(skills: Iterable[Skill]) -> str:
    """The Agent Skills ``<available_skills>`` block (as ``skills-ref to-prompt`` renders
    it, but quotes stay quotes: only ``&``, ``<`` and ``>`` could break the block, and a
    model reads ``don't`` better than ``don&#x27;t``)."""
    lines = ["<available_skills>"]
    for skill in skills:
        lines += [
            "<skill>",
            "<name>",
            html.escape(skill.name, quote=False),
            "</name>",
            "<description>",
            html.escape(skill.description, quote=False),
            "</description>",
            "<location>",
            str(Path(skill.path) / SKILL_FILE),
            "</location>",
            "</skill>",
        ]
    lines.append("</available_skills>")
    return "\n".join(lines)
