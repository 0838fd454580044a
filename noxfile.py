"""Developer sessions. ``.ci/run`` and ``pixi.toml`` run the same commands."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

TESTS = ["pytest"]
LINT = [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["lint-imports"]]
TYPECHECK = ["pyright"]
BENCH = ["python", "bench/run.py"]
E2E = [
    "pytest",
    "tests/test_main_job_cli.py",
    "tests/test_a2a.py",
    "tests/test_frontend_browser.py",
    "tests/test_daemon_cli.py",
]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (PostgreSQL tests need AOS_TEST_DB_URL)."""
    session.install("-e", "./sdk/python", "-e", ".[dev]")
    session.run(*TESTS, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check and the layers (lint-imports)."""
    session.install("-e", "./sdk/python", "-e", ".[dev]")
    for command in LINT:
        session.run(*command)


@nox.session
def typecheck(session: nox.Session) -> None:
    """pyright over the packages, tests and benchmarks."""
    session.install("-e", "./sdk/python", "-e", ".[dev]")
    session.run(*TYPECHECK)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: print a table and write bench/results/latest.json (with the
    LangGraph peer from the bench extra)."""
    session.install("-e", "./sdk/python", "-e", ".[dev,bench]")
    session.run(*BENCH, *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """The end-to-end tests alone: CLI, daemon, agents messaging, the UI in chromium."""
    session.install("-e", "./sdk/python", "-e", ".[dev]")
    session.run(*E2E, *session.posargs)
