"""Shared benchmark machinery: results, targets, timing, percentiles, the table.

Every benchmark module (``bench/bench_*.py``) imports what it needs from here
and nothing is copied between modules. A benchmark module exposes::

    NAME: str                  # how it is selected on the command line
    DESCRIPTION: str           # one line for ``--list`` and the JSON file
    async def run(ctx: Context) -> list[Result]

Benchmarks *report*: a missed target is a figure with verdict ``miss``, never
an exception. Only a benchmark that cannot do its work raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import resource
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from aos.config import mask_url

Comparison = Literal["<=", ">="]
Verdict = Literal["pass", "miss", "info", "skipped"]
"""``pass``/``miss`` against the target; ``info`` has no target; ``skipped`` was not measured."""

NS_PER_MS = 1_000_000
NS_PER_US = 1_000


# -- results ------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What a figure is held against: ``value <op> limit``."""

    op: Comparison
    limit: float

    def met_by(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def describe(self, unit: str) -> str:
        return f"{self.op} {self.limit:,g} {unit}"


@dataclass(frozen=True)
class Result:
    """One figure of one benchmark case, e.g. ``sqlite`` / ``append latency p50``."""

    case: str
    figure: str
    value: float | None
    unit: str
    target: Target | None = None
    samples: int | None = None
    """How many measurements the figure is computed from."""
    skipped: str | None = None
    """Why the figure was not measured (``value`` is then ``None``)."""
    note: str = ""

    @classmethod
    def skip(
        cls, case: str, figure: str, unit: str, reason: str, target: Target | None = None
    ) -> Result:
        return cls(case=case, figure=figure, value=None, unit=unit, target=target, skipped=reason)

    @property
    def verdict(self) -> Verdict:
        if self.value is None:
            return "skipped"
        if self.target is None:
            return "info"
        return "pass" if self.target.met_by(self.value) else "miss"

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "target": None
            if self.target is None
            else {"op": self.target.op, "value": self.target.limit, "unit": self.unit},
            "verdict": self.verdict,
            "samples": self.samples,
            "skipped": self.skipped,
            "note": self.note,
        }


@dataclass
class Context:
    """What the runner hands every benchmark."""

    quick: bool = False

    def scale(self, full: int, quick: int) -> int:
        """``full`` normally, ``quick`` under ``--quick``."""
        return quick if self.quick else full

    def progress(self, message: str) -> None:
        """A progress line on stderr (stdout is kept for the table)."""
        print(f"  .. {message}", file=sys.stderr, flush=True)


# -- statistics ---------------------------------------------------------------
def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _percentiles(
    case: str,
    what: str,
    samples_ns: Sequence[int],
    unit: str,
    per_unit_ns: float,
    targets: Mapping[str, float | None],
    note: str,
) -> list[Result]:
    """``<what> p50`` and ``<what> p99`` in ``unit``; ``targets`` maps p50/p99 to a limit."""
    results: list[Result] = []
    for name, q in (("p50", 50.0), ("p99", 99.0)):
        limit = targets.get(name)
        results.append(
            Result(
                case=case,
                figure=f"{what} {name}",
                value=percentile(samples_ns, q) / per_unit_ns,
                unit=unit,
                target=None if limit is None else Target("<=", limit),
                samples=len(samples_ns),
                note=note,
            )
        )
    return results


def latency_results(
    case: str,
    what: str,
    samples_ns: Sequence[int],
    *,
    targets_ms: Mapping[str, float] | None = None,
    note: str = "",
) -> list[Result]:
    """``<what> p50`` and ``<what> p99`` in ms; ``targets_ms`` maps ``p50``/``p99`` to a limit."""
    return _percentiles(case, what, samples_ns, "ms", NS_PER_MS, targets_ms or {}, note)


def micro_results(
    case: str,
    what: str,
    samples_ns: Sequence[int],
    *,
    target_p50_us: float | None = None,
    target_p99_us: float | None = None,
    note: str = "",
) -> list[Result]:
    """``<what> p50`` and ``<what> p99`` in µs (``latency_results`` reports ms)."""
    targets = {"p50": target_p50_us, "p99": target_p99_us}
    return _percentiles(case, what, samples_ns, "µs", NS_PER_US, targets, note)


# -- timing -------------------------------------------------------------------
def now_ns() -> int:
    """The benchmark clock: :func:`time.perf_counter_ns`."""
    return time.perf_counter_ns()


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.elapsed_ns`` / ``sw.seconds`` (wall clock)."""

    def __init__(self) -> None:
        self._start = 0
        self.elapsed_ns = 0

    def __enter__(self) -> Stopwatch:
        self._start = now_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.elapsed_ns = now_ns() - self._start

    @property
    def seconds(self) -> float:
        return self.elapsed_ns / 1e9


async def time_each(
    op: Callable[[int], Awaitable[object]], n: int, *, warmup: int = 0
) -> list[int]:
    """Await ``op(i)`` ``warmup`` times untimed, then ``n`` times; each call's ns.

    The collector is run before the timed calls and left enabled: its pauses
    belong to the p99 a real caller sees.
    """
    for i in range(warmup):
        await op(i)
    gc.collect()
    samples: list[int] = []
    for i in range(warmup, warmup + n):
        start = now_ns()
        await op(i)
        samples.append(now_ns() - start)
    return samples


# -- presentation -------------------------------------------------------------
def format_number(value: float) -> str:
    """Readable at a glance: ``23,456`` for big figures, three significant digits otherwise."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Plain aligned text; columns whose cells all look numeric are right-aligned."""
    body = [list(row) for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = [
        any(_is_number(row[i]) for row in body)
        and all(_is_number(row[i]) or row[i] in ("", "-") for row in body)
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in body)])


