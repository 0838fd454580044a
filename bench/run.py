"""Run the AgentOS benchmarks: ``python bench/run.py [NAME ...] [--json PATH] [--quick]``.

Discovers ``bench/bench_*.py``, runs the selected ones (all by default), prints
one table of every figure against its target, and writes the figures with the
machine they were measured on to a JSON file (``bench/results/latest.json``).

A missed target is reported, never fatal: the exit status is 0 unless a
benchmark crashed (1) or the command line was wrong (2).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script this is already so; keeps imports working
    sys.path.insert(0, str(HERE))

from _harness import (  # noqa: E402 (needs the path above)
    RESULT_HEADERS,
    Context,
    Result,
    Stopwatch,
    format_table,
    machine_info,
    result_rows,
)

DEFAULT_JSON = HERE / "results" / "latest.json"
JSON_FORMAT = 1

RunFn = Callable[[Context], Awaitable[list[Result]]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    module: str
    run: RunFn


@dataclass
class Outcome:
    benchmark: Benchmark
    results: list[Result]
    seconds: float
    error: str | None = None


def discover() -> list[Benchmark]:
    """Every ``bench_*.py`` next to this file, in name order."""
    found: list[Benchmark] = []
    for path in sorted(HERE.glob("bench_*.py")):
        module = importlib.import_module(path.stem)
        name = getattr(module, "NAME", path.stem.removeprefix("bench_"))
        description = getattr(module, "DESCRIPTION", (module.__doc__ or "").strip().split("\n")[0])
        run = getattr(module, "run", None)
        if not (isinstance(name, str) and isinstance(description, str) and callable(run)):
            raise SystemExit(
                f"{path}: a benchmark module needs NAME: str, DESCRIPTION: str and "
                "async def run(ctx: Context) -> list[Result]"
            )
        found.append(
            Benchmark(name=name, description=description, module=path.stem, run=cast(RunFn, run))
        )
    return found


def select(available: Sequence[Benchmark], names: Sequence[str]) -> list[Benchmark]:
    """The benchmarks named (by NAME or module name), or all of them."""
    if not names:
        return list(available)
    by_name = {b.name: b for b in available} | {b.module: b for b in available}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        known = ", ".join(b.name for b in available) or "none"
        print(f"unknown benchmark(s): {', '.join(unknown)} (available: {known})", file=sys.stderr)
        raise SystemExit(2)
    chosen: list[Benchmark] = []
    for n in names:
        if by_name[n] not in chosen:
            chosen.append(by_name[n])
    return chosen


def run_one(benchmark: Benchmark, ctx: Context) -> Outcome:
    """Run a benchmark in its own event loop; a crash is recorded, not raised."""
    print(f"== {benchmark.name}: {benchmark.description}", file=sys.stderr, flush=True)
    with Stopwatch() as sw:
        try:
            results = asyncio.run(_call(benchmark.run, ctx))
            error = None
        except Exception:
            results, error = [], traceback.format_exc()
    if error is not None:
        print(f"!! {benchmark.name} crashed:\n{error}", file=sys.stderr, flush=True)
    return Outcome(benchmark=benchmark, results=results, seconds=sw.seconds, error=error)


async def _call(run: RunFn, ctx: Context) -> list[Result]:
    return list(await run(ctx))


def report(outcomes: Sequence[Outcome], *, quick: bool) -> dict[str, Any]:
    return {
        "format": JSON_FORMAT,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine_info(),
        "benchmarks": [
            {
                "name": o.benchmark.name,
                "description": o.benchmark.description,
                "status": "crashed" if o.error else "ok",
                "error": o.error,
                "seconds": round(o.seconds, 3),
                "results": [r.to_json() for r in o.results],
            }
            for o in outcomes
        ],
    }


def table(outcomes: Sequence[Outcome]) -> str:
    rows: list[list[str]] = []
    for o in outcomes:
        rows += result_rows(o.benchmark.name, o.results)
        if o.error:
            last = o.error.strip().splitlines()[-1]
            rows.append([o.benchmark.name, "-", "-", "-", "", "", f"crashed: {last}"])
    return format_table(RESULT_HEADERS, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Run the AgentOS benchmarks. Missed targets are reported, never fatal.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default all)")
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the results (default {DEFAULT_JSON.relative_to(HERE.parent)})",
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations: a smoke run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    available = discover()
    if args.list:
        for b in available:
            print(f"{b.name:24} {b.description}")
        return 0
    chosen = select(available, args.names)
    ctx = Context(quick=args.quick)
    outcomes = [run_one(b, ctx) for b in chosen]

    print(table(outcomes))
    path: Path = args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report(outcomes, quick=args.quick), indent=2) + "\n", "utf-8")
    print(f"\nresults written to {path}", file=sys.stderr)
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
