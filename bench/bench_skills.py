"""Skill discovery at start-up and hot-reload latency, on a root of 200 skills.

A temporary directory is the one ``configured`` root, holding 200 skill
directories ``skill-000`` .. ``skill-199``: each a SKILL.md with valid
frontmatter (name, description, license) and a body of about 400 bytes, and a
``scripts/`` folder with one small file.

(a) discovery: ``SkillRegistry([Root("configured", tmp)]).scan()``, a fresh
    registry every repeat (target p50 <= 300 ms); the first scan of the process
    is timed apart and reported without a target. Every scan must find 200
    active skills.
(b) reload: one registry runs ``watch()`` in a task group over that root; a
    subscriber stamps every :class:`SkillEvent` with ``now_ns()`` as it is
    delivered. Each iteration rewrites one skill's SKILL.md in place with a new,
    unique description and waits (at most 5 s) for the ``changed`` event that
    carries that description: the figure is write start -> event (target p50
    <= 300 ms). Likewise ``added``: a new skill directory is created with its
    SKILL.md, timed from the ``mkdir`` to the ``added`` event. An event that
    does not arrive within 5 s is a miss: left out of the percentiles and
    counted in its own row (target 0). Iterations are 0.3 to 0.35 s apart (at
    random, so that writes fall at every phase of the watcher's polling step) so
    that two writes never land in one batch of file changes; one untimed change
    comes first.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
from _harness import Context, Result, Stopwatch, Target, latency_results, now_ns, time_each

from aos.skills.registry import EventKind, Root, SkillEvent, SkillRegistry

NAME = "skills"
DESCRIPTION = (
    "skill registry: start-up scan of 200 skill directories, and hot reload from a "
    "SKILL.md write to the registry's changed/added event"
)

SKILLS = 200
SCAN_P50_MS = 300.0
RELOAD_P50_MS = 300.0
EVENT_TIMEOUT_S = 5.0
GAP_S = 0.3
"""Pause after each event, so that the next write starts a new batch of changes."""
JITTER_S = 0.05
"""Added to the pause at random: the watcher looks for changes on a fixed 30 ms step
from the end of the last batch, and a fixed pause would write at the same phase of
that step every time (a constant, unrepresentative share of it in every sample)."""

ROOT_LABEL = "configured"
BODY = (
    "# Benchmark skill\n\n"
    "Use this skill when the benchmark asks for it. It does nothing useful: it exists\n"
    "so that the registry has a realistic SKILL.md to read, with a body of a few\n"
    "hundred bytes after the frontmatter.\n\n"
    "## Steps\n\n"
    "1. Read the request.\n"
    "2. Run `scripts/run.sh` with the request as its only argument.\n"
    "3. Report what the script printed, word for word.\n"
)
SCRIPT = '#!/bin/sh\necho "$1"\n'


def skill_name(i: int) -> str:
    return f"skill-{i:03d}"


def write_manifest(skill_dir: Path, description: str) -> None:
    """(Re)write ``skill_dir/SKILL.md`` in place (truncate and write, as most editors do)."""
    text = f"---\nname: {skill_dir.name}\ndescription: {description}\nlicense: MIT\n---\n\n{BODY}"
    (skill_dir / "SKILL.md").write_text(text, encoding="utf-8")


def make_skill(root: Path, name: str, description: str, *, scripts: bool = True) -> None:
    skill_dir = root / name
    skill_dir.mkdir()
    if scripts:
        (skill_dir / "scripts").mkdir()
        (skill_dir / "scripts" / "run.sh").write_text(SCRIPT, encoding="utf-8")
    write_manifest(skill_dir, description)


def scanned(root: Path) -> SkillRegistry:
    registry = SkillRegistry([Root(ROOT_LABEL, root)])
    registry.scan()
    return registry


def check_active(registry: SkillRegistry, expected: int) -> None:
    active = len(registry.active())
    if active != expected:  # the work was not done: not a figure
        broken = [f"{s.name}: {s.reason}" for s in registry.all() if s.status != "active"][:3]
        raise RuntimeError(f"scan found {active} active skills, expected {expected}: {broken}")


# -- (a) discovery --------------------------------------------------------------------------
async def measure_scan(ctx: Context, root: Path) -> list[Result]:
    repeats = ctx.scale(10, 3)
    with Stopwatch() as first:
        check_active(scanned(root), SKILLS)

    async def scan_once(_: int) -> None:
        check_active(scanned(root), SKILLS)

    ctx.progress(f"scan of {SKILLS} skill directories x {repeats}")
    samples = await time_each(scan_once, repeats)
    case = f"{SKILLS} skills"
    return [
        *latency_results(
            case,
            "scan",
            samples,
            targets_ms={"p50": SCAN_P50_MS},
            note="fresh SkillRegistry + scan(), after the first scan of the process",
        ),
        Result(case, "first scan", first.elapsed_ns / 1e6, "ms", samples=1),
    ]


# -- (b) reload -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    at_ns: int
    kind: EventKind
    name: str
    description: str


class EventLog:
    """A registry subscriber: every event, stamped when it is delivered."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._arrived = anyio.Event()

    def __call__(self, event: SkillEvent) -> None:
        skill = event.skill
        self.seen.append(Seen(now_ns(), event.kind, skill.name, skill.description))
        self._arrived.set()

    async def wait_for(
        self, kind: EventKind, name: str, description: str | None, *, after: int
    ) -> int | None:
        """When the first matching event from ``seen[after:]`` on was delivered; None on timeout."""
        with anyio.move_on_after(EVENT_TIMEOUT_S):
            while True:
                for seen in self.seen[after:]:
                    if (seen.kind, seen.name) != (kind, name):
                        continue
                    if description is None or seen.description == description:
                        return seen.at_ns
                after = len(self.seen)
                self._arrived = anyio.Event()  # no await since the scan: nothing was missed
                await self._arrived.wait()
        return None