def _is_number(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "", 1).removeprefix("-").isdigit()


RESULT_HEADERS = ("benchmark", "case", "figure", "value", "unit", "target", "verdict")


def result_rows(benchmark: str, results: Iterable[Result]) -> list[list[str]]:
    """Table rows of a benchmark's results (a skipped figure shows its reason)."""
    rows: list[list[str]] = []
    for r in results:
        target = "" if r.target is None else r.target.describe(r.unit)
        if r.value is None:
            rows.append([benchmark, r.case, r.figure, "-", r.unit, target, f"skipped: {r.skipped}"])
        else:
            verdict = "" if r.verdict == "info" else r.verdict
            rows.append(
                [benchmark, r.case, r.figure, format_number(r.value), r.unit, target, verdict]
            )
    return rows


# -- PostgreSQL -------------------------------------------------------------------
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_UNREACHABLE = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What connecting to an absent or refusing server raises."""


class PostgresUnavailable(Exception):
    """The benchmark's PostgreSQL server cannot be reached; the message says why."""


@dataclass(frozen=True)
class PgSchema:
    """A fresh schema on the benchmark's PostgreSQL server."""

    dsn: str
    """The server URL without an AOS ``?schema=`` (what asyncpg and psycopg take)."""
    name: str

    @property
    def url(self) -> str:
        """The AOS database URL (``AOS_DB_URL``) working in this schema."""
        return f"{self.dsn}{'&' if '?' in self.dsn else '?'}schema={self.name}"


def pg_url() -> str:
    """``AOS_BENCH_DB_URL``, else ``AOS_TEST_DB_URL``, else the local default."""
    return os.environ.get("AOS_BENCH_DB_URL") or os.environ.get("AOS_TEST_DB_URL") or DEFAULT_PG_URL


def without_schema(url: str) -> str:
    """The URL without an AOS ``?schema=`` (the benchmark brings its own schema)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextlib.asynccontextmanager
async def pg_schema(ctx: Context, prefix: str = "bench") -> AsyncIterator[PgSchema]:
    """A schema ``<prefix>_<random>`` on :func:`pg_url`'s server, dropped afterwards
    (``DROP SCHEMA ... CASCADE``); it is created by whoever uses it first.

    Raises :class:`PostgresUnavailable` (before yielding) if the server cannot be reached.
    """
    url = pg_url()
    dsn = without_schema(url)
    try:
        probe = await asyncpg.connect(dsn, timeout=5)
        await probe.close()
    except PG_UNREACHABLE as exc:
        raise PostgresUnavailable(f"PostgreSQL unreachable at {mask_url(url)}: {exc}") from None
    schema = PgSchema(dsn=dsn, name=f"{prefix}_{secrets.token_hex(6)}")
    ctx.progress(f"postgres: {mask_url(dsn)} schema {schema.name}")
    try:
        yield schema
    finally:
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema.name}" CASCADE')
            finally:
                await conn.close()
        except PG_UNREACHABLE as exc:
            ctx.progress(f"warning: could not drop schema {schema.name}: {exc} (drop it by hand)")


# -- environment ----------------------------------------------------------------
def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this
    process's own memory. ``ru_maxrss`` is not used there: it survives
    ``execve``, so a child started from a big benchmark process reports its
    parent's peak. Elsewhere ``ru_maxrss`` (KB on Linux, bytes on macOS).
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def machine_busy_s() -> float | None:
    """CPU seconds every process on this machine has spent busy since boot
    (``/proc/stat``: all but idle and iowait), or None off Linux. Two readings
    bracket a run; less what the run's own processes used, it is the noise."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(field) for field in fields[:8]]  # guest time is already in user
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


async def wait_quiet(
    *, busy_below: float = 0.1, window: float = 0.25, limit: float = 15.0
) -> float:
    """Wait (at most ``limit`` s) until the whole machine was busy less than
    ``busy_below`` of its usable CPUs for one ``window`` (a previous case's
    database checkpoint or a finished child still exiting); return the last
    window's busy fraction, so a figure can say it started on a loaded machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    deadline = time.monotonic() + limit
    busy = 0.0
    while True:
        before = machine_busy_s()
        if before is None:
            return 0.0
        await asyncio.sleep(window)
        busy = ((machine_busy_s() or before) - before) / (window * cpus)
        if busy < busy_below or time.monotonic() >= deadline:
            return busy


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (they only compare within one machine and run)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity(0)) if affinity is not None else os.cpu_count(),
    }


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor()
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor()


async def child_json(*args: str, what: str) -> Any:
    """Run ``python ARGS`` to its end and return the JSON it printed; its stderr
    (the tail) in the error if it failed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{what} exited {process.returncode}: {err.decode()[-3000:]}")
    return json.loads(out)


@contextlib.asynccontextmanager
async def server_process(
    *args: str, what: str, limit: int = 1 << 24
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A helper server in a child process (``python ARGS``) that prints its base URL
    on its first line and stops when its stdin closes: ``(process, base_url)``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=limit,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            base_url = (await process.stdout.readline()).decode().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError(f"{what} did not start: {base_url!r}")
        yield process, base_url
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