@dataclass
class Latencies:
    samples: list[int] = field(default_factory=list[int])
    misses: int = 0

    def add(self, elapsed_ns: int | None) -> None:
        if elapsed_ns is None:
            self.misses += 1
        else:
            self.samples.append(elapsed_ns)

    def results(self, case: str, note: str) -> list[Result]:
        what = "write -> event"
        misses = Result(
            case,
            f"missed (no event in {EVENT_TIMEOUT_S:g} s)",
            self.misses,
            "events",
            target=Target("<=", 0),
            samples=len(self.samples) + self.misses,
        )
        if not self.samples:
            return [
                Result.skip(case, f"{what} {q}", "ms", "no event arrived", target=t)
                for q, t in (("p50", Target("<=", RELOAD_P50_MS)), ("p99", None))
            ] + [misses]
        return [
            *latency_results(
                case, what, self.samples, targets_ms={"p50": RELOAD_P50_MS}, note=note
            ),
            misses,
        ]


async def change_once(root: Path, log: EventLog, name: str, description: str) -> int | None:
    """Rewrite ``name``'s SKILL.md; write start -> its ``changed`` event, in ns."""
    mark = len(log.seen)
    start = now_ns()
    write_manifest(root / name, description)
    delivered = await log.wait_for("changed", name, description, after=mark)
    return None if delivered is None else delivered - start


async def add_once(root: Path, log: EventLog, name: str) -> int | None:
    """Create the skill ``name``; mkdir -> its ``added`` event, in ns."""
    mark = len(log.seen)
    start = now_ns()
    make_skill(root, name, f"Added by the benchmark as {name}.", scripts=False)
    delivered = await log.wait_for("added", name, None, after=mark)
    return None if delivered is None else delivered - start


async def measure_reload(ctx: Context, root: Path) -> list[Result]:
    changes, additions = ctx.scale(30, 8), ctx.scale(5, 2)
    registry = scanned(root)
    log = EventLog()
    registry.subscribe(log)
    changed, added = Latencies(), Latencies()
    jitter = random.Random(SKILLS)

    async def pause() -> None:
        await anyio.sleep(GAP_S + jitter.uniform(0, JITTER_S))

    started, stop = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(registry.watch, started=started, stop=stop))
        try:
            await started.wait()
            await anyio.sleep(GAP_S)
            await change_once(root, log, skill_name(0), "Warm-up revision.")  # untimed
            await pause()
            ctx.progress(f"{changes} SKILL.md rewrites, {additions} new skills, {GAP_S:g} s apart")
            for i in range(changes):
                name = skill_name((i * 7) % SKILLS)
                changed.add(await change_once(root, log, name, f"Revision {i} of {name}."))
                await pause()
            for i in range(additions):
                added.add(await add_once(root, log, f"added-{i:03d}"))
                await pause()
        finally:
            stop.set()
    if not changed.misses + added.misses:
        check_active(registry, SKILLS + additions)
    return [
        *changed.results(
            "changed", f"SKILL.md rewritten in place, {SKILLS} skills watched; write -> callback"
        ),
        *added.results("added", "mkdir + SKILL.md -> callback"),
    ]


async def run(ctx: Context) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="aos-bench-") as tmp:
        root = Path(tmp) / "skills"
        root.mkdir()
        for i in range(SKILLS):
            make_skill(root, skill_name(i), f"Benchmark skill number {i}, initial revision.")
        return [*await measure_scan(ctx, root), *await measure_reload(ctx, root)]
